//! linux.seccomp: what the filtered process really gets back from the kernel, for the actions,
//! conditions and profiles a container manager sends, including SCMP_ACT_NOTIFY.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// The `probe` example (built on first use): tries syscalls and prints `name=OK|ERRNO`.
fn probe() -> PathBuf {
    let exe = release_example("probe");
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let st = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--example", "probe"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo");
        assert!(st.success(), "cannot build examples/probe");
    });
    exe
}

/// A bundle that runs the probe (the host's libc bound in read-only) with `profile`.
fn probing(calls: &[&str], profile: Value) -> Bundle {
    let mut args = vec!["/probe"];
    args.extend_from_slice(calls);
    Bundle::new(&args).with(|c| {
        let ro = json!(["rbind", "ro"]);
        let mounts = c["mounts"].as_array_mut().unwrap();
        for d in ["/lib/x86_64-linux-gnu", "/lib64"] {
            mounts.push(json!({"destination": d, "type": "bind", "source": d, "options": ro}));
        }
        mounts.push(json!({"destination": "/probe", "type": "bind",
                           "source": probe(), "options": ro}));
        c["linux"]["seccomp"] = profile;
    })
}

fn errno_profile(names: &[&str]) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})
}

#[test]
fn errno_rules_hit_only_their_syscalls_and_the_filter_is_in_place() {
    let o = Onggi::new();
    let out = o.output_of(&probing(
        &["mkdir", "personality"],
        errno_profile(&["mkdir", "mkdirat"]),
    ));
    assert_eq!(out, "mkdir=EPERM\npersonality=OK\n");
    let b = sh("grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status")
        .with(|c| c["linux"]["seccomp"] = errno_profile(&["mkdir"]));
    let status = o.output_of(&b);
    assert_eq!(status_field(&status, "Seccomp"), "2", "{status}");
    // runc's default spec asks for no_new_privs; the filter does not need it then.
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
}

#[test]
fn without_no_new_privs_the_filter_is_loaded_with_a_held_cap_sys_admin_that_is_then_dropped() {
    let o = Onggi::new();
    let b = sh(
        "mkdir /x; echo mkdir=$?; grep -E '^(Seccomp|NoNewPrivs|CapEff|CapPrm):' /proc/self/status",
    )
    .with(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = errno_profile(&["mkdir", "mkdirat"]);
    });
    let out = o.output_of(&b);
    assert!(out.contains("mkdir=1"), "{out}");
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(
        status_field(&out, "NoNewPrivs"),
        "0",
        "setuid binaries keep working: {out}"
    );
    // runc's default capabilities: AUDIT_WRITE, KILL, NET_BIND_SERVICE; no CAP_SYS_ADMIN (21).
    assert_eq!(status_field(&out, "CapEff"), "0000000020000420", "{out}");
    assert_eq!(status_field(&out, "CapPrm"), "0000000020000420", "{out}");
}

#[test]
fn the_default_profile_blocks_namespaces_keyrings_and_ptrace_but_not_mkdir() {
    let o = Onggi::new();
    let profile: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/default-seccomp.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let out = o.output_of(&probing(
        &[
            "mkdir",
            "unshare",
            "keyctl",
            "ptrace",
            "personality",
            "nr1000",
        ],
        profile.clone(),
    ));
    // A syscall newer than the profile gets ENOSYS (a libc then falls back), as with runc;
    // one the profile knows and refuses gets its errno.
    assert_eq!(
        out,
        "mkdir=OK\nunshare=EPERM\nkeyctl=EPERM\nptrace=EPERM\npersonality=OK\nnr1000=ENOSYS\n"
    );
    // busybox's unshare: clone/unshare with namespace flags refused; a plain fork still works.
    let b = sh("unshare -u true; echo unshare=$?; (true) && echo fork=ok")
        .with(|c| c["linux"]["seccomp"] = profile);
    let out = o.output_of(&b);
    assert!(
        out.contains("fork=ok") && !out.contains("unshare=0"),
        "{out}"
    );
}

