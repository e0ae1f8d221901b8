//! `run`: create, start, and in the foreground wait (relaying signals or the terminal), then
//! delete.

use anyhow::{Context, Result};
use std::os::fd::AsFd;

use super::create::{self, CreateOptions};
use super::delete;
use super::delete::delete_with;
use super::start::start_with;
use crate::signal;
use crate::state::Store;

/// `run`: create, start, and (unless detached) wait, relaying signals to the container, then
/// delete it (unless `--keep`) and return its exit code (128+N when a signal killed it).
pub(crate) fn run(store: &Store, o: &CreateOptions<'_>, detach: bool, keep: bool) -> Result<i32> {
    let relay = if detach {
        None
    } else {
        Some(signal::Relay::block().context("sigprocmask")?)
    };
    // In the foreground without a --console-socket, a terminal's master comes back to us.
    let pair = match (&relay, o.console_socket) {
        (Some(_), None) => Some(std::os::unix::net::UnixStream::pair().context("socketpair")?),
        _ => None,
    };
    let o = &CreateOptions {
        terminal_relay: pair.as_ref().map(|(ours, _)| ours),
        ..*o
    };
    let created = create::create(store, o)?;
    let master = match (&pair, created.relayed_terminal) {
        (Some((_, theirs)), true) => match crate::console::receive(theirs) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete(store, o.id, true);
                return Err(e);
            }
        },
        _ => None,
    };
    // The config parsed by create serves start and delete too.
    let config = Some(&created.config);
    if let Err(e) = start_with(store, o.id, config) {
        let _ = delete_with(store, o.id, true, config);
        return Err(e);
    }
    let Some(relay) = relay else { return Ok(0) };
    let code = match master {
        Some(m) => crate::console::relay(&relay, created.pid, created.pidfd.as_fd(), m)?,
        None => relay
            .wait(created.pid, created.pidfd.as_fd())
            .context("waiting for the container")?,
    };
    if !keep {
        delete_with(store, o.id, true, config)?;
    }
    Ok(code)
}
