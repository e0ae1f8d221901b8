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

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys;
use crate::trace::{self, Calls};

/// `rootfsPropagation` and propagation mount options to mount(2) flags.
pub fn propagation_flag(name: &str) -> Result<libc::c_ulong> {
    Ok(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        other => bail!(
            "unknown propagation {other:?} (use [r]private, [r]shared, [r]slave or [r]unbindable)"
        ),
    })
}

/// A mount's options, sorted into what each kernel interface takes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// mount(2) flags to set (MS_RDONLY, MS_NOSUID …), including MS_BIND/MS_REC for binds.
    pub flags: libc::c_ulong,
    /// mount(2) flags the options turn off again (`rw`, `suid`, `dev`, `exec` …).
    pub clear: libc::c_ulong,
    /// Propagation changes, in order.
    pub propagation: Vec<libc::c_ulong>,
    /// MOUNT_ATTR_* set and cleared recursively (`rro`, `rnosuid` …).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Everything else, passed to the filesystem as the data string.
    pub data: Vec<String>,
    /// `tmpcopyup` (runc/crun extension, sent by podman for --read-only's tmpfs mounts): the
    /// new tmpfs starts with a copy of what the directory it covers held.
    pub tmpcopyup: bool,
    /// `idmap` / `ridmap` (recursive): the bind is idmapped with the mount's uid/gidMappings.
    pub idmap: Option<Idmap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    /// `idmap`: the top mount of the bind only.
    Top,
    /// `ridmap`: every mount of a recursive bind.
    Recursive,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

