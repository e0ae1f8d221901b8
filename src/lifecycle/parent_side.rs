//! What onggi, still root on the host, does for the init between clone3 and Go: the id maps of
//! a new user namespace (the init cannot write its own) or the check of a joined one's, the
//! network devices, and the oom score (a non-dumpable init's /proc files belong to host root).

use anyhow::{bail, Context, Result};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use crate::plan::Plan;
use crate::{namespaces, trace};

/// The parent's steps for the init `pid`, which waits for Go: id_maps_check or id_maps,
/// net_devices, oom_score_adj (each only when the config asks for it).
pub(crate) fn run(plan: &Plan, procfs: BorrowedFd<'_>, pid: i32) -> Result<()> {
    let linux = plan.linux();
    if let Some(path) = namespaces::joined_user_namespace(plan.bundle.namespaces()) {
        trace::step("id_maps_check", |c| {
            check_joined_maps(linux, procfs, pid, path)?;
            c.note(|| format!("read /proc/{pid}/uid_map, gid_map: as linux.uid/gidMappings say"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    if plan.new_namespace(oci_spec::runtime::LinuxNamespaceType::User) {
        trace::step("id_maps", |c| write_id_maps(linux, procfs, pid, c))?;
    }
    let devs = crate::netdev::devices(&plan.bundle.spec);
    if !devs.is_empty() {
        trace::step("net_devices", |c| crate::netdev::move_in(&devs, pid, c))?;
    }
    let oom = plan
        .process
        .as_ref()
        .and_then(|p| p.process.oom_score_adj());
    if let Some(adj) = oom {
        trace::step("oom_score_adj", |c| {
            let rel = PathBuf::from(pid.to_string()).join("oom_score_adj");
            crate::procfs::write(procfs, &rel, &adj.to_string()).context("process.oomScoreAdj")?;
            c.note(|| format!("write /proc/{pid}/oom_score_adj = {adj}"));
            Ok::<_, anyhow::Error>(())
        })?;
    }
    Ok(())
}

/// The uid_map and gid_map of the init's new user namespace, from linux.uid/gidMappings.
fn write_id_maps(
    linux: Option<&oci_spec::runtime::Linux>,
    procfs: BorrowedFd<'_>,
    pid: i32,
    c: &mut trace::Calls,
) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        // An unprivileged writer may map only its own ids, and gid_map only once setgroups is
        // denied (user_namespaces(7)).
        let rel = PathBuf::from(pid.to_string()).join("setgroups");
        crate::procfs::write(procfs, &rel, "deny").context("setgroups deny")?;
        c.note(|| format!("write /proc/{pid}/setgroups = \"deny\""));
    }
    for (file, maps) in [
        ("uid_map", linux.and_then(|l| l.uid_mappings().as_deref())),
        ("gid_map", linux.and_then(|l| l.gid_mappings().as_deref())),
    ] {
        let text = crate::procfs::id_map_text(maps.unwrap_or(&[]));
        if text.is_empty() {
            continue;
        }
        let rel = PathBuf::from(pid.to_string()).join(file);
        crate::procfs::write(procfs, &rel, &text)
            .with_context(|| format!("linux.{}Mappings", &file[..3]))?;
        c.note(|| format!("write /proc/{pid}/{file} = {:?}", text.trim_end()));
    }
    Ok(())
}

/// A user namespace joined by path with mappings in the config (podman sends them for its
/// pods): they must be the namespace's own, as runc checks. Read from the init's uid_map and
/// gid_map as onggi sees them (ids of onggi's own user namespace, as the config's hostIDs are).
fn check_joined_maps(
    linux: Option<&oci_spec::runtime::Linux>,
    procfs: BorrowedFd<'_>,
    pid: i32,
    path: &Path,
) -> Result<()> {
    for (field, file, maps) in [
        (
            "uidMappings",
            "uid_map",
            linux.and_then(|l| l.uid_mappings().as_deref()),
        ),
        (
            "gidMappings",
            "gid_map",
            linux.and_then(|l| l.gid_mappings().as_deref()),
        ),
    ] {
        let Some(maps) = maps.filter(|m| !m.is_empty()) else {
            continue;
        };
        let rel = PathBuf::from(pid.to_string()).join(file);
        let have = crate::procfs::read(procfs, &rel)?;
        let have: Vec<Vec<&str>> = have
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let want = crate::procfs::id_map_text(maps);
        let want: Vec<Vec<&str>> = want
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        if have != want {
            bail!(
                "linux.{field} {} do not match the user namespace {} (it maps {})",
                want.iter()
                    .map(|l| l.join(" "))
                    .collect::<Vec<_>>()
                    .join(", "),
                path.display(),
                have.iter()
                    .map(|l| l.join(" "))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}
