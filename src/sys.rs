//! Thin wrappers over the Linux system calls that nix does not cover (clone3, openat2, the new
//! mount API, pidfds, close_range, keyctl ...).
//!
//! This is the only module with `unsafe` code. Each wrapper is small, takes Rust types, returns
//! `io::Result`, and says in a `// SAFETY:` line why the call is sound. Everything above this
//! module is safe Rust.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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

/// clone3's CLONE_INTO_CGROUP (the libc constant is deprecated: it overflows a c_int).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Standard error as a borrowed descriptor with a static lifetime.
pub fn stderr() -> BorrowedFd<'static> {
    // SAFETY: descriptor 2 is open for the whole life of the process and never closed by onggi.
    unsafe { BorrowedFd::borrow_raw(libc::STDERR_FILENO) }
}

/// flock(LOCK_EX): waits for and takes an exclusive lock on the open file `fd`.
pub fn flock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        // SAFETY: flock only changes lock state on the open file description.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
        match check_int(r) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// flock(LOCK_EX|LOCK_NB): takes an exclusive lock if nobody holds one; false when held.
pub fn flock_try_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: flock only changes lock state on the open file description.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        match check_int(r) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes `cmd`'s process get SIGKILL when its parent (onggi, single-threaded) dies: a hook
/// never outlives the create that runs it.
pub fn die_with_parent(cmd: &mut std::process::Command) {
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

/// AT_FDCWD as a borrowed descriptor: "relative to the current directory" for *at calls.
pub fn at_fdcwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is never a real descriptor; the kernel reads it as the cwd, and it is
    // never closed (BorrowedFd does not close).
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// Takes ownership of a file descriptor number a system call just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// What `clone3` returned in the calling process.
pub enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent; the child's pid (in our pid namespace) and a pidfd for it.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// `clone3` without CLONE_VM: a fork that can create namespaces at once (the child is PID 1 of a
/// new pid namespace from its first instruction) and, with `cgroup`, start inside a cgroup
/// (CLONE_INTO_CGROUP) so it never runs a moment outside it. The caller must be single-threaded.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
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
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    check(ret).map(owned)
}

/// Sends `sig` to the process behind `pidfd`: no pid-reuse race.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
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
/// When close_range is refused (a seccomp allow-list older than it: the init loads its filter
/// before the gate), each open descriptor listed in /proc/self/fd gets FD_CLOEXEC instead.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags; no memory is involved.
    let ret = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    match check_int(ret) {
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

/// prctl(PR_SET_DUMPABLE): a non-dumpable process cannot be ptraced or have its /proc/<pid>
/// files (exe, fd, mem) opened by processes of another user namespace or by container root.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// prctl(PR_GET_NO_NEW_PRIVS): whether no_new_privs is set.
pub fn no_new_privs() -> bool {
    // SAFETY: integer-only prctl.
    unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 }
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(|_| ())
}

/// prctl(PR_SET_KEEPCAPS): keep the permitted set across the uid change that follows.
pub fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// prctl(PR_SET_PDEATHSIG).
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// prctl(PR_SET_CHILD_SUBREAPER).
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(|_| ())
}

/// prctl(PR_CAPBSET_READ, cap): Some(in the bounding set?), None when the kernel has no such cap.
pub fn capbset_read(cap: u32) -> Option<bool> {
    // SAFETY: integer-only prctl.
    match unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } {
        r if r < 0 => None,
        r => Some(r == 1),
    }
}

/// prctl(PR_CAPBSET_DROP, cap).
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring, so the container does not
/// share the host session's keys.
pub fn join_session_keyring(name: &str) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "keyring name has a NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    check(ret).map(|_| ())
}

/// setrlimit via prlimit64 on ourselves.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit64 for the duration of the call; old limit not requested.
    let ret = unsafe { libc::prlimit64(0, resource, &lim, std::ptr::null_mut()) };
    check_int(ret).map(|_| ())
}

/// Brings the loopback interface `lo` of the current network namespace up: SIOCGIFFLAGS, then
/// SIOCSIFFLAGS with IFF_UP, on a datagram socket (no netlink needed for one flag).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the result is checked and owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own; ifru_flags is the
    // union member both use.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The fields of `struct sched_attr` (SCHED_ATTR_SIZE_VER0) onggi sets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// sched_setattr(2) for the calling thread.
