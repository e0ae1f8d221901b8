//! `exec`: a new process in a running container.
//!
//! ```text
//!   onggi exec                                joining process (clone3 child, join.rs)
//!   ──────────                                ───────────────────────────────────────
//!   the container (locked), its saved config,
//!   the process (a ProcessPlan)
//!   pidfd of the init (checked start time)
//!   setns(pidfd, CLONE_NEWPID)  (children only)
//!   clone3(CLONE_INTO_CGROUP) ─────────────▶ close inherited fds, non-dumpable,
//!                                            setns(pidfd, user|mnt|net|ipc|uts|cgroup),
//!                                            the process half (src/process.rs)
//!   (Placed ───────────────────────────────▶ when it must wait for its cgroup or pid)
//!   recv Error, or EOF (the channel is        execve (the channel closes: CLOEXEC)
//!   close-on-exec: EOF means execve ran)
//!   pid file; wait and relay signals, or --detach
//! ```
//!
//! The process is born in the container's cgroup and pid namespace (no second fork: onggi
//! enters the pid namespace for its children before cloning), and it is non-dumpable before it
//! joins any namespace, so container root cannot ptrace it or open its /proc files while it
//! holds host descriptors (CVE-2016-9962, CVE-2019-5736).

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxCapabilities, LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::join::{self, Joiner};
use super::spawn::{self, Spawned};
use super::{Container, LifecycleError};
use crate::msg::{self, FromJoiner, ToJoiner};
use crate::plan::ProcessPlan;
use crate::state::{Status, Store};
use crate::{namespaces, sys, trace};

// What `exec` takes from the command line.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ExecArgs {
    /// process.json (config.json's `process` object) instead of the flags below
    #[arg(short = 'p', long, value_name = "FILE")]
    pub(crate) process: Option<PathBuf>,
    /// KEY=VALUE added to (or replacing in) the container's environment
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<PathBuf>,
    /// uid[:gid], numbers only
    #[arg(
        short = 'u',
        long,
        value_name = "UID[:GID]",
        allow_hyphen_values = true
    )]
    pub(crate) user: Option<String>,
    /// Supplementary group ids
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub(crate) additional_gids: Vec<u32>,
    /// Add a capability (CAP_NAME) to the bounding, effective and permitted sets
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub(crate) caps: Vec<String>,
    /// AppArmor profile for the process (needs AppArmor on the host; refused with one line otherwise)
    #[arg(long, value_name = "PROFILE")]
    pub(crate) apparmor: Option<String>,
    /// SELinux label for the process (needs SELinux on the host; refused with one line otherwise)
    #[arg(long, value_name = "LABEL")]
    pub(crate) process_label: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub(crate) no_new_privs: bool,
    /// Allocate a pseudo-terminal (its master goes to --console-socket, or onggi relays it)
    #[arg(short = 't', long)]
    pub(crate) tty: bool,
    /// AF_UNIX socket that receives the pty master (with -t)
    #[arg(long, value_name = "PATH")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Return once the process runs
    #[arg(short = 'd', long)]
    pub(crate) detach: bool,
    /// Write the process's host pid here (no newline)
    #[arg(long, value_name = "FILE")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Exec even into a paused container (the process starts frozen)
    #[arg(long)]
    pub(crate) ignore_paused: bool,
    /// Join this sub-cgroup of the container's cgroup (it must exist; no `..`, no symlinks)
    #[arg(long = "cgroup", value_name = "PATH")]
    pub(crate) sub_cgroup: Option<String>,
    /// Pass N extra fds (3 .. 3+N-1)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// The container id
    pub(crate) id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// Parses `--user`: `uid` or `uid:gid`, decimal digits only (crun CVE-2026-30892: a lenient
/// parser ran processes as root).
pub(crate) fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let bad = || anyhow!("--user {s:?}: use a numeric uid or uid:gid");
    let num = |t: &str| -> Result<u32> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    match s.split_once(':') {
        None => Ok((num(s)?, None)),
        Some((u, g)) => Ok((num(u)?, Some(num(g)?))),
    }
}

/// A process as runc runs one that has no `user`: uid 0, gid 0, in `/`.
fn root_process() -> Result<Process> {
    Ok(serde_json::from_value(
        serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"}),
    )?)
}

