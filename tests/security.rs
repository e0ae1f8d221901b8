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
