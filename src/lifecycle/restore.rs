//! `restore`: a container brought back from `checkpoint`'s images, with the lifecycle of a
//! created-and-started one: state `running`, the pid file, the hooks at their moments, the
//! console socket given the pty master, and (without --detach) onggi waiting for it and
//! exiting with its status.
//!
//! ```text
//!   onggi restore                              criu swrk (onggi's child)
//!   ─────────────                              ─────────────────────────
//!   load_config: the Plan; mountpoints (made in the rootfs where missing); state_dir (creating)
//!   cgroup: mkdir, limits, device filter
//!   criu_start; criu joins the cgroup
//!   request RESTORE ─────────────────────────▶ namespaces, mounts (root = rootfs, bind
//!                                              sources from this config), processes …
//!   prestart + createRuntime hooks ◀────────── notify setup-namespaces (pid)
//!   console socket ◀─ pty master ◀──────────── notify orphan-pts-master (with the fd)
//!   state.json (+ pid, start time) ◀────────── notify post-restore (pid)
//!   state.json (running), pid file ◀────────── answer: restored pid (onggi's child:
//!   poststart hooks                             rst_sibling)
//! ```
//!
//! A failure at any step undoes what exists (CRIU kills what it restored; onggi removes the
//! cgroup and the state), so no half-restored container is left.

use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::checkpoint::{bind_mounts, check_empty_ns, joined_netns, masked_paths, CriuFlags, Dirs};
use super::checkpoint::{cg_root, DESCRIPTORS, NETNS_KEY};
use super::undo::Undo;
use crate::criu::rpc::{ReqType, Request};
use crate::hooks::{self, HookState, Moment};
use crate::plan::Plan;
use crate::state::{ContainerDir, State, Status, Store};
use crate::{signal, sys, trace};

// `restore`'s own flags.
#[derive(clap::Args, Debug)]
pub(crate) struct RestoreArgs {
    #[command(flatten)]
    pub(crate) criu: CriuFlags,
    /// The bundle directory (holding config.json)
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub(crate) bundle: PathBuf,
    /// Return once the container runs
    #[arg(short = 'd', long)]
    pub(crate) detach: bool,
    /// Write the init's host pid here (no newline)
    #[arg(long, value_name = "FILE")]
    pub(crate) pid_file: Option<PathBuf>,
    /// AF_UNIX socket that receives the pty master when process.terminal is true
    #[arg(long, value_name = "PATH")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Accepted for runc's CLI: CRIU enters the root its own way
    #[arg(long)]
    pub(crate) no_pivot: bool,
    /// Accepted for runc's CLI: onggi never becomes a subreaper
    #[arg(long)]
    pub(crate) no_subreaper: bool,
    /// The LSM profile of the restored processes
    #[arg(long, value_name = "PROFILE")]
    pub(crate) lsm_profile: Option<String>,
    /// The LSM mount context of the restored mounts
    #[arg(long, value_name = "CONTEXT")]
    pub(crate) lsm_mount_context: Option<String>,
    pub(crate) id: String,
}