/// The process to run: --process, or the container's own process with the flags applied.
fn build_process(args: &ExecArgs, base: Option<&Process>) -> Result<Process> {
    if let Some(f) = &args.process {
        let text = std::fs::read(f).with_context(|| format!("--process {}", f.display()))?;
        let mut v: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("--process {}: not JSON", f.display()))?;
        // runc runs a process without `user` as uid 0, gid 0.
        if v.is_object() && v.get("user").is_none() {
            v["user"] = serde_json::json!({"uid": 0, "gid": 0});
        }
        return serde_json::from_value(v)
            .with_context(|| format!("--process {}: not a process object", f.display()));
    }
    if args.command.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    let mut p = match base {
        Some(p) => p.clone(),
        None => root_process()?,
    };
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &args.env {
        let key = e.split('=').next().unwrap_or("");
        if !e.contains('=') || key.is_empty() {
            bail!("--env {e:?}: use KEY=VALUE");
        }
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(c) = &args.cwd {
        if !c.is_absolute() {
            bail!("--cwd {c:?} must be absolute");
        }
        p.set_cwd(c.clone());
    }
    apply_user_flags(args, &mut p)?;
    if !args.caps.is_empty() {
        p.set_capabilities(Some(with_caps(p.capabilities().clone(), &args.caps)?));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &args.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &args.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

/// --user and --additional-gids.
fn apply_user_flags(args: &ExecArgs, p: &mut Process) -> Result<()> {
    let mut user = p.user().clone();
    if let Some(u) = &args.user {
        let (uid, gid) = parse_user(u)?;
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(0));
    }
    if !args.additional_gids.is_empty() {
        user.set_additional_gids(Some(args.additional_gids.clone()));
    }
    p.set_user(user);
    Ok(())
}

/// `caps` (--cap) added to the bounding, effective and permitted sets.
fn with_caps(have: Option<LinuxCapabilities>, caps: &[String]) -> Result<LinuxCapabilities> {
    let mut sets = match have {
        Some(s) => s,
        None => serde_json::from_value(serde_json::json!({}))?,
    };
    let mut add = Vec::new();
    for c in caps {
        let cap: Capability = serde_json::from_value(serde_json::json!(c)).map_err(|_| {
            anyhow!("--cap {c:?}: not a capability (use a name like CAP_NET_ADMIN)")
        })?;
        add.push(cap);
    }
    let grow = |set: &Option<oci_spec::runtime::Capabilities>| {
        let mut s = set.clone().unwrap_or_default();
        s.extend(add.iter().copied());
        Some(s)
    };
    let (b, e, p) = (
        grow(sets.bounding()),
        grow(sets.effective()),
        grow(sets.permitted()),
    );
    sets.set_bounding(b);
    sets.set_effective(e);
    sets.set_permitted(p);
    Ok(sets)
}

/// `exec`; returns the exit code onggi should exit with.
pub(crate) fn exec(store: &Store, args: &ExecArgs) -> Result<i32> {
    // The container's processes exist already: join it from a read-only mount of onggi.
    crate::self_exe::ensure_read_only()?;
    let target = open_target(store, args)?;
    let process = ProcessPlan::new(
        build_process(args, target.config.process().as_ref())?,
        target.config.linux().as_ref(),
    )?;
    // The joining process reads and writes its own /proc files (setgroups, exec labels)
    // through the host's /proc, opened here: the container may have none mounted.
    let procfs = crate::procfs::open_host()?;
    // The container's filter applies to every process that joins it.
    let seccomp_spec = target
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone());
    let cache = store.seccomp_cache();
    let (seccomp, listener) = crate::seccomp::prepare(seccomp_spec.as_ref(), Some(&cache))?;
    let pidfd = super::open_init(&target.state)?
        .ok_or_else(|| LifecycleError::NotRunning(args.id.clone()))?;
    let join = enter_pid_namespace(&target.config, pidfd.as_fd())?;
    let cgroup = open_cgroup(&target.state, args.sub_cgroup.as_deref())?;
    let terminal = Terminal::new(args, process.process.terminal().unwrap_or(false))?;
    let (ours, theirs) = msg::pair::<ToJoiner, FromJoiner>()?;
    if process.scheduling.initial_cpus.is_some() {
        trace::step("cpu_affinity_initial", |c| {
            process.scheduling.apply_initial(c)
        })?;
    }
    // A cgroup onggi did not make may have been killed before (cgroup.kill), and then the
    // kernel kills every process cloned into it: such a cgroup is joined by cgroup.procs.
    let via_procs = cgroup.is_some() && !target.state.cgroup_created;
    let notify = seccomp.as_ref().is_some_and(|f| f.uses_notify());
    let joiner = Joiner {
        channel: &theirs,
        pidfd: pidfd.as_fd(),
        join,
        own_mount_ns: target.has(LinuxNamespaceType::Mount),
        rootfs: &target.state.rootfs,
        process: &process,
        console: terminal.target.as_ref(),
        seccomp: seccomp.as_ref(),
        listener: listener.as_ref(),
        procfs: procfs.as_fd(),
        preserve_fds: args.preserve_fds,
        wait_placed: notify || via_procs,
        hook_state: target.hook_state(),
    };
    let into = cgroup.as_ref().filter(|_| !via_procs).map(|f| f.as_fd());
    let child = spawn::spawn(0, into, move || -> i32 {
        trace::set_who(trace::Who::Exec);
        join::run(joiner)
    })?;
    drop((theirs, listener));
    let Terminal {
        relay,
        pair,
        target: console,
    } = terminal;
    drop(console);
    if via_procs {
        place(&child, cgroup.as_ref())?;
    }
    if notify || via_procs {
        // The child may already have failed: its error comes next on the channel.
        let _ = ours.send(&ToJoiner::Placed { pid: child.pid });
    }
    wait_exec(&ours, &child, args)?;
    let master = match &pair {
        Some((_, theirs)) => Some(crate::console::receive(theirs)?),
        None => None,
    };
    match (relay, master) {
        (Some(r), Some(m)) => crate::console::relay(&r, child.pid, child.pidfd.as_fd(), m),
        (Some(r), None) => Ok(r
            .wait(child.pid, child.pidfd.as_fd())
            .context("waiting for the process")?),
        (None, _) => Ok(0),
    }
}

