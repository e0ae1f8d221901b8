//! `onggi spec` with docker run's flags: each flag is checked by running the bundle it writes
//! and looking at what the container sees.

mod common;
use common::*;
use std::process::Command;

/// A bundle (rootfs copy + the config `onggi spec FLAGS` writes), without a terminal.
fn spec(flags: &[&str]) -> Scratch {
    let s = Scratch::new("spec");
    let src = format!("{}/bundles/rootfs", env!("CARGO_MANIFEST_DIR"));
    let st = Command::new("cp")
        .args(["-a", &src])
        .arg(s.path().join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(onggi_bin())
        .args(["spec", "--bundle"])
        .arg(s.path())
        .arg("--tty=false")
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "onggi spec {flags:?}: {}",
        text(&out.stderr)
    );
    s
}

/// Runs the bundle in the foreground: (exit code, stdout + stderr).
fn run(s: &Scratch) -> (i32, String) {
    let o = Onggi::new();
    // The id names the default cgroup (/ID): one per container, as tests run in parallel.
    let id = s.path().file_name().unwrap().to_str().unwrap().to_string();
    let out = o.run(&["run", "--bundle", s.path().to_str().unwrap(), &id]);
    let both = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out.status.code().unwrap_or(-1), both.trim().to_string())
}

fn config(s: &Scratch) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(s.path().join("config.json")).unwrap()).unwrap()
}

#[test]
fn env_cwd_hostname_and_user_reach_the_process() {
    let f = Scratch::new("envfile");
    let env_file = f.path().join("env");
    std::fs::write(&env_file, "# a comment\nB=from-file\n\n").unwrap();
    let b = spec(&[
        "-e",
        "A=1",
        "--env-file",
        env_file.to_str().unwrap(),
        "--cwd",
        "/tmp",
        "--hostname",
        "box",
        "--user",
        "1000:1000",
        "--",
        "sh",
        "-c",
        "echo $A $B $(pwd) $(hostname) $(id -u):$(id -g)",
    ]);
    assert_eq!(run(&b), (0, "1 from-file /tmp box 1000:1000".into()));
}

#[test]
fn args_split_at_spaces() {
    let b = spec(&["--args", "echo one two"]);
    assert_eq!(run(&b), (0, "one two".into()));
}

#[test]
fn mounts_tmpfs_and_read_only_root() {
    let host = Scratch::new("data");
    std::fs::write(host.path().join("f"), "from-host\n").unwrap();
    let v = format!("{}:/data:ro", host.path().display());
    let b = spec(&[
        "-v", &v, "--tmpfs", "/scratch", "--read-only", "--",
        "sh", "-c",
        "cat /data/f; touch /data/x 2>/dev/null || echo data-ro; touch /scratch/y && echo tmpfs-rw; touch /z 2>/dev/null || echo root-ro",
    ]);
    assert_eq!(run(&b), (0, "from-host\ndata-ro\ntmpfs-rw\nroot-ro".into()));
    let b = spec(&[
        "--read-only=false",
        "--",
        "sh",
        "-c",
        "touch /z && echo root-rw",
    ]);
    assert_eq!(run(&b), (0, "root-rw".into()));
}

#[test]
fn net_and_pid_namespaces() {
    let b = spec(&["--net", "none", "--", "ls", "/sys/class/net"]);
    assert_eq!(run(&b), (0, "lo".into()));
    let host_ifaces = std::fs::read_dir("/sys/class/net").unwrap().count();
    let b = spec(&[
        "--net",
        "host",
        "--",
        "sh",
        "-c",
        "ls /sys/class/net | wc -l",
    ]);
    assert_eq!(run(&b), (0, host_ifaces.to_string()));
    let b = spec(&[
        "--pid",
        "host",
        "--",
        "sh",
        "-c",
        "test $$ != 1 && echo not-pid-1",
    ]);
    assert_eq!(run(&b), (0, "not-pid-1".into()));
}

#[test]
fn capabilities_drop_all_then_add_one() {
    let b = spec(&[
        "--cap-drop",
        "ALL",
        "--cap-add",
        "net_bind_service",
        "--",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(run(&b), (0, "CapEff:\t0000000000000400".into()));
}

#[test]
fn seccomp_default_is_podmans_profile_and_unconfined_is_none() {
    let script = "grep ^Seccomp: /proc/self/status; unshare -u true 2>/dev/null && echo allowed || echo blocked";
    let b = spec(&["--seccomp", "default", "--", "sh", "-c", script]);
    assert_eq!(run(&b), (0, "Seccomp:\t2\nblocked".into()));
    // Root with CAP_SYS_ADMIN: the profile's rules for that capability allow unshare.
    let b = spec(&[
        "--seccomp",
        "default",
        "--cap-add",
        "SYS_ADMIN",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(run(&b), (0, "Seccomp:\t2\nallowed".into()));
    let b = spec(&[
        "--seccomp",
        "unconfined",
        "--",
        "grep",
        "^Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(run(&b), (0, "Seccomp:\t0".into()));
}

#[test]
fn limits_land_in_the_config_and_in_the_cgroup() {
    let b = spec(&[
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "--",
        "cat",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
        "/sys/fs/cgroup/cpu.max",
    ]);
    let r = &config(&b)["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 67108864);
    assert_eq!(r["pids"]["limit"], 20);
    assert_eq!(
        r["cpu"],
        serde_json::json!({"quota": 50000, "period": 100000})
    );
    if has_controller("memory") && has_controller("pids") && has_controller("cpu") {
        assert_eq!(run(&b), (0, "67108864\n20\n50000 100000".into()));
    }
}

#[test]
fn a_bad_value_is_one_line_naming_the_flag_and_writes_nothing() {
    for (flags, flag) in [
        (&["--memory", "lots"][..], "--memory"),
        (&["--user", "bob"], "--user"),
        (&["--cap-add", "CAP_FLY"], "--cap-add"),
        (&["--net", "bridge"], "--net"),
        (&["-v", "/nonexistent-src:/x"], "--mount"),
        (&["--seccomp", "/nonexistent.json"], "--seccomp"),
        (&["--pids-limit", "0"], "--pids-limit"),
    ] {
        let s = Scratch::new("bad");
        let out = Command::new(onggi_bin())
            .args(["spec", "--bundle"])
            .arg(s.path())
            .args(flags)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{flags:?}");
        assert!(
            err.starts_with(&format!("onggi: error: {flag}")),
            "{flags:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            !s.path().join("config.json").exists(),
            "{flags:?} wrote a config"
        );
    }
}
