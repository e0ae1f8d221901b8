//! The lifecycle verbs, each over one [`Container`] opened from the state store: create (and
//! the clone it makes), start, state and list, kill, pause and resume, exec and ps, update and
//! events, delete, and run (create + start + wait), as runc's CLI has them.

pub(crate) mod checkpoint;
pub(crate) mod create;
mod delete;
mod events;
pub(crate) mod exec;
mod explain;
mod explain_text;
mod join;
mod kill;
mod list;
mod parent_side;
mod pause;
mod ps;
pub(crate) mod restore;
mod run;
mod spawn;
mod start;
mod undo;
pub(crate) mod update;

pub(crate) use delete::delete;
pub(crate) use events::events;
pub(crate) use explain::explain;
pub(crate) use kill::kill;
pub(crate) use list::{list, state};
pub(crate) use pause::pause;
pub(crate) use ps::ps;
pub(crate) use run::run;
pub(crate) use start::start;

use anyhow::Result;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use thiserror::Error;

use crate::state::{ContainerDir, State, Status, Store, StoreError};

/// One container, opened from the store with its directory locked, and its recorded state.
pub(crate) struct Container {
    pub(crate) dir: ContainerDir,
    pub(crate) state: State,
}

impl Container {
    /// Opens the container `id`, which must have a state.json.
    pub(crate) fn open(store: &Store, id: &str) -> Result<Container> {
        let dir = store.get(id)?;
        match dir.load()? {
            Some(state) => Ok(Container { dir, state }),
            None => Err(StoreError::NotExist(id.to_string()).into()),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.state.id
    }

    /// The status now (the recorded one, checked against the init's life).
    pub(crate) fn status(&self) -> Status {
        self.dir.status(&self.state)
    }

    /// A pidfd for the init, checked to be that very process (pid and start time); None when
    /// it has ended, or was never cloned (pid 0 in the first record).
    pub(crate) fn init(&self) -> Result<Option<OwnedFd>> {
        open_init(&self.state)
    }

    /// The container's cgroup directory, or why it has none.
    pub(crate) fn cgroup(&self) -> Result<&std::path::Path> {
        self.state.cgroup.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the container has no cgroup ({})",
                self.id(),
                no_cgroup_reason()
            )
        })
    }
}

/// The container's cgroup and its status now (the lock is not kept): for update and events.
pub(crate) fn cgroup_of(store: &Store, id: &str) -> Result<(PathBuf, Status)> {
    let c = Container::open(store, id)?;
    Ok((c.cgroup()?.to_path_buf(), c.status()))
}

/// Why a lifecycle verb refuses a container in its present status. Callers match on these
/// (`kill --all` of a stopped container is a success, for one) instead of on error text.
#[derive(Debug, Error)]
pub(crate) enum LifecycleError {
    #[error("{0}: container not running")]
    NotRunning(String),
    #[error("{0}: container not running ({1})")]
    NotRunningIs(String, Status),
    #[error("{0}: container not running (it is still being created)")]
    StillCreating(String),
    #[error("{0}: container is paused (use --ignore-paused to exec anyway)")]
    Paused(String),
    #[error("{0}: container already paused")]
    AlreadyPaused(String),
    #[error("{0}: container not paused ({1})")]
    NotPaused(String, Status),
    #[error("{0}: cannot start a container that has stopped")]
    StartStopped(String),
    #[error("{0}: cannot start an already running container")]
    StartRunning(String),
    #[error("{0}: the container is still being created")]
    StartCreating(String),
    #[error("{0}: cannot delete a container that is not stopped (it is {1}); use --force")]
    DeleteLive(String, Status),
}

pub(crate) fn open_init(state: &State) -> Result<Option<OwnedFd>> {
    // None, too, for a container whose init was never cloned (pid 0 in its first record).
    Ok(state.init().map(|i| i.open()).transpose()?.flatten())
}

/// The pid-namespace inode of a process, to find every process of a container.
pub(crate) fn pid_ns_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The container's processes as host pids: its cgroup's members; without a cgroup (rootless
/// without delegation), every process in the init's own pid namespace; else only the init.
pub(crate) fn members(state: &State) -> Vec<i32> {
    if let Some(cg) = &state.cgroup {
        return crate::cgroup::procs(cg);
    }
    let ns = match pid_ns_of(state.pid) {
        Some(ns) if state.own_pid_namespace => ns,
        _ => return vec![state.pid],
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![state.pid];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| pid_ns_of(pid).as_ref() == Some(&ns))
        .collect()
}

/// Why a container may have no cgroup: said in the errors of what needs one.
pub(crate) fn no_cgroup_reason() -> String {
    let uid = nix::unistd::geteuid();
    if !crate::namespaces::rootless() {
        "this host has no cgroup v2 hierarchy".into()
    } else {
        format!("onggi runs rootless and no cgroup was delegated to uid {uid}")
    }
}

/// Waits (up to `secs`) for the process behind `pidfd` to exit.
pub(crate) fn wait_exit(pidfd: BorrowedFd<'_>, secs: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(secs.saturating_mul(1000))), Ok(n) if n > 0)
}
