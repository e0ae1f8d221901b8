//! How and where the process runs: personality, scheduler, I/O priority, CPU affinity and
//! memory policy, as the process inside sees them (and the same for `exec`).

mod common;
use common::*;
use serde_json::json;

#[test]
fn linux32_personality_makes_uname_say_i686() {
    let o = Onggi::new();
    let b = sh("uname -m").with(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    assert_eq!(o.output_of(&b), "i686\n");
    let b = sh("uname -m").with(|c| c["linux"]["personality"] = json!({"domain": "LINUX"}));
    assert_eq!(o.output_of(&b), "x86_64\n");
}

#[test]
fn scheduler_policy_and_nice_are_the_processes() {
    let o = Onggi::new();
    // /proc/self/stat of `cut` itself: field 19 is nice, 41 the policy (3 = SCHED_BATCH).
    let b = sh("cut -d' ' -f19,41 /proc/self/stat")
        .with(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    assert_eq!(o.output_of(&b), "7 3\n");
    let b = sh("cut -d' ' -f41 /proc/self/stat")
        .with(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"}));
    assert_eq!(o.output_of(&b), "5\n");
}

#[test]
fn io_priority_is_set() {
    let o = Onggi::new();
    let b = sh("ionice -p $$")
        .with(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6}));
    assert_eq!(o.output_of(&b), "best-effort: prio 6\n");
    let b = sh("ionice -p $$")
        .with(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE"}));
    assert_eq!(o.output_of(&b), "idle\n");
}

#[test]
fn exec_cpu_affinity_final_pins_the_process_and_exec_too() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last = cpus - 1;
    let o = Onggi::new();
    let b =
        sh("grep Cpus_allowed_list /proc/self/status; touch /ready; while :; do sleep 0.05; done")
            .with(|c| {
                c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": last.to_string()})
            });
    let out = o.run(&["--trace", "run", "-d", "--bundle", b.dir(), "aff"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace = text(&out.stderr);
    assert!(
        trace.contains("cpu_affinity_initial") && trace.contains("sched_setaffinity(0, [0])"),
        "{trace}"
    );
    wait_for(|| b.rootfs().join("ready").exists());
    let pid = o.state("aff")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(status_field(&status, "Cpus_allowed_list"), last.to_string());
    // exec takes the container's process fields only with --process; the command line form
    // starts from the container's process, so it is pinned the same way.
    let seen = o.ok(&[
        "exec",
        "aff",
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert_eq!(
        seen.split_whitespace().nth(1),
        Some(last.to_string().as_str())
    );
    o.ok(&["delete", "--force", "aff"]);
}

#[test]
fn memory_policy_shows_in_numa_maps() {
    let o = Onggi::new();
    let b = sh("grep -m1 -o 'interleave:0' /proc/self/numa_maps")
        .with(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}));
    assert_eq!(o.output_of(&b), "interleave:0\n");
}

#[test]
fn bad_values_fail_create_naming_the_field_and_leave_nothing() {
    let o = Onggi::new();
    for (field, value, needle) in [
        (
            "process",
            json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}),
            "process.ioPriority.priority 9",
        ),
        (
            "process",
            json!({"scheduler": {"policy": "SCHED_FIFO"}}),
            "process.scheduler",
        ),
        (
            "process",
            json!({"execCPUAffinity": {"final": "9999"}}),
            "process.execCPUAffinity.final",
        ),
        (
            // Refused by oci-spec's pattern (matched by regex-lite: shims/regex).
            "process",
            json!({"execCPUAffinity": {"initial": "0-,x"}}),
            "execCPUAffinity format: 0-,x",
        ),
        (
            "linux",
            json!({"memoryPolicy": {"mode": "MPOL_BIND"}}),
            "linux.memoryPolicy",
        ),
        (
            "linux",
            json!({"personality": {"domain": "LINUX", "flags": ["X"]}}),
            "linux.personality.flags",
        ),
    ] {
        let b = sh("true").with(|c| {
            for (k, v) in value.as_object().unwrap() {
                c[field][k] = v.clone();
            }
        });
        let err = o.fails(&["create", "--bundle", b.dir(), "bad"]);
        assert!(err.contains(needle), "{needle}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(o.leftovers().is_empty());
    }
}
