//! Thin wrappers over the Linux system calls that nix does not cover (clone3, openat2, the new
//! mount API, pidfds, close_range, keyctl ...).
//!
//! This is the only module with `unsafe` code. Each wrapper is small, takes Rust types, returns
//! `io::Result`, and says in a `// SAFETY:` line why the call is sound. Everything above this
//! module is safe Rust.

mod bpf;
mod fs;
mod mount;
mod net;
mod prctl;
mod process;
mod sched;
mod seccomp;
mod signal;
mod socket;
mod tty;

pub use bpf::bpf_attached_device_programs;
pub(crate) use bpf::*;
pub(crate) use fs::*;
pub(crate) use mount::*;
pub(crate) use net::*;
pub(crate) use prctl::*;
pub(crate) use process::*;
pub(crate) use sched::*;
pub(crate) use seccomp::*;
pub(crate) use signal::*;
pub(crate) use socket::*;
pub(crate) use tty::*;

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Standard error as a borrowed descriptor with a static lifetime.
pub(crate) fn stderr() -> BorrowedFd<'static> {
    // SAFETY: descriptor 2 is open for the whole life of the process and never closed by onggi.
    unsafe { BorrowedFd::borrow_raw(libc::STDERR_FILENO) }
}

/// AT_FDCWD as a borrowed descriptor: "relative to the current directory" for *at calls.
pub(crate) fn at_fdcwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is never a real descriptor; the kernel reads it as the cwd, and it is
    // never closed (BorrowedFd does not close).
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// Takes ownership of a file descriptor number a system call just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Reads a NUL-free C string out of a fixed buffer (for utsname-like kernel answers).
pub(crate) fn c_string_lossy(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