/// The container to join: running or created (runc execs into a created container too: its
/// init waits at the gate), or paused with --ignore-paused; and its saved config.
/// Its lock is not held: a foreground exec lasts as long as its process, and must not block
/// `kill` or `delete` meanwhile.
struct Target {
    state: crate::state::State,
    config: Spec,
}

impl Target {
    fn has(&self, t: LinuxNamespaceType) -> bool {
        namespaces_of(&self.config).iter().any(|n| n.typ() == t)
    }

    fn hook_state(&self) -> String {
        let s = &self.state;
        crate::hooks::HookState::new(&s.id, Status::Running, s.pid, &s.bundle, &s.annotations)
            .json()
    }
}

fn namespaces_of(config: &Spec) -> &[oci_spec::runtime::LinuxNamespace] {
    config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or(&[])
}

fn open_target(store: &Store, args: &ExecArgs) -> Result<Target> {
    let container = Container::open(store, &args.id)?;
    let id = args.id.clone();
    match container.status() {
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => return Err(LifecycleError::Paused(id).into()),
        Status::Creating => return Err(LifecycleError::StillCreating(id).into()),
        Status::Stopped => return Err(LifecycleError::NotRunning(id).into()),
    }
    let config = container.dir.load_config()?;
    let Container { dir, state } = container;
    drop(dir);
    Ok(Target { state, config })
}

/// The CLONE_NEW* flags the joining process setns()es into; onggi itself enters the pid
/// namespace first (its future children are born in it).
///
/// Rootless: joining the pid namespace needs CAP_SYS_ADMIN in its owner, the container's user
/// namespace, so onggi joins that one with it (the kernel enters the user namespace first) and
/// the child does not join it again. Without a pid namespace of its own the child joins the
/// user namespace with the others.
fn enter_pid_namespace(config: &Spec, pidfd: std::os::fd::BorrowedFd<'_>) -> Result<u64> {
    let list = namespaces_of(config);
    let has = |t: LinuxNamespaceType| list.iter().any(|n| n.typ() == t);
    use LinuxNamespaceType::*;
    let mut join = [User, Mount, Network, Ipc, Uts, Cgroup, Time]
        .into_iter()
        .filter(|t| has(*t))
        .map(namespaces::clone_flag)
        .fold(0, |a, b| a | b);
    let parent_joins_user = namespaces::rootless() && has(User) && has(Pid);
    if parent_joins_user {
        join &= !(libc::CLONE_NEWUSER as u64);
    }
    if has(Pid) {
        let user = if parent_joins_user {
            libc::CLONE_NEWUSER
        } else {
            0
        };
        sys::setns(pidfd, libc::CLONE_NEWPID | user).context("setns(pid)")?;
    }
    Ok(join)
}

/// The container's cgroup (or `--cgroup`'s sub-cgroup of it), opened for CLONE_INTO_CGROUP.
fn open_cgroup(s: &crate::state::State, sub: Option<&str>) -> Result<Option<OwnedFd>> {
    let cgroup = match &s.cgroup {
        Some(cg) => Some(
            sys::openat2(
                sys::at_fdcwd(),
                cg,
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
                sys::RESOLVE_NO_SYMLINKS,
            )
            .with_context(|| format!("cannot open the container's cgroup {}", cg.display()))?,
        ),
        None => None,
    };
    let (sub, cg) = match (sub, cgroup) {
        (None, cg) => return Ok(cg),
        (Some(sub), None) => bail!("--cgroup {sub}: the container has no cgroup"),
        (Some(sub), Some(cg)) => (sub, cg),
    };
    // runc's `controllers:path` form: on cgroup v2 one path serves every controller.
    let path = sub.rsplit_once(':').map_or(sub, |(_, p)| p);
    let path = path.trim_start_matches('/');
    let fd = sys::openat2(
        cg.as_fd(),
        Path::new(if path.is_empty() { "." } else { path }),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )
    .with_context(|| format!("--cgroup {sub}: not a sub-cgroup of the container's cgroup"))?;
    Ok(Some(fd))
}

