//! `checkpoint`: CRIU saves a running container's processes to image files (their memory,
//! descriptors, namespaces, mounts, cgroup), as runc's `checkpoint` does; without
//! `--leave-running` the container is then gone (its processes killed by CRIU, its cgroup and
//! state removed, poststop hooks run), ready for `restore` here or on another machine.
//!
//! What onggi tells CRIU about the container, so that `restore` can rebuild the same one:
//! * the host's side of every bind mount is outside the container: each is an external mount
//!   keyed by its destination (restore maps the key to the new bundle's source);
//! * a network namespace joined by path is external (`net[INODE]:extRootNetNS`): restore
//!   joins the one the new config names instead of making a copy;
//! * the init's stdin, stdout and stderr as they were (descriptors.json, runc's file), so that
//!   restore hands the restoring caller's pipes in their place;
//! * the cgroup CRIU freezes while it dumps, and the rootfs.

use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{Container, LifecycleError};
use crate::criu::rpc::{CgroupMode, Opts, ReqType, Request};
use crate::state::{Status, Store};
use crate::trace;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

// The flags `checkpoint` and `restore` share (runc's names).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CriuFlags {
    /// Where the image files are (default: ./checkpoint)
    #[arg(long, value_name = "DIR")]
    pub(crate) image_path: Option<PathBuf>,
    /// Where CRIU writes its log and work files (default: the image path)
    #[arg(long, value_name = "DIR")]
    pub(crate) work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long)]
    pub(crate) tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub(crate) ext_unix_sk: bool,
    /// Allow a shell job (a terminal shared with the caller)
    #[arg(long)]
    pub(crate) shell_job: bool,
    /// Handle file locks
    #[arg(long)]
    pub(crate) file_locks: bool,
    /// What CRIU does with the cgroups
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) manage_cgroups_mode: Option<CgroupMode>,
    /// Namespaces CRIU leaves out (dump) or makes empty (restore): network
    #[arg(long, value_name = "NS")]
    pub(crate) empty_ns: Vec<String>,
    /// Deduplicate the parent's pages as they are written
    #[arg(long)]
    pub(crate) auto_dedup: bool,
    /// Restore memory pages lazily (userfaultfd, with `criu lazy-pages`)
    #[arg(long)]
    pub(crate) lazy_pages: bool,
}

// `checkpoint`'s own flags.
#[derive(clap::Args, Debug)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    pub(crate) criu: CriuFlags,
    /// A previous (pre-)dump these images build on, relative to the image path
    #[arg(long, value_name = "DIR")]
    pub(crate) parent_path: Option<String>,
    /// Keep the container running after the checkpoint
    #[arg(long)]
    pub(crate) leave_running: bool,
    /// Only dump the memory, for a later dump with --parent-path (the container keeps running)
    #[arg(long)]
    pub(crate) pre_dump: bool,
    /// Skip in-flight TCP connections
    #[arg(long)]
    pub(crate) tcp_skip_in_flight: bool,
    pub(crate) id: String,
}

/// The image and work directories, made if missing (0700) and open: CRIU gets descriptors.
pub(crate) struct Dirs {
    pub(crate) images: OwnedFd,
    pub(crate) images_path: PathBuf,
    pub(crate) work: Option<OwnedFd>,
    pub(crate) work_path: PathBuf,
}

impl Dirs {
    pub(crate) fn open(f: &CriuFlags, make: bool) -> Result<Dirs> {
        let images_path =
            std::path::absolute(f.image_path.as_deref().unwrap_or(Path::new("checkpoint")))
                .context("--image-path")?;
        let images = open_dir(&images_path, make, "--image-path")?;
        let (work, work_path) = match &f.work_path {
            Some(w) => {
                let p = std::path::absolute(w).context("--work-path")?;
                (Some(open_dir(&p, true, "--work-path")?), p)
            }
            None => (None, images_path.clone()),
        };
        Ok(Dirs {
            images,
            images_path,
            work,
            work_path,
        })
    }

