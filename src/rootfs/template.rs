//! The mount template: a mount namespace with nothing of the host in it, so that a container's
//! namespace is a copy of three mounts instead of the host's whole table.
//!
//! clone3(CLONE_NEWNS) copies every mount of the caller's namespace, and the pivot_root that
//! follows detaches them all again: on a host with 1000 mounts (volumes, other containers'
//! overlays) that costs more than everything else a container needs. So, as the OCI field
//! plans with OPEN_TREE_NAMESPACE (Linux 7.0), onggi keeps one small namespace, made once per
//! state root and pinned at `ROOT/@mount-template/ns` (a bind mount of its nsfs file, as
//! `ip netns` pins network namespaces):
//!
//! * `/` — an empty read-only tmpfs with the directory `/rootfs`, where a container's root
//!   filesystem is attached, and `/stage/dN` and `/stage/fN` (N < 64), where the bind
//!   sources are staged, each on a mount point of its own;
//! * `/proc` — a bind of the host's procfs (the init reaches its descriptors through
//!   /proc/self/fd until pivot_root);
//! * `/dev/null` — a bind of the host's null device (what maskedPaths covers files with).
//!
//! The init is cloned without CLONE_NEWNS. Still in the host's namespace, it clones the rootfs
//! and every bind source (`open_tree(OPEN_TREE_CLONE)`: detached trees, which only the
//! caller's own namespace can make), then `setns` into the template and `unshare(CLONE_NEWNS)`
//! gives it a copy of these three mounts. The rootfs tree is attached at `/rootfs` and the
//! whole tree made rslave (as the copied table was before); the rest of the plan runs as
//! before, and pivot_root detaches the template's mounts.
//!
//! Not for every container: one with a user namespace (its init may not enter a namespace of
//! the host's user namespace), createContainer hooks (they run before pivot_root and must find
//! the host's files), `--no-pivot`, or a rootless onggi copies the host's table as before.
//! If the template cannot be made, onggi copies too, and says so in the trace: so in a chroot,
//! where pivot_root would swap the chroot's mount and not the namespace's root.
//!
//! The directory `ROOT/@mount-template` is a private bind of itself: the kernel refuses to
//! propagate a mount of a mount namespace's file, so the pin must sit where nothing propagates.
//! To remove a state root: `umount ROOT/@mount-template/ns ROOT/@mount-template`.

use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::plan::{How, Op};
use super::resolve::cwd;
use super::MountContext;
use crate::sys;
use crate::trace::Calls;

/// The template's directory in a state root.
pub(crate) const DIR: &str = "@mount-template";
/// Where the template namespace attaches a container's root filesystem.
const ATTACH: &str = "/rootfs";
const NSFS_MAGIC: i64 = 0x6e73_6673;
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// How many bind sources the template can stage (a container with more copies the host's table).
pub(crate) const STAGE: usize = 64;

/// Whether a container uses the template (see the module doc for why the others do not).
pub(crate) fn wanted(plan: &crate::plan::Plan, no_pivot: bool) -> bool {
    use oci_spec::runtime::LinuxNamespaceType as T;
    plan.new_namespace(T::Mount)
        && !plan.has_namespace(T::User)
        && !no_pivot
        && crate::hooks::of(&plan.bundle.spec, crate::hooks::Moment::CreateContainer).is_empty()
        && !crate::namespaces::rootless()
        && plan
            .mounts
            .iter()
            .filter(|m| m.how == super::plan::How::Bind)
            .count()
            <= STAGE
}

/// The pinned template of the state root whose template directory is `dir`, made first if
/// there is none (step `mount_template`). Returns an open descriptor of the namespace.
pub(crate) fn open_or_make(dir: &Path, procfs: BorrowedFd<'_>, c: &mut Calls) -> Result<OwnedFd> {
    let ns = dir.join("ns");
    if let Some(fd) = open_pinned(&ns) {
        c.note(|| format!("open({})", ns.display()));
        return Ok(fd);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot make {}", dir.display()))?;
    let lock = sys::openat2(cwd(), dir, libc::O_RDONLY | libc::O_DIRECTORY, 0, 0)
        .with_context(|| format!("cannot open {}", dir.display()))?;
    sys::flock_exclusive(lock.as_fd()).context("cannot lock the mount template")?;
    // Another onggi may have made it while we waited.
    if let Some(fd) = open_pinned(&ns) {
        c.note(|| format!("open({}) (made by another onggi)", ns.display()));
        return Ok(fd);
    }
    make_private_dir(dir)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&ns)
        .with_context(|| format!("cannot create {}", ns.display()))?;
    let cpu = make_and_pin(dir, &ns, procfs, c)?;
    c.note(|| {
        let on = cpu
            .map(|n| format!(", made on CPU {n}"))
            .unwrap_or_default();
        format!(
            "mount(nsfs, {}, MS_BIND) (the template pinned{on})",
            ns.display()
        )
    });
    open_pinned(&ns).ok_or_else(|| {
        // Never a second pin stacked on this one by the next create.
        let _ = sys::umount(&ns, libc::MNT_DETACH);
        anyhow!(
            "the mount template pinned at {} cannot be opened",
            ns.display()
        )
    })
}

