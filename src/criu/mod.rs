//! CRIU (checkpoint/restore in userspace), driven over its RPC interface as runc drives it:
//! onggi runs `criu swrk 3` with one end of a SOCK_SEQPACKET pair at descriptor 3, sends one
//! request (src/criu/rpc.rs), answers the notifications CRIU sends while it works
//! ("setup-namespaces", "post-restore", "orphan-pts-master" with the pty master beside it …),
//! and reads the final answer. The images and work directories are passed as descriptors of
//! onggi (CRIU opens them through /proc/<onggi>/fd), never as paths CRIU would resolve itself.

pub(crate) mod rpc;

use anyhow::{anyhow, Context, Result};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::sys;
use rpc::{ReqType, Request, Response};

/// CRIU's own refusal: its message (the first error it logged), and where its log is.
#[derive(Debug, thiserror::Error)]
#[error("criu {what} failed: {reason}; CRIU's log: {log}")]
pub(crate) struct Failed {
    what: &'static str,
    reason: String,
    log: String,
}

/// What onggi does on one notification: the script name, the pid CRIU names, and the
/// descriptors that came with it.
pub(crate) type OnNotify<'a> = dyn FnMut(&str, i32, Vec<OwnedFd>) -> Result<()> + 'a;

/// A running `criu swrk` (the binary `criu`, as found on PATH or given by --criu): one end of
/// its socket, and the process, reaped when the session ends.
pub(crate) struct Session {
    sock: OwnedFd,
    child: std::process::Child,
}

impl Session {
    /// Starts CRIU, which finds `inherit` at descriptors 4, 5, … (for its inherit_fd).
    /// `quiet`: CRIU's stderr goes to /dev/null (after a pre-dump it waits for another request
    /// and complains on stderr when onggi closes the socket instead; its log has the rest).
    pub(crate) fn start(criu: &Path, inherit: &[BorrowedFd<'_>], quiet: bool) -> Result<Session> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair")?;
        let mut cmd = std::process::Command::new(criu);
        cmd.args(["swrk", "3"]);
        if quiet {
            cmd.stderr(std::process::Stdio::null());
        }
        let mut fds = vec![theirs.as_fd()];
        fds.extend_from_slice(inherit);
        sys::pass_fds(&mut cmd, &fds);
        let child = cmd.spawn().map_err(|e| not_started(criu, e))?;
        Ok(Session { sock: ours, child })
    }

    /// CRIU's pid (restore moves it into the container's cgroup before the request).
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `req`, answers the notifications, and returns CRIU's final answer when it
    /// succeeded; a refusal is a [`Failed`] that names `log`.
    pub(crate) fn run(
        mut self,
        req: &Request,
        log: &Path,
        on_notify: &mut OnNotify<'_>,
    ) -> Result<Response> {
        let answer = converse(&self.sock, req, on_notify);
        drop(self.sock);
        let _ = self.child.wait();
        let what = match req.kind {
            ReqType::Dump => "dump",
            ReqType::PreDump => "pre-dump",
            ReqType::Restore => "restore",
            _ => "request",
        };
        let (resp, notify_error) = answer?;
        if let Some(e) = notify_error {
            return Err(e.context(format!("criu {what}; CRIU's log: {}", log.display())));
        }
        if !resp.success {
            let reason = match (&resp.errmsg, resp.errno) {
                (Some(m), _) if !m.trim().is_empty() => m.trim().to_string(),
                (_, Some(n)) if n != 0 => std::io::Error::from_raw_os_error(n).to_string(),
                _ => "it gave no reason".to_string(),
            };
            return Err(Failed {
                what,
                reason,
                log: log.display().to_string(),
            }
            .into());
        }
        Ok(resp)
    }
}

fn not_started(criu: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow!(
            "{}: not found: checkpoint and restore need CRIU (Debian's criu package, or --criu PATH)",
            criu.display()
        )
    } else {
        anyhow!("cannot run {}: {e}", criu.display())
    }
}

/// Sends the request and reads answers until the final one, answering each notification.
/// A notification onggi failed is answered "failed" (CRIU then gives up and undoes its work);
/// its error comes back beside CRIU's final answer.
fn converse(
    sock: &OwnedFd,
    req: &Request,
    on_notify: &mut OnNotify<'_>,
) -> Result<(Response, Option<anyhow::Error>)> {
    sys::send_message(sock.as_fd(), &req.encode(), &[]).context("cannot send CRIU the request")?;
    let mut notify_error = None;
    loop {
        let Some((bytes, fds)) =
            sys::recv_message(sock.as_fd()).context("cannot read CRIU's answer")?
        else {
            return Err(notify_error
                .unwrap_or_else(|| anyhow!("criu ended without an answer (killed, or crashed)")));
        };
        let resp = Response::decode(&bytes)?;
        if resp.kind != Some(ReqType::Notify) {
            return Ok((resp, notify_error));
        }
        let (script, pid) = resp.notify.clone().unwrap_or_default();
        let ok = match on_notify(&script, pid, fds) {
            Ok(()) => true,
            Err(e) => {
                notify_error = Some(e);
                false
            }
        };
        sys::send_message(sock.as_fd(), &Request::notified(ok).encode(), &[])
            .context("cannot answer CRIU's notification")?;
    }
}
