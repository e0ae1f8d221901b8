//! Files: openat2 and its RESOLVE_* flags, the filesystem magic, mount roots, flock, sealed memfds, and
//! whether a descriptor sits on a read-only mount.

use super::{check, check_int, cstr, owned};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// flock(LOCK_EX): waits for and takes an exclusive lock on the open file `fd`.
pub(crate) fn flock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        // SAFETY: flock only changes lock state on the open file description.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
        match check_int(r) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// flock(LOCK_EX|LOCK_NB): takes an exclusive lock if nobody holds one; false when held.
pub(crate) fn flock_try_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: flock only changes lock state on the open file description.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        match check_int(r) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether the open file `fd` lives on a read-only mount (fstatvfs ST_RDONLY).
pub(crate) fn on_read_only_mount(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = nix::sys::statvfs::fstatvfs(fd).map_err(io::Error::from)?;
    Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

pub(crate) const RESOLVE_NO_XDEV: u64 = libc::RESOLVE_NO_XDEV;
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;
pub(crate) const RESOLVE_NO_SYMLINKS: u64 = libc::RESOLVE_NO_SYMLINKS;
pub(crate) const RESOLVE_BENEATH: u64 = libc::RESOLVE_BENEATH;
pub(crate) const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;

/// openat2(2): open `path` relative to `dir` under the `resolve` rules (RESOLVE_IN_ROOT makes
/// `dir` act as "/" for every component and symlink, so nothing resolves outside it).
/// O_CLOEXEC is always added.
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: open_how is a plain C struct of integers; zero is its default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = resolve;
    loop {
        // SAFETY: `c` and `how` are valid for the call; the size passed is the struct's size.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match check(ret) {
            // EAGAIN: a concurrent rename/mount raced the lookup; the kernel asks us to retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            r => return r.map(owned),
        }
    }
}

/// statvfs's f_flag for a relatime mount (ST_RELATIME, which the libc crate has for glibc only).
pub(crate) const ST_RELATIME: u64 = 0x1000;

/// The filesystem magic number of what `fd` refers to (fstatfs f_type).
pub(crate) fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is a plain C struct filled in by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer for the call.
    check_int(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// Whether `path` (not following a final symlink) is the root of a mount: statx's
/// STATX_ATTR_MOUNT_ROOT, one lookup instead of reading the whole /proc/self/mountinfo.
pub(crate) fn is_mount_root(path: &Path) -> io::Result<bool> {
    let c = cstr(path)?;
    // SAFETY: statx is a plain C struct filled in by the kernel.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer for the call.
    check_int(unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | libc::AT_STATX_DONT_SYNC,
            0,
            &mut st,
        )
    })?;
    if st.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(st.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0)
}

/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING).
pub(crate) fn memfd_sealable(name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: name is a valid NUL-terminated string alive for the call; flags are integers.
    let ret =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    check(ret as libc::c_long).map(owned)
}

const ALL_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Seals the memfd `fd` against writes, resizing and further seal changes.
pub(crate) fn seal_all(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an integer argument; fd is live for the call.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, ALL_SEALS) };
    check(ret as libc::c_long).map(|_| ())
}

/// Whether `fd` is a memfd sealed by [`seal_all`].
pub(crate) fn sealed_against_writes(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GET_SEALS takes no argument; fd is live for the call. Files that are not
    // memfds answer EINVAL.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    ret >= 0 && ret & ALL_SEALS == ALL_SEALS
}

/// fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW) (Linux 6.6): one system call where the C
/// library's fchmodat with that flag opens an O_PATH descriptor, stats it and chmods its
/// /proc/self/fd link. ENOSYS on an older kernel (the caller falls back to that).
pub(crate) fn fchmodat_nofollow(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
    const SYS_FCHMODAT2: libc::c_long = 452;
    let c = cstr(name)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; no memory is written.
    let ret = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            dir.as_raw_fd(),
            c.as_ptr(),
            mode,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(ret).map(|_| ())
}
