//! cgroup v2 on the host the tests run on: placement, the container's view, pause/resume,
//! kill --all, removal, and resource files. Controllers are detected: a test that needs one the
//! hierarchy lacks says so and skips, unless ONGGI_REQUIRE_CGROUP_V2=1 (set for the pure-v2
//! guest), where a missing controller fails.

mod common;
use common::*;
use serde_json::json;

fn pid_of(o: &Onggi, id: &str) -> i64 {
    o.state(id)["pid"].as_i64().unwrap()
}

/// A unique cgroup path for a test, below the v2 root.
fn unique(tag: &str) -> String {
    format!("/onggi-test-{}-{tag}", std::process::id())
}

#[test]
fn the_init_is_born_in_its_cgroup_and_sees_only_its_own() {
    let o = Onggi::new();
    let path = unique("place");
    let b = sh("cat /proc/self/cgroup; touch /ready; while :; do sleep 0.05; done")
        .with(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = Scratch::new("out");
    let f = std::fs::File::create(out.path().join("o")).unwrap();
    assert!(o
        .command()
        .args(["run", "-d", "--bundle", b.dir(), "p"])
        .stdout(f)
        .status()
        .unwrap()
        .success());
    wait_for(|| b.rootfs().join("ready").exists());
    let dir = v2_mount().join(path.trim_start_matches('/'));
    assert!(
        dir.is_dir(),
        "{} exists while the container runs",
        dir.display()
    );
    let pid = pid_of(&o, "p");
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        host_view.lines().any(|l| l == format!("0::{path}")),
        "{host_view}"
    );
    assert!(std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap()
        .contains(&pid.to_string()));
    // Inside, with a cgroup namespace, the container's cgroup is the root.
    let inside = std::fs::read_to_string(out.path().join("o")).unwrap();
    assert!(inside.lines().any(|l| l == "0::/"), "{inside}");
    o.ok(&["delete", "--force", "p"]);
    assert!(!dir.exists(), "delete removes the cgroup");
}

