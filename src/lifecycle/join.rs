//! exec's joining process: the clone3 child that enters the container and becomes the new
//! process. It shares the process half (src/process.rs) with the init; what is its own is the
//! hygiene before it joins anything, the setns, and the chroot of a container without a mount
//! namespace.

use anyhow::{Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::msg::{Channel, FromJoiner, ToJoiner};
use crate::plan::ProcessPlan;
use crate::process::{Prepared, Seccomp};
use crate::{namespaces, sys, trace};

/// What the joining process gets from `exec`. The descriptor fields are the one list of what
/// it inherits: [`Joiner::kept_fds`] is derived from them.
pub(crate) struct Joiner<'a> {
    pub(crate) channel: &'a Channel<FromJoiner, ToJoiner>,
    /// The init's pidfd (the setns target).
    pub(crate) pidfd: BorrowedFd<'a>,
    /// CLONE_NEW* flags of the namespaces to join.
    pub(crate) join: u64,
    /// Whether the container has its own mount namespace (else it was chrooted).
    pub(crate) own_mount_ns: bool,
    pub(crate) rootfs: &'a Path,
    pub(crate) process: &'a ProcessPlan,
    /// Where the pty master goes, when the process has a terminal.
    pub(crate) console: Option<&'a UnixStream>,
    /// The container's seccomp filter and its listener socket.
    pub(crate) seccomp: Option<&'a crate::seccomp::Filter>,
    pub(crate) listener: Option<&'a UnixStream>,
    pub(crate) procfs: BorrowedFd<'a>,
    pub(crate) preserve_fds: u32,
    /// Wait for onggi's Placed before execve (it moves us into the cgroup, or a seccomp
    /// listener needs our pid as onggi sees it).
    pub(crate) wait_placed: bool,
    /// The container state JSON, for a seccomp listener.
    pub(crate) hook_state: String,
}

impl Joiner<'_> {
    fn kept_fds(&self) -> Vec<RawFd> {
        let mut keep = vec![
            self.channel.as_fd().as_raw_fd(),
            self.pidfd.as_raw_fd(),
            self.procfs.as_raw_fd(),
        ];
        keep.extend(trace::sink().map(|f| f.as_raw_fd()));
        keep.extend(self.console.map(|c| c.as_raw_fd()));
        keep.extend(self.listener.map(|c| c.as_raw_fd()));
        keep
    }
}

/// The joining process's main: execve, or exit with the error sent to onggi.
pub(crate) fn run(j: Joiner<'_>) -> i32 {
    let prepared = join_and_prepare(&j);
    // With SCMP_ACT_NOTIFY, the listener is told our pid as onggi sees it; in a cgroup we
    // could not be cloned into, onggi moves us there first.
    let host_pid = match (&prepared, j.wait_placed) {
        (Ok(_), true) => match j.channel.recv() {
            Ok(Some(ToJoiner::Placed { pid })) => pid,
            _ => return 1,
        },
        _ => 0,
    };
    match prepared {
        Ok((p, program)) => {
            let seccomp = program.map(|program| Seccomp {
                program,
                listener: j.listener,
                pid: host_pid,
                state: j.hook_state.clone(),
            });
            crate::process::exec(p, j.preserve_fds, seccomp)
        }
        Err(e) => {
            let _ = j.channel.send(&FromJoiner::error(&e));
            1
        }
    }
}

/// Everything up to execve, and the seccomp program to install right before it.
fn join_and_prepare(j: &Joiner<'_>) -> Result<(Prepared, Option<crate::seccomp::Program>)> {
    trace::step("exec_hygiene", |c| {
        crate::process::close_inherited_except(&j.kept_fds(), j.preserve_fds)?;
        // Before it enters any namespace: no ptrace, no /proc/<pid>/{exe,fd,mem} for container root.
        sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        sys::unblock_all_signals().context("sigprocmask")?;
        c.note(|| {
            "close_range(inherited fds) | prctl(PR_SET_DUMPABLE, 0) | sigprocmask(unblock)".into()
        });
        Ok::<_, anyhow::Error>(())
    })?;
    trace::step("setns", |c| {
        if j.join != 0 {
            // Raw flags: nix's CloneFlags would silently drop CLONE_NEWTIME.
            sys::setns(j.pidfd, j.join as libc::c_int)
                .context("setns into the container's namespaces")?;
        }
        c.note(|| format!("setns(pidfd, {})", namespaces::flag_names(j.join)));
        Ok::<_, anyhow::Error>(())
    })?;
    if !j.own_mount_ns {
        // A container without its own mount namespace was chrooted into its rootfs.
        nix::unistd::chroot(j.rootfs).context("chroot")?;
        nix::unistd::chdir("/").context("chdir /")?;
    }
    let slave = match j.console {
        Some(sock) => {
            let size = j
                .process
                .process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16));
            Some(trace::step("console", |c| {
                crate::console::setup_exec(sock, size, c)
            })?)
        }
        None => None,
    };
    let mut prepared = crate::process::prepare(j.process, j.seccomp.is_some(), j.procfs)?;
    prepared.console = slave;
    let program = j.seccomp.map(|f| f.program()).transpose()?;
    Ok((prepared, program))
}
