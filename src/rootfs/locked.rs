//! Locked mount flags: the flags a user namespace may not clear on a bind of a host mount, and
//! the one-line error that names the option to add.

use anyhow::anyhow;
use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::sys;

/// Flags a user namespace cannot change on a mount that came from a more privileged mount
/// namespace (the kernel's MNT_LOCK_*): MOUNT_ATTR_* bit, statvfs bit, the option clearing it.
const LOCKABLE: &[(u64, u64, &str)] = &[
    (sys::MOUNT_ATTR_RDONLY, libc::ST_RDONLY, "rw"),
    (sys::MOUNT_ATTR_NOSUID, libc::ST_NOSUID, "suid"),
    (sys::MOUNT_ATTR_NODEV, libc::ST_NODEV, "dev"),
    (sys::MOUNT_ATTR_NOEXEC, libc::ST_NOEXEC, "exec"),
];

/// The atime setting a mount has (statvfs flags), as MOUNT_ATTR_* and as an option name.
fn atime_of(st_flags: u64) -> (u64, &'static str) {
    if st_flags & libc::ST_NOATIME != 0 {
        (sys::MOUNT_ATTR_NOATIME, "noatime")
    } else if st_flags & sys::ST_RELATIME != 0 {
        (sys::MOUNT_ATTR_RELATIME, "relatime")
    } else {
        (sys::MOUNT_ATTR_STRICTATIME, "strictatime")
    }
}

/// What asking for (`set`, `clear`) on a mount with statvfs flags `st_flags` would change that a
/// user namespace cannot: the options to drop, and the locked flags they would undo.
fn locked_conflicts(st_flags: u64, set: u64, clear: u64) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut asked, mut locked) = (Vec::new(), Vec::new());
    for &(attr, st, option) in LOCKABLE {
        if clear & attr != 0 && st_flags & st != 0 {
            asked.push(option);
            locked.push(option_negation(option));
        }
    }
    if clear & sys::MOUNT_ATTR__ATIME != 0 {
        let (have, name) = atime_of(st_flags);
        if set & sys::MOUNT_ATTR__ATIME != have {
            let wanted = atime_of(match set & sys::MOUNT_ATTR__ATIME {
                sys::MOUNT_ATTR_NOATIME => libc::ST_NOATIME,
                sys::MOUNT_ATTR_RELATIME => sys::ST_RELATIME,
                _ => 0,
            });
            asked.push(wanted.1);
            locked.push(name);
        }
    }
    (asked, locked)
}

fn option_negation(option: &str) -> &'static str {
    match option {
        "rw" => "ro",
        "suid" => "nosuid",
        "dev" => "nodev",
        _ => "noexec",
    }
}

/// Turns mount_setattr's bare EPERM on a bind into the reason, when the reason is a flag the
/// kernel locked: a mount copied into a user namespace keeps ro/nosuid/nodev/noexec and its
/// atime setting (runc refuses the same requests with "cannot clear locked flags").
pub(super) fn locked_flags_error(
    err: std::io::Error,
    tree: BorrowedFd<'_>,
    set: u64,
    clear: u64,
    src: &Path,
) -> anyhow::Error {
    let st_flags = match nix::sys::statvfs::fstatvfs(tree) {
        Ok(st) => st.flags().bits(),
        Err(_) => return anyhow::Error::new(err).context("mount_setattr on the bind"),
    };
    let (asked, locked) = locked_conflicts(st_flags, set, clear);
    if err.raw_os_error() != Some(libc::EPERM) || asked.is_empty() {
        return anyhow::Error::new(err).context("mount_setattr on the bind");
    }
    anyhow!(
        "the mount of {} is {} and a user namespace cannot change that (the kernel locks it); \
         remove {} from the options",
        src.display(),
        locked.join(","),
        asked
            .iter()
            .map(|o| format!("{o:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
