//! Rootless onggi: an unprivileged user (made here with useradd) runs, execs into, kills and
//! deletes a container from `onggi spec --rootless`, with its state under $XDG_RUNTIME_DIR.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::{Command, Output};

const USER: &str = "onggi-rl";

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

fn ensure_user() -> u32 {
    if !Command::new("id")
        .arg(USER)
        .output()
        .unwrap()
        .status
        .success()
    {
        let made = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", USER])
            .output()
            .expect("useradd (passwd package)");
        // Another test binary may have made it meanwhile.
        assert!(
            made.status.success()
                || Command::new("id")
                    .arg(USER)
                    .output()
                    .unwrap()
                    .status
                    .success(),
            "{}",
            text(&made.stderr)
        );
    }
    uid_of(USER)
}

/// Runs onggi as the test user, with its own XDG_RUNTIME_DIR and no --root.
/// Output goes to files, not pipes: a detached container keeps its stdio open.
fn as_user(xdg: &std::path::Path, cwd: &std::path::Path, args: &[&str]) -> Output {
    let io = Scratch::new("rl-io");
    let (o, e) = (io.path().join("out"), io.path().join("err"));
    let status = Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--clear-groups", "env"])
        .arg(format!("XDG_RUNTIME_DIR={}", xdg.display()))
        .arg(onggi_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(&o).unwrap_or_default(),
        stderr: std::fs::read(&e).unwrap_or_default(),
    }
}

/// Whatever happens in the test, the user's processes go (a failed assertion must not leave a
/// container running as the test user).
struct KillUserOnDrop;

impl Drop for KillUserOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-u", USER]).status();
    }
}

#[test]
fn an_unprivileged_user_runs_execs_kills_and_deletes() {
    let _o = Onggi::new(); // preconditions: root, private mount namespace, rootfs built
    let uid = ensure_user();
    let _cleanup = KillUserOnDrop;
    let xdg = Scratch::new("xdg");
    std::os::unix::fs::chown(xdg.path(), Some(uid), Some(uid)).unwrap();
    // `spec --rootless` as the user, in a directory it owns.
    let work = Scratch::new("rl-spec");
    std::os::unix::fs::chown(work.path(), Some(uid), Some(uid)).unwrap();
    let out = as_user(xdg.path(), work.path(), &["spec", "--rootless"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], uid);
    // The harness's rootfs copy, with the rootless config.
    let b = sh("true");
    config["root"]["path"] = json!(b.rootfs());
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    std::fs::write(
        std::path::Path::new(b.dir()).join("config.json"),
        config.to_string(),
    )
    .unwrap();
    let bundle = std::path::Path::new(b.dir());

    let out = as_user(xdg.path(), bundle, &["run", "rl-fg"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Vec<String>> = text(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines[0], ["0"], "root inside");
    assert_eq!(lines[1], ["0", &uid.to_string(), "1"], "the user outside");

    config["process"]["args"] = json!(["sh", "-c", "while :; do sleep 0.05; done"]);
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let out = as_user(xdg.path(), bundle, &["run", "-d", "rl-bg"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The state lives under $XDG_RUNTIME_DIR/onggi, owned by the user.
    use std::os::unix::fs::MetadataExt;
    let dir = xdg.path().join("onggi/rl-bg");
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), uid);
    let out = as_user(xdg.path(), bundle, &["exec", "rl-bg", "id", "-u"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0\n");
    let pid: i64 = {
        let s: Value =
            serde_json::from_slice(&as_user(xdg.path(), bundle, &["state", "rl-bg"]).stdout)
                .unwrap();
        s["pid"].as_i64().unwrap()
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status_field(&status, "Uid").starts_with(&uid.to_string()),
        "{status}"
    );
    let out = as_user(xdg.path(), bundle, &["kill", "rl-bg", "KILL"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for(|| exited(pid));
    let out = as_user(xdg.path(), bundle, &["delete", "rl-bg"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!dir.exists());
    // No cgroup was made for it (nothing was delegated to the user).
    assert!(!v2_mount().join("rl-bg").exists());

    // Limits without a delegated cgroup: one clear line, nothing left.
    config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let out = as_user(xdg.path(), bundle, &["create", "rl-lim"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("linux.resources") && err.contains("delegated"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!xdg.path().join("onggi/rl-lim").exists());
}
