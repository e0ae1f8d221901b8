#!/bin/bash
# make bench: onggi, crun, runc and the kernel's floor (`unshare -fpmiun --mount-proc true`) on
# the same bundles, interleaved round by round in one run (bench.py): `run`, `exec`, a whole
# create/start/wait/delete, `run` with 1000 more mounts on the host, the default seccomp profile,
# parallel throughput, peak RSS and binary size, as medians and ratios. BENCH_RUNS rounds (60);
# BENCH_VS=/path/to/another/onggi adds a second onggi build to the same rounds (before/after).
# Runs in a private mount namespace with cgroup2 over /sys/fs/cgroup, so that runc uses cgroup
# v2 as onggi does (and never the host's v1 hierarchies); crun runs with
# --cgroup-manager=disabled (its device filter needs CAP_SYS_RESOURCE here). Benchmarks are not
# tests: nothing here asserts a time.
set -euo pipefail
ONGGI=$(realpath "${1:?usage: bench.sh /path/to/onggi}")
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${_BENCH_UNSHARED:-}" ]; then
  exec env _BENCH_UNSHARED=1 unshare -m --propagation private "$0" "$@"
fi
for t in runc crun python3; do command -v $t >/dev/null || { echo "bench: $t missing (apt-get install $t)" >&2; exit 1; }; done
mount -t cgroup2 none /sys/fs/cgroup
tmp=$(mktemp -d /tmp/onggi-bench.XXXXXX)
# State roots on tmpfs, as /run is on a real host, for all three runtimes alike.
mount -t tmpfs tmpfs "$tmp"
holder=
trap '[ -z "$holder" ] || kill $holder; umount -l "$tmp"; rm -rf "$tmp"' EXIT
# bundle BUNDLE_DIR PYTHON: bench's config.json changed by PYTHON (c is the config), rootfs bundles/rootfs.
bundle() {
  mkdir -p "$1"
  python3 - "$here/config.json" "$here/../rootfs" "$here/../../tests/fixtures/default-seccomp.json" "$2" > "$1/config.json" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = os.path.abspath(sys.argv[2])
profile = sys.argv[3]
exec(sys.argv[4])
print(json.dumps(c))
PY
}
bundle "$tmp/b" 'pass'
# What a large filter costs: the podman/docker default profile (~300 names).
bundle "$tmp/sc" 'c["linux"]["seccomp"] = json.load(open(profile))'
# A container that keeps running, for `exec`.
bundle "$tmp/sl" 'c["process"]["args"] = ["sleep", "1000000"]'
# A mount namespace like this one plus 1000 mounts, as a host with many containers or volumes has.
extra=1000
mkdir "$tmp/mounts"
# It is held by a process of its own (bench.py enters it through /proc/PID/ns/mnt).
unshare -m --propagation private bash -c "cd $tmp/mounts &&
  for i in \$(seq $extra); do mkdir \$i && mount -t tmpfs -o size=4k t \$i; done; touch ../ready; exec sleep infinity" &
holder=$!
while [ ! -e "$tmp/ready" ]; do kill -0 $holder; sleep 0.1; done
python3 "$here/bench.py" "$ONGGI" "$tmp" "$tmp/b" "$tmp/sc" "$tmp/sl" "/proc/$holder/ns/mnt" "$extra"
