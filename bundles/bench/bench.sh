#!/bin/bash
# make bench: `run` of bundles/bench (process `true`) with onggi, runc and crun side by side in
# one hyperfine run, plus the floor (unshare alone). Prints medians, ratios and peak RSS.
# Runs in a private mount namespace with cgroup2 over /sys/fs/cgroup, so that runc uses cgroup v2
# as onggi does (and never the host's v1 hierarchies). Benchmarks are not tests: nothing here
# asserts a time.
set -euo pipefail
ONGGI=${1:?usage: bench.sh /path/to/onggi}
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${BENCH_RUNS:-100}
if [ -z "${_BENCH_UNSHARED:-}" ]; then
  exec env _BENCH_UNSHARED=1 unshare -m --propagation private "$0" "$@"
fi
mount -t cgroup2 none /sys/fs/cgroup
tmp=$(mktemp -d /tmp/onggi-bench.XXXXXX)
# State roots on tmpfs, as /run is on a real host, for all three runtimes alike.
mount -t tmpfs tmpfs "$tmp"
trap 'umount "$tmp/onggi-ro" 2>/dev/null; umount "$tmp"; rm -rf "$tmp"' EXIT
for t in hyperfine runc crun; do command -v $t >/dev/null || { echo "bench: $t missing (apt-get install $t)" >&2; exit 1; }; done
# A second bundle: the same container under the podman/docker default seccomp profile
# (tests/fixtures/default-seccomp.json, ~300 names): what a large filter costs each runtime.
sc=$tmp/seccomp-bundle
mkdir -p "$sc"
python3 - "$here/config.json" "$here/../../tests/fixtures/default-seccomp.json" "$here/../rootfs" \
  > "$sc/config.json" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["linux"]["seccomp"] = json.load(open(sys.argv[2]))
c["root"]["path"] = os.path.abspath(sys.argv[3])
print(json.dumps(c))
PY
# The re-exec from a read-only mount of the binary (src/self_exe.rs) happens for exec and for a
# container without a new pid namespace: b-hostpid runs bench's bundle without one, from the
# binary as built (re-exec) and from the same binary bind-mounted read-only (no re-exec).
hp=$tmp/hostpid-bundle
mkdir -p "$hp"
python3 - "$here/config.json" "$here/../rootfs" > "$hp/config.json" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
c["root"]["path"] = os.path.abspath(sys.argv[2])
print(json.dumps(c))
PY
touch "$tmp/onggi-ro"
mount --bind "$ONGGI" "$tmp/onggi-ro"
mount -o remount,bind,ro "$tmp/onggi-ro"
cd "$here"
cmds=(
  -n onggi "$ONGGI --root $tmp/onggi run b-onggi"
  -n runc  "runc --root $tmp/runc run b-runc"
  -n crun  "crun --root $tmp/crun --cgroup-manager=disabled run b-crun"
  -n floor "unshare -fpmiun --mount-proc true"
  # --trace on (to /dev/null): the onggi row above is the same binary with it off.
  -n onggi-trace "$ONGGI --root $tmp/onggi --trace run b-trace"
  -n onggi-hostpid "$ONGGI --root $tmp/onggi run -b $hp b-hp"
  -n onggi-hostpid-ro "$tmp/onggi-ro --root $tmp/onggi run -b $hp b-hpro"
  -n onggi-seccomp "$ONGGI --root $tmp/onggi run -b $sc b-sc"
  -n runc-seccomp  "runc --root $tmp/runc run -b $sc b-sc"
  -n crun-seccomp  "crun --root $tmp/crun --cgroup-manager=disabled run -b $sc b-sc"
)
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$tmp/h.json" "${cmds[@]}" >/dev/null 2>"$tmp/err" \
  || { cat "$tmp/err" >&2; exit 1; }
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
r_onggi=$(rss $ONGGI --root $tmp/onggi run b-onggi)
r_runc=$(rss runc --root $tmp/runc run b-runc)
r_crun=$(rss crun --root $tmp/crun --cgroup-manager=disabled run b-crun)
python3 - "$tmp/h.json" "$r_onggi" "$r_runc" "$r_crun" "$($ONGGI --version | head -1)" \
  "$(runc --version | head -1)" "$(crun --version | head -1)" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: r["median"] * 1000 for r in h}
rss = {"onggi": sys.argv[2], "runc": sys.argv[3], "crun": sys.argv[4], "floor": "-"}
print(f"{'runtime':<8} {'median':>10} {'vs runc':>8} {'peak RSS':>10}   ({sys.argv[5]}; {sys.argv[6]}; {sys.argv[7]})")
for name in ["onggi", "runc", "crun", "floor"]:
    print(f"{name:<8} {med[name]:>8.2f}ms {med[name] / med['runc']:>7.2f}x {rss[name]:>8} KiB")
print(f"onggi/runc = {med['onggi'] / med['runc']:.3f}   onggi/crun = {med['onggi'] / med['crun']:.3f}   onggi - floor = {med['onggi'] - med['floor']:.2f} ms")
print(f"re-exec from a read-only mount of the binary (exec; create without a new pid ns): +{med['onggi-hostpid'] - med['onggi-hostpid-ro']:.2f} ms ({med['onggi-hostpid']:.2f} vs {med['onggi-hostpid-ro']:.2f} ms from an already read-only binary)")
print(f"--trace on: +{med['onggi-trace'] - med['onggi']:.2f} ms ({med['onggi-trace'] / med['onggi']:.3f}x); off is the onggi row (one relaxed atomic load per step)")
print("default seccomp profile (~300 rules), cost over the same runtime without it:")
for name in ["onggi", "runc", "crun"]:
    extra = med[name + "-seccomp"] - med[name]
    print(f"  {name:<6} {med[name + '-seccomp']:>8.2f}ms  +{extra:.2f} ms  ({med[name + '-seccomp'] / med['runc-seccomp']:.2f}x runc)")
PY
