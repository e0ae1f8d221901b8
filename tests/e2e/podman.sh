#!/bin/bash
# make e2e-podman: Debian's podman (4.3, rootful) runs its containers on onggi.
# Private storage and config under a temp dir; an image imported from the busybox rootfs
# (no registry here); cgroups under the caller's own v2 cgroup; nothing left behind.
# usage: tests/e2e/podman.sh /abs/path/to/onggi /abs/path/to/busybox-rootfs
set -uo pipefail
ONGGI=${1:?usage: podman.sh ONGGI ROOTFS}; ROOTFS=${2:?usage: podman.sh ONGGI ROOTFS}
T=$(mktemp -d /tmp/onggi-e2e-podman.XXXXXX)
v2=$(awk '$9 == "cgroup2" { print $5 }' /proc/self/mountinfo | tail -1)
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
PARENT="${own%/}/onggi-e2e-podman-$$"
fail=0; n=0

export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
cat > "$CONTAINERS_STORAGE_CONF" <<C
[storage]
driver = "overlay"
graphroot = "$T/storage"
runroot = "$T/run"
C
: > "$CONTAINERS_REGISTRIES_CONF"
cat > "$CONTAINERS_CONF" <<C
[containers]
netns = "none"
pids_limit = 0
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/events.log"
tmp_dir = "$T/tmp"
volume_path = "$T/volumes"
static_dir = "$T/libpod"
runtime = "onggi"
runtime_supports_json = ["crun", "runc", "onggi"]
[engine.runtimes]
onggi = ["$ONGGI"]
C
P=(podman --root "$T/storage" --runroot "$T/run" --runtime "$ONGGI")
RUN=("${P[@]}" run --cgroups=no-conmon --cgroup-parent "$PARENT")

