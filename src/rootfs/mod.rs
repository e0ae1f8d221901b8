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
mod plan;
mod resolve;
pub(crate) mod template;

use anyhow::{Context, Result};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::sys;
use crate::trace;
pub(crate) use dev::reopen_dev_null_stdio;
pub(crate) use idmap::IdmapUserns;
pub(crate) use options::{known_options, propagation_flag};
pub(crate) use pivot::chroot_only;
pub(crate) use plan::{plan, plan_mounts, MountPlan, Op};
pub(crate) use resolve::{ensure_in_root, TargetKind};

use dev::{create_device, setup_dev};
use mount::mount_one;
use paths::{mask_path, readonly_path};
use pivot::{bind_rootfs, move_root, pivot_root, prepare_propagation};
use resolve::cwd;

/// What the mounts need to know about the container besides its config.
pub(crate) struct MountContext<'a> {
    /// The container has a user namespace (new or joined): mknod is refused, host mount flags
    /// are locked.
    pub(crate) userns: bool,
    /// The container has a cgroup namespace of its own.
    pub(crate) cgroupns: bool,
    /// The container's cgroup directory on the host, if it has one.
    pub(crate) cgroup: Option<&'a Path>,
    /// The user namespaces of idmapped mounts (made by onggi), by mount index.
    pub(crate) idmaps: &'a IdmapUserns,
    /// The rootfs and bind sources onggi opened for us (see src/sources.rs).
    pub(crate) sources: &'a crate::sources::Received,
    /// The bundle directory (relative bind sources are below it).
    pub(crate) bundle: &'a Path,
    /// linux.mountLabel.
    pub(crate) mount_label: Option<&'a str>,
    /// The mount template's namespace, when the container uses it (template.rs).
    pub(crate) template: Option<BorrowedFd<'a>>,
    /// The bind sources cloned before entering the template, by mount index.
    pub(crate) trees: &'a template::Trees,
}

/// Runs the root filesystem plan (see plan.rs) in the init, inside its new mount namespace:
/// each operation as the trace step of its name. `before_pivot` runs the createContainer hooks.
pub(crate) fn setup(
    ops: &[Op<'_>],
    rootfs: &Path,
    cx: &MountContext<'_>,
    before_pivot: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let mut root = None;
    let mut trees = template::Trees::default();
    for op in ops {
        let name = op.step();
        match op {
            Op::TemplateRoot(p) => {
                let (tree, t) = trace::step(name, |c| template::enter(ops, rootfs, *p, cx, c))?;
                root = Some(tree);
                trees = t;
            }
            Op::RootfsPropagation(p) => {
                trace::step(name, |c| prepare_propagation(rootfs, *p, c))?;
            }
            Op::RootfsBind => {
                root = Some(trace::step(name, |c| {
                    bind_rootfs(rootfs, cx.sources.rootfs(), c)
                })?);
            }
            Op::CreateContainerHooks => before_pivot()?,
            Op::MoveRoot => {
                trace::step(name, |c| move_root(rootfs, c))?;
                root = None;
            }
            Op::CwdCreate(dir) => create_cwd(dir)?,
            Op::RootReadonly => make_readonly("root_readonly", "/")?,
            Op::DevReadonly => make_readonly("dev_readonly", "/dev")?,
            Op::RootPropagation(p) => {
                trace::step(name, |c| {
                    let flag = propagation_flag(p)?;
                    sys::mount(None, Path::new("/"), None, flag, None).with_context(|| {
                        format!("linux.rootfsPropagation {p:?}: cannot apply to /")
                    })?;
                    c.note(|| format!("mount(/, {p})"));
                    Ok::<_, anyhow::Error>(())
                })?;
            }
            op => {
                let dir = root.as_ref().context("the rootfs is not bound yet")?;
                let cx = MountContext {
                    trees: &trees,
                    ..*cx
                };
                in_root(op, dir.as_fd(), &cx)?;
                if matches!(op, Op::PivotRoot) {
                    root = None;
                }
            }
        }
    }
    Ok(())
}

/// The operations that work on the rootfs through its descriptor `root`.
fn in_root(op: &Op<'_>, root: BorrowedFd<'_>, cx: &MountContext<'_>) -> Result<()> {
    let name = op.step();
    let userns = cx.userns;
    match op {
        Op::Mounts(mounts) => trace::step(name, |c| {
            mounts.iter().try_for_each(|m| {
                mount_one(root, m, cx, c).with_context(|| {
                    format!("mounts[{}] ({})", m.index, m.mount.destination().display())
                })
            })
        }),
        Op::Dev { mount_tmpfs } => trace::step(name, |c| setup_dev(root, *mount_tmpfs, userns, c)),
        Op::Devices(devices) => trace::step(name, |c| {
            devices
                .iter()
                .try_for_each(|d| create_device(root, d, userns, c))
        }),
        Op::MaskedPaths(paths) => trace::step(name, |c| {
            paths.iter().try_for_each(|p| mask_path(root, p, c))
        }),
        Op::ReadonlyPaths(paths) => trace::step(name, |c| {
            paths.iter().try_for_each(|p| readonly_path(root, p, c))
        }),
        Op::PivotRoot => trace::step(name, |c| pivot_root(root, c)),
        other => unreachable!("{other:?} is not an in-root operation"),
    }
}

/// process.cwd made in the new root if it is missing (trace step `cwd_create`), resolved in
/// the root: a symlink cannot lead it out.
pub(crate) fn create_cwd(dir: &Path) -> Result<()> {
    trace::step("cwd_create", |_| {
        let root = resolve::current_root()?;
        ensure_in_root(root.as_fd(), dir, TargetKind::Dir).map(|_| ())
    })
    .with_context(|| format!("process.cwd {}", dir.display()))
}

/// The mount at `path` (of the new root) made read-only, as trace step `step`: a read-only
/// /dev once its nodes and submounts exist (`dev_readonly`), root.readonly (`root_readonly`).
fn make_readonly(step: &'static str, path: &str) -> Result<()> {
    trace::step(step, |c| {
        let fd = sys::openat2(
            cwd(),
            Path::new(path),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_NO_SYMLINKS,
        )?;
        sys::mount_setattr(fd.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)?;
        c.note(|| format!("mount_setattr({path}, MOUNT_ATTR_RDONLY)"));
        Ok::<_, std::io::Error>(())
    })
    .with_context(|| format!("cannot make {path} read-only"))
}