/// Sorts `options` (the runc/crun table of mount options).
pub fn parse_options(options: &[String]) -> Result<MountOptions> {
    let mut o = MountOptions::default();
    for opt in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "async" => (0, libc::MS_SYNCHRONOUS),
            "atime" => (0, libc::MS_NOATIME),
            "bind" => (libc::MS_BIND, 0),
            "defaults" => (0, 0),
            "dev" => (0, libc::MS_NODEV),
            "diratime" => (0, libc::MS_NODIRATIME),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "iversion" => (libc::MS_I_VERSION, 0),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "loud" => (0, libc::MS_SILENT),
            "mand" => (libc::MS_MANDLOCK, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "nodev" => (libc::MS_NODEV, 0),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "noexec" => (libc::MS_NOEXEC, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "nomand" => (0, libc::MS_MANDLOCK),
            "norelatime" => (0, libc::MS_RELATIME),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "nosuid" => (libc::MS_NOSUID, 0),
            "nosymfollow" => (libc::MS_NOSYMFOLLOW, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "remount" => bail!("mount option \"remount\" is not allowed in a container config"),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "silent" => (libc::MS_SILENT, 0),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "suid" => (0, libc::MS_NOSUID),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            "idmap" => {
                o.idmap = Some(Idmap::Top);
                continue;
            }
            "ridmap" => {
                o.idmap = Some(Idmap::Recursive);
                continue;
            }
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                o.propagation.push(propagation_flag(p)?);
                continue;
            }
            r if r.starts_with('r') && recursive_attr(&r[1..]).is_some() => {
                let (attr, on) = recursive_attr(&r[1..]).unwrap_or((0, true));
                if on {
                    o.rec_set |= attr;
                    o.rec_clear &= !attr;
                } else {
                    o.rec_clear |= attr;
                    o.rec_set &= !attr;
                }
                if attr & sys::MOUNT_ATTR__ATIME != 0 || attr == 0 {
                    // atime modes are one field: clearing it selects the new mode.
                    o.rec_clear |= sys::MOUNT_ATTR__ATIME;
                }
                continue;
            }
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
        o.clear = (o.clear | clear) & !set;
    }
    Ok(o)
}

/// The recursive (`r`-prefixed) mount attributes: (MOUNT_ATTR bit, set?).
fn recursive_attr(name: &str) -> Option<(u64, bool)> {
    Some(match name {
        "ro" => (sys::MOUNT_ATTR_RDONLY, true),
        "rw" => (sys::MOUNT_ATTR_RDONLY, false),
        "nosuid" => (sys::MOUNT_ATTR_NOSUID, true),
        "suid" => (sys::MOUNT_ATTR_NOSUID, false),
        "nodev" => (sys::MOUNT_ATTR_NODEV, true),
        "dev" => (sys::MOUNT_ATTR_NODEV, false),
        "noexec" => (sys::MOUNT_ATTR_NOEXEC, true),
        "exec" => (sys::MOUNT_ATTR_NOEXEC, false),
        "nodiratime" => (sys::MOUNT_ATTR_NODIRATIME, true),
        "diratime" => (sys::MOUNT_ATTR_NODIRATIME, false),
        "nosymfollow" => (sys::MOUNT_ATTR_NOSYMFOLLOW, true),
        "symfollow" => (sys::MOUNT_ATTR_NOSYMFOLLOW, false),
        "noatime" => (sys::MOUNT_ATTR_NOATIME, true),
        "strictatime" => (sys::MOUNT_ATTR_STRICTATIME, true),
        "relatime" => (sys::MOUNT_ATTR_RELATIME, true),
        // "ratime", "rnorelatime", "rnostrictatime": back to the default (relatime).
        "atime" | "norelatime" | "nostrictatime" => (sys::MOUNT_ATTR_RELATIME, true),
        _ => return None,
    })
}

/// mount(2) flags to MOUNT_ATTR_* (set, clear) for mount_setattr on a bind mount.
fn flags_to_attrs(flags: libc::c_ulong, clear: libc::c_ulong) -> (u64, u64) {
    const MAP: &[(libc::c_ulong, u64)] = &[
        (libc::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
        (libc::MS_NOSYMFOLLOW, sys::MOUNT_ATTR_NOSYMFOLLOW),
    ];
    let (mut set, mut clr) = (0, 0);
    for (ms, attr) in MAP {
        if flags & ms != 0 {
            set |= attr;
        }
        if clear & ms != 0 {
            clr |= attr;
        }
    }
    let atime = if flags & libc::MS_NOATIME != 0 {
        Some(sys::MOUNT_ATTR_NOATIME)
    } else if flags & libc::MS_STRICTATIME != 0 {
        Some(sys::MOUNT_ATTR_STRICTATIME)
    } else if flags & libc::MS_RELATIME != 0 {
        Some(sys::MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    if let Some(a) = atime {
        set |= a;
        clr |= sys::MOUNT_ATTR__ATIME;
    }
    (set, clr)
}

/// "/a/b/../c" style paths are refused by validation; this drops "/" and "." components.
fn rel_components(p: &Path) -> Vec<&OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

const IN_ROOT: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// Opens `path` (O_PATH) inside the root `root`: symlinks resolve as if `root` were "/".
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> std::io::Result<OwnedFd> {
    let rel: PathBuf = rel_components(path).iter().collect();
    if rel.as_os_str().is_empty() {
        return sys::openat2(
            root,
            Path::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            IN_ROOT,
        );
    }
    sys::openat2(root, &rel, libc::O_PATH, 0, IN_ROOT)
}

/// What to create at a missing mount target.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Dir,
    File,
}

/// Resolves `path` inside `root`, creating what is missing (directories, and for a file target
/// an empty file) with mkdirat/openat relative to an already-resolved parent descriptor.
pub fn ensure_in_root(root: BorrowedFd<'_>, path: &Path, kind: TargetKind) -> Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path) {
        return Ok(fd);
    }
    let comps = rel_components(path);
    let mut parent = open_in_root(root, Path::new("/"))?;
    let mut sofar = PathBuf::from("/");
    for (i, name) in comps.iter().enumerate() {
        sofar.push(name);
        let last = i + 1 == comps.len();
        match open_in_root(root, &sofar) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot resolve {}", sofar.display())),
        }
        // `parent` is a resolved directory inside the root; `name` is one plain component,
        // created relative to it (never through a path string that could be swapped).
        let dirfd = Some(parent.as_raw_fd());
        let created = if last && kind == TargetKind::File {
            create_file_at(parent.as_fd(), name, false)
        } else {
            nix::sys::stat::mkdirat(
                dirfd,
                *name,
                nix::sys::stat::Mode::from_bits_truncate(0o755),
            )
        };
        match created {
            Ok(()) => {}
            // EEXIST from mkdirat, ELOOP from openat(O_NOFOLLOW) of a file target.
            Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ELOOP) => {
                // It exists but did not resolve: a symlink whose target is missing inside the
                // rootfs. onggi does not create through it (CVE-2024-45310 class).
                let is_link = nix::sys::stat::fstatat(
                    Some(parent.as_raw_fd()),
                    *name,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
                if is_link {
                    bail!(
                        "{} is a symlink whose target does not exist inside the rootfs: refusing to create anything through it",
                        sofar.display()
                    );
                }
            }
            Err(e) => bail!("cannot create {} in the rootfs: {e}", sofar.display()),
        }
        parent = open_in_root(root, &sofar)
            .with_context(|| format!("cannot open {} after creating it", sofar.display()))?;
    }
    Ok(parent)
}

/// The `/proc/self/fd/N` path of a descriptor, through the host procfs verified at startup.
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// What the mounts need to know about the container besides its config.
pub struct MountContext<'a> {
    /// The container has a user namespace (new or joined): mknod is refused, host mount flags
    /// are locked, sysfs and cgroup2 need namespaces owned by it.
    pub userns: bool,
    /// The container has a cgroup namespace of its own.
    pub cgroupns: bool,
    /// The container's cgroup directory on the host, if it has one.
    pub cgroup: Option<&'a Path>,
    /// The user namespaces of idmapped mounts (made by onggi), by mount index.
    pub idmaps: &'a IdmapUserns,
    /// The rootfs and bind sources onggi opened for us (see src/sources.rs).
    pub sources: &'a crate::sources::Received,
}

/// The whole rootfs setup, in order. Runs in the init, inside its new mount namespace.
pub fn setup(
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

fn cwd() -> BorrowedFd<'static> {
    sys::at_fdcwd()
}

/// Makes the whole tree rslave (or the configured propagation) so nothing we mount reaches the
/// host, and the mount holding the rootfs private so pivot_root accepts it.
fn prepare_propagation(rootfs: &Path, prop: Option<&str>, c: &mut Calls) -> Result<()> {
    // The tree we inherited becomes rslave (rprivate if asked): our mounts never reach the
    // host, and host mounts stay clonable. The configured propagation is applied to the
    // container's root after pivot_root (step root_propagation_final), where it belongs.
    let private = matches!(prop, Some("private" | "rprivate"));
    let first = libc::MS_REC
        | if private {
            libc::MS_PRIVATE
        } else {
            libc::MS_SLAVE
        };
    sys::mount(None, Path::new("/"), None, first, None)
        .context("cannot change the propagation of /")?;
    c.note(|| {
        format!(
            "mount(/, MS_REC|{})",
            if private { "MS_PRIVATE" } else { "MS_SLAVE" }
        )
    });
    let parent = mount_point_of(rootfs)?;
    sys::mount(None, &parent, None, libc::MS_PRIVATE, None)
        .with_context(|| format!("cannot make {} private", parent.display()))?;
    c.note(|| format!("mount({}, MS_PRIVATE)", parent.display()));
    Ok(())
}

