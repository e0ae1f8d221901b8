//! Mount sources opened by onggi for the init: the rootfs and the source of every bind mount
//! of a container with a user namespace and a new mount namespace.
//!
//! The init runs as root of its user namespace, which gives it no right to walk into host
//! directories only the host's root may enter (a checkout under `/root` or a 0700 `mktemp -d`,
//! a volume under kubelet's 0750 pod directories): `bind source …: Permission denied`. So,
//! while the init waits for Go, onggi — still the host's root — opens each source *through the
//! init's own mount namespace* (`/proc/<pid>/root/<canonical path>`, O_PATH) and sends the
//! descriptors with Go. The init clones the mounts from them (`open_tree(fd, "")`): they are
//! mounts of its own namespace, so the host's flags stay locked as the kernel locks them for a
//! less privileged namespace (a detached tree made by onggi itself would not be: its `ro`
//! could be cleared from inside). A source onggi cannot open is left to the init, which
//! reports it as before.

use anyhow::{Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::msg::Source;
use crate::spec::Bundle;
use crate::{sys, trace};

/// What onggi opened, in the order it is sent.
#[derive(Default)]
pub(crate) struct Opened(Vec<(Source, OwnedFd)>);

impl Opened {
    pub(crate) fn kinds(&self) -> Vec<Source> {
        self.0.iter().map(|(k, _)| *k).collect()
    }

    pub(crate) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.0.iter().map(|(_, f)| f.as_fd()).collect()
    }
}

/// Whether the container's sources are opened by onggi (see the module doc).
fn needed(bundle: &Bundle) -> bool {
    bundle.has_namespace(LinuxNamespaceType::User)
        && bundle.new_namespace(LinuxNamespaceType::Mount)
}

/// A bind mount's source on the host, as the init would resolve it.
pub(crate) fn bind_source(m: &oci_spec::runtime::Mount, bundle_dir: &Path) -> Option<PathBuf> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let bind =
        m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
    let src = m.source().as_ref().filter(|_| bind)?;
    Some(if src.is_absolute() {
        src.clone()
    } else {
        bundle_dir.join(src)
    })
}

/// Opens the sources of `bundle` through the mount namespace of the init `pid` (step
/// `mount_sources`); nothing when the container does not need it.
pub(crate) fn open(bundle: &Bundle, procfs: BorrowedFd<'_>, pid: i32) -> Result<Opened> {
    if !needed(bundle) {
        return Ok(Opened::default());
    }
    trace::step("mount_sources", |c| {
        let mut wanted = vec![(Source::Rootfs, bundle.rootfs.clone())];
        for (i, m) in bundle.spec.mounts().iter().flatten().enumerate() {
            if let Some(src) = bind_source(m, &bundle.dir) {
                wanted.push((Source::Mount(i), src));
            }
        }
        let mut opened = Vec::new();
        for (kind, path) in wanted.into_iter().take(sys::MAX_FDS_PER_MESSAGE) {
            // Canonical first: what is left to resolve under /proc/<pid>/root has no symlink
            // that could lead back into onggi's own mount namespace.
            let Ok(real) = std::fs::canonicalize(&path) else {
                continue;
            };
            let rel =
                PathBuf::from(format!("{pid}/root")).join(real.strip_prefix("/").unwrap_or(&real));
            let fd = sys::openat2(procfs, &rel, libc::O_PATH, 0, 0)
                .with_context(|| format!("cannot open {} for the init", real.display()))?;
            c.note(|| format!("open(/proc/{}, O_PATH)", rel.display()));
            opened.push((kind, fd));
        }
        anyhow::Ok(Opened(opened))
    })
}

/// The sources as the init received them with Go.
#[derive(Default)]
pub(crate) struct Received {
    rootfs: Option<OwnedFd>,
    mounts: Vec<(usize, OwnedFd)>,
}

impl Received {
    pub(crate) fn new(kinds: &[Source], fds: Vec<OwnedFd>) -> Received {
        let mut r = Received::default();
        for (k, fd) in kinds.iter().zip(fds) {
            match k {
                Source::Rootfs => r.rootfs = Some(fd),
                Source::Mount(i) => r.mounts.push((*i, fd)),
            }
        }
        r
    }

    pub(crate) fn rootfs(&self) -> Option<BorrowedFd<'_>> {
        self.rootfs.as_ref().map(|f| f.as_fd())
    }

    pub(crate) fn mount(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.mounts
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, f)| f.as_fd())
    }
}
