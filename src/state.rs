//! The container state store: `<root>/<id>/` holds `state.json` (written atomically), a snapshot
//! of the config taken at create, and `exec.fifo`, the start gate.
//!
//! The first durable record comes before the first kernel object: `create` makes the directory
//! and writes its first `state.json` (status `creating`, the creating onggi's pid and start
//! time, the cgroup it is about to make) before anything else, so a create killed at any later
//! step leaves a record of everything it may have made, for `delete --force`. Commands that change a container hold an exclusive
//! flock on its directory; `state` and `list` only read (state.json is replaced atomically)
//! and never wait. A command that finds the lock held by a create in progress fails at once
//! (`delete --force` kills that create first); held by anything else, it waits at most
//! [`LOCK_WAIT`].
//!
//! Status is never trusted from disk alone: it is derived live from the init's pid *and* its
//! start time in /proc/<pid>/stat (a reused pid is not mistaken for the init), the presence of
//! the start gate, and later the cgroup freezer. `creating` lasts only while the creating onggi
//! lives: a create that died before it recorded `created` leaves a container that is stopped.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The errors callers branch on (`delete --force` of a missing id is silent, for example).
#[derive(Debug, Error)]
pub(crate) enum StoreError {
    #[error("{0}: container does not exist")]
    NotExist(String),
    #[error("{0}: container with that id exists already")]
    Exists(String),
    #[error("invalid container id {0:?}: use 1-255 characters from [A-Za-z0-9_.+-], not \".\" or \"..\"")]
    InvalidId(String),
    #[error("{id}: the container is still being created (by onggi pid {pid})")]
    BeingCreated { id: String, pid: i32 },
    #[error("{0}: another onggi command has held the container's lock for {secs} s", secs = LOCK_WAIT.as_secs())]
    Busy(String),
}

/// How long a command waits for another command (not a create) to release a container.
pub(crate) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Ids are file names (the state directory, the default cgroup): at most NAME_MAX bytes.
pub(crate) const MAX_ID_LEN: usize = 255;

/// Checks a container id: `[A-Za-z0-9_.+-]{1,255}`, not `.` or `..`.
pub(crate) fn validate_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.to_string()))
    }
}

/// What `state` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// A process named by its pid and its start time (field 22 of /proc/<pid>/stat), so that a
/// reused pid is never mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    pub(crate) pid: i32,
    pub(crate) start_time: u64,
}

impl ProcessId {
    /// This process.
    pub(crate) fn me() -> Option<ProcessId> {
        let pid = std::process::id() as i32;
        proc_stat(pid).map(|p| ProcessId {
            pid,
            start_time: p.start_time,
        })
    }

    /// Whether that very process still runs (a zombie does not).
    pub(crate) fn alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|p| p.start_time == self.start_time && !p.dead)
    }

    /// A pidfd for that very process (checked after it is open, so the pid cannot be reused
    /// under us); None when it is gone.
    pub(crate) fn open(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        let fd = match crate::sys::pidfd_open(self.pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e).context("pidfd_open"),
        };
        Ok(self.alive().then_some(fd))
    }
}

/// state.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) id: String,
    /// The init's pid in onggi's pid namespace; 0 until the init is cloned.
    pub(crate) pid: i32,
    /// Field 22 of /proc/<pid>/stat when the init was created.
    pub(crate) pid_start_time: u64,
    pub(crate) bundle: PathBuf,
    pub(crate) rootfs: PathBuf,
    /// RFC 3339, UTC.
    pub(crate) created: String,
    #[serde(default)]
    pub(crate) annotations: HashMap<String, String>,
    /// The euid that created the container (its name is looked up only by `list`).
    pub(crate) owner_uid: u32,
    /// `creating` until the init reports ready, then `created`; the live status is derived.
    pub(crate) recorded: Status,
    /// Whether config.json had a `process` (a container without one can be created, not started).
    pub(crate) has_process: bool,
    /// Whether the init has its own pid namespace (then killing it kills everything inside).
    pub(crate) own_pid_namespace: bool,
    /// The container's cgroup directory (absolute), if it has one.
    #[serde(default)]
    pub(crate) cgroup: Option<PathBuf>,
    /// Whether onggi created that cgroup (then `delete` removes it). Recorded before the mkdir.
    #[serde(default)]
    pub(crate) cgroup_created: bool,
    /// `--systemd-cgroup`: the container's transient scope (`delete` stops it). Recorded before
    /// the scope is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) systemd_unit: Option<String>,
    /// The onggi that is creating the container: `creating` lasts only while it lives.
    #[serde(default)]
    pub(crate) creator: Option<ProcessId>,
}