/// The mount point (from /proc/self/mountinfo) of the mount that holds `path`.
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read mountinfo")?;
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape_mountinfo(mp));
        if path.starts_with(&mp) && mp.as_os_str().len() >= best.as_os_str().len() {
            best = mp;
        }
    }
    Ok(best)
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Binds the rootfs onto itself (pivot_root needs a mount point) and opens it. With a
/// descriptor onggi opened for us, by descriptor alone: a clone of its mount tree attached on
/// top of it (the attached clone is the new root).
fn bind_rootfs(rootfs: &Path, opened: Option<BorrowedFd<'_>>, c: &mut Calls) -> Result<OwnedFd> {
    if let Some(fd) = opened {
        let tree = sys::open_tree(fd, Path::new(""), sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE)
            .with_context(|| format!("cannot clone the rootfs {}", rootfs.display()))?;
        sys::move_mount(tree.as_fd(), fd)
            .with_context(|| format!("cannot bind the rootfs {}", rootfs.display()))?;
        c.note(|| {
            format!(
                "open_tree(fd of {}, OPEN_TREE_CLONE|AT_RECURSIVE) + move_mount(onto itself)",
                rootfs.display()
            )
        });
        return Ok(tree);
    }
    sys::mount(
        Some(rootfs),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .with_context(|| format!("cannot bind the rootfs {}", rootfs.display()))?;
    c.note(|| format!("mount({0}, {0}, MS_BIND|MS_REC)", rootfs.display()));
    let fd = sys::openat2(
        cwd(),
        rootfs,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .with_context(|| format!("cannot open the rootfs {}", rootfs.display()))?;
    Ok(fd)
}

/// The filesystem type onggi mounts for a config `type` ("cgroup" means cgroup2: onggi is
/// cgroup-v2 only and never mounts or binds a v1 hierarchy).
fn fs_type(t: &str) -> &str {
    if t == "cgroup" {
        "cgroup2"
    } else {
        t
    }
}

fn mount_one(
    root: BorrowedFd<'_>,
    bundle: &Path,
    (i, m): (usize, &Mount),
    cx: &MountContext<'_>,
    mount_label: Option<&str>,
    c: &mut Calls,
) -> Result<()> {
    let idmap = cx.idmaps.get(i);
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    if opts.is_bind() || typ == "bind" {
        return bind_mount(root, bundle, m, &opts, (idmap, cx.sources.mount(i)), c);
    }
    if typ.is_empty() || typ == "none" {
        bail!("mount type is missing (give a filesystem type, or the \"bind\" option)");
    }
    let fstype = fs_type(typ);
    let special = matches!(fstype, "proc" | "sysfs");
    if special {
        // proc and sysfs must never land on a symlink (CVE-2019-19921, CVE-2023-27561).
        let rel: PathBuf = rel_components(dest).iter().collect();
        match sys::openat2(
            root,
            &rel,
            libc::O_PATH,
            0,
            IN_ROOT | sys::RESOLVE_NO_SYMLINKS,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                bail!(
                    "the rootfs has a symlink on the way to {}: refusing to mount {fstype} there",
                    dest.display()
                )
            }
            _ => {}
        }
    }
    let target = ensure_in_root(root, dest, TargetKind::Dir)?;
    if opts.tmpcopyup && fstype != "tmpfs" {
        bail!("mount option \"tmpcopyup\" is only for tmpfs (this is {fstype})");
    }
    // The covered directory, opened before the tmpfs hides it (tmpcopyup).
    let covered = if opts.tmpcopyup {
        Some(reopen_dir(target.as_fd())?)
    } else {
        None
    };
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(fstype));
    let data = crate::lsm::with_mount_label(&opts.data.join(","), fstype, false, mount_label);
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
        Err(e)
            if e.raw_os_error() == Some(libc::EBUSY)
                && !(cx.userns && special_in_userns(fstype)) =>
        {
            stack_new_mount(target.as_fd(), fstype, &source, &opts, data.as_deref(), c)
        }
        r => r,
    };
    if let Err(e) = mounted {
        let refused = matches!(e.raw_os_error(), Some(libc::EPERM | libc::EBUSY));
        if fstype == "sysfs" && cx.userns && refused {
            return sysfs_as_host_bind(root, dest, &opts, c);
        }
        if fstype == "cgroup2" && cx.userns && refused {
            return cgroup2_as_host_bind(root, dest, &opts, cx, c);
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
        apply_after(mounted.as_fd(), &opts, c)?;
    }
    Ok(())
}

