//! `explain`: what the kernel sees of a live container, gathered from /proc and the cgroup
//! files into one typed [`Explained`], then printed for a learner (explain_text.rs) or as JSON.
//! Everything is read from the host's view while a pidfd holds the init, and the init is
//! checked to be alive afterwards, so a pid reused mid-read is never described.

use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;

use super::{members, wait_exit, Container, LifecycleError};
use crate::state::{Status, Store};

/// The namespace types as /proc/<pid>/ns names them.
const NAMESPACES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];
/// How many mounts are listed (the root first).
const MOUNTS_SHOWN: usize = 10;

#[derive(Serialize)]
pub(crate) struct Explained {
    pub(crate) id: String,
    pub(crate) status: String,
    pub(crate) pid: i32,
    pub(crate) bundle: String,
    pub(crate) namespaces: Vec<Namespace>,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) capabilities: Vec<CapSet>,
    pub(crate) seccomp: Seccomp,
    pub(crate) no_new_privs: bool,
    pub(crate) uid_map: Vec<String>,
    pub(crate) gid_map: Vec<String>,
    pub(crate) mounts_total: usize,
    pub(crate) mounts: Vec<MountLine>,
    pub(crate) processes: Vec<Proc>,
}

#[derive(Serialize)]
pub(crate) struct Namespace {
    pub(crate) kind: &'static str,
    pub(crate) inode: u64,
    /// "own", "host", or "container" (then `with` names the containers).
    pub(crate) shared: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) with: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Cgroup {
    pub(crate) path: String,
    /// (file, value) of the limits and usage files present, in a fixed order.
    pub(crate) files: Vec<(String, String)>,
}

#[derive(Serialize)]
pub(crate) struct CapSet {
    /// effective, permitted, inheritable, bounding, ambient.
    pub(crate) set: &'static str,
    pub(crate) mask: String,
    pub(crate) names: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Seccomp {
    /// 0 disabled, 1 strict, 2 filter.
    pub(crate) mode: u32,
    pub(crate) filters: u32,
}

#[derive(Serialize)]
pub(crate) struct MountLine {
    pub(crate) target: String,
    pub(crate) fstype: String,
    pub(crate) source: String,
    pub(crate) options: String,
}

#[derive(Serialize)]
pub(crate) struct Proc {
    pub(crate) host_pid: i32,
    pub(crate) container_pid: i32,
    pub(crate) parent: i32,
    pub(crate) command: String,
}

/// `explain ID`: gathers, then prints text (labels in `lang`) or JSON.
pub(crate) fn explain(store: &Store, id: &str, json: bool, korean: bool) -> Result<()> {
    let c = Container::open(store, id)?;
    let status = c.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(LifecycleError::NotRunningIs(id.into(), status).into());
    }
    let Some(pidfd) = c.init()? else {
        return Err(LifecycleError::NotRunning(id.into()).into());
    };
    let e = gather(store, &c, status)?;
    // The same process from first read to last: it must still live.
    if wait_exit(std::os::fd::AsFd::as_fd(&pidfd), 0) {
        bail!("{id}: the container's init exited while onggi read it");
    }
    let out = if json {
        serde_json::to_string_pretty(&e)?
    } else {
        super::explain_text::render(&e, korean)
    };
    crate::logging::print(&out);
    Ok(())
}