#[test]
fn the_default_cgroup_is_slash_id_and_run_removes_it() {
    let o = Onggi::new();
    let id = format!("onggi-default-{}", std::process::id());
    let b = sh("cat /proc/1/cgroup >/dev/null; grep -c . /proc/self/cgroup");
    let out = o.run(&["run", "--bundle", b.dir(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !v2_mount().join(&id).exists(),
        "run deletes the cgroup with the container"
    );
    // While it runs it is at /<id>:
    let b = sh("touch /ready; while :; do sleep 0.05; done");
    o.ok(&["run", "-d", "--bundle", b.dir(), &id]);
    assert!(v2_mount().join(&id).is_dir());
    o.ok(&["delete", "-f", &id]);
    assert!(!v2_mount().join(&id).exists());
}

#[test]
fn pause_freezes_every_process_and_resume_thaws() {
    let o = Onggi::new();
    let b = sh("i=0; while :; do i=$((i+1)); echo $i > /counter; sleep 0.01; done");
    o.ok(&["run", "-d", "--bundle", b.dir(), "fz"]);
    let counter = || {
        std::fs::read_to_string(b.rootfs().join("counter"))
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    wait_for(|| counter() > 3);
    o.ok(&["pause", "fz"]);
    assert_eq!(o.status("fz"), "paused");
    let e = o.fails(&["pause", "fz"]);
    assert!(e.contains("already paused"), "{e}");
    let frozen_at = counter();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        counter(),
        frozen_at,
        "the counter must not move while paused"
    );
    o.ok(&["resume", "fz"]);
    assert_eq!(o.status("fz"), "running");
    wait_for(|| counter() > frozen_at + 3);
    let e = o.fails(&["resume", "fz"]);
    assert!(e.contains("not paused"), "{e}");
    o.ok(&["delete", "--force", "fz"]);
}

#[test]
fn kill_all_reaches_every_process_without_a_pid_namespace() {
    let o = Onggi::new();
    // No pid namespace: killing the init would leave its children; --all must use the cgroup.
    let b = sh(
        "sh -c 'sleep 1000 & echo $! > /grandchild; wait' & echo $! > /child; touch /ready; wait",
    )
    .with(|c| {
        c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]);
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "ka"]);
    // `echo $! > f` creates f before it writes the pid: wait until both files hold one.
    let read = |f: &str| -> Option<i32> {
        std::fs::read_to_string(b.rootfs().join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    wait_for(|| {
        b.rootfs().join("ready").exists() && read("child").is_some() && read("grandchild").is_some()
    });
    let (child, grandchild) = (read("child").unwrap(), read("grandchild").unwrap());
    let init = pid_of(&o, "ka") as i32;
    o.ok(&["kill", "--all", "ka", "KILL"]);
    wait_for(|| exited(init.into()) && exited(child.into()) && exited(grandchild.into()));
    o.ok(&["delete", "ka"]);
}

#[test]
fn a_missing_controller_is_one_clear_error_and_leaves_nothing() {
    let o = Onggi::new();
    let available = std::fs::read_to_string(v2_mount().join("cgroup.controllers")).unwrap();
    let (missing, resources) = if !available.split_whitespace().any(|c| c == "pids") {
        ("pids", json!({"pids": {"limit": 10}}))
    } else if !available.split_whitespace().any(|c| c == "memory") {
        ("memory", json!({"memory": {"limit": 10485760}}))
    } else {
        eprintln!("SKIPPED: this hierarchy has every controller; nothing is missing");
        return;
    };
    let path = unique("missing");
    let b = sh("true").with(|c| {
        c["linux"]["resources"] = resources;
        c["linux"]["cgroupsPath"] = json!(path);
    });
    let e = o.fails(&["create", "--bundle", b.dir(), "mc"]);
    assert!(
        e.contains(&format!("needs the {missing} controller")),
        "{e}"
    );
    assert!(
        e.contains(v2_mount().to_str().unwrap()),
        "names the mount: {e}"
    );
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(
        !v2_mount().join(path.trim_start_matches('/')).exists(),
        "no cgroup left"
    );
    assert!(o.leftovers().is_empty());
}

#[test]
fn hugetlb_limits_land_in_their_files() {
    if !has_controller("hugetlb") || !has_hugepages() {
        return;
    }
    let o = Onggi::new();
    let path = unique("huge");
    let b = sh("touch /ready; while :; do sleep 0.05; done").with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] =
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "hp"]);
    let dir = v2_mount().join(path.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(dir.join("hugetlb.2MB.max"))
            .unwrap()
            .trim(),
        "4194304"
    );
    o.ok(&["delete", "--force", "hp"]);
    assert!(!dir.exists());
}

#[test]
fn an_unknown_unified_key_is_refused_and_cleaned_up() {
    let o = Onggi::new();
    let path = unique("unified");
    let b = sh("true").with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"unified": {"cgroup.nosuchfile": "1"}});
    });
    let e = o.fails(&["create", "--bundle", b.dir(), "uk"]);
    assert!(e.contains("cgroup.nosuchfile"), "{e}");
    assert!(!v2_mount().join(path.trim_start_matches('/')).exists());
    assert!(o.leftovers().is_empty());
}

#[test]
fn memory_and_pids_limits_in_a_full_hierarchy() {
    if !has_controller("memory") || !has_controller("pids") {
        return;
    }
    let o = Onggi::new();
    let path = unique("mem");
    let b = sh("cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max").with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 20}});
        // cgroupfs is read-only inside, but readable.
    });
    assert_eq!(o.output_of(&b), "33554432\n20\n");
    assert!(!v2_mount().join(path.trim_start_matches('/')).exists());
}

#[test]
fn a_memory_hog_is_oom_killed() {
    if !has_controller("memory") {
        return;
    }
    let o = Onggi::new();
    // dd as PID 1 touches a 64 MiB buffer in a 16 MiB cgroup without swap.
    let b = Bundle::new(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]).with(|c| {
        c["linux"]["cgroupsPath"] = json!(unique("oom"));
        c["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}});
    });
    let (code, _, _) = o.run_container(&b, "oom");
    assert_eq!(code, 137, "SIGKILL by the OOM killer");
}

