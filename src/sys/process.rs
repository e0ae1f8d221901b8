//! Processes: clone3, pidfds, setns/unshare, descriptors closed or marked close-on-exec,
//! execveat, and _exit.

use super::{check, check_int, owned};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// clone3's CLONE_INTO_CGROUP (the libc constant is deprecated: it overflows a c_int).
pub(crate) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Makes `cmd`'s process get SIGKILL when its parent (onggi, single-threaded) dies: a hook
/// never outlives the create that runs it.
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl, which
    // is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes `cmd`'s process find `fds` at 3, 4, … (without close-on-exec there, and only there):
/// the way onggi hands CRIU its socket and the descriptors it inherits. Every other descriptor
/// of onggi stays close-on-exec. Also dies with its parent, as [`die_with_parent`]. The caller
/// keeps `fds` open until the command is spawned; at most 16.
pub(crate) fn pass_fds(cmd: &mut std::process::Command, fds: &[BorrowedFd<'_>]) {
    use std::os::unix::process::CommandExt;
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl, fcntl
    // and dup2 (async-signal-safe) on integers; `raw` was allocated before the fork and is
    // only read. The sources are first copied above every target (F_DUPFD), so no dup2 onto
    // 3 + i closes a source still to be moved; the copies are close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            let above = 3 + raw.len() as libc::c_int;
            let mut copies = [0 as libc::c_int; 16];
            for (i, &fd) in raw.iter().enumerate().take(16) {
                copies[i] = check_int(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above))?;
            }
            for (i, &copy) in copies.iter().enumerate().take(raw.len().min(16)) {
                check_int(libc::dup2(copy, 3 + i as libc::c_int))?;
            }
            Ok(())
        });
    }
}

/// What `clone3` returned in the calling process.
enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent; the child's pid (in our pid namespace) and a pidfd for it.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// A child cloned by [`spawn`]: its pid as the caller sees it, and a pidfd for it.
pub(crate) struct Child {
    pub(crate) pid: libc::pid_t,
    pub(crate) pidfd: OwnedFd,
}

/// Clones a child that runs `child` and `_exit`s with what it returns: the child never comes
/// back into the caller's frame, so no guard of the caller (an undo whose Drop removes state)
/// runs in it, and a panic in it ends it with 101 instead of unwinding through the copied
/// frames. `flags`: CLONE_NEW* and CLONE_PARENT; with `cgroup`, the child starts inside that
/// cgroup (CLONE_INTO_CGROUP) and never runs a moment outside it.
pub(crate) fn spawn(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    child: impl FnOnce() -> i32,
) -> io::Result<Child> {
    // SAFETY: onggi is single-threaded (it starts no threads), so the child's copy of the
    // address space holds no lock another thread owned; and the child never returns from here.
    match unsafe { clone3(flags, cgroup) }? {
        Forked::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            exit_now(code)
        }
        Forked::Parent { pid, pidfd } => Ok(Child { pid, pidfd }),
    }
}

/// `clone3` without CLONE_VM: a fork that can create namespaces at once (the child is PID 1 of a
/// new pid namespace from its first instruction).
///
/// # Safety
/// The caller must be single-threaded, and the child must not return into frames whose values
/// own resources of the parent (their destructors would run twice): [`spawn`] keeps both.
unsafe fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    // SAFETY: clone_args is a plain C struct of integers; all-zero is its documented default.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags | libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut RawFd as u64;
    // With CLONE_PARENT the child gets the caller's exit signal; clone3 wants 0 here then.
    if flags & libc::CLONE_PARENT as u64 == 0 {
        args.exit_signal = libc::SIGCHLD as u64;
    }
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: without CLONE_VM and with a zero stack, clone3 behaves like fork(): the child gets
    // a copy of our address space and continues from here. onggi is single-threaded whenever it
    // calls this (no lock can be held by another thread), and `args` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
            pidfd: owned(pidfd as libc::c_long),
        }),
    }
}

/// A pidfd for an existing process (not necessarily our child).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    check(ret).map(owned)
}

/// Sends `sig` to the process behind `pidfd`: no pid-reuse race.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed (the kernel fills it as for kill()); flags must be 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    check(ret).map(|_| ())
}

/// Marks every descriptor from `first` up as close-on-exec (CLOSE_RANGE_CLOEXEC).
/// When close_range is refused (a host's seccomp filter older than it, or a kernel without it),
/// each open descriptor listed in /proc/self/fd gets FD_CLOEXEC instead.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags; no memory is involved.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    match check(ret) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::ENOSYS | libc::EACCES)
            ) =>
        {
            for entry in std::fs::read_dir("/proc/self/fd")? {
                let fd: libc::c_int = match entry?.file_name().to_str().and_then(|n| n.parse().ok())
                {
                    Some(fd) if fd >= first as libc::c_int => fd,
                    _ => continue,
                };
                // SAFETY: integer-only fcntl; a descriptor closed meanwhile (the directory's
                // own) fails with EBADF, which is fine.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// unshare(2) with raw flags (nix's CloneFlags lacks CLONE_NEWTIME).
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes one integer and touches no memory of ours.
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setns(2) with raw flags (a pidfd with several CLONE_NEW* bits, CLONE_NEWTIME included).
pub(crate) fn setns(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is a live descriptor for the duration of the call; flags is an integer.
    if unsafe { libc::setns(fd.as_raw_fd(), flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// execveat(fd, "", args, env, AT_EMPTY_PATH): runs the open file `fd`. Returns only on error.
pub(crate) fn execveat_empty(fd: BorrowedFd<'_>, args: &[CString], env: &[CString]) -> io::Error {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = c"";
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to NUL-terminated strings
    // that outlive the call; fd is open.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

/// close_range(first, last): closes every descriptor in the range.
pub(crate) fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: closing descriptors touches no memory; the caller no longer uses these numbers.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(|_| ())
}

/// _exit(2): leave at once, without running destructors or atexit handlers (for forked children).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}
