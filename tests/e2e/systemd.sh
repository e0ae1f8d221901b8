#!/bin/bash
# make e2e-systemd: the three managers in their systemd configurations drive onggi's systemd
# cgroup driver, in the `vmrun.sh --systemd` guest (systemd 252 as PID 1):
#   podman with its default cgroup_manager (systemd, as Debian ships it; only storage, the
#   runtime and the events file are set, and runs use --network none: no CNI plugins here);
#   containerd's runc shim with the systemd cgroup option (ctr run --runc-systemd-cgroup, what
#   SystemdCgroup = true makes the shim do);
#   Docker with native.cgroupdriver=systemd (its default on cgroup v2).
# Each checks the container's scope, a memory limit in systemd's view and inside, and that no
# unit, cgroup or state is left. Run it in a private mount and network namespace.
# usage: tests/e2e/systemd.sh /abs/path/to/onggi /abs/path/to/busybox-rootfs
set -uo pipefail
ONGGI=${1:?usage: systemd.sh ONGGI ROOTFS}; ROOTFS=${2:?usage: systemd.sh ONGGI ROOTFS}
[ -d /run/systemd/system ] || { echo "systemd.sh: systemd is not PID 1 here (make e2e-systemd)"; exit 2; }
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
  { echo "systemd.sh: run me in a private network namespace (make e2e-systemd)"; exit 2; }
T=$(mktemp -d /var/tmp/onggi-e2e-systemd.XXXXXX)
v2=$(awk '$9 == "cgroup2" { print $5 }' /proc/self/mountinfo | tail -1)
fail=0; n=0
source "$(dirname "$0")/lib.sh"
ip link set lo up

prop() { systemctl show -p "$1" --value "$2"; }
load_state() { systemctl show -p LoadState --value "$1"; }
# gone NAME UNIT CGROUP: systemd no longer knows UNIT and CGROUP is removed.
gone() {
  check "$1: no unit left" "not-found" "$(load_state "$2")"
  check "$1: no cgroup left" "no" "$([ -d "$v2$3" ] && echo yes || echo no)"
}
tar -C "$ROOTFS" -cf "$T/rootfs.tar" .

