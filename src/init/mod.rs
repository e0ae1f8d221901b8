//! The container init: the clone3 child of `onggi create`. It closes what it inherited, waits
//! for Go, runs the setup steps in order (src/init/setup.rs), each a named function that emits
//! its trace event, reports Ready (or the error) to onggi, waits at the start gate, runs the
//! startContainer hooks and execs the container process (src/process.rs).
//!
//! It never returns: it ends in execve or _exit.

mod setup;

use anyhow::{Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::hooks::{self, HookState, Moment};
use crate::msg::{Channel, FromInit, ToInit};
use crate::plan::Plan;
use crate::process::{Prepared, Seccomp};
use crate::state::Status;
use crate::{namespaces, sys, trace};

/// What the init gets from `create`: the plan, and every descriptor it keeps. The fields are
/// the one list of inherited descriptors: [`InitContext::kept_fds`] is derived from them, and
/// the init closes everything else first.
pub(crate) struct InitContext<'a> {
    pub(crate) id: &'a str,
    pub(crate) plan: &'a Plan,
    pub(crate) channel: &'a Channel<FromInit, ToInit>,
    pub(crate) gate: BorrowedFd<'a>,
    /// The connected --console-socket, when process.terminal is set.
    pub(crate) console: Option<&'a UnixStream>,
    /// The compiled linux.seccomp filter and the connected listenerPath socket (SCMP_ACT_NOTIFY).
    pub(crate) seccomp: Option<&'a crate::seccomp::Filter>,
    pub(crate) seccomp_listener: Option<&'a UnixStream>,
    /// The host's /proc, verified to be procfs by onggi: every /proc write goes through it.
    pub(crate) procfs: BorrowedFd<'a>,
    /// The user namespaces of idmapped mounts (made by onggi).
    pub(crate) idmaps: &'a crate::rootfs::IdmapUserns,
    /// The container's cgroup directory on the host, if it has one (the init was cloned into it).
    pub(crate) cgroup: Option<&'a Path>,
    /// The mount template's namespace (src/rootfs/template.rs): the init was cloned without
    /// CLONE_NEWNS and enters a copy of it.
    pub(crate) mount_template: Option<BorrowedFd<'a>>,
    pub(crate) no_pivot: bool,
    pub(crate) no_new_keyring: bool,
    pub(crate) preserve_fds: u32,
}

impl InitContext<'_> {
    /// The descriptors above stdio and the preserved ones that the init keeps: those of this
    /// context, and the trace sink.
    fn kept_fds(&self) -> Vec<RawFd> {
        let mut keep = vec![
            self.channel.as_fd().as_raw_fd(),
            self.gate.as_raw_fd(),
            self.procfs.as_raw_fd(),
        ];
        keep.extend(trace::sink().map(|f| f.as_raw_fd()));
        keep.extend(self.idmaps.fds());
        keep.extend(self.console.map(|c| c.as_raw_fd()));
        keep.extend(self.seccomp_listener.map(|l| l.as_raw_fd()));
        keep.extend(self.mount_template.map(|t| t.as_raw_fd()));
        keep
    }
}

/// The init's main: never returns.
pub(crate) fn run(ctx: InitContext<'_>) -> ! {
    let (prepared, seccomp, pid) =
        match until_go(&ctx).and_then(|(go, fds)| after_go(&ctx, go, fds)) {
            Ok(p) => p,
            Err(e) => {
                let _ = ctx.channel.send(&FromInit::error(&e));
                sys::exit_now(1)
            }
        };
    let _ = sys::set_parent_death_signal(0);
    if ctx.channel.send(&FromInit::Ready).is_err() {
        sys::exit_now(1);
    }
    wait_at_gate(ctx.gate);
    start_container_hooks(&ctx, pid);
    match prepared {
        Some(p) => crate::process::exec(p, ctx.preserve_fds, seccomp),
        // A container created without `process` cannot be started: `start` refuses.
        None => sys::exit_now(0),
    }
}

