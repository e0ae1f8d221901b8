//! `--trace` and `--trace-format json`: the setup steps a real container goes through, in the
//! order the runtime takes them, on stderr, without touching the container's own output.

mod common;
use common::*;
use serde_json::{json, Value};

/// A bundle whose trace touches every kind of step a student is shown: a hostname, a
/// capability set, a seccomp filter, the namespaces.
fn traced_bundle() -> Bundle {
    sh("echo out-of-the-container").with(|c| {
        c["hostname"] = json!("traced");
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]});
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    })
}

fn position(lines: &[String], step: &str) -> usize {
    lines
        .iter()
        .position(|l| l.split_whitespace().nth(3) == Some(step))
        .unwrap_or_else(|| panic!("no step {step} in the trace:\n{}", lines.join("\n")))
}

#[test]
fn trace_prints_each_step_in_order_with_its_kernel_calls() {
    let o = Onggi::new();
    let b = traced_bundle();
    let out = o.run(&["--trace", "run", "--bundle", b.dir(), "traced"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The container's own output is untouched: the trace is on stderr only.
    assert_eq!(text(&out.stdout), "out-of-the-container\n");
    let lines: Vec<String> = text(&out.stderr).lines().map(String::from).collect();
    // "+   1.204ms onggi clone3   clone3(...) = pid N  (515us)"
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(
            f.len() >= 4 && f[0] == "+" && f[1].ends_with("ms"),
            "not a trace line: {l:?}"
        );
        assert!(["onggi", "init"].contains(&f[2]), "who: {l:?}");
    }
    let order = [
        "load_config",
        "seccomp_compile",
        "mount_template",
        "state_dir",
        "clone3",
        "enter_template",
        "mounts",
        "pivot_root",
        "hostname",
        "capabilities",
        "seccomp_bpf",
        "gate",
        "start_gate",
    ];
    let at: Vec<usize> = order.iter().map(|s| position(&lines, s)).collect();
    // start_gate (onggi) and the init's last steps race; everything the init does before its
    // gate comes in this order, and the filter is installed after the gate.
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "steps out of order:\n{}",
        lines.join("\n")
    );
    assert!(
        position(&lines, "gate") < position(&lines, "seccomp"),
        "the filter is installed after the gate:\n{}",
        lines.join("\n")
    );
    let line = |s: &str| lines[position(&lines, s)].clone();
    assert!(
        line("clone3").contains("CLONE_NEWPID"),
        "{}",
        line("clone3")
    );
    assert!(line("clone3").contains(" onggi "), "{}", line("clone3"));
    // The init makes its mount namespace itself, as a copy of the mount template.
    assert!(
        !line("clone3").contains("CLONE_NEWNS"),
        "{}",
        line("clone3")
    );
    assert!(
        line("enter_template").contains(" init ")
            && line("enter_template").contains("unshare(CLONE_NEWNS)"),
        "{}",
        line("enter_template")
    );
    assert!(line("mounts").contains(" init "), "{}", line("mounts"));
    assert!(line("mounts").contains("mount(proc, /proc, proc"));
    assert!(line("hostname").contains("sethostname(\"traced\")"));
    assert!(line("capabilities").contains("effective=CAP_KILL"));
    assert!(
        line("seccomp").contains("rules, default SCMP_ACT_ALLOW"),
        "{}",
        line("seccomp")
    );
    assert!(line("execve").contains("execve(\"/bin/sh\""));
    assert!(
        line("pivot_root").ends_with("us)"),
        "timed: {}",
        line("pivot_root")
    );
}

