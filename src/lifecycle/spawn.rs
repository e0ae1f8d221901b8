//! Cloning the container's processes: each runs a closure handed to `sys::spawn` and never
//! comes back into its caller's frame (the create's undo lives on only in the parent), and the
//! init of a container that joins a user namespace by path is cloned by a helper inside it.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use crate::namespaces;
use crate::sys;

/// A child onggi cloned: its pid as onggi sees it, and a pidfd for it.
pub(crate) type Spawned = sys::Child;

/// clone3 with `flags` (and CLONE_INTO_CGROUP when `cgroup` is given); the child runs `child`
/// and exits with what it returns.
pub(crate) fn spawn(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    child: impl FnOnce() -> i32,
) -> Result<Spawned> {
    sys::spawn(flags, cgroup, child).context("clone3")
}

/// Like [`spawn`], for a container that joins the user namespace at `userns` by path.
///
/// That user namespace must own the new namespaces too (or the init could not mount in its own
/// mount namespace, nor mount /proc for its own pid namespace), yet onggi has to stay in the
/// host's to finish the parent's side (cgroup, net devices, state). So a short-lived helper does
/// it, as runc's nsexec does: made non-dumpable first (a process of the container must not
/// ptrace it), it setns()es into the user namespace, clones the init with CLONE_PARENT (so the
/// init is onggi's child as always) straight into the container's cgroup, hands onggi the
/// init's pidfd over a socket and exits. The helper stays in onggi's cgroup: it must not count
/// against the container's pids.max.
pub(crate) fn spawn_in_user_namespace(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    userns: &Path,
    procfs: BorrowedFd<'_>,
    child: impl FnOnce() -> i32,
) -> Result<Spawned> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let ns = namespaces::open_ns(LinuxNamespaceType::User, userns)?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .context("socketpair")?;
    let our_end = ours.as_raw_fd();
    let helper = spawn(0, None, || {
        // The helper's copy of onggi's end (it only writes to its own).
        let _ = nix::unistd::close(our_end);
        let cloned = (|| -> Result<Spawned> {
            sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
            namespaces::setns_file(LinuxNamespaceType::User, userns, &ns)?;
            spawn(flags | libc::CLONE_PARENT as u64, cgroup, child)
        })();
        match cloned {
            Ok(Spawned { pidfd, .. }) => {
                i32::from(sys::send_with_fd(theirs.as_fd(), b"", pidfd.as_fd()).is_err())
            }
            Err(e) => {
                let _ = nix::unistd::write(&theirs, format!("{e:#}").as_bytes());
                1
            }
        }
    })
    .context("clone3 (user namespace helper)")?;
    drop(theirs);
    let pid = nix::unistd::Pid::from_raw(helper.pid);
    let status = nix::sys::wait::waitpid(pid, None).context("waitpid (user namespace helper)")?;
    if status != nix::sys::wait::WaitStatus::Exited(pid, 0) {
        let mut buf = [0u8; 1024];
        let n = nix::unistd::read(ours.as_raw_fd(), &mut buf).unwrap_or(0);
        let why = String::from_utf8_lossy(&buf[..n]);
        bail!(
            "could not clone the init inside the user namespace {}: {}",
            userns.display(),
            if why.is_empty() {
                format!("the helper ended with {status:?}")
            } else {
                why.into_owned()
            }
        );
    }
    let pidfd = sys::recv_fd(ours.as_fd()).context("the init's pidfd from the helper")?;
    let pid = crate::procfs::pidfd_pid(procfs, pidfd.as_fd())?;
    Ok(Spawned { pid, pidfd })
}

/// When a child that was to report back has ended: how, as one line (killed before it could
/// report, or exited without a message). None while it still runs.
pub(crate) fn ended(pid: i32) -> Option<anyhow::Error> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let p = nix::unistd::Pid::from_raw(pid);
    // It closed its end: it is gone or going; wait a moment for it.
    for _ in 0..200 {
        match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Some(anyhow::anyhow!(
                    "the container init (pid {pid}) was killed by {sig} before it reported back"
                ))
            }
            Ok(WaitStatus::Exited(_, code)) => {
                return Some(anyhow::anyhow!(
                    "the container init (pid {pid}) exited with status {code} during setup without a message"
                ))
            }
            Ok(other) => {
                return Some(anyhow::anyhow!(
                    "the container init (pid {pid}) ended: {other:?}"
                ))
            }
            Err(_) => return None,
        }
    }
    None
}