/// The first step, then the wait for onggi's Go: returns it and the descriptors beside it.
fn until_go(ctx: &InitContext<'_>) -> Result<(crate::msg::Go, Vec<OwnedFd>)> {
    let rootless = namespaces::rootless();
    trace::step("init_hygiene", |c| {
        crate::process::close_inherited_except(&ctx.kept_fds(), ctx.preserve_fds)?;
        // Until we report Ready, our fate is tied to onggi's: if it dies, so do we.
        sys::set_parent_death_signal(libc::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
        // Nobody in the container may ptrace us or open our /proc files while we hold host
        // fds. Rootless: an unprivileged onggi must still open our setgroups/uid_map/gid_map
        // to write them, so we stay dumpable until it sends Go (nothing else is in our
        // namespaces before that), then become non-dumpable (step `dumpable`).
        if !rootless {
            sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        }
        sys::unblock_all_signals().context("sigprocmask")?;
        c.note(|| {
            let dumpable = if rootless {
                ""
            } else {
                " | prctl(PR_SET_DUMPABLE, 0)"
            };
            format!("close_range(inherited fds) | prctl(PR_SET_PDEATHSIG, SIGKILL){dumpable} | sigprocmask(unblock)")
        });
        Ok::<_, anyhow::Error>(())
    })?;
    let Some((ToInit::Go(go), fds)) = ctx.channel.recv_with_fds()? else {
        sys::exit_now(1)
    };
    if rootless {
        trace::step("dumpable", |c| {
            sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
            c.note(|| "prctl(PR_SET_DUMPABLE, 0) (rootless: after onggi wrote our maps)".into());
            anyhow::Ok(())
        })?;
    }
    Ok((go, fds))
}

/// The whole setup, then the seccomp program. Returns what execve needs, the filter to
/// install right before it, and our pid as the host sees it.
///
/// The filter's program (the BPF that create compiled or took from the cache, behind the
/// ENOSYS stub) is made here, before Ready: nothing slow may sit between `start` and the user
/// process (a signal sent right after `start` would reach a PID 1 that has no handler yet).
/// Installing it is one system call, made last, so the profile need not allow what onggi does
/// after the gate.
fn after_go<'a>(
    ctx: &InitContext<'a>,
    go: crate::msg::Go,
    fds: Vec<OwnedFd>,
) -> Result<(Option<Prepared>, Option<Seccomp<'a>>, i32)> {
    let sources = crate::sources::Received::new(&go.sources, fds);
    let state = hook_state(ctx, go.pid, Status::Creating).json();
    let prepared = setup::setup(ctx, &state, &sources)?;
    drop(sources);
    let seccomp = match (&prepared, ctx.seccomp) {
        (Some(_), Some(filter)) => Some(Seccomp {
            program: trace::step("seccomp_bpf", |_| filter.program())?,
            listener: ctx.seccomp_listener,
            pid: go.pid,
            state: hook_state(ctx, go.pid, Status::Created).json(),
        }),
        _ => None,
    };
    Ok((prepared, seccomp, go.pid))
}

fn hook_state<'a>(ctx: &'a InitContext<'_>, pid: i32, status: Status) -> HookState<'a> {
    let plan = ctx.plan;
    HookState::new(ctx.id, status, pid, &plan.bundle.dir, &plan.annotations)
}

/// After `start`: the startContainer hooks, with the process's environment. A failure goes to
/// the container's stderr (start has returned already), and the container stops without
/// running its process.
fn start_container_hooks(ctx: &InitContext<'_>, pid: i32) {
    // A hook that exits without reading its stdin must not end us with SIGPIPE (the gate's
    // handlers are still in place; execve resets every disposition).
    let _ = sys::ignore_signal(libc::SIGPIPE);
    let env = ctx
        .plan
        .process
        .as_ref()
        .map(|p| crate::process::environment(&p.process))
        .unwrap_or_default();
    let state = hook_state(ctx, pid, Status::Created).json();
    let spec = &ctx.plan.bundle.spec;
    if let Err(e) = hooks::run(Moment::StartContainer, spec, &state, Some(&env)) {
        crate::logging::stderr_line(&format!("onggi: {e:#}"));
        sys::exit_now(1);
    }
}

/// Blocks until `onggi start` writes to the gate. A catchable signal sent meanwhile (e.g.
/// `onggi kill c1 TERM` on a created container) ends the init with 128+signal, as runc's does:
/// as PID 1 of its namespace it would otherwise ignore every signal but SIGKILL.
fn wait_at_gate(gate: BorrowedFd<'_>) {
    extern "C" fn die(sig: libc::c_int) {
        sys::exit_now(128 + sig)
    }
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGPIPE,
    ] {
        let _ = sys::set_signal_handler(sig, die);
    }
    trace::moment("gate", || {
        "waiting in read(exec.fifo) for `onggi start`".into()
    });
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(gate.as_raw_fd(), &mut b) {
            Ok(1) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            _ => sys::exit_now(1),
        }
    }
}
