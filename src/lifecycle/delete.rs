//! `delete`: the container's processes, cgroup and state removed; with --force from any
//! status, a create in progress and an unreadable state.json included.

use anyhow::{bail, Context, Result};
use std::os::fd::AsFd;

use super::{wait_exit, LifecycleError};
use crate::hooks::{self, Moment};
use crate::state::{ContainerDir, State, Status, Store, StoreError};
use crate::{sys, trace};
use oci_spec::runtime::Spec;

/// `delete`: removes a stopped container (runtime.md: deleting one that is not stopped is an
/// error); with --force, a live one too, and a create still in progress is killed first.
pub(crate) fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    delete_with(store, id, force, None)
}

/// `delete` with the container's config at hand (`run` has it parsed already); None reads the
/// snapshot in the state directory (once, for the net devices and the poststop hooks).
pub(crate) fn delete_with(
    store: &Store,
    id: &str,
    force: bool,
    config: Option<&Spec>,
) -> Result<()> {
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
        return Err(LifecycleError::DeleteLive(id.into(), status).into());
    }
    let loaded;
    let config = match config {
        Some(c) => Some(c),
        None => {
            loaded = dir.load_config().ok();
            loaded.as_ref()
        }
    };
    // Any init that still lives goes, whatever the status says (a create that died after the
    // clone leaves a stopped container with a live init).
    if let Some(pidfd) = super::open_init(&s)? {
        // Moved devices go home while the container's network namespace still exists.
        let devs = config.map(crate::netdev::devices).unwrap_or_default();
        if !devs.is_empty() {
            if let Err(e) = trace::step("net_devices_back", |c| {
                crate::netdev::move_back(&devs, pidfd.as_fd(), c)
            }) {
                crate::logging::warn(&format!("{id}: {e:#}"));
            }
        }
        super::kill::signal_all(&s, libc::SIGKILL)?;
        kill_init(id, s.pid, pidfd.as_fd())?;
    }
    release_cgroup(&s)?;
    // poststop hooks run once the container is gone (their config read before removal).
    dir.remove()?;
    if let Some(config) = config {
        let st = hooks::HookState::new(id, Status::Stopped, 0, &s.bundle, &s.annotations);
        hooks::run(Moment::Poststop, config, &st.json(), None)?;
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
    if let Some(unit) = &s.systemd_unit {
        return remove_scope(cg, unit);
    }
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

/// `--systemd-cgroup`: what is left in the scope is killed, then systemd stops the unit (which
/// removes its cgroup) and forgets it if it failed (an OOM kill fails a scope).
fn remove_scope(cg: &std::path::Path, unit: &str) -> Result<()> {
    if !crate::cgroup::procs(cg).is_empty() {
        crate::cgroup::kill_all(cg, libc::SIGKILL)?;
    }
    trace::step("systemd_stop", |c| {
        let bus = crate::cgroup::bus::Bus::connect(crate::namespaces::rootless())?;
        bus.stop(unit)?;
        c.note(|| format!("D-Bus StopUnit({unit}) + JobRemoved, ResetFailedUnit({unit})"));
        anyhow::Ok(())
    })?;
    remove_cgroup(cg)
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
    if let Some(unit) = v["systemd_unit"].as_str() {
        if let Some(cg) = v["cgroup"].as_str() {
            remove_scope(std::path::Path::new(cg), unit)?;
            done.push(format!("stopped its systemd unit {unit}"));
        }
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
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let rel =
        crate::cgroup::container_path(path.as_deref(), crate::cgroup::own_cgroup, &dir.id).ok()?;
    Some(crate::cgroup::Cgroup { mount, rel }.dir())
}