/// The filesystems that a user namespace may not mount without namespaces of its own (their
/// EPERM/EBUSY fallbacks are binds of the host's).
fn special_in_userns(fstype: &str) -> bool {
    matches!(fstype, "sysfs" | "cgroup2")
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
    bind_tree(root, Path::new("/sys"), dest, &bind, (None, None), c)
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
        None => crate::cgroups::v2_mount().context(
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
    bind_tree(root, &src, dest, &bind, (None, None), c)
}

/// A readable directory fd for the exact directory an O_PATH fd points at.
fn reopen_dir(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    sys::openat2(
        sys::at_fdcwd(),
        &fd_path(fd),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
    )
    .context("cannot reopen a directory")
}

/// Copies a directory tree fd-relative (files, directories, symlinks; owner and mode kept).
/// Nothing is resolved by path, so a symlink in the image cannot redirect the copy.
fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
    use nix::sys::stat::{fchmodat, fstatat, mkdirat, FchmodatFlags, Mode, SFlag};
    let dir = nix::dir::Dir::from_fd(nix::unistd::dup(from.as_raw_fd())?)?;
    let mut names = Vec::new();
    for e in dir.into_iter().flatten() {
        let n = e.file_name().to_owned();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n);
        }
    }
    for name in names {
        let st = fstatat(
            Some(from.as_raw_fd()),
            name.as_c_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        let rd = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if kind == SFlag::S_IFDIR {
            mkdirat(
                Some(to.as_raw_fd()),
                name.as_c_str(),
                Mode::from_bits_truncate(0o700),
            )?;
            let sub_from = openat(
                Some(from.as_raw_fd()),
                name.as_c_str(),
                rd | OFlag::O_DIRECTORY,
                Mode::empty(),
            )?;
            let sub_to = openat(
                Some(to.as_raw_fd()),
                name.as_c_str(),
                rd | OFlag::O_DIRECTORY,
                Mode::empty(),
            )?;
            let (sf, st_) = (sys::own_fd(sub_from), sys::own_fd(sub_to));
            copy_tree(sf.as_fd(), st_.as_fd())?;
        } else if kind == SFlag::S_IFREG {
            let src = sys::own_fd(openat(
                Some(from.as_raw_fd()),
                name.as_c_str(),
                rd,
                Mode::empty(),
            )?);
            let dst = sys::own_fd(openat(
                Some(to.as_raw_fd()),
                name.as_c_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?);
            std::io::copy(&mut std::fs::File::from(src), &mut std::fs::File::from(dst))?;
        } else if kind == SFlag::S_IFLNK {
            let target = readlinkat(Some(from.as_raw_fd()), name.as_c_str())?;
            nix::unistd::symlinkat(target.as_os_str(), Some(to.as_raw_fd()), name.as_c_str())?;
        } else {
            continue; // devices, fifos, sockets: not copied (as runc)
        }
        nix::unistd::fchownat(
            Some(to.as_raw_fd()),
            name.as_c_str(),
            Some(nix::unistd::Uid::from_raw(st.st_uid)),
            Some(nix::unistd::Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if kind != SFlag::S_IFLNK {
            fchmodat(
                Some(to.as_raw_fd()),
                name.as_c_str(),
                mode,
                FchmodatFlags::FollowSymlink,
            )?;
        }
    }
    Ok(())
}

/// Flags a user namespace cannot change on a mount that came from a more privileged mount
/// namespace (the kernel's MNT_LOCK_*): MOUNT_ATTR_* bit, statvfs bit, the option clearing it.
const LOCKABLE: &[(u64, u64, &str)] = &[
    (sys::MOUNT_ATTR_RDONLY, libc::ST_RDONLY, "rw"),
    (sys::MOUNT_ATTR_NOSUID, libc::ST_NOSUID, "suid"),
    (sys::MOUNT_ATTR_NODEV, libc::ST_NODEV, "dev"),
    (sys::MOUNT_ATTR_NOEXEC, libc::ST_NOEXEC, "exec"),
];

/// The atime setting a mount has (statvfs flags), as MOUNT_ATTR_* and as an option name.
fn atime_of(st_flags: u64) -> (u64, &'static str) {
    if st_flags & libc::ST_NOATIME != 0 {
        (sys::MOUNT_ATTR_NOATIME, "noatime")
    } else if st_flags & libc::ST_RELATIME != 0 {
        (sys::MOUNT_ATTR_RELATIME, "relatime")
    } else {
        (sys::MOUNT_ATTR_STRICTATIME, "strictatime")
    }
}

/// What asking for (`set`, `clear`) on a mount with statvfs flags `st_flags` would change that a
/// user namespace cannot: the options to drop, and the locked flags they would undo.
fn locked_conflicts(st_flags: u64, set: u64, clear: u64) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut asked, mut locked) = (Vec::new(), Vec::new());
    for &(attr, st, option) in LOCKABLE {
        if clear & attr != 0 && st_flags & st != 0 {
            asked.push(option);
            locked.push(option_negation(option));
        }
    }
    if clear & sys::MOUNT_ATTR__ATIME != 0 {
        let (have, name) = atime_of(st_flags);
        if set & sys::MOUNT_ATTR__ATIME != have {
            let wanted = atime_of(match set & sys::MOUNT_ATTR__ATIME {
                sys::MOUNT_ATTR_NOATIME => libc::ST_NOATIME,
                sys::MOUNT_ATTR_RELATIME => libc::ST_RELATIME,
                _ => 0,
            });
            asked.push(wanted.1);
            locked.push(name);
        }
    }
    (asked, locked)
}

fn option_negation(option: &str) -> &'static str {
    match option {
        "rw" => "ro",
        "suid" => "nosuid",
        "dev" => "nodev",
        _ => "noexec",
    }
}