cleanup() {
  "${P[@]}" pod rm -af -t 0 >/dev/null 2>&1
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  "${P[@]}" system reset -f >/dev/null 2>&1
  # podman's overlay mounts and runroot
  grep -o " $T[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  [ -d "$v2$PARENT" ] && find "$v2$PARENT" -depth -type d -exec rmdir {} + 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

source "$(dirname "$0")/lib.sh"

tar -C "$ROOTFS" -cf "$T/rootfs.tar" . || exit 2
"${P[@]}" import -q "$T/rootfs.tar" localhost/onggi-busybox >/dev/null || { echo "podman import failed"; exit 2; }
IMG=localhost/onggi-busybox

check "run --rm echo" "hi" "$("${RUN[@]}" --rm $IMG echo hi 2>&1)"
"${RUN[@]}" --rm $IMG sh -c 'exit 3' >/dev/null 2>&1; check "run exit code" 3 $?
"${RUN[@]}" --rm $IMG /no/such/binary >/dev/null 2>&1; check "missing binary -> 127" 127 $?
"${RUN[@]}" --rm $IMG /etc/passwd >/dev/null 2>&1; check "non-executable -> 126" 126 $?
check "-e K=V" "v1" "$("${RUN[@]}" --rm -e K=v1 $IMG sh -c 'echo $K')"
printf 'A=from-file\n' > "$T/env"
check "--env-file" "from-file" "$("${RUN[@]}" --rm --env-file "$T/env" $IMG sh -c 'echo $A')"
check "--entrypoint" "entry" "$("${RUN[@]}" --rm --entrypoint /bin/echo $IMG entry)"
check "--user 1000:1000" "1000:1000" "$("${RUN[@]}" --rm --user 1000:1000 $IMG sh -c 'echo $(id -u):$(id -g)')"
check "--cap-drop ALL" "CapEff:	0000000000000000" "$("${RUN[@]}" --rm --cap-drop ALL $IMG grep CapEff /proc/self/status)"
check "--network none: only lo" "lo" "$("${RUN[@]}" --rm --network none $IMG ls /sys/class/net)"
out=$("${RUN[@]}" --rm --read-only $IMG touch /x 2>&1); has "--read-only" "Read-only file system" "$out"
mkdir -p "$T/data"
"${RUN[@]}" --rm -v "$T/data:/data" $IMG sh -c 'echo written > /data/f' >/dev/null 2>&1
check "-v HOSTDIR:/data" "written" "$(cat "$T/data/f" 2>/dev/null)"
check "default seccomp profile: unshare fails" "Seccomp:	2 blocked" \
  "$("${RUN[@]}" --rm $IMG sh -c 'grep ^Seccomp: /proc/self/status; unshare -u true 2>/dev/null && echo allowed || echo blocked' | tr '\n' ' ' | sed 's/ $//')"
# Rootful only: exec -it, and pause/unpause (rootless podman has no cgroup here to freeze).
rootful_checks() {
  has "exec -it: a pty" "/dev/pts/" "$(script -qec "${P[*]} exec -it $1 tty" /dev/null 2>&1)"
  "${P[@]}" pause "$1" >/dev/null; check "pause" "paused" "$("${P[@]}" inspect -f '{{.State.Status}}' "$1")"
  "${P[@]}" unpause "$1" >/dev/null; check "unpause" "running" "$("${P[@]}" inspect -f '{{.State.Status}}' "$1")"
}
podman_common_checks rootful_checks
id=$("${RUN[@]}" -d $IMG sh -c 'trap "" TERM; while :; do sleep 0.1; done')
"${P[@]}" stop -t 1 "$id" >/dev/null 2>&1; check "stop -t 1: SIGKILL after the grace period" "137" "$("${P[@]}" inspect -f '{{.State.ExitCode}}' "$id")"
"${P[@]}" rm -f "$id" >/dev/null
id=$("${RUN[@]}" -d $IMG sleep 100)
"${P[@]}" rm -f -t 0 "$id" >/dev/null; check "rm -f of a running container" "" "$("${P[@]}" ps -aq)"
# A user namespace (--uidmap): root inside is host 100000; cgroup2 cannot be mounted from a user
# namespace without its own cgroup namespace, so /sys/fs/cgroup is a bind of the hierarchy.
UM=(--uidmap 0:100000:65536 --gidmap 0:100000:65536)
check "--uidmap: mapped root, /sys/fs/cgroup bound" "0 100000 65536|0|cgroup2" \
  "$("${RUN[@]}" --rm "${UM[@]}" $IMG sh -c 'tr -s " " < /proc/self/uid_map | sed "s/^ //"; id -u; awk "\$5 == \"/sys/fs/cgroup\" {print \$9}" /proc/self/mountinfo' | paste -sd'|')"
id=$("${RUN[@]}" -d "${UM[@]}" $IMG sleep 100)
check "--uidmap: exec joins the user namespace" "0 100000 65536" \
  "$("${P[@]}" exec "$id" sh -c 'tr -s " " < /proc/self/uid_map | sed "s/^ //"')"
# stop, then rm: `rm -f -t 0` races podman's own cleanup process on the shm mount (a known
# podman flake, "unlinkat .../userdata/shm: device or resource busy", seen here too).
"${P[@]}" stop -t 0 "$id" >/dev/null; "${P[@]}" rm "$id" >/dev/null

# A pod with --uidmap: its containers join the infra container's user namespace by path.
"${P[@]}" pod create --name onggi-pod --cgroup-parent "$PARENT/pod" "${UM[@]}" --network none >/dev/null 2>&1
check "--uidmap pod: a container joins the pod's user namespace" "0| 0 100000 65536" \
  "$("${RUN[@]}" --rm --pod onggi-pod $IMG sh -c 'id -u; tr -s " " < /proc/self/uid_map' 2>&1 | paste -sd'|')"
"${P[@]}" pod rm -f -t 0 onggi-pod >/dev/null 2>&1
# podman 4.3 leaves the pod's own cgroup (PARENT/pod/<pod id>) here, with runc too; the
# containers' cgroups below it are onggi's to remove.
check "--uidmap pod: container cgroups removed" "" "$(find "$v2$PARENT/pod" -mindepth 2 -type d 2>/dev/null)"
find "$v2$PARENT/pod" -depth -type d -exec rmdir {} + 2>/dev/null

# A failing create: onggi's message reaches podman.
out=$("${RUN[@]}" --rm --ulimit nofile=99999999:99999999 $IMG true 2>&1)
has "onggi's error reaches podman" "RLIMIT_NOFILE" "$out"

# Nothing left: no container cgroup, no onggi state.
left=$(find "$v2$PARENT" -mindepth 1 -type d 2>/dev/null)
check "no cgroups left" "" "$left"
echo "1..$n"
exit $fail
