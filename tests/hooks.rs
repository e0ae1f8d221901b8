//! OCI hooks at the spec's moments, with the state on stdin; failing hooks fail the operation
//! (or warn, for poststart/poststop); timeouts are enforced.

mod common;
use common::*;
use serde_json::json;

/// A hook (run by the host's /bin/sh) that appends "NAME STATUS" to `log`.
fn logging_hook(log: &std::path::Path, name: &str) -> serde_json::Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c",
        format!("s=$(cat); st=${{s#*\\\"status\\\":\\\"}}; echo \"{name} ${{st%%\\\"*}}\" >> {}", log.display())]})
}

#[test]
fn every_hook_runs_at_its_moment_with_the_state_on_stdin() {
    let o = Onggi::new();
    let s = Scratch::new("hooks");
    let log = s.path().join("log");
    let b = sh("echo process >> /inside; touch /ready; while :; do sleep 0.05; done").with(|c| {
        c["hooks"] = json!({
            "prestart": [logging_hook(&log, "prestart")],
            "createRuntime": [logging_hook(&log, "createRuntime")],
            "createContainer": [logging_hook(&log, "createContainer")],
            // startContainer runs inside the container: its path and its file are the container's.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /start-state; echo startContainer >> /inside"]}],
            "poststart": [logging_hook(&log, "poststart")],
            "poststop": [logging_hook(&log, "poststop")]
        });
    });
    o.ok(&["create", "--bundle", b.dir(), "h"]);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        read(),
        "prestart creating\ncreateRuntime creating\ncreateContainer creating\n"
    );
    assert!(
        !b.rootfs().join("inside").exists(),
        "nothing inside runs before start"
    );
    o.ok(&["start", "h"]);
    wait_for(|| b.rootfs().join("ready").exists());
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("inside")).unwrap(),
        "startContainer\nprocess\n"
    );
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.rootfs().join("start-state")).unwrap())
            .unwrap();
    assert_eq!(st["id"], "h");
    assert_eq!(st["bundle"], b.dir());
    assert!(read().ends_with("poststart running\n"), "{}", read());
    o.ok(&["delete", "--force", "h"]);
    assert!(read().ends_with("poststop stopped\n"), "{}", read());
}

#[test]
fn run_runs_every_host_hook_from_the_config_it_parsed_once() {
    // `run` hands create's parsed config to its start and delete: their hooks still come from
    // it, each at its moment, and the container is gone afterwards.
    let o = Onggi::new();
    let s = Scratch::new("run-hooks");
    let log = s.path().join("log");
    let b = sh("echo inside").with(|c| {
        c["hooks"] = json!({
            "prestart": [logging_hook(&log, "prestart")],
            "poststart": [logging_hook(&log, "poststart")],
            "poststop": [logging_hook(&log, "poststop")]
        });
    });
    assert_eq!(o.ok(&["run", "--bundle", b.dir(), "rh"]), "inside\n");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "prestart creating\npoststart running\npoststop stopped\n"
    );
    assert!(o.leftovers().is_empty());
}

#[test]
fn a_failing_or_slow_create_hook_fails_create_and_leaves_nothing() {
    let o = Onggi::new();
    for (hook, needle) in [
        (
            json!({"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]}),
            "broken",
        ),
        (
            json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1}),
            "timed out",
        ),
    ] {
        let b = sh("true").with(|c| c["hooks"] = json!({"createRuntime": [hook]}));
        let e = o.fails(&["create", "--bundle", b.dir(), "hf"]);
        assert!(e.contains("createRuntime") && e.contains(needle), "{e}");
        assert!(o.leftovers().is_empty());
    }
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn_and_the_rest_run() {
    let o = Onggi::new();
    let s = Scratch::new("hooks-warn");
    let log = s.path().join("log");
    let b = sh("true").with(|c| {
        c["hooks"] = json!({
            "poststart": [{"path": "/bin/false"}, logging_hook(&log, "poststart")],
            "poststop": [{"path": "/bin/false"}, logging_hook(&log, "poststop")]
        });
    });
    let (code, _, err) = o.run_container(&b, "hw");
    assert_eq!(code, 0);
    assert!(
        err.contains("warning") && err.contains("poststart"),
        "{err}"
    );
    let l = std::fs::read_to_string(&log).unwrap();
    assert!(
        l.contains("poststart running") && l.contains("poststop stopped"),
        "{l}"
    );
}
