//! One entry of `mounts`: the new mount API first (fsopen/open_tree, mount_setattr,
//! move_mount onto the resolved target), the fallbacks a user namespace needs (sysfs and cgroup2
//! as host binds), and recursive binds.

use anyhow::{bail, Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use super::copyup::copy_tree;
use super::locked::locked_flags_error;
use super::options::{flags_to_attrs, Idmap, MountOptions};
use super::plan::{Fallback, How, MountOp};
use super::resolve::{
    cwd, ensure_in_root, fd_path, open_in_root, rel_components, reopen_dir, TargetKind, IN_ROOT,
};
use super::MountContext;
use crate::sys;
use crate::trace::Calls;

/// One entry of `mounts`, made as its plan says.
pub(super) fn mount_one(
    root: BorrowedFd<'_>,
    op: &MountOp<'_>,
    cx: &MountContext<'_>,
    c: &mut Calls,
) -> Result<()> {
    let (i, m, opts) = (op.index, op.mount, &op.plan.options);
    let dest = m.destination();
    let (fstype, special, fallback) = match &op.plan.how {
        How::Bind => {
            let src = crate::sources::bind_source(m, cx.bundle).unwrap_or_default();
            let fds = (cx.idmaps.get(i), cx.sources.mount(i), cx.trees.get(i));
            return bind_tree(root, &src, dest, opts, fds, c);
        }
        How::New {
            fstype,
            special,
            fallback,
        } => (fstype.as_str(), *special, *fallback),
    };
    if special {
        refuse_symlinks_to(root, dest, fstype)?;
    }
    let target = ensure_in_root(root, dest, TargetKind::Dir)?;
    // The covered directory, opened before the tmpfs hides it (tmpcopyup).
    let covered = if opts.tmpcopyup {
        Some(reopen_dir(target.as_fd())?)
    } else {
        None
    };
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(fstype));
    let data = crate::lsm::with_mount_label(&opts.data.join(","), fstype, false, cx.mount_label);
    let data = (!data.is_empty()).then_some(data);
    let tpath = fd_path(target.as_fd());
    let mounted = match sys::mount(
        Some(&source),
        &tpath,
        Some(fstype),
        opts.flags,
        data.as_deref(),
    ) {
        // The same filesystem on the root of a mount of its own superblock (a second cgroup
        // mount at /sys/fs/cgroup): mount(2) refuses, move_mount stacks it, as runc and crun
        // end up doing.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && fallback.is_none() => {
            stack_new_mount(target.as_fd(), fstype, &source, opts, data.as_deref(), c)
        }
        r => r,
    };
    if let Err(e) = mounted {
        let refused = matches!(e.raw_os_error(), Some(libc::EPERM | libc::EBUSY));
        match fallback.filter(|_| refused) {
            Some(Fallback::SysfsHostBind) => return sysfs_as_host_bind(root, dest, opts, c),
            Some(Fallback::Cgroup2HostBind) => {
                return cgroup2_as_host_bind(root, dest, opts, cx, c)
            }
            None => {}
        }
        let why = match e.raw_os_error() {
            Some(libc::ENODEV) => format!("unknown filesystem type {fstype:?}"),
            _ => e.to_string(),
        };
        bail!("mount {} type {fstype}: {why}", source.display())
    }
    c.note(|| {
        format!(
            "mount({}, {}, {fstype}, {:#x}, {:?})",
            source.display(),
            dest.display(),
            opts.flags,
            data.as_deref().unwrap_or("")
        )
    });
    finish(root, dest, (fstype, special), opts, covered, c)
}

/// After the mount: the tmpfs filled with what it covers (tmpcopyup), proc and sysfs checked
/// to be what was mounted, and the propagation and recursive attributes applied.
fn finish(
    root: BorrowedFd<'_>,
    dest: &Path,
    (fstype, special): (&str, bool),
    opts: &MountOptions,
    covered: Option<std::os::fd::OwnedFd>,
    c: &mut Calls,
) -> Result<()> {
    if let Some(from) = covered {
        let to = reopen_dir(open_in_root(root, dest)?.as_fd())?;
        copy_tree(from.as_fd(), to.as_fd())
            .with_context(|| format!("tmpcopyup: cannot copy {} into the tmpfs", dest.display()))?;
        c.note(|| {
            format!(
                "tmpcopyup: copied the contents of {} into it",
                dest.display()
            )
        });
    }
    if special || !opts.propagation.is_empty() || opts.rec_set | opts.rec_clear != 0 {
        let mounted = open_in_root(root, dest)?;
        if special {
            let want = if fstype == "proc" {
                libc::PROC_SUPER_MAGIC
            } else {
                libc::SYSFS_MAGIC
            };
            let got = sys::fs_magic(mounted.as_fd())?;
            if got != want {
                bail!(
                    "{} is not {fstype} after mounting it (magic {got:#x}): refusing to go on",
                    dest.display()
                );
            }
        }
        apply_after(mounted.as_fd(), opts, c)?;
    }
    Ok(())
}