#[test]
fn a_fork_loop_stops_at_pids_max() {
    if !has_controller("pids") {
        return;
    }
    let o = Onggi::new();
    let path = unique("pids");
    // A subshell forks until the kernel refuses; PID 1 reports pids.current with builtins only
    // (it cannot fork either once the limit is reached).
    let b = sh("(while :; do sleep 5 & done) 2>/dev/null & \
                while :; do read x < /sys/fs/cgroup/pids.current; echo $x > /cur.tmp; mv -f /cur.tmp /cur 2>/dev/null || echo $x > /cur; done")
    .with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"pids": {"limit": 10}});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "fork"]);
    let dir = v2_mount().join(path.trim_start_matches('/'));
    let refused = || {
        std::fs::read_to_string(dir.join("pids.events"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("max "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    wait_for(|| refused() > 0);
    let current: u32 = std::fs::read_to_string(dir.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 10, "pids.current {current} above pids.max 10");
    // The container's own report lags the host's view: wait until it has written one (the
    // fallback `echo > /cur` can be caught mid-write, hence parse until it reads whole).
    let inside = || {
        std::fs::read_to_string(b.rootfs().join("cur"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    let mut seen = None;
    wait_for(|| {
        seen = inside();
        seen.is_some()
    });
    let seen = seen.unwrap_or_default();
    assert!(seen <= 10, "the container saw pids.current {seen} above 10");
    o.ok(&["delete", "--force", "fork"]);
    assert!(!dir.exists());
}

#[test]
fn events_stats_is_runc_shaped_json() {
    let o = Onggi::new();
    let b = sh("i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; touch /ready; while :; do sleep 0.05; done");
    o.ok(&["run", "-d", "--bundle", b.dir(), "ev"]);
    wait_for(|| b.rootfs().join("ready").exists());
    let line = o.ok(&["events", "--stats", "ev"]);
    assert_eq!(line.lines().count(), 1, "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], "ev");
    assert!(
        v["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(v["data"]["memory"]["usage"].is_object());
    o.ok(&["delete", "--force", "ev"]);
    let e = o.fails(&["events", "--stats", "ev"]);
    assert!(e.contains("does not exist"), "{e}");
}

/// `explain` shows the limits and the usage of the container's cgroup as its files hold them.
#[test]
fn explain_shows_the_cgroup_limits_and_usage() {
    if !has_controller("memory") || !has_controller("pids") {
        return;
    }
    let o = Onggi::new();
    let path = unique("explain");
    let b = sh("while :; do sleep 0.05; done").with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 20}});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "ex"]);
    let out = o.ok(&["explain", "ex"]);
    let dir = v2_mount().join(path.trim_start_matches('/'));
    assert!(
        out.contains(&format!(
            "cgroup (limits and what is used now) {}",
            dir.display()
        )),
        "{out}"
    );
    for (file, want) in [("memory.max", "33554432"), ("pids.max", "20")] {
        assert!(
            out.lines().any(|l| l.split_whitespace().eq([file, want])),
            "{file} {want}:\n{out}"
        );
    }
    let current = out
        .lines()
        .find(|l| l.trim_start().starts_with("memory.current"))
        .expect("memory.current");
    let bytes: u64 = current.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(bytes > 0 && bytes <= 33554432, "{current}");
    o.ok(&["delete", "--force", "ex"]);
}

#[test]
fn update_changes_limits_live() {
    if !has_controller("memory") || !has_controller("pids") {
        return;
    }
    let o = Onggi::new();
    let path = unique("update");
    let b = sh("touch /ready; while :; do sleep 0.05; done").with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "up"]);
    let dir = v2_mount().join(path.trim_start_matches('/'));
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory.max"), "67108864");
    o.ok(&["update", "--memory", "32m", "--pids-limit", "7", "up"]);
    assert_eq!(read("memory.max"), "33554432");
    assert_eq!(read("pids.max"), "7");
    // LinuxResources JSON on stdin, as containerd and podman send it.
    let mut child = o
        .command()
        .args(["update", "--resources", "-", "up"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"memory": {"limit": 50331648}}"#)
        .unwrap();
    assert!(wait_child(&mut child).success());
    assert_eq!(read("memory.max"), "50331648");
    let v: serde_json::Value = serde_json::from_str(&o.ok(&["events", "--stats", "up"])).unwrap();
    assert_eq!(v["data"]["memory"]["usage"]["limit"], 50331648);
    assert_eq!(v["data"]["pids"]["limit"], 7);
    let e = o.fails(&["update", "--memory", "lots", "up"]);
    assert!(e.contains("\"lots\""), "{e}");
    o.ok(&["delete", "--force", "up"]);
}

#[test]
fn events_reports_an_oom_kill() {
    if !has_controller("memory") {
        return;
    }
    let o = Onggi::new();
    // PID 1 survives; a child hog is OOM-killed inside the 16 MiB cgroup.
    let b = sh("touch /ready; sleep 0.5; dd if=/dev/zero of=/dev/null bs=64M count=1; while :; do sleep 0.05; done")
        .with(|c| {
            c["linux"]["cgroupsPath"] = json!(unique("oomev"));
            c["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}});
        });
    o.ok(&["run", "-d", "--bundle", b.dir(), "oe"]);
    wait_for(|| b.rootfs().join("ready").exists());
    let out = Scratch::new("events");
    let f = std::fs::File::create(out.path().join("ev")).unwrap();
    let mut ev = o
        .command()
        .args(["events", "--interval", "100ms", "oe"])
        .stdout(f)
        .spawn()
        .unwrap();
    wait_for(|| {
        std::fs::read_to_string(out.path().join("ev"))
            .unwrap()
            .contains(r#""type":"oom""#)
    });
    o.ok(&["delete", "--force", "oe"]);
    assert!(
        wait_child(&mut ev).success(),
        "events ends when the container is gone"
    );
}

#[test]
fn the_device_filter_allows_only_what_the_rules_allow() {
    let o = Onggi::new();
    // mknod of any node is allowed (c/b *:* m); opening is what the eBPF program decides.
    let script = "mknod /dev/myloop b 7 0; mknod /dev/mynull c 1 3; \
                  if (: < /dev/myloop) 2>&1 | grep -q 'Operation not permitted'; then echo loop-denied; else echo loop-allowed; fi; \
                  (: < /dev/mynull) && echo null-allowed";
    let caps = json!(["CAP_MKNOD", "CAP_KILL"]);
    let with_rules = |rules: serde_json::Value| {
        sh(script).with(|c| {
            c["process"]["capabilities"] =
                json!({"bounding": caps, "effective": caps, "permitted": caps});
            c["linux"]["resources"] = json!({"devices": rules});
        })
    };
    // The default config's deny-all, then the default allow-list: /dev/null yes, a disk no.
    let b = with_rules(json!([{"allow": false, "access": "rwm"}]));
    assert_eq!(o.output_of(&b), "loop-denied\nnull-allowed\n");
    // A later allow rule for b 7:0 opens it (whether a loop0 exists or not, it is not EPERM).
    let b = with_rules(
        json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]),
    );
    assert_eq!(o.output_of(&b), "loop-allowed\nnull-allowed\n");
}

#[test]
fn a_loaded_device_program_is_pinned_and_the_next_container_gets_it_back() {
    let o = Onggi::new();
    let caps = json!(["CAP_MKNOD", "CAP_KILL"]);
    let b = sh("mknod /dev/myloop b 7 0; \
                if (: < /dev/myloop) 2>&1 | grep -q 'Operation not permitted'; then echo loop-denied; fi; \
                (: < /dev/null) && echo null-allowed")
    .with(|c| {
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
        c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    });
    let traced = |id: &str| {
        let out = o.run(&["--trace", "run", "--bundle", b.dir(), id]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "loop-denied\nnull-allowed\n");
        trace_step(&text(&out.stderr), "cgroup_devices").to_string()
    };
    let first = traced("pin1");
    assert!(
        first.contains("BPF_PROG_LOAD") && first.contains("BPF_OBJ_PIN"),
        "{first}"
    );
    // The second container's filter is the pinned program: no load, and it still filters.
    let second = traced("pin2");
    assert!(
        second.contains("BPF_OBJ_GET") && !second.contains("BPF_PROG_LOAD"),
        "{second}"
    );
    // (bpffs itself shows maps.debug and progs.debug.)
    let pins = std::fs::read_dir(o.root.path().join(DEVICE_PROGRAMS))
        .expect("the pins' bpf filesystem")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("dev-"))
        .count();
    assert_eq!(pins, 1, "one program for one rule set");
}

#[test]
fn cpu_max_throttles_and_cpuset_pins() {
    if !has_controller("cpu") || !has_controller("cpuset") {
        return;
    }
    let o = Onggi::new();
    let path = unique("cpu");
    // A busy loop under 10 ms per 100 ms period must be throttled; cpus "0" pins it.
    let b = sh("grep Cpus_allowed_list /proc/self/status; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; touch /done; \
                while :; do sleep 0.05; done")
    .with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"cpu": {"quota": 10000, "period": 100000, "cpus": "0", "mems": "0"}});
    });
    let out = Scratch::new("cpu-out");
    let f = std::fs::File::create(out.path().join("o")).unwrap();
    assert!(o
        .command()
        .args(["run", "-d", "--bundle", b.dir(), "cpu"])
        .stdout(f)
        .status()
        .unwrap()
        .success());
    let dir = v2_mount().join(path.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(dir.join("cpu.max")).unwrap().trim(),
        "10000 100000"
    );
    wait_for(|| {
        let v: serde_json::Value =
            serde_json::from_str(&o.ok(&["events", "--stats", "cpu"])).unwrap();
        v["data"]["cpu"]["throttling"]["throttledPeriods"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    let read = || std::fs::read_to_string(out.path().join("o")).unwrap_or_default();
    wait_for(|| read().contains('\n'));
    assert_eq!(status_field(&read(), "Cpus_allowed_list"), "0");
    o.ok(&["delete", "--force", "cpu"]);
}

#[test]
fn io_weight_lands_in_its_file() {
    if !has_controller("io") {
        return;
    }
    let o = Onggi::new();
    let path = unique("io");
    let b = sh("touch /ready; while :; do sleep 0.05; done").with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"blockIO": {"weight": 500}});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "io"]);
    let dir = v2_mount().join(path.trim_start_matches('/'));
    let w = std::fs::read_to_string(dir.join("io.weight")).unwrap();
    assert!(w.lines().any(|l| l == "default 4950"), "{w}");
    o.ok(&["delete", "--force", "io"]);
}

