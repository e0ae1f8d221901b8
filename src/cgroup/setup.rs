//! The container's cgroup at create, in two halves: [`plan`] decides where it goes and checks
//! the hierarchy can take the config's limits (nothing is made, so a refusal leaves nothing and
//! the plan can be recorded in the first state.json), and [`make`] creates it, writes the
//! resources and attaches the device filter (steps `cgroup`, `cgroup_resources`,
//! `cgroup_devices`).
//!
//! A cgroup onggi creates is fresh, and the init is cloned straight into it
//! (`clone3(CLONE_INTO_CGROUP)`). A cgroup that existed already may have been killed before
//! (`cgroup.kill` by an earlier container's `kill --all` or `delete --force`), and on this
//! kernel every later `clone3(CLONE_INTO_CGROUP)` into such a cgroup is SIGKILLed at once: the
//! init is then cloned in onggi's cgroup and moved into the container's (`cgroup.procs`) before
//! it is told to go on, as runc does it.
//!
//! With `--systemd-cgroup` the cgroup is a transient scope systemd makes (src/cgroup/systemd.rs):
//! systemd needs a process to start a scope with, so a placeholder (a paused copy of onggi)
//! holds it until the init is cloned straight into the scope's cgroup, then goes (step
//! `systemd_scope`). The files are written as for the cgroupfs driver, and the device filter is
//! onggi's own, as with the cgroupfs driver.

use anyhow::{Context, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroup::bus::Bus;
use crate::cgroup::systemd::{self, Properties, Unit};
use crate::cgroup::{Cgroup, Write};
use crate::spec::Bundle;
use crate::{namespaces, sys, trace};

/// Where the container's cgroup goes and what is written there.
pub(crate) struct Plan {
    cg: Cgroup,
    writes: Vec<Write>,
    controllers: std::collections::BTreeSet<&'static str>,
    /// The directory does not exist yet: onggi will make it (and `delete` remove it).
    pub(crate) create: bool,
    /// `--systemd-cgroup`: the scope and its properties (without the first pid).
    pub(crate) scope: Option<(Unit, Properties)>,
}

impl Plan {
    pub(crate) fn dir(&self) -> PathBuf {
        self.cg.dir()
    }
}

/// The cgroup made for the container.
pub(crate) struct Placed {
    pub(crate) dir: PathBuf,
    pub(crate) created: bool,
    /// The directory, O_RDONLY (for CLONE_INTO_CGROUP and the device filter).
    pub(crate) fd: OwnedFd,
    /// `--systemd-cgroup`: the scope, held by its placeholder until the init is in.
    pub(crate) scope: Option<Scope>,
}

/// A transient scope being made for the container.
pub(crate) struct Scope {
    pub(crate) unit: String,
    holder: Placeholder,
    bus: Bus,
    /// A pids.max of 1 is set once the placeholder has left (it would refuse the init).
    deferred: Option<Write>,
}

impl Placed {
    /// The init is in the cgroup: the placeholder goes (and a deferred pids.max of 1 lands).
    pub(crate) fn entered(&self) -> Result<()> {
        let Some(s) = &self.scope else { return Ok(()) };
        s.holder.end();
        if let Some(wr) = &s.deferred {
            let props = systemd::resource_properties(std::slice::from_ref(wr))?;
            s.bus.set_properties(&s.unit, &props)?;
            std::fs::write(self.dir.join(&wr.file), &wr.value)
                .with_context(|| format!("cannot write {:?} to {}", wr.value, wr.file))?;
        }
        Ok(())
    }
}

/// A paused child of onggi that keeps a new scope from being empty (systemd stops an empty
/// scope at once) until the init is cloned into it. It dies with onggi (PDEATHSIG).
struct Placeholder(sys::Child, std::cell::Cell<bool>);

impl Placeholder {
    fn spawn() -> Result<Placeholder> {
        let child = sys::spawn(0, None, || {
            let _ = sys::set_parent_death_signal(libc::SIGKILL);
            let _ = sys::close_range(3, u32::MAX);
            loop {
                nix::unistd::pause();
            }
        })
        .context("clone3 (the scope's placeholder)")?;
        Ok(Placeholder(child, std::cell::Cell::new(false)))
    }

    fn end(&self) {
        if !self.1.replace(true) {
            let _ = sys::pidfd_send_signal(self.0.pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.0.pid), None);
        }
    }
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        self.end();
    }
}

impl Placed {
    /// The descriptor to clone the init into, or None when it must be moved in by
    /// `cgroup.procs` (a cgroup onggi did not make: see the module doc).
    pub(crate) fn clone_target(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.created.then(|| self.fd.as_fd())
    }
}

