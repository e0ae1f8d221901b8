//! Process creation: onggi clones the container init directly (clone3 with the namespace flags,
//! so the init is PID 1 of its pid namespace from its first instruction), talks to it over a
//! SOCK_SEQPACKET socketpair with small typed messages, and exits once the init waits at the
//! start gate. No re-exec of /proc/self/exe, no helper process left behind: the init is
//! orphaned to the caller's subreaper (conmon, the containerd shim), which reaps it.
//!
//! ```text
//!   onggi create                              init (clone3 child)
//!   ────────────                              ───────────────────
//!   load + validate config
//!   mkdir <root>/<id>, flock, mkfifo gate
//!   open + verify host /proc, /dev/null
//!   clone3(CLONE_NEW*) ─────────────────────▶ close inherited fds, PDEATHSIG
//!   state.json (creating, pid, start time)
//!   send Go ────────────────────────────────▶ namespaces, rootfs, mounts, pivot_root,
//!                                             hostname, sysctl, rlimits, user, caps …
//!   recv Ready / Error ◀──────────────────── send Ready (or Error + exit)
//!   state.json (created), pid file, exit       wait at the gate (exec.fifo) …
//!   onggi start: write 1 byte to the gate ──▶ … execve(process.args)
//! ```

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::spec::Bundle;
use crate::state::{proc_stat, ContainerDir, State, Status, Store};
use crate::sys::{self, Forked};
use crate::{init, namespaces, trace};

/// Messages between onggi and the process it cloned: the init (create) or the joining process
/// (exec). Each is one SOCK_SEQPACKET message of JSON; descriptors travel beside it.
#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// onggi → child: the parent side is ready (state recorded, id maps written, cgroup
    /// joined, createRuntime hooks run).
    Go(Go),
    /// init → onggi: set up, waiting at the start gate.
    Ready,
    /// child → onggi: setup failed; the one-line reason. The child exits after sending it.
    Error(String),
}

/// What `Go` tells the child.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Go {
    /// The child's pid as onggi (and the host) sees it: the hook state and seccomp listeners
    /// need it, and inside its own pid namespace the child is pid 1.
    pub pid: i32,
    /// What the descriptors sent with this message are, in order.
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// A descriptor onggi opened for the init, through the init's own mount namespace
/// (`/proc/<pid>/root/…`) with onggi's privileges: under a user namespace the init could not
/// walk to paths below directories only the host's root may enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// root.path
    Rootfs,
    /// The source of bind mount `mounts[i]`.
    Mount(usize),
}

/// An error line longer than this is cut (a 1 MB config value makes a 1 MB line otherwise,
/// more than one message may carry).
const MAX_ERROR_LEN: usize = 16 * 1024;

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

