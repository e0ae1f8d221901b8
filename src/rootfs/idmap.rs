//! The user namespaces behind idmapped mounts (`uidMappings`/`gidMappings` of a mount), made by
//! onggi before the clone and handed to the init as descriptors.

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use crate::sys;
use crate::trace;

/// The user namespaces of the idmapped mounts, by mount index: made by onggi before clone3
/// (see [`idmap_userns`]) and inherited by the init, which attaches them to the binds.
#[derive(Default)]
pub(crate) struct IdmapUserns(Vec<(usize, OwnedFd)>);

impl IdmapUserns {
    /// One user namespace per mount that has uidMappings/gidMappings.
    pub(crate) fn for_mounts(mounts: &[Mount], procfs: BorrowedFd<'_>) -> Result<IdmapUserns> {
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

    pub(super) fn get(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.0.iter().find(|(j, _)| *j == i).map(|(_, f)| f.as_fd())
    }

    /// The descriptors, for the init's keep list.
    pub(crate) fn fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
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
    let w_end = w.as_raw_fd();
    let child = sys::spawn(libc::CLONE_NEWUSER as u64, None, || {
        // Our copy of the write end is closed, so the read ends when onggi closes its copy.
        let _ = nix::unistd::close(w_end);
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(r.as_raw_fd(), &mut b);
        0
    })
    .context("clone3(CLONE_NEWUSER)")?;
    drop(r);
    let dir = PathBuf::from(child.pid.to_string());
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
        sys::openat2(procfs, &dir.join("ns/user"), libc::O_RDONLY, 0, 0).context("open ns/user")
    })();
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None);
    res
}