#[test]
fn update_replaces_the_device_filter_live() {
    let o = Onggi::new();
    let caps = json!(["CAP_MKNOD"]);
    let b = sh("mknod /dev/myloop b 7 0; while :; do \
                  if (: < /dev/myloop) 2>&1 | grep -q 'Operation not permitted'; then echo denied > /st.tmp; else echo allowed > /st.tmp; fi; \
                  mv /st.tmp /state; sleep 0.05; done")
    .with(|c| {
        c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
        c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "dev"]);
    let state = || std::fs::read_to_string(b.rootfs().join("state")).unwrap_or_default();
    wait_for(|| state() == "denied\n");
    let rules = Scratch::new("rules");
    let f = rules.path().join("r.json");
    std::fs::write(
        &f,
        r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]}"#,
    )
    .unwrap();
    o.ok(&["update", "--resources", f.to_str().unwrap(), "dev"]);
    wait_for(|| state() == "allowed\n");
    o.ok(&["delete", "--force", "dev"]);
}

#[test]
fn a_controller_that_cannot_be_enabled_leaves_no_cgroup() {
    if !has_controller("hugetlb") || !has_hugepages() {
        return;
    }
    let o = Onggi::new();
    let parent = unique("busy");
    let pdir = v2_mount().join(parent.trim_start_matches('/'));
    std::fs::create_dir_all(&pdir).unwrap();
    // A process of the parent's own: its subtree_control can no longer take controllers.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(pdir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let leaf = format!("{parent}/leaf");
    let b = sh("true").with(|c| {
        c["linux"]["cgroupsPath"] = json!(leaf);
        c["linux"]["resources"] =
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]});
    });
    let e = o.fails(&["create", "--bundle", b.dir(), "busy"]);
    assert!(e.contains("no-internal-processes"), "{e}");
    assert!(
        !pdir.join("leaf").exists(),
        "the leaf onggi made is gone again"
    );
    assert!(o.leftovers().is_empty());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    wait_for(|| std::fs::remove_dir(&pdir).is_ok());
}