/// One end of the SOCK_SEQPACKET socketpair (message boundaries are kept by the kernel).
pub struct Channel(OwnedFd);

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair")?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, m: &Msg) -> Result<()> {
        self.send_with_fds(m, &[])
    }

    /// `m` with descriptors beside it (at most [`sys::MAX_FDS_PER_MESSAGE`]).
    pub fn send_with_fds(&self, m: &Msg, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let data = match m {
            Msg::Error(e) if e.len() > MAX_ERROR_LEN => {
                serde_json::to_vec(&Msg::Error(shorten(e, MAX_ERROR_LEN)))?
            }
            m => serde_json::to_vec(m)?,
        };
        sys::send_message(self.0.as_fd(), &data, fds)
            .context("cannot send to the other side of the init channel")
    }

    /// The next message, or None when the other side has closed its end.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fds()?.map(|(m, _)| m))
    }

    /// The next message and the descriptors that came with it.
    pub fn recv_with_fds(&self) -> Result<Option<(Msg, Vec<OwnedFd>)>> {
        let Some((data, fds)) =
            sys::recv_message(self.0.as_fd()).context("cannot read the init channel")?
        else {
            return Ok(None);
        };
        let m = serde_json::from_slice(&data).context("bad message on the init channel")?;
        Ok(Some((m, fds)))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What `create` and `run` take from the command line.
pub struct CreateOptions<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    /// `run` in the foreground: where the pty master goes when process.terminal is set and no
    /// --console-socket was given (onggi's end of a socket pair; onggi relays the terminal).
    pub terminal_relay: Option<&'a std::os::unix::net::UnixStream>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// A created container: the init's pid and a pidfd for it (used by `run` to wait).
pub struct Created {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The pty master went to `terminal_relay`.
    pub relayed_terminal: bool,
}

/// Undoes a create that failed half-way: kills the init, removes what onggi made for it.
struct Cleanup {
    dir: Option<ContainerDir>,
    child: Option<(i32, OwnedFd)>,
    /// The container's cgroup and whether onggi created it (then it is removed; otherwise
    /// onggi's device filter is detached from it).
    cgroup: Option<(PathBuf, bool)>,
}

impl Cleanup {
    fn disarm(mut self) {
        self.dir = None;
        self.child = None;
        self.cgroup = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some((pid, pidfd)) = self.child.take() {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        match self.cgroup.take() {
            Some((cg, true)) => {
                let _ = crate::cgroup::remove(&cg);
            }
            Some((cg, false)) => {
                let _ = crate::cgroup::device_filter::detach_ours(&cg);
            }
            None => {}
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

/// Creates the start gate: a FIFO the init holds open read-write and blocks reading.
fn make_gate(dir: &ContainerDir) -> Result<OwnedFd> {
    let path = dir.gate_path();
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .context("mkfifo exec.fifo")?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .context("cannot open exec.fifo")?;
    Ok(f.into())
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path =
        std::path::absolute(path).with_context(|| format!("--pid-file {}", path.display()))?;
    crate::state::write_atomic(&path, pid.to_string().as_bytes(), 0o644)
}

/// `create`: everything up to the init waiting at the start gate. The steps, in order (each
/// a trace step of that name): load_config, state_dir (the first durable record: before any
/// kernel object exists), cgroup*, clone3, the parent side (id maps, net devices, oom score,
/// mount sources), hooks, wait_ready, then `created` is recorded.
pub fn create(store: &Store, o: &CreateOptions<'_>) -> Result<Created> {
    crate::state::validate_id(o.id)?;
    let bundle = trace::step("load_config", |c| {
        let b = Bundle::load(o.bundle)?;
        c.note(|| {
            format!(
                "read {}/config.json; rootfs {}",
                b.dir.display(),
                b.rootfs.display()
            )
        });
        Ok::<_, anyhow::Error>(b)
    })?;
    if !bundle.new_namespace(oci_spec::runtime::LinuxNamespaceType::Pid) {
        // Other processes may share the init's pid namespace: see src/self_exe.rs. Nothing
        // exists yet, so the re-executed onggi simply starts over.
        crate::self_exe::ensure_read_only()?;
    }
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false));
    // Connected here, where the host path resolves; the init inherits the socket.
    let console = crate::console::target(terminal, o.console_socket, o.terminal_relay)?;
    if !bundle.has_namespace(oci_spec::runtime::LinuxNamespaceType::Mount) {
        let n = bundle.spec.mounts().as_ref().map_or(0, |m| m.len());
        crate::logging::warn(&format!(
            "linux.namespaces has no \"mount\": the container shares onggi's mount namespace, so onggi only chroots into the rootfs and skips the {n} mounts, masked and read-only paths of config.json"
        ));
    }
    // Compiled before anything exists, so a bad profile leaves nothing behind; the init
    // inherits the compiled filter and loads it at execve.
    let seccomp_spec = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone());
    let (seccomp, listener) = crate::seccomp::prepare(seccomp_spec.as_ref())?;
    let cgroup = crate::cgroup::setup::plan(&bundle, o.id)?;
    let mut state = first_record(o.id, &bundle, cgroup.as_ref());
    let (dir, gate) = trace::step("state_dir", |c| stage(store, &state, &bundle, c))?;
    let mut guard = Cleanup {
        dir: Some(dir),
        child: None,
        cgroup: None,
    };
    let dir = guard
        .dir
        .as_ref()
        .ok_or_else(|| anyhow!("state directory vanished"))?;
    let procfs = crate::procfs::open_host()?;
    let idmaps = crate::rootfs::IdmapUserns::for_mounts(
        bundle.spec.mounts().as_deref().unwrap_or(&[]),
        procfs.as_fd(),
    )?;
    let (parent_end, child_end) = Channel::pair()?;
    namespaces::join_pid_namespace(bundle.namespaces())?;
    let flags = namespaces::new_namespace_flags(bundle.namespaces());
    let placed = match &cgroup {
        Some(plan) => {
            let p = crate::cgroup::setup::make(plan, &bundle)?;
            guard.cgroup = Some((p.dir.clone(), p.created));
            Some(p)
        }
        None => None,
    };
    let cgroup_dir = placed.as_ref().map(|p| p.dir.clone());
    let into = placed.as_ref().and_then(|p| p.clone_target());

    let plan =
        crate::scheduling::Plan::new(bundle.spec.process().as_ref(), bundle.spec.linux().as_ref())?;
    if plan.initial_cpus.is_some() {
        trace::step("cpu_affinity_initial", |c| plan.apply_initial(c))?;
    }
    // Not a trace::step: both processes return from clone3, only the parent reports it.
    let t0 = std::time::Instant::now();
    let join_user = namespaces::joined_user_namespace(bundle.namespaces());
    let forked = clone_init(flags, into, join_user, procfs.as_fd())?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            trace::set_who(trace::Who::Init);
            let mut keep: Vec<RawFd> = vec![
                child_end.fd().as_raw_fd(),
                gate.as_raw_fd(),
                procfs.as_raw_fd(),
            ];
            if let Some(fd) = trace::sink() {
                keep.push(fd.as_raw_fd());
            }
            keep.extend(idmaps.fds());
            if let Some(c) = &console {
                keep.push(c.as_raw_fd());
            }
            if let Some(l) = &listener {
                keep.push(l.as_raw_fd());
            }
            init::run(init::InitContext {
                console: console.as_ref(),
                seccomp: seccomp.as_ref(),
                seccomp_listener: listener.as_ref(),
                id: o.id,
                bundle: &bundle,
                channel: &child_end,
                gate: gate.as_fd(),
                procfs: procfs.as_fd(),
                no_pivot: o.no_pivot,
                no_new_keyring: o.no_new_keyring,
                preserve_fds: o.preserve_fds,
                idmaps: &idmaps,
                cgroup: cgroup_dir.as_deref(),
                keep,
            })
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    trace::finished("clone3", t0.elapsed(), || {
        clone_call(flags, into.is_some(), join_user, pid)
    });
    guard.child = Some((pid, pidfd.try_clone().context("dup pidfd")?));
    drop(child_end);
    drop(gate);

    state.pid_start_time = proc_stat(pid)
        .map(|p| p.start_time)
        .ok_or_else(|| anyhow!("the init (pid {pid}) vanished"))?;
    state.pid = pid;
    dir.save(&state)?;
    if let Some(p) = placed.as_ref().filter(|p| p.clone_target().is_none()) {
        crate::cgroup::setup::join(p, pid)?;
    }
    parent_side_setup(&bundle, procfs.as_fd(), pid)?;
    let sources = crate::sources::open(&bundle, procfs.as_fd(), pid)?;
    let hook_state =
        crate::hooks::HookState::new(o.id, Status::Creating, pid, &bundle.dir, &state.annotations)
            .json();
    if let Some(h) = bundle.spec.hooks() {
        crate::hooks::run_all(
            "prestart",
            h.prestart().as_deref().unwrap_or(&[]),
            &hook_state,
        )?;
        crate::hooks::run_all(
            "createRuntime",
            h.create_runtime().as_deref().unwrap_or(&[]),
            &hook_state,
        )?;
    }
    let go = Msg::Go(Go {
        pid,
        sources: sources.kinds(),
    });
    if let Err(e) = parent_end.send_with_fds(&go, &sources.fds()) {
        return Err(init_ended(pid).unwrap_or(e));
    }
    drop(sources);
    trace::step("wait_ready", |_| match parent_end.recv()? {
        Some(Msg::Ready) => Ok(()),
        Some(Msg::Error(msg)) => Err(anyhow!(msg)),
        Some(other) => Err(anyhow!("unexpected message from the init: {other:?}")),
        None => Err(init_ended(pid)
            .unwrap_or_else(|| anyhow!("the container init closed its channel during setup"))),
    })?;
    state.recorded = Status::Created;
    dir.save(&state)?;
    if let Some(p) = o.pid_file {
        trace::step("pid_file", |c| {
            c.note(|| format!("write {} = {pid}", p.display()));
            write_pid_file(p, pid)
        })?;
    }
    guard.disarm();
    Ok(Created {
        pid,
        pidfd,
        relayed_terminal: terminal && o.console_socket.is_none(),
    })
}

/// `--preserve-fds N` passes exactly 3 … 3+N-1, so each must be open when onggi starts: a free
/// number there would be taken by one of onggi's own descriptors (the state lock, the host
/// /proc handle) and reach the container. Refused, as runc does.
pub fn check_preserved_fds(n: u32) -> Result<()> {
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

/// The state record written before anything else exists: `creating`, no init yet, this onggi
/// as the creator, and the cgroup it is about to make.
fn first_record(id: &str, bundle: &Bundle, cgroup: Option<&crate::cgroup::setup::Plan>) -> State {
    State {
        id: id.to_string(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339(std::time::SystemTime::now()),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner_uid: nix::unistd::geteuid().as_raw(),
        recorded: Status::Creating,
        has_process: bundle.spec.process().is_some(),
        own_pid_namespace: bundle.new_namespace(oci_spec::runtime::LinuxNamespaceType::Pid),
        cgroup: cgroup.map(|p| p.dir()),
        cgroup_created: cgroup.is_some_and(|p| p.create),
        creator: crate::state::ProcessId::me(),
    }
}

/// The state directory with its first record, the config snapshot and the start gate.
fn stage(
    store: &Store,
    first: &State,
    bundle: &Bundle,
    c: &mut trace::Calls,
) -> Result<(ContainerDir, OwnedFd)> {
    let dir = store.create(&first.id, first)?;
    let staged = (|| {
        dir.save_config(&bundle.spec)?;
        make_gate(&dir)
    })();
    let gate = match staged {
        Ok(g) => g,
        Err(e) => {
            let _ = dir.remove();
            return Err(e);
        }
    };
    c.note(|| {
        let fifo = dir.gate_path();
        let d = fifo.parent().unwrap_or(&fifo).display().to_string();
        format!(
            "mkdir {d} | write {d}/state.json (creating) | write {d}/config.json | mkfifo {}",
            fifo.display()
        )
    });
    Ok((dir, gate))
}

/// How the init was cloned, for the trace.
fn clone_call(flags: u64, into_cgroup: bool, join_user: Option<&Path>, pid: i32) -> String {
    let into = if into_cgroup {
        sys::CLONE_INTO_CGROUP
    } else {
        0
    };
    match join_user {
        None => format!(
            "clone3({}) = pid {pid}",
            namespaces::flag_names(flags | libc::CLONE_PIDFD as u64 | into)
        ),
        Some(p) => format!(
            "helper = clone3(CLONE_PIDFD); in it: prctl(PR_SET_DUMPABLE, 0), setns({}, user), \
             clone3({}) = pid {pid}, sendmsg(SCM_RIGHTS pidfd), exit",
            p.display(),
            namespaces::flag_names(
                flags | libc::CLONE_PIDFD as u64 | libc::CLONE_PARENT as u64 | into
            )
        ),
    }
}

/// When the init has ended: how, as one line (it was killed before it could report, or
/// exited without a message). None while it still runs.
fn init_ended(pid: i32) -> Option<anyhow::Error> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let p = nix::unistd::Pid::from_raw(pid);
    // It closed its end: it is gone or going; wait a moment for it.
    for _ in 0..200 {
        match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Some(anyhow!(
                    "the container init (pid {pid}) was killed by {sig} before it reported back"
                ))
            }
            Ok(WaitStatus::Exited(_, code)) => {
                return Some(anyhow!(
                    "the container init (pid {pid}) exited with status {code} during setup without a message"
                ))
            }
            Ok(other) => return Some(anyhow!("the container init (pid {pid}) ended: {other:?}")),
            Err(_) => return None,
        }
    }
    None
}

/// Clones the init. Normally that is onggi's own clone3 with the namespace flags: a new user
/// namespace among them is created first and owns the others.
///
/// A user namespace joined by path must own the new namespaces too (or the init could not
/// mount in its own mount namespace, nor mount /proc for its own pid namespace), yet onggi has
/// to stay in the host's to finish the parent's side (cgroup, net devices, state). So a
/// short-lived helper does it, as runc's nsexec does: made non-dumpable first (a process of the
/// container must not ptrace it), it setns()es into the user namespace, clones the init with
/// CLONE_PARENT (so the init is onggi's child as always) straight into the container's cgroup,
/// hands onggi the init's pidfd over a socket and exits.
fn clone_init(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    join_user: Option<&Path>,
    procfs: BorrowedFd<'_>,
) -> Result<Forked> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let Some(path) = join_user else {
        return sys::clone3(flags, cgroup).context("clone3");
    };
    let ns = namespaces::open_ns(oci_spec::runtime::LinuxNamespaceType::User, path)?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .context("socketpair")?;
    // The helper stays in onggi's cgroup (it must not count against the container's pids.max);
    // the init it clones goes straight into the container's.
    let helper = match sys::clone3(0, None).context("clone3 (user namespace helper)")? {
        Forked::Child => {
            drop(ours);
            let cloned = (|| -> Result<Forked> {
                sys::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
                namespaces::setns_file(oci_spec::runtime::LinuxNamespaceType::User, path, &ns)?;
                sys::clone3(flags | libc::CLONE_PARENT as u64, cgroup).context("clone3")
            })();
            let code = match cloned {
                Ok(Forked::Child) => return Ok(Forked::Child),
                Ok(Forked::Parent { pidfd, .. }) => {
                    i32::from(sys::send_with_fd(theirs.as_fd(), b"", pidfd.as_fd()).is_err())
                }
                Err(e) => {
                    let _ = nix::unistd::write(&theirs, format!("{e:#}").as_bytes());
                    1
                }
            };
            // Without the parent's destructors (its state-dir guard must not run here).
            sys::exit_now(code)
        }
        Forked::Parent { pid, .. } => pid,
    };
    drop(theirs);
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(helper), None)
        .context("waitpid (user namespace helper)")?;
    if status != nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(helper), 0) {
        let mut buf = [0u8; 1024];
        let n = nix::unistd::read(ours.as_raw_fd(), &mut buf).unwrap_or(0);
        let why = String::from_utf8_lossy(&buf[..n]);
        bail!(
            "could not clone the init inside the user namespace {}: {}",
            path.display(),
            if why.is_empty() {
                format!("the helper ended with {status:?}")
            } else {
                why.into_owned()
            }
        );
    }
    let pidfd = sys::recv_fd(ours.as_fd()).context("the init's pidfd from the helper")?;
    let pid = crate::procfs::pidfd_pid(procfs, pidfd.as_fd())?;
    Ok(Forked::Parent { pid, pidfd })
}