#[test]
fn trace_format_json_is_one_object_per_line() {
    let o = Onggi::new();
    let b = traced_bundle();
    let out = o.run(&[
        "--trace",
        "--trace-format",
        "json",
        "run",
        "--bundle",
        b.dir(),
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let find = |s: &str| {
        events
            .iter()
            .find(|e| e["step"] == s)
            .unwrap_or_else(|| panic!("no {s} in {events:?}"))
    };
    let clone3 = find("clone3");
    assert_eq!(clone3["who"], "onggi");
    let init_pid = o_pid(clone3);
    let mounts = find("mounts");
    assert_eq!(mounts["who"], "init");
    // The init reports with its host pid, the one clone3 returned.
    assert_eq!(mounts["pid"].as_i64(), Some(init_pid));
    assert!(mounts["calls"].as_array().is_some_and(|c| c.len() >= 3));
    assert!(mounts["took_us"].is_u64() && mounts["t_us"].is_u64());
    assert!(
        find("gate").get("took_us").is_none(),
        "a moment is not timed"
    );
}

/// The pid in clone3's "clone3(…) = pid N".
fn o_pid(clone3: &Value) -> i64 {
    let call = clone3["calls"][0].as_str().unwrap();
    call.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_failing_step_is_marked_in_the_trace_and_nothing_is_left() {
    let o = Onggi::new();
    let b = sh("true").with(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/bad", "type": "no-such-fs", "source": "x"}));
    });
    let out = o.run(&["--trace", "run", "--bundle", b.dir(), "bad"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let mounts = trace_step(&err, "mounts");
    assert!(mounts.contains("FAILED"), "{mounts}");
    assert!(mounts.contains("/bad"), "{mounts}");
    assert!(o.leftovers().is_empty());
}

#[test]
fn exec_is_traced_as_the_joining_process() {
    let o = Onggi::new();
    let b = sh("touch /ready; while :; do sleep 0.05; done");
    o.ok(&["run", "-d", "--bundle", b.dir(), "ex"]);
    wait_for(|| b.rootfs().join("ready").exists());
    let out = o.run(&["--trace", "exec", "ex", "echo", "joined"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "joined\n");
    let err = text(&out.stderr);
    let setns = trace_step(&err, "setns");
    assert!(setns.contains(" exec "), "{setns}");
    assert!(
        setns.contains("CLONE_NEWPID") || setns.contains("pid"),
        "{setns}"
    );
    assert!(err
        .lines()
        .any(|l| l.contains(" exec ") && l.contains("execve(")));
    o.ok(&["delete", "--force", "ex"]);
}

/// The events of a Chrome trace as onggi writes it: `[`, then one event per line, each with a
/// trailing comma (the closing bracket may be left out, as the format allows).
fn chrome_events(trace: &str) -> Vec<Value> {
    let body = trace.trim_start();
    let body = body
        .strip_prefix('[')
        .expect("a Chrome trace starts with [");
    let body = body.trim_end().trim_end_matches(',');
    serde_json::from_str(&format!("[{body}]")).unwrap_or_else(|e| panic!("{e}: {trace}"))
}

/// `onggi --trace --trace-format chrome run` of bundle `b` as container `id`.
fn chrome_run(o: &Onggi, b: &Bundle, id: &str) -> std::process::Output {
    let out = o.run(&[
        "--trace",
        "--trace-format",
        "chrome",
        "run",
        "--bundle",
        b.dir(),
        id,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

#[test]
fn trace_format_chrome_is_a_trace_event_array_with_a_track_per_process() {
    let o = Onggi::new();
    let b = traced_bundle();
    let out = chrome_run(&o, &b, "chr");
    assert_eq!(text(&out.stdout), "out-of-the-container\n");
    let events = chrome_events(&text(&out.stderr));
    let tracks: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert!(tracks[0].starts_with("onggi (pid ") && tracks[1].starts_with("init (pid "));
    let step = |s: &str| {
        events
            .iter()
            .find(|e| e["name"] == s)
            .unwrap_or_else(|| panic!("no {s} in {events:?}"))
    };
    let (clone3, mounts) = (step("clone3"), step("mounts"));
    assert_eq!(
        (&clone3["ph"], &clone3["cat"]),
        (&json!("X"), &json!("onggi"))
    );
    assert_eq!(
        mounts["pid"].as_i64(),
        Some(o_pid(&json!({"calls": clone3["args"]["calls"]})))
    );
    assert!(mounts["args"]["calls"]
        .as_array()
        .is_some_and(|c| c.len() >= 3));
    // One clock for both processes: the init's mounts come after the clone3 that made it.
    let end = |e: &Value| e["ts"].as_u64().unwrap() + e["dur"].as_u64().unwrap_or(0);
    assert!(mounts["ts"].as_u64().unwrap() >= end(clone3) - clone3["dur"].as_u64().unwrap());
    assert!(end(mounts) <= end(step("cgroup_remove")));
    assert_eq!(step("gate")["ph"], "i", "a moment is an instant event");
}

#[test]
fn the_svg_timeline_of_a_trace_is_well_formed_and_names_every_step() {
    let o = Onggi::new();
    let b = traced_bundle();
    let out = chrome_run(&o, &b, "svg");
    let trace = b.scratch.path().join("trace.json");
    std::fs::write(&trace, &out.stderr).expect("write the trace");
    let render = std::process::Command::new(release_example("trace-svg"))
        .arg(&trace)
        .output()
        .expect("trace-svg (make test builds the examples)");
    assert!(render.status.success(), "{}", text(&render.stderr));
    let svg = text(&render.stdout);
    let svg_file = b.scratch.path().join("trace.svg");
    std::fs::write(&svg_file, &svg).expect("write the svg");
    well_formed_xml(&svg_file);
    for e in chrome_events(&text(&out.stderr))
        .iter()
        .filter(|e| e["ph"] != "M")
    {
        let name = e["name"].as_str().unwrap();
        assert!(
            svg.contains(&format!(" {name} ")),
            "the SVG does not name {name}"
        );
    }
}
