//! `exec` and `ps`: the joined process shares every namespace and the cgroup of the init, gets
//! the configured user, capabilities and environment, and nothing from the host.

mod common;
use common::*;
use serde_json::json;
use std::os::fd::AsRawFd;

/// A running container whose init loops until killed. Keep the returned Bundle alive: dropping
/// it deletes the rootfs under the running container.
fn running(o: &Onggi, id: &str) -> (Bundle, i64) {
    let b = sh("touch /ready; while :; do sleep 0.05; done");
    o.ok(&["run", "-d", "--bundle", b.dir(), id]);
    wait_for(|| b.rootfs().join("ready").exists());
    let pid = o.state(id)["pid"].as_i64().unwrap();
    (b, pid)
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_init() {
    let o = Onggi::new();
    let (_b, pid) = running(&o, "ns");
    let kinds = ["mnt", "net", "ipc", "uts", "pid", "cgroup"];
    let script = kinds
        .iter()
        .map(|k| format!("ls -l /proc/self/ns/{k} | sed 's/.*-> //';"))
        .collect::<String>();
    let out = o.ok(&["exec", "ns", "sh", "-c", &script]);
    for (line, k) in out.lines().zip(kinds) {
        let init = std::fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
        assert_eq!(line, init.to_str().unwrap(), "{k}");
    }
    let pids: Vec<i64> = serde_json::from_str(&o.ok(&["ps", "--format", "json", "ns"])).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");
    // Born in the init's cgroup: compare the host's view of both processes.
    let scratch = Scratch::new("exec-cg");
    let pf = scratch.path().join("pid");
    o.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        "ns",
        "sleep",
        "5",
    ]);
    let exec_pid: i64 = std::fs::read_to_string(&pf).unwrap().parse().unwrap();
    let cg = |p: i64| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    let v2 = |t: String| t.lines().find(|l| l.starts_with("0::")).map(String::from);
    assert_eq!(v2(cg(exec_pid)), v2(cg(pid)));
    o.ok(&["delete", "-f", "ns"]);
}