pub fn sched_setattr(a: &SchedAttr) -> io::Result<()> {
    #[repr(C)]
    struct Raw {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let raw = Raw {
        size: std::mem::size_of::<Raw>() as u32,
        policy: a.policy,
        flags: a.flags,
        nice: a.nice,
        priority: a.priority,
        runtime: a.runtime,
        deadline: a.deadline,
        period: a.period,
    };
    // SAFETY: raw is a valid struct sched_attr (VER0, 48 bytes) that outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw as *const Raw, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level).
pub fn ioprio_set(class: u16, level: u16) -> io::Result<()> {
    let prio = (i32::from(class) << 13) | i32::from(level);
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// set_mempolicy(2) with a node mask built from `nodes` (all below 1024).
pub fn set_mempolicy(mode: i32, nodes: &[usize]) -> io::Result<()> {
    let mut mask = [0u64; 16];
    for &n in nodes {
        if n >= 1024 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        mask[n / 64] |= 1 << (n % 64);
    }
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0u64)
    } else {
        // The kernel reads maxnode - 1 bits.
        (mask.as_ptr(), 16 * 64 + 1)
    };
    // SAFETY: mask holds 1024 bits and outlives the call; the kernel reads maxnode - 1 of them.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// unshare(2) with raw flags (nix's CloneFlags lacks CLONE_NEWTIME).
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes one integer and touches no memory of ours.
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setns(2) with raw flags (a pidfd with several CLONE_NEW* bits, CLONE_NEWTIME included).
pub fn setns(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is a live descriptor for the duration of the call; flags is an integer.
    if unsafe { libc::setns(fd.as_raw_fd(), flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the open file `fd` lives on a read-only mount (fstatvfs ST_RDONLY).
pub fn on_read_only_mount(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = nix::sys::statvfs::fstatvfs(fd).map_err(io::Error::from)?;
    Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// execveat(fd, "", args, env, AT_EMPTY_PATH): runs the open file `fd`. Returns only on error.
pub fn execveat_empty(fd: BorrowedFd<'_>, args: &[CString], env: &[CString]) -> io::Error {
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

/// if_nametoindex(3) in the current network namespace.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: c is a NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// One rtnetlink RTM_NEWLINK on the link `index` with the given attributes (type, payload),
/// waiting for the kernel's acknowledgement.
pub fn rtnl_setlink(index: u32, attrs: &[(u16, Vec<u8>)]) -> io::Result<()> {
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLMSG_ERROR: u16 = 2;
    let mut msg: Vec<u8> = Vec::with_capacity(128);
    msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set below
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
                                                // struct ifinfomsg
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&(index as i32).to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    for (typ, payload) in attrs {
        let len = 4 + payload.len();
        msg.extend_from_slice(&(len as u16).to_ne_bytes());
        msg.extend_from_slice(&typ.to_ne_bytes());
        msg.extend_from_slice(payload);
        msg.resize(msg.len() + (4 - len % 4) % 4, 0);
    }
    let total = msg.len() as u32;
    msg[..4].copy_from_slice(&total.to_ne_bytes());
    // SAFETY: socket(2) with constant arguments; the result is checked and owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: msg and kernel outlive the call; their sizes are passed.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr() as *const libc::c_void,
            msg.len(),
            0,
            &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    // SAFETY: buf outlives the call and its size is passed.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        return if err == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(-err))
        };
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no netlink acknowledgement",
    ))
}

/// personality(2).
pub fn personality(persona: u64) -> io::Result<()> {
    // SAFETY: personality takes one integer.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// sched_setaffinity(0, cpus).
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(io::Error::from)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(io::Error::from)
}

/// setdomainname(2) (nix only has sethostname).
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) };
    check_int(ret).map(|_| ())
}

/// Installs `handler` for `sig` (used only while the init waits at the start gate).
pub fn set_signal_handler(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: sigaction is a plain C struct; all-zero means empty mask and no flags.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler as usize;
    // SAFETY: `act` is valid; the handler only calls async-signal-safe _exit.
    check_int(unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) }).map(|_| ())
}

/// SIG_IGN for `sig`.
pub fn ignore_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler code; an invalid signal number just fails.
    let r = unsafe { libc::signal(sig, libc::SIG_IGN) };
    if r == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Every catchable signal back to SIG_DFL (SIGKILL and SIGSTOP cannot be changed).
