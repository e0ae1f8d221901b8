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
//! Each hook gets the container's state JSON on stdin, exactly its configured `args` and `env`,
//! and at most `timeout` seconds. A failing prestart, createRuntime, createContainer or
//! startContainer hook fails the operation; a failing poststart or poststop hook is a warning.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::trace;

/// Runs `hooks` in order; the first failure ends it.
pub fn run_all(name: &'static str, hooks: &[Hook], state: &str) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    trace::step(name, |c| {
        for (i, h) in hooks.iter().enumerate() {
            run_one(h, state)
                .with_context(|| format!("hooks.{name}[{i}] {}", h.path().display()))?;
            c.note(|| {
                format!(
                    "{} {:?}",
                    h.path().display(),
                    h.args().as_deref().unwrap_or(&[])
                )
            });
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// poststart and poststop: every hook runs; each failure is a warning and the rest go on.
pub fn run_all_warn(name: &'static str, hooks: &[Hook], state: &str) {
    for (i, h) in hooks.iter().enumerate() {
        let r = trace::step(name, |c| {
            c.note(|| {
                format!(
                    "{} {:?}",
                    h.path().display(),
                    h.args().as_deref().unwrap_or(&[])
                )
            });
            run_one(h, state)
        });
        if let Err(e) = r {
            crate::logging::warn(&format!("hooks.{name}[{i}] {}: {e:#}", h.path().display()));
        }
    }
}

fn run_one(h: &Hook, state: &str) -> Result<()> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().context("cannot start the hook")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE ignored).
        let _ = stdin.write_all(state.as_bytes());
    }
    let limit = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {} s", limit.map_or(0, |l| l.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let err = err.trim();
        bail!("{status}{}{err}", if err.is_empty() { "" } else { ": " });
    }
    Ok(())
}

/// The state JSON hooks read on stdin.
pub fn state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &std::collections::HashMap<String, String>,
) -> String {
    serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
    .to_string()
}
