//! Undoes a create (or a restore) that failed half-way.

use anyhow::{anyhow, Context, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::cgroup::setup::Placed;
use crate::lifecycle::spawn::Spawned;
use crate::state::ContainerDir;
use crate::{namespaces, sys};

/// Undoes a create that failed half-way: kills the init, removes the cgroup onggi made (or
/// detaches onggi's device filter from one it did not), removes the state directory. Each
/// object is handed over the moment it exists; `disarm` keeps them all.
#[derive(Default)]
pub(super) struct Undo {
    dir: Option<ContainerDir>,
    child: Option<(i32, OwnedFd)>,
    /// The container's cgroup and whether onggi made it.
    cgroup: Option<(PathBuf, bool)>,
    /// `--systemd-cgroup`: the scope to stop.
    unit: Option<String>,
}

impl Undo {
    pub(super) fn dir(&mut self, dir: ContainerDir) -> &ContainerDir {
        self.dir.insert(dir)
    }

    pub(super) fn state_dir(&self) -> Result<&ContainerDir> {
        self.dir
            .as_ref()
            .ok_or_else(|| anyhow!("state directory vanished"))
    }

    pub(super) fn cgroup(&mut self, placed: Placed) -> Placed {
        self.cgroup = Some((placed.dir.clone(), placed.created));
        self.unit = placed.scope.as_ref().map(|s| s.unit.clone());
        placed
    }

    pub(super) fn child(&mut self, child: &Spawned) -> Result<()> {
        let pidfd = child.pidfd.try_clone().context("dup pidfd")?;
        self.child = Some((child.pid, pidfd));
        Ok(())
    }

    /// A process that is onggi's child (a restored init), killed and reaped on failure.
    pub(super) fn process(&mut self, pid: i32, pidfd: OwnedFd) {
        self.child = Some((pid, pidfd));
    }

    pub(super) fn disarm(mut self) {
        self.dir = None;
        self.child = None;
        self.cgroup = None;
        self.unit = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some((pid, pidfd)) = self.child.take() {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(unit) = self.unit.take() {
            if let Ok(bus) = crate::cgroup::bus::Bus::connect(namespaces::rootless()) {
                let _ = bus.stop(&unit);
            }
        }
        match self.cgroup.take() {
            Some((dir, true)) => {
                let _ = crate::cgroup::remove(&dir);
            }
            Some((dir, false)) => {
                let _ = crate::cgroup::device_filter::detach_ours(&dir);
            }
            None => {}
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}
