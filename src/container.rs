//! The lifecycle commands after create: start, state, kill, delete, list, and run (create +
//! start + wait), as runc's CLI does them.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::process::{self, CreateOptions};
use crate::state::{ContainerDir, State, Status, Store, StoreError};
use crate::{signal, spec, sys, trace};

/// Opens a container that must have a state.json.
fn open(store: &Store, id: &str) -> Result<(ContainerDir, State)> {
    let dir = store.get(id)?;
    match dir.load()? {
        Some(s) => Ok((dir, s)),
        None => Err(StoreError::NotExist(id.to_string()).into()),
    }
}

/// `start`: releases the init waiting at the gate, and returns at once.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let (dir, state) = open(store, id)?;
    match dir.status(&state) {
        Status::Created => {}
        Status::Stopped => bail!("{id}: cannot start a container that has stopped"),
        Status::Running | Status::Paused => {
            bail!("{id}: cannot start an already running container")
        }
        Status::Creating => bail!("{id}: the container is still being created"),
    }
    // Without `process` there is nothing to run: start fails (runtime.md: "MUST generate an
    // error if process was not set"), and the idle init is released so the container stops.
    trace::step("start_gate", |c| {
        open_gate(&dir)?;
        c.note(|| "write(exec.fifo, \"0\")".into());
        Ok::<_, anyhow::Error>(())
    })?;
    if !state.has_process {
        bail!("{id}: config.json has no process: there was nothing to start, the container has stopped");
    }
    if let Some(h) = dir
        .load_config()?
        .hooks()
        .as_ref()
        .filter(|h| h.poststart().as_ref().is_some_and(|v| !v.is_empty()))
    {
        // poststart runs after the user process was executed: wait (up to 10 s) until the
        // init's image is no longer onggi's.
        let me = std::fs::read_link("/proc/self/exe").ok();
        for _ in 0..10_000 {
            let now = std::fs::read_link(format!("/proc/{}/exe", state.pid)).ok();
            if now.is_none() || now != me {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let st = crate::hooks::HookState::new(
            id,
            Status::Running,
            state.pid,
            &state.bundle,
            &state.annotations,
        );
        crate::hooks::run_all_warn(
            "poststart",
            h.poststart().as_deref().unwrap_or(&[]),
            &st.json(),
        );
    }
    Ok(())
}

/// Opens the gate and releases the init waiting behind it.
fn open_gate(dir: &ContainerDir) -> Result<()> {
    let gate = dir.gate_path();
    // O_NONBLOCK: if the init is gone there is no reader and open fails (ENXIO) at once.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&gate)
        .with_context(|| {
            format!(
                "{}: the container init is not waiting at its start gate",
                dir.id
            )
        })?;
    // Unlinked first, so `state` never reports "created" for a started container.
    std::fs::remove_file(&gate).context("cannot remove exec.fifo")?;
    f.write_all(b"0").context("cannot write to exec.fifo")?;
    Ok(())
}

/// The OCI state of a container, with runc's extra fields (rootfs, created, owner: empty here,
/// as in runc's `state`; `list` fills it in).
pub fn oci_state(dir: &ContainerDir, s: &State) -> serde_json::Value {
    let status = dir.status(s);
    let pid = if status == Status::Stopped { 0 } else { s.pid };
    serde_json::json!({
        "ociVersion": spec::OCI_VERSION,
        "id": s.id,
        "pid": pid,
        "status": status.to_string(),
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": "",
        "annotations": s.annotations,
    })
}

/// `state`: the OCI state JSON on stdout. Reads only: never waits for another command.
pub fn state(store: &Store, id: &str) -> Result<()> {
    let dir = store.peek(id)?;
    let s = dir
        .load()?
        .ok_or_else(|| StoreError::NotExist(id.to_string()))?;
    let v = oci_state(&dir, &s);
    crate::logging::print(&serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `kill`: a signal to the init (or, with --all, to every process of the container). Signal 0
/// only checks that the container runs, as with runc.
pub fn kill(store: &Store, id: &str, sig: &str, all: bool) -> Result<()> {
    let sig = if sig == "0" { 0 } else { signal::parse(sig)? };
    let all = all && sig != 0;
    let (dir, s) = open(store, id)?;
    let status = dir.status(&s);
    if status == Status::Stopped {
        if all {
            return Ok(());
        }
        bail!("{id}: container not running");
    }
    let Some(pidfd) = process::open_init(&s)? else {
        if all {
            return Ok(());
        }
        bail!("{id}: container not running");
    };
    if all {
        signal_all(&s, sig)?;
    }
    match sys::pidfd_send_signal(pidfd.as_fd(), sig) {
        Ok(()) => Ok(()),
        // Gone since we looked: after --all that is success, else it was not running.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            if all {
                Ok(())
            } else {
                bail!("{id}: container not running")
            }
        }
        Err(e) => Err(e)
            .with_context(|| format!("{id}: cannot send {} to pid {}", signal::name(sig), s.pid)),
    }
}

/// Every process of the container: through its cgroup (cgroup.kill for SIGKILL; freeze,
/// signal each, thaw otherwise), else through its own pid namespace, else only the init.
fn signal_all(s: &State, sig: i32) -> Result<()> {
    if let Some(cg) = &s.cgroup {
        return crate::cgroup::kill_all(cg, sig);
    }
    if !s.own_pid_namespace {
        crate::logging::warn(&format!(
            "{}: no cgroup and no pid namespace of its own: kill --all reaches only the init",
            s.id
        ));
        return Ok(());
    }
    let Some(ns) = process::pid_ns_of(s.pid) else {
        return Ok(());
    };
    for pid in process::members(s) {
        if pid == s.pid {
            continue;
        }
        let Ok(fd) = sys::pidfd_open(pid) else {
            continue;
        };
        // Checked after the pidfd is open, so the pid cannot be another process by now.
        if process::pid_ns_of(pid).as_ref() == Some(&ns) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), sig);
        }
    }
    Ok(())
}