#[test]
fn exec_joins_a_sub_cgroup_and_delete_removes_sub_cgroups() {
    let o = Onggi::new();
    let path = unique("sub");
    let b = sh("touch /ready; while :; do sleep 0.05; done")
        .with(|c| c["linux"]["cgroupsPath"] = json!(path));
    o.ok(&["run", "-d", "--bundle", b.dir(), "sub"]);
    wait_for(|| b.rootfs().join("ready").exists());
    let dir = v2_mount().join(path.trim_start_matches('/'));
    std::fs::create_dir(dir.join("extra")).unwrap();
    let scratch = Scratch::new("sub");
    let pf = scratch.path().join("pid");
    o.ok(&[
        "exec",
        "-d",
        "--cgroup",
        "extra",
        "--pid-file",
        pf.to_str().unwrap(),
        "sub",
        "sleep",
        "30",
    ]);
    let pid = std::fs::read_to_string(&pf).unwrap();
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        host_view.lines().any(|l| l == format!("0::{path}/extra")),
        "{host_view}"
    );
    for bad in ["../", "nope", "/../.."] {
        let e = o.fails(&["exec", "--cgroup", bad, "sub", "true"]);
        assert!(e.contains("not a sub-cgroup"), "{bad}: {e}");
    }
    o.ok(&["delete", "-f", "sub"]);
    assert!(
        !dir.exists(),
        "delete removes the cgroup and its sub-cgroups"
    );
}

