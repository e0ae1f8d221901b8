//! seccomp(2): a BPF filter loaded into the calling thread, optionally with a notification
//! listener.

use std::io;
use std::os::fd::OwnedFd;

use super::{check, owned};

/// seccomp(2) operation: install a filter.
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// Filter flags (linux/seccomp.h).
pub(crate) const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
pub(crate) const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
pub(crate) const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;
pub(crate) const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 8;
pub(crate) const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// One classic BPF instruction (struct sock_filter).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// Installs `prog` as a seccomp filter with `flags`. With SECCOMP_FILTER_FLAG_NEW_LISTENER the
/// kernel returns the notification descriptor, which the caller then owns.
pub(crate) fn seccomp_set_filter(prog: &[SockFilter], flags: u32) -> io::Result<Option<OwnedFd>> {
    let len = libc::c_ushort::try_from(prog.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &fprog as *const SockFprog,
        )
    };
    let ret = check(ret)?;
    Ok((flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0).then(|| owned(ret)))
}

/// glibc's checked fprintf, for libseccomp.a on musl. Debian builds libseccomp against glibc
/// with _FORTIFY_SOURCE, so its text export (seccomp_export_pfc) calls `__fprintf_chk`, which
/// musl does not have. onggi never asks libseccomp for text: this only completes the link, and
/// reports a failed write (-1) should anything ever call it.
#[cfg(not(target_env = "gnu"))]
#[no_mangle]
pub extern "C" fn __fprintf_chk(
    _stream: *mut libc::FILE,
    _flag: libc::c_int,
    _format: *const libc::c_char,
) -> libc::c_int {
    -1
}