/// Where the container's cgroup goes. None when the host has no cgroup v2 hierarchy (or none
/// is delegated to a rootless caller) and the config asks for no resources.
pub(crate) fn plan(bundle: &Bundle, id: &str, systemd: bool) -> Result<Option<Plan>> {
    let linux = bundle.spec.linux().as_ref();
    let writes = match linux.and_then(|l| l.resources().as_ref()) {
        Some(r) => crate::cgroup::resource_writes(r)?,
        None => Vec::new(),
    };
    let mount = match crate::cgroup::v2_mount() {
        Ok(m) => m,
        Err(e) if writes.is_empty() => {
            trace::moment("cgroup", || format!("no cgroup for the container: {e:#}"));
            return Ok(None);
        }
        Err(e) => return Err(e.context("linux.resources needs a cgroup v2 hierarchy")),
    };
    let cgroups_path = linux.and_then(|l| l.cgroups_path().as_deref());
    if systemd {
        return systemd_plan(bundle, id, cgroups_path, mount, writes).map(Some);
    }
    let rel = crate::cgroup::container_path(cgroups_path, crate::cgroup::own_cgroup, id)?;
    let cg = Cgroup { mount, rel };
    if namespaces::rootless() && !delegated(&cg, &writes)? {
        return Ok(None);
    }
    let controllers = cg.check_controllers(&writes)?;
    let create = !cg.dir().exists();
    if !create && !crate::cgroup::procs(&cg.dir()).is_empty() {
        crate::logging::warn(&format!(
            "the cgroup {} has processes already: they share the container's limits",
            cg.dir().display()
        ));
    }
    if !create && crate::cgroup::is_frozen(&cg.dir()) {
        // The init would be frozen before its first instruction, and create would wait for
        // it forever (runc refuses too).
        anyhow::bail!(
            "linux.cgroupsPath: the cgroup {} is frozen (cgroup.freeze = 1): thaw it, or give another cgroupsPath",
            cg.dir().display()
        );
    }
    Ok(Some(Plan {
        cg,
        writes,
        controllers,
        create,
        scope: None,
    }))
}

/// `--systemd-cgroup`: the scope from `slice:prefix:name`, and its properties.
fn systemd_plan(
    bundle: &Bundle,
    id: &str,
    cgroups_path: Option<&std::path::Path>,
    mount: PathBuf,
    writes: Vec<Write>,
) -> Result<Plan> {
    let text = cgroups_path.map(|p| p.to_string_lossy().into_owned());
    let unit = Unit::parse(text.as_deref(), id, namespaces::rootless())?;
    let mut props = systemd::scope_properties(&unit, id, &writes, 0)?;
    props.remove("PIDs");
    if writes
        .iter()
        .any(|w| w.file == "pids.max" && w.value == "1")
    {
        props.remove("TasksMax");
    }
    let annotations = bundle.spec.annotations().clone().unwrap_or_default();
    props.extend(systemd::annotation_properties(&annotations)?);
    let cg = Cgroup {
        mount,
        rel: unit.cgroup(),
    };
    let controllers = cg.check_controllers(&writes)?;
    Ok(Plan {
        cg,
        writes,
        controllers,
        create: true,
        scope: Some((unit, props)),
    })
}

/// Rootless: a cgroup only where the user was delegated one (the nearest existing ancestor is
/// writable); otherwise none, unless the config asks for limits.
fn delegated(cg: &Cgroup, writes: &[Write]) -> Result<bool> {
    let mut parent = cg.dir();
    while !parent.exists() {
        if !parent.pop() {
            break;
        }
    }
    if nix::unistd::access(&parent, nix::unistd::AccessFlags::W_OK).is_ok() {
        return Ok(true);
    }
    if writes.is_empty() {
        trace::moment("cgroup", || {
            format!(
                "not root and {} is not delegated to us: no cgroup for the container",
                parent.display()
            )
        });
        return Ok(false);
    }
    anyhow::bail!(
        "linux.resources: not root, and the cgroup {} is not delegated to uid {} (no write access to {}): remove the limits or give a cgroupsPath under a cgroup you own",
        cg.dir().display(),
        nix::unistd::geteuid(),
        parent.display()
    )
}

