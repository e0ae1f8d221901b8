//! `create`: onggi clones the container init directly (clone3 with the namespace flags, so the
//! init is PID 1 of its pid namespace from its first instruction), talks to it over a typed
//! channel (src/msg.rs), and exits once the init waits at the start gate. No re-exec of
//! /proc/self/exe, no helper process left behind: the init is orphaned to the caller's
//! subreaper (conmon, the containerd shim), which reaps it.
//!
//! ```text
//!   onggi create                              init (clone3 child, src/init/)
//!   ────────────                              ──────────────────────────────
//!   load_config: the Plan
//!   prepare: console, seccomp_compile, cgroup plan
//!   state_dir: mkdir, state.json (creating), exec.fifo
//!   cgroup: mkdir, limits, device filter
//!   clone3(CLONE_NEW*) ─────────────────────▶ init_hygiene: close inherited fds, PDEATHSIG
//!   state.json (+ init pid, start time)
//!   parent side: id maps, net devices, oom score, mount sources, prestart/createRuntime hooks
//!   send Go ────────────────────────────────▶ namespaces, rootfs, mounts, pivot_root,
//!                                             hostname, sysctl, rlimits, user, caps …
//!   wait_ready ◀──────────────────────────── Ready (or Error + exit)
//!   state.json (created), pid_file             wait at the gate (exec.fifo) …
//!   onggi start: write 1 byte to the gate ──▶ … execve(process.args)
//! ```
//!
//! Every phase below is a function of that name; each kernel object it makes is handed to
//! [`Undo`] at once, so a failure at any point removes exactly what exists.

use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::undo::Undo;
use crate::cgroup::setup::Placed;
use crate::hooks::{self, HookState, Moment};
use crate::init::InitContext;
use crate::lifecycle::spawn::{self, Spawned};
use crate::msg::{self, FromInit, Go, ToInit};
use crate::plan::Plan;
use crate::seccomp::Filter;
use crate::state::{proc_stat, State, Status, Store};
use crate::{namespaces, sys, trace};
use oci_spec::runtime::LinuxNamespaceType;

/// What `create` and `run` take from the command line.
pub(crate) struct CreateOptions<'a> {
    pub(crate) id: &'a str,
    pub(crate) bundle: &'a Path,
    pub(crate) pid_file: Option<&'a Path>,
    pub(crate) console_socket: Option<&'a Path>,
    /// `run` in the foreground: where the pty master goes when process.terminal is set and no
    /// --console-socket was given (onggi's end of a socket pair; onggi relays the terminal).
    pub(crate) terminal_relay: Option<&'a UnixStream>,
    pub(crate) no_pivot: bool,
    pub(crate) no_new_keyring: bool,
    pub(crate) preserve_fds: u32,
    /// `--systemd-cgroup`: the cgroup is a transient systemd scope.
    pub(crate) systemd_cgroup: bool,
}

/// A created container: the init's pid and a pidfd for it (used by `run` to wait).
pub(crate) struct Created {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    /// The pty master went to `terminal_relay`.
    pub(crate) relayed_terminal: bool,
    /// config.json as parsed (and as saved in the state directory).
    pub(crate) config: oci_spec::runtime::Spec,
}