/// proc and sysfs must never land on a symlink (CVE-2019-19921, CVE-2023-27561).
fn refuse_symlinks_to(root: BorrowedFd<'_>, dest: &Path, fstype: &str) -> Result<()> {
    let rel: PathBuf = rel_components(dest).iter().collect();
    let flags = IN_ROOT | sys::RESOLVE_NO_SYMLINKS;
    match sys::openat2(root, &rel, libc::O_PATH, 0, flags) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => bail!(
            "the rootfs has a symlink on the way to {}: refusing to mount {fstype} there",
            dest.display()
        ),
        _ => Ok(()),
    }
}

/// Mounts a new `fstype` instance on top of `target` by the new mount API (see
/// [`sys::new_fs_mount`]).
fn stack_new_mount(
    target: BorrowedFd<'_>,
    fstype: &str,
    source: &Path,
    opts: &MountOptions,
    data: Option<&str>,
    c: &mut Calls,
) -> std::io::Result<()> {
    let options: Vec<&str> = data.map(|d| d.split(',').collect()).unwrap_or_default();
    let (attrs, _) = flags_to_attrs(opts.flags, 0);
    let mnt = sys::new_fs_mount(fstype, source, &options, attrs)?;
    sys::move_mount(mnt.as_fd(), target)?;
    c.note(|| {
        format!(
            "fsopen({fstype}) + fsconfig(source={}, {:?}) + fsmount({attrs:#x}) + move_mount (stacked on a mount of the same filesystem)",
            source.display(),
            data.unwrap_or("")
        )
    });
    Ok(())
}

/// sysfs may only be mounted by the owner of the network namespace: in a user namespace that
/// shares the host's, the kernel says EPERM. As crun does, a read-only request then gets a
/// read-only recursive bind of the host's /sys (what rootless configs ask for anyway).
fn sysfs_as_host_bind(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
    c: &mut Calls,
) -> Result<()> {
    if opts.flags & libc::MS_RDONLY == 0 {
        bail!(
            "sysfs cannot be mounted in a user namespace without its own network namespace: \
             add a network namespace, or add \"ro\" to get a read-only bind of the host's /sys"
        );
    }
    const KEEP: libc::c_ulong =
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let bind = MountOptions {
        flags: (opts.flags & KEEP) | libc::MS_BIND | libc::MS_REC,
        rec_set: flags_to_attrs(opts.flags & KEEP, 0).0,
        propagation: opts.propagation.clone(),
        ..MountOptions::default()
    };
    c.note(|| {
        "mount(sysfs) = EPERM (user namespace, host network namespace): \
         read-only rbind of the host's /sys instead"
            .into()
    });
    bind_tree(root, Path::new("/sys"), dest, &bind, (None, None, None), c)
}

/// cgroup2 may only be mounted by the owner of the cgroup namespace: in a user namespace that
/// shares the host's, the kernel says EPERM. As runc does, the container then gets a bind of
/// its own cgroup directory when it asked for a cgroup namespace (what that namespace would have
/// shown), else of the host's whole v2 hierarchy (as its /proc/self/cgroup paths expect), with
/// the mount's flags (read-only by default).
fn cgroup2_as_host_bind(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
    cx: &MountContext<'_>,
    c: &mut Calls,
) -> Result<()> {
    let src = match cx.cgroup.filter(|_| cx.cgroupns) {
        Some(dir) => dir.to_path_buf(),
        None => crate::cgroup::v2_mount().context(
            "cgroup2 cannot be mounted from this user namespace and the host has no v2 hierarchy to bind",
        )?,
    };
    const KEEP: libc::c_ulong =
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let bind = MountOptions {
        flags: (opts.flags & KEEP) | libc::MS_BIND,
        propagation: opts.propagation.clone(),
        ..MountOptions::default()
    };
    c.note(|| {
        format!(
            "mount(cgroup2) = EPERM (user namespace, cgroup namespace not its own): bind of {} instead",
            src.display()
        )
    });
    bind_tree(root, &src, dest, &bind, (None, None, None), c)
}

