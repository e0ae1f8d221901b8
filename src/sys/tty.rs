//! Terminals: the window size, the controlling terminal, non-blocking mode.

use super::check_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets O_NONBLOCK on `fd`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer-only fcntl calls.
    let flags = check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })
        .map(|_| ())
}

/// ioctl(TIOCSWINSZ): the terminal's size.
pub(crate) fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: `ws` is a valid winsize for the call.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) })
        .map(|_| ())
}

/// ioctl(TIOCGWINSZ): the terminal's size.
pub(crate) fn window_size(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid, writable winsize for the call.
    check_int(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    })?;
    Ok(ws)
}

/// ioctl(TIOCSCTTY, 0): make `fd` the controlling terminal of our (new) session.
pub(crate) fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer-only ioctl.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(|_| ())
}
