//! The container init: the clone3 child of `onggi create`. It runs the setup steps in order,
//! each a named function that emits its trace event, reports Ready (or the error) to onggi,
//! waits at the start gate, and execs the container process.
//!
//! It never returns: it ends in execve or _exit.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{PosixRlimitType, Process};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::capabilities::{self, CapSets};
use crate::process::{Channel, Msg};
use crate::rootfs::{self, TargetKind};
use crate::spec::{Bundle, DEFAULT_PATH};
use crate::state::Status;
use crate::{namespaces, sys, trace};

pub struct InitContext<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub channel: &'a Channel,
    pub gate: BorrowedFd<'a>,
    /// The connected --console-socket, when process.terminal is set.
    pub console: Option<&'a std::os::unix::net::UnixStream>,
    /// The compiled linux.seccomp filter and the connected listenerPath socket (SCMP_ACT_NOTIFY).
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    pub seccomp_listener: Option<&'a std::os::unix::net::UnixStream>,
    /// The host's /proc, verified to be procfs by onggi: every /proc write goes through it.
    pub procfs: BorrowedFd<'a>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// The user namespaces of idmapped mounts (made by onggi).
    pub idmaps: &'a crate::rootfs::IdmapUserns,
    /// The container's cgroup directory on the host, if it has one (the init was cloned into it).
    pub cgroup: Option<&'a std::path::Path>,
    /// Descriptors the init keeps; every other inherited one (≥ 3 + preserve_fds) is closed.
    pub keep: Vec<RawFd>,
}

/// Everything execve needs, prepared before the init reports Ready.
pub struct Prepared {
    /// The pty slave when process.terminal is set (attached as stdio at the gate).
    pub console: Option<crate::console::Slave>,
    /// The configured capability sets, when CAP_SYS_ADMIN is still held for the seccomp load
    /// and must be dropped right after it.
    final_caps: Option<CapSets>,
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    umask: u32,
}

/// The init's main: never returns.
pub fn run(ctx: InitContext<'_>) -> ! {
    let rootless = namespaces::rootless();
    let annotations = ctx.bundle.spec.annotations().clone().unwrap_or_default();
    let prepared = hygiene_go_setup(&ctx, rootless, &annotations);
    let (prepared, pid) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let _ = ctx.channel.send(&Msg::Error(format!("{e:#}")));
            sys::exit_now(1)
        }
    };
    let state =
        crate::hooks::HookState::new(ctx.id, Status::Creating, pid, &ctx.bundle.dir, &annotations);
    // The init loads its filter before it reports Ready, as runc does: loading a large
    // profile (libseccomp generates the BPF then) takes milliseconds, which must not sit
    // between `start` and the user process — a signal sent right after `start` would reach a
    // PID 1 that has no handler yet. A NOTIFY listener therefore gets its fd during create.
    let mut prepared = prepared;
    if let (Some(p), Some(filter)) = (prepared.as_mut(), ctx.seccomp) {
        let s = Seccomp {
            filter,
            listener: ctx.seccomp_listener,
            pid,
            state: state.json(),
        };
        if let Err(e) = load_seccomp(&s, p.final_caps.take().as_ref()) {
            let _ = ctx.channel.send(&Msg::Error(format!("{e:#}")));
            sys::exit_now(1);
        }
    }
    let _ = sys::set_parent_death_signal(0);
    if ctx.channel.send(&Msg::Ready).is_err() {
        sys::exit_now(1);
    }
    wait_at_gate(ctx.gate);
    let hooks = ctx
        .bundle
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().clone())
        .unwrap_or_default();
    // A hook that exits without reading its stdin must not end us with SIGPIPE (the gate's
    // handlers are still in place; execve resets every disposition).
    let _ = sys::ignore_signal(libc::SIGPIPE);
    let env = ctx
        .bundle
        .spec
        .process()
        .as_ref()
        .map(environment)
        .unwrap_or_default();
    if let Err(e) = crate::hooks::run_all_in(
        "startContainer",
        &hooks,
        &state.with_status(Status::Created).json(),
        Some(&env),
    ) {
        // start has returned already: the error goes to the container's stderr, and the
        // container stops without running its process.
        crate::logging::stderr_line(&format!("onggi: {e:#}"));
        sys::exit_now(1);
    }
    match prepared {
        Some(p) => exec(p, ctx.preserve_fds, None),
        // A container created without `process` cannot be started: `start` refuses.
        None => sys::exit_now(0),
    }
}