fn gather(store: &Store, c: &Container, status: Status) -> Result<Explained> {
    let pid = c.state.pid;
    let proc_dir = format!("/proc/{pid}");
    let status_text = read(&format!("{proc_dir}/status"));
    let field = |k: &str| {
        status_text
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (mounts_total, mounts) = mounts(&read(&format!("{proc_dir}/mountinfo")));
    Ok(Explained {
        id: c.id().to_string(),
        status: status.to_string(),
        pid,
        bundle: c.state.bundle.display().to_string(),
        namespaces: namespaces(store, c.id(), pid),
        cgroup: c.state.cgroup.as_deref().map(cgroup),
        capabilities: ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"]
            .into_iter()
            .map(|k| cap_set(k, &field(k)))
            .collect(),
        seccomp: Seccomp {
            mode: field("Seccomp").parse().unwrap_or(0),
            filters: field("Seccomp_filters").parse().unwrap_or(0),
        },
        no_new_privs: field("NoNewPrivs") == "1",
        uid_map: map_lines(&read(&format!("{proc_dir}/uid_map"))),
        gid_map: map_lines(&read(&format!("{proc_dir}/gid_map"))),
        mounts_total,
        mounts,
        processes: processes(&c.state),
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The inode in a /proc/<pid>/ns link (`net:[4026531840]`).
fn ns_inode(pid: &str, kind: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    let s = link.to_str()?;
    s.split_once('[')?.1.strip_suffix(']')?.parse().ok()
}

/// Each namespace of the init: the container's own, the host's (the one onggi itself runs in,
/// as the caller's shell does), or shared with other containers of this store.
fn namespaces(store: &Store, id: &str, pid: i32) -> Vec<Namespace> {
    let others: Vec<(String, i32)> = store
        .ids()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o != id)
        .filter_map(|o| {
            let s = store.peek(&o).ok()?.load().ok()??;
            (s.pid > 0 && s.init().is_some_and(|i| i.alive())).then_some((o, s.pid))
        })
        .collect();
    NAMESPACES
        .iter()
        .filter_map(|&kind| {
            let inode = ns_inode(&pid.to_string(), kind)?;
            let with: Vec<String> = others
                .iter()
                .filter(|(_, p)| ns_inode(&p.to_string(), kind) == Some(inode))
                .map(|(o, _)| o.clone())
                .collect();
            let shared = if ns_inode("self", kind) == Some(inode) {
                "host"
            } else if !with.is_empty() {
                "container"
            } else {
                "own"
            };
            Some(Namespace {
                kind,
                inode,
                shared,
                with,
            })
        })
        .collect()
}

/// The limits and usage files of the container's cgroup that exist.
fn cgroup(dir: &Path) -> Cgroup {
    let files = [
        "memory.current",
        "memory.max",
        "memory.peak",
        "pids.current",
        "pids.max",
        "cpu.max",
        "cpu.weight",
        "cpu.stat",
        "cgroup.freeze",
    ];
    let files = files
        .iter()
        .filter_map(|f| {
            let v = std::fs::read_to_string(dir.join(f)).ok()?;
            let v = if *f == "cpu.stat" {
                v.lines().find(|l| l.starts_with("usage_usec"))?.to_string()
            } else {
                v.trim().to_string()
            };
            Some((f.to_string(), v))
        })
        .collect();
    Cgroup {
        path: dir.display().to_string(),
        files,
    }
}

/// A capability set from its hex mask in /proc/<pid>/status, with the names of its bits.
fn cap_set(key: &str, mask: &str) -> CapSet {
    let bits = u64::from_str_radix(mask, 16).unwrap_or(0);
    let mut names: Vec<(u8, String)> = caps::all()
        .into_iter()
        .filter(|c| bits & c.bitmask() != 0)
        .map(|c| (c.index(), c.to_string()))
        .collect();
    names.sort();
    let set = match key {
        "CapEff" => "effective",
        "CapPrm" => "permitted",
        "CapInh" => "inheritable",
        "CapBnd" => "bounding",
        _ => "ambient",
    };
    CapSet {
        set,
        mask: mask.to_string(),
        names: names.into_iter().map(|(_, n)| n).collect(),
    }
}

/// uid_map / gid_map lines, spaces collapsed ("0 100000 65536").
fn map_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The number of mounts and the first few (mountinfo order: the root first).
fn mounts(mountinfo: &str) -> (usize, Vec<MountLine>) {
    let all: Vec<MountLine> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            Some(MountLine {
                target: left.get(4)?.to_string(),
                options: left.get(5)?.to_string(),
                fstype: right.next()?.to_string(),
                source: right.next()?.to_string(),
            })
        })
        .collect();
    let total = all.len();
    (total, all.into_iter().take(MOUNTS_SHOWN).collect())
}

/// The container's processes: host pid, pid inside (the last NSpid), parent, command line.
fn processes(state: &crate::state::State) -> Vec<Proc> {
    let mut procs: Vec<Proc> = members(state)
        .into_iter()
        .map(|p| {
            let status = read(&format!("/proc/{p}/status"));
            let field = |k: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            let nspid = field("NSpid:");
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            Proc {
                host_pid: p,
                container_pid: nspid
                    .split_whitespace()
                    .last()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(p),
                parent: field("PPid:").parse().unwrap_or(0),
                command: String::from_utf8_lossy(&cmd)
                    .replace('\0', " ")
                    .trim_end()
                    .to_string(),
            }
        })
        .collect();
    procs.sort_by_key(|p| p.host_pid);
    procs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_mask_is_decoded_by_bit() {
        let s = cap_set("CapEff", "0000000000000401");
        assert_eq!(s.set, "effective");
        assert_eq!(s.names, ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
        assert!(cap_set("CapAmb", "0000000000000000").names.is_empty());
    }

    #[test]
    fn mountinfo_lines_give_target_type_and_source() {
        let text = "74 60 0:44 / / ro,relatime - overlay overlay rw,lowerdir=/l\n\
                    75 74 0:20 / /proc rw,nosuid - proc proc rw\n";
        let (total, m) = mounts(text);
        assert_eq!(total, 2);
        assert_eq!(
            (
                m[0].target.as_str(),
                m[0].fstype.as_str(),
                m[0].options.as_str()
            ),
            ("/", "overlay", "ro,relatime")
        );
        assert_eq!(
            (m[1].target.as_str(), m[1].source.as_str()),
            ("/proc", "proc")
        );
    }

    #[test]
    fn id_maps_collapse_their_spaces() {
        assert_eq!(
            map_lines("         0     100000      65536\n"),
            ["0 100000 65536"]
        );
    }
}
