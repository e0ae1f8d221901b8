#!/bin/bash
# make e2e-podman-rootless: rootless podman (4.3, run by an unprivileged user made here) runs its
# containers on onggi. Rootless podman runs the OCI runtime as "root" of its own user namespace:
# onggi must see that it is not real root (state under $XDG_RUNTIME_DIR, no cgroup unless
# delegated, no device program, device nodes bound, the init dumpable until its maps are written).
# Private HOME and XDG_RUNTIME_DIR under a temp dir; everything, the user's processes included,
# is removed at the end.
# usage: tests/e2e/podman-rootless.sh /abs/path/to/onggi /abs/path/to/busybox-rootfs
set -uo pipefail
ONGGI=${1:?usage: podman-rootless.sh ONGGI ROOTFS}; ROOTFS=${2:?usage: podman-rootless.sh ONGGI ROOTFS}
U=onggi-rl
id "$U" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$U" || { echo "useradd failed"; exit 2; }
# Subordinate ids for the user's podman user namespace (useradd adds them on most hosts).
grep -q "^$U:" /etc/subuid 2>/dev/null || usermod --add-subuids 300000-365535 "$U"
grep -q "^$U:" /etc/subgid 2>/dev/null || usermod --add-subgids 300000-365535 "$U"
T=$(mktemp -d /tmp/onggi-e2e-rootless.XXXXXX)
chmod 755 "$T"
mkdir -p "$T/home" "$T/xdg" && chmod 700 "$T/xdg" && chown "$U:$U" "$T/home" "$T/xdg"
# onggi where an installed runtime would be: owned by root, executable by the user.
install -m 755 "$ONGGI" "$T/onggi"
tar -C "$ROOTFS" -cf "$T/rootfs.tar" . && chmod 644 "$T/rootfs.tar"
fail=0; n=0

AS_USER=(setpriv --reuid "$U" --regid "$U" --init-groups env -i "PATH=$PATH"
  "HOME=$T/home" "XDG_RUNTIME_DIR=$T/xdg" "USER=$U")
P=("${AS_USER[@]}" podman --runtime "$T/onggi" --cgroup-manager cgroupfs --events-backend file)
RUN=("${P[@]}" run --network none)

cleanup() {
  "${P[@]}" pod rm -af -t 0 >/dev/null 2>&1
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  "${P[@]}" system reset -f >/dev/null 2>&1
  pkill -KILL -u "$U" 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

source "$(dirname "$0")/lib.sh"

"${P[@]}" import -q "$T/rootfs.tar" localhost/onggi-busybox >/dev/null 2>&1 ||
  { echo "rootless podman import failed"; "${P[@]}" info 2>&1 | tail -5; exit 2; }
IMG=localhost/onggi-busybox

check "run --rm echo" "hi" "$("${RUN[@]}" --rm $IMG echo hi 2>&1)"
"${RUN[@]}" --rm $IMG sh -c 'exit 3' >/dev/null 2>&1; check "run exit code" 3 $?
check "root inside is the user outside" "0 $(id -u $U) 1" \
  "$("${RUN[@]}" --rm $IMG sh -c 'id -u >/dev/null; head -1 /proc/self/uid_map' | tr -s ' ' | sed 's/^ //')"
check "--user 1000:1000" "1000:1000" "$("${RUN[@]}" --rm --user 1000:1000 $IMG sh -c 'echo $(id -u):$(id -g)')"
check "--cap-drop ALL" "CapEff:	0000000000000000" "$("${RUN[@]}" --rm --cap-drop ALL $IMG grep CapEff /proc/self/status)"
out=$("${RUN[@]}" --rm --read-only $IMG touch /x 2>&1); has "--read-only" "Read-only file system" "$out"
mkdir -p "$T/home/vol" && chown "$U:$U" "$T/home/vol"
check "-v USERDIR:/vol" "w" "$("${RUN[@]}" --rm -v "$T/home/vol:/vol" $IMG sh -c 'echo w > /vol/f && cat /vol/f' 2>&1)"
check "/dev/null is the host's node, bound" "1" \
  "$("${RUN[@]}" --rm $IMG grep -c ' /dev/null ' /proc/self/mountinfo)"
check "default seccomp profile" "Seccomp:	2" "$("${RUN[@]}" --rm $IMG grep ^Seccomp: /proc/self/status)"
# --userns=keep-id: a user namespace inside podman's, whose maps onggi writes.
check "--userns=keep-id" "$(id -u $U)" "$("${RUN[@]}" --rm --userns=keep-id $IMG id -u)"
# A pod with --userns=keep-id: the infra container makes the user namespace, the others join it
# by path, with mappings that must be that namespace's own.
"${P[@]}" pod create --name onggi-pod --userns=keep-id --network none >/dev/null 2>&1
check "a container joining its pod's user namespace" "$(id -u $U)" \
  "$("${RUN[@]}" --rm --pod onggi-pod $IMG id -u 2>&1)"
"${P[@]}" pod rm -f -t 0 onggi-pod >/dev/null 2>&1
podman_common_checks
# onggi's state lives under the user's XDG_RUNTIME_DIR (podman passes its own --root there).
check "nothing left" "" "$("${P[@]}" ps -aq)"
echo "1..$n"
exit $fail