impl State {
    /// The init, when it has been cloned.
    pub(crate) fn init(&self) -> Option<ProcessId> {
        (self.pid > 0).then_some(ProcessId {
            pid: self.pid,
            start_time: self.pid_start_time,
        })
    }

    /// A create is still running for this container.
    pub(crate) fn being_created(&self) -> bool {
        self.recorded == Status::Creating && self.creator.is_some_and(|c| c.alive())
    }
}

/// The store at `--root`.
pub(crate) struct Store {
    root: PathBuf,
}

/// One container's directory, locked for as long as this value lives (or only read: see
/// [`Store::peek`]).
pub(crate) struct ContainerDir {
    pub(crate) id: String,
    pub(crate) path: PathBuf,
    lock: Option<File>,
}

const STATE: &str = "state.json";
const CONFIG: &str = "config.json";
const GATE: &str = "exec.fifo";

impl Store {
    /// Opens (creating with mode 0700 when missing) the state root.
    pub(crate) fn open(root: &Path) -> Result<Store> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("--root {}: cannot create", root.display()))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Where compiled seccomp filters are cached (a name no container id can take).
    pub(crate) fn seccomp_cache(&self) -> PathBuf {
        self.root.join(crate::seccomp_cache::DIR)
    }

    /// Where loaded device programs are pinned (src/cgroup/device_pins.rs).
    pub(crate) fn device_pins(&self) -> PathBuf {
        self.root.join(crate::cgroup::device_pins::DIR)
    }

    /// The mount template's directory (src/rootfs/template.rs).
    pub(crate) fn mount_template(&self) -> PathBuf {
        self.root.join(crate::rootfs::template::DIR)
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates and locks the directory of a new container and writes its first state record,
    /// before anything else exists; fails if the id is taken. (A directory without state.json
    /// is a create that died within these few calls: nothing else exists for it.)
    pub(crate) fn create(&self, id: &str, first: &State) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = self.dir_of(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(id.to_string()).into())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
        let dir = (|| -> Result<ContainerDir> {
            let dir = ContainerDir {
                id: id.to_string(),
                lock: Some(lock_file(&path)?),
                path: path.clone(),
            };
            dir.save(first)?;
            Ok(dir)
        })();
        if dir.is_err() {
            let _ = std::fs::remove_dir_all(&path);
        }
        dir
    }

    /// Opens and locks an existing container's directory. Fails at once when a create of it
    /// is still running; waits at most [`LOCK_WAIT`] for any other command.
    pub(crate) fn get(&self, id: &str) -> Result<ContainerDir> {
        let dir = self.peek(id)?;
        let f = open_dir(&dir.path, id)?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match crate::sys::flock_try_exclusive(f.as_fd()) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot lock {}", dir.path.display()))
                }
            }
            if let Ok(Some(s)) = dir.load() {
                if s.being_created() {
                    let pid = s.creator.map_or(0, |c| c.pid);
                    return Err(StoreError::BeingCreated {
                        id: id.to_string(),
                        pid,
                    }
                    .into());
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Busy(id.to_string()).into());
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // The directory may have been removed by a `delete` that held the lock before us.
        if !dir.path.exists() {
            return Err(StoreError::NotExist(id.to_string()).into());
        }
        Ok(ContainerDir {
            lock: Some(f),
            ..dir
        })
    }

    /// A container's directory for reading only: no lock, never waits (`state`, `list`).
    pub(crate) fn peek(&self, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = self.dir_of(id);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "{}: not a directory (a container's state directory must be one)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotExist(id.to_string()).into())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            lock: None,
        })
    }

    /// The ids in the store, sorted.
    pub(crate) fn ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)
            .with_context(|| format!("cannot list {}", self.root.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn open_dir(path: &Path, id: &str) -> Result<File> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(StoreError::NotExist(id.to_string()).into())
        }
        Err(e) => Err(e).with_context(|| format!("cannot open {}", path.display())),
    }
}

