//! Paths inside the rootfs, resolved from a descriptor of it with openat2(RESOLVE_IN_ROOT): no
//! symlink can lead outside, and missing targets are made on the resolved parent.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys;

/// "/a/b/../c" style paths are refused by validation; this drops "/" and "." components.
pub(super) fn rel_components(p: &Path) -> Vec<&OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

pub(super) const IN_ROOT: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// The root this process now has (after pivot_root or chroot), as an O_PATH descriptor to
/// resolve paths in with [`open_in_root`] and [`ensure_in_root`].
pub(crate) fn current_root() -> std::io::Result<OwnedFd> {
    sys::openat2(
        cwd(),
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
}

/// Opens `path` (O_PATH) inside the root `root`: symlinks resolve as if `root` were "/".
pub(crate) fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> std::io::Result<OwnedFd> {
    let rel: PathBuf = rel_components(path).iter().collect();
    if rel.as_os_str().is_empty() {
        return sys::openat2(
            root,
            Path::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            IN_ROOT,
        );
    }
    sys::openat2(root, &rel, libc::O_PATH, 0, IN_ROOT)
}

/// What to create at a missing mount target.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    Dir,
    File,
}

/// Resolves `path` inside `root`, creating what is missing (directories, and for a file target
/// an empty file) with mkdirat/openat relative to an already-resolved parent descriptor.
pub(crate) fn ensure_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: TargetKind,
) -> Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path) {
        return Ok(fd);
    }
    let comps = rel_components(path);
    let mut parent = open_in_root(root, Path::new("/"))?;
    let mut sofar = PathBuf::from("/");
    for (i, name) in comps.iter().enumerate() {
        sofar.push(name);
        let last = i + 1 == comps.len();
        match open_in_root(root, &sofar) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot resolve {}", sofar.display())),
        }
        // `parent` is a resolved directory inside the root; `name` is one plain component,
        // created relative to it (never through a path string that could be swapped).
        let dirfd = Some(parent.as_raw_fd());
        let created = if last && kind == TargetKind::File {
            create_file_at(parent.as_fd(), name, false)
        } else {
            nix::sys::stat::mkdirat(
                dirfd,
                *name,
                nix::sys::stat::Mode::from_bits_truncate(0o755),
            )
        };
        match created {
            Ok(()) => {}
            // EEXIST from mkdirat, ELOOP from openat(O_NOFOLLOW) of a file target.
            Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ELOOP) => {
                // It exists but did not resolve: a symlink whose target is missing inside the
                // rootfs. onggi does not create through it (CVE-2024-45310 class).
                let is_link = nix::sys::stat::fstatat(
                    Some(parent.as_raw_fd()),
                    *name,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
                if is_link {
                    bail!(
                        "{} is a symlink whose target does not exist inside the rootfs: refusing to create anything through it",
                        sofar.display()
                    );
                }
            }
            Err(e) => bail!("cannot create {} in the rootfs: {e}", sofar.display()),
        }
        parent = open_in_root(root, &sofar)
            .with_context(|| format!("cannot open {} after creating it", sofar.display()))?;
    }
    Ok(parent)
}

/// The `/proc/self/fd/N` path of a descriptor, through the host procfs verified at startup.
pub(super) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub(super) fn cwd() -> BorrowedFd<'static> {
    sys::at_fdcwd()
}

/// A readable directory fd for the exact directory an O_PATH fd points at.
pub(super) fn reopen_dir(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    sys::openat2(
        sys::at_fdcwd(),
        &fd_path(fd),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
    )
    .context("cannot reopen a directory")
}

/// Creates an empty regular file `name` in the resolved directory `dir`, never following a
/// symlink there (`exclusive`: fail if anything exists already).
pub(super) fn create_file_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    exclusive: bool,
) -> nix::Result<()> {
    use nix::fcntl::OFlag;
    let mut flags = OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if exclusive {
        flags |= OFlag::O_EXCL;
    }
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )?;
    nix::unistd::close(fd)
}
