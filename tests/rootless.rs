//! Rootless onggi: an unprivileged user (made here with useradd) runs, execs into, kills and
//! deletes a container from `onggi spec --rootless`, with its state under $XDG_RUNTIME_DIR.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
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
    as_user_in(None, xdg, cwd, args)
}

fn as_user_in(
    session: Option<&std::path::Path>,
    xdg: &std::path::Path,
    cwd: &std::path::Path,
    args: &[&str],
) -> Output {
    as_user_with(&user_bin(xdg), session, xdg, cwd, args)
}

/// The onggi binary as the test user can run it: the build's own when every directory above
/// it lets others through, else a root-owned copy in the user's runtime dir (a checkout under
/// a 0700 directory, as CI makes one, is out of the user's reach).
fn user_bin(xdg: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = Path::new(onggi_bin());
    let reachable = bin
        .ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if reachable {
        return bin.to_path_buf();
    }
    let copy = xdg.join("onggi-bin");
    if !copy.exists() {
        std::fs::copy(bin, &copy).expect("copy onggi for the test user");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    copy
}

/// `as_user` with the onggi binary `bin`, from inside the cgroup `session` when given (moved
/// there while still root, as a login puts a user's session in the subtree delegated to them).
fn as_user_with(
    bin: &Path,
    session: Option<&std::path::Path>,
    xdg: &std::path::Path,
    cwd: &std::path::Path,
    args: &[&str],
) -> Output {
    let mut cmd = match session {
        None => Command::new("setpriv"),
        Some(cg) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("echo $$ > \"$0/cgroup.procs\" && exec setpriv \"$@\"")
                .arg(cg);
            c
        }
    };
    output_via_files(
        cmd.args(["--reuid", USER, "--regid", USER, "--clear-groups", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", xdg.display()))
            .arg(bin)
            .args(args)
            .current_dir(cwd),
    )
}

/// The tests here share the test user and kill all its processes at the end: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
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
    let _serial = one_at_a_time();
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

    config["process"]["args"] = json!(["sh", "-c", "sleep 1000 & while :; do sleep 0.05; done"]);
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
    // Without a cgroup, ps finds the container's processes by its pid namespace.
    let out = as_user(xdg.path(), bundle, &["ps", "rl-bg"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sleep 1000"),
        "{}",
        text(&out.stdout)
    );
    // What needs a cgroup says why there is none.
    let out = as_user(xdg.path(), bundle, &["pause", "rl-bg"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("no cgroup was delegated to uid {uid}")),
        "{}",
        text(&out.stderr)
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

/// A cgroup subtree given to the test user as systemd delegates one: the directory and its
/// cgroup.procs, cgroup.subtree_control and cgroup.threads belong to the user, the controllers
/// are enabled for its children, and the user's session runs in a leaf of it. Removed at drop.
struct Delegated {
    top: PathBuf,
    session: PathBuf,
}

impl Delegated {
    fn new(uid: u32, controllers: &str) -> Delegated {
        let top = v2_mount().join(format!("onggi-delegated-{}", std::process::id()));
        let session = top.join("session");
        let d = Delegated {
            top: top.clone(),
            session: session.clone(),
        };
        std::fs::write(v2_mount().join("cgroup.subtree_control"), controllers)
            .expect("enable controllers at the root");
        std::fs::create_dir(&top).expect("mkdir delegated");
        std::fs::write(top.join("cgroup.subtree_control"), controllers)
            .expect("enable controllers below the delegated cgroup");
        std::fs::create_dir(&session).expect("mkdir session");
        for p in [
            top.clone(),
            top.join("cgroup.procs"),
            top.join("cgroup.subtree_control"),
            top.join("cgroup.threads"),
            session.clone(),
            session.join("cgroup.procs"),
        ] {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).expect("chown to the user");
        }
        d
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-u", USER]).status();
        for _ in 0..200 {
            let children: Vec<PathBuf> = std::fs::read_dir(&self.top)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            for c in &children {
                let _ = std::fs::remove_dir(c);
            }
            if std::fs::remove_dir(&self.top).is_ok() || !self.top.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }
}

#[test]
fn an_unprivileged_user_gets_a_cgroup_with_limits_in_a_delegated_subtree() {
    let _o = Onggi::new();
    // hugetlb: the controller both this hybrid host's v2 hierarchy and the guest have. (The
    // guest cannot run this test: it chroots, and a chrooted caller may not make a user
    // namespace.)
    if !has_controller("hugetlb") {
        return;
    }
    let _serial = one_at_a_time();
    let uid = ensure_user();
    let _cleanup = KillUserOnDrop;
    let deleg = Delegated::new(uid, "+hugetlb");
    let xdg = Scratch::new("xdg");
    std::os::unix::fs::chown(xdg.path(), Some(uid), Some(uid)).expect("chown xdg");
    let work = Scratch::new("rl-spec");
    std::os::unix::fs::chown(work.path(), Some(uid), Some(uid)).expect("chown work");
    let out = as_user(xdg.path(), work.path(), &["spec", "--rootless"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("config.json")).expect("config"),
    )
    .expect("json");
    let b = sh("true");
    let name = deleg
        .top
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    config["root"]["path"] = json!(b.rootfs());
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "while :; do sleep 0.05; done"]);
    config["linux"]["cgroupsPath"] = json!(format!("/{name}/ctr"));
    config["linux"]["resources"] =
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]});
    let bundle = Path::new(b.dir());
    std::fs::write(bundle.join("config.json"), config.to_string()).expect("config");
    let out = as_user_in(
        Some(&deleg.session),
        xdg.path(),
        bundle,
        &["run", "-d", "rl-cg"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st: Value = serde_json::from_slice(
        &as_user_in(
            Some(&deleg.session),
            xdg.path(),
            bundle,
            &["state", "rl-cg"],
        )
        .stdout,
    )
    .expect("state");
    let pid = st["pid"].as_i64().expect("pid");
    // The host sees the init in the user's cgroup, with the limit written.
    let ctr = deleg.top.join("ctr");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert_eq!(
        cgroups.lines().find(|l| l.starts_with("0::")),
        Some(format!("0::/{name}/ctr").as_str()),
        "{cgroups}"
    );
    assert_eq!(
        std::fs::read_to_string(ctr.join("hugetlb.2MB.max")).expect("hugetlb.2MB.max"),
        "4194304\n"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&ctr).expect("ctr").uid(),
        uid,
        "made by the user"
    );
    // exec lands in the same cgroup.
    let out = as_user_in(
        Some(&deleg.session),
        xdg.path(),
        bundle,
        &["exec", "rl-cg", "grep", "^0::", "/proc/self/cgroup"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("0::/{name}/ctr\n"));
    let out = as_user_in(
        Some(&deleg.session),
        xdg.path(),
        bundle,
        &["delete", "-f", "rl-cg"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!ctr.exists(), "delete removed the user's cgroup");
}

/// Row 1 (CVE-2019-5736) rootless: the user cannot clone a read-only mount of onggi's binary,
/// and a binary the user owns (built in their home) could be rewritten by the container's
/// root, which is that user. onggi then runs from a sealed memfd copy: a handle on the waiting
/// init's /proc/<pid>/exe, kept past start, writes nothing anywhere.
#[test]
fn a_binary_the_user_owns_is_replaced_by_a_sealed_copy_before_joining() {
    let _o = Onggi::new();
    let _serial = one_at_a_time();
    let uid = ensure_user();
    let _cleanup = KillUserOnDrop;
    let xdg = Scratch::new("xdg");
    std::os::unix::fs::chown(xdg.path(), Some(uid), Some(uid)).expect("chown xdg");
    let home = Scratch::new("rl-home");
    std::os::unix::fs::chown(home.path(), Some(uid), Some(uid)).expect("chown home");
    let bin = home.path().join("onggi");
    std::fs::copy(onggi_bin(), &bin).expect("copy onggi");
    std::os::unix::fs::chown(&bin, Some(uid), Some(uid)).expect("chown onggi");
    let as_owner = |cwd: &Path, args: &[&str]| as_user_with(&bin, None, xdg.path(), cwd, args);
    let out = as_owner(home.path(), &["spec", "--rootless"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("config.json")).expect("config"),
    )
    .expect("json");
    // No pid namespace of its own: the init waits at the gate in the host's, where the test
    // (standing in for another process of the container) can reach its /proc/<pid>/exe. No
    // /proc mount either (the user may not mount the host pid namespace's procfs).
    let b = sh("true");
    config["root"]["path"] = json!(b.rootfs());
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!([
        "sh",
        "-c",
        "touch /marker/started; while :; do sleep 0.05; done"
    ]);
    config["root"]["readonly"] = json!(false);
    config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "pid");
    config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["destination"] != "/proc");
    let bundle = Path::new(b.dir());
    std::fs::write(bundle.join("config.json"), config.to_string()).expect("config");
    std::fs::create_dir(b.rootfs().join("marker")).expect("mkdir marker");
    std::os::unix::fs::chown(b.rootfs().join("marker"), Some(uid), Some(uid)).expect("chown");
    let out = as_owner(bundle, &["--trace", "create", "rl-exe"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("memfd_create + copy + F_ADD_SEALS"),
        "{}",
        text(&out.stderr)
    );
    let st: Value =
        serde_json::from_slice(&as_owner(bundle, &["state", "rl-exe"]).stdout).expect("state");
    let pid = st["pid"].as_i64().expect("pid");
    let handle = nix::fcntl::open(
        format!("/proc/{pid}/exe").as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .expect("O_PATH on the init's exe");
    let out = as_owner(bundle, &["start", "rl-exe"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for(|| b.rootfs().join("marker/started").exists());
    use std::io::Write;
    let wrote = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .and_then(|mut f| f.write_all(b"\x7fNOT-AN-ELF"));
    assert!(
        wrote.is_err(),
        "onggi's binary was written through /proc/<pid>/exe"
    );
    assert_eq!(
        std::fs::read(&bin).expect("read the user's binary"),
        std::fs::read(onggi_bin()).expect("read onggi"),
        "the user's binary is unchanged"
    );
    // exec into a container without a pid namespace of its own (it joins the user namespace
    // together with the others, and the container has no /proc of its own).
    let out = as_owner(bundle, &["--trace", "exec", "rl-exe", "id", "-u"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0\n");
    assert!(
        text(&out.stderr).contains("memfd_create"),
        "{}",
        text(&out.stderr)
    );
    let out = as_owner(bundle, &["delete", "--force", "rl-exe"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
