//! Regression tests for the escape classes of shared/security/checklist.md that the foundation
//! covers. Each builds the hostile bundle, runs onggi, and checks that the host is untouched.

mod common;
use common::*;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::Path;

/// A host directory the hostile rootfs points at; the test checks it stays empty and unmounted.
struct HostTarget(Scratch);

impl HostTarget {
    fn new() -> HostTarget {
        HostTarget(Scratch::new("host-target"))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn assert_untouched(&self) {
        let entries: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            entries.is_empty(),
            "the host directory was written to: {entries:?}"
        );
        assert!(
            host_mounts_under(self.path()).is_empty(),
            "something was mounted on the host directory"
        );
    }
}

fn replace_with_symlink(link: &Path, target: &Path) {
    if link.is_dir() {
        std::fs::remove_dir_all(link).unwrap();
    } else {
        let _ = std::fs::remove_file(link);
    }
    symlink(target, link).unwrap();
}

/// Row 4 (CVE-2019-19921, CVE-2023-27561): /proc or /sys in the image is a symlink to a host path.
#[test]
fn row4_proc_and_sys_symlinks_are_refused() {
    let o = Onggi::new();
    for dir in ["proc", "sys"] {
        let host = HostTarget::new();
        let b = sh("true");
        replace_with_symlink(&b.rootfs().join(dir), host.path());
        let e = o.fails(&["create", "--bundle", b.dir(), dir]);
        assert!(e.contains("symlink"), "{e}");
        host.assert_untouched();
        assert!(o.leftovers().is_empty());
    }
}

/// Rows 6, 7, 14 (CVE-2021-30465, CVE-2024-45310, crun CVE-2025-24965): a mount destination
/// whose path goes through a symlink pointing outside the rootfs (absolute or with "..").
#[test]
fn rows6_7_14_mount_targets_stay_inside_the_rootfs() {
    let o = Onggi::new();
    let host = HostTarget::new();
    let hostile = |b: &Bundle| {
        symlink(host.path(), b.rootfs().join("abs")).unwrap();
        let up = format!("../../../../../../../../..{}", host.path().display());
        symlink(&up, b.rootfs().join("rel")).unwrap();
    };
    let mounts = |c: &mut serde_json::Value| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/abs/sub", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/rel/sub", "type": "tmpfs", "source": "tmpfs"}));
    };
    // 1. The links' targets do not exist inside the rootfs: refused, nothing created anywhere.
    let b = sh("true").with(mounts);
    hostile(&b);
    let e = o.fails(&["create", "--bundle", b.dir(), "dangling"]);
    assert!(e.contains("/abs") && e.contains("symlink"), "{e}");
    host.assert_untouched();
    assert!(o.leftovers().is_empty());
    // 2. They exist inside the rootfs: the links resolve as if the rootfs were "/", and the
    //    mounts land inside it.
    let b =
        sh("ls -d /abs/sub /rel/sub; grep -c ' tmpfs ' /proc/self/mountinfo >/dev/null && echo ok")
            .with(mounts);
    hostile(&b);
    std::fs::create_dir_all(b.rootfs().join(host.path().strip_prefix("/").unwrap())).unwrap();
    assert_eq!(o.output_of(&b), "/abs/sub\n/rel/sub\nok\n");
    host.assert_untouched();
    assert!(b
        .rootfs()
        .join(host.path().strip_prefix("/").unwrap())
        .join("sub")
        .is_dir());
}

/// Row 13 (CVE-2026-41579): the image's /dev is a symlink to a host directory.
#[test]
fn row13_dev_symlink_is_refused() {
    let o = Onggi::new();
    for keep_dev_mount in [true, false] {
        let host = HostTarget::new();
        let b = sh("true").with(|c| {
            if !keep_dev_mount {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
            }
        });
        replace_with_symlink(&b.rootfs().join("dev"), host.path());
        let out = o.run(&["create", "--bundle", b.dir(), "dev"]);
        assert!(
            !out.status.success(),
            "a /dev symlink must be refused (keep_dev_mount={keep_dev_mount})"
        );
        host.assert_untouched();
        assert!(o.leftovers().is_empty());
    }
}

/// Row 8 (CVE-2025-31133): masking must use the real null device, never the image's /dev/null.
#[test]
fn row8_masking_uses_the_real_null_device() {
    let o = Onggi::new();
    let b = sh("stat -c '%F %t:%T' /secret; cat /secret | wc -c").with(|c| {
        c["linux"]["maskedPaths"] = json!(["/secret"]);
        // Keep the image's own /dev (no tmpfs over it), with a hostile dev/null in it.
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
    });
    std::fs::write(b.rootfs().join("secret"), "top secret\n").unwrap();
    std::fs::write(b.rootfs().join("decoy"), "decoy contents\n").unwrap();
    std::fs::create_dir_all(b.rootfs().join("dev")).unwrap();
    replace_with_symlink(&b.rootfs().join("dev/null"), Path::new("/decoy"));
    assert_eq!(o.output_of(&b), "character special file 1:3\n0\n");
}

