//! OCI hooks (config.md "POSIX-platform Hooks"), at the moments the spec gives them:
//!
//! | hook | who runs it | when |
//! |---|---|---|
//! | prestart (deprecated), createRuntime | onggi, in the runtime namespaces | namespaces exist, before the init sets up the rootfs |
//! | createContainer | the init, in the container's namespaces | mounts done, before pivot_root (the path resolves on the host) |
//! | startContainer | the init | after `start`, right before execve (the path resolves in the container) |
//! | poststart | `onggi start` | after the user process was released |
//! | poststop | `onggi delete` | after the container is gone |
//!
//! Each hook gets the container's state JSON on stdin, exactly its configured `args`, its `env`
//! (without one: onggi's environment, and for startContainer the process's, as with runc), and
//! at most `timeout` seconds. Its stdin, stdout and stderr are served without blocking. A failing prestart, createRuntime, createContainer or
//! startContainer hook fails the operation; a failing poststart or poststop hook is a warning.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Hook, Spec};
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::state::Status;
use crate::trace;

/// The moments of config.json's `hooks`, in the order a container meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Moment {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Moment {
    /// Every moment, in the order a container meets them.
    pub(crate) const ALL: [Moment; 6] = [
        Moment::Prestart,
        Moment::CreateRuntime,
        Moment::CreateContainer,
        Moment::StartContainer,
        Moment::Poststart,
        Moment::Poststop,
    ];

    /// The config field's name (also the trace step's).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Moment::Prestart => "prestart",
            Moment::CreateRuntime => "createRuntime",
            Moment::CreateContainer => "createContainer",
            Moment::StartContainer => "startContainer",
            Moment::Poststart => "poststart",
            Moment::Poststop => "poststop",
        }
    }

    /// A failing hook fails the operation (else it is a warning and the rest go on).
    fn fatal(self) -> bool {
        !matches!(self, Moment::Poststart | Moment::Poststop)
    }
}

/// The hooks of `spec` for moment `m`, in config order.
pub(crate) fn of(spec: &Spec, m: Moment) -> &[Hook] {
    let Some(h) = spec.hooks() else {
        return &[];
    };
    let list = match m {
        Moment::Prestart => h.prestart(),
        Moment::CreateRuntime => h.create_runtime(),
        Moment::CreateContainer => h.create_container(),
        Moment::StartContainer => h.start_container(),
        Moment::Poststart => h.poststart(),
        Moment::Poststop => h.poststop(),
    };
    list.as_deref().unwrap_or(&[])
}

/// Runs the hooks of moment `m` in order. A hook without `env` inherits onggi's environment
/// (runc's: Go's exec with a nil Env), or `default_env` when given (startContainer hooks get
/// the container process's, as runc's, which run them from its init). For a fatal moment the
/// first failure ends it; otherwise every hook runs and each failure is a warning.
pub(crate) fn run(
    m: Moment,
    spec: &Spec,
    state: &str,
    default_env: Option<&[String]>,
) -> Result<()> {
    let hooks = of(spec, m);
    if !m.fatal() {
        run_each_warn(m.name(), hooks, state);
        return Ok(());
    }
    if hooks.is_empty() {
        return Ok(());
    }
    let name = m.name();
    trace::step(name, |c| {
        for (i, h) in hooks.iter().enumerate() {
            run_one(h, state, default_env)
                .with_context(|| format!("hooks.{name}[{i}] {}", h.path().display()))?;
            c.note(|| call(h));
        }
        Ok::<_, anyhow::Error>(())
    })
}

fn call(h: &Hook) -> String {
    format!(
        "{} {:?}",
        h.path().display(),
        h.args().as_deref().unwrap_or(&[])
    )
}

/// poststart and poststop: a trace step per hook; each failure is a warning.
fn run_each_warn(name: &'static str, hooks: &[Hook], state: &str) {
    for (i, h) in hooks.iter().enumerate() {
        let r = trace::step(name, |c| {
            c.note(|| call(h));
            run_one(h, state, None)
        });
        if let Err(e) = r {
            crate::logging::warn(&format!("hooks.{name}[{i}] {}: {e:#}", h.path().display()));
        }
    }
}

/// The most of a hook's output kept for its error message (the rest is read and dropped).
const KEEP_OUTPUT: usize = 4096;