/// Turns mount_setattr's bare EPERM on a bind into the reason, when the reason is a flag the
/// kernel locked: a mount copied into a user namespace keeps ro/nosuid/nodev/noexec and its
/// atime setting (runc refuses the same requests with "cannot clear locked flags").
fn locked_flags_error(
    err: std::io::Error,
    tree: BorrowedFd<'_>,
    set: u64,
    clear: u64,
    src: &Path,
) -> anyhow::Error {
    let st_flags = match nix::sys::statvfs::fstatvfs(tree) {
        Ok(st) => st.flags().bits(),
        Err(_) => return anyhow::Error::new(err).context("mount_setattr on the bind"),
    };
    let (asked, locked) = locked_conflicts(st_flags, set, clear);
    if err.raw_os_error() != Some(libc::EPERM) || asked.is_empty() {
        return anyhow::Error::new(err).context("mount_setattr on the bind");
    }
    anyhow!(
        "the mount of {} is {} and a user namespace cannot change that (the kernel locks it); \
         remove {} from the options",
        src.display(),
        locked.join(","),
        asked
            .iter()
            .map(|o| format!("{o:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
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

/// The user namespace of an idmapped mount, and the source onggi opened for us.
type BindFds<'a> = (Option<BorrowedFd<'a>>, Option<BorrowedFd<'a>>);

fn bind_mount(
    root: BorrowedFd<'_>,
    bundle: &Path,
    m: &Mount,
    opts: &MountOptions,
    fds: BindFds<'_>,
    c: &mut Calls,
) -> Result<()> {
    m.source().as_ref().context("a bind mount needs a source")?;
    let src = crate::sources::bind_source(m, bundle).unwrap_or_default();
    bind_tree(root, &src, m.destination(), opts, fds, c)
}

/// Clones the mount tree at host path `src` (recursively for rbind; from the descriptor onggi
/// opened, when there is one), sets its flags on the detached clone and attaches it at `dest`
/// inside the root.
fn bind_tree(
    root: BorrowedFd<'_>,
    src: &Path,
    dest: &Path,
    opts: &MountOptions,
    (idmap, opened): BindFds<'_>,
    c: &mut Calls,
) -> Result<()> {
    let is_dir = match opened {
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
    let tree = match opened {
        Some(fd) => sys::open_tree(fd, Path::new(""), flags),
        None => sys::open_tree(cwd(), src, flags),
    }
    .with_context(|| format!("cannot clone the mount tree of {}", src.display()))?;
    let (set, clear) = flags_to_attrs(opts.flags, opts.clear);
    if set | clear != 0 {
        sys::mount_setattr(tree.as_fd(), false, set, clear, 0)
            .map_err(|e| locked_flags_error(e, tree.as_fd(), set, clear, src))?;
    }
    if let Some(userns) = idmap {
        // On the detached clone, before it is attached (the kernel allows it only there).
        let rec = opts.idmap == Some(Idmap::Recursive);
        sys::mount_setattr_idmap(tree.as_fd(), rec, userns)
            .context("mount_setattr(MOUNT_ATTR_IDMAP)")?;
        c.note(|| {
            format!(
                "mount_setattr({}MOUNT_ATTR_IDMAP, userns with the mount's uid/gidMappings)",
                if rec { "AT_RECURSIVE, " } else { "" }
            )
        });
    }
    let target = ensure_in_root(root, dest, kind)?;
    sys::move_mount(tree.as_fd(), target.as_fd())
        .with_context(|| format!("cannot attach the bind of {}", src.display()))?;
    c.note(|| {
        format!(
            "open_tree({}, OPEN_TREE_CLONE{}) + mount_setattr(set={set:#x}, clear={clear:#x}) + move_mount(-> {})",
            src.display(),
            if recursive { "|AT_RECURSIVE" } else { "" },
            dest.display()
        )
    });
    apply_after(tree.as_fd(), opts, c)
}

/// The default devices of every container (as runc and crun create them).
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

fn setup_dev(root: BorrowedFd<'_>, mount_tmpfs: bool, userns: bool, c: &mut Calls) -> Result<()> {
    // The rootfs /dev must be a real directory, never a symlink (CVE-2026-41579).
    match sys::openat2(
        root,
        Path::new("dev"),
        libc::O_PATH,
        0,
        IN_ROOT | sys::RESOLVE_NO_SYMLINKS,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!("the rootfs /dev is a symlink: refusing to create devices through it")
        }
        _ => {}
    }
    let dev = ensure_in_root(root, Path::new("/dev"), TargetKind::Dir)?;
    let dev = if mount_tmpfs {
        let opts = "mode=755,size=65536k";
        sys::mount(
            Some(Path::new("tmpfs")),
            &fd_path(dev.as_fd()),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some(opts),
        )
        .context("cannot mount a tmpfs on /dev")?;
        c.note(|| format!("mount(tmpfs, /dev, tmpfs, MS_NOSUID|MS_STRICTATIME, {opts:?})"));
        open_in_root(root, Path::new("/dev"))?
    } else {
        dev
    };
    let dir = sys::openat2(
        dev.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    for (name, major, minor) in DEFAULT_DEVICES {
        if userns {
            bind_host_device(dir.as_fd(), name, &Path::new("/dev").join(name), c)?;
        } else {
            mknod_at(
                dir.as_fd(),
                name,
                libc::S_IFCHR,
                0o666,
                *major,
                *minor,
                0,
                0,
            )?;
            c.note(|| format!("mknodat(/dev/{name}, S_IFCHR|0666, {major}:{minor})"));
        }
    }
    for (name, target) in DEV_LINKS {
        if *name == "ptmx" {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                *name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(*target, Some(dir.as_raw_fd()), *name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => bail!("cannot create /dev/{name}: {e}"),
        }
        c.note(|| format!("symlinkat({target}, /dev/{name})"));
    }
    match nix::sys::stat::mkdirat(
        Some(dir.as_raw_fd()),
        "shm",
        nix::sys::stat::Mode::from_bits_truncate(0o1777),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => bail!("cannot create /dev/shm: {e}"),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &str,
    kind: libc::mode_t,
    perm: u32,
    major: u64,
    minor: u64,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let dev = libc::makedev(major as u32, minor as u32);
    let mode = nix::sys::stat::Mode::from_bits_truncate(perm);
    let sflag = nix::sys::stat::SFlag::from_bits_truncate(kind);
    // A device the config names may exist in the image already: replace it.
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, sflag, mode, dev)
        .with_context(|| format!("mknod /dev/{name} ({major}:{minor})"))?;
    nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        mode,
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| {
        if e == nix::errno::Errno::EOPNOTSUPP {
            Ok(())
        } else {
            Err(e)
        }
    })
    .with_context(|| format!("chmod /dev/{name}"))?;
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown /dev/{name}"))?;
    Ok(())
}

fn create_device(root: BorrowedFd<'_>, d: &LinuxDevice, userns: bool, c: &mut Calls) -> Result<()> {
    let path = d.path();
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => bail!(
            "linux.devices {}: type \"a\" is for cgroup rules only",
            path.display()
        ),
    };
    let parent = path.parent().unwrap_or(Path::new("/dev"));
    let name = path.file_name().context("device path has no file name")?;
    let pdir = ensure_in_root(root, parent, TargetKind::Dir)?;
    let dir = sys::openat2(
        pdir.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    let perm = d.file_mode().unwrap_or(0o666) & 0o7777;
    let (major, minor) = if kind == libc::S_IFIFO {
        (0, 0)
    } else {
        (d.major() as u64, d.minor() as u64)
    };
    let name = name.to_str().context("device name is not UTF-8")?;
    if userns {
        // mknod is refused in a user namespace: bind the host's node (as runc does).
        return bind_host_device(dir.as_fd(), name, path, c)
            .with_context(|| format!("linux.devices {}", path.display()));
    }
    mknod_at(
        dir.as_fd(),
        name,
        kind,
        perm,
        major,
        minor,
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
    )
    .with_context(|| format!("linux.devices {}", path.display()))?;
    c.note(|| {
        format!(
            "mknodat({}, {kind:#o}|{perm:o}, {major}:{minor})",
            path.display()
        )
    });
    Ok(())
}

/// Creates an empty regular file `name` in the resolved directory `dir`, never following a
/// symlink there (`exclusive`: fail if anything exists already).
fn create_file_at(dir: BorrowedFd<'_>, name: &OsStr, exclusive: bool) -> nix::Result<()> {
    use nix::fcntl::OFlag;
    let mut flags = OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if exclusive {
        flags |= OFlag::O_EXCL;
    }
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )?;
    nix::unistd::close(fd)
}

/// Binds the host's device node `host` onto an empty file `name` in `dir` (user namespaces).
fn bind_host_device(dir: BorrowedFd<'_>, name: &str, host: &Path, c: &mut Calls) -> Result<()> {
    let st =
        nix::sys::stat::stat(host).with_context(|| format!("host device {}", host.display()))?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFCHR && kind != libc::S_IFBLK {
        bail!("host path {} is not a device node", host.display());
    }
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    create_file_at(dir, OsStr::new(name), true)
        .with_context(|| format!("cannot create /dev/{name}"))?;
    let target = sys::openat2(
        dir,
        Path::new(name),
        libc::O_PATH,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )?;
    let tree = sys::open_tree(cwd(), host, sys::OPEN_TREE_CLONE)
        .with_context(|| format!("cannot clone the host's {}", host.display()))?;
    sys::move_mount(tree.as_fd(), target.as_fd())
        .with_context(|| format!("cannot bind {}", host.display()))?;
    c.note(|| format!("open_tree({}) + move_mount(-> /dev/{name})", host.display()));
    Ok(())
}

/// Opens `p` inside the root; None when it does not exist (nothing to mask or protect).
fn open_if_exists(root: BorrowedFd<'_>, p: &str, field: &str) -> Result<Option<OwnedFd>> {
    match open_in_root(root, Path::new(p)) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{field} {p}")),
    }
}

/// Covers `p` with /dev/null (a file) or an empty read-only tmpfs (a directory).
fn mask_path(root: BorrowedFd<'_>, p: &str, c: &mut Calls) -> Result<()> {
    let Some(target) = open_if_exists(root, p, "maskedPaths")? else {
        return Ok(());
    };
    let st =
        nix::sys::stat::fstat(target.as_raw_fd()).with_context(|| format!("maskedPaths {p}"))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::mount(
            Some(Path::new("tmpfs")),
            &fd_path(target.as_fd()),
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
        )
        .with_context(|| format!("maskedPaths {p}: cannot mount a read-only tmpfs"))?;
        c.note(|| format!("mount(tmpfs, {p}, tmpfs, MS_RDONLY)"));
    } else {
        // Opened here, in the init's mount namespace (open_tree clones only mounts of our own
        // namespace), before pivot_root: this is the host's /dev/null, out of the container's
        // reach, and it is checked to be the null device before it covers anything.
        let devnull = sys::openat2(
            cwd(),
            Path::new("/dev/null"),
            libc::O_PATH,
            0,
            sys::RESOLVE_NO_SYMLINKS,
        )
        .context("cannot open /dev/null")?;
        check_dev_null(devnull.as_fd())?;
        let tree = sys::open_tree(devnull.as_fd(), Path::new(""), sys::OPEN_TREE_CLONE)
            .context("cannot clone /dev/null")?;
        sys::move_mount(tree.as_fd(), target.as_fd())
            .with_context(|| format!("maskedPaths {p}: cannot bind /dev/null over it"))?;
        c.note(|| format!("open_tree(/dev/null) + move_mount(-> {p})"));
    }
    Ok(())
}

/// /dev/null must really be the null device (char 1:3) before it is bound over anything.
pub fn check_dev_null(fd: BorrowedFd<'_>) -> Result<()> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).context("cannot stat /dev/null")?;
    let ok = st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && libc::major(st.st_rdev) == 1
        && libc::minor(st.st_rdev) == 3;
    if !ok {
        bail!("/dev/null is not the null device (char 1:3): refusing to use it");
    }
    Ok(())
}

/// Makes `p` read-only: a recursive bind of it onto itself, set read-only before it is attached.
fn readonly_path(root: BorrowedFd<'_>, p: &str, c: &mut Calls) -> Result<()> {
    let Some(target) = open_if_exists(root, p, "readonlyPaths")? else {
        return Ok(());
    };
    let tree = sys::open_tree(
        target.as_fd(),
        Path::new(""),
        sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE,
    )
    .with_context(|| format!("readonlyPaths {p}: open_tree"))?;
    sys::mount_setattr(tree.as_fd(), true, sys::MOUNT_ATTR_RDONLY, 0, 0)
        .with_context(|| format!("readonlyPaths {p}: mount_setattr"))?;
    sys::move_mount(tree.as_fd(), target.as_fd())
        .with_context(|| format!("readonlyPaths {p}: move_mount"))?;
    c.note(|| {
        format!("open_tree({p}, OPEN_TREE_CLONE|AT_RECURSIVE) + mount_setattr(RDONLY) + move_mount")
    });
    Ok(())
}

/// pivot_root(".", ".") in the new root, then the old root (stacked on top) is made rslave
/// (so the unmount cannot propagate to the host) and detached.
fn pivot_root(root: BorrowedFd<'_>, c: &mut Calls) -> Result<()> {
    let old = sys::openat2(
        cwd(),
        Path::new("/"),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    nix::unistd::fchdir(root.as_raw_fd()).context("cannot enter the rootfs")?;
    sys::pivot_root_here().context("pivot_root")?;
    c.note(|| "pivot_root(\".\", \".\")".into());
    nix::unistd::fchdir(old.as_raw_fd()).context("cannot enter the old root")?;
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .context("cannot make the old root rslave")?;
    sys::umount(Path::new("."), libc::MNT_DETACH).context("cannot detach the old root")?;
    c.note(|| "umount2(old root, MNT_DETACH)".into());
    nix::unistd::chdir("/").context("chdir /")?;
    Ok(())
}

/// `--no-pivot`: move the rootfs mount over / and chroot into it (for ramdisk hosts where
/// pivot_root is impossible). The old root stays reachable to a process that escapes the chroot.
fn move_root(rootfs: &Path, c: &mut Calls) -> Result<()> {
    detach_host_proc_and_sys(rootfs, c)?;
    nix::unistd::chdir(rootfs).context("cannot enter the rootfs")?;
    sys::mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        libc::MS_MOVE,
        None,
    )
    .context("MS_MOVE the rootfs to /")?;
    nix::unistd::chroot(".").context("chroot")?;
    nix::unistd::chdir("/").context("chdir /")?;
    c.note(|| format!("mount({}, /, MS_MOVE) + chroot(.)", rootfs.display()));
    Ok(())
}

/// Without pivot_root the host's mounts stay in the container's mount namespace, only out of
/// chroot's sight, and a full procfs or sysfs there lets a process that may make a user
/// namespace mount a fresh, unmasked one (the kernel allows it when the namespace already has a
/// fully visible instance). So, as runc does, every full proc and sysfs mount outside the rootfs
/// is detached (or, where that is refused, covered by an empty tmpfs) before the move.
fn detach_host_proc_and_sys(rootfs: &Path, c: &mut Calls) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read mountinfo")?;
    let mut targets: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            let mp = PathBuf::from(unescape_mountinfo(f.get(4)?));
            let full = *f.get(3)? == "/";
            (full && matches!(fstype, "proc" | "sysfs") && !mp.starts_with(rootfs)).then_some(mp)
        })
        .collect();
    // Deepest first; a mount hidden under another goes with its parent's detach.
    targets.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for mp in &targets {
        match sys::umount(mp, libc::MNT_DETACH) {
            Ok(()) => c.note(|| format!("umount2({}, MNT_DETACH)", mp.display())),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) => {
                sys::mount(Some(Path::new("tmpfs")), mp, Some("tmpfs"), 0, None)
                    .with_context(|| format!("cannot cover {}", mp.display()))?;
                c.note(|| format!("mount(tmpfs, {}) (could not detach it)", mp.display()));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot detach {}", mp.display())),
        }
    }
    Ok(())
}

