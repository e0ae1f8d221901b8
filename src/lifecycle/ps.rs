//! `ps`: the host pids of the container's processes.

use anyhow::Result;

use super::{members, Container, LifecycleError};
use crate::state::{Status, Store};

/// `ps`: the pids (host view) and command lines of the container's processes.
pub(crate) fn ps(store: &Store, id: &str, json: bool) -> Result<()> {
    let c = Container::open(store, id)?;
    if c.status() == Status::Stopped {
        return Err(LifecycleError::NotRunning(id.into()).into());
    }
    let mut pids = members(&c.state);
    pids.sort_unstable();
    if json {
        crate::logging::print(&serde_json::to_string(&pids)?);
        return Ok(());
    }
    crate::logging::print(&format!("{:>8}  CMD", "PID"));
    for p in pids {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim_end()
                    .to_string()
            })
            .unwrap_or_default();
        crate::logging::print(&format!("{p:>8}  {cmd}"));
    }
    Ok(())
}