/// `create`: everything up to the init waiting at the start gate, as the steps `--trace`
/// shows: load_config, (seccomp_compile), state_dir, (cgroup*), clone3, the parent side,
/// (hooks), wait_ready, (pid_file).
pub(crate) fn create(store: &Store, o: &CreateOptions<'_>) -> Result<Created> {
    crate::state::validate_id(o.id)?;
    let plan = trace::step("load_config", |c| load_config(o.bundle, c))?;
    let host = prepare(&plan, o, store)?;
    let mut undo = Undo::default();
    let mut state = first_record(o.id, &plan, host.cgroup.as_ref());
    let gate = trace::step("state_dir", |c| stage(store, &mut undo, &plan, &state, c))?;
    let cgroup = match &host.cgroup {
        Some(p) => Some(undo.cgroup(crate::cgroup::setup::make(
            p,
            &plan.bundle,
            Some(&store.device_pins()),
        )?)),
        None => None,
    };
    let cgroup = cgroup.as_ref();
    let (parent_end, init_end) = msg::pair::<ToInit, FromInit>()?;
    let init = InitContext {
        id: o.id,
        plan: &plan,
        channel: &init_end,
        gate: gate.as_fd(),
        console: host.console.as_ref(),
        seccomp: host.seccomp.as_ref(),
        seccomp_listener: host.listener.as_ref(),
        procfs: host.procfs.as_fd(),
        idmaps: &host.idmaps,
        cgroup: cgroup.map(|c| c.dir.as_path()),
        mount_template: host.mount_template.as_ref().map(|t| t.as_fd()),
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        preserve_fds: o.preserve_fds,
    };
    let child = clone_init(&plan, &host, cgroup, init)?;
    let pid = child.pid;
    undo.child(&child)?;
    if let Some(c) = cgroup {
        c.entered()?;
    }
    drop((init_end, gate));
    record_pid(&undo, &mut state, pid)?;
    parent_side(&plan, &host, cgroup, o.id, pid)?;
    handshake(&parent_end, &plan, &host, pid)?;
    commit(&undo, &mut state, o)?;
    undo.disarm();
    Ok(Created {
        pid,
        pidfd: child.pidfd,
        relayed_terminal: plan.terminal() && o.console_socket.is_none(),
        config: plan.bundle.spec,
    })
}

/// Reads and parses the bundle: the one [`Plan`] every later step borrows.
fn load_config(bundle: &Path, c: &mut trace::Calls) -> Result<Plan> {
    let plan = Plan::load(bundle)?;
    let b = &plan.bundle;
    c.note(|| {
        format!(
            "read {}/config.json; rootfs {}",
            b.dir.display(),
            b.rootfs.display()
        )
    });
    Ok(plan)
}

/// What create opens and compiles on the host before anything of the container exists, so
/// that a failure here leaves nothing behind.
struct Host {
    /// The connected --console-socket (or `run`'s relay), when process.terminal is set.
    console: Option<UnixStream>,
    /// The compiled linux.seccomp filter and its connected listenerPath socket.
    seccomp: Option<Filter>,
    listener: Option<UnixStream>,
    /// Where the cgroup goes and what is written there.
    cgroup: Option<crate::cgroup::setup::Plan>,
    /// The host's /proc, verified: every /proc write goes through it.
    procfs: OwnedFd,
    /// The user namespaces of idmapped mounts.
    idmaps: crate::rootfs::IdmapUserns,
    /// The mount template's namespace, when the container uses it.
    mount_template: Option<OwnedFd>,
}

fn prepare(plan: &Plan, o: &CreateOptions<'_>, store: &Store) -> Result<Host> {
    if !plan.new_namespace(LinuxNamespaceType::Pid) {
        // Other processes may share the init's pid namespace: see src/self_exe.rs. Nothing
        // exists yet, so the re-executed onggi simply starts over.
        crate::self_exe::ensure_read_only()?;
    }
    // Connected here, where the host path resolves; the init inherits the socket.
    let console = crate::console::target(plan.terminal(), o.console_socket, o.terminal_relay)?;
    if !plan.has_namespace(LinuxNamespaceType::Mount) {
        let n = plan.mounts.len();
        crate::logging::warn(&format!(
            "linux.namespaces has no \"mount\": the container shares onggi's mount namespace, so onggi only chroots into the rootfs and skips the {n} mounts, masked and read-only paths of config.json"
        ));
    }
    // Compiled before anything exists, so a bad profile leaves nothing behind.
    let (seccomp, listener) = crate::seccomp::prepare(
        plan.linux().and_then(|l| l.seccomp().as_ref()),
        Some(&store.seccomp_cache()),
    )?;
    let cgroup = crate::cgroup::setup::plan(&plan.bundle, o.id, o.systemd_cgroup)?;
    let procfs = crate::procfs::open_host()?;
    let mounts = plan.bundle.spec.mounts().as_deref().unwrap_or(&[]);
    let idmaps = crate::rootfs::IdmapUserns::for_mounts(mounts, procfs.as_fd())?;
    let mount_template = mount_template(plan, o, store, procfs.as_fd());
    Ok(Host {
        console,
        seccomp,
        listener,
        cgroup,
        procfs,
        idmaps,
        mount_template,
    })
}