/// The namespace pinned at `ns`, if the file there is one (a plain file in a mount namespace
/// that does not see the pin is not). The state root's path may hold symlinks (/var/run).
fn open_pinned(ns: &Path) -> Option<OwnedFd> {
    let fd = sys::openat2(cwd(), ns, libc::O_RDONLY, 0, 0).ok()?;
    (sys::fs_magic(fd.as_fd()).ok()? == NSFS_MAGIC).then_some(fd)
}

/// `dir` as a private mount of its own (a bind of itself, unless it already is a mount root).
fn make_private_dir(dir: &Path) -> Result<()> {
    if !sys::is_mount_root(dir).unwrap_or(false) {
        sys::mount(Some(dir), dir, None, libc::MS_BIND, None)
            .with_context(|| format!("cannot bind {} onto itself", dir.display()))?;
    }
    sys::mount(None, dir, None, libc::MS_PRIVATE, None)
        .with_context(|| format!("cannot make {} private", dir.display()))
}

/// Makes the template and pins it at `ns`. The kernel refuses (EINVAL) to pin a mount
/// namespace that is not younger than the pinning one (a loop check), and it tells their age
/// by ids it hands out per CPU in batches: a namespace made on one CPU can look older than one
/// made earlier on another. So when the first try is refused, it is made again on each CPU in
/// turn; the CPU that made onggi's own namespace always gives a younger one. Returns the CPU
/// of a retry.
fn make_and_pin(
    dir: &Path,
    ns: &Path,
    procfs: BorrowedFd<'_>,
    c: &mut Calls,
) -> Result<Option<usize>> {
    let pin = |made: OwnedFd| {
        let from = PathBuf::from(format!("/proc/self/fd/{}", made.as_raw_fd()));
        sys::mount(Some(&from), ns, None, libc::MS_BIND, None)
    };
    let first = pin(build(dir, procfs, None, c)?);
    let Err(e) = first else { return Ok(None) };
    let refused = |e: &std::io::Error| e.raw_os_error() == Some(libc::EINVAL);
    if refused(&e) {
        c.note(|| "the pin refused (EINVAL): made again, on each CPU in turn".into());
        let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?;
        let cpus = (0..nix::sched::CpuSet::count()).filter(|&n| allowed.is_set(n).unwrap_or(false));
        for cpu in cpus.take(256) {
            match pin(build(dir, procfs, Some(cpu), c)?) {
                Ok(()) => return Ok(Some(cpu)),
                Err(e) if refused(&e) => continue,
                Err(e) => return Err(e).context("cannot pin the mount template"),
            }
        }
    }
    Err(e).with_context(|| format!("cannot pin the mount template at {}", ns.display()))
}

/// Makes the template namespace in a thread of its own (unshare(CLONE_NEWNS) moves only the
/// calling thread), on `cpu` if given, and returns a descriptor of it.
fn build(dir: &Path, procfs: BorrowedFd<'_>, cpu: Option<usize>, c: &mut Calls) -> Result<OwnedFd> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(n) = cpu {
                sys::set_affinity(&[n]).context("sched_setaffinity")?;
            }
            build_in_this_thread(dir, procfs, c)
        })
        .join()
        .map_err(|_| anyhow!("the thread making the mount template panicked"))?
    })
    .context("cannot make the mount template")
}