/// Opens and locks a directory nobody else knows yet.
fn lock_file(path: &Path) -> Result<File> {
    let f = open_dir(path, "")?;
    crate::sys::flock_exclusive(f.as_fd())
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(f)
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, then rename.
/// No fsync: the rename is atomic for every process whatever onggi's fate (a killed onggi leaves
/// the old file or the new one, never half of one), and the state describes processes that a
/// power loss ends too. runc does not sync its state either; where /run is on a disk (this
/// kind of VM) each fsync cost 0.3 to 110 ms, four times per `run`.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", path.display()))
}

impl ContainerDir {
    pub(crate) fn load(&self) -> Result<Option<State>> {
        match std::fs::read(self.path.join(STATE)) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .with_context(|| format!("{}: corrupt state.json", self.id)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("{}: cannot read state.json", self.id)),
        }
    }

    pub(crate) fn save(&self, s: &State) -> Result<()> {
        let data = serde_json::to_vec(s)?;
        write_atomic(&self.path.join(STATE), &data, 0o600)
    }

    /// The config as it was at create: later commands never re-read the bundle.
    pub(crate) fn save_config(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        let data = serde_json::to_vec(spec)?;
        self.save_config_bytes(&data)
    }

    /// The config snapshot as the bundle's own bytes (Bundle::raw).
    pub(crate) fn save_config_bytes(&self, data: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(CONFIG), data, 0o600)
    }

    pub(crate) fn load_config(&self) -> Result<oci_spec::runtime::Spec> {
        let b = std::fs::read(self.path.join(CONFIG))
            .with_context(|| format!("{}: cannot read the saved config", self.id))?;
        crate::spec::parse(&b)
    }

    pub(crate) fn gate_path(&self) -> PathBuf {
        self.path.join(GATE)
    }

    /// The live status (see the module doc).
    pub(crate) fn status(&self, s: &State) -> Status {
        if s.recorded == Status::Creating {
            // A create that died half-way left a container that never came to be.
            return if s.being_created() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        match proc_stat(s.pid) {
            Some(p) if p.start_time == s.pid_start_time && !p.dead => {
                if self.gate_path().exists() {
                    Status::Created
                } else if s.cgroup.as_deref().is_some_and(crate::cgroup::is_frozen) {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }

    /// Removes the directory (the lock goes with it).
    pub(crate) fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.path)
            .with_context(|| format!("cannot remove {}", self.path.display()))?;
        drop(self.lock);
        Ok(())
    }
}

/// What onggi needs from /proc/<pid>/stat.
pub(crate) struct ProcStat {
    pub(crate) start_time: u64,
    /// Zombie or dead: the process has exited.
    pub(crate) dead: bool,
}

/// Reads /proc/<pid>/stat; None when the process does not exist.
pub(crate) fn proc_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field 22 (starttime) is index 19.
    let state = fields.first()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Ok::<_, ()>(ProcStat {
        start_time,
        dead: *state == "Z" || *state == "X",
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "c1", "A-b_c.d+e", &"x".repeat(255)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a b",
            "é",
            "a\0",
            &"x".repeat(256),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stat_with_odd_command_names() {
        let s =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 100";
        let p = parse_stat(s).expect("parses");
        assert_eq!(p.start_time, 98765);
        assert!(!p.dead);
        let z = "7 (sh) Z 1 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 555 0 0";
        assert!(parse_stat(z).expect("parses").dead);
    }

    #[test]
    fn own_process_is_alive() {
        let me = proc_stat(std::process::id() as i32).expect("self");
        assert!(!me.dead);
        assert!(me.start_time > 0);
    }
}