/// Creates the cgroup with its resources and device filter, before the clone. On failure,
/// a cgroup it made is removed and a filter it attached to an existing one detached.
/// `pins`: where loaded device programs are kept (src/cgroup/device_pins.rs).
pub(crate) fn make(plan: &Plan, bundle: &Bundle, pins: Option<&Path>) -> Result<Placed> {
    if let Some((unit, props)) = &plan.scope {
        return make_scope(plan, unit, props, bundle, pins);
    }
    let cg = &plan.cg;
    let created = trace::step("cgroup", |c| cg.create(&plan.controllers, c))?;
    let undo = |e: anyhow::Error| {
        if created {
            let _ = crate::cgroup::remove(&cg.dir());
        } else {
            let _ = crate::cgroup::device_filter::detach_ours(&cg.dir());
        }
        e
    };
    trace::step("cgroup_resources", |c| cg.apply(&plan.writes, c)).map_err(undo)?;
    let fd = cg.open().map_err(undo)?;
    if namespaces::rootless() {
        // Loading a BPF_PROG_TYPE_CGROUP_DEVICE program needs CAP_BPF/CAP_SYS_ADMIN on the
        // host. A rootless container cannot make device nodes anyway (its user namespace
        // refuses mknod; it gets binds of host nodes its user may open), so, as runc does,
        // no device program.
        trace::moment("cgroup_devices", || {
            "not root: no device program (the user namespace already refuses mknod)".into()
        });
    } else {
        trace::step("cgroup_devices", |c| {
            attach_devices(bundle, fd.as_fd(), pins, c)
        })
        .map_err(undo)?;
    }
    Ok(Placed {
        dir: cg.dir(),
        created,
        fd,
        scope: None,
    })
}

/// `--systemd-cgroup`: the transient scope, held by a placeholder, with the resources and the
/// device filter. On failure the unit is stopped (which removes its cgroup).
fn make_scope(
    plan: &Plan,
    unit: &Unit,
    props: &Properties,
    bundle: &Bundle,
    pins: Option<&Path>,
) -> Result<Placed> {
    let bus = Bus::connect(namespaces::rootless())?;
    let holder = trace::step("systemd_scope", |c| {
        let holder = Placeholder::spawn()?;
        let mut props = props.clone();
        props.insert(
            "PIDs".into(),
            systemd::Value::Pids(vec![holder.0.pid as u32]),
        );
        bus.start_scope(&unit.name, &props)?;
        c.note(|| {
            format!(
                "D-Bus StartTransientUnit({}, Slice={}, Delegate=yes, {} properties, PIDs=[placeholder {}]) + JobRemoved",
                unit.name,
                unit.slice,
                props.len(),
                holder.0.pid
            )
        });
        anyhow::Ok(holder)
    })?;
    let cg = &plan.cg;
    let (deferred, now): (Vec<&Write>, Vec<&Write>) = plan
        .writes
        .iter()
        .partition(|w| w.file == "pids.max" && w.value == "1");
    let fill = |c: &mut trace::Calls| -> Result<OwnedFd> {
        // What systemd does not manage (hugetlb, rdma, misc) is enabled by onggi.
        cg.enable(&plan.controllers, c)?;
        let now: Vec<Write> = now.iter().map(|w| (*w).clone()).collect();
        cg.apply(&now, c)?;
        cg.open()
    };
    let fd = match trace::step("cgroup_resources", fill) {
        Ok(fd) => fd,
        Err(e) => {
            drop(holder);
            let _ = bus.stop(&unit.name);
            return Err(e);
        }
    };
    if !namespaces::rootless() {
        if let Err(e) = trace::step("cgroup_devices", |c| {
            attach_devices(bundle, fd.as_fd(), pins, c)
        }) {
            drop(holder);
            let _ = bus.stop(&unit.name);
            return Err(e);
        }
    }
    Ok(Placed {
        dir: cg.dir(),
        created: true,
        fd,
        scope: Some(Scope {
            unit: unit.name.clone(),
            holder,
            bus,
            deferred: deferred.first().map(|w| (*w).clone()),
        }),
    })
}

fn attach_devices(
    bundle: &Bundle,
    fd: std::os::fd::BorrowedFd<'_>,
    pins: Option<&Path>,
    c: &mut trace::Calls,
) -> Result<()> {
    let linux = bundle.spec.linux().as_ref();
    let resources = linux.and_then(|l| l.resources().as_ref());
    let rules = crate::cgroup::device_filter::rules(
        resources
            .and_then(|r| r.devices().as_deref())
            .unwrap_or(&[]),
        linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]),
    )?;
    let prog = crate::cgroup::device_filter::compile(&rules);
    c.note(|| format!("{} rules, {} insns", rules.len(), prog.len()));
    crate::cgroup::device_filter::attach(fd, &prog, pins, c)?;
    c.note(|| "bpf(BPF_PROG_ATTACH)".into());
    Ok(())
}

/// Moves the init into a cgroup it could not be cloned into (see the module doc), while it
/// waits for Go: it has run nothing of the container yet.
pub(crate) fn join(placed: &Placed, pid: i32) -> Result<()> {
    trace::step("cgroup_join", |c| {
        let procs = placed.dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .with_context(|| format!("cannot move the init into {}", procs.display()))?;
        c.note(|| format!("write {} = {pid}", procs.display()));
        anyhow::Ok(())
    })
}
