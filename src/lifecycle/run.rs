//! `run`: create, start, and in the foreground wait (relaying signals or the terminal), then
//! delete.

use anyhow::{Context, Result};
use std::os::fd::AsFd;

use super::create::{self, CreateOptions};
use super::{delete, start};
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
    if let Err(e) = start(store, o.id) {
        let _ = delete(store, o.id, true);
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
        delete(store, o.id, true)?;
    }
    Ok(code)
}
