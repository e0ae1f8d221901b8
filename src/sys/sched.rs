//! Scheduling: sched_setattr, I/O priority, the memory policy and the CPU affinity.

use std::io;

/// The fields of `struct sched_attr` (SCHED_ATTR_SIZE_VER0) onggi sets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchedAttr {
    pub(crate) policy: u32,
    pub(crate) flags: u64,
    pub(crate) nice: i32,
    pub(crate) priority: u32,
    pub(crate) runtime: u64,
    pub(crate) deadline: u64,
    pub(crate) period: u64,
}

/// sched_setattr(2) for the calling thread.
pub(crate) fn sched_setattr(a: &SchedAttr) -> io::Result<()> {
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
pub(crate) fn ioprio_set(class: u16, level: u16) -> io::Result<()> {
    let prio = (i32::from(class) << 13) | i32::from(level);
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// set_mempolicy(2) with a node mask built from `nodes` (all below 1024).
pub(crate) fn set_mempolicy(mode: i32, nodes: &[usize]) -> io::Result<()> {
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

/// sched_setaffinity(0, cpus).
pub(crate) fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(io::Error::from)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(io::Error::from)
}