/// `restore`: returns the exit code to exit with (0 with --detach).
pub(crate) fn restore(store: &Store, a: &RestoreArgs, criu: &Path, systemd: bool) -> Result<i32> {
    crate::state::validate_id(&a.id)?;
    // Before the cgroup is planned: an existing container's cgroup is not a restore's concern.
    if store.ids()?.contains(&a.id) {
        return Err(crate::state::StoreError::Exists(a.id.clone()).into());
    }
    check_empty_ns(&a.criu.empty_ns)?;
    let relay = if a.detach {
        None
    } else {
        Some(signal::Relay::block().context("sigprocmask")?)
    };
    let plan = trace::step("load_config", |_| Plan::load(&a.bundle))?;
    let dirs = Dirs::open(&a.criu, false)?;
    if !dirs.images_path.join("inventory.img").exists() {
        bail!(
            "--image-path {}: no checkpoint there (no inventory.img)",
            dirs.images_path.display()
        );
    }
    if plan.terminal() && a.console_socket.is_none() {
        bail!("process.terminal is true: restore needs --console-socket for the pty master");
    }
    let console = crate::console::target(plan.terminal(), a.console_socket.as_deref(), None)?;
    trace::step("mountpoints", |_| mountpoints(&plan))?;
    let cgroup_plan = crate::cgroup::setup::plan(&plan.bundle, &a.id, systemd)?;
    let mut undo = Undo::default();
    let mut state = super::create::first_record(&a.id, &plan, cgroup_plan.as_ref());
    trace::step("state_dir", |_| {
        let dir = undo.dir(store.create(&a.id, &state)?);
        dir.save_config(&plan.bundle.spec)
    })?;
    let placed = match &cgroup_plan {
        Some(p) => Some(undo.cgroup(crate::cgroup::setup::make(p, &plan.bundle, None)?)),
        None => None,
    };
    let netns = match joined_netns(&plan.bundle.spec) {
        Some(p) => Some(open_netns(&p)?),
        None => None,
    };
    let inherit: Vec<BorrowedFd<'_>> = netns.iter().map(|f| f.as_fd()).collect();
    let session = trace::step("criu_start", |_| {
        crate::criu::Session::start(criu, &inherit, false)
    })?;
    if let Some(p) = &placed {
        crate::cgroup::setup::join(p, session.pid())?;
    }
    let mut opts = restore_opts(a, &plan, &dirs, netns.is_some())?;
    opts.cg_root = placed.as_ref().map(|p| cg_root(&p.dir)).transpose()?;
    let log = dirs.work_path.join(&opts.log_file);
    let req = Request::new(ReqType::Restore, opts);
    let mut restored: Option<(i32, OwnedFd)> = None;
    let resp = trace::step("criu_restore", |_| {
        session.run(&req, &log, &mut |script, pid, fds| {
            notified(
                &plan,
                &a.id,
                &mut restored,
                console.as_ref(),
                script,
                pid,
                fds,
            )
        })
    });
    if let Some((pid, pidfd)) = restored.take() {
        undo.process(pid, pidfd);
    }
    let pid = resp?
        .restored_pid
        .ok_or_else(|| anyhow!("criu restored the container without naming its pid"))?;
    let pidfd = started(&undo, &mut state, pid, a.pid_file.as_deref())?;
    undo.disarm();
    poststart(&plan, &a.id, pid)?;
    let Some(relay) = relay else { return Ok(0) };
    let code = relay
        .wait(pid, pidfd.as_fd())
        .context("waiting for the container")?;
    super::delete(store, &a.id, true)?;
    Ok(code)
}

/// Each mount's destination made in the rootfs where it is missing (a new container's rootfs,
/// as `podman container restore --import` gives, lacks the mount points that create made), as
/// runc does: CRIU mounts onto them and does not create them. Below a tmpfs of the config
/// there is nothing to make, CRIU restores the tmpfs with its contents. Resolved in the root.
fn mountpoints(plan: &Plan) -> Result<()> {
    use crate::rootfs::{ensure_in_root, TargetKind};
    let mounts = plan.bundle.spec.mounts().as_deref().unwrap_or(&[]);
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    let binds: std::collections::HashMap<String, String> =
        bind_mounts(&plan.bundle.spec).into_iter().collect();
    let root = std::fs::File::open(&plan.bundle.rootfs)
        .with_context(|| format!("root.path {}", plan.bundle.rootfs.display()))?;
    for m in mounts {
        let dest = m.destination();
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) {
            continue;
        }
        let kind = match binds.get(&dest.display().to_string()) {
            Some(src) if !plan.bundle.dir.join(src).is_dir() => TargetKind::File,
            _ => TargetKind::Dir,
        };
        ensure_in_root(root.as_fd(), dest, kind)
            .with_context(|| format!("mounts: destination {}", dest.display()))?;
    }
    Ok(())
}

fn open_netns(path: &Path) -> Result<OwnedFd> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("linux.namespaces network path {}", path.display()))?;
    Ok(f.into())
}