/// Why a container may have no cgroup: said in the errors of what needs one.
pub fn no_cgroup_reason() -> String {
    let uid = nix::unistd::geteuid();
    if !crate::namespaces::rootless() {
        "this host has no cgroup v2 hierarchy".into()
    } else {
        format!("onggi runs rootless and no cgroup was delegated to uid {uid}")
    }
}

/// `pause` / `resume`: freeze or thaw the container's cgroup.
pub fn pause(store: &Store, id: &str, on: bool) -> Result<()> {
    let (dir, s) = open(store, id)?;
    let Some(cg) = &s.cgroup else {
        bail!(
            "{id}: the container has no cgroup ({}): cannot pause",
            no_cgroup_reason()
        );
    };
    match (dir.status(&s), on) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (Status::Paused, true) => bail!("{id}: container already paused"),
        (other, true) => bail!("{id}: container not running ({other})"),
        (other, false) => bail!("{id}: container not paused ({other})"),
    }
    trace::step(if on { "pause" } else { "resume" }, |c| {
        crate::cgroup::freeze(cg, on)?;
        c.note(|| format!("write {}/cgroup.freeze = {}", cg.display(), u8::from(on)));
        Ok::<_, anyhow::Error>(())
    })
}

/// Waits (up to `secs`) for the process behind `pidfd` to exit.
fn wait_exit(pidfd: std::os::fd::BorrowedFd<'_>, secs: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(secs.saturating_mul(1000))), Ok(n) if n > 0)
}

