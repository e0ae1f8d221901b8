//! `pause` and `resume`: the container's cgroup frozen or thawed.

use anyhow::Result;

use super::{Container, LifecycleError};
use crate::state::{Status, Store};
use crate::trace;

/// `pause` / `resume`: freeze or thaw the container's cgroup.
pub(crate) fn pause(store: &Store, id: &str, on: bool) -> Result<()> {
    let c = Container::open(store, id)?;
    let cg = c
        .cgroup()
        .map_err(|e| anyhow::anyhow!("{e}: cannot pause"))?;
    let id = id.to_string();
    match (c.status(), on) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (Status::Paused, true) => return Err(LifecycleError::AlreadyPaused(id).into()),
        (other, true) => return Err(LifecycleError::NotRunningIs(id, other).into()),
        (other, false) => return Err(LifecycleError::NotPaused(id, other).into()),
    }
    trace::step(if on { "pause" } else { "resume" }, |c| {
        crate::cgroup::freeze(cg, on)?;
        c.note(|| format!("write {}/cgroup.freeze = {}", cg.display(), u8::from(on)));
        Ok::<_, anyhow::Error>(())
    })
}
