//! The messages between onggi and the process it cloned, and the channel they travel on.
//!
//! Each conversation has its own types, and a [`Channel`] end knows which it sends and which it
//! receives, so the compiler refuses a message sent the wrong way or to the wrong process:
//!
//! ```text
//!   create:  onggi ── ToInit::Go ──────────▶ init        (descriptors beside it)
//!            onggi ◀── FromInit::Ready/Error ── init
//!   exec:    onggi ── ToJoiner::Placed ─────▶ joining process (only when it must wait)
//!            onggi ◀── FromJoiner::Error ──── joining process (EOF: it reached execve)
//! ```
//!
//! One message is one SOCK_SEQPACKET datagram of JSON: the kernel keeps the boundaries.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// onggi → init: the parent side is ready (state recorded, id maps written, cgroup joined,
/// createRuntime hooks run).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToInit {
    Go(Go),
}

/// What `Go` tells the init.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Go {
    /// The init's pid as onggi (and the host) sees it: the hook state and seccomp listeners
    /// need it, and inside its own pid namespace the init is pid 1.
    pub(crate) pid: i32,
    /// What the descriptors sent with this message are, in order.
    #[serde(default)]
    pub(crate) sources: Vec<Source>,
}

/// A descriptor onggi opened for the init, through the init's own mount namespace
/// (`/proc/<pid>/root/…`) with onggi's privileges: under a user namespace the init could not
/// walk to paths below directories only the host's root may enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Source {
    /// root.path
    Rootfs,
    /// The source of bind mount `mounts[i]`.
    Mount(usize),
}

/// init → onggi.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromInit {
    /// Set up, waiting at the start gate.
    Ready,
    /// Setup failed; the one-line reason. The init exits after sending it.
    Error(String),
}

/// onggi → joining process: it is in the container's cgroup now (when it could not be cloned
/// into it), and this is its pid as onggi sees it (for a seccomp listener).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToJoiner {
    Placed { pid: i32 },
}

/// joining process → onggi: it could not reach execve. Nothing is sent on success: the channel
/// is close-on-exec, so EOF means execve ran.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromJoiner {
    Error(String),
}

impl FromInit {
    pub(crate) fn error(e: &anyhow::Error) -> FromInit {
        FromInit::Error(error_line(e))
    }
}

impl FromJoiner {
    pub(crate) fn error(e: &anyhow::Error) -> FromJoiner {
        FromJoiner::Error(error_line(e))
    }
}

/// An error line longer than this is cut (a 1 MB config value makes a 1 MB line otherwise,
/// more than one message may carry).
const MAX_ERROR_LEN: usize = 16 * 1024;

fn error_line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if text.len() > MAX_ERROR_LEN {
        shorten(&text, MAX_ERROR_LEN)
    } else {
        text
    }
}

/// `text` cut to about `max` bytes: its start and its end (where the reason usually is), with
/// how much was left out between them.
fn shorten(text: &str, max: usize) -> String {
    let half = max / 2;
    let mut head = half;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - half;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} …({} bytes left out)… {}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// One end of a SOCK_SEQPACKET socketpair that sends `S` and receives `R`.
pub(crate) struct Channel<S, R> {
    fd: OwnedFd,
    types: PhantomData<fn(S) -> R>,
}

/// The two ends of a new channel: onggi's, and the cloned process's.
pub(crate) fn pair<S, R>() -> Result<(Channel<S, R>, Channel<R, S>)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    Ok((
        Channel {
            fd: a,
            types: PhantomData,
        },
        Channel {
            fd: b,
            types: PhantomData,
        },
    ))
}

impl<S: Serialize, R: DeserializeOwned> Channel<S, R> {
    pub(crate) fn send(&self, m: &S) -> Result<()> {
        self.send_with_fds(m, &[])
    }

    /// `m` with descriptors beside it (at most [`sys::MAX_FDS_PER_MESSAGE`]).
    pub(crate) fn send_with_fds(&self, m: &S, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let data = serde_json::to_vec(m)?;
        sys::send_message(self.fd.as_fd(), &data, fds)
            .context("cannot send to the other side of the channel")
    }

    /// The next message, or None when the other side has closed its end.
    pub(crate) fn recv(&self) -> Result<Option<R>> {
        Ok(self.recv_with_fds()?.map(|(m, _)| m))
    }

    /// The next message and the descriptors that came with it.
    pub(crate) fn recv_with_fds(&self) -> Result<Option<(R, Vec<OwnedFd>)>> {
        let Some((data, fds)) =
            sys::recv_message(self.fd.as_fd()).context("cannot read the channel")?
        else {
            return Ok(None);
        };
        let m = serde_json::from_slice(&data).context("bad message on the channel")?;
        Ok(Some((m, fds)))
    }
}

impl<S, R> AsFd for Channel<S, R> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_keeps_its_start_and_its_reason() {
        let e = format!(
            "exec \"{}\": no such file or directory",
            "é".repeat(100_000)
        );
        let s = shorten(&e, 1000);
        assert!(s.len() < 1100);
        assert!(s.starts_with("exec \"é"));
        assert!(s.ends_with(": no such file or directory"));
        assert!(s.contains("bytes left out"));
    }

    #[test]
    fn messages_cross_the_pair_with_their_types() {
        let (onggi, init) = pair::<ToInit, FromInit>().expect("pair");
        onggi
            .send(&ToInit::Go(Go {
                pid: 42,
                sources: vec![Source::Rootfs, Source::Mount(3)],
            }))
            .expect("send");
        match init.recv().expect("recv") {
            Some(ToInit::Go(go)) => {
                assert_eq!(go.pid, 42);
                assert_eq!(go.sources, [Source::Rootfs, Source::Mount(3)]);
            }
            other => panic!("{other:?}"),
        }
        let big = anyhow::anyhow!("{}", "x".repeat(100_000));
        init.send(&FromInit::error(&big)).expect("send error");
        match onggi.recv().expect("recv") {
            Some(FromInit::Error(e)) => assert!(e.len() < MAX_ERROR_LEN + 100),
            other => panic!("{other:?}"),
        }
        drop(init);
        assert!(onggi.recv().expect("eof").is_none());
    }
}
