//! The container as onggi will make it: the bundle's config.json, loaded and checked once into
//! the typed parts the steps use. The create flow builds one [`Plan`]; the init borrows it; exec
//! builds a [`ProcessPlan`] for the process it adds. The raw spec stays beside the parts only
//! for what is handed on as JSON: state.json's config snapshot and the hooks' state.

use anyhow::{Context, Result};
use oci_spec::runtime::{Linux, LinuxNamespaceType, Process, Spec};
use std::collections::HashMap;

use crate::capabilities::CapSets;
use crate::rootfs::MountPlan;
use crate::spec::Bundle;
use crate::{lsm, scheduling};

/// A loaded bundle, each part parsed.
pub(crate) struct Plan {
    /// The bundle directory, the canonical rootfs and the raw spec.
    pub(crate) bundle: Bundle,
    /// The process to run; None for a config without `process` (it can be created, not started).
    pub(crate) process: Option<ProcessPlan>,
    /// Each entry of `mounts`, in config order: its parsed options and how it is made.
    pub(crate) mounts: Vec<MountPlan>,
    /// `annotations` (empty when the config has none), for state.json and the hooks.
    pub(crate) annotations: HashMap<String, String>,
}

/// One process as it will run: the config's object and what was parsed out of it.
pub(crate) struct ProcessPlan {
    pub(crate) process: Process,
    /// process.capabilities; None leaves the capabilities as they are.
    pub(crate) caps: Option<CapSets>,
    /// Scheduler, I/O priority, CPU affinity, memory policy and personality.
    pub(crate) scheduling: scheduling::Plan,
    /// The AppArmor profile and SELinux label it is exec'd with.
    pub(crate) labels: lsm::ExecLabels,
}

impl Plan {
    /// Loads `<dir>/config.json`, checks it, and parses what the steps need.
    pub(crate) fn load(dir: &std::path::Path) -> Result<Plan> {
        Plan::of(Bundle::load(dir)?)
    }

    /// The parts of a checked bundle.
    pub(crate) fn of(bundle: Bundle) -> Result<Plan> {
        let (process, mounts) = parts(&bundle.spec)?;
        let annotations = bundle.spec.annotations().clone().unwrap_or_default();
        Ok(Plan {
            bundle,
            process,
            mounts,
            annotations,
        })
    }

    /// The config's `linux` object (onggi runs Linux containers only).
    pub(crate) fn linux(&self) -> Option<&Linux> {
        self.bundle.spec.linux().as_ref()
    }

    /// Whether the config asks for a new namespace of type `t`.
    pub(crate) fn new_namespace(&self, t: LinuxNamespaceType) -> bool {
        self.bundle.new_namespace(t)
    }

    /// Whether the config has a namespace of type `t`, new or joined by path.
    pub(crate) fn has_namespace(&self, t: LinuxNamespaceType) -> bool {
        self.bundle.has_namespace(t)
    }

    /// Whether process.terminal asks for a pty.
    pub(crate) fn terminal(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|p| p.process.terminal().unwrap_or(false))
    }
}

/// The process and the mounts of `spec`, parsed (linux.rootfsPropagation is checked with them).
pub(crate) fn parts(spec: &Spec) -> Result<(Option<ProcessPlan>, Vec<MountPlan>)> {
    let linux = spec.linux().as_ref();
    let process = match spec.process() {
        Some(p) => Some(ProcessPlan::new(p.clone(), linux)?),
        None => None,
    };
    // The init is root of a user namespace: its own, or onggi's (rootless podman).
    let userns = linux
        .and_then(|l| l.namespaces().as_deref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User))
        || crate::namespaces::in_user_namespace();
    let mounts = crate::rootfs::plan_mounts(spec.mounts().as_deref().unwrap_or(&[]), userns)?;
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        crate::rootfs::propagation_flag(p)
            .with_context(|| format!("config.json: linux.rootfsPropagation {p:?}"))?;
    }
    Ok((process, mounts))
}

impl ProcessPlan {
    /// Parses `process` (with the container's `linux` for the CPU and memory placement).
    pub(crate) fn new(process: Process, linux: Option<&Linux>) -> Result<ProcessPlan> {
        let scheduling = scheduling::Plan::new(Some(&process), linux)?;
        let labels = lsm::ExecLabels::new(&process)?;
        let caps = process
            .capabilities()
            .as_ref()
            .map(CapSets::from_config)
            .transpose()?;
        Ok(ProcessPlan {
            process,
            caps,
            scheduling,
            labels,
        })
    }
}
