#!/bin/bash
# make e2e-docker: a private dockerd (Debian's docker.io 20.10) over a private containerd runs
# containers with `--runtime onggi`, as a Docker learner types them. Run it in a private network
# and mount namespace (`unshare -n -m`, as the Makefile does): docker0, veths and iptables rules
# live and die there, and /run is a private tmpfs for the shims' sockets.
#
# RUNTIMES (default "onggi") names the runtimes each check runs with. With "onggi runc" every
# check also runs on runc, so a difference between them is a finding. On a hybrid host keep it
# onggi-only: runc would make cgroups in the v1 hierarchies there, and they are not ours.
# DOCKER_V2_CHECKS=1 adds the checks that need a pure cgroup v2 host with every controller
# (memory, pids, cpu limits, update, stats): make e2e-docker-v2 runs them in the guest.
# CGROUP_PARENT overrides the cgroup parent (the guest's job cgroup holds processes, so no
# controller can be enabled below it: the guest run uses a top-level one).
#
# usage: tests/e2e/docker.sh /abs/path/to/onggi /abs/path/to/busybox-rootfs
set -uo pipefail
ONGGI=${1:?usage: docker.sh ONGGI ROOTFS}; ROOTFS=${2:?usage: docker.sh ONGGI ROOTFS}
RUNTIMES=${RUNTIMES:-onggi}
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
  { echo "docker.sh: run me in a private network namespace (make e2e-docker)"; exit 2; }
T=$(mktemp -d "${TMPBASE:-/tmp}/onggi-e2e-docker.XXXXXX")
SOCK=$T/containerd.sock
# Below the caller's own cgroup (the deepest of its v1 and v2 paths: on a hybrid host the
# others are its prefixes).
own=$(cut -d: -f3 /proc/self/cgroup | awk '{ print length, $0 }' | sort -n | tail -1 | cut -d' ' -f2)
PARENT=${CGROUP_PARENT:-"${own%/}/onggi-e2e-docker-$$"}
v2=$(awk '$9 == "cgroup2" { print $5 }' /proc/self/mountinfo | tail -1)
fail=0; n=0
source "$(dirname "$0")/lib.sh"