/// For a container that shares onggi's mount namespace: no mount at all (they would land in
/// the shared namespace), only chroot(2) into the rootfs.
pub fn chroot_only(rootfs: &Path, c: &mut Calls) -> Result<()> {
    nix::unistd::chdir(rootfs).context("cannot enter the rootfs")?;
    nix::unistd::chroot(".").context("chroot")?;
    nix::unistd::chdir("/").context("chdir /")?;
    c.note(|| {
        format!(
            "chroot({}) without a mount namespace: no mounts",
            rootfs.display()
        )
    });
    Ok(())
}

/// The user namespaces of the idmapped mounts, by mount index: made by onggi before clone3
/// (see [`idmap_userns`]) and inherited by the init, which attaches them to the binds.
#[derive(Default)]
pub struct IdmapUserns(Vec<(usize, OwnedFd)>);

impl IdmapUserns {
    /// One user namespace per mount that has uidMappings/gidMappings.
    pub fn for_mounts(mounts: &[Mount], procfs: BorrowedFd<'_>) -> Result<IdmapUserns> {
        let mut v = Vec::new();
        for (i, m) in mounts.iter().enumerate() {
            let (Some(u), Some(g)) = (m.uid_mappings(), m.gid_mappings()) else {
                continue;
            };
            if u.is_empty() || g.is_empty() {
                continue;
            }
            let fd = trace::step("idmap_userns", |c| {
                let fd = idmap_userns(u, g, procfs)?;
                c.note(|| {
                    format!(
                        "clone3(CLONE_NEWUSER) + write uid_map {:?}, gid_map {:?} + open ns/user (mounts[{i}])",
                        crate::procfs::id_map_text(u),
                        crate::procfs::id_map_text(g)
                    )
                });
                anyhow::Ok(fd)
            })
            .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))?;
            v.push((i, fd));
        }
        Ok(IdmapUserns(v))
    }

    fn get(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.0.iter().find(|(j, _)| *j == i).map(|(_, f)| f.as_fd())
    }

    /// The descriptors, for the init's keep list.
    pub fn fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        self.0.iter().map(|(_, f)| f.as_raw_fd())
    }
}