/// Signals relayed in the foreground, and where a terminal's master goes: --console-socket,
/// or (in the foreground) back to onggi over a socket pair.
struct Terminal {
    relay: Option<crate::signal::Relay>,
    pair: Option<(UnixStream, UnixStream)>,
    target: Option<UnixStream>,
}

impl Terminal {
    fn new(args: &ExecArgs, terminal: bool) -> Result<Terminal> {
        let relay = if args.detach {
            None
        } else {
            Some(crate::signal::Relay::block().context("sigprocmask")?)
        };
        let pair = match (terminal, &args.console_socket, args.detach) {
            (true, None, false) => Some(UnixStream::pair().context("socketpair")?),
            _ => None,
        };
        let target = crate::console::target(
            terminal,
            args.console_socket.as_deref(),
            pair.as_ref().map(|(ours, _)| ours),
        )?;
        Ok(Terminal {
            relay,
            pair,
            target,
        })
    }
}

/// Moves the joining process into the cgroup by cgroup.procs (killed if that fails).
fn place(child: &Spawned, cgroup: Option<&OwnedFd>) -> Result<()> {
    let Some(cg) = cgroup else { return Ok(()) };
    if let Err(e) = join_cgroup(cg.as_fd(), child.pid) {
        let _ = sys::pidfd_send_signal(child.pidfd.as_fd(), libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None);
        return Err(e);
    }
    Ok(())
}

/// Waits until the joining process reached execve (EOF: the channel is close-on-exec) or
/// failed (its error), then writes the pid file.
fn wait_exec(
    channel: &msg::Channel<ToJoiner, FromJoiner>,
    child: &Spawned,
    args: &ExecArgs,
) -> Result<()> {
    if let Some(FromJoiner::Error(msg)) = channel.recv()? {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None);
        bail!(msg);
    }
    if let Some(f) = &args.pid_file {
        let f = std::path::absolute(f)?;
        crate::state::write_atomic(&f, child.pid.to_string().as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Moves the joining process `pid` into the cgroup `dir` (cgroup.procs beneath it).
fn join_cgroup(dir: std::os::fd::BorrowedFd<'_>, pid: i32) -> Result<()> {
    let procs = sys::openat2(
        dir,
        Path::new("cgroup.procs"),
        libc::O_WRONLY,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )
    .context("cannot open the container's cgroup.procs")?;
    nix::unistd::write(&procs, pid.to_string().as_bytes())
        .context("cannot move the process into the container's cgroup")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parsing_is_strict() {
        assert_eq!(parse_user("1000").expect("valid"), (1000, None));
        assert_eq!(parse_user("1000:1001").expect("valid"), (1000, Some(1001)));
        assert_eq!(parse_user("0").expect("valid"), (0, None));
        for bad in [
            "0x1",
            "1:",
            ":1",
            "root",
            "",
            "-1",
            "1:2:3",
            " 1",
            "1 ",
            "+1",
            "4294967296",
        ] {
            assert!(parse_user(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn flags_override_the_container_process() {
        let base: Process = serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"],
            "env": ["PATH=/bin", "A=1"],
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        }))
        .expect("valid test input");
        let a = ExecArgs {
            command: vec!["id".into()],
            env: vec!["A=2".into(), "B=3".into()],
            user: Some("7:8".into()),
            caps: vec!["CAP_CHOWN".into()],
            cwd: Some("/tmp".into()),
            ..Default::default()
        };
        let p = build_process(&a, Some(&base)).expect("valid test input");
        assert_eq!(p.args().as_deref(), Some(&["id".to_string()][..]));
        assert_eq!(
            p.env().as_deref(),
            Some(&["PATH=/bin".to_string(), "A=2".into(), "B=3".into()][..])
        );
        assert_eq!((p.user().uid(), p.user().gid()), (7, 8));
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(
            p.capabilities()
                .as_ref()
                .expect("caps")
                .effective()
                .as_ref()
                .expect("eff")
                .len(),
            2
        );
        assert!(build_process(
            &ExecArgs {
                command: vec!["x".into()],
                caps: vec!["CAP_FLY".into()],
                ..Default::default()
            },
            Some(&base)
        )
        .is_err());
        assert!(
            build_process(&ExecArgs::default(), Some(&base)).is_err(),
            "no command"
        );
    }
}
