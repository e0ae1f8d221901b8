//! /dev: the tmpfs, the default device nodes and links, `linux.devices`, and the host's
//! /dev/null check. (Which devices the container may open is the cgroup's device filter:
//! src/cgroup/device_filter.rs.)

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use super::resolve::{
    create_file_at, current_root, cwd, ensure_in_root, fd_path, open_in_root, TargetKind, IN_ROOT,
};
use crate::sys;
use crate::trace::Calls;

/// The default devices of every container (as runc and crun create them).
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

pub(super) fn setup_dev(
    root: BorrowedFd<'_>,
    mount_tmpfs: bool,
    userns: bool,
    c: &mut Calls,
) -> Result<()> {
    // The rootfs /dev must be a real directory, never a symlink (CVE-2026-41579).
    match sys::openat2(
        root,
        Path::new("dev"),
        libc::O_PATH,
        0,
        IN_ROOT | sys::RESOLVE_NO_SYMLINKS,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!("the rootfs /dev is a symlink: refusing to create devices through it")
        }
        _ => {}
    }
    let dev = ensure_in_root(root, Path::new("/dev"), TargetKind::Dir)?;
    let dev = if mount_tmpfs {
        let opts = "mode=755,size=65536k";
        sys::mount(
            Some(Path::new("tmpfs")),
            &fd_path(dev.as_fd()),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some(opts),
        )
        .context("cannot mount a tmpfs on /dev")?;
        c.note(|| format!("mount(tmpfs, /dev, tmpfs, MS_NOSUID|MS_STRICTATIME, {opts:?})"));
        open_in_root(root, Path::new("/dev"))?
    } else {
        dev
    };
    let dir = sys::openat2(
        dev.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    // On the tmpfs just mounted there is nothing to replace.
    default_nodes(dir.as_fd(), userns, !mount_tmpfs, c)
}

/// The default device nodes (binds of the host's in a user namespace, where mknod is refused),
/// the standard links and /dev/shm, in the /dev directory `dir`; `replace`: what the image has
/// under those names is removed first.
fn default_nodes(dir: BorrowedFd<'_>, userns: bool, replace: bool, c: &mut Calls) -> Result<()> {
    for (name, major, minor) in DEFAULT_DEVICES {
        if userns {
            bind_host_device(dir, name, &Path::new("/dev").join(name), c)?;
        } else {
            if replace {
                remove_existing(dir, name);
            }
            mknod_at(dir, name, libc::S_IFCHR, 0o666, *major, *minor, 0, 0)?;
            c.note(|| format!("mknodat(/dev/{name}, S_IFCHR|0666, {major}:{minor})"));
        }
    }
    for (name, target) in DEV_LINKS {
        if *name == "ptmx" {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                *name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(*target, Some(dir.as_raw_fd()), *name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => bail!("cannot create /dev/{name}: {e}"),
        }
        c.note(|| format!("symlinkat({target}, /dev/{name})"));
    }
    match nix::sys::stat::mkdirat(
        Some(dir.as_raw_fd()),
        "shm",
        nix::sys::stat::Mode::from_bits_truncate(0o1777),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => bail!("cannot create /dev/shm: {e}"),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &str,
    kind: libc::mode_t,
    perm: u32,
    major: u64,
    minor: u64,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let dev = libc::makedev(major as u32, minor as u32);
    let mode = nix::sys::stat::Mode::from_bits_truncate(perm);
    let sflag = nix::sys::stat::SFlag::from_bits_truncate(kind);
    nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, sflag, mode, dev)
        .with_context(|| format!("mknod /dev/{name} ({major}:{minor})"))?;
    chmod_nofollow(dir, name, mode).with_context(|| format!("chmod /dev/{name}"))?;
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown /dev/{name}"))?;
    Ok(())
}

/// A device the config names may exist in the image already: it is replaced.
fn remove_existing(dir: BorrowedFd<'_>, name: &str) {
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
}

/// chmod of `name` in `dir`, never through a symlink: fchmodat2, or on a kernel older than 6.6
/// the C library's emulation of its flag. EOPNOTSUPP (a symlink's mode) is not an error.
fn chmod_nofollow(dir: BorrowedFd<'_>, name: &str, mode: nix::sys::stat::Mode) -> nix::Result<()> {
    let r = match sys::fchmodat_nofollow(dir, Path::new(name), mode.bits()) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => nix::sys::stat::fchmodat(
            Some(dir.as_raw_fd()),
            name,
            mode,
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        ),
        r => r.map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    };
    match r {
        Err(nix::errno::Errno::EOPNOTSUPP) => Ok(()),
        r => r,
    }
}