/// The mount template for a container that can use it (src/rootfs/template.rs, step
/// `mount_template`); None, and a copy of the host's mounts as before, when it cannot be made.
fn mount_template(
    plan: &Plan,
    o: &CreateOptions<'_>,
    store: &Store,
    procfs: BorrowedFd<'_>,
) -> Option<OwnedFd> {
    use crate::rootfs::template;
    if !template::wanted(plan, o.no_pivot) {
        return None;
    }
    let made = trace::step("mount_template", |c| {
        let r = template::open_or_make(&store.mount_template(), procfs, c);
        if let Err(e) = &r {
            c.note(|| {
                format!("cannot use it ({e:#}): the container's namespace copies the host's mounts")
            });
        }
        Ok::<_, anyhow::Error>(r.ok())
    });
    made.ok().flatten()
}

/// The state directory with its first record (before any kernel object exists: `creating`,
/// no init yet, this onggi as the creator, the cgroup it is about to make), the config
/// snapshot and the start gate. Returns the gate: a FIFO the init holds open and blocks reading.
fn stage(
    store: &Store,
    undo: &mut Undo,
    plan: &Plan,
    first: &State,
    c: &mut trace::Calls,
) -> Result<OwnedFd> {
    let dir = undo.dir(store.create(&first.id, first)?);
    dir.save_config_bytes(&plan.bundle.raw)?;
    let fifo = dir.gate_path();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .context("mkfifo exec.fifo")?;
    let gate = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&fifo)
        .context("cannot open exec.fifo")?;
    c.note(|| {
        let d = fifo.parent().unwrap_or(&fifo).display().to_string();
        format!(
            "mkdir {d} | write {d}/state.json (creating) | write {d}/config.json | mkfifo {}",
            fifo.display()
        )
    });
    Ok(gate.into())
}

pub(super) fn first_record(
    id: &str,
    plan: &Plan,
    cgroup: Option<&crate::cgroup::setup::Plan>,
) -> State {
    let b = &plan.bundle;
    State {
        id: id.to_string(),
        pid: 0,
        pid_start_time: 0,
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        created: crate::logging::rfc3339(std::time::SystemTime::now()),
        annotations: plan.annotations.clone(),
        owner_uid: nix::unistd::geteuid().as_raw(),
        recorded: Status::Creating,
        has_process: plan.process.is_some(),
        own_pid_namespace: plan.new_namespace(LinuxNamespaceType::Pid),
        cgroup: cgroup.map(|p| p.dir()),
        cgroup_created: cgroup.is_some_and(|p| p.create),
        systemd_unit: cgroup
            .and_then(|p| p.scope.as_ref())
            .map(|(u, _)| u.name.clone()),
        creator: crate::state::ProcessId::me(),
    }
}

/// clone3 with the config's namespace flags, straight into the container's cgroup when onggi
/// made it; the child runs the init (src/init/) and never returns here.
fn clone_init(
    plan: &Plan,
    host: &Host,
    cgroup: Option<&Placed>,
    init: InitContext<'_>,
) -> Result<Spawned> {
    let namespaces = plan.bundle.namespaces();
    namespaces::join_pid_namespace(namespaces)?;
    let mut flags = namespaces::new_namespace_flags(namespaces);
    if host.mount_template.is_some() {
        // The init makes its mount namespace itself, as a copy of the template.
        flags &= !(libc::CLONE_NEWNS as u64);
    }
    let into = cgroup.and_then(|p| p.clone_target());
    if let Some(p) = plan
        .process
        .as_ref()
        .filter(|p| p.scheduling.initial_cpus.is_some())
    {
        trace::step("cpu_affinity_initial", |c| p.scheduling.apply_initial(c))?;
    }
    // Not a trace::step: both processes return from clone3, only the parent reports it.
    let t0 = std::time::Instant::now();
    let run = move || -> i32 {
        trace::set_who(trace::Who::Init);
        crate::init::run(init)
    };
    let join_user = namespaces::joined_user_namespace(namespaces);
    let child = match join_user {
        None => spawn::spawn(flags, into, run)?,
        Some(path) => spawn::spawn_in_user_namespace(flags, into, path, host.procfs.as_fd(), run)?,
    };
    trace::finished("clone3", t0.elapsed(), || {
        clone_call(flags, into.is_some(), join_user, child.pid)
    });
    Ok(child)
}