podman_checks() {
  local P id unit
  export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf
  export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$T/storage" "$T/prun" > "$CONTAINERS_STORAGE_CONF"
  : > "$CONTAINERS_REGISTRIES_CONF"
  cat > "$CONTAINERS_CONF" <<C
[engine]
events_logger = "file"
events_logfile_path = "$T/events.log"
runtime = "onggi"
runtime_supports_json = ["crun", "runc", "onggi"]
[engine.runtimes]
onggi = ["$ONGGI"]
C
  P=(podman --root "$T/storage" --runroot "$T/prun")
  "${P[@]}" import -q "$T/rootfs.tar" localhost/onggi-busybox >/dev/null || { echo "not ok - podman import"; fail=1; return; }
  check "podman: the default cgroup manager is systemd" systemd "$("${P[@]}" info -f '{{.Host.CgroupManager}}')"
  check "podman: run --rm" hi "$("${P[@]}" run --rm --network none localhost/onggi-busybox echo hi 2>&1)"
  id=$("${P[@]}" run -d --network none --memory 64m localhost/onggi-busybox sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
  unit=libpod-$id.scope
  check "podman: the container's scope is active" active "$(prop ActiveState "$unit")"
  check "podman: in machine.slice" machine.slice "$(prop Slice "$unit")"
  check "podman: MemoryMax in systemd" 67108864 "$(prop MemoryMax "$unit")"
  check "podman: --memory 64m seen inside" 67108864 "$("${P[@]}" exec "$id" cat /sys/fs/cgroup/memory.max)"
  check "podman: exec" in "$("${P[@]}" exec "$id" echo in)"
  "${P[@]}" stop -t 5 "$id" >/dev/null
  check "podman: stop (SIGTERM honoured)" 0 "$("${P[@]}" inspect -f '{{.State.ExitCode}}' "$id")"
  "${P[@]}" rm "$id" >/dev/null
  gone podman "$unit" "/machine.slice/$unit"
  check "podman: no onggi state left" "" "$(ls /run/onggi 2>/dev/null | grep "$id")"
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  "${P[@]}" system reset -f >/dev/null 2>&1
  unset CONTAINERS_CONF CONTAINERS_STORAGE_CONF CONTAINERS_REGISTRIES_CONF
}

containerd_checks() {
  local SOCK=$T/containerd.sock C R CPID L pid
  containerd_config "$T/config.toml" "$T/croot" "/run/containerd-e2e-sd" "$SOCK"
  containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
  CPID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
  # umoci lists xattrs, which the guest's virtiofs root refuses: insert from a tmpfs copy.
  mkdir -p "$T/rootfs" && tar -C "$T/rootfs" -xf "$T/rootfs.tar"
  L=$T/layout
  { umoci init --layout "$L" && umoci new --image "$L:latest" &&
    umoci insert --image "$L:latest" "$T/rootfs" / &&
    umoci config --image "$L:latest" --config.cmd sh \
      --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin; } >/dev/null 2>&1
  tar -C "$L" -cf "$T/image.tar" .
  C=(ctr -a "$SOCK" -n e2e)
  "${C[@]}" images import --base-name localhost/onggi-busybox "$T/image.tar" >/dev/null
  R=(--runc-binary "$ONGGI" --runc-root "$T/onggi-ctr" --runc-systemd-cgroup)
  check "containerd: run --rm" hi "$("${C[@]}" run --rm "${R[@]}" --cgroup system.slice:onggi-ctr:c1 localhost/onggi-busybox:latest c1 echo hi 2>&1)"
  gone "containerd run --rm" onggi-ctr-c1.scope /system.slice/onggi-ctr-c1.scope
  "${C[@]}" run -d "${R[@]}" --memory-limit 67108864 --cgroup system.slice:onggi-ctr:d1 \
    localhost/onggi-busybox:latest d1 sh -c 'while :; do sleep 0.1; done' >/dev/null
  pid=$("${C[@]}" tasks ls | awk '$1 == "d1" { print $2 }')
  check "containerd: the init in its scope" "0::/system.slice/onggi-ctr-d1.scope" "$(grep '^0::' /proc/$pid/cgroup)"
  check "containerd: MemoryMax in systemd" 67108864 "$(prop MemoryMax onggi-ctr-d1.scope)"
  check "containerd: task exec" in "$("${C[@]}" tasks exec --exec-id e1 d1 echo in 2>&1)"
  "${C[@]}" tasks kill -s SIGKILL d1
  for _ in $(seq 100); do [ "$("${C[@]}" tasks ls | awk '$1 == "d1" { print $3 }')" = STOPPED ] && break; sleep 0.05; done
  check "containerd: kill" STOPPED "$("${C[@]}" tasks ls | awk '$1 == "d1" { print $3 }')"
  "${C[@]}" tasks rm d1 >/dev/null; "${C[@]}" containers rm d1
  gone "containerd rm" onggi-ctr-d1.scope /system.slice/onggi-ctr-d1.scope
  check "containerd: no onggi state left" "" "$(ls "$T/onggi-ctr/e2e" 2>/dev/null | grep -v "^@")"
  kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
}

docker_checks() {
  local SOCK=$T/dcontainerd.sock D CPID id unit
  containerd_config "$T/dconfig.toml" "$T/dcroot" "/run/containerd-e2e-docker" "$SOCK"
  containerd --config "$T/dconfig.toml" >"$T/dcontainerd.log" 2>&1 &
  CPID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
  printf '{"runtimes": {"onggi": {"path": "%s"}}, "exec-opts": ["native.cgroupdriver=systemd"], "storage-driver": "overlay2"}\n' "$ONGGI" > "$T/daemon.json"
  D=(/usr/bin/docker -H "unix://$T/docker.sock")
  dockerd --data-root "$T/data" --exec-root /run/docker-e2e-sd --pidfile "$T/docker.pid" \
    -H "unix://$T/docker.sock" --containerd "$SOCK" --config-file "$T/daemon.json" >"$T/dockerd.log" 2>&1 &
  for _ in $(seq 300); do "${D[@]}" info >/dev/null 2>&1 && break; sleep 0.1; done
  check "docker: the cgroup driver is systemd" systemd "$("${D[@]}" info -f '{{.CgroupDriver}}' 2>&1)"
  "${D[@]}" import --change 'CMD ["sh"]' "$T/rootfs.tar" e2e/busybox >/dev/null
  check "docker: run --rm" hi "$("${D[@]}" run --rm --runtime onggi e2e/busybox echo hi 2>&1)"
  id=$("${D[@]}" run -d --runtime onggi --memory 64m e2e/busybox sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
  unit=docker-$id.scope
  check "docker: the container's scope is active" active "$(prop ActiveState "$unit")"
  check "docker: MemoryMax in systemd" 67108864 "$(prop MemoryMax "$unit")"
  check "docker: --memory 64m seen inside" 67108864 "$("${D[@]}" exec "$id" cat /sys/fs/cgroup/memory.max)"
  "${D[@]}" stop -t 5 "$id" >/dev/null
  check "docker: stop (SIGTERM honoured)" 0 "$("${D[@]}" inspect -f '{{.State.ExitCode}}' "$id")"
  "${D[@]}" rm "$id" >/dev/null
  gone docker "$unit" "/system.slice/$unit"
  kill "$(cat "$T/docker.pid")" 2>/dev/null
  for _ in $(seq 100); do [ -f "$T/docker.pid" ] || break; sleep 0.1; done
  kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
}

cleanup() {
  pkill -f "containerd-shim-runc-v2 -namespace" 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

podman_checks
containerd_checks
docker_checks
check "no onggi scope left anywhere" "" "$(systemctl list-units --all --no-legend 'onggi-*' 'libpod-*' 'docker-*' | grep -v conmon)"
echo "1..$n"
exit $fail