    /// The options every request has: the directories, CRIU's log, the flags.
    pub(crate) fn opts(&self, f: &CriuFlags, log: &str) -> Opts {
        Opts {
            images_dir_fd: self.images.as_raw_fd(),
            work_dir_fd: self.work.as_ref().map(|w| w.as_raw_fd()),
            log_file: log.into(),
            log_level: 4,
            tcp_established: f.tcp_established,
            ext_unix_sk: f.ext_unix_sk,
            shell_job: f.shell_job,
            file_locks: f.file_locks,
            manage_cgroups: true,
            manage_cgroups_mode: f.manage_cgroups_mode,
            notify_scripts: true,
            auto_dedup: f.auto_dedup,
            lazy_pages: f.lazy_pages,
            empty_ns: empty_ns(&f.empty_ns),
            ..Opts::default()
        }
    }
}

fn open_dir(path: &Path, make: bool, flag: &str) -> Result<OwnedFd> {
    if make {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("{flag} {}", path.display()))?;
    }
    let dir = std::fs::File::open(path).with_context(|| format!("{flag} {}", path.display()))?;
    Ok(dir.into())
}

/// `--empty-ns network` as CLONE_NEWNET (the only one runc accepts; [`check_empty_ns`]
/// refuses the others first).
fn empty_ns(names: &[String]) -> u32 {
    names
        .iter()
        .filter(|n| matches!(n.as_str(), "network" | "net"))
        .map(|_| libc::CLONE_NEWNET as u32)
        .fold(0, |a, b| a | b)
}

/// Refuses an --empty-ns other than network, naming it.
pub(crate) fn check_empty_ns(names: &[String]) -> Result<()> {
    match names
        .iter()
        .find(|n| !matches!(n.as_str(), "network" | "net"))
    {
        Some(n) => anyhow::bail!("--empty-ns {n}: only \"network\" can be left empty"),
        None => Ok(()),
    }
}

/// The bind mounts of a config: (destination, source), the host's side of each.
pub(crate) fn bind_mounts(spec: &Spec) -> Vec<(String, String)> {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    mounts
        .iter()
        .filter(|m| {
            m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .any(|o| o == "bind" || o == "rbind")
        })
        .map(|m| {
            let src = m.source().as_deref().unwrap_or(Path::new(""));
            (
                m.destination().display().to_string(),
                src.display().to_string(),
            )
        })
        .collect()
}

/// The config's masked paths. A masked file is /dev/null bound over it: for CRIU, a mount
/// from outside, which restore binds again from the host's /dev/null. (A masked directory is
/// a read-only tmpfs, which CRIU dumps as it is.)
pub(crate) fn masked_paths(spec: &Spec) -> Vec<String> {
    let linux = spec.linux().as_ref();
    linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
}

/// The masked paths that are files in the running container (seen through its init's root),
/// each as an external mount named by its path (CRIU keeps the name in the images; restore
/// maps it to the host's /dev/null).
fn masked_files(spec: &Spec, pid: i32) -> Vec<(String, String)> {
    masked_paths(spec)
        .into_iter()
        .filter(|p| {
            let inside = format!("/proc/{pid}/root/{}", p.trim_start_matches('/'));
            std::fs::symlink_metadata(inside).is_ok_and(|m| !m.is_dir())
        })
        .map(|p| (p.clone(), p))
        .collect()
}

/// A container's cgroup as CRIU names it: its path below the cgroup2 mount. Given as the
/// cgroup root at dump and at restore, it makes the images' cgroups relative to the
/// container's, so that a container restored under another id (another cgroup) gets its own.
pub(crate) fn cg_root(dir: &Path) -> Result<String> {
    let mount = crate::cgroup::v2_mount()?;
    let rel = dir.strip_prefix(&mount).with_context(|| {
        format!(
            "the cgroup {} is not below {}",
            dir.display(),
            mount.display()
        )
    })?;
    Ok(format!("/{}", rel.display()))
}

