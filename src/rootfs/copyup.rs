//! `tmpcopyup`: a new tmpfs filled with what the image had at its mount point.

use anyhow::Result;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::sys;

/// Copies a directory tree fd-relative (files, directories, symlinks; owner and mode kept).
/// Nothing is resolved by path, so a symlink in the image cannot redirect the copy.
pub(super) fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    use nix::fcntl::{readlinkat, AtFlags, OFlag};
    use nix::sys::stat::{fchmodat, fstatat, mkdirat, FchmodatFlags, Mode, SFlag};
    let dir = nix::dir::Dir::from_fd(nix::unistd::dup(from.as_raw_fd())?)?;
    let mut names = Vec::new();
    for e in dir.into_iter().flatten() {
        let n = e.file_name().to_owned();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n);
        }
    }
    for name in names {
        let st = fstatat(
            Some(from.as_raw_fd()),
            name.as_c_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        let rd = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if kind == SFlag::S_IFDIR {
            mkdirat(
                Some(to.as_raw_fd()),
                name.as_c_str(),
                Mode::from_bits_truncate(0o700),
            )?;
            let sub = (rd | OFlag::O_DIRECTORY).bits();
            let sf = sys::openat2(from, path(&name), sub, 0, 0)?;
            let st_ = sys::openat2(to, path(&name), sub, 0, 0)?;
            copy_tree(sf.as_fd(), st_.as_fd())?;
        } else if kind == SFlag::S_IFREG {
            let src = sys::openat2(from, path(&name), rd.bits(), 0, 0)?;
            let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
            let dst = sys::openat2(to, path(&name), create.bits(), 0o600, 0)?;
            std::io::copy(&mut std::fs::File::from(src), &mut std::fs::File::from(dst))?;
        } else if kind == SFlag::S_IFLNK {
            let target = readlinkat(Some(from.as_raw_fd()), name.as_c_str())?;
            nix::unistd::symlinkat(target.as_os_str(), Some(to.as_raw_fd()), name.as_c_str())?;
        } else {
            continue; // devices, fifos, sockets: not copied (as runc)
        }
        nix::unistd::fchownat(
            Some(to.as_raw_fd()),
            name.as_c_str(),
            Some(nix::unistd::Uid::from_raw(st.st_uid)),
            Some(nix::unistd::Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if kind != SFlag::S_IFLNK {
            fchmodat(
                Some(to.as_raw_fd()),
                name.as_c_str(),
                mode,
                FchmodatFlags::FollowSymlink,
            )?;
        }
    }
    Ok(())
}

/// A directory entry's name as a relative path.
fn path(name: &std::ffi::CStr) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()))
}
