#!/usr/bin/env python3
"""make bench's driver (bench.sh prepares the bundles, state roots and namespaces first).

Every figure of the table comes from one run in which the runtimes are interleaved round by
round: each round runs every single-shot measurement once, in a shuffled order, so that a
drift of the machine touches all runtimes alike. Parallel throughput runs as batches, also
shuffled round by round. Nothing here asserts a time.

usage: bench.py ONGGI TMP BENCH_BUNDLE SECCOMP_BUNDLE SLEEP_BUNDLE BIG_MNT_NS EXTRA_MOUNTS
"""
import ctypes
import os
import random
import statistics
import sys
import time

ONGGI, TMP, B, SC, SL, BIG_NS, EXTRA = sys.argv[1:8]
RUNS = int(os.environ.get("BENCH_RUNS", "60"))
PAR_TOTAL, PAR_WIDTH = 100, 20
CLONE_NEWNS = 0x00020000
PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)
# Orphaned container inits (after `create`, `run -d`) become our children and are reaped here.
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
ns_fd = {"base": os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC),
         "big": os.open(BIG_NS, os.O_RDONLY | os.O_CLOEXEC)}
current_ns = "base"


def enter(ns):
    """Moves this process into the base or the 1000-extra-mounts mount namespace."""
    global current_ns
    if ns != current_ns:
        if libc.setns(ns_fd[ns], CLONE_NEWNS) != 0:
            sys.exit(f"bench: setns({ns}): {os.strerror(ctypes.get_errno())}")
        os.chdir("/")
        current_ns = ns


RUNTIMES = {
    "onggi": [ONGGI, "--root", f"{TMP}/onggi"],
    "crun": ["crun", "--root", f"{TMP}/crun", "--cgroup-manager=disabled"],
    "runc": ["runc", "--root", f"{TMP}/runc"],
}
# BENCH_VS=/path/to/another/onggi: a second onggi build in the same rounds (column "vs").
VS = os.environ.get("BENCH_VS")
if VS:
    RUNTIMES["vs"] = [os.path.realpath(VS), "--root", f"{TMP}/vs"]
ERR = f"{TMP}/stderr"
seq = 0


def spawn(argv):
    """posix_spawn with stdio on /dev/null and stderr kept for a failure's message."""
    return os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, ERR, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)])


def check(argv, status):
    if status != 0:
        sys.exit(f"bench: `{' '.join(argv)}` failed ({status}): {open(ERR).read().strip()}")


def run1(argv):
    """Runs argv to its end; returns its wall time in seconds."""
    t0 = time.perf_counter()
    pid = spawn(argv)
    _, status, _ = os.wait4(pid, 0)
    dt = time.perf_counter() - t0
    check(argv, status)
    return dt


def peak_rss(rt):
    """Peak RSS (KiB) of a `run` and of what it waited for, by GNU time: posix_spawn here is a
    vfork, whose child would report this Python's own peak."""
    out = f"{TMP}/rss"
    samples = []
    for _ in range(5):
        enter("base")
        run1(["/usr/bin/time", "-f", "%M", "-o", out] + RUNTIMES[rt] + ["run", "-b", B, new_id(rt)])
        samples.append(int(open(out).read().split()[-1]))
    return statistics.median(samples)


def new_id(tag):
    global seq
    seq += 1
    return f"b{seq}-{tag}"


def job_run(rt, bundle, ns="base"):
    def go():
        enter(ns)
        if rt == "floor":
            return run1(["unshare", "-fpmiun", "--mount-proc", "true"])
        return run1(RUNTIMES[rt] + ["run", "-b", bundle, new_id(rt)])
    return go


def job_exec(rt, cid):
    return lambda: (enter("base"), run1(RUNTIMES[rt] + ["exec", cid, "true"]))[1]


def job_lifecycle(rt):
    """create, start, wait for the init to exit (it is our child: we are the subreaper), delete."""
    def go():
        enter("base")
        cid, pidfile = new_id(rt), f"{TMP}/{rt}.pid"
        t0 = time.perf_counter()
        for argv in (RUNTIMES[rt] + ["create", "-b", B, "--pid-file", pidfile, cid],
                     RUNTIMES[rt] + ["start", cid]):
            _, status, _ = os.wait4(spawn(argv), 0)
            check(argv, status)
        os.waitpid(int(open(pidfile).read()), 0)
        argv = RUNTIMES[rt] + ["delete", cid]
        _, status, _ = os.wait4(spawn(argv), 0)
        dt = time.perf_counter() - t0
        check(argv, status)
        return dt
    return go


def parallel(rt):
    """PAR_TOTAL `run`s of the bench bundle, PAR_WIDTH at a time: lifecycles per second."""
    enter("base")
    t0, live, started = time.perf_counter(), {}, 0
    while started < PAR_TOTAL or live:
        while started < PAR_TOTAL and len(live) < PAR_WIDTH:
            argv = RUNTIMES[rt] + ["run", "-b", B, new_id(rt)]
            live[spawn(argv)] = argv
            started += 1
        pid, status = os.wait()
        if pid in live:
            check(live.pop(pid), os.waitstatus_to_exitcode(status))
    return PAR_TOTAL / (time.perf_counter() - t0)


