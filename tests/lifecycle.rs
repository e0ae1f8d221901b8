//! The OCI lifecycle through runc's CLI: create, state, start, kill, delete, run, list, spec,
//! features, --version, and the statuses a manager sees at each step.

mod common;
use common::*;
use serde_json::Value;

/// A process that exits 3 on SIGTERM (as PID 1 it needs a handler to be signalled at all). It
/// touches /ready once the handler is in place: `running` only means execve happened, and a
/// SIGTERM sent before the trap exists is ignored by a PID 1 (as with any runtime).
const WAIT_FOR_TERM: &str = "trap 'exit 3' TERM; touch /ready; while :; do sleep 0.05; done";

/// Waits until a WAIT_FOR_TERM container has its TERM handler.
fn trapped(b: &Bundle) {
    wait_for(|| b.rootfs().join("ready").exists());
}

#[test]
fn create_start_kill_delete_with_statuses() {
    let o = Onggi::new();
    let b = sh(WAIT_FOR_TERM);
    let pidfile = Scratch::new("pid");
    let pf = pidfile.path().join("c.pid");
    o.ok(&[
        "create",
        "--bundle",
        b.dir(),
        "--pid-file",
        pf.to_str().unwrap(),
        "c1",
    ]);

    // The pid file: the bare host pid, no newline, present when create returns.
    let pid_text = std::fs::read_to_string(&pf).expect("pid file exists after create");
    assert!(
        !pid_text.ends_with('\n'),
        "pid file must have no newline: {pid_text:?}"
    );
    let pid: i32 = pid_text.parse().expect("bare decimal pid");

    let st = o.state("c1");
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["id"], "c1");
    assert_eq!(st["ociVersion"], "1.2.1");
    assert_eq!(st["bundle"], b.dir());
    assert!(st["annotations"].is_object());
    // The init really exists on the host, waiting in its own pid namespace.
    let host_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("init exists");
    assert_ne!(host_ns, init_ns);

    o.ok(&["start", "c1"]);
    assert_eq!(o.status("c1"), "running");
    let again = o.fails(&["start", "c1"]);
    assert!(again.contains("already running"), "{again}");
    trapped(&b);

    o.ok(&["kill", "c1", "TERM"]);
    wait_for(|| o.status("c1") == "stopped");
    assert_eq!(o.state("c1")["pid"], 0);

    let e = o.fails(&["kill", "c1", "KILL"]);
    assert!(e.contains("container not running"), "{e}");
    o.run(&["kill", "--all", "c1", "KILL"])
        .status
        .success()
        .then_some(())
        .expect("kill --all on stopped is silent");

    o.ok(&["delete", "c1"]);
    assert!(
        o.leftovers().is_empty(),
        "state directory left: {:?}",
        o.leftovers()
    );
    let e = o.fails(&["state", "c1"]);
    assert!(e.contains("container does not exist"), "{e}");
    // delete --force of a missing id: silent success.
    let out = o.run(&["delete", "--force", "c1"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn signals_by_name_and_number() {
    let o = Onggi::new();
    for (i, sig) in ["TERM", "SIGTERM", "15", "sigterm"].iter().enumerate() {
        let id = format!("s{i}");
        let b = sh(WAIT_FOR_TERM);
        o.ok(&["run", "-d", "--bundle", b.dir(), &id]);
        trapped(&b);
        o.ok(&["kill", &id, sig]);
        wait_for(|| o.status(&id) == "stopped");
        o.ok(&["delete", &id]);
    }
    // The bundle lives until the end of the test: a temporary would be removed while the
    // container starts, and its `touch /ready` would leave the directory behind in /tmp.
    let bad = sh(WAIT_FOR_TERM);
    o.ok(&["run", "-d", "--bundle", bad.dir(), "bad"]);
    let e = o.fails(&["kill", "bad", "SIGFOO"]);
    assert!(e.contains("SIGFOO"), "the error names the signal: {e}");
    assert_eq!(o.status("bad"), "running", "a bad signal changes nothing");
    o.ok(&["delete", "--force", "bad"]);
    assert!(o.leftovers().is_empty());
}

#[test]
fn kill_reaches_a_created_container() {
    // runc's init dies of a catchable signal while it waits for start; so does onggi's.
    let o = Onggi::new();
    o.ok(&["create", "--bundle", sh("exit 0").dir(), "k"]);
    o.ok(&["kill", "k", "TERM"]);
    wait_for(|| o.status("k") == "stopped");
    o.ok(&["delete", "k"]);
}

#[test]
fn delete_refuses_a_live_container_without_force() {
    let o = Onggi::new();
    let b = sh("sleep 600");
    o.ok(&["run", "-d", "--bundle", b.dir(), "d"]);
    let e = o.fails(&["delete", "d"]);
    assert!(e.contains("not stopped"), "{e}");
    assert_eq!(o.status("d"), "running", "a refused delete has no effect");
    let pid = o.state("d")["pid"].as_i64().unwrap();
    o.ok(&["delete", "--force", "d"]);
    assert!(
        exited(pid),
        "delete --force returns once the init has exited"
    );
    assert!(o.leftovers().is_empty());
}

#[test]
fn run_in_the_foreground_returns_the_exit_code_and_cleans_up() {
    let o = Onggi::new();
    let (code, out, _) = o.run_container(&sh("echo out; exit 7"), "fg");
    assert_eq!(code, 7);
    assert_eq!(
        out, "out\n",
        "the container's stdout is onggi's stdout, and onggi adds nothing"
    );
    assert!(
        o.leftovers().is_empty(),
        "run deletes the container: {:?}",
        o.leftovers()
    );
    // Killed by a signal (from the host: PID 1 ignores even SIGKILL from inside its own
    // namespace): 128 + N, as a shell reports it.
    let b = sh(WAIT_FOR_TERM);
    let mut fg = o
        .command()
        .args(["run", "--bundle", b.dir(), "sig"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| o.run(&["state", "sig"]).status.success() && o.status("sig") == "running");
    o.ok(&["kill", "sig", "KILL"]);
    assert_eq!(wait_child(&mut fg).code(), Some(137));
    assert!(o.leftovers().is_empty());
}

#[test]
fn run_relays_signals_to_the_container() {
    let o = Onggi::new();
    let b = sh(WAIT_FOR_TERM);
    let mut fg = o
        .command()
        .args(["run", "--bundle", b.dir(), "relay"])
        .spawn()
        .unwrap();
    trapped(&b);
    // SIGTERM to onggi itself reaches the container, whose trap exits 3.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_child(&mut fg).code(), Some(3));
}

#[test]
fn run_detached_returns_while_the_container_runs() {
    let o = Onggi::new();
    let b = sh(WAIT_FOR_TERM);
    o.ok(&["run", "-d", "--bundle", b.dir(), "bg"]);
    assert_eq!(o.status("bg"), "running");
    trapped(&b);
    o.ok(&["kill", "bg"]);
    wait_for(|| o.status("bg") == "stopped");
    o.ok(&["delete", "bg"]);
}

#[test]
fn a_container_without_process_can_be_created_not_started() {
    let o = Onggi::new();
    let b = sh("true").with(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    o.ok(&["create", "--bundle", b.dir(), "np"]);
    assert_eq!(o.status("np"), "created");
    let e = o.fails(&["start", "np"]);
    assert!(e.contains("no process"), "{e}");
    wait_for(|| o.status("np") == "stopped");
    o.ok(&["delete", "np"]);
}

#[test]
fn list_table_quiet_and_json() {
    let o = Onggi::new();
    o.ok(&["create", "--bundle", sh("true").dir(), "l1"]);
    o.ok(&["create", "--bundle", sh("true").dir(), "l2"]);
    assert_eq!(o.ok(&["list", "-q"]), "l1\nl2\n");
    let table = o.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.lines().nth(1).unwrap().contains("created"), "{table}");
    let v: Value = serde_json::from_str(&o.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["id"], "l1");
    assert_eq!(o.ok(&["ls", "-q"]), "l1\nl2\n");
    o.ok(&["delete", "-f", "l1"]);
    o.ok(&["delete", "-f", "l2"]);
}

#[test]
fn spec_writes_a_runc_style_config_and_never_overwrites() {
    let d = Scratch::new("spec");
    let o = Onggi::new();
    o.ok(&["spec", "--bundle", d.path().to_str().unwrap()]);
    let v: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["process"]["args"][0], "sh");
    assert_eq!(v["process"]["terminal"], true);
    assert!(
        v["process"]["capabilities"].get("inheritable").is_none(),
        "no inheritable caps by default"
    );
    let e = o.fails(&["spec", "--bundle", d.path().to_str().unwrap()]);
    assert!(e.contains("exists already"), "{e}");
    // Without --bundle: the current directory.
    let d2 = Scratch::new("spec2");
    let st = o
        .command()
        .arg("spec")
        .current_dir(d2.path())
        .status()
        .unwrap();
    assert!(st.success() && d2.path().join("config.json").exists());
}

#[test]
fn features_are_truthful() {
    let o = Onggi::new();
    let v: Value = serde_json::from_str(&o.ok(&["features"])).unwrap();
    assert_eq!(v["ociVersionMax"], "1.2.1");
    let sc = &v["linux"]["seccomp"];
    assert_eq!(sc["enabled"], true);
    // Every action it lists is one a container can really use (NOTIFY needs a listener).
    for a in sc["actions"].as_array().unwrap() {
        if a == "SCMP_ACT_NOTIFY" {
            continue;
        }
        let b = sh("true").with(|c| {
            c["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["acct"], "action": a}]})
        });
        assert_eq!(o.run_container(&b, "feat").0, 0, "{a}");
    }
    assert!(sc["operators"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "SCMP_CMP_MASKED_EQ"));
    assert_eq!(v["linux"]["cgroup"]["v1"], false);
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(ns.contains(&"pid") && ns.contains(&"user"), "{ns:?}");
    // Every memory policy mode it lists really works here.
    for m in v["linux"]["memoryPolicy"]["modes"].as_array().unwrap() {
        let nodes = !matches!(m.as_str(), Some("MPOL_DEFAULT" | "MPOL_LOCAL"));
        let b = sh("true").with(|c| {
            c["linux"]["memoryPolicy"] = if nodes {
                serde_json::json!({"mode": m, "nodes": "0"})
            } else {
                serde_json::json!({"mode": m})
            }
        });
        assert_eq!(o.run_container(&b, "feat").0, 0, "{m}");
    }
    assert!(v["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "rro"));
}

#[test]
fn version_prints_runc_style_lines() {
    let o = Onggi::new();
    let out = o.ok(&["--version"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("onggi version "), "{out}");
    assert!(lines[1].starts_with("commit: "), "{out}");
    assert_eq!(lines[2], "spec: 1.2.1");
}

#[test]
fn an_existing_id_is_refused_and_the_first_container_is_untouched() {
    let o = Onggi::new();
    o.ok(&["create", "--bundle", sh("true").dir(), "dup"]);
    let pid = o.state("dup")["pid"].clone();
    let e = o.fails(&["create", "--bundle", sh("true").dir(), "dup"]);
    assert!(e.contains("exists already"), "{e}");
    assert_eq!(o.status("dup"), "created");
    assert_eq!(o.state("dup")["pid"], pid);
    o.ok(&["delete", "-f", "dup"]);
}

#[test]
fn config_changes_after_create_do_not_affect_the_container() {
    let o = Onggi::new();
    let b = sh("echo first");
    let out = Scratch::new("out");
    let file = std::fs::File::create(out.path().join("stdout")).unwrap();
    // The container's stdio is create's stdio: here a file the test reads afterwards.
    let st = o
        .command()
        .args(["create", "--bundle", b.dir(), "cfg"])
        .stdout(file)
        .status()
        .unwrap();
    assert!(st.success());
    let _b = b.with(|c| c["process"]["args"] = serde_json::json!(["sh", "-c", "echo second"]));
    o.ok(&["start", "cfg"]);
    wait_for(|| o.status("cfg") == "stopped");
    assert_eq!(
        std::fs::read_to_string(out.path().join("stdout")).unwrap(),
        "first\n"
    );
    o.ok(&["delete", "cfg"]);
}

#[test]
fn a_state_file_onggi_cannot_read_is_reported_and_delete_force_still_cleans_up() {
    // state.json truncated, or written by an incompatible onggi: every command says so in one
    // line, `list` still lists the others, and `delete --force` kills the init it names (same
    // pid and start time only), removes the cgroup onggi made and the directory.
    let o = Onggi::new();
    o.ok(&["create", "--bundle", sh("true").dir(), "fine"]);
    o.ok(&["create", "--bundle", sh("true").dir(), "broken"]);
    let st = o.state("broken");
    let pid = st["pid"].as_i64().expect("pid");
    let path = o.root.path().join("broken/state.json");
    let saved = std::fs::read_to_string(&path).expect("state.json");
    let cgroup: Option<std::path::PathBuf> = serde_json::from_str::<Value>(&saved).expect("json")
        ["cgroup"]
        .as_str()
        .map(Into::into);
    // Keep pid and start time, drop the rest (as a half-written or older file would).
    let v: Value = serde_json::from_str(&saved).expect("json");
    let partial = serde_json::json!({
        "id": "broken", "pid": v["pid"], "pid_start_time": v["pid_start_time"],
        "cgroup": v["cgroup"], "cgroup_created": v["cgroup_created"]});
    std::fs::write(&path, partial.to_string()).expect("write");
    let err = o.fails(&["state", "broken"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("broken: corrupt state.json"), "{err}");
    let out = o.run(&["list", "-q"]);
    assert_eq!(text(&out.stdout), "fine\n");
    assert!(text(&out.stderr).contains("delete --force broken"));
    let err = o.fails(&["delete", "broken"]);
    assert!(err.contains("`delete --force broken` removes it"), "{err}");
    assert!(!exited(pid), "a refused delete kills nothing");
    let out = o.run(&["delete", "--force", "broken"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(exited(pid), "the init it named is gone");
    assert!(
        text(&out.stderr).contains(&format!("killed its init (pid {pid})")),
        "{}",
        text(&out.stderr)
    );
    if let Some(cg) = cgroup {
        assert!(!cg.exists(), "{} removed", cg.display());
    }
    assert_eq!(o.leftovers(), ["fine"]);
    o.ok(&["delete", "--force", "fine"]);
}