pub fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..34).contains(&sig) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler code; an invalid signal number just fails.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// close_range(first, last): closes every descriptor in the range.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: closing descriptors touches no memory; the caller no longer uses these numbers.
    check_int(unsafe { libc::close_range(first, last, 0) }).map(|_| ())
}

/// _exit(2): leave at once, without running destructors or atexit handlers (for forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// The calling thread's signal mask set to empty (a process starts with the mask it inherits).
pub fn unblock_all_signals() -> io::Result<()> {
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(io::Error::from)
}

// ---------------------------------------------------------------------------------------------
// Safe path resolution
// ---------------------------------------------------------------------------------------------

pub const RESOLVE_NO_XDEV: u64 = libc::RESOLVE_NO_XDEV;
pub const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;
pub const RESOLVE_NO_SYMLINKS: u64 = libc::RESOLVE_NO_SYMLINKS;
pub const RESOLVE_BENEATH: u64 = libc::RESOLVE_BENEATH;
pub const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;

/// openat2(2): open `path` relative to `dir` under the `resolve` rules (RESOLVE_IN_ROOT makes
/// `dir` act as "/" for every component and symlink, so nothing resolves outside it).
/// O_CLOEXEC is always added.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: open_how is a plain C struct of integers; zero is its default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = resolve;
    loop {
        // SAFETY: `c` and `how` are valid for the call; the size passed is the struct's size.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match check(ret) {
            // EAGAIN: a concurrent rename/mount raced the lookup; the kernel asks us to retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            r => return r.map(owned),
        }
    }
}

/// The filesystem magic number of what `fd` refers to (fstatfs f_type).
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is a plain C struct filled in by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer for the call.
    check_int(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type)
}

// ---------------------------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------------------------

pub const OPEN_TREE_CLONE: u32 = 1;
pub const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;
pub const MOUNT_ATTR_IDMAP: u64 = 0x100000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount(2) with the target given as an open fd (through the verified host procfs magic link
/// /proc/self/fd/N), so the path is never resolved again after it was checked.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(CString::new).transpose().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "filesystem type has a NUL byte",
        )
    })?;
    let data = data
        .map(CString::new)
        .transpose()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount data has a NUL byte"))?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a valid NUL-terminated string alive for the call.
    let ret = unsafe {
        libc::mount(
            p(&source),
            target.as_ptr(),
            p(&fstype),
            flags,
            p(&data) as *const libc::c_void,
        )
    };
    check_int(ret).map(|_| ())
}

/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING).
pub fn memfd_sealable(name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: name is a valid NUL-terminated string alive for the call; flags are integers.
    let ret =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    check(ret as libc::c_long).map(owned)
}

const ALL_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Seals the memfd `fd` against writes, resizing and further seal changes.
pub fn seal_all(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an integer argument; fd is live for the call.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, ALL_SEALS) };
    check(ret as libc::c_long).map(|_| ())
}

/// Whether `fd` is a memfd sealed by [`seal_all`].
pub fn sealed_against_writes(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GET_SEALS takes no argument; fd is live for the call. Files that are not
    // memfds answer EINVAL.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    ret >= 0 && ret & ALL_SEALS == ALL_SEALS
}

/// open_tree(2): a detached copy (OPEN_TREE_CLONE) of the mount at `path` relative to `dir`, or
/// of `dir` itself when `path` is empty.
pub fn open_tree(dir: BorrowedFd<'_>, path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let mut flags = flags | libc::O_CLOEXEC as u32;
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    // SAFETY: `c` is a valid string for the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c.as_ptr(), flags) };
    check(ret).map(owned)
}