def start_sleepers():
    """One running container per runtime for the exec figure."""
    ids = {}
    for rt in RUNTIMES:
        ids[rt] = f"sleep-{rt}"
        run1(RUNTIMES[rt] + ["run", "-d", "-b", SL, ids[rt]])
    return ids


def stop_sleepers(ids):
    for rt, cid in ids.items():
        os.wait4(spawn(RUNTIMES[rt] + ["delete", "--force", cid]), 0)


def measure():
    sleepers = start_sleepers()
    jobs = {}
    for rt in ["floor"] + list(RUNTIMES):
        jobs[("run", rt)] = job_run(rt, B)
        jobs[("run-big", rt)] = job_run(rt, B, "big")
    for rt in RUNTIMES:
        jobs[("exec", rt)] = job_exec(rt, sleepers[rt])
        jobs[("lifecycle", rt)] = job_lifecycle(rt)
        jobs[("seccomp", rt)] = job_run(rt, SC)
    times = {k: [] for k in jobs}
    for rnd in range(3 + RUNS):  # the first 3 rounds warm up and are not counted
        order = list(jobs)
        random.shuffle(order)
        for k in order:
            dt = jobs[k]()
            if rnd >= 3:
                times[k].append(dt * 1000)
    stop_sleepers(sleepers)
    par = {rt: [] for rt in RUNTIMES}
    for _ in range(max(3, RUNS // 20)):
        order = list(RUNTIMES)
        random.shuffle(order)
        for rt in order:
            par[rt].append(parallel(rt))
    rss = {rt: peak_rss(rt) for rt in RUNTIMES}
    enter("base")
    return times, rss, par


def fmt(v, unit):
    return "—" if v is None else f"{v:.2f} {unit}"


def report(times, rss, par):
    med = {k: statistics.median(v) for k, v in times.items()}
    size = {"onggi": os.path.getsize(ONGGI)}
    if VS:
        size["vs"] = os.path.getsize(VS)
    for rt in ("crun", "runc"):
        size[rt] = os.path.getsize(os.popen(f"command -v {rt}").read().strip())
    cols = ["floor", "onggi", "crun", "runc"] + (["vs"] if VS else [])
    rows = [
        ("`run true` median", {rt: med[("run", rt)] for rt in cols}, "ms"),
        ("`exec true` into a running container", {rt: med[("exec", rt)] for rt in RUNTIMES}, "ms"),
        ("create + start + wait + delete", {rt: med[("lifecycle", rt)] for rt in RUNTIMES}, "ms"),
        ("peak RSS of `run`", {rt: rss[rt] / 1024 for rt in RUNTIMES}, "MiB"),
        ("binary size", {rt: size[rt] / 1e6 for rt in RUNTIMES}, "MB"),
        (f"`run` with {EXTRA} more mounts on the host (+)",
         {rt: med[("run-big", rt)] - med[("run", rt)] for rt in cols}, "ms"),
        (f"{PAR_TOTAL} `run`s, {PAR_WIDTH} in parallel", {rt: statistics.median(par[rt]) for rt in RUNTIMES}, "/s"),
        ("the podman/docker default seccomp profile (+)",
         {rt: med[("seccomp", rt)] - med[("run", rt)] for rt in RUNTIMES}, "ms"),
    ]
    if VS:
        commit = [w for w in os.popen(VS + " --version").read().split("\n") if w.startswith("commit")]
        print(f"BENCH_VS: {VS} ({''.join(commit)})")
    print(f"{RUNS} rounds, runtimes interleaved in a shuffled order each round; "
          f"{os.popen(ONGGI + ' --version').readline().strip()}, "
          f"{os.popen('crun --version').readline().strip()} (--cgroup-manager=disabled), "
          f"{os.popen('runc --version').readline().strip()}; {time.strftime('%Y-%m-%d %H:%M')}")
    print()
    vs = " | BENCH_VS | onggi/BENCH_VS" if VS else ""
    print(f"| figure | floor | onggi | crun | runc | onggi/floor | onggi/crun | onggi/runc{vs} |")
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if VS else ""))
    for name, vals, unit in rows:
        cells = [fmt(vals.get(rt), unit) for rt in cols if rt != "vs"]

        def ratio(other):
            a, b = vals.get("onggi"), vals.get(other)
            return "—" if a is None or not b or b <= 0 or a < 0 else f"{a / b:.2f}×"
        extra = f" {fmt(vals.get('vs'), unit)} | {ratio('vs')} |" if VS else ""
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio('floor')} | {ratio('crun')} | {ratio('runc')} |" + extra)
    spread = times[("run", "onggi")]
    if len(spread) >= 2:
        q = statistics.quantiles(spread, n=4)
        print()
        print(f"onggi `run`: p25 {q[0]:.2f} ms, p75 {q[2]:.2f} ms, min {min(spread):.2f} ms")


report(*measure())