/// The network namespace the config joins by path, if it does.
pub(crate) fn joined_netns(spec: &Spec) -> Option<PathBuf> {
    let namespaces = spec.linux().as_ref()?.namespaces().as_deref()?;
    namespaces
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .and_then(|n| n.path().clone())
}

/// The key of the joined network namespace, in the images.
pub(crate) const NETNS_KEY: &str = "extRootNetNS";

/// runc's descriptors.json: what the init's stdin, stdout and stderr were.
pub(crate) const DESCRIPTORS: &str = "descriptors.json";

/// `checkpoint`.
pub(crate) fn checkpoint(store: &Store, a: &CheckpointArgs, criu: &Path) -> Result<()> {
    check_empty_ns(&a.criu.empty_ns)?;
    let c = Container::open(store, &a.id)?;
    match c.status() {
        Status::Running | Status::Paused => {}
        s => return Err(LifecycleError::NotRunningIs(a.id.clone(), s).into()),
    }
    let init = c
        .init()?
        .ok_or_else(|| LifecycleError::NotRunning(a.id.clone()))?;
    let spec = c.dir.load_config()?;
    let dirs = Dirs::open(&a.criu, true)?;
    let pid = c.state.pid;
    trace::step("criu_descriptors", |t| save_descriptors(&dirs, pid, t))?;
    let mut opts = dirs.opts(
        &a.criu,
        if a.pre_dump {
            "pre-dump.log"
        } else {
            "dump.log"
        },
    );
    opts.pid = Some(pid);
    opts.root = Some(c.state.rootfs.display().to_string());
    opts.leave_running = a.leave_running || a.pre_dump;
    opts.track_mem = a.pre_dump || a.parent_path.is_some();
    opts.parent_img = a.parent_path.clone();
    opts.tcp_skip_in_flight = a.tcp_skip_in_flight;
    opts.orphan_pts_master = true;
    opts.freeze_cgroup = c.state.cgroup.as_ref().map(|p| p.display().to_string());
    opts.cg_root = c.state.cgroup.as_deref().map(cg_root).transpose()?;
    opts.ext_mnt = bind_mounts(&spec)
        .into_iter()
        .map(|(dest, _)| (dest.clone(), dest))
        .chain(masked_files(&spec, pid))
        .collect();
    if let Some(ns) = joined_netns(&spec) {
        let ino = std::fs::metadata(&ns)
            .with_context(|| format!("linux.namespaces network path {}", ns.display()))?;
        opts.external.push(format!(
            "net[{}]:{NETNS_KEY}",
            std::os::unix::fs::MetadataExt::ino(&ino)
        ));
    }
    let kind = if a.pre_dump {
        ReqType::PreDump
    } else {
        ReqType::Dump
    };
    let log = dirs.work_path.join(&opts.log_file);
    trace::step("criu_dump", |t| {
        t.note(|| {
            format!(
                "criu swrk: {kind:?} pid {pid} into {}",
                dirs.images_path.display()
            )
        });
        let session = crate::criu::Session::start(criu, &[], a.pre_dump)?;
        session.run(&Request::new(kind, opts), &log, &mut |_, _, _| Ok(()))
    })?;
    drop(init);
    if !(a.leave_running || a.pre_dump) {
        // CRIU killed the processes; the container goes as runc's does.
        drop(c);
        super::delete(store, &a.id, true)?;
    }
    Ok(())
}

/// runc's descriptors.json: what the init's stdin, stdout and stderr are now.
fn save_descriptors(dirs: &Dirs, pid: i32, t: &mut trace::Calls) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect();
    t.note(|| {
        format!(
            "write {}/{DESCRIPTORS} = {fds:?}",
            dirs.images_path.display()
        )
    });
    crate::state::write_atomic(
        &dirs.images_path.join(DESCRIPTORS),
        serde_json::to_string(&fds)?.as_bytes(),
        0o600,
    )
}
