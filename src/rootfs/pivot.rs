//! The root itself: propagation, the rootfs bind, pivot_root (or the --no-pivot move), and
//! chroot for a container without a mount namespace.

use anyhow::{Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::resolve::cwd;
use crate::sys;
use crate::trace::Calls;

/// Makes the whole tree rslave (or the configured propagation) so nothing we mount reaches the
/// host, and the mount holding the rootfs private so pivot_root accepts it.
pub(super) fn prepare_propagation(rootfs: &Path, prop: Option<&str>, c: &mut Calls) -> Result<()> {
    // The tree we inherited becomes rslave (rprivate if asked): our mounts never reach the
    // host, and host mounts stay clonable. The configured propagation is applied to the
    // container's root after pivot_root (step root_propagation_final), where it belongs.
    let private = matches!(prop, Some("private" | "rprivate"));
    let first = libc::MS_REC
        | if private {
            libc::MS_PRIVATE
        } else {
            libc::MS_SLAVE
        };
    sys::mount(None, Path::new("/"), None, first, None)
        .context("cannot change the propagation of /")?;
    c.note(|| {
        format!(
            "mount(/, MS_REC|{})",
            if private { "MS_PRIVATE" } else { "MS_SLAVE" }
        )
    });
    let parent = mount_point_of(rootfs)?;
    sys::mount(None, &parent, None, libc::MS_PRIVATE, None)
        .with_context(|| format!("cannot make {} private", parent.display()))?;
    c.note(|| format!("mount({}, MS_PRIVATE)", parent.display()));
    Ok(())
}

/// The mount point of the mount that holds `path` (canonical): the nearest of it and its
/// ancestors that is a mount root. A few statx calls, where reading /proc/self/mountinfo cost
/// 2-3 ms on a host with 1000 mounts. An ancestor the init may not look at (a user-namespace
/// container's mapped root below a 0700 directory: EACCES) sends it to mountinfo instead,
/// which names every mount point without a lookup.
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    for p in path.ancestors() {
        match sys::is_mount_root(p) {
            Ok(true) => return Ok(p.to_path_buf()),
            Ok(false) => {}
            Err(_) => return mount_point_from_mountinfo(path),
        }
    }
    Ok(PathBuf::from("/"))
}