/// Row 3 (CVE-2024-21626): a host directory fd leaked into the runtime, and a cwd of
/// /proc/self/fd/N: onggi closes every inherited fd, so the cwd cannot reach the host.
#[test]
fn row3_cwd_through_a_leaked_fd_cannot_leave_the_rootfs() {
    let o = Onggi::new();
    let host = HostTarget::new();
    let dir = std::fs::File::open(host.path()).unwrap();
    let raw = dir.as_raw_fd();
    for n in 3..10 {
        let b = sh("pwd; ls").with(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        let mut cmd = o.command();
        cmd.args(["run", "--bundle", b.dir(), &format!("fd{n}")]);
        // SAFETY: dup2 in the forked child before exec is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                for target in 3..10 {
                    if target != raw && libc::dup2(raw, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::fcntl(raw, libc::F_SETFD, 0);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        if out.status.success() {
            let pwd = text(&out.stdout);
            assert!(
                !pwd.contains(host.path().to_str().unwrap()),
                "cwd escaped to the host: {pwd}"
            );
        } else {
            assert!(
                text(&out.stderr).contains("process.cwd"),
                "{}",
                text(&out.stderr)
            );
        }
        host.assert_untouched();
    }
    assert!(o.leftovers().is_empty());
}

/// Row 12 (CVE-2023-25809): cgroupfs is mounted read-only by the default config.
#[test]
fn row12_cgroupfs_is_read_only() {
    let o = Onggi::new();
    let out = o.output_of(&sh(
        "mkdir /sys/fs/cgroup/escape 2>/dev/null && echo made || echo refused",
    ));
    assert_eq!(out, "refused\n");
}

/// A bind mount whose target is a symlink to a host file must not cover or write the host file.
#[test]
fn bind_over_a_symlinked_file_target_stays_inside() {
    let o = Onggi::new();
    let host = HostTarget::new();
    let victim = host.path().join("victim");
    let src = Scratch::new("src");
    std::fs::write(src.path().join("payload"), "payload\n").unwrap();
    let bundle = |script: &str| {
        let b = sh(script);
        symlink(&victim, b.rootfs().join("etc/target")).unwrap();
        b.with(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/etc/target", "type": "bind",
                "source": src.path().join("payload"), "options": ["bind"]}));
        })
    };
    // The link's target is missing inside the rootfs: refused.
    let e = o.fails(&["create", "--bundle", bundle("true").dir(), "bind"]);
    assert!(e.contains("symlink"), "{e}");
    // Present inside the rootfs: the bind covers that file, in the rootfs.
    let b = bundle("cat /etc/target");
    let inside = b.rootfs().join(victim.strip_prefix("/").unwrap());
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::write(&inside, "in-root file\n").unwrap();
    assert_eq!(o.output_of(&b), "payload\n");
    assert!(!victim.exists(), "nothing was created on the host");
    host.assert_untouched();
}

/// Checklist row 1 (CVE-2019-5736): a handle on the init's /proc/<pid>/exe, taken while it is
/// still onggi (created, waiting at the gate) and kept until after onggi and the init moved on,
/// cannot be reopened for writing: onggi runs from a read-only detached mount of its binary.
/// The container here has no pid namespace of its own, so processes outside it (like this
/// test) see the init: exactly the case where onggi re-executes from the read-only mount
/// (`exec` is the other).
#[test]
fn the_runtime_binary_cannot_be_reopened_for_writing_through_proc_exe() {
    let o = Onggi::new();
    let b = sh("touch /started; while :; do sleep 0.05; done").with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    o.ok(&["create", "--bundle", b.dir(), "exe"]);
    let pid = o.state("exe")["pid"].as_i64().unwrap();
    // What the attacker keeps: an O_PATH handle on the runtime's executable.
    let handle = nix::fcntl::open(
        format!("/proc/{pid}/exe").as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    o.ok(&["start", "exe"]);
    wait_for(|| b.rootfs().join("started").exists());
    let reopen = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let err = reopen.expect_err("onggi's binary was opened for writing");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    // exec always joins from the read-only mount.
    let out = o.run(&["--trace", "exec", "exe", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("self_exe") && text(&out.stderr).contains("execveat"),
        "{}",
        text(&out.stderr)
    );
    o.ok(&["delete", "--force", "exe"]);
}

/// Rows 5 and 10 (CVE-2019-16884, CVE-2025-52881): the image puts its own directory over /proc,
/// with a fake `sys/net/ipv4/ip_forward` and `self/oom_score_adj`, hoping onggi writes its
/// sysctls there. onggi writes /proc only through the host procfs handle it verified before the
/// clone: the fake files stay as they were, and the container's real network namespace gets
/// the value.
#[test]
fn rows5_10_proc_writes_never_land_in_a_fake_proc() {
    let o = Onggi::new();
    let fake = Scratch::new("fake-proc");
    std::fs::create_dir_all(fake.path().join("sys/net/ipv4")).unwrap();
    std::fs::write(fake.path().join("sys/net/ipv4/ip_forward"), "fake\n").unwrap();
    let b = sh("touch /tmp/up; while :; do sleep 0.05; done").with(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/proc");
        mounts.insert(
            0,
            json!({"destination": "/proc", "type": "bind",
            "source": fake.path(), "options": ["rbind", "rw"]}),
        );
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "fakeproc"]);
    let pid = o.state("fakeproc")["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(fake.path().join("sys/net/ipv4/ip_forward")).unwrap(),
        "fake\n",
        "onggi wrote into the image's fake /proc"
    );
    // The real value, in the container's network namespace, seen through the host's /proc.
    let out = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "1\n", "{}", text(&out.stderr));
    o.ok(&["delete", "--force", "fakeproc"]);
}

