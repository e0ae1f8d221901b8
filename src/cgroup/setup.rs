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

use anyhow::{Context, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::cgroup::{Cgroup, Write};
use crate::spec::Bundle;
use crate::{namespaces, trace};

/// Where the container's cgroup goes and what is written there.
pub(crate) struct Plan {
    cg: Cgroup,
    writes: Vec<Write>,
    controllers: std::collections::BTreeSet<&'static str>,
    /// The directory does not exist yet: onggi will make it (and `delete` remove it).
    pub(crate) create: bool,
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
pub(crate) fn plan(bundle: &Bundle, id: &str) -> Result<Option<Plan>> {
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
    let own = crate::cgroup::own_cgroup()?;
    let rel =
        crate::cgroup::container_path(linux.and_then(|l| l.cgroups_path().as_deref()), &own, id)?;
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
    }))
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
pub(crate) fn make(plan: &Plan, bundle: &Bundle) -> Result<Placed> {
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
        trace::step("cgroup_devices", |c| attach_devices(bundle, fd.as_fd(), c)).map_err(undo)?;
    }
    Ok(Placed {
        dir: cg.dir(),
        created,
        fd,
    })
}

fn attach_devices(
    bundle: &Bundle,
    fd: std::os::fd::BorrowedFd<'_>,
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
    crate::cgroup::device_filter::attach(fd, &prog)?;
    c.note(|| {
        format!(
            "bpf(BPF_PROG_LOAD, CGROUP_DEVICE, {} rules, {} insns) + bpf(BPF_PROG_ATTACH)",
            rules.len(),
            prog.len()
        )
    });
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