fn run_one(h: &Hook, state: &str, default_env: Option<&[String]>) -> Result<()> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(env) = h.env().as_deref().or(default_env) {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    crate::sys::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().context("cannot start the hook")?;
    let limit = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let mut io = HookIo::new(&mut child, state.as_bytes())?;
    let start = Instant::now();
    let status = loop {
        io.pump(Duration::from_millis(5))?;
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "timed out after {} s{}",
                limit.map_or(0, |l| l.as_secs()),
                io.stderr_suffix()
            );
        }
    };
    // What it wrote just before it exited (a grandchild keeping the pipes open is not waited for).
    io.pump(Duration::ZERO)?;
    if !status.success() {
        bail!("{status}{}", io.stderr_suffix());
    }
    Ok(())
}

/// The hook's three pipes, served without blocking: the state goes to its stdin as far as it
/// reads it, and its stdout and stderr are drained as it writes, so a hook that prints more
/// than a pipe holds never blocks (the start of its stderr is kept for the error message).
struct HookIo {
    stdin: Option<std::process::ChildStdin>,
    input: Vec<u8>,
    written: usize,
    outputs: Vec<(std::process::ChildStdout, bool)>,
    errors: Option<std::process::ChildStderr>,
    stderr: Vec<u8>,
}

impl HookIo {
    fn new(child: &mut std::process::Child, input: &[u8]) -> Result<HookIo> {
        use std::os::fd::AsFd;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        for fd in [
            stdin.as_ref().map(|f| f.as_fd()),
            stdout.as_ref().map(|f| f.as_fd()),
            stderr.as_ref().map(|f| f.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            crate::sys::set_nonblocking(fd).context("hook pipes")?;
        }
        Ok(HookIo {
            stdin,
            input: input.to_vec(),
            written: 0,
            outputs: stdout.into_iter().map(|o| (o, true)).collect(),
            errors: stderr,
            stderr: Vec::new(),
        })
    }

    /// Moves what can be moved now, waiting at most `wait` for something to happen.
    fn pump(&mut self, wait: Duration) -> Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        {
            let mut fds = Vec::new();
            if let Some(i) = &self.stdin {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLOUT));
            }
            for (o, open) in &self.outputs {
                if *open {
                    fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
                }
            }
            if let Some(e) = &self.errors {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            }
            if fds.is_empty() {
                std::thread::sleep(wait);
                return Ok(());
            }
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll on the hook's pipes"),
            }
        }
        self.feed();
        let mut buf = [0u8; 16 * 1024];
        for (o, open) in &mut self.outputs {
            while *open {
                match o.read(&mut buf) {
                    Ok(0) => *open = false,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => *open = false,
                }
            }
        }
        while let Some(e) = &mut self.errors {
            match e.read(&mut buf) {
                Ok(0) => self.errors = None,
                Ok(n) => {
                    let room = KEEP_OUTPUT.saturating_sub(self.stderr.len());
                    self.stderr.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => self.errors = None,
            }
        }
        Ok(())
    }

    /// Writes more of the state; closes stdin when all is written or the hook closed it (a
    /// hook that does not read its stdin is fine).
    fn feed(&mut self) {
        let Some(i) = &mut self.stdin else { return };
        while self.written < self.input.len() {
            match i.write(&self.input[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.stdin = None;
    }

    /// ": <the start of its stderr>" as one line, or nothing.
    fn stderr_suffix(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {}", text.lines().collect::<Vec<_>>().join(" / "))
        }
    }
}

/// The state hooks read on stdin (runtime.md "State"), typed: its status is a [`Status`].
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HookState<'a> {
    #[serde(rename = "ociVersion")]
    pub(crate) oci_version: &'static str,
    pub(crate) id: &'a str,
    pub(crate) status: Status,
    pub(crate) pid: i32,
    pub(crate) bundle: &'a std::path::Path,
    pub(crate) annotations: &'a std::collections::HashMap<String, String>,
}

impl<'a> HookState<'a> {
    pub(crate) fn new(
        id: &'a str,
        status: Status,
        pid: i32,
        bundle: &'a std::path::Path,
        annotations: &'a std::collections::HashMap<String, String>,
    ) -> HookState<'a> {
        HookState {
            oci_version: crate::spec::OCI_VERSION,
            id,
            status,
            pid,
            bundle,
            annotations,
        }
    }

    pub(crate) fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_a_field_not_a_word_in_the_text() {
        let ann: std::collections::HashMap<String, String> =
            [("phase".to_string(), "creating".to_string())].into();
        let s = HookState::new("c1", Status::Created, 7, std::path::Path::new("/b"), &ann);
        let v: serde_json::Value = serde_json::from_str(&s.json()).expect("json");
        assert_eq!(v["status"], "created");
        assert_eq!(v["annotations"]["phase"], "creating");
        assert_eq!(v["ociVersion"], crate::spec::OCI_VERSION);
        assert_eq!(v["pid"], 7);
    }
}
