//! The integration-test harness: each test gets its own `--root`, and bundles whose rootfs is a
//! fresh copy of bundles/rootfs (built by `make bundles`). Tests run the real onggi binary as
//! root and look at what the container or the host really sees.
//!
//! Tests must run inside a private mount namespace (`make test` does `unshare -m`): the harness
//! refuses to start otherwise, so a bug cannot leave mounts on the host.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static N: AtomicUsize = AtomicUsize::new(0);

/// The binary under test: `ONGGI_BIN` when set (`make test` sets it to the shipped
/// target/<triple>/release/onggi), else the one cargo built beside the tests.
pub fn onggi_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("ONGGI_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_onggi").to_string())
    })
}

/// An example built by `cargo build --release --examples` (make test does it first): it sits
/// in the release directory beside this test's own profile directory (target/<triple>/).
pub fn release_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<triple>/<profile>/deps/<test binary>
    let out = exe
        .ancestors()
        .nth(3)
        .expect("the test binary is under target/");
    out.join("release/examples").join(name)
}

fn preconditions() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the integration tests create containers: run them as root"
    );
    assert!(
        in_private_mount_ns(),
        "run the integration tests in a private mount namespace: `make test`, or `unshare -m --propagation private cargo test`"
    );
    assert!(
        Path::new(&format!(
            "{}/bundles/rootfs/bin/busybox",
            env!("CARGO_MANIFEST_DIR")
        ))
        .exists(),
        "bundles/rootfs is missing: run `make bundles`"
    );
}