/// `delete`: removes a stopped container (runtime.md: deleting one that is not stopped is an
/// error); with --force, a live one too, and a create still in progress is killed first.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let dir = match lock_for_delete(store, id, force) {
        Ok(d) => d,
        Err(e) if force && matches!(e.downcast_ref(), Some(StoreError::NotExist(_))) => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let s = match dir.load() {
        Ok(Some(s)) => s,
        // A create that died before writing its first record: nothing else was made.
        Ok(None) => return dir.remove(),
        Err(e) if force => return delete_unreadable(dir, e),
        Err(e) => bail!("{e:#} (`delete --force {id}` removes it)"),
    };
    let status = dir.status(&s);
    if !force && status != Status::Stopped {
        bail!("{id}: cannot delete a container that is not stopped (it is {status}); use --force");
    }
    // Any init that still lives goes, whatever the status says (a create that died after the
    // clone leaves a stopped container with a live init).
    if let Some(pidfd) = process::open_init(&s)? {
        // Moved devices go home while the container's network namespace still exists.
        let devs = dir
            .load_config()
            .map(|spec| crate::netdev::devices(&spec))
            .unwrap_or_default();
        if !devs.is_empty() {
            if let Err(e) = trace::step("net_devices_back", |c| {
                crate::netdev::move_back(&devs, pidfd.as_fd(), c)
            }) {
                crate::logging::warn(&format!("{id}: {e:#}"));
            }
        }
        signal_all(&s, libc::SIGKILL)?;
        kill_init(id, s.pid, pidfd.as_fd())?;
    }
    release_cgroup(&s)?;
    // poststop hooks run once the container is gone (their config read before removal).
    let poststop = dir
        .load_config()
        .ok()
        .and_then(|c| c.hooks().as_ref().and_then(|h| h.poststop().clone()));
    dir.remove()?;
    if let Some(hooks) = poststop {
        let st = crate::hooks::HookState::new(id, Status::Stopped, 0, &s.bundle, &s.annotations);
        crate::hooks::run_all_warn("poststop", &hooks, &st.json());
    }
    Ok(())
}

/// The container's directory, locked. With --force, a create still in progress is killed
/// first (its lock goes with it), so `delete --force` ends in bounded time.
fn lock_for_delete(store: &Store, id: &str, force: bool) -> Result<ContainerDir> {
    match store.get(id) {
        Err(e) if force && matches!(e.downcast_ref(), Some(StoreError::BeingCreated { .. })) => {
            let creator = store
                .peek(id)?
                .load()
                .ok()
                .flatten()
                .and_then(|s| s.creator);
            if let Some(pidfd) = creator.map(|c| c.open()).transpose()?.flatten() {
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                if !wait_exit(pidfd.as_fd(), 10) {
                    bail!("{id}: the onggi creating it did not die within 10 s of SIGKILL");
                }
            }
            store.get(id)
        }
        r => r,
    }
}

/// What the container's cgroup needs at delete: removed if onggi made it (with anything still
/// in it), else onggi's device filter detached from it.
fn release_cgroup(s: &State) -> Result<()> {
    let Some(cg) = s.cgroup.as_deref() else {
        return Ok(());
    };
    if s.cgroup_created {
        return remove_cgroup(cg);
    }
    trace::step("cgroup_devices_detach", |c| {
        let n = crate::cgroup::device_filter::detach_ours(cg)?;
        c.note(|| format!("bpf(BPF_PROG_DETACH) x{n} on {}", cg.display()));
        anyhow::Ok(())
    })
}

/// SIGKILL to the init through its pidfd, and wait (at most 10 s) until it is gone.
fn kill_init(id: &str, pid: i32, pidfd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    match sys::pidfd_send_signal(pidfd, libc::SIGKILL) {
        // cgroup.kill may have been faster.
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
            return Err(e).context("cannot kill the init")
        }
        _ => {}
    }
    if !wait_exit(pidfd, 10) {
        bail!("{id}: the init (pid {pid}) did not die within 10 s of SIGKILL");
    }
    Ok(())
}

