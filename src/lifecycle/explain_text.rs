//! `explain`'s text for a learner, in English or Korean: each part of what the kernel sees,
//! with a line saying what it means.

use std::fmt::Write as _;

use super::explain::{Explained, Namespace};

/// The words of the report, in one language.
struct Words {
    header: &'static str,
    on_host: &'static str,
    namespaces: &'static str,
    own: &'static str,
    host: &'static str,
    with: &'static str,
    cgroup: &'static str,
    no_cgroup: &'static str,
    capabilities: &'static str,
    none: &'static str,
    security: &'static str,
    seccomp_modes: [&'static str; 3],
    filters: &'static str,
    no_new_privs: &'static str,
    yes_no: [&'static str; 2],
    maps: &'static str,
    identity: &'static str,
    mounts: &'static str,
    of_total: &'static str,
    processes: &'static str,
    columns: &'static str,
}

const EN: Words = Words {
    header: "container",
    on_host: "init pid on the host",
    namespaces: "namespaces (inode; own = only this container has it)",
    own: "own",
    host: "shared with the host",
    with: "shared with container",
    cgroup: "cgroup (limits and what is used now)",
    no_cgroup: "no cgroup",
    capabilities: "capabilities of the init",
    none: "(none)",
    security: "security",
    seccomp_modes: ["off", "strict", "filter"],
    filters: "filters",
    no_new_privs: "no_new_privs (setuid binaries gain nothing)",
    yes_no: ["yes", "no"],
    maps: "user namespace id maps (inside outside count)",
    identity: "the host's ids (no user namespace of its own)",
    mounts: "root and mounts",
    of_total: "of",
    processes: "processes",
    columns: "host pid  container pid  command",
};

const KO: Words = Words {
    header: "컨테이너",
    on_host: "호스트에서 본 init PID",
    namespaces: "네임스페이스 (inode; 자체 = 이 컨테이너만 가짐)",
    own: "자체",
    host: "호스트와 공유",
    with: "다음 컨테이너와 공유:",
    cgroup: "씨그룹 (제한과 현재 사용량)",
    no_cgroup: "씨그룹 없음",
    capabilities: "init의 캐퍼빌리티",
    none: "(없음)",
    security: "보안",
    seccomp_modes: ["꺼짐", "strict", "필터"],
    filters: "필터",
    no_new_privs: "no_new_privs (setuid 바이너리로 권한을 얻지 못함)",
    yes_no: ["예", "아니오"],
    maps: "사용자 네임스페이스 ID 매핑 (안 밖 개수)",
    identity: "호스트의 ID (자체 사용자 네임스페이스 없음)",
    mounts: "루트와 마운트",
    of_total: "/",
    processes: "프로세스",
    columns: "호스트 PID  컨테이너 PID  명령",
};

/// The capability sets' names in Korean.
fn set_name(set: &str, korean: bool) -> &str {
    if !korean {
        return set;
    }
    match set {
        "effective" => "유효(effective)",
        "permitted" => "허용(permitted)",
        "inheritable" => "상속(inheritable)",
        "bounding" => "경계(bounding)",
        _ => "앰비언트(ambient)",
    }
}

pub(crate) fn render(e: &Explained, korean: bool) -> String {
    let w = if korean { &KO } else { &EN };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} ({}), {} {}, bundle {}",
        w.header, e.id, e.status, w.on_host, e.pid, e.bundle
    );
    let _ = writeln!(o, "\n{}", w.namespaces);
    for n in &e.namespaces {
        let _ = writeln!(o, "  {:<7} {:<11} {}", n.kind, n.inode, shared(n, w));
    }
    match &e.cgroup {
        Some(cg) => {
            let _ = writeln!(o, "\n{} {}", w.cgroup, cg.path);
            for (file, value) in &cg.files {
                let _ = writeln!(o, "  {file:<15} {value}");
            }
        }
        None => {
            let _ = writeln!(o, "\n{}", w.no_cgroup);
        }
    }
    let _ = writeln!(o, "\n{}", w.capabilities);
    for c in &e.capabilities {
        let names = if c.names.is_empty() {
            w.none.to_string()
        } else {
            c.names.join(" ")
        };
        let _ = writeln!(o, "  {:<19} {} {names}", set_name(c.set, korean), c.mask);
    }
    let mode = w
        .seccomp_modes
        .get(e.seccomp.mode as usize)
        .copied()
        .unwrap_or("?");
    let _ = writeln!(o, "\n{}", w.security);
    let _ = writeln!(
        o,
        "  seccomp       {mode} ({} {})",
        e.seccomp.filters, w.filters
    );
    let _ = writeln!(
        o,
        "  {}  {}",
        w.no_new_privs,
        w.yes_no[usize::from(!e.no_new_privs)]
    );
    let _ = writeln!(o, "\n{}", w.maps);
    for (name, map) in [("uid", &e.uid_map), ("gid", &e.gid_map)] {
        let shown = match map.as_slice() {
            [one] if one == "0 0 4294967295" => w.identity.to_string(),
            lines => lines.join("; "),
        };
        let _ = writeln!(o, "  {name}  {shown}");
    }
    let _ = writeln!(
        o,
        "\n{} ({} {} {})",
        w.mounts,
        e.mounts.len(),
        w.of_total,
        e.mounts_total
    );
    for m in &e.mounts {
        let _ = writeln!(
            o,
            "  {:<20} {:<9} {:<10} {}",
            m.target, m.fstype, m.source, m.options
        );
    }
    let _ = writeln!(o, "\n{}\n  {}", w.processes, w.columns);
    for p in &e.processes {
        let depth = depth(e, p.host_pid);
        let _ = writeln!(
            o,
            "  {:<9} {:<14} {}{}",
            p.host_pid,
            p.container_pid,
            "  ".repeat(depth),
            p.command
        );
    }
    o.trim_end().to_string()
}

fn shared(n: &Namespace, w: &Words) -> String {
    match n.shared {
        "host" => w.host.to_string(),
        "container" => format!("{} {}", w.with, n.with.join(", ")),
        _ => w.own.to_string(),
    }
}

/// How deep a process is in the container's process tree (the init is 0).
fn depth(e: &Explained, pid: i32) -> usize {
    let mut d = 0;
    let mut at = pid;
    while let Some(p) = e.processes.iter().find(|p| p.host_pid == at) {
        if !e.processes.iter().any(|q| q.host_pid == p.parent) || d > 32 {
            break;
        }
        at = p.parent;
        d += 1;
    }
    d
}