/// The init's first steps: hygiene, wait for Go (with the mount sources onggi opened for us),
/// then the whole setup. Returns what execve needs and our pid as the host sees it.
fn hygiene_go_setup(
    ctx: &InitContext<'_>,
    rootless: bool,
    annotations: &std::collections::HashMap<String, String>,
) -> Result<(Option<Prepared>, i32)> {
    trace::step("init_hygiene", |c| {
        close_inherited(ctx)?;
        // Until we report Ready, our fate is tied to onggi's: if it dies, so do we.
        sys::set_parent_death_signal(libc::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
        // Nobody in the container may ptrace us or open our /proc files while we hold host
        // fds. Rootless: an unprivileged onggi must still open our setgroups/uid_map/gid_map
        // to write them, so we stay dumpable until it sends Go (nothing else is in our
        // namespaces before that), then become non-dumpable.
        if !rootless {
            sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        }
        sys::unblock_all_signals().context("sigprocmask")?;
        c.note(|| "close_range(inherited fds) | prctl(PR_SET_PDEATHSIG, SIGKILL) | prctl(PR_SET_DUMPABLE, 0) | sigprocmask(unblock)".into());
        Ok::<_, anyhow::Error>(())
    })?;
    let (go, fds) = match ctx.channel.recv_with_fds()? {
        Some((Msg::Go(go), fds)) => (go, fds),
        _ => sys::exit_now(1),
    };
    if rootless {
        trace::step("dumpable", |c| {
            sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
            c.note(|| "prctl(PR_SET_DUMPABLE, 0) (rootless: after onggi wrote our maps)".into());
            anyhow::Ok(())
        })?;
    }
    let sources = crate::sources::Received::new(&go.sources, fds);
    let state = crate::hooks::HookState::new(
        ctx.id,
        Status::Creating,
        go.pid,
        &ctx.bundle.dir,
        annotations,
    );
    let prepared = setup(ctx, &state.json(), &sources)?;
    drop(sources);
    Ok((prepared, go.pid))
}

/// Makes the process's user the owner of its stdio (pipes, FIFOs, the pty), as runc does, so a
/// non-root process can reopen /dev/stdout or /proc/self/fd/1 (nginx, entrypoint scripts, a
/// `-it -u 1000` shell). /dev/null and descriptors it owns already are left alone, and so is
/// one the kernel will not give away (an owner not mapped in our user namespace, a read-only
/// /dev). Returns the descriptors it changed.
fn give_stdio_to(uid: u32) -> Vec<RawFd> {
    let mut changed = Vec::new();
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let is_null =
            st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        if st.st_uid == uid || is_null {
            continue;
        }
        let owner = Some(nix::unistd::Uid::from_raw(uid));
        if nix::unistd::fchown(fd, owner, None).is_ok() {
            changed.push(fd);
        }
    }
    changed
}

/// Closes every descriptor inherited from onggi except the ones the init needs (the state
/// directory's lock above all: it must not stay held while the container lives).
fn close_inherited(ctx: &InitContext<'_>) -> Result<()> {
    close_inherited_except(&ctx.keep, ctx.preserve_fds)
}

/// Closes every descriptor from 3 + `preserve_fds` up, except `keep`.
pub fn close_inherited_except(keep: &[RawFd], preserve_fds: u32) -> Result<()> {
    let first = 3 + preserve_fds as RawFd;
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first;
    for k in keep {
        if k > from {
            sys::close_range(from as u32, (k - 1) as u32).context("close_range")?;
        }
        from = k + 1;
    }
    sys::close_range(from as u32, u32::MAX).context("close_range")
}

