//! What a process sets on itself: prctl (dumpable, no_new_privs, keep-caps, parent-death
//! signal, subreaper, the bounding set), the session keyring, rlimits, the domain name and the
//! personality.

use super::{check, check_int};
use std::ffi::CString;
use std::io;

/// prctl(PR_SET_DUMPABLE): a non-dumpable process cannot be ptraced or have its /proc/<pid>
/// files (exe, fd, mem) opened by processes of another user namespace or by container root.
pub(crate) fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// prctl(PR_GET_NO_NEW_PRIVS): whether no_new_privs is set.
pub(crate) fn no_new_privs() -> bool {
    // SAFETY: integer-only prctl.
    unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 }
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
pub(crate) fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(|_| ())
}

/// prctl(PR_SET_KEEPCAPS): keep the permitted set across the uid change that follows.
pub(crate) fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// prctl(PR_SET_PDEATHSIG).
pub(crate) fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// prctl(PR_CAPBSET_READ, cap): Some(in the bounding set?), None when the kernel has no such cap.
pub(crate) fn capbset_read(cap: u32) -> Option<bool> {
    // SAFETY: integer-only prctl.
    match unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } {
        r if r < 0 => None,
        r => Some(r == 1),
    }
}

/// prctl(PR_CAPBSET_DROP, cap).
pub(crate) fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring, so the container does not
/// share the host session's keys.
pub(crate) fn join_session_keyring(name: &str) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "keyring name has a NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    check(ret).map(|_| ())
}

/// The type of an RLIMIT_* number: glibc's enum, musl's int.
#[cfg(target_env = "gnu")]
pub(crate) type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(crate) type RlimitResource = libc::c_int;

/// setrlimit via prlimit64 on ourselves.
pub(crate) fn set_rlimit(resource: RlimitResource, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit64 for the duration of the call; old limit not requested.
    let ret = unsafe { libc::prlimit64(0, resource, &lim, std::ptr::null_mut()) };
    check_int(ret).map(|_| ())
}

/// personality(2).
pub(crate) fn personality(persona: u64) -> io::Result<()> {
    // SAFETY: personality takes one integer.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setdomainname(2) (nix only has sethostname).
pub(crate) fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) };
    check_int(ret).map(|_| ())
}