/// Recursive attributes and propagation, on the mount `fd` is the root of.
fn apply_after(fd: BorrowedFd<'_>, opts: &MountOptions, c: &mut Calls) -> Result<()> {
    if opts.rec_set | opts.rec_clear != 0 {
        sys::mount_setattr(fd, true, opts.rec_set, opts.rec_clear, 0).context("mount_setattr")?;
        c.note(|| {
            format!(
                "mount_setattr(AT_RECURSIVE, set={:#x}, clear={:#x})",
                opts.rec_set, opts.rec_clear
            )
        });
    }
    for p in &opts.propagation {
        let rec = p & libc::MS_REC != 0;
        sys::mount_setattr(fd, rec, 0, 0, p & !libc::MS_REC).context("propagation")?;
        c.note(|| format!("mount_setattr(propagation={p:#x})"));
    }
    Ok(())
}

/// The user namespace of an idmapped mount, the source onggi opened for us, and the clone
/// made before entering the mount template.
type BindFds<'a> = (
    Option<BorrowedFd<'a>>,
    Option<BorrowedFd<'a>>,
    Option<BorrowedFd<'a>>,
);

/// Clones the mount tree at host path `src` (recursively for rbind; from the descriptor onggi
/// opened, when there is one), sets its flags on the detached clone and attaches it at `dest`
/// inside the root.
fn bind_tree(
    root: BorrowedFd<'_>,
    src: &Path,
    dest: &Path,
    opts: &MountOptions,
    (idmap, opened, cloned): BindFds<'_>,
    c: &mut Calls,
) -> Result<()> {
    let is_dir = match cloned.or(opened) {
        Some(fd) => nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .with_context(|| format!("bind source {}", src.display()))?,
        None => std::fs::metadata(src)
            .with_context(|| format!("bind source {}", src.display()))?
            .is_dir(),
    };
    let kind = if is_dir {
        TargetKind::Dir
    } else {
        TargetKind::File
    };
    let recursive = opts.flags & libc::MS_REC != 0;
    let mut flags = sys::OPEN_TREE_CLONE;
    if recursive {
        flags |= sys::AT_RECURSIVE;
    }
    let made;
    let tree = match cloned {
        // Cloned again from where enter_template staged it, so that the mount's id (which
        // orders /proc/self/mountinfo) comes in config order, after the mounts before it.
        Some(t) => {
            made = sys::open_tree(t, Path::new(""), flags)
                .with_context(|| format!("cannot clone the mount tree of {}", src.display()))?;
            made.as_fd()
        }
        None => {
            made = match opened {
                Some(fd) => sys::open_tree(fd, Path::new(""), flags),
                None => sys::open_tree(cwd(), src, flags),
            }
            .with_context(|| format!("cannot clone the mount tree of {}", src.display()))?;
            made.as_fd()
        }
    };
    let (set, clear) = flags_to_attrs(opts.flags, opts.clear);
    if set | clear != 0 {
        sys::mount_setattr(tree, false, set, clear, 0)
            .map_err(|e| locked_flags_error(e, tree, set, clear, src))?;
    }
    if let Some(userns) = idmap {
        // On the detached clone, before it is attached (the kernel allows it only there).
        let rec = opts.idmap == Some(Idmap::Recursive);
        sys::mount_setattr_idmap(tree, rec, userns).context("mount_setattr(MOUNT_ATTR_IDMAP)")?;
        c.note(|| {
            format!(
                "mount_setattr({}MOUNT_ATTR_IDMAP, userns with the mount's uid/gidMappings)",
                if rec { "AT_RECURSIVE, " } else { "" }
            )
        });
    }
    let target = ensure_in_root(root, dest, kind)?;
    sys::move_mount(tree, target.as_fd())
        .with_context(|| format!("cannot attach the bind of {}", src.display()))?;
    c.note(|| {
        format!(
            "open_tree({}, OPEN_TREE_CLONE{}) + mount_setattr(set={set:#x}, clear={clear:#x}) + move_mount(-> {})",
            src.display(),
            if recursive { "|AT_RECURSIVE" } else { "" },
            dest.display()
        )
    });
    if cloned.is_some() {
        // Cloned from the host's namespace, not from a rslave copy of it: made a slave here,
        // as a bind in the copy would have been (host mounts below it still show).
        sys::mount_setattr(tree, recursive, 0, 0, libc::MS_SLAVE).context("propagation")?;
        c.note(|| "mount_setattr(propagation=MS_SLAVE)".into());
    }
    apply_after(tree, opts, c)
}