fn setup(
    ctx: &InitContext<'_>,
    state: &str,
    sources: &crate::sources::Received,
) -> Result<Option<Prepared>> {
    let spec = &ctx.bundle.spec;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    namespaces::join_namespaces(ctx.bundle.namespaces())?;
    if ctx
        .bundle
        .new_namespace(oci_spec::runtime::LinuxNamespaceType::Time)
    {
        let offsets = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref());
        trace::step("time_namespace", |c| {
            namespaces::new_time_namespace(offsets, ctx.procfs, c)
        })?;
    }
    let userns = ctx
        .bundle
        .has_namespace(oci_spec::runtime::LinuxNamespaceType::User);
    if userns {
        // Our user namespace is new (onggi has written its maps) or was joined by the helper
        // that cloned us: become its root (when 0 is mapped; otherwise we stay the overflow
        // id, with the namespace's capabilities).
        trace::step("userns_root", |c| {
            use nix::unistd::{setresgid, setresuid, Gid, Uid};
            let g = Gid::from_raw(0);
            let u = Uid::from_raw(0);
            if setresgid(g, g, g).is_ok() && setresuid(u, u, u).is_ok() {
                c.note(|| "setresgid(0) setresuid(0) in the new user namespace".into());
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let create_container = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().clone())
        .unwrap_or_default();
    let mut before_pivot = || crate::hooks::run_all("createContainer", &create_container, state);
    if ctx
        .bundle
        .has_namespace(oci_spec::runtime::LinuxNamespaceType::Mount)
    {
        let cx = rootfs::MountContext {
            // In a user namespace of its own, or in onggi's (rootless podman): the kernel
            // treats the init as root of a user namespace either way (no mknod, locked flags).
            userns: userns || namespaces::in_user_namespace(),
            cgroupns: ctx
                .bundle
                .has_namespace(oci_spec::runtime::LinuxNamespaceType::Cgroup),
            cgroup: ctx.cgroup,
            idmaps: ctx.idmaps,
            sources,
        };
        rootfs::setup(
            spec,
            &ctx.bundle.rootfs,
            &ctx.bundle.dir,
            ctx.no_pivot,
            &cx,
            &mut before_pivot,
        )?;
    } else {
        // The runtime's own mount namespace is shared with the host: change nothing in it.
        before_pivot()?;
        trace::step("chroot", |c| rootfs::chroot_only(&ctx.bundle.rootfs, c))?;
    }
    // runc's behaviour: a network namespace the runtime creates comes with `lo` up (a joined
    // one is left as its owner configured it).
    if ctx
        .bundle
        .new_namespace(oci_spec::runtime::LinuxNamespaceType::Network)
    {
        trace::step("loopback", |c| {
            sys::loopback_up().context("cannot bring up lo in the new network namespace")?;
            c.note(|| "ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)".into());
            anyhow::Ok(())
        })?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        trace::step("hostname", |c| {
            nix::unistd::sethostname(h).with_context(|| format!("sethostname({h:?})"))?;
            c.note(|| format!("sethostname({h:?})"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        trace::step("domainname", |c| {
            sys::set_domainname(d).with_context(|| format!("setdomainname({d:?})"))?;
            c.note(|| format!("setdomainname({d:?})"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        trace::step("sysctl", |c| {
            let mut keys: Vec<_> = sysctl.iter().collect();
            keys.sort();
            for (k, v) in keys {
                let rel = PathBuf::from("sys").join(k.replace('.', "/"));
                crate::procfs::write(ctx.procfs, &rel, v)
                    .with_context(|| format!("linux.sysctl {k}"))?;
                c.note(|| format!("write /proc/{} = {v:?}", rel.display()));
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let Some(process) = spec.process() else {
        return Ok(None);
    };
    if !ctx.no_new_keyring {
        trace::step("session_keyring", |c| {
            let name = format!("_ses.{}", ctx.id);
            match sys::join_session_keyring(&name) {
                // Keyrings may be unavailable (no CONFIG_KEYS, or a seccomp'd host): not fatal.
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
                r => r.context("keyctl(KEYCTL_JOIN_SESSION_KEYRING)")?,
            }
            c.note(|| format!("keyctl(JOIN_SESSION_KEYRING, {name:?})"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    // The working directory is created (as runc does) while we are still root in the rootfs.
    let cwd = process.cwd();
    trace::step("cwd_create", |_| {
        let root = sys::openat2(
            sys::at_fdcwd(),
            Path::new("/"),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            0,
        )?;
        rootfs::ensure_in_root(root.as_fd(), cwd, TargetKind::Dir).map(|_| ())
    })
    .with_context(|| format!("process.cwd {}", cwd.display()))?;
    if let Some(sock) = ctx.console {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        trace::step("console", |c| {
            let slave = crate::console::setup(sock, size, c)?;
            // The pty becomes our stdio now, not at the gate: managers (go-runc in the
            // containerd shim) read create's output pipe until EOF, so the init must not keep
            // it open while it waits for `start` (runc does the same).
            crate::console::attach(&slave).context("cannot attach the terminal")?;
            c.note(|| "setsid(); ioctl(TIOCSCTTY); dup2(pty slave, 0/1/2)".into());
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let plan = crate::scheduling::Plan::new(Some(process), spec.linux().as_ref())?;
    let labels = crate::lsm::ExecLabels::new(process)?;
    let prepared = prepare_process(
        process,
        ctx.seccomp.is_some(),
        &ProcessSetup {
            plan: &plan,
            labels: &labels,
            procfs: ctx.procfs,
        },
    )?;
    Ok(Some(prepared))
}

/// The process half of the setup, shared by the init and `exec`: rlimits, capabilities and the
/// user switch, the working directory (checked to be inside the root), the environment, the
/// PATH lookup and no_new_privs. After it only the execve is left.
/// `seccomp`: a filter will be loaded at execve (CAP_SYS_ADMIN is kept until then when the
/// process would not have it and no_new_privs is not asked for).
/// What the process half of the setup needs besides the `process` object: the checked
/// scheduling plan, the LSM exec labels, and the host procfs handle to write those through.
pub struct ProcessSetup<'a> {
    pub plan: &'a crate::scheduling::Plan,
    pub labels: &'a crate::lsm::ExecLabels,
    pub procfs: BorrowedFd<'a>,
}

pub fn prepare_process(
    process: &Process,
    seccomp: bool,
    setup: &ProcessSetup<'_>,
) -> Result<Prepared> {
    let cwd = process.cwd();
    trace::step("rlimits", |c| set_rlimits(process, c))?;
    if !setup.plan.is_empty() {
        // Before the capability step: real-time policies and negative nice need CAP_SYS_NICE.
        trace::step("scheduling", |c| setup.plan.apply(c))?;
    }
    if !setup.labels.is_empty() {
        // While still root: the /proc files of a non-dumpable process belong to root.
        trace::step("lsm_labels", |c| setup.labels.apply(setup.procfs, c))?;
    }
    let caps = process
        .capabilities()
        .as_ref()
        .map(CapSets::from_config)
        .transpose()?;
    let entered_as_root = nix::unistd::chdir(cwd).is_ok();
    let uid = process.user().uid();
    trace::step("stdio_owner", |c| {
        let fds = give_stdio_to(uid);
        c.note(|| format!("fchown({fds:?}, {uid}, -1)"));
        anyhow::Ok(())
    })?;
    if let Some(sets) = &caps {
        sets.check_grantable()?;
        trace::step("capabilities_bounding", |c| {
            capabilities::drop_bounding(sets, c)
        })?;
    }
    trace::step("user", |c| {
        capabilities::switch_user(process.user(), caps.is_some(), setup.procfs, c)
    })?;
    let hold = seccomp
        && !process.no_new_privileges().unwrap_or(false)
        && caps.as_ref().is_some_and(|s| !s.has_sys_admin());
    if let Some(sets) = &caps {
        trace::step("capabilities", |c| capabilities::apply_sets(sets, hold, c))?;
    }
    trace::step("chdir", |c| {
        // Entered already while root, when root could (a cwd the user may not search, as
        // runc allows); otherwise as the user now.
        if !entered_as_root {
            nix::unistd::chdir(cwd)
                .with_context(|| format!("process.cwd {}: chdir", cwd.display()))?;
        }
        // A cwd outside the root (a leaked host directory, CVE-2024-21626) reads "(unreachable)".
        let now = nix::unistd::getcwd().context("getcwd")?;
        if !now.is_absolute() || now.as_os_str().as_bytes().starts_with(b"(unreachable)") {
            bail!(
                "process.cwd {}: the working directory is outside the container",
                cwd.display()
            );
        }
        c.note(|| format!("chdir({})", cwd.display()));
        Ok(())
    })?;
    let env = environment(process);
    let path = trace::step("find_executable", |c| {
        let args = process.args().as_deref().unwrap_or(&[]);
        let p = find_executable(&args[0], path_var(&env))?;
        c.note(|| format!("{} -> {}", args[0], p.display()));
        Ok::<_, anyhow::Error>(p)
    })?;
    if process.no_new_privileges().unwrap_or(false) {
        trace::step("no_new_privs", |c| {
            sys::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
            c.note(|| "prctl(PR_SET_NO_NEW_PRIVS, 1)".into());
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let cs = |s: &str| CString::new(s).map_err(|_| anyhow!("{s:?} contains a NUL byte"));
    Ok(Prepared {
        console: None,
        final_caps: if hold { caps } else { None },
        path: CString::new(path.as_os_str().as_bytes())
            .map_err(|_| anyhow!("path has a NUL byte"))?,
        args: process
            .args()
            .iter()
            .flatten()
            .map(|a| cs(a))
            .collect::<Result<_>>()?,
        env: env.iter().map(|e| cs(e)).collect::<Result<_>>()?,
        umask: process.user().umask().unwrap_or(0o022),
    })
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn set_rlimits(process: &Process, c: &mut trace::Calls) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())?
            .as_str()
            .unwrap_or("?")
            .to_string();
        sys::set_rlimit(rlimit_resource(r.typ()), r.soft(), r.hard()).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (raising a hard limit needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            anyhow!(
                "process.rlimits {name} soft={} hard={}: {e}{hint}",
                r.soft(),
                r.hard()
            )
        })?;
        c.note(|| format!("prlimit({name}, {}, {})", r.soft(), r.hard()));
    }
    Ok(())
}

/// process.env, plus HOME from the container's /etc/passwd when the config does not set it.
fn environment(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = process.user().uid();
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| home_of(&p, uid))
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

fn path_var(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// Finds `name` as execve would run it: a name with a slash is used as given, anything else is
/// searched in PATH. The messages carry "no such file or directory" and "permission denied",
/// which podman turns into exit codes 127 and 126.
pub fn find_executable(name: &str, path: &str) -> Result<PathBuf> {
    let check = |p: &Path| -> Result<(), nix::errno::Errno> {
        let meta = std::fs::metadata(p)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
        if meta.is_dir() {
            return Err(nix::errno::Errno::EACCES);
        }
        nix::unistd::faccessat(
            None,
            p,
            nix::unistd::AccessFlags::X_OK,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return match check(&p) {
            Ok(()) => Ok(p),
            Err(nix::errno::Errno::EACCES) => bail!("exec: {name:?}: permission denied"),
            Err(nix::errno::Errno::ENOENT) => bail!("exec: {name:?}: no such file or directory"),
            Err(e) => bail!("exec: {name:?}: {}", e.desc().to_lowercase()),
        };
    }
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        match check(&p) {
            Ok(()) => return Ok(p),
            Err(nix::errno::Errno::EACCES) => denied = denied.or(Some(p)),
            Err(_) => {}
        }
    }
    match denied {
        Some(p) => bail!("exec: {name:?} ({}): permission denied", p.display()),
        None => {
            bail!("exec: {name:?}: executable file not found in $PATH: no such file or directory")
        }
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

/// The seccomp filter to load at execve, and for SCMP_ACT_NOTIFY where its fd goes.
pub struct Seccomp<'a> {
    pub filter: &'a crate::seccomp::Filter,
    pub listener: Option<&'a std::os::unix::net::UnixStream>,
    /// The process's pid as onggi sees it, and the container state JSON (for the listener).
    pub pid: i32,
    pub state: String,
}

/// Loads the filter (the init: before Ready; exec: just before execve) (with CAP_SYS_ADMIN, or no_new_privs when the
/// process has never had it), send a notification fd to the listener, drop a held capability.
fn load_seccomp(s: &Seccomp<'_>, final_caps: Option<&CapSets>) -> Result<()> {
    trace::step("seccomp", |c| {
        if !sys::no_new_privs()
            && !caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_ADMIN,
            )
            .unwrap_or(false)
        {
            sys::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
            c.note(|| {
                "no CAP_SYS_ADMIN to load a filter with: prctl(PR_SET_NO_NEW_PRIVS, 1)".into()
            });
        }
        if let Some(fd) = s.filter.load(c)? {
            let sock = s
                .listener
                .ok_or_else(|| anyhow!("SCMP_ACT_NOTIFY without a listener socket"))?;
            let state = serde_json::from_str(&s.state).unwrap_or_default();
            crate::seccomp::send_to_listener(sock, &fd, s.pid, s.filter.metadata(), state)?;
            c.note(|| "sendmsg(listenerPath, SCM_RIGHTS seccomp fd)".into());
        }
        if let Some(sets) = final_caps {
            capabilities::apply_sets(sets, false, c)?;
        }
        Ok(())
    })
}

/// Marks descriptors ≥ 3 + `preserve_fds` close-on-exec, resets every signal disposition,
/// sets the umask, loads the seccomp filter, and execs. Never returns (127/126/1 when execve
/// fails).
pub fn exec(p: Prepared, preserve_fds: u32, seccomp: Option<Seccomp<'_>>) -> ! {
    if let Some(slave) = &p.console {
        if let Err(e) = crate::console::attach(slave) {
            crate::logging::stderr_line(&format!("onggi: cannot attach the terminal: {e:#}"));
            sys::exit_now(1);
        }
    }
    // Only stdio and the --preserve-fds survive execve (CVE-2024-21626).
    if sys::cloexec_from(3 + preserve_fds).is_err() {
        sys::exit_now(1);
    }
    // Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored across execve:
    // give the container every signal at its default.
    sys::reset_signal_dispositions();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(p.umask));
    if let Some(s) = &seccomp {
        if let Err(e) = load_seccomp(s, p.final_caps.as_ref()) {
            crate::logging::stderr_line(&format!("onggi: {e:#}"));
            sys::exit_now(1);
        }
    }
    trace::moment("execve", || format!("execve({:?}, {:?})", p.path, p.args));
    let err = nix::unistd::execve(&p.path, &p.args, &p.env).unwrap_err();
    let code = match err {
        nix::errno::Errno::ENOENT => 127,
        nix::errno::Errno::EACCES => 126,
        _ => 1,
    };
    crate::logging::stderr_line(&format!(
        "onggi: exec {:?}: {}",
        p.path,
        err.desc().to_lowercase()
    ));
    sys::exit_now(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_from_passwd() {
        let p = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nbad\n";
        assert_eq!(home_of(p, 0).as_deref(), Some("/root"));
        assert_eq!(home_of(p, 1000).as_deref(), Some("/home/bob"));
        assert_eq!(home_of(p, 7), None);
    }

    #[test]
    fn path_lookup_messages() {
        let e = find_executable("definitely-not-here-onggi", "/nonexistent")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file or directory"), "{e}");
        let dir = std::env::temp_dir().join(format!("onggi-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        std::fs::write(dir.join("plain"), "data").expect("write");
        let plain = dir.join("plain");
        let e = find_executable(plain.to_str().expect("utf8"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("permission denied"), "{e}");
        let e = find_executable("plain", dir.to_str().expect("utf8"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("permission denied"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        let e = find_executable("/", "").unwrap_err().to_string();
        assert!(e.contains("permission denied"), "{e}");
        assert_eq!(
            find_executable("sh", "/nonexistent:/bin").ok(),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn last_path_wins() {
        let env = vec![
            "PATH=/a".to_string(),
            "X=1".to_string(),
            "PATH=/b".to_string(),
        ];
        assert_eq!(path_var(&env), "/b");
        assert_eq!(path_var(&[]), DEFAULT_PATH);
    }
}