/// Row 16 (crun regression): a bind whose fd-based attach cannot be made fails create; onggi
/// never retries it with a path-based mount(2) inside the container's mount namespace.
#[test]
fn row16_a_failed_fd_based_mount_is_an_error_never_a_path_fallback() {
    let o = Onggi::new();
    let target = HostTarget::new();
    let mounts_before = host_mounts_under(Path::new("/"));
    // The source vanishes as a directory: a dangling symlink on the host.
    let src = Scratch::new("dangling");
    let link = src.path().join("link");
    symlink(target.path().join("missing"), &link).unwrap();
    let b = sh("true").with(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/mnt",
            "type": "bind", "source": link, "options": ["rbind"]}));
    });
    let out = o.run(&["--trace", "create", "--bundle", b.dir(), "nofallback"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    // The bind sources are cloned by `enter_template` (or by `mounts`, without the template).
    let mounts = err
        .lines()
        .find(|l| {
            let step = l.split_whitespace().nth(3);
            matches!(step, Some("mounts" | "enter_template")) && l.contains("FAILED")
        })
        .unwrap_or_else(|| panic!("no failed mount step in the trace:\n{err}"));
    assert!(mounts.contains("/mnt"), "{mounts}");
    // No call before the failure names the source: no attempt, and no path-based retry.
    let calls = mounts.split("FAILED").next().unwrap();
    assert!(
        !calls.contains(&src.path().display().to_string()),
        "a mount of the source was tried: {mounts}"
    );
    assert!(o.leftovers().is_empty());
    assert_eq!(host_mounts_under(Path::new("/")), mounts_before);
    target.assert_untouched();
}

/// Row 2 (CVE-2016-9962): the process that joins a container is non-dumpable before it enters
/// any namespace, so container root cannot ptrace it or open its /proc files. The init waiting
/// at the gate already runs as the configured user (1000) yet its /proc files belong to root,
/// the mark of a non-dumpable process; and the trace shows the hygiene step before any
/// namespace is entered, for the init and for exec.
#[test]
fn row2_joining_processes_are_non_dumpable_before_they_enter() {
    use std::os::unix::fs::MetadataExt;
    let o = Onggi::new();
    let b = sh("touch /tmp/x; while :; do sleep 0.05; done").with(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let out = o.run(&["--trace", "create", "--bundle", b.dir(), "dump"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = o.state("dump")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status_field(&status, "Uid").starts_with("1000"), "{status}");
    let environ = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(
        environ.uid(),
        0,
        "a dumpable init's /proc files would belong to 1000"
    );
    let order = |trace: &str, first: &str, then: &str| {
        let at = |s: &str| {
            trace
                .lines()
                .position(|l| l.split_whitespace().nth(3) == Some(s))
                .unwrap_or_else(|| panic!("no {s} in:\n{trace}"))
        };
        assert!(
            at(first) < at(then),
            "{first} must come before {then}:\n{trace}"
        );
    };
    let trace = text(&out.stderr);
    assert!(trace.contains("prctl(PR_SET_DUMPABLE, 0)"), "{trace}");
    order(&trace, "init_hygiene", "enter_template");
    o.ok(&["start", "dump"]);
    let out = o.run(&["--trace", "exec", "dump", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace = text(&out.stderr);
    assert!(trace.contains("prctl(PR_SET_DUMPABLE, 0)"), "{trace}");
    order(&trace, "exec_hygiene", "setns");
    o.ok(&["delete", "--force", "dump"]);
}

/// --no-pivot keeps the host's mounts in the container's mount namespace, out of chroot's
/// sight; with a full procfs among them, a process that may make a user namespace could mount
/// a fresh, unmasked procfs. onggi detaches every full proc and sysfs outside the rootfs first
/// (as runc does): the trace shows each detach, and the container still runs.
#[test]
fn no_pivot_detaches_the_host_proc_and_sys_before_the_move() {
    let o = Onggi::new();
    let b = sh("cat /proc/self/status | grep -c ^Pid");
    let out = o.run(&["--trace", "run", "--no-pivot", "--bundle", b.dir(), "np"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\n", "the container's own /proc works");
    let chroot = trace_step(&text(&out.stderr), "chroot").to_string();
    assert!(chroot.contains("umount2(/proc, MNT_DETACH)"), "{chroot}");
    assert!(chroot.contains("umount2(/sys, MNT_DETACH)"), "{chroot}");
}
