//! Every write to /proc goes through here: a handle on the host's /proc opened once and checked
//! to be procfs, paths resolved beneath it without crossing filesystems or following magic
//! links, and the opened file checked to be on procfs before a byte is written
//! (shared/security/checklist.md rows 5 and 10).

use anyhow::{bail, Context, Result};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::sys;

/// Opens the host's /proc and checks that it really is procfs.
pub(crate) fn open_host() -> Result<OwnedFd> {
    let fd = sys::openat2(
        sys::at_fdcwd(),
        Path::new("/proc"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .context("cannot open /proc")?;
    if sys::fs_magic(fd.as_fd())? != libc::PROC_SUPER_MAGIC {
        bail!("/proc on this host is not procfs: refusing to run");
    }
    Ok(fd)
}

/// Writes `value` to `/proc/<rel>` through the verified handle `procfs`.
pub(crate) fn write(procfs: BorrowedFd<'_>, rel: &Path, value: &str) -> Result<()> {
    let how = sys::RESOLVE_BENEATH | sys::RESOLVE_NO_XDEV | sys::RESOLVE_NO_MAGICLINKS;
    let fd = sys::openat2(procfs, rel, libc::O_WRONLY, 0, how)
        .with_context(|| format!("cannot open /proc/{}", rel.display()))?;
    if sys::fs_magic(fd.as_fd())? != libc::PROC_SUPER_MAGIC {
        bail!(
            "/proc/{} is not on procfs: refusing to write it",
            rel.display()
        );
    }
    nix::unistd::write(fd.as_fd(), value.as_bytes())
        .with_context(|| format!("cannot write {value:?} to /proc/{}", rel.display()))?;
    Ok(())
}

/// Reads `/proc/<rel>` through the verified handle `procfs`.
pub(crate) fn read(procfs: BorrowedFd<'_>, rel: &Path) -> Result<String> {
    let how = sys::RESOLVE_BENEATH | sys::RESOLVE_NO_XDEV | sys::RESOLVE_NO_MAGICLINKS;
    let fd = sys::openat2(procfs, rel, libc::O_RDONLY, 0, how)
        .with_context(|| format!("cannot open /proc/{}", rel.display()))?;
    std::io::read_to_string(std::fs::File::from(fd))
        .with_context(|| format!("cannot read /proc/{}", rel.display()))
}

/// The pid (in our pid namespace) of the process behind `pidfd`: the `Pid:` line of its
/// fdinfo.
pub(crate) fn pidfd_pid(procfs: BorrowedFd<'_>, pidfd: BorrowedFd<'_>) -> Result<libc::pid_t> {
    use std::os::fd::AsRawFd;
    let rel = format!("self/fdinfo/{}", pidfd.as_raw_fd());
    let text = read(procfs, Path::new(&rel))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&p: &libc::pid_t| p > 0)
        .with_context(|| format!("no live pid in /proc/{rel}"))
}

/// The text of a uid_map/gid_map file: one "inside outside length" line per mapping.
pub(crate) fn id_map_text(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_text() {
        let m: Vec<oci_spec::runtime::LinuxIdMapping> = serde_json::from_value(serde_json::json!([
            {"containerID": 0, "hostID": 1000, "size": 1000},
            {"containerID": 1000, "hostID": 5000, "size": 1}
        ]))
        .expect("parses");
        assert_eq!(id_map_text(&m), "0 1000 1000\n1000 5000 1\n");
    }

    #[test]
    fn host_proc_is_procfs() {
        assert!(open_host().is_ok());
    }
}
