#!/bin/bash
# make e2e-checkpoint, second half: the managers' own checkpoint and restore on onggi, in the
# systemd guest (CRIU's modules loaded by checkpoint.sh first). Rootful podman 4.3 (`podman
# container checkpoint/restore`, in place and exported to a new container) and containerd 1.6
# (`ctr containers checkpoint --task`, then `ctr containers restore --live`). Each restored
# container proves its memory came back: a counter that goes on from the checkpoint, not from 1.
# Usage: checkpoint-managers.sh ONGGI ROOTFS
set -u
O=$1 ROOTFS=$2
. "$(dirname "$0")/lib.sh"
fail=0 n=0
modprobe -a overlay 2>/dev/null
T=$(mktemp -d /var/tmp/onggi-cr-m.XXXXXX)
COUNT='i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done'
# lines FILE N: wait (up to 20 s) until FILE has at least N lines.
lines() { for _ in $(seq 200); do [ "$({ wc -l < "$1"; } 2>/dev/null || echo 0)" -ge "$2" ] && return 0; sleep 0.1; done; return 1; }

# --- podman: its storage and config in $T, the image imported from the busybox rootfs.
export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$T/storage" "$T/run" > "$CONTAINERS_STORAGE_CONF"
: > "$CONTAINERS_REGISTRIES_CONF"
cat > "$CONTAINERS_CONF" <<C
[containers]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/events.log"
runtime = "onggi"
runtime_supports_json = ["crun", "runc", "onggi"]
[engine.runtimes]
onggi = ["$O"]
C
P=(podman --root "$T/storage" --runroot "$T/run" --runtime "$O")
SOCK=$T/containerd.sock C=(ctr -a "$SOCK" -n e2e)
cleanup() {
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  for id in $("${C[@]}" tasks ls -q 2>/dev/null); do "${C[@]}" tasks rm -f "$id" >/dev/null 2>&1; done
  for id in $("${C[@]}" containers ls -q 2>/dev/null); do "${C[@]}" containers rm "$id" >/dev/null 2>&1; done
  [ -n "${CPID:-}" ] && { kill "$CPID"; wait "$CPID"; } 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
# first_after LIST N: the number that follows the first N in the list (stdin).
first_after() { awk -v n="$1" 'seen { print; exit } $1 == n { seen = 1 }'; }

tar -C "$ROOTFS" -cf "$T/rootfs.tar" . && "${P[@]}" import -q "$T/rootfs.tar" localhost/bb >/dev/null ||
  { echo "podman import failed"; exit 2; }
"${P[@]}" run -d --name pc localhost/bb sh -c "$COUNT" >/dev/null
check "podman run -d" running "$("${P[@]}" inspect -f '{{.State.Status}}' pc)"
for _ in $(seq 100); do [ "$("${P[@]}" logs pc 2>/dev/null | wc -l)" -ge 5 ] && break; sleep 0.2; done
out=$("${P[@]}" container checkpoint pc 2>&1)
check "podman container checkpoint" pc "$out"
check "podman: checkpointed is exited" exited "$("${P[@]}" inspect -f '{{.State.Status}}' pc)"
last=$("${P[@]}" logs pc | tail -n1)
out=$("${P[@]}" container restore pc 2>&1)
check "podman container restore" pc "$out"
check "podman: restored is running" running "$("${P[@]}" inspect -f '{{.State.Status}}' pc)"
for _ in $(seq 100); do [ -n "$("${P[@]}" logs pc | first_after "$last")" ] && break; sleep 0.2; done
check "podman: the count goes on from the checkpoint" $((last + 1)) "$("${P[@]}" logs pc | first_after "$last")"
check "podman: the count never restarted" 1 "$("${P[@]}" logs pc | grep -cx 1)"
check "podman: exec into the restored container" sh "$("${P[@]}" exec pc cat /proc/1/comm)"
"${P[@]}" container checkpoint --export "$T/pc.tar.gz" pc >/dev/null
check "podman container checkpoint --export" 0 $?
out=$("${P[@]}" container restore --import "$T/pc.tar.gz" --name pc2 2>&1)
check "podman container restore --import --name (a new container, a new rootfs)" 0 $?
for _ in $(seq 100); do [ "$("${P[@]}" logs pc2 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.2; done
first=$("${P[@]}" logs pc2 | head -n1)
check "podman: the imported container counts on (not from 1)" yes "$([ "${first:-0}" -gt 1 ] && echo yes)"
"${P[@]}" rm -af -t 0 >/dev/null 2>&1

# --- containerd: a private daemon, the image an OCI layout made by umoci (from a copy on the
# guest's tmpfs: umoci lists xattrs, which the virtiofs root refuses).
containerd_config "$T/config.toml" "$T/croot" "$T/cstate" "$SOCK"
containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
mkdir -p "$T/rootfs" "$T/out" && tar -C "$T/rootfs" -xf "$T/rootfs.tar"
L=$T/layout
{ umoci init --layout "$L" && umoci new --image "$L:latest" && umoci insert --image "$L:latest" "$T/rootfs" / &&
  umoci config --image "$L:latest" --config.cmd sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin &&
  tar -C "$L" -cf "$T/image.tar" . && "${C[@]}" images import --base-name localhost/bb "$T/image.tar"; } >/dev/null 2>&1 ||
  { echo "the containerd image could not be made"; exit 2; }
"${C[@]}" run -d --runc-binary "$O" --runc-root "$T/onggi" --mount "type=bind,src=$T/out,dst=/out,options=rbind:rw" \
  localhost/bb:latest k1 sh -c 'i=0; while :; do i=$((i+1)); echo $i >> /out/log; sleep 0.2; done' >/dev/null
lines "$T/out/log" 5
"${C[@]}" containers checkpoint --task k1 localhost/k1-checkpoint:1 >/dev/null
check "ctr containers checkpoint --task" 0 $?
lines "$T/out/log" $(( $(wc -l < "$T/out/log") + 3 ))
"${C[@]}" tasks kill -s SIGKILL k1 && sleep 0.5 && "${C[@]}" tasks rm -f k1 >/dev/null && "${C[@]}" containers rm k1
killed=$(tail -n1 "$T/out/log")
: | "${C[@]}" containers restore --live k1 localhost/k1-checkpoint:1 > "$T/restore.out" 2>&1
check "ctr containers restore --live" 0 $?
check "ctr: the restored task runs" RUNNING "$("${C[@]}" tasks ls | awk '$1 == "k1" {print $3}')"
lines "$T/out/log" $(( $(wc -l < "$T/out/log") + 3 ))
next=$(first_after "$killed" < "$T/out/log")
check "ctr: the count goes on from the checkpoint (before the kill, not from 1)" yes \
  "$([ "${next:-0}" -gt 1 ] && [ "$next" -le "$killed" ] && echo yes)"
"${C[@]}" tasks kill -s SIGKILL k1 >/dev/null 2>&1; sleep 0.5; "${C[@]}" tasks rm -f k1 >/dev/null 2>&1
check "nothing left: no onggi container" "" "$($O --root "$T/onggi/e2e" list -q 2>/dev/null)"
echo "1..$n"
exit $fail
