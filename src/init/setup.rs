//! The init's setup after Go, in order: the namespaces and the user namespace's root, the root
//! filesystem (with the createContainer hooks before pivot_root), the network loopback, host
//! and domain names, sysctls; then for the process: the session keyring, its working
//! directory, its terminal, and the process half (src/process.rs).

use anyhow::{Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::path::PathBuf;

use super::InitContext;
use crate::hooks::{self, Moment};
use crate::process::Prepared;
use crate::rootfs;
use crate::{namespaces, sys, trace};

/// Everything between Go and Ready. `state`: the hook state JSON; `sources`: what onggi opened
/// for the mounts. Returns what execve needs (None for a container without `process`).
pub(super) fn setup(
    ctx: &InitContext<'_>,
    state: &str,
    sources: &crate::sources::Received,
) -> Result<Option<Prepared>> {
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    enter_namespaces(ctx)?;
    filesystem(ctx, state, sources)?;
    trace::step("stdio_dev_null", rootfs::reopen_dev_null_stdio)?;
    system(ctx)?;
    let Some(p) = &ctx.plan.process else {
        return Ok(None);
    };
    if !ctx.no_new_keyring {
        trace::step("session_keyring", |c| {
            let name = format!("_ses.{}", ctx.id);
            match sys::join_session_keyring(&name) {
                // Keyrings may be unavailable (no CONFIG_KEYS, or a seccomp'd host): not fatal.
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
                r => r.context("keyctl(KEYCTL_JOIN_SESSION_KEYRING)")?,
            }
            c.note(|| format!("keyctl(JOIN_SESSION_KEYRING, {name:?})"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    if !ctx.plan.has_namespace(LinuxNamespaceType::Mount) {
        // With a mount namespace, the rootfs plan made it (before a read-only root).
        rootfs::create_cwd(p.process.cwd())?;
    }
    if let Some(sock) = ctx.console {
        let size = p
            .process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        trace::step("console", |c| {
            let slave = crate::console::setup(sock, size, c)?;
            // The pty becomes our stdio now, not at the gate: managers (go-runc in the
            // containerd shim) read create's output pipe until EOF, so the init must not keep
            // it open while it waits for `start` (runc does the same).
            crate::console::attach(&slave).context("cannot attach the terminal")?;
            c.note(|| "setsid(); ioctl(TIOCSCTTY); dup2(pty slave, 0/1/2)".into());
            Ok::<_, anyhow::Error>(())
        })?;
    } else {
        // Its own session, as runc's init: the caller's session (and its terminal) stays
        // outside, and CRIU can checkpoint a tree whose session leader is inside.
        nix::unistd::setsid().context("setsid")?;
    }
    crate::process::prepare(p, ctx.seccomp.is_some(), ctx.procfs).map(Some)
}

/// Joins the namespaces given by path (clone3 made the new ones), makes the time namespace,
/// and becomes root of the user namespace.
fn enter_namespaces(ctx: &InitContext<'_>) -> Result<()> {
    let plan = ctx.plan;
    namespaces::join_namespaces(plan.bundle.namespaces())?;
    if plan.new_namespace(LinuxNamespaceType::Time) {
        let offsets = plan.linux().and_then(|l| l.time_offsets().as_ref());
        trace::step("time_namespace", |c| {
            namespaces::new_time_namespace(offsets, ctx.procfs, c)
        })?;
    }
    if plan.has_namespace(LinuxNamespaceType::User) {
        // Our user namespace is new (onggi has written its maps) or was joined by the helper
        // that cloned us: become its root (when 0 is mapped; otherwise we stay the overflow
        // id, with the namespace's capabilities).
        trace::step("userns_root", |c| {
            use nix::unistd::{setresgid, setresuid, Gid, Uid};
            let g = Gid::from_raw(0);
            let u = Uid::from_raw(0);
            if setresgid(g, g, g).is_ok() && setresuid(u, u, u).is_ok() {
                c.note(|| "setresgid(0) setresuid(0) in the new user namespace".into());
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    Ok(())
}

/// The root filesystem in a mount namespace of the container's own; without one (it shares
/// onggi's, which is the host's), a chroot and nothing else.
fn filesystem(
    ctx: &InitContext<'_>,
    state: &str,
    sources: &crate::sources::Received,
) -> Result<()> {
    let plan = ctx.plan;
    let spec = &plan.bundle.spec;
    let mut before_pivot = || hooks::run(Moment::CreateContainer, spec, state, None);
    if !plan.has_namespace(LinuxNamespaceType::Mount) {
        before_pivot()?;
        return trace::step("chroot", |c| rootfs::chroot_only(&plan.bundle.rootfs, c));
    }
    let userns = plan.has_namespace(LinuxNamespaceType::User);
    let no_trees = rootfs::template::Trees::default();
    let cx = rootfs::MountContext {
        // In a user namespace of its own, or in onggi's (rootless podman): the kernel treats
        // the init as root of a user namespace either way (no mknod, locked flags).
        userns: userns || namespaces::in_user_namespace(),
        cgroupns: plan.has_namespace(LinuxNamespaceType::Cgroup),
        cgroup: ctx.cgroup,
        idmaps: ctx.idmaps,
        sources,
        bundle: &plan.bundle.dir,
        mount_label: plan.linux().and_then(|l| l.mount_label().as_deref()),
        template: ctx.mount_template,
        trees: &no_trees,
    };
    let template = ctx.mount_template.is_some();
    let ops = rootfs::plan(spec, &plan.mounts, ctx.no_pivot, template);
    rootfs::setup(&ops, &plan.bundle.rootfs, &cx, &mut before_pivot)
}

/// What the container's own namespaces hold besides its files: `lo` up in a new network
/// namespace (runc's behaviour; a joined one is left as its owner configured it), the host and
/// domain names, and the sysctls.
fn system(ctx: &InitContext<'_>) -> Result<()> {
    let plan = ctx.plan;
    let spec = &plan.bundle.spec;
    if plan.new_namespace(LinuxNamespaceType::Network) {
        trace::step("loopback", |c| {
            sys::loopback_up().context("cannot bring up lo in the new network namespace")?;
            c.note(|| "ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)".into());
            anyhow::Ok(())
        })?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        trace::step("hostname", |c| {
            nix::unistd::sethostname(h).with_context(|| format!("sethostname({h:?})"))?;
            c.note(|| format!("sethostname({h:?})"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        trace::step("domainname", |c| {
            sys::set_domainname(d).with_context(|| format!("setdomainname({d:?})"))?;
            c.note(|| format!("setdomainname({d:?})"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    if let Some(sysctl) = plan.linux().and_then(|l| l.sysctl().as_ref()) {
        trace::step("sysctl", |c| {
            let mut keys: Vec<_> = sysctl.iter().collect();
            keys.sort();
            for (k, v) in keys {
                let rel = PathBuf::from("sys").join(k.replace('.', "/"));
                crate::procfs::write(ctx.procfs, &rel, v)
                    .with_context(|| format!("linux.sysctl {k}"))?;
                c.note(|| format!("write /proc/{} = {v:?}", rel.display()));
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    Ok(())
}