/// mount_setattr(2) on the mount `fd` refers to: set and clear MOUNT_ATTR_* flags and
/// optionally the propagation type (MS_SHARED, MS_SLAVE, MS_PRIVATE, MS_UNBINDABLE).
/// mount_setattr(MOUNT_ATTR_IDMAP) with the user namespace `userns` (on a detached clone).
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> io::Result<()> {
    // userns stays open (borrowed) for the call.
    mount_setattr_raw(
        fd,
        recursive,
        &MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> io::Result<()> {
    mount_setattr_raw(
        fd,
        recursive,
        &MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation,
            userns_fd: 0,
        },
    )
}

fn mount_setattr_raw(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: `attr` is a valid mount_attr for the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(|_| ())
}

/// A new filesystem instance by the new mount API: fsopen(type), fsconfig(`source`, then each
/// `key` or `key=value` of `options`), FSCONFIG_CMD_CREATE, fsmount(`attrs`, MOUNT_ATTR_*). The
/// result is a detached mount, to be attached with [`move_mount`] (which, unlike mount(2),
/// stacks a filesystem on a mount of the same superblock).
pub fn new_fs_mount(
    fstype: &str,
    source: &Path,
    options: &[&str],
    attrs: u64,
) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    let t = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `t` is a valid string for the call.
    let fs =
        check(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) }).map(owned)?;
    let config = |cmd: libc::c_uint, key: Option<&str>, value: Option<&str>| -> io::Result<()> {
        let k = key.map(CString::new).transpose()?;
        let v = value.map(CString::new).transpose()?;
        let kp = k.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
        let vp = v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: key and value are valid strings or null, as fsconfig allows for `cmd`.
        check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, kp, vp, 0) })
            .map(|_| ())
    };
    let src = source
        .to_str()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    config(FSCONFIG_SET_STRING, Some("source"), Some(src))?;
    for o in options.iter().filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some((k, v)) => config(FSCONFIG_SET_STRING, Some(k), Some(v))?,
            None => config(FSCONFIG_SET_FLAG, Some(o), None)?,
        }
    }
    config(FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fsmount takes the configured fs context and two flag words.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })
    .map(owned)
}

/// move_mount(2) from a mount fd onto a target fd (both by descriptor: no path lookups).
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let empty: &CStr = c"";
    // SAFETY: both paths are the empty string; the descriptors are valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(|_| ())
}

/// pivot_root(".", "."): the cwd becomes the new root and the old root is stacked on top of it,
/// to be detached right after (the trick runc and crun use, no put_old directory needed).
pub fn pivot_root_here() -> io::Result<()> {
    let dot = c".";
    // SAFETY: both arguments are valid NUL-terminated strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    check(ret).map(|_| ())
}

/// umount2(path, flags).
pub fn umount(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid string for the call.
    check_int(unsafe { libc::umount2(c.as_ptr(), flags) }).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// eBPF (the cgroup v2 device filter)
// ---------------------------------------------------------------------------------------------

/// The part of `union bpf_attr` BPF_PROG_LOAD reads (the rest stays zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u64; 8],
}

/// The part of `union bpf_attr` BPF_PROG_ATTACH reads.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _rest: [u32; 11],
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The part of `union bpf_attr` BPF_OBJ_GET_INFO_BY_FD reads.
#[repr(C)]
#[derive(Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
    _rest: [u32; 12],
}

/// The start of `struct bpf_prog_info`, up to its name.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// The name a BPF program was loaded with.
pub fn bpf_prog_name(prog: BorrowedFd<'_>) -> io::Result<String> {
    let mut info = ProgInfoHead::default();
    let attr = InfoByFdAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as u64,
        ..Default::default()
    };
    // SAFETY: `attr` and the `info` buffer it points to (of the size it gives) outlive the
    // call; the kernel writes at most info_len bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoByFdAttr,
            std::mem::size_of::<InfoByFdAttr>(),
        )
    };
    check(ret)?;
    Ok(c_string_lossy(&info.name))
}

/// Detaches the device program `prog` from a cgroup.
pub fn bpf_detach_device_program(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: `attr` is valid for the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_DETACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    check(ret).map(|_| ())
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _rest: [u32; 11],
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    _rest: [u32; 13],
}

/// The device programs attached directly to a cgroup, as descriptors.
pub fn bpf_attached_device_programs(cgroup: BorrowedFd<'_>) -> io::Result<Vec<OwnedFd>> {
    let mut ids = [0u32; 64];
    let mut attr = ProgQueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: `attr` and the `ids` buffer it points to outlive the call; the kernel writes at
    // most prog_cnt ids and updates prog_cnt.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQueryAttr,
            std::mem::size_of::<ProgQueryAttr>(),
        )
    };
    check(ret)?;
    let n = (attr.prog_cnt as usize).min(ids.len());
    ids[..n]
        .iter()
        .map(|id| {
            let a = GetFdByIdAttr {
                id: *id,
                ..Default::default()
            };
            // SAFETY: `a` is valid for the call and its size is passed.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_PROG_GET_FD_BY_ID,
                    &a as *const GetFdByIdAttr,
                    std::mem::size_of::<GetFdByIdAttr>(),
                )
            };
            check(r).map(owned)
        })
        .collect()
}

/// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program made of raw `struct bpf_insn` (8 bytes each).
/// The verifier's log is asked for only when a first load fails (it is costly to produce),
/// and then comes back in the error.
pub fn bpf_load_device_program(insns: &[[u8; 8]]) -> io::Result<OwnedFd> {
    bpf_prog_load(insns, false).or_else(|_| bpf_prog_load(insns, true))
}

fn bpf_prog_load(insns: &[[u8; 8]], with_log: bool) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; if with_log { 64 * 1024 } else { 0 }];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"onggi_device");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(with_log),
        log_size: log.len() as u32,
        log_buf: if with_log { log.as_mut_ptr() as u64 } else { 0 },
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: `attr` and every buffer it points to (instructions, license, log) outlive the
    // call; the size passed is the struct's size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    check(ret).map(owned).map_err(|e| {
        let text = c_string_lossy(&log);
        if text.is_empty() {
            e
        } else {
            io::Error::new(e.kind(), format!("{e}; verifier: {}", text.trim_end()))
        }
    })
}

/// Attaches a device program to a cgroup (BPF_F_ALLOW_MULTI: programs of parent cgroups keep
/// applying too). With `replace`, the given program is swapped for the new one atomically
/// (BPF_F_REPLACE): there is no moment without a filter.
pub fn bpf_attach_device_program(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    replace: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI | if replace.is_some() { BPF_F_REPLACE } else { 0 },
        replace_bpf_fd: replace.map_or(0, |r| r.as_raw_fd() as u32),
        ..Default::default()
    };
    // SAFETY: `attr` is valid for the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    check(ret).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------------

/// Takes ownership of a descriptor a library returned as a bare number.
pub fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor that was just created for them and that nothing else
    // owns or closes (libseccomp's notify fd is left to the caller).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Sends `data` and one file descriptor (SCM_RIGHTS) in a single message.
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(data)];
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map(|_| ())
        .map_err(io::Error::from)
}

/// The most descriptors one message carries (the kernel's SCM_MAX_FD).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Sends `data` and the descriptors `fds` (SCM_RIGHTS, at most [`MAX_FDS_PER_MESSAGE`]) in one
/// message; MSG_NOSIGNAL, so a closed peer is EPIPE, never SIGPIPE.
pub fn send_message(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(data)];
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsg: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(|_| ()).map_err(io::Error::from),
        }
    }
}

/// Receives one whole message of a SOCK_SEQPACKET socket, whatever its size (peeked first),
/// and the descriptors it carries (close-on-exec). None when the peer has closed its end.
pub fn recv_message(sock: BorrowedFd<'_>) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    use nix::sys::socket::{recv, recvmsg, ControlMessageOwned, MsgFlags};
    let size = loop {
        let mut probe = [0u8; 1];
        match recv(
            sock.as_raw_fd(),
            &mut probe,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
    if size == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; size];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_MESSAGE]);
    let (n, fds) = loop {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these descriptors for us; nothing
                        // else owns them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (msg.bytes, fds);
            }
        }
    };
    buf.truncate(n);
    Ok(Some((buf, fds)))
}

/// Receives one message carrying exactly one descriptor (SCM_RIGHTS), received close-on-exec.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let [fd] = fds[..] {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no descriptor in the message",
    ))
}

/// A close-on-exec, non-blocking signalfd for `set` (which the caller keeps blocked).
pub fn signal_fd(set: &nix::sys::signal::SigSet) -> io::Result<OwnedFd> {
    // SAFETY: `set` points to a valid sigset_t; the result is a new descriptor we own.
    let fd = check_int(unsafe {
        libc::signalfd(-1, set.as_ref(), libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    })?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal number from a signalfd; None when none is pending.
pub fn read_signal(sfd: BorrowedFd<'_>) -> io::Result<Option<libc::c_int>> {
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

/// Sets O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer-only fcntl calls.
    let flags = check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })
        .map(|_| ())
}

/// ioctl(TIOCSWINSZ): the terminal's size.
pub fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: `ws` is a valid winsize for the call.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) })
        .map(|_| ())
}

/// ioctl(TIOCGWINSZ): the terminal's size.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
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
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer-only ioctl.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(|_| ())
}

/// Reads a NUL-free C string out of a fixed buffer (for utsname-like kernel answers).
pub fn c_string_lossy(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
