//! CVE-2019-5736 (shared/security/checklist.md row 1): a process in the container must never be
//! able to write to onggi's binary through `/proc/<pid>/exe` of the process that joins it.
//!
//! The joining process (the init, an exec'd process) is non-dumpable from its first
//! instruction, which already keeps container root without CAP_SYS_PTRACE away from that link.
//! As a second, independent wall, onggi runs from a binary nobody can write whenever a process
//! of the container could already exist while onggi's binary is in there: `exec` always, and
//! `create`/`run` when the container gets no new pid namespace (it joins one by path, or shares
//! the host's). A create with a new pid namespace needs no wall: nothing but the init is in
//! that namespace until the init has executed the container's program.
//!
//! * Root: before anything is created, onggi clones a detached bind mount of its own
//!   executable (`open_tree(OPEN_TREE_CLONE)`), makes it read-only
//!   (`mount_setattr(MOUNT_ATTR_RDONLY)`) and re-executes itself from it
//!   (`execveat(AT_EMPTY_PATH)`). `/proc/<pid>/exe` then names a file on a read-only mount:
//!   opening it for writing fails with EROFS, even after onggi exited and even for a process
//!   that got hold of the link. Nothing is copied; the cost is one execve (`make bench`).
//! * Rootless (no CAP_SYS_ADMIN to clone a mount): if the user cannot write the binary, neither
//!   can the container (its ids are the user's or mapped from subordinate ones), and onggi runs
//!   on with a trace note. If the user can (a binary they built or own), onggi copies itself
//!   into a memfd, seals it against every write (`F_SEAL_WRITE|SHRINK|GROW|SEAL`) and
//!   re-executes from that: one copy of the binary per such command.
//!
//! A binary already on a read-only mount, or already a sealed memfd (this re-executed copy), is
//! left as is.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use crate::{sys, trace};

/// Re-executes onggi from a read-only detached mount of its binary unless it already runs
/// from a read-only mount. Returns only when no re-exec was needed or possible.
pub(crate) fn ensure_read_only() -> Result<()> {
    let exe = std::fs::File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if sys::on_read_only_mount(exe.as_fd()).context("fstatvfs(/proc/self/exe)")? {
        return Ok(());
    }
    if sys::sealed_against_writes(exe.as_fd()) {
        return Ok(());
    }
    let (from, how) = match sys::open_tree(exe.as_fd(), Path::new(""), sys::OPEN_TREE_CLONE) {
        Ok(tree) => {
            sys::mount_setattr(tree.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
                .context("mount_setattr(MOUNT_ATTR_RDONLY) on onggi's own binary")?;
            (
                tree,
                "open_tree(/proc/self/exe, OPEN_TREE_CLONE) + mount_setattr(RDONLY) + execveat(AT_EMPTY_PATH)",
            )
        }
        Err(e) => {
            let writable =
                nix::unistd::access("/proc/self/exe", nix::unistd::AccessFlags::W_OK).is_ok();
            if !writable {
                trace::moment("self_exe", || {
                    format!("open_tree(/proc/self/exe) refused ({e}); the binary is not writable by us, so not by the container either: running from it")
                });
                return Ok(());
            }
            (
                sealed_copy(exe).context("a sealed copy of onggi's binary")?,
                "open_tree refused, binary writable by us: memfd_create + copy + F_ADD_SEALS(WRITE|SHRINK|GROW|SEAL) + execveat(AT_EMPTY_PATH)",
            )
        }
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<Result<_, _>>()
        .context("an argument holds a NUL byte")?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()
        .context("an environment variable holds a NUL byte")?;
    trace::moment("self_exe", || how.into());
    let err = sys::execveat_empty(from.as_fd(), &args, &env);
    Err(err).context("execveat onggi from a binary nobody can write")
}

/// A memfd holding a copy of `exe`, sealed so that nothing can ever change it.
fn sealed_copy(exe: std::fs::File) -> Result<std::os::fd::OwnedFd> {
    let memfd = sys::memfd_sealable("onggi").context("memfd_create")?;
    let mut to = std::fs::File::from(memfd);
    let mut from = exe;
    std::io::copy(&mut from, &mut to).context("copy")?;
    let memfd = std::os::fd::OwnedFd::from(to);
    sys::seal_all(memfd.as_fd()).context("F_ADD_SEALS")?;
    Ok(memfd)
}
