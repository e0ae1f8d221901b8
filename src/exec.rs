//! `exec`: a new process in a running container, and `ps`.
//!
//! ```text
//!   onggi exec                                joining process (clone3 child)
//!   ──────────                                ──────────────────────────────
//!   read state + saved config, build process
//!   pidfd of the init (checked start time)
//!   setns(pidfd, CLONE_NEWPID)  (children only)
//!   clone3(CLONE_INTO_CGROUP) ─────────────▶ close inherited fds, non-dumpable,
//!                                            setns(pidfd, user|mnt|net|ipc|uts|cgroup),
//!                                            rlimits, user, capabilities, cwd (inside the
//!                                            root), PATH lookup, no_new_privs
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
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use crate::process::{Channel, Msg};
use crate::state::{Status, Store, StoreError};
use crate::sys::{self, Forked};
use crate::{init, namespaces, trace};

/// What `exec` takes from the command line.
#[derive(Debug, Default, clap::Args)]
pub struct ExecArgs {
    /// process.json (config.json's `process` object) instead of the flags below
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// KEY=VALUE added to (or replacing in) the container's environment
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// uid[:gid], numbers only
    #[arg(
        short = 'u',
        long,
        value_name = "UID[:GID]",
        allow_hyphen_values = true
    )]
    pub user: Option<String>,
    /// Supplementary group ids
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_NAME) to the bounding, effective and permitted sets
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub caps: Vec<String>,
    /// AppArmor profile for the process (needs AppArmor on the host; refused with one line otherwise)
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// SELinux label for the process (needs SELinux on the host; refused with one line otherwise)
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Allocate a pseudo-terminal (its master goes to --console-socket, or onggi relays it)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// AF_UNIX socket that receives the pty master (with -t)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's host pid here (no newline)
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Exec even into a paused container (the process starts frozen)
    #[arg(long)]
    pub ignore_paused: bool,
    /// Join this sub-cgroup of the container's cgroup (it must exist; no `..`, no symlinks)
    #[arg(long = "cgroup", value_name = "PATH")]
    pub sub_cgroup: Option<String>,
    /// Pass N extra fds (3 .. 3+N-1)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container id
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Parses `--user`: `uid` or `uid:gid`, decimal digits only (crun CVE-2026-30892: a lenient
/// parser ran processes as root).
pub fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
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
    let mut v = match base {
        Some(p) => serde_json::to_value(p)?,
        None => serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"}),
    };
    v["args"] = serde_json::json!(args.command);
    v["terminal"] = serde_json::json!(args.tty);
    let mut env: Vec<String> = serde_json::from_value(v["env"].take()).unwrap_or_default();
    for e in &args.env {
        let key = e.split('=').next().unwrap_or("");
        if !e.contains('=') || key.is_empty() {
            bail!("--env {e:?}: use KEY=VALUE");
        }
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    v["env"] = serde_json::json!(env);
    if let Some(c) = &args.cwd {
        if !c.is_absolute() {
            bail!("--cwd {c:?} must be absolute");
        }
        v["cwd"] = serde_json::json!(c);
    }
    if let Some(u) = &args.user {
        let (uid, gid) = parse_user(u)?;
        v["user"]["uid"] = serde_json::json!(uid);
        v["user"]["gid"] = serde_json::json!(gid.unwrap_or(0));
    }
    if !args.additional_gids.is_empty() {
        v["user"]["additionalGids"] = serde_json::json!(args.additional_gids);
    }
    if !args.caps.is_empty() {
        for set in ["bounding", "effective", "permitted"] {
            let list = v["capabilities"][set]
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let mut list: Vec<serde_json::Value> = list;
            for c in &args.caps {
                if !list.iter().any(|x| x == c) {
                    list.push(serde_json::json!(c));
                }
            }
            v["capabilities"][set] = serde_json::Value::Array(list);
        }
    }
    if args.no_new_privs {
        v["noNewPrivileges"] = serde_json::json!(true);
    }
    if let Some(a) = &args.apparmor {
        v["apparmorProfile"] = serde_json::json!(a);
    }
    if let Some(l) = &args.process_label {
        v["selinuxLabel"] = serde_json::json!(l);
    }
    serde_json::from_value(v).context("the exec process is not valid (an unknown --cap?)")
}

/// `exec`; returns the exit code onggi should exit with.
pub fn exec(store: &Store, args: &ExecArgs) -> Result<i32> {
    // The container's processes exist already: join it from a read-only mount of onggi.
    crate::self_exe::ensure_read_only()?;
    let id = args.id.as_str();
    let dir = store.get(id)?;
    let state = dir
        .load()?
        .ok_or_else(|| StoreError::NotExist(id.to_string()))?;
    match dir.status(&state) {
        // runc execs into a created container too (its init waits at the gate).
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => bail!("{id}: container is paused (use --ignore-paused to exec anyway)"),
        Status::Creating => bail!("{id}: container not running (it is still being created)"),
        Status::Stopped => bail!("{id}: container not running"),
    }
    let config = dir.load_config()?;
    let process = build_process(args, config.process().as_ref())?;
    let labels = crate::lsm::ExecLabels::new(&process)?;
    // The joining process reads and writes its own /proc files (setgroups, exec labels)
    // through the host's /proc, opened here: the container may have none mounted.
    let procfs = crate::procfs::open_host()?;
    let plan = crate::scheduling::Plan::new(Some(&process), config.linux().as_ref())?;
    let namespaces_list = config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    drop(dir);
    // The container's filter applies to every process that joins it.
    let seccomp_spec = config.linux().as_ref().and_then(|l| l.seccomp().clone());
    let (seccomp, listener) = crate::seccomp::prepare(seccomp_spec.as_ref())?;
    let notify = seccomp.as_ref().is_some_and(|f| f.uses_notify());

    let pidfd =
        crate::process::open_init(&state)?.ok_or_else(|| anyhow!("{id}: container not running"))?;
    let has = |t: LinuxNamespaceType| namespaces_list.iter().any(|n| n.typ() == t);
    let join: u64 = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
    ]
    .into_iter()
    .filter(|t| has(*t))
    .map(namespaces::clone_flag)
    .fold(0, |a, b| a | b);
    // Rootless: joining the pid namespace needs CAP_SYS_ADMIN in its owner, the container's
    // user namespace, so onggi joins that one with it (the kernel enters the user namespace
    // first) and the child does not join it again. Without a pid namespace of its own the
    // child joins the user namespace with the others.
    let parent_joins_user =
        namespaces::rootless() && has(LinuxNamespaceType::User) && has(LinuxNamespaceType::Pid);
    let join = if parent_joins_user {
        join & !(libc::CLONE_NEWUSER as u64)
    } else {
        join
    };
    if has(LinuxNamespaceType::Pid) {
        // Our future children are born in the container's pid namespace.
        let flags = libc::CLONE_NEWPID
            | if parent_joins_user {
                libc::CLONE_NEWUSER
            } else {
                0
            };
        sys::setns(pidfd.as_fd(), flags).context("setns(pid)")?;
    }
    let cgroup = match &state.cgroup {
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
    let cgroup = match (&args.sub_cgroup, cgroup) {
        (None, cg) => cg,
        (Some(sub), None) => bail!("--cgroup {sub}: the container has no cgroup"),
        (Some(sub), Some(cg)) => {
            // runc's `controllers:path` form: on cgroup v2 one path serves every controller.
            let path = sub.rsplit_once(':').map_or(sub.as_str(), |(_, p)| p);
            let path = path.trim_start_matches('/');
            Some(
                sys::openat2(
                    cg.as_fd(),
                    Path::new(if path.is_empty() { "." } else { path }),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                    sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
                )
                .with_context(|| {
                    format!("--cgroup {sub}: not a sub-cgroup of the container's cgroup")
                })?,
            )
        }
    };
    let relay = if args.detach {
        None
    } else {
        Some(crate::signal::Relay::block().context("sigprocmask")?)
    };
    // A terminal's master goes to --console-socket, or (in the foreground) back to us.
    let terminal = process.terminal().unwrap_or(false);
    let pair = match (terminal, &args.console_socket, args.detach) {
        (true, None, false) => Some(std::os::unix::net::UnixStream::pair().context("socketpair")?),
        _ => None,
    };
    let console = crate::console::target(
        terminal,
        args.console_socket.as_deref(),
        pair.as_ref().map(|(ours, _)| ours),
    )?;
    let (parent_end, child_end) = Channel::pair()?;
    let own_mount_ns = has(LinuxNamespaceType::Mount);
    let rootfs = state.rootfs.clone();
    if plan.initial_cpus.is_some() {
        trace::step("cpu_affinity_initial", |c| plan.apply_initial(c))?;
    }
    // A cgroup onggi did not make may have been killed before (cgroup.kill), and then the
    // kernel kills every process cloned into it: such a cgroup is joined by cgroup.procs.
    let via_procs = cgroup.is_some() && !state.cgroup_created;
    let wait_go = notify || via_procs;
    let into = cgroup.as_ref().filter(|_| !via_procs).map(|f| f.as_fd());
    match sys::clone3(0, into).context("clone3")? {
        Forked::Child => {
            crate::trace::set_who(crate::trace::Who::Exec);
            let mut keep = vec![child_end.fd().as_raw_fd(), pidfd.as_raw_fd()];
            keep.extend(crate::trace::sink().map(|f| f.as_raw_fd()));
            keep.extend(console.as_ref().map(|c| c.as_raw_fd()));
            keep.extend(listener.as_ref().map(|c| c.as_raw_fd()));
            keep.push(procfs.as_raw_fd());
            let target = Target {
                pidfd: pidfd.as_fd(),
                join,
                own_mount_ns,
                rootfs: &rootfs,
            };
            let r = join_and_prepare(
                &keep,
                args.preserve_fds,
                &target,
                &process,
                console.as_ref(),
                seccomp.is_some(),
                &init::ProcessSetup {
                    plan: &plan,
                    labels: &labels,
                    procfs: procfs.as_fd(),
                },
            );
            // With SCMP_ACT_NOTIFY, the listener is told our pid as onggi sees it; in a cgroup
            // we could not be cloned into, onggi moves us there first.
            let host_pid = match (&r, wait_go) {
                (Ok(_), true) => match child_end.recv() {
                    Ok(Some(Msg::Go(go))) => go.pid,
                    _ => sys::exit_now(1),
                },
                _ => 0,
            };
            let seccomp = seccomp.as_ref().map(|filter| init::Seccomp {
                filter,
                listener: listener.as_ref(),
                pid: host_pid,
                state: crate::hooks::HookState::new(
                    id,
                    Status::Running,
                    state.pid,
                    &state.bundle,
                    &state.annotations,
                )
                .json(),
            });
            match r {
                Ok(p) => init::exec(p, args.preserve_fds, seccomp),
                Err(e) => {
                    let _ = child_end.send(&Msg::Error(format!("{e:#}")));
                    sys::exit_now(1)
                }
            }
        }
        Forked::Parent { pid, pidfd: child } => {
            drop(child_end);
            drop(console);
            drop(listener);
            if via_procs {
                if let Some(cg) = &cgroup {
                    if let Err(e) = join_cgroup(cg.as_fd(), pid) {
                        let _ = sys::pidfd_send_signal(child.as_fd(), libc::SIGKILL);
                        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                        return Err(e);
                    }
                }
            }
            if wait_go {
                // The child may already have failed: its error comes next on the channel.
                let _ = parent_end.send(&Msg::Go(crate::process::Go {
                    pid,
                    ..Default::default()
                }));
            }
            let child_pid = nix::unistd::Pid::from_raw(pid);
            // The channel is close-on-exec: EOF means the process reached execve.
            if let Some(Msg::Error(msg)) = parent_end.recv()? {
                let _ = nix::sys::wait::waitpid(child_pid, None);
                bail!(msg);
            }
            if let Some(f) = &args.pid_file {
                let f = std::path::absolute(f)?;
                crate::state::write_atomic(&f, pid.to_string().as_bytes(), 0o644)?;
            }
            let master = match &pair {
                Some((_, theirs)) => Some(crate::console::receive(theirs)?),
                None => None,
            };
            match (relay, master) {
                (Some(r), Some(m)) => crate::console::relay(&r, pid, child.as_fd(), m),
                (Some(r), None) => Ok(r
                    .wait(pid, child.as_fd())
                    .context("waiting for the process")?),
                (None, _) => Ok(0),
            }
        }
    }
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

/// The container the process joins.
struct Target<'a> {
    /// The init's pidfd (setns target).
    pidfd: std::os::fd::BorrowedFd<'a>,
    /// CLONE_NEW* flags of the namespaces to join.
    join: u64,
    /// Whether the container has its own mount namespace (else it was chrooted).
    own_mount_ns: bool,
    rootfs: &'a Path,
}

/// In the joining process: everything up to execve.
fn join_and_prepare(
    keep: &[RawFd],
    preserve_fds: u32,
    target: &Target<'_>,
    process: &Process,
    console: Option<&std::os::unix::net::UnixStream>,
    seccomp: bool,
    setup: &init::ProcessSetup<'_>,
) -> Result<init::Prepared> {
    trace::step("exec_hygiene", |c| {
        init::close_inherited_except(keep, preserve_fds)?;
        // Before it enters any namespace: no ptrace, no /proc/<pid>/{exe,fd,mem} for container root.
        sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        sys::unblock_all_signals().context("sigprocmask")?;
        c.note(|| {
            "close_range(inherited fds) | prctl(PR_SET_DUMPABLE, 0) | sigprocmask(unblock)".into()
        });
        Ok::<_, anyhow::Error>(())
    })?;
    trace::step("setns", |c| {
        if target.join != 0 {
            // Raw flags: nix's CloneFlags would silently drop CLONE_NEWTIME.
            sys::setns(target.pidfd, target.join as libc::c_int)
                .context("setns into the container's namespaces")?;
        }
        c.note(|| format!("setns(pidfd, {})", namespaces::flag_names(target.join)));
        Ok::<_, anyhow::Error>(())
    })?;
    if !target.own_mount_ns {
        // A container without its own mount namespace was chrooted into its rootfs.
        nix::unistd::chroot(target.rootfs).context("chroot")?;
        nix::unistd::chdir("/").context("chdir /")?;
    }
    let slave = match console {
        Some(sock) => {
            let size = process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16));
            Some(trace::step("console", |c| {
                crate::console::setup_exec(sock, size, c)
            })?)
        }
        None => None,
    };
    let mut prepared = init::prepare_process(process, seccomp, setup)?;
    prepared.console = slave;
    Ok(prepared)
}

/// `ps`: the host pids of the container's processes.
pub fn ps(store: &Store, id: &str, json: bool) -> Result<()> {
    let dir = store.get(id)?;
    let state = dir
        .load()?
        .ok_or_else(|| StoreError::NotExist(id.to_string()))?;
    if dir.status(&state) == Status::Stopped {
        bail!("{id}: container not running");
    }
    let mut pids = crate::process::members(&state);
    pids.sort_unstable();
    if json {
        crate::logging::print(&serde_json::to_string(&pids)?);
    } else {
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
    }
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