/// A user namespace holding `uid`/`gid` mappings, for MOUNT_ATTR_IDMAP: a child cloned into a
/// new user namespace waits on a pipe while onggi writes its maps and opens its ns/user; then
/// the pipe closes and the child exits. The namespace lives on in the descriptor.
fn idmap_userns(
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
    procfs: BorrowedFd<'_>,
) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    match sys::clone3(libc::CLONE_NEWUSER as u64, None).context("clone3(CLONE_NEWUSER)")? {
        sys::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(r.as_raw_fd(), &mut b);
            sys::exit_now(0)
        }
        sys::Forked::Parent { pid, pidfd: _pidfd } => {
            drop(r);
            let dir = PathBuf::from(pid.to_string());
            let res = (|| -> Result<OwnedFd> {
                crate::procfs::write(
                    procfs,
                    &dir.join("uid_map"),
                    &crate::procfs::id_map_text(uid),
                )
                .context("uidMappings")?;
                crate::procfs::write(
                    procfs,
                    &dir.join("gid_map"),
                    &crate::procfs::id_map_text(gid),
                )
                .context("gidMappings")?;
                let fd = nix::fcntl::openat(
                    Some(procfs.as_raw_fd()),
                    &dir.join("ns/user"),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .context("open ns/user")?;
                Ok(sys::own_fd(fd))
            })();
            drop(w);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("parses")
    }

    #[test]
    fn flags_and_data() {
        let m = o(&["nosuid", "noexec", "mode=755", "size=65536k", "ro"]);
        assert_eq!(m.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_RDONLY);
        assert_eq!(m.data, vec!["mode=755", "size=65536k"]);
        assert!(!m.is_bind());
    }

    #[test]
    fn later_options_win() {
        let m = o(&["ro", "rw"]);
        assert_eq!(m.flags & libc::MS_RDONLY, 0);
        assert_eq!(m.clear & libc::MS_RDONLY, libc::MS_RDONLY);
        let m = o(&["rw", "ro"]);
        assert_eq!(m.flags & libc::MS_RDONLY, libc::MS_RDONLY);
        assert_eq!(m.clear & libc::MS_RDONLY, 0);
    }

    #[test]
    fn binds_propagation_and_recursive() {
        let m = o(&["rbind", "rprivate", "rro", "rnosuid"]);
        assert!(m.is_bind());
        assert_eq!(m.flags & libc::MS_REC, libc::MS_REC);
        assert_eq!(m.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(m.rec_set, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID);
        let m = o(&["bind", "rnoatime"]);
        assert_eq!(m.rec_set, sys::MOUNT_ATTR_NOATIME);
        assert_eq!(m.rec_clear, sys::MOUNT_ATTR__ATIME);
    }

    #[test]
    fn remount_is_refused_and_idmap_is_parsed() {
        assert!(parse_options(&["remount".into()]).is_err());
        assert_eq!(
            parse_options(&["idmap".into()])
                .expect("test fixture is valid")
                .idmap,
            Some(Idmap::Top)
        );
        assert_eq!(
            parse_options(&["rbind".into(), "ridmap".into()])
                .expect("test fixture is valid")
                .idmap,
            Some(Idmap::Recursive)
        );
    }

    #[test]
    fn bind_flags_to_attrs() {
        let (set, clr) = flags_to_attrs(
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOATIME,
            libc::MS_NOEXEC,
        );
        assert_eq!(
            set,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOATIME
        );
        assert_eq!(clr, sys::MOUNT_ATTR_NOEXEC | sys::MOUNT_ATTR__ATIME);
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            propagation_flag("rshared").ok(),
            Some(libc::MS_SHARED | libc::MS_REC)
        );
        assert!(propagation_flag("bogus").is_err());
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }
}