#[test]
fn conditions_kill_and_exec_follow_the_profile() {
    let o = Onggi::new();
    // kill(pid, 0) refused, kill(pid, SIGCONT) allowed: a condition on argument 1.
    let args_profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]});
    let b = sh("kill -0 $$; echo zero=$?; kill -CONT $$; echo cont=$?")
        .with(|c| c["linux"]["seccomp"] = args_profile);
    assert_eq!(o.output_of(&b), "zero=1\ncont=0\n");
    // SCMP_ACT_KILL_PROCESS: the process dies of SIGSYS (exit 128+31 through run).
    let b = probing(
        &["mkdir"],
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}),
    );
    let (code, out, _) = o.run_container(&b, "killed");
    assert_eq!(code, 128 + 31, "{out}");
    assert!(out.is_empty(), "the probe died before printing: {out}");
    // exec joins the container's filter too.
    let b = sh("touch /ready; while :; do sleep 0.05; done")
        .with(|c| c["linux"]["seccomp"] = errno_profile(&["mkdir", "mkdirat"]));
    o.ok(&["run", "-d", "--bundle", b.dir(), "ex"]);
    wait_for(|| b.rootfs().join("ready").exists());
    let out = o.run(&[
        "exec",
        "ex",
        "sh",
        "-c",
        "mkdir /y; echo $?; grep Seccomp: /proc/self/status",
    ]);
    assert_eq!(
        text(&out.stdout),
        "1\nSeccomp:\t2\n",
        "{}",
        text(&out.stderr)
    );
    o.ok(&["delete", "-f", "ex"]);
}

#[test]
fn a_bad_profile_is_refused_at_create_naming_the_field_and_leaves_nothing() {
    let o = Onggi::new();
    for (profile, want) in [
        (json!({"defaultAction": "SCMP_ACT_FLY"}), "SCMP_ACT_FLY"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}),
            "SCMP_ARCH_Z80",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]}]}),
            "SCMP_CMP_SIMILAR",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
            "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "index 7",
        ),
    ] {
        let b = sh("true").with(|c| c["linux"]["seccomp"] = profile);
        let e = o.fails(&["create", "--bundle", b.dir(), "bad"]);
        assert!(e.contains(want), "{want}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        assert!(o.leftovers().is_empty());
    }
    // An unknown syscall name is skipped (as runc does), not an error.
    let b = sh("echo fine").with(|c| c["linux"]["seccomp"] = errno_profile(&["no_such_syscall"]));
    assert_eq!(o.output_of(&b), "fine\n");
}

#[test]
fn notify_sends_the_listener_fd_and_the_container_state_and_the_agent_answers() {
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    let o = Onggi::new();
    let scratch = Scratch::new("notify");
    let sock = scratch.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let b = sh("mkdir /x; echo mkdir=$?; ls -d /x 2>&1 | head -c 0; echo done").with(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock, "listenerMetadata": "agent-data",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]});
    });
    let out = Scratch::new("notify-out");
    let f = std::fs::File::create(out.path().join("o")).unwrap();
    let mut fg = o
        .command()
        .args(["run", "--bundle", b.dir(), "nt"])
        .stdout(f)
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (text_msg, fd) = recv_one_fd(&conn);
    let m: Value = serde_json::from_str(&text_msg).expect("the message is JSON");
    assert_eq!(m["fds"], json!(["seccompFd"]));
    assert_eq!(m["metadata"], "agent-data");
    assert_eq!(m["state"]["id"], "nt");
    assert!(
        m["pid"].as_i64().unwrap() > 1,
        "the pid as the host sees it: {m}"
    );
    assert!(m["state"]["bundle"].is_string());
    // The agent's side: the container's mkdir waits for our answer; we say EROFS.
    assert_eq!(m["pid"], o.state("nt")["pid"], "the init's host pid");
    let req = ScmpNotifReq::receive(fd.as_raw_fd()).expect("a notification");
    assert!(req.pid > 1, "the host pid of the caller (sh's mkdir child)");
    ScmpNotifResp::new_error(req.id, -libc::EROFS, ScmpNotifRespFlags::empty())
        .respond(fd.as_raw_fd())
        .expect("respond");
    assert_eq!(wait_child(&mut fg).code(), Some(0));
    let mut seen = String::new();
    std::fs::File::open(out.path().join("o"))
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    assert!(seen.contains("mkdir=1"), "{seen}");
}