/// What onggi, still root on the host, writes for the init while it waits for Go: the id maps
/// of a new user namespace (the init cannot write its own), and the oom score adjustment (a
/// non-dumpable init's /proc files belong to host root).
fn parent_side_setup(bundle: &Bundle, procfs: BorrowedFd<'_>, pid: i32) -> Result<()> {
    let linux = bundle.spec.linux().as_ref();
    if let Some(path) = namespaces::joined_user_namespace(bundle.namespaces()) {
        trace::step("id_maps_check", |c| {
            check_joined_maps(linux, procfs, pid, path)?;
            c.note(|| format!("read /proc/{pid}/uid_map, gid_map: as linux.uid/gidMappings say"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    if bundle.new_namespace(oci_spec::runtime::LinuxNamespaceType::User) {
        trace::step("id_maps", |c| {
            if !nix::unistd::geteuid().is_root() {
                // An unprivileged writer may map only its own ids, and gid_map only once
                // setgroups is denied (user_namespaces(7)).
                let rel = PathBuf::from(pid.to_string()).join("setgroups");
                crate::procfs::write(procfs, &rel, "deny").context("setgroups deny")?;
                c.note(|| format!("write /proc/{pid}/setgroups = \"deny\""));
            }
            for (file, maps) in [
                ("uid_map", linux.and_then(|l| l.uid_mappings().as_deref())),
                ("gid_map", linux.and_then(|l| l.gid_mappings().as_deref())),
            ] {
                let text = crate::procfs::id_map_text(maps.unwrap_or(&[]));
                if text.is_empty() {
                    continue;
                }
                let rel = PathBuf::from(pid.to_string()).join(file);
                crate::procfs::write(procfs, &rel, &text)
                    .with_context(|| format!("linux.{}Mappings", &file[..3]))?;
                c.note(|| format!("write /proc/{pid}/{file} = {:?}", text.trim_end()));
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let devs = crate::netdev::devices(&bundle.spec);
    if !devs.is_empty() {
        trace::step("net_devices", |c| crate::netdev::move_in(&devs, pid, c))?;
    }
    if let Some(adj) = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.oom_score_adj())
    {
        trace::step("oom_score_adj", |c| {
            let rel = PathBuf::from(pid.to_string()).join("oom_score_adj");
            crate::procfs::write(procfs, &rel, &adj.to_string()).context("process.oomScoreAdj")?;
            c.note(|| format!("write /proc/{pid}/oom_score_adj = {adj}"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    Ok(())
}

/// A pidfd for the container's init, checked to be that very process (pid and start time).
/// A user namespace joined by path with mappings in the config (podman sends them for its
/// pods): they must be the namespace's own, as runc checks. Read from the init's uid_map and
/// gid_map as onggi sees them (ids of onggi's own user namespace, as the config's hostIDs are).
fn check_joined_maps(
    linux: Option<&oci_spec::runtime::Linux>,
    procfs: BorrowedFd<'_>,
    pid: i32,
    path: &Path,
) -> Result<()> {
    for (field, file, maps) in [
        (
            "uidMappings",
            "uid_map",
            linux.and_then(|l| l.uid_mappings().as_deref()),
        ),
        (
            "gidMappings",
            "gid_map",
            linux.and_then(|l| l.gid_mappings().as_deref()),
        ),
    ] {
        let Some(maps) = maps.filter(|m| !m.is_empty()) else {
            continue;
        };
        let rel = PathBuf::from(pid.to_string()).join(file);
        let have = crate::procfs::read(procfs, &rel)?;
        let have: Vec<Vec<&str>> = have
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let want = crate::procfs::id_map_text(maps);
        let want: Vec<Vec<&str>> = want
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        if have != want {
            bail!(
                "linux.{field} {} do not match the user namespace {} (it maps {})",
                want.iter()
                    .map(|l| l.join(" "))
                    .collect::<Vec<_>>()
                    .join(", "),
                path.display(),
                have.iter()
                    .map(|l| l.join(" "))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

pub fn open_init(state: &State) -> Result<Option<OwnedFd>> {
    // None, too, for a container whose init was never cloned (pid 0 in its first record).
    Ok(state.init().map(|i| i.open()).transpose()?.flatten())
}

/// The pid-namespace inode of a process, to find every process of a container.
pub fn pid_ns_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The container's processes as host pids: its cgroup's members; without a cgroup (rootless
/// without delegation), every process in the init's own pid namespace; else only the init.
pub fn members(state: &State) -> Vec<i32> {
    if let Some(cg) = &state.cgroup {
        return crate::cgroup::procs(cg);
    }
    let ns = match pid_ns_of(state.pid) {
        Some(ns) if state.own_pid_namespace => ns,
        _ => return vec![state.pid],
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![state.pid];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| pid_ns_of(pid).as_ref() == Some(&ns))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_error_keeps_its_start_and_its_reason() {
        let e = format!(
            "exec \"{}\": no such file or directory",
            "é".repeat(100_000)
        );
        let s = super::shorten(&e, 1000);
        assert!(s.len() < 1100);
        assert!(s.starts_with("exec \"é"));
        assert!(s.ends_with(": no such file or directory"));
        assert!(s.contains("bytes left out"));
    }
}