#[test]
fn exit_codes_and_signals_come_back() {
    let o = Onggi::new();
    let _container = running(&o, "ex");
    let out = o.run(&["exec", "ex", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        o.run(&["exec", "ex", "sh", "-c", "kill -KILL $$"])
            .status
            .code(),
        Some(137)
    );
    let e = o.fails(&["exec", "ex", "/no/such/program"]);
    assert!(e.contains("no such file or directory"), "{e}");
    let e = o.fails(&["exec", "ex", "/etc/passwd"]);
    assert!(e.contains("permission denied"), "{e}");
    o.ok(&["delete", "-f", "ex"]);
}

#[test]
fn user_env_cwd_caps_and_no_new_privs() {
    let o = Onggi::new();
    let _container = running(&o, "u");
    let out = o.ok(&[
        "exec",
        "--user",
        "1000:1001",
        "--additional-gids",
        "7",
        "--env",
        "X=1",
        "--cwd",
        "/tmp",
        "--no-new-privs",
        "u",
        "sh",
        "-c",
        "grep -E '^(Uid|Gid|Groups|NoNewPrivs|CapBnd):' /proc/$$/status; echo X=$X; pwd",
    ]);
    assert_eq!(status_field(&out, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&out, "Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field(&out, "Groups"), "7");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    // The container's bounding set (default config: AUDIT_WRITE, KILL, NET_BIND_SERVICE).
    assert_eq!(status_field(&out, "CapBnd"), "0000000020000420");
    assert!(out.contains("X=1\n/tmp\n"), "{out}");
    let out = o.ok(&[
        "exec",
        "--cap",
        "CAP_CHOWN",
        "u",
        "grep",
        "CapBnd",
        "/proc/self/status",
    ]);
    assert_eq!(status_field(&out, "CapBnd"), "0000000020000421");
    o.ok(&["delete", "-f", "u"]);
}

/// Checklist row 15 (crun CVE-2026-30892): odd --user values are refused, never run as root.
#[test]
fn row15_user_is_parsed_strictly() {
    let o = Onggi::new();
    let _container = running(&o, "r15");
    for bad in ["0x1", "1:", ":1", "root", "-1", "1:2:3", " 1"] {
        let out = o.run(&["exec", "--user", bad, "r15", "id", "-u"]);
        assert!(
            !out.status.success(),
            "--user {bad:?} ran: {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stderr).contains("--user"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(o.ok(&["exec", "--user", "123", "r15", "id", "-u"]), "123\n");
    o.ok(&["delete", "-f", "r15"]);
}

#[test]
fn no_host_descriptor_or_environment_reaches_the_exec_process() {
    let o = Onggi::new();
    let _container = running(&o, "fd");
    let scratch = Scratch::new("exec-fd");
    let leaked = std::fs::File::open(scratch.path()).unwrap();
    nix::fcntl::fcntl(
        leaked.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let out = o
        .command()
        .args([
            "exec",
            "fd",
            "sh",
            "-c",
            "ls /proc/self/fd | sort -n | tr '\\n' ' '; env | grep -c ONGGI_SECRET",
        ])
        .env("ONGGI_SECRET", "x")
        .output()
        .unwrap();
    let t = text(&out.stdout);
    // fds 0-2 and ls's own directory fd (3); the leaked fd and the variable never arrive.
    assert_eq!(t, "0 1 2 3 0\n");
    o.ok(&["delete", "-f", "fd"]);
}

#[test]
fn detach_pid_file_process_json_and_ps() {
    let o = Onggi::new();
    let (b, _) = running(&o, "d");
    let scratch = Scratch::new("exec-pid");
    let pf = scratch.path().join("p");
    let pj = scratch.path().join("process.json");
    std::fs::write(
        &pj,
        json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh", "-c", "echo from-json > /json; sleep 30"],
               "env": ["PATH=/bin"]})
        .to_string(),
    )
    .unwrap();
    o.ok(&[
        "exec",
        "--detach",
        "--pid-file",
        pf.to_str().unwrap(),
        "--process",
        pj.to_str().unwrap(),
        "d",
    ]);
    let pid_text = std::fs::read_to_string(&pf).unwrap();
    assert!(!pid_text.ends_with('\n'));
    let pid: i64 = pid_text.parse().unwrap();
    wait_for(|| b.rootfs().join("json").exists());
    let pids: Vec<i64> = serde_json::from_str(&o.ok(&["ps", "-f", "json", "d"])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");
    o.ok(&["delete", "-f", "d"]);
    // delete --force takes the exec'd process with the container (cgroup.kill).
    wait_for(|| exited(pid));
}

#[test]
fn exec_into_stopped_or_paused_containers() {
    let o = Onggi::new();
    let _container = running(&o, "p");
    o.ok(&["pause", "p"]);
    let e = o.fails(&["exec", "p", "true"]);
    assert!(e.contains("paused"), "{e}");
    o.ok(&["resume", "p"]);
    o.ok(&["kill", "p", "KILL"]);
    wait_for(|| o.status("p") == "stopped");
    let e = o.fails(&["exec", "p", "true"]);
    assert!(e.contains("container not running"), "{e}");
    let e = o.fails(&["exec", "nope", "true"]);
    assert!(e.contains("container does not exist"), "{e}");
    o.ok(&["delete", "p"]);
}

#[test]
fn lsm_labels_on_exec_are_refused_not_ignored() {
    let o = Onggi::new();
    let _c = running(&o, "lsm");
    let e = o.fails(&["exec", "--apparmor", "docker-default", "lsm", "true"]);
    assert!(
        e.contains("apparmorProfile") && e.contains("AppArmor"),
        "{e}"
    );
    let e = o.fails(&[
        "exec",
        "--process-label",
        "system_u:system_r:container_t:s0",
        "lsm",
        "true",
    ]);
    assert!(e.contains("selinuxLabel") && e.contains("SELinux"), "{e}");
    // Without a label, exec works as before.
    assert_eq!(o.ok(&["exec", "lsm", "echo", "ok"]), "ok\n");
    o.ok(&["delete", "-f", "lsm"]);
}
