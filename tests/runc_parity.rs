//! Where managers and people rely on runc's behaviour, onggi behaves as runc does.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_non_root_process_can_reopen_its_own_stdio() {
    let o = Onggi::new();
    let b = sh("echo via-dev-stdout >> /dev/stdout; echo via-proc >> /proc/self/fd/1")
        .with(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    assert_eq!(o.output_of(&b), "via-dev-stdout\nvia-proc\n");
}

#[test]
fn preserve_fds_that_are_not_open_are_refused() {
    let o = Onggi::new();
    let err = o.fails(&[
        "run",
        "--preserve-fds",
        "2",
        "--bundle",
        sh("true").dir(),
        "pf",
    ]);
    assert!(
        err.contains("--preserve-fds 2: descriptor 3 is not open"),
        "{err}"
    );
    assert!(o.leftovers().is_empty());
}

#[test]
fn a_frozen_target_cgroup_is_refused_at_once() {
    let o = Onggi::new();
    let dir = v2_mount().join(format!("onggi-test-frozen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("cgroup.freeze"), "1").expect("freeze");
    let rel = format!("/{}", dir.file_name().expect("name").to_string_lossy());
    let b = sh("true").with(|c| c["linux"]["cgroupsPath"] = json!(rel));
    let err = o.fails(&["run", "--bundle", b.dir(), "fz"]);
    let _ = std::fs::remove_dir(&dir);
    assert!(err.contains("is frozen"), "{err}");
    assert!(o.leftovers().is_empty());
}

#[test]
fn start_container_hooks_see_the_process_env_and_may_ignore_their_stdin() {
    let o = Onggi::new();
    let b = sh("echo ran").with(|c| {
        c["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=yes"]);
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/true"},
            {"path": "/bin/sh", "args": ["sh", "-c", "echo $FROM_PROCESS > /hook-env"]}
        ]});
    });
    for i in 0..5 {
        let (code, out, err) = o.run_container(&b, &format!("h{i}"));
        assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
    }
    let env = std::fs::read_to_string(b.rootfs().join("hook-env")).expect("hook ran");
    assert_eq!(env, "yes\n");
}

#[test]
fn exec_runs_in_a_created_container_and_into_a_cwd_only_root_may_enter() {
    let o = Onggi::new();
    let b = sh("true");
    std::fs::create_dir(b.rootfs().join("private")).expect("mkdir");
    std::fs::set_permissions(
        b.rootfs().join("private"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    o.ok(&["create", "--bundle", b.dir(), "cr"]);
    assert_eq!(o.ok(&["exec", "cr", "echo", "in-created"]), "in-created\n");
    let out = o.ok(&[
        "exec",
        "--user",
        "1000:1000",
        "--cwd",
        "/private",
        "cr",
        "pwd",
    ]);
    assert_eq!(out, "/private\n");
    let p = o.root.path().join("p.json");
    std::fs::write(&p, r#"{"args": ["id", "-u"], "cwd": "/"}"#).expect("process.json");
    let out = o.ok(&["exec", "--process", p.to_str().expect("utf8"), "cr"]);
    assert_eq!(out, "0\n", "a process without user runs as uid 0");
    o.ok(&["delete", "--force", "cr"]);
}

#[test]
fn run_keep_keeps_the_stopped_container() {
    let o = Onggi::new();
    let out = o.run(&["run", "--keep", "--bundle", sh("exit 3").dir(), "kept"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(o.status("kept"), "stopped");
    o.ok(&["delete", "kept"]);
}

#[test]
fn failures_say_error_and_exec_failures_exit_255() {
    let o = Onggi::new();
    let out = o.run(&["exec", "nosuch", "true"]);
    assert_eq!(out.status.code(), Some(255));
    let err = text(&out.stderr);
    assert!(err.starts_with("onggi: error: "), "{err}");
    assert!(err.contains("container does not exist"), "{err}");
    let out = o.run(&["state", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn unknown_device_access_letters_are_ignored() {
    let o = Onggi::new();
    let b = sh("echo ok").with(|c| {
        c["linux"]["resources"] = json!({"devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwa"}]});
    });
    assert_eq!(o.output_of(&b), "ok\n");
}

#[test]
fn a_read_only_dev_gets_its_nodes_and_submounts_first() {
    // runc mounts a read-only /dev read-write and makes it read-only at the end; mounting it
    // read-only at once made /dev/pts impossible (EROFS).
    let o = Onggi::new();
    let b = sh("touch /dev/x 2>/dev/null && echo dev-rw || echo dev-ro; \
                test -c /dev/null && echo null-ok; grep -q ' /dev/pts ' /proc/mounts && echo pts-ok")
    .with(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
    });
    assert_eq!(o.output_of(&b), "dev-ro\nnull-ok\npts-ok\n");
}

#[test]
fn delete_right_after_kill_9_of_a_created_container_succeeds() {
    // containerd's shim kills a never-started task with SIGKILL and deletes it at once; the
    // dying init used to count as `created` for a moment, and the delete was refused.
    let o = Onggi::new();
    let b = sh("true");
    for i in 0..20 {
        let id = format!("k9-{i}");
        o.ok(&["create", "--bundle", b.dir(), &id]);
        o.ok(&["kill", &id, "9"]);
        o.ok(&["delete", &id]);
    }
    assert!(o.leftovers().is_empty());
}

#[test]
fn the_init_leads_its_own_session_and_process_group() {
    // As runc's init (setsid): the caller's session and terminal stay outside, and CRIU can
    // checkpoint the container (it refuses a tree whose session leader is outside it).
    let o = Onggi::new();
    let b = sh("set -- $(cut -d' ' -f5,6 /proc/self/stat); echo pgrp=$1 sid=$2");
    assert_eq!(o.output_of(&b), "pgrp=1 sid=1\n");
}

/// A manager that gives the container no stdin hands it the host's /dev/null (conmon, the
/// containerd shim; here the test's own `Stdio::null()`). As runc, the init replaces it with
/// the container's /dev/null: its mount is one the container sees (CRIU can dump it), and
/// stdio that is not /dev/null (stdout, a file here) is left alone.
#[test]
fn stdio_that_is_the_hosts_dev_null_becomes_the_containers() {
    let o = Onggi::new();
    let b = sh("for fd in 0 1; do \
                  m=$(awk '$1 == \"mnt_id:\" {print $2}' /proc/self/fdinfo/$fd); \
                  echo \"$fd $(awk -v m=$m '$1 == m {print $5}' /proc/self/mountinfo)\"; \
                done; readlink /proc/self/fd/0");
    let out = o.output_of(&b);
    assert_eq!(
        out, "0 /dev\n1 \n/dev/null\n",
        "fd 0 on the container's /dev"
    );
}