#[test]
fn update_of_the_period_alone_keeps_the_quota() {
    if !has_controller("cpu") {
        return;
    }
    let o = Onggi::new();
    let path = unique("cpumerge");
    let b = sh("sleep 600").with(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"cpu": {"quota": 50000, "period": 100000}});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "merge"]);
    let max = v2_mount()
        .join(path.trim_start_matches('/'))
        .join("cpu.max");
    o.ok(&["update", "--cpu-period", "200000", "merge"]);
    assert_eq!(
        std::fs::read_to_string(&max).unwrap().trim(),
        "50000 200000"
    );
    o.ok(&["update", "--cpu-quota", "20000", "merge"]);
    assert_eq!(
        std::fs::read_to_string(&max).unwrap().trim(),
        "20000 200000"
    );
    // docker update --restart always: every field 0 changes nothing.
    let zeros = r#"{"memory":{"limit":0,"reservation":0,"kernel":0},"cpu":{"shares":0,"quota":0,"period":0},"blockIO":{"weight":0}}"#;
    let f = o.root.path().join("zeros.json");
    std::fs::write(&f, zeros).unwrap();
    o.ok(&["update", "--resources", f.to_str().unwrap(), "merge"]);
    assert_eq!(
        std::fs::read_to_string(&max).unwrap().trim(),
        "20000 200000"
    );
    assert_eq!(o.status("merge"), "running");
    o.ok(&["delete", "--force", "merge"]);
}

#[test]
fn a_container_without_limits_still_has_memory_io_and_pids_accounting() {
    if !has_controller("memory") || !has_controller("pids") || !has_controller("io") {
        return;
    }
    let o = Onggi::new();
    let path = unique("acct");
    let b = sh("sleep 600").with(|c| c["linux"]["cgroupsPath"] = json!(path));
    o.ok(&["run", "-d", "--bundle", b.dir(), "acct"]);
    let dir = v2_mount().join(path.trim_start_matches('/'));
    for f in ["memory.current", "memory.stat", "pids.current", "io.stat"] {
        assert!(dir.join(f).exists(), "{f} in {}", dir.display());
    }
    o.ok(&["delete", "--force", "acct"]);
}
