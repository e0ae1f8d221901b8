#!/bin/bash
# make e2e-containerd: a private containerd 1.6 (io.containerd.runc.v2 shim) runs containers
# on onggi through `ctr run --runc-binary`. The image is an OCI layout built with umoci from the
# busybox rootfs; everything (daemon, mounts, cgroups) is removed at the end.
# usage: tests/e2e/containerd.sh /abs/path/to/onggi /abs/path/to/busybox-rootfs
set -uo pipefail
ONGGI=${1:?usage: containerd.sh ONGGI ROOTFS}; ROOTFS=${2:?usage: containerd.sh ONGGI ROOTFS}
T=$(mktemp -d /tmp/onggi-e2e-ctr.XXXXXX)
v2=$(awk '$9 == "cgroup2" { print $5 }' /proc/self/mountinfo | tail -1)
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
PARENT="${own%/}/onggi-e2e-ctr-$$"
SOCK=$T/containerd.sock
fail=0; n=0

source "$(dirname "$0")/lib.sh"
containerd_config "$T/config.toml" "$T/root" "$T/state" "$SOCK"
containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
cleanup() {
  for id in $(ctr -a "$SOCK" -n e2e tasks ls -q 2>/dev/null); do
    ctr -a "$SOCK" -n e2e tasks kill -s SIGKILL "$id" >/dev/null 2>&1
    ctr -a "$SOCK" -n e2e tasks rm -f "$id" >/dev/null 2>&1
  done
  for id in $(ctr -a "$SOCK" -n e2e containers ls -q 2>/dev/null); do
    ctr -a "$SOCK" -n e2e containers rm "$id" >/dev/null 2>&1
  done
  kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
  pkill -f "containerd-shim-runc-v2 -namespace e2e -address $SOCK" 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  [ -d "$v2$PARENT" ] && find "$v2$PARENT" -depth -type d -exec rmdir {} + 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "containerd did not start:"; tail "$T/containerd.log"; exit 2; }


# The image: an OCI layout (umoci), imported as localhost/onggi-busybox:latest.
L=$T/layout
{ umoci init --layout "$L" && umoci new --image "$L:latest" &&
  umoci insert --image "$L:latest" "$ROOTFS" / &&
  umoci config --image "$L:latest" --config.cmd sh \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; } >/dev/null 2>&1 ||
  { echo "umoci could not build the image"; exit 2; }
tar -C "$L" -cf "$T/image.tar" .
C=(ctr -a "$SOCK" -n e2e)
"${C[@]}" images import --base-name localhost/onggi-busybox "$T/image.tar" >/dev/null ||
  { echo "ctr images import failed"; exit 2; }
IMG=localhost/onggi-busybox:latest
# ctr asks for cpu.shares 1024 by default; this host's v2 hierarchy has no cpu controller.
R=(--runc-binary "$ONGGI" --runc-root "$T/onggi" --cpu-shares 0)

check "run --rm echo" "hi" "$("${C[@]}" run --rm "${R[@]}" --cgroup "$PARENT/c1" $IMG c1 echo hi 2>&1)"
"${C[@]}" run --rm "${R[@]}" --cgroup "$PARENT/c2" $IMG c2 sh -c 'exit 3' >/dev/null 2>&1
check "exit status" 3 $?
out=$(printf 'tty; exit 5\n' | script -qec "${C[*]} run --rm -t ${R[*]} --cgroup $PARENT/c3 $IMG c3 sh" /dev/null 2>&1); rc=$?
has "run -t: a pty" "/dev/pts/0" "$out"; check "run -t exit status" 5 $rc

"${C[@]}" run -d "${R[@]}" --cgroup "$PARENT/d1" $IMG d1 sh -c 'while :; do sleep 0.1; done' >/dev/null
check "task exec" "in" "$("${C[@]}" tasks exec --exec-id e1 d1 echo in 2>&1)"
"${C[@]}" tasks exec --exec-id e2 d1 sh -c 'exit 7' >/dev/null 2>&1; check "task exec exit status" 7 $?
out=$(script -qec "${C[*]} tasks exec -t --exec-id e3 d1 tty" /dev/null 2>&1)
has "task exec -t: a pty" "/dev/pts/" "$out"
pid=$("${C[@]}" tasks ls | awk '$1 == "d1" { print $2 }')
has "task ps lists the init" "$pid" "$("${C[@]}" tasks ps d1 2>&1)"
check "init in its cgroup" "0::$PARENT/d1" "$(grep '^0::' /proc/$pid/cgroup)"
"${C[@]}" tasks pause d1; check "pause" PAUSED "$("${C[@]}" tasks ls | awk '$1 == "d1" { print $3 }')"
"${C[@]}" tasks resume d1; check "resume" RUNNING "$("${C[@]}" tasks ls | awk '$1 == "d1" { print $3 }')"
"${C[@]}" tasks kill -s SIGKILL d1
for _ in $(seq 100); do [ "$("${C[@]}" tasks ls | awk '$1 == "d1" { print $3 }')" = STOPPED ] && break; sleep 0.05; done
check "kill -s SIGKILL" STOPPED "$("${C[@]}" tasks ls | awk '$1 == "d1" { print $3 }')"
"${C[@]}" tasks rm d1 >/dev/null; "${C[@]}" containers rm d1
check "task rm removes the cgroup" "no" "$([ -d "$v2$PARENT/d1" ] && echo yes || echo no)"
out=$("${C[@]}" run --rm "${R[@]}" --cgroup "$PARENT/f1" $IMG f1 /no/such/binary 2>&1)
has "onggi's error reaches ctr" "no such file or directory" "$out"
"${C[@]}" containers rm f1 >/dev/null 2>&1

check "no onggi state left" "" "$(ls "$T/onggi/e2e" 2>/dev/null | grep -v "^@")"
check "no cgroups left" "" "$(find "$v2$PARENT" -mindepth 1 -type d 2>/dev/null)"
echo "1..$n"
exit $fail
