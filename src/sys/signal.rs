//! Signals: handlers, dispositions, the signal mask and signalfd.

use super::check_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Installs `handler` for `sig` (used only while the init waits at the start gate).
pub(crate) fn set_signal_handler(
    sig: libc::c_int,
    handler: extern "C" fn(libc::c_int),
) -> io::Result<()> {
    // SAFETY: sigaction is a plain C struct; all-zero means empty mask and no flags.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler as usize;
    // SAFETY: `act` is valid; the handler only calls async-signal-safe _exit.
    check_int(unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) }).map(|_| ())
}

/// SIG_IGN for `sig`.
pub(crate) fn ignore_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler code; an invalid signal number just fails.
    let r = unsafe { libc::signal(sig, libc::SIG_IGN) };
    if r == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Every catchable signal back to SIG_DFL (SIGKILL and SIGSTOP cannot be changed).
pub(crate) fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..34).contains(&sig) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler code; an invalid signal number just fails.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// The calling thread's signal mask set to empty (a process starts with the mask it inherits).
pub(crate) fn unblock_all_signals() -> io::Result<()> {
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(io::Error::from)
}

/// A close-on-exec, non-blocking signalfd for `set` (which the caller keeps blocked).
pub(crate) fn signal_fd(set: &nix::sys::signal::SigSet) -> io::Result<OwnedFd> {
    // SAFETY: `set` points to a valid sigset_t; the result is a new descriptor we own.
    let fd = check_int(unsafe {
        libc::signalfd(-1, set.as_ref(), libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    })?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal number from a signalfd; None when none is pending.
pub(crate) fn read_signal(sfd: BorrowedFd<'_>) -> io::Result<Option<libc::c_int>> {
    // SAFETY: signalfd_siginfo is plain data; all-zero is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is writable for `size` bytes.
    let n = unsafe {
        libc::read(
            sfd.as_raw_fd(),
            &mut info as *mut _ as *mut libc::c_void,
            size,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok((n as usize == size).then_some(info.ssi_signo as libc::c_int))
}
