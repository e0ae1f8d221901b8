//! The container's root filesystem: propagation, the rootfs bind, the config's mounts in order,
//! /dev and its devices, masked and read-only paths, pivot_root, and the read-only root.
//!
//! Safety rules (see shared/security/checklist.md rows 4, 6, 7, 8, 13, 14, 16):
//! * every path inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT) from a descriptor of
//!   the rootfs, so no symlink can lead outside it;
//! * missing mount targets are created with mkdirat/openat on an already-resolved parent fd;
//! * mounts go onto the resolved descriptor (`/proc/self/fd/N` of the verified host procfs, or
//!   move_mount onto the fd), never onto a path string resolved again;
//! * proc and sysfs must not land on a symlink, and their filesystem type is checked after mounting;
//! * masked files are covered with the host's /dev/null, opened and checked (char 1:3) before.

mod copyup;
mod dev;
mod idmap;
mod locked;
mod mount;
mod options;
mod paths;
mod pivot;
mod resolve;

use anyhow::{Context, Result};
use oci_spec::runtime::Spec;
use std::os::fd::AsFd;
use std::path::Path;

use crate::sys;
use crate::trace;
pub(crate) use idmap::IdmapUserns;
pub(crate) use options::{parse_options, propagation_flag, MountOptions};
pub(crate) use pivot::chroot_only;
pub(crate) use resolve::{ensure_in_root, TargetKind};

use dev::{create_device, setup_dev};
use mount::mount_one;
use paths::{mask_path, readonly_path};
use pivot::{bind_rootfs, move_root, pivot_root, prepare_propagation};
use resolve::cwd;

/// What the mounts need to know about the container besides its config.
pub(crate) struct MountContext<'a> {
    /// The container has a user namespace (new or joined): mknod is refused, host mount flags
    /// are locked, sysfs and cgroup2 need namespaces owned by it.
    pub(crate) userns: bool,
    /// The container has a cgroup namespace of its own.
    pub(crate) cgroupns: bool,
    /// The container's cgroup directory on the host, if it has one.
    pub(crate) cgroup: Option<&'a Path>,
    /// The user namespaces of idmapped mounts (made by onggi), by mount index.
    pub(crate) idmaps: &'a IdmapUserns,
    /// The rootfs and bind sources onggi opened for us (see src/sources.rs).
    pub(crate) sources: &'a crate::sources::Received,
    /// Each mount's parsed options, by mount index.
    pub(crate) options: &'a [MountOptions],
}

/// The whole rootfs setup, in order. Runs in the init, inside its new mount namespace.
pub(crate) fn setup(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    no_pivot: bool,
    cx: &MountContext<'_>,
    before_pivot: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let userns = cx.userns;
    let linux = spec.linux().as_ref();
    let root_prop = linux.and_then(|l| l.rootfs_propagation().as_deref());
    trace::step("rootfs_propagation", |c| {
        prepare_propagation(rootfs, root_prop, c)
    })?;
    let root = trace::step("rootfs_bind", |c| {
        bind_rootfs(rootfs, cx.sources.rootfs(), c)
    })?;
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let mount_label = linux.and_then(|l| l.mount_label().as_deref());
    trace::step("mounts", |c| {
        for (i, m) in mounts.iter().enumerate() {
            mount_one(root.as_fd(), bundle, (i, m), cx, mount_label, c)
                .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let dev = mounts.iter().find(|m| m.destination() == Path::new("/dev"));
    let dev_is_bind = dev.is_some_and(|m| {
        m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
    });
    if !dev_is_bind {
        trace::step("dev", |c| setup_dev(root.as_fd(), dev.is_none(), userns, c))?;
    }
    let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    trace::step("devices", |c| {
        devices
            .iter()
            .try_for_each(|d| create_device(root.as_fd(), d, userns, c))
    })?;
    let masked = linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or(&[]);
    trace::step("masked_paths", |c| {
        masked
            .iter()
            .try_for_each(|p| mask_path(root.as_fd(), p, c))
    })?;
    let ro = linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or(&[]);
    trace::step("readonly_paths", |c| {
        ro.iter()
            .try_for_each(|p| readonly_path(root.as_fd(), p, c))
    })?;
    // createContainer hooks: the container's namespaces and mounts exist, the root is not
    // switched yet (their paths resolve on the host).
    before_pivot()?;
    if no_pivot {
        trace::step("chroot", |c| move_root(rootfs, c))?;
    } else {
        trace::step("pivot_root", |c| pivot_root(root.as_fd(), c))?;
    }
    drop(root);
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    if readonly {
        trace::step("root_readonly", |c| {
            let slash = sys::openat2(
                cwd(),
                Path::new("/"),
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                0,
            )?;
            sys::mount_setattr(slash.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)?;
            c.note(|| "mount_setattr(/, MOUNT_ATTR_RDONLY)".into());
            Ok::<_, std::io::Error>(())
        })
        .context("cannot make the root filesystem read-only")?;
    }
    if let Some(p) = root_prop {
        trace::step("root_propagation_final", |c| {
            let flag = propagation_flag(p)?;
            sys::mount(None, Path::new("/"), None, flag, None)
                .with_context(|| format!("linux.rootfsPropagation {p:?}: cannot apply to /"))?;
            c.note(|| format!("mount(/, {p})"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    Ok(())
}