/// [`mount_point_of`] from /proc/self/mountinfo: the longest mount point that is a prefix.
fn mount_point_from_mountinfo(path: &Path) -> Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read mountinfo")?;
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape_mountinfo(mp));
        if path.starts_with(&mp) && mp.as_os_str().len() >= best.as_os_str().len() {
            best = mp;
        }
    }
    Ok(best)
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub(super) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Binds the rootfs onto itself (pivot_root needs a mount point) and opens it. With a
/// descriptor onggi opened for us, by descriptor alone: a clone of its mount tree attached on
/// top of it (the attached clone is the new root).
pub(super) fn bind_rootfs(
    rootfs: &Path,
    opened: Option<BorrowedFd<'_>>,
    c: &mut Calls,
) -> Result<OwnedFd> {
    if let Some(fd) = opened {
        let tree = sys::open_tree(fd, Path::new(""), sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE)
            .with_context(|| format!("cannot clone the rootfs {}", rootfs.display()))?;
        sys::move_mount(tree.as_fd(), fd)
            .with_context(|| format!("cannot bind the rootfs {}", rootfs.display()))?;
        c.note(|| {
            format!(
                "open_tree(fd of {}, OPEN_TREE_CLONE|AT_RECURSIVE) + move_mount(onto itself)",
                rootfs.display()
            )
        });
        return Ok(tree);
    }
    sys::mount(
        Some(rootfs),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .with_context(|| format!("cannot bind the rootfs {}", rootfs.display()))?;
    c.note(|| format!("mount({0}, {0}, MS_BIND|MS_REC)", rootfs.display()));
    let fd = sys::openat2(
        cwd(),
        rootfs,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .with_context(|| format!("cannot open the rootfs {}", rootfs.display()))?;
    Ok(fd)
}

/// pivot_root(".", ".") in the new root, then the old root (stacked on top) is made rslave
/// (so the unmount cannot propagate to the host) and detached.
pub(super) fn pivot_root(root: BorrowedFd<'_>, c: &mut Calls) -> Result<()> {
    let old = sys::openat2(
        cwd(),
        Path::new("/"),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    nix::unistd::fchdir(root.as_raw_fd()).context("cannot enter the rootfs")?;
    sys::pivot_root_here().context("pivot_root")?;
    c.note(|| "pivot_root(\".\", \".\")".into());
    nix::unistd::fchdir(old.as_raw_fd()).context("cannot enter the old root")?;
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .context("cannot make the old root rslave")?;
    sys::umount(Path::new("."), libc::MNT_DETACH).context("cannot detach the old root")?;
    c.note(|| "umount2(old root, MNT_DETACH)".into());
    nix::unistd::chdir("/").context("chdir /")?;
    Ok(())
}

/// `--no-pivot`: move the rootfs mount over / and chroot into it (for ramdisk hosts where
/// pivot_root is impossible). The old root stays reachable to a process that escapes the chroot.
pub(super) fn move_root(rootfs: &Path, c: &mut Calls) -> Result<()> {
    detach_host_proc_and_sys(rootfs, c)?;
    nix::unistd::chdir(rootfs).context("cannot enter the rootfs")?;
    sys::mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        libc::MS_MOVE,
        None,
    )
    .context("MS_MOVE the rootfs to /")?;
    nix::unistd::chroot(".").context("chroot")?;
    nix::unistd::chdir("/").context("chdir /")?;
    c.note(|| format!("mount({}, /, MS_MOVE) + chroot(.)", rootfs.display()));
    Ok(())
}

/// Without pivot_root the host's mounts stay in the container's mount namespace, only out of
/// chroot's sight, and a full procfs or sysfs there lets a process that may make a user
/// namespace mount a fresh, unmasked one (the kernel allows it when the namespace already has a
/// fully visible instance). So, as runc does, every full proc and sysfs mount outside the rootfs
/// is detached (or, where that is refused, covered by an empty tmpfs) before the move.
fn detach_host_proc_and_sys(rootfs: &Path, c: &mut Calls) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read mountinfo")?;
    let mut targets: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            let mp = PathBuf::from(unescape_mountinfo(f.get(4)?));
            let full = *f.get(3)? == "/";
            (full && matches!(fstype, "proc" | "sysfs") && !mp.starts_with(rootfs)).then_some(mp)
        })
        .collect();
    // Deepest first; a mount hidden under another goes with its parent's detach.
    targets.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for mp in &targets {
        match sys::umount(mp, libc::MNT_DETACH) {
            Ok(()) => c.note(|| format!("umount2({}, MNT_DETACH)", mp.display())),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) => {
                sys::mount(Some(Path::new("tmpfs")), mp, Some("tmpfs"), 0, None)
                    .with_context(|| format!("cannot cover {}", mp.display()))?;
                c.note(|| format!("mount(tmpfs, {}) (could not detach it)", mp.display()));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot detach {}", mp.display())),
        }
    }
    Ok(())
}

/// For a container that shares onggi's mount namespace: no mount at all (they would land in
/// the shared namespace), only chroot(2) into the rootfs.
pub(crate) fn chroot_only(rootfs: &Path, c: &mut Calls) -> Result<()> {
    nix::unistd::chdir(rootfs).context("cannot enter the rootfs")?;
    nix::unistd::chroot(".").context("chroot")?;
    nix::unistd::chdir("/").context("chdir /")?;
    c.note(|| {
        format!(
            "chroot({}) without a mount namespace: no mounts",
            rootfs.display()
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn the_mount_point_of_a_path_is_its_nearest_mount_root() {
        let of = |p: &str| mount_point_of(Path::new(p)).expect("statx up the path");
        assert_eq!(of("/proc/self/fd"), Path::new("/proc"));
        assert_eq!(of("/proc"), Path::new("/proc"));
        assert_eq!(of("/"), Path::new("/"));
    }

    #[test]
    fn the_mountinfo_fallback_finds_the_same_mount_points() {
        let by_info = |p: &str| mount_point_from_mountinfo(Path::new(p)).expect("read mountinfo");
        for p in ["/proc/self/fd", "/proc", "/", "/sys/fs/cgroup"] {
            let by_statx = mount_point_of(Path::new(p)).expect("statx up the path");
            assert_eq!(by_info(p), by_statx, "{p}");
        }
    }
}
