//! The mount API: mount(2), open_tree, fsopen/fsconfig/fsmount, mount_setattr, move_mount,
//! pivot_root and umount.

use super::{check, check_int, cstr, owned};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

pub(crate) const OPEN_TREE_CLONE: u32 = 1;
pub(crate) const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub(crate) const MOUNT_ATTR__ATIME: u64 = 0x70;
pub(crate) const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub(crate) const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub(crate) const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub(crate) const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub(crate) const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;
pub(crate) const MOUNT_ATTR_IDMAP: u64 = 0x100000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount(2) with the target given as an open fd (through the verified host procfs magic link
/// /proc/self/fd/N), so the path is never resolved again after it was checked.
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(CString::new).transpose().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "filesystem type has a NUL byte",
        )
    })?;
    let data = data
        .map(CString::new)
        .transpose()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount data has a NUL byte"))?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a valid NUL-terminated string alive for the call.
    let ret = unsafe {
        libc::mount(
            p(&source),
            target.as_ptr(),
            p(&fstype),
            flags,
            p(&data) as *const libc::c_void,
        )
    };
    check_int(ret).map(|_| ())
}

/// open_tree(2): a detached copy (OPEN_TREE_CLONE) of the mount at `path` relative to `dir`, or
/// of `dir` itself when `path` is empty.
pub(crate) fn open_tree(dir: BorrowedFd<'_>, path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let mut flags = flags | libc::O_CLOEXEC as u32;
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    // SAFETY: `c` is a valid string for the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c.as_ptr(), flags) };
    check(ret).map(owned)
}

/// mount_setattr(2) on the mount `fd` refers to: set and clear MOUNT_ATTR_* flags and
/// optionally the propagation type (MS_SHARED, MS_SLAVE, MS_PRIVATE, MS_UNBINDABLE).
/// mount_setattr(MOUNT_ATTR_IDMAP) with the user namespace `userns` (on a detached clone).
pub(crate) fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> io::Result<()> {
    // userns stays open (borrowed) for the call.
    mount_setattr_raw(
        fd,
        recursive,
        &MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

pub(crate) fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> io::Result<()> {
    mount_setattr_raw(
        fd,
        recursive,
        &MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation,
            userns_fd: 0,
        },
    )
}

fn mount_setattr_raw(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: `attr` is a valid mount_attr for the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(|_| ())
}

/// A new filesystem instance by the new mount API: fsopen(type), fsconfig(`source`, then each
/// `key` or `key=value` of `options`), FSCONFIG_CMD_CREATE, fsmount(`attrs`, MOUNT_ATTR_*). The
/// result is a detached mount, to be attached with [`move_mount`] (which, unlike mount(2),
/// stacks a filesystem on a mount of the same superblock).
pub(crate) fn new_fs_mount(
    fstype: &str,
    source: &Path,
    options: &[&str],
    attrs: u64,
) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    let t = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `t` is a valid string for the call.
    let fs =
        check(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) }).map(owned)?;
    let config = |cmd: libc::c_uint, key: Option<&str>, value: Option<&str>| -> io::Result<()> {
        let k = key.map(CString::new).transpose()?;
        let v = value.map(CString::new).transpose()?;
        let kp = k.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
        let vp = v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: key and value are valid strings or null, as fsconfig allows for `cmd`.
        check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, kp, vp, 0) })
            .map(|_| ())
    };
    let src = source
        .to_str()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    config(FSCONFIG_SET_STRING, Some("source"), Some(src))?;
    for o in options.iter().filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some((k, v)) => config(FSCONFIG_SET_STRING, Some(k), Some(v))?,
            None => config(FSCONFIG_SET_FLAG, Some(o), None)?,
        }
    }
    config(FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fsmount takes the configured fs context and two flag words.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })
    .map(owned)
}

/// move_mount(2) from a mount fd onto a target fd (both by descriptor: no path lookups).
pub(crate) fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let empty: &CStr = c"";
    // SAFETY: both paths are the empty string; the descriptors are valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(|_| ())
}

/// pivot_root(".", "."): the cwd becomes the new root and the old root is stacked on top of it,
/// to be detached right after (the trick runc and crun use, no put_old directory needed).
pub(crate) fn pivot_root_here() -> io::Result<()> {
    let dot = c".";
    // SAFETY: both arguments are valid NUL-terminated strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    check(ret).map(|_| ())
}

/// umount2(path, flags).
pub(crate) fn umount(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid string for the call.
    check_int(unsafe { libc::umount2(c.as_ptr(), flags) }).map(|_| ())
}