/// True when some ancestor of ours lives in another mount namespace (`unshare -m` gave us our
/// own). pid 1's namespace link is not always readable, so the parent chain is walked instead.
fn in_private_mount_ns() -> bool {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let mine = ns(std::process::id() as i32);
    let mut pid = std::process::id() as i32;
    while pid > 1 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(ppid) = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            return false;
        };
        pid = ppid;
        if let Some(theirs) = ns(pid) {
            if Some(&theirs) != mine.as_ref() {
                return true;
            }
        }
    }
    false
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("onggi-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An onggi with its own state root.
/// The compiled-seccomp-filter cache's directory in a state root.
pub const SECCOMP_CACHE: &str = "@seccomp-cache";
/// The mount template's directory in a state root (a private bind of itself, with the
/// template's namespace pinned on its `ns`).
pub const MOUNT_TEMPLATE: &str = "@mount-template";
/// The bpf filesystem of a state root where loaded device programs are pinned.
pub const DEVICE_PROGRAMS: &str = "@device-programs";

pub struct Onggi {
    pub root: Scratch,
    /// Global flags given to every command (`--systemd-cgroup`).
    pub global: Vec<&'static str>,
}

impl Onggi {
    pub fn new() -> Onggi {
        preconditions();
        Onggi {
            root: Scratch::new("root"),
            global: Vec::new(),
        }
    }

    /// An onggi whose every command has `--systemd-cgroup`, as podman and containerd call it
    /// with their systemd cgroup manager.
    pub fn systemd() -> Onggi {
        let mut o = Onggi::new();
        o.global = vec!["--systemd-cgroup"];
        o
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(onggi_bin());
        c.arg("--root").arg(self.root.path());
        c.args(&self.global);
        c.stdin(Stdio::null());
        c
    }

    /// Runs onggi with `args`, capturing stdout and stderr into files (not pipes: a container
    /// that `create` or `run -d` leaves running keeps its stdio open, and a pipe reader would
    /// wait for it).
    pub fn run(&self, args: &[&str]) -> Output {
        output_via_files(self.command().args(args))
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "onggi {args:?} failed: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "onggi {args:?} should fail; stdout: {}",
            text(&o.stdout)
        );
        text(&o.stderr)
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("status")
            .to_string()
    }

    /// `run` in the foreground; returns (exit code, stdout, stderr).
    pub fn run_container(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let o = self.run(&["run", "--bundle", bundle.dir(), id]);
        (
            o.status.code().unwrap_or(-1),
            text(&o.stdout),
            text(&o.stderr),
        )
    }

    /// Runs the bundle in the foreground and requires exit 0; returns stdout.
    pub fn output_of(&self, bundle: &Bundle) -> String {
        let id = format!("t{}", N.fetch_add(1, Ordering::SeqCst));
        let (code, out, err) = self.run_container(bundle, &id);
        assert_eq!(code, 0, "container failed: {err}");
        out
    }

    /// The container directories left in the state root (everything but the compiled-filter
    /// cache, `@seccomp-cache`, the mount template, `@mount-template`, and the pinned device
    /// programs, `@device-programs`, which outlive containers by design).
    pub fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        ![SECCOMP_CACHE, MOUNT_TEMPLATE, DEVICE_PROGRAMS].contains(&n.as_str())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Onggi {
    fn drop(&mut self) {
        for id in self.leftovers() {
            let _ = self.run(&["delete", "--force", &id]);
        }
        // The pins and the template's private directory, so that the root can be removed.
        let t = self.root.path().join(MOUNT_TEMPLATE);
        for p in [t.join("ns"), t, self.root.path().join(DEVICE_PROGRAMS)] {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Runs `cmd` (stdin from /dev/null) with stdout and stderr captured into files, not pipes: a
/// container that `create` or `run -d` leaves running keeps its stdio open, and a pipe reader
/// would wait for it.
pub fn output_via_files(cmd: &mut Command) -> Output {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let io = Scratch::new(&format!("io{n}"));
    let (o, e) = (io.path().join("out"), io.path().join("err"));
    let status = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).expect("stdout file"))
        .stderr(std::fs::File::create(&e).expect("stderr file"))
        .status()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    Output {
        status,
        stdout: std::fs::read(&o).unwrap_or_default(),
        stderr: std::fs::read(&e).unwrap_or_default(),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A bundle: config.json (onggi's default with terminal off) and a private copy of the rootfs.
pub struct Bundle {
    pub scratch: Scratch,
    pub config: Value,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        preconditions();
        let scratch = Scratch::new("bundle");
        let src = format!("{}/bundles/rootfs", env!("CARGO_MANIFEST_DIR"));
        let st = Command::new("cp")
            .args(["-a", &src, &scratch.path().join("rootfs").to_string_lossy()])
            .status()
            .expect("cp");
        assert!(st.success(), "cannot copy the rootfs");
        let out = Command::new(onggi_bin())
            .args(["spec", "--bundle"])
            .arg(scratch.path())
            .output()
            .expect("spec");
        assert!(
            out.status.success(),
            "onggi spec failed: {}",
            text(&out.stderr)
        );
        let mut config: Value = serde_json::from_slice(
            &std::fs::read(scratch.path().join("config.json")).expect("read"),
        )
        .expect("json");
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        let b = Bundle { scratch, config };
        b.write();
        b
    }

    pub fn dir(&self) -> &str {
        self.scratch.path().to_str().expect("utf8")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.scratch.path().join("rootfs")
    }

    /// Changes the config (and writes it).
    pub fn with(mut self, f: impl FnOnce(&mut Value)) -> Bundle {
        f(&mut self.config);
        self.write();
        self
    }

    pub fn write(&self) {
        std::fs::write(
            self.scratch.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("ser"),
        )
        .expect("write config");
    }
}

/// `sh -c SCRIPT` as process.args.
pub fn sh(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

/// Polls `f` every 25 ms for up to 10 s.
pub fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("condition not reached within 10 s");
}

/// True when `pid` has exited: gone from /proc, or a zombie nobody reaped yet (on some hosts
/// pid 1 does not reap the inits that `create` orphans).
pub fn exited(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Waits for a child onggi (e.g. `run` in the foreground) for at most 30 s: a hang fails the
/// test instead of stalling the suite.
pub fn wait_child(c: &mut std::process::Child) -> std::process::ExitStatus {
    for _ in 0..1200 {
        if let Some(st) = c.try_wait().expect("try_wait") {
            return st;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = c.kill();
    panic!("onggi (pid {}) did not exit within 30 s", c.id());
}

/// Mount points in this (the test's) mount namespace under `prefix`, but the mount templates
/// of state roots (`<root>/@mount-template` and its pin) and their pinned device programs
/// (`<root>/@device-programs`), which outlive containers by design.
pub fn host_mounts_under(prefix: &Path) -> Vec<String> {
    all_mounts_under(prefix)
        .into_iter()
        .filter(|mp| {
            !mp.contains(&format!("/{MOUNT_TEMPLATE}"))
                && !mp.ends_with(&format!("/{DEVICE_PROGRAMS}"))
        })
        .collect()
}

/// Every mount point in this (the test's) mount namespace under `prefix`.
pub fn all_mounts_under(prefix: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| Path::new(mp).starts_with(prefix))
        .map(String::from)
        .collect()
}

/// The value of a `Key:` line of /proc/<x>/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in status:\n{status}"))
}

/// Receives one message on `sock` and checks it carries exactly one SCM_RIGHTS control message
/// with exactly one descriptor (the shape conmon, go-runc and seccomp agents require); returns
/// (data, fd).
pub fn recv_one_fd(sock: &std::os::unix::net::UnixStream) -> (String, std::os::fd::OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let mut buf = vec![0u8; 65536];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let cmsgs: Vec<ControlMessageOwned> = msg.cmsgs().expect("cmsgs").collect();
    assert_eq!(cmsgs.len(), 1, "exactly one control message");
    let fds = match &cmsgs[0] {
        ControlMessageOwned::ScmRights(fds) => fds.clone(),
        other => panic!("not SCM_RIGHTS: {other:?}"),
    };
    assert_eq!(fds.len(), 1, "exactly one descriptor");
    let n = msg.bytes;
    let data = String::from_utf8_lossy(&buf[..n]).into_owned();
    // SAFETY: the descriptor was just received and is owned by nothing else.
    (data, unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) })
}

pub fn v2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| PathBuf::from(left.split(' ').nth(4).unwrap()))
        })
        .expect("these tests need a cgroup v2 hierarchy")
}