pub(super) fn create_device(
    root: BorrowedFd<'_>,
    d: &LinuxDevice,
    userns: bool,
    c: &mut Calls,
) -> Result<()> {
    let path = d.path();
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => bail!(
            "linux.devices {}: type \"a\" is for cgroup rules only",
            path.display()
        ),
    };
    let parent = path.parent().unwrap_or(Path::new("/dev"));
    let name = path.file_name().context("device path has no file name")?;
    let pdir = ensure_in_root(root, parent, TargetKind::Dir)?;
    let dir = sys::openat2(
        pdir.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    let perm = d.file_mode().unwrap_or(0o666) & 0o7777;
    let (major, minor) = if kind == libc::S_IFIFO {
        (0, 0)
    } else {
        (d.major() as u64, d.minor() as u64)
    };
    let name = name.to_str().context("device name is not UTF-8")?;
    if userns {
        // mknod is refused in a user namespace: bind the host's node (as runc does).
        return bind_host_device(dir.as_fd(), name, path, c)
            .with_context(|| format!("linux.devices {}", path.display()));
    }
    remove_existing(dir.as_fd(), name);
    mknod_at(
        dir.as_fd(),
        name,
        kind,
        perm,
        major,
        minor,
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
    )
    .with_context(|| format!("linux.devices {}", path.display()))?;
    c.note(|| {
        format!(
            "mknodat({}, {kind:#o}|{perm:o}, {major}:{minor})",
            path.display()
        )
    });
    Ok(())
}

/// Binds the host's device node `host` onto an empty file `name` in `dir` (user namespaces).
fn bind_host_device(dir: BorrowedFd<'_>, name: &str, host: &Path, c: &mut Calls) -> Result<()> {
    let st =
        nix::sys::stat::stat(host).with_context(|| format!("host device {}", host.display()))?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFCHR && kind != libc::S_IFBLK {
        bail!("host path {} is not a device node", host.display());
    }
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    create_file_at(dir, OsStr::new(name), true)
        .with_context(|| format!("cannot create /dev/{name}"))?;
    let target = sys::openat2(
        dir,
        Path::new(name),
        libc::O_PATH,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )?;
    let tree = sys::open_tree(cwd(), host, sys::OPEN_TREE_CLONE)
        .with_context(|| format!("cannot clone the host's {}", host.display()))?;
    sys::move_mount(tree.as_fd(), target.as_fd())
        .with_context(|| format!("cannot bind {}", host.display()))?;
    c.note(|| format!("open_tree({}) + move_mount(-> /dev/{name})", host.display()));
    Ok(())
}

/// /dev/null must really be the null device (char 1:3) before it is bound over anything.
pub(crate) fn check_dev_null(fd: BorrowedFd<'_>) -> Result<()> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).context("cannot stat /dev/null")?;
    if !is_null_device(&st) {
        bail!("/dev/null is not the null device (char 1:3): refusing to use it");
    }
    Ok(())
}

fn is_null_device(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && libc::major(st.st_rdev) == 1
        && libc::minor(st.st_rdev) == 3
}

/// Stdio that is the caller's /dev/null (conmon and containerd's shim give a container without
/// stdin the host's) is replaced by the container's own /dev/null, once the new root is in
/// place, as runc does: the host's mount stays outside, and CRIU can dump the container (a file
/// on a mount that the container cannot see has no path to restore). Nothing to do, or no
/// /dev/null in the container: the fds are left as they are.
pub(crate) fn reopen_dev_null_stdio(c: &mut Calls) -> Result<()> {
    let hosts: Vec<i32> = (0..3)
        .filter(|&fd| nix::sys::stat::fstat(fd).is_ok_and(|st| is_null_device(&st)))
        .collect();
    if hosts.is_empty() {
        return Ok(());
    }
    let root = current_root()?;
    let flags = libc::O_RDWR | libc::O_NOCTTY;
    let null = sys::openat2(root.as_fd(), Path::new("dev/null"), flags, 0, IN_ROOT);
    // As runc: only the container's own null device replaces it; anything else there (or
    // nothing) leaves stdio as given, and the container is not failed for it.
    let Some(null) = null.ok().filter(|f| check_dev_null(f.as_fd()).is_ok()) else {
        c.note(|| "the container has no null device at /dev/null: stdio left as given".into());
        return Ok(());
    };
    for &fd in &hosts {
        nix::unistd::dup2(null.as_raw_fd(), fd).context("dup2 /dev/null onto stdio")?;
    }
    c.note(|| format!("open(/dev/null) in the new root; dup2 onto fds {hosts:?}"));
    Ok(())
}
