//! Linux namespaces: which ones the container gets new (clone3 flags) and which it joins by path
//! (setns), in the order the kernel requires.

use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::AsFd;
use std::path::Path;

use crate::trace;

/// The spec's name of a namespace type ("pid", "network" …).
pub(crate) fn name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The CLONE_NEW* flag of a namespace type.
pub(crate) fn clone_flag(t: LinuxNamespaceType) -> u64 {
    (match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }) as u64
}

/// Names the CLONE_* bits of `flags` for traces: `CLONE_NEWPID|CLONE_NEWNS|…`.
pub(crate) fn flag_names(flags: u64) -> String {
    const ALL: &[(i32, &str)] = &[
        (libc::CLONE_NEWNS, "CLONE_NEWNS"),
        (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
        (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET"),
        (libc::CLONE_NEWTIME, "CLONE_NEWTIME"),
        (libc::CLONE_PIDFD, "CLONE_PIDFD"),
    ];
    let mut v: Vec<&str> = ALL
        .iter()
        .filter(|(f, _)| flags & (*f as u64) != 0)
        .map(|(_, n)| *n)
        .collect();
    if flags & crate::sys::CLONE_INTO_CGROUP != 0 {
        v.push("CLONE_INTO_CGROUP");
    }
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

/// clone3 flags for the namespaces the container gets new. A pid namespace given by path is
/// joined by the parent before cloning (see [`join_pid_namespace`]), so it is not here.
///
/// A new time namespace is not among them either: its clock offsets can only be written before
/// any process is in it, so the init unshares it and writes them, and its execve moves it in
/// (see [`new_time_namespace`]).
pub(crate) fn new_namespace_flags(list: &[LinuxNamespace]) -> u64 {
    list.iter()
        .filter(|n| n.path().is_none() && n.typ() != LinuxNamespaceType::Time)
        .map(|n| clone_flag(n.typ()))
        .fold(0, |a, b| a | b)
}

pub(crate) fn open_ns(t: LinuxNamespaceType, path: &Path) -> Result<std::fs::File> {
    let f = std::fs::File::open(path).with_context(|| {
        format!(
            "linux.namespaces {} path {}: cannot open",
            name(t),
            path.display()
        )
    })?;
    Ok(f)
}

pub(crate) fn setns_file(t: LinuxNamespaceType, path: &Path, f: &std::fs::File) -> Result<()> {
    let flag = nix::sched::CloneFlags::from_bits_truncate(clone_flag(t) as i32);
    nix::sched::setns(f.as_fd(), flag).map_err(|e| {
        let hint = if e == nix::errno::Errno::EINVAL {
            format!(" (is {} a {} namespace?)", path.display(), name(t))
        } else {
            String::new()
        };
        anyhow::anyhow!(
            "linux.namespaces {} path {}: setns: {e}{hint}",
            name(t),
            path.display()
        )
    })
}

/// In the parent, before clone3: a pid namespace given by path must be entered by the process
/// that forks (setns(CLONE_NEWPID) only changes the namespace of the caller's future children),
/// so the init is born in it without a second fork.
pub(crate) fn join_pid_namespace(list: &[LinuxNamespace]) -> Result<()> {
    let Some(ns) = list.iter().find(|n| n.typ() == LinuxNamespaceType::Pid) else {
        return Ok(());
    };
    let Some(path) = ns.path() else { return Ok(()) };
    trace::step("join_pid_namespace", |c| {
        setns_file(
            LinuxNamespaceType::Pid,
            path,
            &open_ns(LinuxNamespaceType::Pid, path)?,
        )?;
        c.note(|| format!("setns({}, pid)", path.display()));
        Ok(())
    })
}

/// Whether onggi itself runs inside a user namespace other than the initial one (rootless
/// podman runs its runtime as "root" of such a namespace): our uid_map is not the identity map
/// of all 4294967295 ids.
pub(crate) fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
}

/// Whether onggi lacks real root: not euid 0, or euid 0 only inside a user namespace. Such a
/// caller owns no cgroup unless one was delegated, loads no device program, makes no device
/// nodes, and must keep the init dumpable until it has written the init's id maps.
pub(crate) fn rootless() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// The user namespace the config joins by path, if any.
pub(crate) fn joined_user_namespace(list: &[LinuxNamespace]) -> Option<&Path> {
    list.iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .and_then(|n| n.path().as_deref())
}

/// In the init: join every namespace given by path, except pid (already done by the parent)
/// and user (done by the helper that cloned the init, see `process::clone_init`).
/// All files are opened first, from the original mount namespace.
pub(crate) fn join_namespaces(list: &[LinuxNamespace]) -> Result<()> {
    trace::step("join_namespaces", |c| {
        let mut joined: Vec<(LinuxNamespaceType, &Path)> = list
            .iter()
            .filter(|n| !matches!(n.typ(), LinuxNamespaceType::Pid | LinuxNamespaceType::User))
            .filter_map(|n| n.path().as_deref().map(|p| (n.typ(), p)))
            .collect();
        // Mount last: the others' paths are host paths.
        joined.sort_by_key(|(t, _)| *t == LinuxNamespaceType::Mount);
        // Open all first (paths are host paths, resolved before any setns changes our view).
        let files = joined
            .iter()
            .map(|(t, p)| open_ns(*t, p).map(|f| (*t, *p, f)))
            .collect::<Result<Vec<_>>>()?;
        for (t, p, f) in files {
            setns_file(t, p, &f)?;
            c.note(|| format!("setns({}, {})", p.display(), name(t)));
        }
        Ok(())
    })
}

/// In the init: unshare(CLONE_NEWTIME), then write `linux.timeOffsets` to our
/// `timens_offsets` through the verified procfs handle. The init itself stays in the old time
/// namespace until its execve, which moves it in (Linux ≥ 5.19); nothing has entered the new
/// one before the offsets are written.
pub(crate) fn new_time_namespace(
    offsets: Option<&std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>>,
    procfs: std::os::fd::BorrowedFd<'_>,
    c: &mut crate::trace::Calls,
) -> Result<()> {
    // nix's CloneFlags has no CLONE_NEWTIME bit (from_bits_truncate would drop it).
    crate::sys::unshare(libc::CLONE_NEWTIME).context("unshare(CLONE_NEWTIME)")?;
    c.note(|| "unshare(CLONE_NEWTIME)".into());
    let text = time_offsets_text(offsets);
    if text.is_empty() {
        return Ok(());
    }
    // Our pid in the host's /proc (we are 1 in our own pid namespace).
    let me = nix::fcntl::readlinkat(Some(std::os::fd::AsRawFd::as_raw_fd(&procfs)), "self")
        .context("readlink /proc/self")?;
    let rel = std::path::Path::new(&me).join("timens_offsets");
    crate::procfs::write(procfs, &rel, &text).context("linux.timeOffsets")?;
    c.note(|| {
        format!(
            "write /proc/{}/timens_offsets = {text:?}",
            me.to_string_lossy()
        )
    });
    Ok(())
}

/// `monotonic S N` / `boottime S N` lines, in a fixed order.
fn time_offsets_text(
    offsets: Option<&std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>>,
) -> String {
    let mut lines = Vec::new();
    for clock in ["monotonic", "boottime"] {
        if let Some(o) = offsets.and_then(|m| m.get(clock)) {
            lines.push(format!(
                "{clock} {} {}",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            ));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_names() {
        let f = clone_flag(LinuxNamespaceType::Pid) | clone_flag(LinuxNamespaceType::Mount);
        assert_eq!(flag_names(f), "CLONE_NEWNS|CLONE_NEWPID");
    }
}