/// Removes a cgroup onggi made, killing first what is still in it (processes the init left
/// behind when it had no pid namespace of its own go with the container).
fn remove_cgroup(cg: &std::path::Path) -> Result<()> {
    if !crate::cgroup::procs(cg).is_empty() {
        crate::cgroup::kill_all(cg, libc::SIGKILL)?;
    }
    trace::step("cgroup_remove", |c| {
        crate::cgroup::remove(cg)?;
        c.note(|| format!("rmdir {}", cg.display()));
        Ok::<_, anyhow::Error>(())
    })
}

/// `delete --force` of a container whose state.json onggi cannot read (truncated, empty, or
/// written by an incompatible onggi): it is cleaned up from what is still known — the init if
/// the file still names a process with that pid and start time, every process of the cgroup
/// the saved config places it in (killed, and the cgroup removed) — and only then the directory
/// goes. When nothing tells where its processes are, it is refused and the directory kept:
/// never a success while the container may still run.
fn delete_unreadable(dir: crate::state::ContainerDir, err: anyhow::Error) -> Result<()> {
    let v: serde_json::Value = std::fs::read(dir.path.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut done = Vec::new();
    let pid = v["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
    let init = match (pid, v["pid_start_time"].as_u64()) {
        (Some(pid), Some(start_time)) => Some(crate::state::ProcessId { pid, start_time }),
        _ => None,
    };
    if let Some(pidfd) = init.map(|i| i.open()).transpose()?.flatten() {
        kill_init(&dir.id, init.map_or(0, |i| i.pid), pidfd.as_fd())?;
        done.push(format!(
            "killed its init (pid {})",
            init.map_or(0, |i| i.pid)
        ));
    }
    let cg = v["cgroup"]
        .as_str()
        .map(std::path::PathBuf::from)
        .or_else(|| configured_cgroup(&dir));
    match cg.filter(|cg| cg.exists()) {
        Some(cg) => {
            remove_cgroup(&cg)?;
            done.push(format!("killed what ran in {} and removed it", cg.display()));
        }
        None if init.is_none() && cgroups_possible() => {}
        None if init.is_none() => bail!(
            "{err:#}, and it names no process and no cgroup: onggi cannot tell whether the container still runs; stop it yourself, then remove {}",
            dir.path.display()
        ),
        None => {}
    }
    done.push("removed its state directory".into());
    crate::logging::warn(&format!("{err:#}: {}", done.join(", ")));
    dir.remove()
}

/// On a host with a cgroup v2 hierarchy as root, every container onggi creates has a cgroup:
/// none where the config puts it means none was made (or it is gone with its processes).
fn cgroups_possible() -> bool {
    !crate::namespaces::rootless() && crate::cgroup::v2_mount().is_ok()
}

/// The cgroup the saved config places the container in (as create computes it).
fn configured_cgroup(dir: &crate::state::ContainerDir) -> Option<std::path::PathBuf> {
    let spec = dir.load_config().ok()?;
    let mount = crate::cgroup::v2_mount().ok()?;
    let own = crate::cgroup::own_cgroup().ok()?;
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let rel = crate::cgroup::container_path(path.as_deref(), &own, &dir.id).ok()?;
    Some(crate::cgroup::Cgroup { mount, rel }.dir())
}

/// `list`.
pub fn list(store: &Store, quiet: bool, json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for id in store.ids()? {
        let Ok(dir) = store.peek(&id) else { continue };
        let s = match dir.load() {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                // As runc: said on stderr, the others are still listed.
                crate::logging::warn(&format!("{e:#} (`delete --force {id}` removes it)"));
                continue;
            }
        };
        let mut v = oci_state(&dir, &s);
        // The owner's name is looked up here only (NSS is too slow for every create).
        v["owner"] = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(s.owner_uid))
            .ok()
            .flatten()
            .map_or_else(|| s.owner_uid.to_string(), |u| u.name)
            .into();
        rows.push(v);
    }
    let mut out = String::new();
    if quiet {
        for r in &rows {
            writeln!(out, "{}", r["id"].as_str().unwrap_or_default())?;
        }
    } else if json {
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
    } else {
        let table: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                let f = |k: &str| match &r[k] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                [
                    f("id"),
                    f("pid"),
                    f("status"),
                    f("bundle"),
                    f("created"),
                    f("owner"),
                ]
            })
            .collect();
        let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
        let mut widths = head.clone().map(|h| h.len());
        for row in &table {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.len());
            }
        }
        for row in std::iter::once(&head).chain(table.iter()) {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            writeln!(out, "{}", line.join("   ").trim_end())?;
        }
    }
    if !out.is_empty() {
        crate::logging::print(out.trim_end_matches('\n'));
    }
    Ok(())
}