/// How the init was cloned, for the trace.
fn clone_call(flags: u64, into_cgroup: bool, join_user: Option<&Path>, pid: i32) -> String {
    let into = if into_cgroup {
        sys::CLONE_INTO_CGROUP
    } else {
        0
    };
    let pidfd = libc::CLONE_PIDFD as u64;
    match join_user {
        None => format!(
            "clone3({}) = pid {pid}",
            namespaces::flag_names(flags | pidfd | into)
        ),
        Some(p) => format!(
            "helper = clone3(CLONE_PIDFD); in it: prctl(PR_SET_DUMPABLE, 0), setns({}, user), \
             clone3({}) = pid {pid}, sendmsg(SCM_RIGHTS pidfd), exit",
            p.display(),
            namespaces::flag_names(flags | pidfd | libc::CLONE_PARENT as u64 | into)
        ),
    }
}

/// The init's pid and start time in state.json, the moment it exists.
pub(super) fn record_pid(undo: &Undo, state: &mut State, pid: i32) -> Result<()> {
    state.pid_start_time = proc_stat(pid)
        .map(|p| p.start_time)
        .ok_or_else(|| anyhow!("the init (pid {pid}) vanished"))?;
    state.pid = pid;
    undo.state_dir()?.save(state)
}

/// What onggi does for the init while it waits for Go: it joins a cgroup onggi did not make,
/// the parent-side steps (src/lifecycle/parent_side.rs), and the prestart and createRuntime
/// hooks.
fn parent_side(
    plan: &Plan,
    host: &Host,
    cgroup: Option<&Placed>,
    id: &str,
    pid: i32,
) -> Result<()> {
    if let Some(p) = cgroup.filter(|p| p.clone_target().is_none()) {
        crate::cgroup::setup::join(p, pid)?;
    }
    crate::lifecycle::parent_side::run(plan, host.procfs.as_fd(), pid)?;
    let b = &plan.bundle;
    let state = HookState::new(id, Status::Creating, pid, &b.dir, &plan.annotations).json();
    for m in [Moment::Prestart, Moment::CreateRuntime] {
        hooks::run(m, &b.spec, &state, None)?;
    }
    Ok(())
}

/// Sends Go with the mount sources onggi opened through the init's mount namespace, and waits
/// for the init to report Ready (or its error).
fn handshake(
    channel: &msg::Channel<ToInit, FromInit>,
    plan: &Plan,
    host: &Host,
    pid: i32,
) -> Result<()> {
    let sources = crate::sources::open(&plan.bundle, host.procfs.as_fd(), pid)?;
    let go = ToInit::Go(Go {
        pid,
        sources: sources.kinds(),
    });
    if let Err(e) = channel.send_with_fds(&go, &sources.fds()) {
        return Err(spawn::ended(pid).unwrap_or(e));
    }
    drop(sources);
    trace::step("wait_ready", |_| match channel.recv()? {
        Some(FromInit::Ready) => Ok(()),
        Some(FromInit::Error(msg)) => Err(anyhow!(msg)),
        None => Err(spawn::ended(pid)
            .unwrap_or_else(|| anyhow!("the container init closed its channel during setup"))),
    })
}

/// `created` in state.json, and the pid file.
fn commit(undo: &Undo, state: &mut State, o: &CreateOptions<'_>) -> Result<()> {
    let pid = state.pid;
    state.recorded = Status::Created;
    undo.state_dir()?.save(state)?;
    if let Some(p) = o.pid_file {
        trace::step("pid_file", |c| {
            c.note(|| format!("write {} = {pid}", p.display()));
            write_pid_file(p, pid)
        })?;
    }
    Ok(())
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path =
        std::path::absolute(path).with_context(|| format!("--pid-file {}", path.display()))?;
    crate::state::write_atomic(&path, pid.to_string().as_bytes(), 0o644)
}

/// `--preserve-fds N` passes exactly 3 … 3+N-1, so each must be open when onggi starts: a free
/// number there would be taken by one of onggi's own descriptors (the state lock, the host
/// /proc handle) and reach the container. Refused, as runc does.
pub(crate) fn check_preserved_fds(n: u32) -> Result<()> {
    for fd in 3..3 + n as RawFd {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            bail!(
                "--preserve-fds {n}: descriptor {fd} is not open (onggi passes exactly 3 to {})",
                2 + n
            );
        }
    }
    Ok(())
}