fn build_in_this_thread(dir: &Path, procfs: BorrowedFd<'_>, c: &mut Calls) -> Result<OwnedFd> {
    sys::unshare(libc::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    c.note(|| "unshare(CLONE_NEWNS) in a thread of its own".into());
    // Nothing below may reach the host.
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .context("cannot make / private")?;
    let tmpfs = sys::new_fs_mount(
        "tmpfs",
        Path::new("onggi-template"),
        &["mode=0755", "size=64k", "nr_inodes=256"],
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )
    .context("cannot make the template's tmpfs")?;
    let at = sys::openat2(cwd(), dir, libc::O_PATH | libc::O_DIRECTORY, 0, 0)?;
    sys::move_mount(tmpfs.as_fd(), at.as_fd()).context("cannot attach the template's tmpfs")?;
    // The tmpfs now covers `dir` in this thread's namespace (and nowhere else).
    fill(dir, tmpfs.as_fd())?;
    c.note(|| {
        format!("fsmount(tmpfs) with /rootfs, /stage/d0..d{} and f0..f{}, binds of /proc and /dev/null, read-only", STAGE - 1, STAGE - 1)
    });
    sys::mount_setattr(tmpfs.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
        .context("cannot make the template read-only")?;
    super::pivot::pivot_root(tmpfs.as_fd(), c).context("pivot_root into the template")?;
    let ns = sys::openat2(
        procfs,
        Path::new("thread-self/ns/mnt"),
        libc::O_RDONLY,
        0,
        0,
    )
    .context("cannot open the template's namespace")?;
    check_root(ns.as_fd())?;
    Ok(ns)
}

/// The template's root as an init will find it: setns(2) puts a process at its namespace's
/// root mount, which must be the template's tmpfs. It is not when onggi runs in a chroot:
/// pivot_root then swaps the chroot's mount, not the namespace's root.
fn check_root(ns: BorrowedFd<'_>) -> Result<()> {
    sys::setns(ns, libc::CLONE_NEWNS).context("setns(the new template)")?;
    let root = sys::openat2(
        cwd(),
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )?;
    let ours = sys::fs_magic(root.as_fd())? == TMPFS_MAGIC
        && sys::openat2(root.as_fd(), Path::new("stage/d0"), libc::O_PATH, 0, 0).is_ok();
    if !ours {
        bail!("the namespace's root is not the template's (is onggi in a chroot?)");
    }
    Ok(())
}

/// The template's directories, files and binds, in its tmpfs `top` attached at `dir`.
fn fill(dir: &Path, top: BorrowedFd<'_>) -> Result<()> {
    for (sub, mode) in [
        ("rootfs", 0o755),
        ("stage", 0o755),
        ("proc", 0o555),
        ("dev", 0o755),
    ] {
        std::fs::DirBuilder::new()
            .mode(mode)
            .create(dir.join(sub))
            .with_context(|| format!("cannot make the template's /{sub}"))?;
    }
    let stage = dir.join("stage");
    for n in 0..STAGE {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(stage.join(format!("d{n}")))
            .context("cannot make the template's staging directories")?;
    }
    let files = (0..STAGE).map(|n| format!("stage/f{n}"));
    for file in std::iter::once("dev/null".to_string()).chain(files) {
        std::fs::File::create(dir.join(&file))
            .with_context(|| format!("cannot make the template's /{file}"))?;
    }
    bind_into(top, "/proc", "proc")?;
    bind_into(top, "/dev/null", "dev/null")
}

/// A bind of the host's `src` at `rel` in the template's tmpfs `top`.
fn bind_into(top: BorrowedFd<'_>, src: &str, rel: &str) -> Result<()> {
    let tree = sys::open_tree(cwd(), Path::new(src), sys::OPEN_TREE_CLONE)
        .with_context(|| format!("cannot clone {src}"))?;
    let how = sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS;
    let at = sys::openat2(top, Path::new(rel), libc::O_PATH, 0, how)?;
    sys::move_mount(tree.as_fd(), at.as_fd()).with_context(|| format!("cannot bind {src}"))
}

/// Detached clones of the bind sources, made in the host's namespace before the init leaves
/// it, by mount index.
#[derive(Default)]
pub(crate) struct Trees(Vec<(usize, OwnedFd)>);

impl Trees {
    pub(crate) fn get(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.0.iter().find(|(j, _)| *j == i).map(|(_, f)| f.as_fd())
    }
}

/// In the init (step `enter_template`): clones the rootfs and the bind sources, enters a copy
/// of the template, attaches the rootfs at /rootfs and makes the tree rslave (rprivate when
/// linux.rootfsPropagation is private). Returns the attached rootfs and the clones.
pub(super) fn enter(
    ops: &[Op<'_>],
    rootfs: &Path,
    prop: Option<&str>,
    cx: &MountContext<'_>,
    c: &mut Calls,
) -> Result<(OwnedFd, Trees)> {
    let template = cx.template.context("no mount template")?;
    let root = sys::open_tree(cwd(), rootfs, sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE)
        .with_context(|| format!("cannot clone the rootfs {}", rootfs.display()))?;
    c.note(|| {
        format!(
            "open_tree({}, OPEN_TREE_CLONE|AT_RECURSIVE)",
            rootfs.display()
        )
    });
    let trees = clone_bind_sources(ops, cx, c)?;
    sys::setns(template, libc::CLONE_NEWNS).context("setns(mount template)")?;
    c.note(|| "setns(mount template, CLONE_NEWNS)".into());
    sys::unshare(libc::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    c.note(|| "unshare(CLONE_NEWNS) (a copy of the template's 3 mounts, not of the host's)".into());
    let at = sys::openat2(
        cwd(),
        Path::new(ATTACH),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .context("the mount template has no /rootfs")?;
    sys::move_mount(root.as_fd(), at.as_fd())
        .with_context(|| format!("cannot attach the rootfs {}", rootfs.display()))?;
    c.note(|| format!("move_mount(rootfs, {ATTACH})"));
    stage(&trees, c)?;
    let private = matches!(prop, Some("private" | "rprivate"));
    let kind = if private {
        libc::MS_PRIVATE
    } else {
        libc::MS_SLAVE
    };
    sys::mount(None, Path::new("/"), None, libc::MS_REC | kind, None)
        .context("cannot change the propagation of /")?;
    c.note(|| {
        let k = if private { "MS_PRIVATE" } else { "MS_SLAVE" };
        format!("mount(/, MS_REC|{k})")
    });
    Ok((root, trees))
}

/// Attaches the bind sources' clones in the template, each on a staging directory (a file's on
/// a staging file) of its own: the mounts step clones them again from there, in config order
/// (the mount ids that order /proc/self/mountinfo then come in config order; a detached tree
/// of the host's cannot be cloned from the new namespace), and pivot_root detaches them.
fn stage(trees: &Trees, c: &mut Calls) -> Result<()> {
    if trees.0.len() > STAGE {
        bail!("more than {STAGE} bind mounts for the mount template");
    }
    for (n, (_, tree)) in trees.0.iter().enumerate() {
        let st = nix::sys::stat::fstat(tree.as_raw_fd()).context("bind source")?;
        let at = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            format!("/stage/d{n}")
        } else {
            format!("/stage/f{n}")
        };
        let to = sys::openat2(
            cwd(),
            Path::new(&at),
            libc::O_PATH,
            0,
            sys::RESOLVE_NO_SYMLINKS,
        )
        .with_context(|| format!("the mount template has no {at}"))?;
        sys::move_mount(tree.as_fd(), to.as_fd()).context("cannot stage a bind source")?;
        c.note(|| format!("move_mount(bind source, {at})"));
    }
    Ok(())
}

/// The detached clone of every bind mount's source (recursive for rbind).
fn clone_bind_sources(ops: &[Op<'_>], cx: &MountContext<'_>, c: &mut Calls) -> Result<Trees> {
    let mut trees = Trees::default();
    let mounts = ops.iter().filter_map(|op| match op {
        Op::Mounts(m) => Some(m),
        _ => None,
    });
    for m in mounts.flatten().filter(|m| m.plan.how == How::Bind) {
        let at = || format!("mounts[{}] ({})", m.index, m.mount.destination().display());
        let src = crate::sources::bind_source(m.mount, cx.bundle).unwrap_or_default();
        std::fs::metadata(&src)
            .with_context(|| format!("bind source {}", src.display()))
            .with_context(at)?;
        let mut flags = sys::OPEN_TREE_CLONE;
        if m.plan.options.flags & libc::MS_REC != 0 {
            flags |= sys::AT_RECURSIVE;
        }
        let tree = sys::open_tree(cwd(), &src, flags)
            .with_context(|| format!("cannot clone the mount tree of {}", src.display()))
            .with_context(at)?;
        c.note(|| {
            let rec = if flags & sys::AT_RECURSIVE != 0 {
                "|AT_RECURSIVE"
            } else {
                ""
            };
            format!("open_tree({}, OPEN_TREE_CLONE{rec})", src.display())
        });
        trees.0.push((m.index, tree));
    }
    Ok(trees)
}