/// `run`: create, start, and (unless detached) wait, relaying signals to the container, then
/// delete it (unless `--keep`) and return its exit code (128+N when a signal killed it).
pub fn run(store: &Store, o: &CreateOptions<'_>, detach: bool, keep: bool) -> Result<i32> {
    let relay = if detach {
        None
    } else {
        Some(signal::Relay::block().context("sigprocmask")?)
    };
    // In the foreground without a --console-socket, a terminal's master comes back to us.
    let pair = match (&relay, o.console_socket) {
        (Some(_), None) => Some(std::os::unix::net::UnixStream::pair().context("socketpair")?),
        _ => None,
    };
    let o = &CreateOptions {
        terminal_relay: pair.as_ref().map(|(ours, _)| ours),
        ..*o
    };
    let created = process::create(store, o)?;
    let master = match (&pair, created.relayed_terminal) {
        (Some((_, theirs)), true) => match crate::console::receive(theirs) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete(store, o.id, true);
                return Err(e);
            }
        },
        _ => None,
    };
    if let Err(e) = start(store, o.id) {
        let _ = delete(store, o.id, true);
        return Err(e);
    }
    let Some(relay) = relay else { return Ok(0) };
    let code = match master {
        Some(m) => crate::console::relay(&relay, created.pid, created.pidfd.as_fd(), m)?,
        None => relay
            .wait(created.pid, created.pidfd.as_fd())
            .context("waiting for the container")?,
    };
    if !keep {
        delete(store, o.id, true)?;
    }
    Ok(code)
}

/// `features`: what this build really supports (runtime-spec features.md).
pub fn features() -> serde_json::Value {
    let caps: Vec<String> = {
        let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "idmap", "iversion",
            "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion",
            "nolazytime", "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow",
            "private", "ratime", "rbind", "rdev", "rdiratime", "relatime", "rexec", "ridmap", "rnoatime",
            "rnodev", "rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime", "rnosuid",
            "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw", "rshared", "rslave",
            "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw", "shared", "silent",
            "slave", "strictatime", "suid", "sync", "tmpcopyup", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": false, "v2": true, "systemd": false, "systemdUser": false, "rdma": true },
            "seccomp": crate::seccomp::features(),
            "apparmor": { "enabled": crate::lsm::apparmor_enabled() },
            "selinux": { "enabled": crate::lsm::selinux_enabled() },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": true } },
            "netDevices": { "enabled": true },
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                          "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            }
        },
        "annotations": {
            "io.github.onggi.version": env!("CARGO_PKG_VERSION"),
            "io.github.onggi.process-model": "clone3, no re-exec",
            "io.github.onggi.supported-fields": "process.scheduler, process.ioPriority, process.execCPUAffinity, linux.personality, linux.memoryPolicy, linux.domainname, linux.timeOffsets, linux.netDevices"
        }
    })
}

/// `spec`: writes the default config.json into `dir`; refuses to overwrite one.
pub fn write_spec(dir: &std::path::Path, rootless: bool) -> Result<()> {
    let path = dir.join("config.json");
    let config = if rootless {
        spec::rootless_config(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        spec::default_config()
    };
    let text = serde_json::to_string_pretty(&config)? + "\n";
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{} exists already: remove it first", path.display())
            } else {
                anyhow::anyhow!("cannot create {}: {e}", path.display())
            }
        })?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