/// The restore request: the common flags, the rootfs as CRIU's root, the bind mounts' sources
/// from this config, the caller's stdio where the init had pipes, the joined netns.
fn restore_opts(
    a: &RestoreArgs,
    plan: &Plan,
    dirs: &Dirs,
    netns: bool,
) -> Result<crate::criu::rpc::Opts> {
    let mut opts = dirs.opts(&a.criu, "restore.log");
    opts.root = Some(plan.bundle.rootfs.display().to_string());
    opts.rst_sibling = true;
    opts.orphan_pts_master = plan.terminal();
    opts.lsm_profile = a.lsm_profile.clone();
    opts.lsm_mount_context = a.lsm_mount_context.clone();
    // Keys the images do not name are not used: every masked path may be given.
    let masked = masked_paths(&plan.bundle.spec);
    opts.ext_mnt = bind_mounts(&plan.bundle.spec)
        .into_iter()
        .map(|(dest, src)| {
            let src = match Path::new(&src) {
                p if p.is_relative() => plan.bundle.dir.join(p).display().to_string(),
                _ => src,
            };
            (dest, src)
        })
        .chain(masked.into_iter().map(|p| (p, "/dev/null".to_string())))
        .collect();
    if netns {
        // CRIU's descriptor 4: the first one after its socket.
        opts.inherit_fd.push((NETNS_KEY.into(), 4));
    }
    opts.inherit_fd.extend(stdio_pipes(&dirs.images_path)?);
    Ok(opts)
}

/// The init's stdio that were pipes (runc's descriptors.json): each is given the restoring
/// caller's own descriptor of the same number (CRIU inherits onggi's stdio), as a container
/// manager's pipes are new after a restore.
fn stdio_pipes(images: &Path) -> Result<Vec<(String, i32)>> {
    let path = images.join(DESCRIPTORS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let fds: Vec<String> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a list of three descriptors", path.display()))?;
    Ok(fds
        .into_iter()
        .take(3)
        .enumerate()
        .filter(|(_, f)| f.starts_with("pipe:"))
        .map(|(n, f)| (f, n as i32))
        .collect())
}

/// One notification of CRIU's restore.
fn notified(
    plan: &Plan,
    id: &str,
    restored: &mut Option<(i32, OwnedFd)>,
    console: Option<&UnixStream>,
    script: &str,
    pid: i32,
    fds: Vec<OwnedFd>,
) -> Result<()> {
    match script {
        "setup-namespaces" => {
            let b = &plan.bundle;
            let st = HookState::new(id, Status::Creating, pid, &b.dir, &plan.annotations).json();
            for m in [Moment::Prestart, Moment::CreateRuntime] {
                hooks::run(m, &b.spec, &st, None)?;
            }
        }
        "post-restore" => {
            let pidfd = sys::pidfd_open(pid).context("pidfd_open of the restored init")?;
            *restored = Some((pid, pidfd));
        }
        "orphan-pts-master" => {
            let (Some(sock), Some(master)) = (console, fds.first()) else {
                bail!("criu sent a pty master but there is no console socket");
            };
            sys::send_with_fd(sock.as_fd(), b"orphan-pts-master", master.as_fd())
                .context("cannot send the pty master to the console socket")?;
        }
        _ => {}
    }
    Ok(())
}

/// The restored init recorded (pid, start time, `running`) and the pid file written; returns
/// a pidfd for it.
fn started(undo: &Undo, state: &mut State, pid: i32, pid_file: Option<&Path>) -> Result<OwnedFd> {
    let pidfd = sys::pidfd_open(pid).context("pidfd_open of the restored init")?;
    super::create::record_pid(undo, state, pid)?;
    state.recorded = Status::Running;
    let dir: &ContainerDir = undo.state_dir()?;
    dir.save(state)?;
    if let Some(p) = pid_file {
        super::create::write_pid_file(p, pid)?;
    }
    Ok(pidfd)
}

fn poststart(plan: &Plan, id: &str, pid: i32) -> Result<()> {
    let b = &plan.bundle;
    let st = HookState::new(id, Status::Running, pid, &b.dir, &plan.annotations);
    hooks::run(Moment::Poststart, &b.spec, &st.json(), None)
}
