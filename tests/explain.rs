//! `onggi explain ID`: what the kernel sees of a live container, checked against what the host
//! itself reads of that container's processes.

mod common;
use common::*;
use serde_json::{json, Value};

/// A pod-like pair, `{tag}a` and `{tag}b` (ids unique across the tests of this file, which run
/// in parallel: the default cgroup is /ID): a runs two processes; b joins a's network namespace
/// by path and has a seccomp filter and a small capability set.
fn pair(o: &Onggi, tag: &str) -> (Bundle, Bundle, i64) {
    let (ida, idb) = (format!("{tag}a"), format!("{tag}b"));
    let a = sh("sleep 300 & exec sleep 301");
    o.ok(&["create", "--bundle", a.dir(), &ida]);
    o.ok(&["start", &ida]);
    let pid = o.state(&ida)["pid"].as_i64().unwrap();
    // The shell has forked `sleep 300` and become `sleep 301`.
    wait_for_execve(pid);
    let b = sh("exec sleep 302").with(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"]});
        c["process"]["noNewPrivileges"] = json!(true);
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]});
        c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
            {"type": "uts"}, {"type": "network", "path": format!("/proc/{pid}/ns/net")}]);
    });
    o.ok(&["create", "--bundle", b.dir(), &idb]);
    o.ok(&["start", &idb]);
    // `start` returns when the gate opens, maybe before the init's execve.
    let b_pid = o.state(&idb)["pid"].as_i64().unwrap();
    wait_for_execve(b_pid);
    (a, b, pid)
}

/// Waits until the process `pid` runs `sleep` (the container's process has replaced onggi's init
/// and any shell): `start` and `run -d` return before that execve.
fn wait_for_execve(pid: i64) {
    wait_for(|| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .starts_with("sleep")
    });
}

#[test]
fn explain_shows_namespaces_capabilities_seccomp_and_processes() {
    let o = Onggi::new();
    let (_a, _b, a_pid) = pair(&o, "sh");
    let out = o.ok(&["explain", "shb"]);
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
            .to_string()
    };
    assert!(line("net ").ends_with("shared with container sha"), "{out}");
    assert!(line("pid ").ends_with(" own"), "{out}");
    // Root's execve makes the effective set the permitted one (the kernel's rule for uid 0).
    assert!(
        line("effective").ends_with("0000000000000021 CAP_CHOWN CAP_KILL"),
        "{out}"
    );
    assert!(line("permitted").ends_with("CAP_CHOWN CAP_KILL"), "{out}");
    assert!(line("ambient").ends_with("(none)"), "{out}");
    assert!(line("seccomp").contains("filter (1 filters)"), "{out}");
    assert!(line("no_new_privs").ends_with("yes"), "{out}");
    assert!(line("uid").contains("the host's ids"), "{out}");
    let b_pid = o.state("shb")["pid"].as_i64().unwrap();
    assert!(
        line(&b_pid.to_string())
            .split_whitespace()
            .eq([&b_pid.to_string(), "1", "sleep", "302"]),
        "{out}"
    );
    // The other side: sha's two processes, the child indented below the init.
    let a_out = o.ok(&["explain", "sha"]);
    assert!(a_out.contains("shared with container shb"), "{a_out}");
    assert!(
        a_out.contains(&format!("  {a_pid:<9} 1              sleep 301")),
        "{a_out}"
    );
    assert!(a_out.contains("                sleep 300"), "{a_out}");
    for id in ["shb", "sha"] {
        o.ok(&["delete", "--force", id]);
    }
}

#[test]
fn explain_json_matches_what_the_host_reads() {
    let o = Onggi::new();
    let (_a, _b, _) = pair(&o, "js");
    let v: Value =
        serde_json::from_str(&o.ok(&["explain", "--format", "json", "jsb"])).expect("json");
    let pid = o.state("jsb")["pid"].as_i64().unwrap();
    assert_eq!(v["pid"], pid);
    let ns = |kind: &str| {
        v["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
            .cloned()
            .unwrap()
    };
    let host_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(
        format!("mnt:[{}]", ns("mnt")["inode"]),
        host_mnt.to_str().unwrap()
    );
    assert_eq!(ns("net")["shared"], "container");
    assert_eq!(ns("net")["with"], json!(["jsa"]));
    assert_eq!(v["seccomp"]["mode"], 2);
    assert_eq!(v["no_new_privs"], true);
    assert_eq!(v["mounts"][0]["target"], "/");
    assert!(v["mounts_total"].as_u64().unwrap() >= 5);
    assert_eq!(v["processes"][0]["container_pid"], 1);
    for id in ["jsb", "jsa"] {
        o.ok(&["delete", "--force", id]);
    }
}

#[test]
fn explain_speaks_korean_when_asked_or_when_the_locale_is_korean() {
    let o = Onggi::new();
    let b = sh("exec sleep 303");
    o.ok(&["run", "-d", "--bundle", b.dir(), "exk"]);
    // `run -d` may return before the init's execve: wait until it is `sleep 303`.
    let pid = o.state("exk")["pid"].as_i64().unwrap();
    wait_for_execve(pid);
    let ko = o.ok(&["explain", "--lang", "ko", "exk"]);
    assert!(
        ko.contains("네임스페이스") && ko.contains("자체") && ko.contains("프로세스"),
        "{ko}"
    );
    let by_locale = o
        .command()
        .env("LANG", "ko_KR.UTF-8")
        .args(["explain", "exk"])
        .output()
        .unwrap();
    // The same report, but for the usage, which moves between two reads.
    let steady = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                !l.contains("usage_usec") && !l.contains(".current") && !l.contains(".peak")
            })
            .map(String::from)
            .collect()
    };
    assert_eq!(steady(&text(&by_locale.stdout)), steady(&ko));
    let en = o
        .command()
        .env("LANG", "ko_KR.UTF-8")
        .args(["explain", "--lang", "en", "exk"])
        .output()
        .unwrap();
    assert!(
        text(&en.stdout).contains("namespaces"),
        "--lang en wins over the locale"
    );
    o.ok(&["delete", "--force", "exk"]);
}

#[test]
fn explain_of_an_unknown_or_stopped_container_is_one_line() {
    let o = Onggi::new();
    let err = o.fails(&["explain", "nosuch"]);
    assert_eq!(err.trim(), "onggi: error: nosuch: container does not exist");
    let b = sh("true");
    o.ok(&["run", "--bundle", b.dir(), "exs"]);
    // `run` without -d deletes it; a stopped one is made by create + start + exit.
    o.ok(&["create", "--bundle", b.dir(), "exs"]);
    o.ok(&["start", "exs"]);
    let pid = o.state("exs")["pid"].as_i64().unwrap();
    wait_for(|| exited(pid));
    let err = o.fails(&["explain", "exs"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("exs: container not running (stopped)"),
        "{err}"
    );
    o.ok(&["delete", "exs"]);
}
