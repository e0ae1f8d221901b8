//! `linux.maskedPaths` and `linux.readonlyPaths`.

use anyhow::{Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::dev::check_dev_null;
use super::resolve::{cwd, fd_path, open_in_root};
use crate::sys;
use crate::trace::Calls;

/// Opens `p` inside the root; None when it does not exist (nothing to mask or protect).
fn open_if_exists(root: BorrowedFd<'_>, p: &str, field: &str) -> Result<Option<OwnedFd>> {
    match open_in_root(root, Path::new(p)) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{field} {p}")),
    }
}

/// Covers `p` with /dev/null (a file) or an empty read-only tmpfs (a directory).
pub(super) fn mask_path(root: BorrowedFd<'_>, p: &str, c: &mut Calls) -> Result<()> {
    let Some(target) = open_if_exists(root, p, "maskedPaths")? else {
        return Ok(());
    };
    let st =
        nix::sys::stat::fstat(target.as_raw_fd()).with_context(|| format!("maskedPaths {p}"))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::mount(
            Some(Path::new("tmpfs")),
            &fd_path(target.as_fd()),
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
        )
        .with_context(|| format!("maskedPaths {p}: cannot mount a read-only tmpfs"))?;
        c.note(|| format!("mount(tmpfs, {p}, tmpfs, MS_RDONLY)"));
    } else {
        // Opened here, in the init's mount namespace (open_tree clones only mounts of our own
        // namespace), before pivot_root: this is the host's /dev/null, out of the container's
        // reach, and it is checked to be the null device before it covers anything.
        let devnull = sys::openat2(
            cwd(),
            Path::new("/dev/null"),
            libc::O_PATH,
            0,
            sys::RESOLVE_NO_SYMLINKS,
        )
        .context("cannot open /dev/null")?;
        check_dev_null(devnull.as_fd())?;
        let tree = sys::open_tree(devnull.as_fd(), Path::new(""), sys::OPEN_TREE_CLONE)
            .context("cannot clone /dev/null")?;
        sys::move_mount(tree.as_fd(), target.as_fd())
            .with_context(|| format!("maskedPaths {p}: cannot bind /dev/null over it"))?;
        c.note(|| format!("open_tree(/dev/null) + move_mount(-> {p})"));
    }
    Ok(())
}

/// Makes `p` read-only: a recursive bind of it onto itself, set read-only before it is attached.
pub(super) fn readonly_path(root: BorrowedFd<'_>, p: &str, c: &mut Calls) -> Result<()> {
    let Some(target) = open_if_exists(root, p, "readonlyPaths")? else {
        return Ok(());
    };
    let tree = sys::open_tree(
        target.as_fd(),
        Path::new(""),
        sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE,
    )
    .with_context(|| format!("readonlyPaths {p}: open_tree"))?;
    sys::mount_setattr(tree.as_fd(), true, sys::MOUNT_ATTR_RDONLY, 0, 0)
        .with_context(|| format!("readonlyPaths {p}: mount_setattr"))?;
    sys::move_mount(tree.as_fd(), target.as_fd())
        .with_context(|| format!("readonlyPaths {p}: move_mount"))?;
    c.note(|| {
        format!("open_tree({p}, OPEN_TREE_CLONE|AT_RECURSIVE) + mount_setattr(RDONLY) + move_mount")
    });
    Ok(())
}
