//! `kill`: a signal to the init, or to every process of the container.

use anyhow::{Context, Result};
use std::os::fd::AsFd;

use super::{Container, LifecycleError};
use crate::state::{State, Status, Store};
use crate::{signal, sys};

/// `kill`: a signal to the init (or, with --all, to every process of the container). Signal 0
/// only checks that the container runs, as with runc.
pub(crate) fn kill(store: &Store, id: &str, sig: &str, all: bool) -> Result<()> {
    let sig = if sig == "0" { 0 } else { signal::parse(sig)? };
    let all = all && sig != 0;
    let c = Container::open(store, id)?;
    let s = &c.state;
    let not_running = || -> Result<()> {
        if all {
            // As runc: --all of a container that has stopped is a success.
            Ok(())
        } else {
            Err(LifecycleError::NotRunning(id.into()).into())
        }
    };
    if c.status() == Status::Stopped {
        return not_running();
    }
    let Some(pidfd) = c.init()? else {
        return not_running();
    };
    if all {
        signal_all(s, sig)?;
    }
    match sys::pidfd_send_signal(pidfd.as_fd(), sig) {
        // SIGKILL cannot be caught: `kill` returns once the init is gone (at most 1 s), so a
        // `delete` right after it finds the container stopped, not still `created`.
        Ok(()) if sig == libc::SIGKILL => {
            let _ = super::wait_exit(pidfd.as_fd(), 1);
            Ok(())
        }
        Ok(()) => Ok(()),
        // Gone since we looked: after --all that is success, else it was not running.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => not_running(),
        Err(e) => Err(e)
            .with_context(|| format!("{id}: cannot send {} to pid {}", signal::name(sig), s.pid)),
    }
}

/// Every process of the container: through its cgroup (cgroup.kill for SIGKILL; freeze,
/// signal each, thaw otherwise), else through its own pid namespace, else only the init.
pub(crate) fn signal_all(s: &State, sig: i32) -> Result<()> {
    if let Some(cg) = &s.cgroup {
        return crate::cgroup::kill_all(cg, sig);
    }
    if !s.own_pid_namespace {
        crate::logging::warn(&format!(
            "{}: no cgroup and no pid namespace of its own: kill --all reaches only the init",
            s.id
        ));
        return Ok(());
    }
    let Some(ns) = super::pid_ns_of(s.pid) else {
        return Ok(());
    };
    for pid in super::members(s) {
        if pid == s.pid {
            continue;
        }
        let Ok(fd) = sys::pidfd_open(pid) else {
            continue;
        };
        // Checked after the pidfd is open, so the pid cannot be another process by now.
        if super::pid_ns_of(pid).as_ref() == Some(&ns) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), sig);
        }
    }
    Ok(())
}