/// Says why the calling test is skipped (it returns right after), or fails it when the
/// variable `require` (an ONGGI_REQUIRE_*) is 1: then what is missing must be there.
pub fn skip(require: &str, why: &str) {
    assert!(
        std::env::var(require).as_deref() != Ok("1"),
        "{require}=1 but {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// Whether the v2 root has `controller`; when not, skips (or fails under
/// ONGGI_REQUIRE_CGROUP_V2=1).
pub fn has_controller(controller: &str) -> bool {
    let list = std::fs::read_to_string(v2_mount().join("cgroup.controllers")).unwrap();
    let ok = list.split_whitespace().any(|c| c == controller);
    if !ok {
        let root = v2_mount();
        let why = format!(
            "the cgroup v2 hierarchy at {} has no {controller} controller",
            root.display()
        );
        skip("ONGGI_REQUIRE_CGROUP_V2", &why);
    }
    ok
}

/// Whether the kernel has 2 MiB huge pages (for hugetlb limits); when not, skips (or fails
/// under ONGGI_REQUIRE_CGROUP_V2=1).
pub fn has_hugepages() -> bool {
    let ok = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    if !ok {
        skip(
            "ONGGI_REQUIRE_CGROUP_V2",
            "this kernel has no 2 MiB huge pages",
        );
    }
    ok
}

/// The `--trace` line of `step` in `trace` (its fourth field is the step name); panics with the
/// whole trace when the step is missing.
pub fn trace_step<'a>(trace: &'a str, step: &str) -> &'a str {
    trace
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(step))
        .unwrap_or_else(|| panic!("no {step} step in the trace:\n{trace}"))
}

/// How many device programs are attached directly to the cgroup `dir` (BPF_PROG_QUERY), to
/// check that onggi leaves none on a cgroup it did not create.
pub fn attached_device_programs(dir: &Path) -> usize {
    let d = std::fs::File::open(dir).expect("open cgroup");
    onggi::bpf_attached_device_programs(std::os::fd::AsFd::as_fd(&d))
        .expect("BPF_PROG_QUERY")
        .len()
}

/// Whether systemd is PID 1 with its D-Bus API (the `vmrun.sh --systemd` guest); when not,
/// skips (or fails under ONGGI_REQUIRE_SYSTEMD=1).
pub fn has_systemd() -> bool {
    let ok = Path::new("/run/systemd/system").is_dir()
        && Path::new("/run/dbus/system_bus_socket").exists();
    if !ok {
        skip(
            "ONGGI_REQUIRE_SYSTEMD",
            "systemd is not PID 1 here (no /run/systemd/system or system bus): run `make test-systemd`",
        );
    }
    ok
}

/// `systemctl ARGS`: (exit code, stdout).
pub fn systemctl(args: &[&str]) -> (i32, String) {
    let o = Command::new("systemctl")
        .args(args)
        .output()
        .expect("systemctl");
    (o.status.code().unwrap_or(-1), text(&o.stdout))
}

/// Whether systemd knows `unit` at all (loaded, active, or failed and not yet reset).
pub fn unit_exists(unit: &str) -> bool {
    let (_, out) = systemctl(&["show", "-p", "LoadState", "--value", unit]);
    out.trim() == "loaded"
}

/// Parses the file with Python's XML parser (every machine that runs the tests has python3).
pub fn well_formed_xml(path: &std::path::Path) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{} is not well-formed XML: {}",
        path.display(),
        text(&out.stderr)
    );
}