ip link set lo up
mount -t tmpfs -o mode=755 tmpfs /run
containerd_config "$T/config.toml" "$T/containerd-root" "/run/containerd-e2e" "$SOCK"
containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
cat > "$T/daemon.json" <<J
{
  "runtimes": {"onggi": {"path": "$ONGGI"}},
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "cgroup-parent": "$PARENT",
  "storage-driver": "overlay2"
}
J
D=(/usr/bin/docker -H "unix://$T/docker.sock")
cleanup() {
  local ids
  ids=$("${D[@]}" ps -aq 2>/dev/null)
  [ -n "$ids" ] && "${D[@]}" rm -f $ids >/dev/null 2>&1
  [ -f "$T/docker.pid" ] && kill "$(cat "$T/docker.pid")" 2>/dev/null
  for _ in $(seq 100); do [ -f "$T/docker.pid" ] || break; sleep 0.1; done
  kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
  pkill -f "containerd-shim-runc-v2 -namespace moby -address $SOCK" 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for h in /sys/fs/cgroup/*/ "$v2/"; do
    [ -d "$h$PARENT" ] && find "$h$PARENT" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
dockerd --data-root "$T/data" --exec-root /run/docker-e2e --pidfile "$T/docker.pid" \
  -H "unix://$T/docker.sock" --containerd "$SOCK" --config-file "$T/daemon.json" \
  >"$T/dockerd.log" 2>&1 &
for _ in $(seq 300); do "${D[@]}" info >/dev/null 2>&1 && break; sleep 0.1; done
"${D[@]}" info >/dev/null 2>&1 || { echo "dockerd did not start:"; tail "$T/dockerd.log"; exit 2; }

# Images from the busybox rootfs (no registry): a plain one, and one with ENTRYPOINT + CMD.
tar -C "$ROOTFS" -c . | "${D[@]}" import --change 'CMD ["sh"]' \
  --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - e2e/busybox >/dev/null
tar -C "$ROOTFS" -c . | "${D[@]}" import --change 'ENTRYPOINT ["echo", "ep"]' \
  --change 'CMD ["from-cmd"]' --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - e2e/ep >/dev/null
IMG=e2e/busybox

inspect() { "${D[@]}" inspect -f "$1" "$2" 2>&1; }
wait_until() { # wait_until SECONDS CMD...: polls CMD until it succeeds
  local i; for i in $(seq $(($1 * 10))); do "${@:2}" && return 0; sleep 0.1; done; return 1
}

# One round of checks with runtime $RT.
checks() {
  local R=("${D[@]}" run --runtime "$RT") out rc id id2 v
  check "$RT: run --rm echo" hello "$("${R[@]}" --rm $IMG echo hello 2>&1)"
  "${R[@]}" --rm $IMG sh -c 'exit 3'; check "$RT: exit code" 3 $?
  "${R[@]}" --rm $IMG /no/such >/dev/null 2>&1; check "$RT: a missing binary is 127" 127 $?
  "${R[@]}" --rm $IMG /etc/passwd >/dev/null 2>&1; check "$RT: a non-executable one is 126" 126 $?
  check "$RT: --entrypoint" "x" "$("${R[@]}" --rm --entrypoint echo $IMG x)"
  check "$RT: ENTRYPOINT + CMD" "ep from-cmd" "$("${R[@]}" --rm e2e/ep)"
  check "$RT: CMD override" "ep other" "$("${R[@]}" --rm e2e/ep other)"
  printf 'B=2\n' > "$T/env"
  check "$RT: -e and --env-file" "1 2" "$("${R[@]}" --rm -e A=1 --env-file "$T/env" $IMG sh -c 'echo $A $B')"
  check "$RT: --hostname, -w" "box /tmp" "$("${R[@]}" --rm --hostname box -w /tmp $IMG sh -c 'echo $(hostname) $(pwd)')"
  check "$RT: run -i" "piped" "$(echo piped | "${R[@]}" --rm -i $IMG cat)"
  out=$(script -qec "${R[*]} --rm -it $IMG sh -c 'tty; exit 5'" /dev/null 2>&1); rc=$?
  has "$RT: run -it: a pty" "/dev/pts/0" "$out"; check "$RT: run -it exit status" 5 $rc
  id=$("${D[@]}" create --runtime "$RT" -it $IMG sh -c 'exit 4')
  "${D[@]}" start "$id" >/dev/null
  check "$RT: create -it, start" 4 "$("${D[@]}" wait "$id")"
  "${D[@]}" rm "$id" >/dev/null
  id=$("${R[@]}" -d $IMG sh -c 'sleep 2; echo attached')
  check "$RT: attach" attached "$("${D[@]}" attach "$id" 2>&1 | tr -d '\r')"
  "${D[@]}" rm -f "$id" >/dev/null
  id=$("${R[@]}" -d $IMG sh -c 'echo one; sleep 0.3; echo two')
  check "$RT: logs -f" "one two" "$("${D[@]}" logs -f "$id" | tr '\n' ' ' | sed 's/ $//')"
  "${D[@]}" rm -f "$id" >/dev/null

  id=$("${R[@]}" -d -e FROM=run $IMG sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
  check "$RT: exec sees the env" run "$("${D[@]}" exec "$id" sh -c 'echo $FROM')"
  check "$RT: exec -e -u -w" "x 1000 /tmp" "$("${D[@]}" exec -e X=x -u 1000 -w /tmp "$id" sh -c 'echo $X $(id -u) $(pwd)')"
  "${D[@]}" exec "$id" sh -c 'exit 7'; check "$RT: exec exit status" 7 $?
  check "$RT: exec -i" piped "$(echo piped | "${D[@]}" exec -i "$id" cat)"
  out=$(script -qec "${D[*]} exec -it $id sh -c 'tty; exit 6'" /dev/null 2>&1); rc=$?
  has "$RT: exec -it: a pty" "/dev/pts/" "$out"; check "$RT: exec -it exit status" 6 $rc
  "${D[@]}" exec -d "$id" sh -c 'echo detached > /tmp/d'
  wait_until 5 "${D[@]}" exec "$id" test -s /tmp/d; check "$RT: exec -d" 0 $?
  has "$RT: top" "sleep" "$("${D[@]}" top "$id" 2>&1)"
  "${D[@]}" pause "$id" >/dev/null; check "$RT: pause" true "$(inspect '{{.State.Paused}}' "$id")"
  "${D[@]}" unpause "$id" >/dev/null; check "$RT: unpause" false "$(inspect '{{.State.Paused}}' "$id")"
  check "$RT: exec after unpause" again "$("${D[@]}" exec "$id" echo again)"
  "${D[@]}" cp "$T/env" "$id:/tmp/in"; check "$RT: cp in" "B=2" "$("${D[@]}" exec "$id" cat /tmp/in)"
  "${D[@]}" cp "$id:/tmp/in" "$T/out"; check "$RT: cp out" "B=2" "$(cat "$T/out")"
  "${D[@]}" commit "$id" e2e/committed >/dev/null
  check "$RT: commit of a running container" "B=2" "$("${R[@]}" --rm e2e/committed cat /tmp/in)"
  "${D[@]}" rmi e2e/committed >/dev/null
  "${D[@]}" stop -t 2 "$id" >/dev/null
  check "$RT: stop with a TERM trap" 0 "$(inspect '{{.State.ExitCode}}' "$id")"
  "${D[@]}" restart -t 1 "$id" >/dev/null
  check "$RT: restart" true "$(inspect '{{.State.Running}}' "$id")"
  "${D[@]}" rm -f "$id" >/dev/null; check "$RT: rm -f" "" "$("${D[@]}" ps -aq --filter id="$id")"

  id=$("${R[@]}" -d $IMG sleep 600)
  "${D[@]}" stop -t 2 "$id" >/dev/null
  check "$RT: stop -t 2 (SIGKILL after the grace period)" 137 "$(inspect '{{.State.ExitCode}}' "$id")"
  "${D[@]}" rm "$id" >/dev/null
  id=$("${R[@]}" -d $IMG sh -c 'trap "exit 9" HUP; while :; do sleep 0.1; done')
  sleep 0.3
  "${D[@]}" kill -s HUP "$id" >/dev/null; "${D[@]}" wait "$id" >/dev/null
  check "$RT: kill -s HUP" 9 "$(inspect '{{.State.ExitCode}}' "$id")"
  "${D[@]}" rm "$id" >/dev/null
  id=$("${R[@]}" -d $IMG sleep 600)
  "${D[@]}" kill "$id" >/dev/null; "${D[@]}" wait "$id" >/dev/null
  check "$RT: kill" 137 "$(inspect '{{.State.ExitCode}}' "$id")"
  "${D[@]}" rm "$id" >/dev/null
  id=$("${R[@]}" -d --restart on-failure:2 $IMG sh -c 'exit 1')
  wait_until 30 sh -c "[ \"\$(${D[*]} inspect -f '{{.RestartCount}} {{.State.Running}}' $id)\" = '2 false' ]"
  check "$RT: --restart on-failure:2" "2 false" "$(inspect '{{.RestartCount}} {{.State.Running}}' "$id")"
  "${D[@]}" rm -f "$id" >/dev/null
  has "$RT: --init" "docker-init" "$("${R[@]}" --rm --init $IMG cat /proc/1/cmdline | tr '\0' ' ')"
  id=$("${R[@]}" -d --health-cmd true --health-interval 1s $IMG sleep 600)
  wait_until 30 sh -c "[ \"\$(${D[*]} inspect -f '{{.State.Health.Status}}' $id)\" = healthy ]"
  check "$RT: --health-cmd" healthy "$(inspect '{{.State.Health.Status}}' "$id")"
  "${D[@]}" rm -f "$id" >/dev/null

  mkdir -p "$T/vol" && echo host > "$T/vol/f"
  check "$RT: -v HOSTDIR" "host made" "$("${R[@]}" --rm -v "$T/vol:/data" $IMG sh -c 'cat /data/f; echo made > /data/g; cat /data/g' | tr '\n' ' ' | sed 's/ $//')"
  check "$RT: the host sees the write" made "$(cat "$T/vol/g")"
  "${R[@]}" --rm -v "$T/vol:/data:ro" $IMG touch /data/h 2>/dev/null
  check "$RT: -v :ro refuses writes" "1 no" "$? $([ -e "$T/vol/h" ] && echo yes || echo no)"
  "${R[@]}" --rm -v "e2e-vol-$RT:/v" $IMG sh -c 'echo kept > /v/k'
  check "$RT: a named volume" kept "$("${R[@]}" --rm -v "e2e-vol-$RT:/v" $IMG cat /v/k)"
  "${D[@]}" volume rm "e2e-vol-$RT" >/dev/null
  check "$RT: --read-only + --tmpfs" "1 ok" "$("${R[@]}" --rm --read-only --tmpfs /scratch $IMG sh -c 'touch /x 2>/dev/null; echo $? $(touch /scratch/y && echo ok)')"
  check "$RT: --user 1000:1000" "1000 1000" "$("${R[@]}" --rm --user 1000:1000 $IMG sh -c 'echo $(id -u) $(id -g)')"
  check "$RT: --ulimit" "1024 2048" "$("${R[@]}" --rm --ulimit nofile=1024:2048 $IMG sh -c 'echo $(ulimit -n) $(ulimit -Hn)')"
  check "$RT: --cap-drop ALL" "0000000000000000" "$("${R[@]}" --rm --cap-drop ALL $IMG sh -c 'grep CapEff /proc/self/status | cut -f2')"
  check "$RT: no-new-privileges" 1 "$("${R[@]}" --rm --security-opt no-new-privileges $IMG sh -c 'grep NoNewPrivs /proc/self/status | cut -f2')"
  check "$RT: the default seccomp profile" "refused" "$("${R[@]}" --rm $IMG sh -c 'unshare -U true 2>/dev/null && echo allowed || echo refused')"
  check "$RT: seccomp=unconfined" "allowed" "$("${R[@]}" --rm --security-opt seccomp=unconfined $IMG sh -c 'unshare -U true 2>/dev/null && echo allowed || echo refused')"
  local bnd full
  bnd=$(grep CapBnd /proc/self/status | cut -f2)
  full=$(printf '%016x' $(( (1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1 )))
  if [ "$bnd" = "$full" ]; then
    # Every capability Docker 20.10 knows (0 … CAP_CHECKPOINT_RESTORE), and no seccomp.
    v=$("${R[@]}" --rm --privileged $IMG sh -c 'echo $(grep CapEff /proc/self/status | cut -f2) $(grep -c "^Seccomp:.*2" /proc/self/status)')
    check "$RT: --privileged" "3fffffffff 0" "$(printf '%x' $(( 0x${v% *} & 0x3fffffffff ))) ${v#* }"
  else
    # A host that withholds a capability from every process (this one: CAP_SYS_RESOURCE):
    # runc fails with a bare "unable to apply caps: operation not permitted".
    has "$RT: --privileged on a host without every capability: one clear line" \
      "bounding set lacks it" "$("${R[@]}" --rm --privileged $IMG true 2>&1)"
  fi
  check "$RT: --pid host" "$(readlink /proc/self/ns/pid)" "$("${R[@]}" --rm --pid host $IMG readlink /proc/self/ns/pid 2>&1)"
  check "$RT: --cgroupns private" "0::/" "$("${R[@]}" --rm --cgroupns private $IMG sh -c 'grep "^0::" /proc/self/cgroup')"
  check "$RT: --network none" "lo" "$("${R[@]}" --rm --network none $IMG ls /sys/class/net)"
  has "$RT: --network host" "docker0" "$("${R[@]}" --rm --network host $IMG ls /sys/class/net)"
  id=$("${R[@]}" -d -p 8080:80 $IMG sh -c 'echo served > /www; httpd -f -h / -p 80')
  wait_until 10 wget -qO /dev/null http://127.0.0.1:8080/www
  check "$RT: -p 8080:80 serves busybox httpd" served "$(wget -qO- http://127.0.0.1:8080/www 2>&1)"
  check "$RT: --network container:X" served "$("${R[@]}" --rm --network "container:$id" $IMG wget -qO- http://127.0.0.1/www)"
  "${D[@]}" rm -f "$id" >/dev/null
  "${D[@]}" network create "e2e-net-$RT" >/dev/null
  id=$("${R[@]}" -d --network "e2e-net-$RT" --name "server-$RT" $IMG sh -c 'echo by-name > /www; httpd -f -h / -p 80')
  v=$("${R[@]}" --rm --network "e2e-net-$RT" $IMG sh -c "for i in \$(seq 50); do wget -qO- http://server-$RT/www 2>/dev/null && exit; sleep 0.1; done")
  check "$RT: a user network: reached by name" by-name "$v"
  "${D[@]}" rm -f "$id" >/dev/null; "${D[@]}" network rm "e2e-net-$RT" >/dev/null
  if [ "${DOCKER_V2_CHECKS:-0}" = 1 ]; then
    v2_checks
  elif ! grep -qw memory "$v2/cgroup.controllers"; then
    # A hybrid host: its v2 hierarchy has no memory controller, and onggi never touches v1.
    has "$RT: --memory without a v2 memory controller: one clear line" \
      "needs the memory controller" "$("${R[@]}" --rm --memory 64m $IMG true 2>&1)"
  fi
  check "$RT: no container left" "" "$("${D[@]}" ps -aq)"
}

# Limits, update and stats: on a host whose cgroup v2 hierarchy has every controller.
v2_checks() {
  local R=("${D[@]}" run --runtime "$RT") id
  check "$RT: --memory 64m seen inside" 67108864 "$("${R[@]}" --rm --memory 64m $IMG cat /sys/fs/cgroup/memory.max)"
  id=$("${R[@]}" -d --memory 32m --memory-swap 32m $IMG sh -c 'dd if=/dev/zero bs=1M count=200 | tail > /dev/null')
  "${D[@]}" wait "$id" >/dev/null
  check "$RT: an OOM kill" "137 true" "$(inspect '{{.State.ExitCode}} {{.State.OOMKilled}}' "$id")"
  "${D[@]}" rm "$id" >/dev/null
  check "$RT: --pids-limit 20" 20 "$("${R[@]}" --rm --pids-limit 20 $IMG cat /sys/fs/cgroup/pids.max)"
  check "$RT: --cpus 0.5" "50000 100000" "$("${R[@]}" --rm --cpus 0.5 $IMG cat /sys/fs/cgroup/cpu.max)"
  id=$("${R[@]}" -d --memory 64m $IMG sleep 600)
  "${D[@]}" update --memory 96m --memory-swap 96m "$id" >/dev/null
  check "$RT: update --memory 96m" "100663296 true" "$("${D[@]}" exec "$id" cat /sys/fs/cgroup/memory.max) $(inspect '{{.State.Running}}' "$id")"
  "${D[@]}" update --restart always "$id" >/dev/null
  check "$RT: update --restart always keeps it running" "true 100663296" "$(inspect '{{.State.Running}}' "$id") $("${D[@]}" exec "$id" cat /sys/fs/cgroup/memory.max)"
  has "$RT: stats --no-stream" "96MiB" "$("${D[@]}" stats --no-stream --format '{{.MemUsage}}' "$id")"
  "${D[@]}" rm -f "$id" >/dev/null
}

for RT in $RUNTIMES; do checks; done
echo "1..$n"
cleanup; trap - EXIT
left=$(grep -c "onggi-e2e-docker" /proc/self/mountinfo)
check "no mount left" 0 "$left"
left=$(find /sys/fs/cgroup/ -maxdepth 12 -type d -path "*$PARENT*" 2>/dev/null | wc -l)
check "no cgroup left" 0 "$left"
check "no shim left" "" "$(pgrep -f "containerd-shim-runc-v2 -namespace moby -address $SOCK")"
exit $fail