#[test]
fn the_init_prepares_its_filter_before_the_gate_and_installs_it_last() {
    // A runtime-tools/Docker-shaped allow-list (default ERRNO, hundreds of names, three archs)
    // that predates close_range. Generating its BPF takes milliseconds: the init must do it
    // before it reports Ready, not between `start` and the user process (a signal sent right
    // after `start` found no trap yet: runtime-tools killsig). Installing it is the last step
    // before execve, so what onggi does after the gate (close_range here) is not filtered.
    // The trace shows the order.
    let o = Onggi::new();
    let names: Vec<String> = (0..450)
        .filter_map(|nr| {
            libseccomp::ScmpSyscall::from(nr)
                .get_name()
                .ok()
                .filter(|n| n != "close_range")
        })
        .collect();
    assert!(names.len() > 300);
    let b = sh("ls /proc/self/fd | tr '\\n' ' '").with(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]});
    });
    let logs = Scratch::new("seccomp-order");
    let log = logs.path().join("log");
    let out = o.run(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "run",
        "--bundle",
        b.dir(),
        "order",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Only stdio and ls's own directory fd are open in the process.
    assert_eq!(text(&out.stdout), "0 1 2 3 ", "{}", text(&out.stderr));
    let trace = std::fs::read_to_string(&log).unwrap();
    let at = |step: &str| {
        trace
            .find(&format!("step={step} "))
            .unwrap_or_else(|| panic!("no {step} step in the trace:\n{trace}"))
    };
    assert!(
        at("seccomp_bpf") < at("gate") && at("gate") < at("seccomp"),
        "the filter is generated before the gate and installed after it:\n{trace}"
    );
}

#[test]
fn a_strict_profile_that_kills_still_runs_the_program() {
    // defaultAction SCMP_ACT_KILL with an allow-list that predates close_range: onggi's own
    // steps after the gate (close_range among them) come before the filter, so the program
    // runs and prints instead of the init dying of SIGSYS.
    let o = Onggi::new();
    let names: Vec<String> = (0..450)
        .filter_map(|nr| libseccomp::ScmpSyscall::from(nr).get_name().ok())
        .filter(|n| n != "close_range")
        .collect();
    let b = sh("echo ran").with(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_KILL",
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]});
    });
    assert_eq!(o.output_of(&b), "ran\n");
}

/// The compiled filter is cached in the state root and the cache is only ever a shortcut: a
/// second container with the same profile takes it from there (the trace says so) and gets the
/// same filter; a damaged entry is compiled again and rewritten; `list` never shows the cache.
#[test]
fn a_compiled_filter_comes_from_the_cache_the_second_time_and_a_damaged_entry_is_recompiled() {
    let o = Onggi::new();
    let b = sh("mkdir /x; echo mkdir=$?")
        .with(|c| c["linux"]["seccomp"] = errno_profile(&["mkdir", "mkdirat"]));
    let traced = |id: &str| {
        let out = o.run(&["--trace", "run", "-b", b.dir(), id]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (
            text(&out.stdout),
            trace_step(&text(&out.stderr), "seccomp_compile").to_string(),
        )
    };
    let (out, step) = traced("sc1");
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(step.contains("seccomp_rule_add"), "{step}");
    let cache = o.root.path().join(SECCOMP_CACHE);
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("the cache")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (out, step) = traced("sc2");
    assert!(
        out.contains("mkdir=1"),
        "the cached filter is the same filter: {out}"
    );
    assert!(step.contains("from the cache"), "{step}");
    std::fs::write(&entries[0], b"{\"key\": \"not this\"").expect("damage the entry");
    let (out, step) = traced("sc3");
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(
        step.contains("seccomp_rule_add"),
        "a damaged entry is a miss: {step}"
    );
    let (_, step) = traced("sc4");
    assert!(
        step.contains("from the cache"),
        "the entry was rewritten: {step}"
    );
    assert_eq!(o.ok(&["list", "-q"]), "");
}
