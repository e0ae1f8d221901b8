//! `start`: the gate opened, and the poststart hooks once the user process runs.

use anyhow::{Context, Result};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;

use super::{Container, LifecycleError};
use crate::hooks::{self, Moment};
use crate::state::{ContainerDir, Status, Store};
use crate::trace;
use oci_spec::runtime::Spec;

/// `start`: releases the init waiting at the gate, and returns at once.
pub(crate) fn start(store: &Store, id: &str) -> Result<()> {
    start_with(store, id, None)
}

/// `start` with the container's config at hand (`run` has it parsed already); None reads the
/// snapshot in the state directory, when the poststart hooks need it.
pub(crate) fn start_with(store: &Store, id: &str, config: Option<&Spec>) -> Result<()> {
    let c = Container::open(store, id)?;
    let id = id.to_string();
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err(LifecycleError::StartStopped(id).into()),
        Status::Running | Status::Paused => return Err(LifecycleError::StartRunning(id).into()),
        Status::Creating => return Err(LifecycleError::StartCreating(id).into()),
    }
    let (dir, state) = (&c.dir, &c.state);
    // Without `process` there is nothing to run: start fails (runtime.md: "MUST generate an
    // error if process was not set"), and the idle init is released so the container stops.
    trace::step("start_gate", |c| {
        open_gate(dir)?;
        c.note(|| "write(exec.fifo, \"0\")".into());
        Ok::<_, anyhow::Error>(())
    })?;
    if !state.has_process {
        anyhow::bail!("{id}: config.json has no process: there was nothing to start, the container has stopped");
    }
    let loaded;
    let config = match config {
        Some(c) => c,
        None => {
            loaded = dir.load_config()?;
            &loaded
        }
    };
    if !hooks::of(config, Moment::Poststart).is_empty() {
        // poststart runs after the user process was executed: wait (up to 10 s) until the
        // init's image is no longer onggi's.
        let me = std::fs::read_link("/proc/self/exe").ok();
        for _ in 0..10_000 {
            let now = std::fs::read_link(format!("/proc/{}/exe", state.pid)).ok();
            if now.is_none() || now != me {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let st = hooks::HookState::new(
            &id,
            Status::Running,
            state.pid,
            &state.bundle,
            &state.annotations,
        );
        hooks::run(Moment::Poststart, config, &st.json(), None)?;
    }
    Ok(())
}

/// Opens the gate and releases the init waiting behind it.
fn open_gate(dir: &ContainerDir) -> Result<()> {
    let gate = dir.gate_path();
    // O_NONBLOCK: if the init is gone there is no reader and open fails (ENXIO) at once.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&gate)
        .with_context(|| {
            format!(
                "{}: the container init is not waiting at its start gate",
                dir.id
            )
        })?;
    // Unlinked first, so `state` never reports "created" for a started container.
    std::fs::remove_file(&gate).context("cannot remove exec.fifo")?;
    f.write_all(b"0").context("cannot write to exec.fifo")?;
    Ok(())
}
