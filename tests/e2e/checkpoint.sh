#!/bin/bash
# make e2e-checkpoint: onggi checkpoint and restore with CRIU, in the systemd guest (a pure
# cgroup v2 hierarchy; its job is not chrooted, which CRIU needs). What each check proves is
# what the restored container itself shows: a counter that continues from where it stopped
# (the memory came back), its own cgroup with the config's limit, its console socket, an open
# TCP connection. Usage: checkpoint.sh ONGGI ROOTFS
set -u
O=$1 ROOTFS=$2
. "$(dirname "$0")/lib.sh"
fail=0 n=0

modprobe -a tun veth inet_diag tcp_diag udp_diag unix_diag netlink_diag af_packet_diag \
  nfnetlink nf_tables 2>/dev/null
has "criu check" "Looks good" "$(criu check 2>&1)"

W=$(mktemp -d /var/tmp/onggi-cr.XXXXXX)
R="$O --root $W/state"
trap '$R list -q 2>/dev/null | while read -r c; do $R delete -f "$c"; done
  grep -o " $W[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null; rm -rf "$W"' EXIT
# bundle DIR OUT ARGS...: a bundle over the shared rootfs whose /out is the host's OUT.
bundle() {
  local dir=$1 out=$2; shift 2
  mkdir -p "$dir" "$out"
  $O spec -b "$dir" -t=false -v "$out:/out" --memory 64m -- "$@" || exit 1
  python3 - "$dir/config.json" "$ROOTFS" <<'P'
import json, sys
c = json.load(open(sys.argv[1])); c["root"]["path"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
P
}
# Managers give a container pipes for stdio (a host file or the host's /dev/null is outside
# the container's mounts: CRIU cannot dump it). A background pipeline gives them.
detached() { (: | "$@" 2>&1 | cat >> "$W/stdio.log") & }
# lines FILE N: wait (up to 20 s) until FILE has at least N lines.
lines() { for _ in $(seq 200); do [ "$({ wc -l < "$1"; } 2>/dev/null || echo 0)" -ge "$2" ] && return 0; sleep 0.1; done; return 1; }
status() { $R state "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || echo gone; }
pid_of() { $R state "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
COUNT='i=0; while :; do i=$((i+1)); echo $i >> /out/log; sleep 0.1; done'

# 1. A counter in memory: --leave-running, pre-dump + dump --parent-path, restore elsewhere.
bundle "$W/b1" "$W/out1" sh -c "$COUNT"
detached $R run -d c1 -b "$W/b1"
lines "$W/out1/log" 5
$R checkpoint --leave-running --image-path "$W/img-live" c1
check "checkpoint exits 0" 0 $?
n1=$(wc -l < "$W/out1/log")
lines "$W/out1/log" $((n1 + 3))
check "--leave-running: the container runs on" running "$(status c1)"
$R checkpoint --pre-dump --image-path "$W/pre" c1
check "pre-dump exits 0" 0 $?
check "pre-dump: the container runs on" running "$(status c1)"
$R checkpoint --image-path "$W/img" --parent-path ../pre c1
check "dump with --parent-path exits 0" 0 $?
has "the dump links its parent" "../pre" "$(readlink "$W/img/parent")"
check "after the dump the container is gone" gone "$(status c1)"
last=$(tail -n1 "$W/out1/log"); sleep 0.5
check "after the dump the counter stopped" "$last" "$(tail -n1 "$W/out1/log")"

bundle "$W/b2" "$W/out2" sh -c "$COUNT"
detached $R restore -d --image-path "$W/img" -b "$W/b2" --pid-file "$W/c2.pid" c2
lines "$W/out2/log" 3
check "restore: the counter continues from the dump" $((last + 1)) "$(head -n1 "$W/out2/log")"
check "restore: state running" running "$(status c2)"
check "restore: pid file, no newline" "$(pid_of c2)" "$(cat "$W/c2.pid")"
check "restore: the pid file has no newline" 0 "$(tail -c1 "$W/c2.pid" | wc -l)"
p=$(pid_of c2)
check "restore: the container's own cgroup" "0::/c2" "$(cat /proc/$p/cgroup)"
check "restore: the config's memory limit" 67108864 "$(cat /sys/fs/cgroup/c2/memory.max)"
check "restore: exec into it" "0::/" "$($R exec c2 cat /proc/self/cgroup)"
check "restore: pid 1 is the counter" "sh" "$($R exec c2 cat /proc/1/comm)"

bundle "$W/b3" "$W/out3" sh -c "$COUNT"
detached $R restore -d --image-path "$W/img-live" -b "$W/b3" c3
lines "$W/out3/log" 3
first=$(head -n1 "$W/out3/log")
check "restore of the --leave-running images continues its count (not from 1)" yes "$([ "$first" -gt 1 ] && echo yes)"

# 2. Bad input: one line, non-zero, nothing left behind.
out=$($R restore -d --image-path "$W/img" -b "$W/b2" c2 2>&1); rc=$?
check "restore over an existing id fails" 1 $rc
has "restore over an existing id: the error" "c2: container with that id exists already" "$out"
check "restore over an existing id: c2 runs on" running "$(status c2)"
out=$($R restore -d --image-path "$W/nothing" -b "$W/b2" c4 2>&1); rc=$?
check "restore from a missing image path fails" 1 $rc
check "restore from a missing image path: one line" 1 "$(printf '%s\n' "$out" | wc -l)"
has "restore from a missing image path: names it" "--image-path $W/nothing" "$out"
check "restore from a missing image path: no container" gone "$(status c4)"
cp -r "$W/img" "$W/bad"; : > "$W/bad/pstree.img"
out=$(: | $R restore -d --image-path "$W/bad" -b "$W/b2" c5 2>&1 | cat)
has "restore from a corrupt image: CRIU's reason and its log" "criu restore failed:" "$out"
has "restore from a corrupt image: the log path" "$W/bad/restore.log" "$out"
check "restore from a corrupt image: no container" gone "$(status c5)"
check "restore from a corrupt image: no cgroup" no "$([ -d /sys/fs/cgroup/c5 ] && echo yes || echo no)"
out=$($R checkpoint --image-path "$W/x" nosuch 2>&1); rc=$?
check "checkpoint of an unknown id fails" 1 $rc
has "checkpoint of an unknown id: the error" "nosuch: container does not exist" "$out"
$R checkpoint --help >/dev/null; check "checkpoint --help exits 0 (podman probes it)" 0 $?

# 3. In the foreground: restore waits and exits with the container's status.
bundle "$W/b6" "$W/out6" sh -c 'i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i >> /out/log; sleep 0.1; done; exit 7'
detached $R run -d c6 -b "$W/b6"
lines "$W/out6/log" 5
$R checkpoint --image-path "$W/img6" c6
: | $R restore --image-path "$W/img6" -b "$W/b6" c6 2>&1 | cat >> "$W/stdio.log"
check "foreground restore: the container's exit status" 7 "${PIPESTATUS[1]}"
check "foreground restore: the count went on to the end" 40 "$(tail -n1 "$W/out6/log")"
check "foreground restore: deleted after it exits" gone "$(status c6)"

# 4. A terminal: the restored pty master goes to --console-socket.
bundle "$W/b7" "$W/out7" sh -c 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'
python3 - "$W/b7/config.json" <<'P'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["terminal"] = True
json.dump(c, open(sys.argv[1], "w"))
P
# console SOCK OUT: receives one pty master, then copies what it reads to OUT.
console() {
  python3 - "$1" "$2" <<'P' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); _, fds, _, _ = socket.recv_fds(c, 1024, 1)
out = open(sys.argv[2], "ab", buffering=0)
while True:
    try: d = os.read(fds[0], 4096)
    except OSError: break
    if not d: break
    out.write(d)
P
  for _ in $(seq 50); do [ -S "$1" ] && return; sleep 0.1; done
}
console "$W/tty1.sock" "$W/tty1.out"
$R run -d --console-socket "$W/tty1.sock" -b "$W/b7" c7
lines "$W/tty1.out" 3
$R checkpoint --image-path "$W/img7" c7
check "checkpoint of a terminal container exits 0" 0 $?
last=$(grep -o 'tick [0-9]*' "$W/tty1.out" | tail -n1 | cut -d' ' -f2)
console "$W/tty2.sock" "$W/tty2.out"
$R restore -d --console-socket "$W/tty2.sock" --image-path "$W/img7" -b "$W/b7" c7
check "restore with a terminal exits 0" 0 $?
lines "$W/tty2.out" 2
has "restore: the console socket got the pty master, the ticks continue" "tick $((last + 1))" "$(cat "$W/tty2.out")"
$R delete -f c7

# 5. An open TCP connection on loopback, with --tcp-established.
bundle "$W/b8" "$W/out8" sh -c 'sleep 1000 | nc -l -p 5000 > /out/got & sleep 0.5; i=0; while :; do i=$((i+1)); echo "n$i"; sleep 0.1; done | nc 127.0.0.1 5000'
detached $R run -d c8 -b "$W/b8"
lines "$W/out8/got" 5
$R checkpoint --tcp-established --image-path "$W/img8" c8
check "checkpoint --tcp-established exits 0" 0 $?
last=$(tail -n1 "$W/out8/got")
detached $R restore -d --tcp-established --image-path "$W/img8" -b "$W/b8" c8
lines "$W/out8/got" $(( $(wc -l < "$W/out8/got") + 3 ))
has "restore --tcp-established: the same connection carries on" "n$(( ${last#n} + 1 ))" "$(cat "$W/out8/got")"

for c in c2 c3 c8; do $R delete -f $c; done
check "nothing left: no container" "" "$($R list -q)"
check "nothing left: no cgroup" "" "$(ls -d /sys/fs/cgroup/c[0-9]* 2>/dev/null)"
echo "1..$n"
exit $fail
