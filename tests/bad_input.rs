//! Bad input gets one clear line naming the field or value, a non-zero exit, and leaves nothing
//! behind: no state directory, no mount, no process.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;

/// Runs `create` expecting failure; checks the message and that nothing was left.
fn refused(o: &Onggi, b: &Bundle, id: &str, needle: &str) -> String {
    let mounts_before = host_mounts_under(Path::new("/"));
    let out = o.run(&["create", "--bundle", b.dir(), id]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.leftovers().is_empty(), "state left: {:?}", o.leftovers());
    assert_eq!(
        host_mounts_under(Path::new("/")),
        mounts_before,
        "mounts left on the host"
    );
    assert!(
        no_process_in(b.rootfs().as_path()),
        "a process is left running in the rootfs"
    );
    err
}

/// True when no process on the host has its root inside `rootfs`.
fn no_process_in(rootfs: &Path) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .all(|e| std::fs::read_link(e.path().join("root")).map_or(true, |r| !r.starts_with(rootfs)))
}

#[test]
fn malformed_json_says_where() {
    let o = Onggi::new();
    let b = sh("true");
    std::fs::write(
        b.scratch.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.0.0\",\n  \"root\": {\n",
    )
    .unwrap();
    refused(&o, &b, "j", "line 4");
}

#[test]
fn wrong_types_and_unknown_values_name_the_field() {
    let o = Onggi::new();
    refused(
        &o,
        &sh("true").with(|c| c["process"]["args"] = json!("sh")),
        "t",
        "invalid type",
    );
    refused(
        &o,
        &sh("true").with(|c| c["linux"]["namespaces"] = json!([{"type": "bogus"}])),
        "n",
        "bogus",
    );
    refused(
        &o,
        &sh("true").with(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_FLY"])),
        "c",
        "CAP_FLY",
    );
    refused(
        &o,
        &sh("true").with(|c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}])
        }),
        "r",
        "RLIMIT_FOO",
    );
}

#[test]
fn unknown_oci_version_major() {
    let o = Onggi::new();
    refused(
        &o,
        &sh("true").with(|c| c["ociVersion"] = json!("2.0.0")),
        "v",
        "\"2.0.0\"",
    );
}

#[test]
fn missing_rootfs_and_missing_root() {
    let o = Onggi::new();
    refused(
        &o,
        &sh("true").with(|c| c["root"]["path"] = json!("nowhere")),
        "r",
        "root.path",
    );
    refused(
        &o,
        &sh("true").with(|c| {
            c.as_object_mut().unwrap().remove("root");
        }),
        "m",
        "root is missing",
    );
}

#[test]
fn missing_args_and_relative_cwd() {
    let o = Onggi::new();
    refused(
        &o,
        &sh("true").with(|c| c["process"]["args"] = json!([])),
        "a",
        "process.args",
    );
    refused(
        &o,
        &sh("true").with(|c| c["process"]["cwd"] = json!("relative")),
        "w",
        "process.cwd",
    );
}

#[test]
fn bad_mount_type_fails_in_the_init_and_is_cleaned_up() {
    let o = Onggi::new();
    let b = sh("true").with(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    });
    let e = refused(&o, &b, "m", "nosuchfs");
    assert!(e.contains("mounts["), "names the mount: {e}");
}

#[test]
fn a_missing_or_non_executable_program_fails_create() {
    // podman maps these messages to exit codes 127 and 126.
    let o = Onggi::new();
    refused(
        &o,
        &Bundle::new(&["/no/such/program"]),
        "p",
        "no such file or directory",
    );
    refused(
        &o,
        &Bundle::new(&["nosuchprogram"]),
        "q",
        "no such file or directory",
    );
    refused(&o, &Bundle::new(&["/etc/passwd"]), "x", "permission denied");
}

#[test]
fn unsafe_and_invalid_ids() {
    let o = Onggi::new();
    let b = sh("true");
    for id in [
        "../escape",
        "a/b",
        ".",
        "..",
        "white space",
        "-",
        &"x".repeat(1025),
    ] {
        if id == "-" {
            continue; // a valid id, but clap would read it as stdin; covered by unit tests
        }
        let out = o.run(&["create", "--bundle", b.dir(), id]);
        assert!(!out.status.success(), "{id:?} accepted");
        let e = text(&out.stderr);
        assert!(
            e.contains("invalid container id") || e.contains("unexpected argument"),
            "{id:?}: {e}"
        );
    }
    assert!(o.leftovers().is_empty());
    assert!(!o.root.path().parent().unwrap().join("escape").exists());
    let e = o.fails(&["state", "../../etc"]);
    assert!(e.contains("invalid container id"), "{e}");
}

#[test]
fn rlimit_above_the_hard_limit_is_a_clear_error() {
    // CAP_SYS_RESOURCE is not in this machine's bounding set: raising a hard limit fails.
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    let o = Onggi::new();
    let b = sh("true").with(|c| {
        c["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
    });
    let caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = u64::from_str_radix(status_field(&caps, "CapBnd"), 16).unwrap();
    const CAP_SYS_RESOURCE: u32 = 24;
    if bnd & (1 << CAP_SYS_RESOURCE) == 0 {
        let e = refused(&o, &b, "l", "RLIMIT_NOFILE");
        assert!(e.contains("CAP_SYS_RESOURCE"), "the hint explains why: {e}");
    } else {
        // With the capability the same config is fine.
        o.ok(&["create", "--bundle", b.dir(), "l"]);
        o.ok(&["delete", "--force", "l"]);
    }
}

#[test]
fn namespace_and_sysctl_rules() {
    let o = Onggi::new();
    refused(
        &o,
        &sh("true")
            .with(|c| c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}])),
        "h",
        "hostname",
    );
    refused(
        &o,
        &sh("true").with(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "10"})),
        "s",
        "vm.swappiness",
    );
    refused(&o, &sh("true").with(|c| c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/nonexistent/ns"}])), "p", "/nonexistent/ns");
}

#[test]
fn bad_signal_and_missing_container() {
    let o = Onggi::new();
    let e = o.fails(&["kill", "ghost", "TERM"]);
    assert!(e.contains("container does not exist"), "{e}");
    let out = o.run(&["delete", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("container does not exist"));
    o.ok(&["create", "--bundle", sh("true").dir(), "live"]);
    let e = o.fails(&["kill", "live", "NOTASIGNAL"]);
    assert!(e.contains("\"NOTASIGNAL\""), "{e}");
    o.ok(&["delete", "--force", "live"]);
}

#[test]
fn terminal_without_console_socket() {
    let o = Onggi::new();
    refused(
        &o,
        &sh("true").with(|c| c["process"]["terminal"] = json!(true)),
        "t",
        "console-socket",
    );
}

#[test]
fn json_log_gets_exactly_one_error_line_on_a_failed_create() {
    let o = Onggi::new();
    let logs = Scratch::new("log");
    let log = logs.path().join("log.json");
    let b = sh("true").with(|c| c["root"]["path"] = json!("nowhere"));
    let out = o.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.dir(),
        "lj",
    ]);
    assert!(!out.status.success());
    let content = std::fs::read_to_string(&log).unwrap();
    assert_eq!(content.lines().count(), 1, "{content}");
    let v: serde_json::Value =
        serde_json::from_str(content.trim_end()).expect("the file parses as one object");
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("root.path"));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    // The same message on stderr.
    assert!(text(&out.stderr).contains(v["msg"].as_str().unwrap()));
}

#[test]
fn the_log_file_exists_even_when_the_command_line_is_wrong() {
    let o = Onggi::new();
    let logs = Scratch::new("log2");
    let log = logs.path().join("early.json");
    let out = o.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format=json",
        "create",
        "--no-such-flag",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let content = std::fs::read_to_string(&log).expect("log file created");
    let v: serde_json::Value = serde_json::from_str(content.trim_end()).unwrap();
    assert_eq!(v["level"], "error");
}

#[test]
fn unimplemented_fields_are_refused_never_silently_ignored() {
    let o = Onggi::new();
    refused(
        &o,
        &sh("true").with(|c| c["process"]["apparmorProfile"] = json!("docker-default")),
        "a",
        "apparmorProfile",
    );
    refused(
        &o,
        &sh("true").with(|c| c["linux"]["intelRdt"] = json!({"closID": "onggi"})),
        "p",
        "linux.intelRdt",
    );
}

#[test]
fn a_reader_that_went_away_is_not_a_panic() {
    // `onggi features | head -1` style: stdout is a pipe whose read end is already closed.
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let err = Scratch::new("epipe");
    for args in [&["features"][..], &["--version"], &["list"]] {
        let status = Onggi::new()
            .command()
            .args(args)
            .stdout(std::process::Stdio::from(w.try_clone().unwrap()))
            .stderr(std::fs::File::create(err.path().join("err")).unwrap())
            .status()
            .unwrap();
        let text = std::fs::read_to_string(err.path().join("err")).unwrap();
        assert!(!text.contains("panicked"), "{args:?}: {text}");
        // 128 + SIGPIPE, as a tool killed by SIGPIPE reports through a shell.
        assert_eq!(status.code(), Some(141), "{args:?}: {text}");
    }
}

/// checkpoint and restore refuse bad input before CRIU is ever run (this host's kernel cannot
/// run CRIU: `make e2e-checkpoint` proves the rest in the guest), in one line, leaving nothing.
#[test]
fn checkpoint_and_restore_refuse_bad_input_in_one_line() {
    let o = Onggi::new();
    let b = sh("sleep 30");
    let one_line = |args: &[&str], needle: &str| {
        let out = o.run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    };
    let img = b.scratch.path().join("img");
    let img = img.to_str().unwrap();
    one_line(
        &["checkpoint", "--image-path", img, "nosuch"],
        "nosuch: container does not exist",
    );
    let restore = |id: &'static str| -> Vec<String> {
        [
            "restore",
            "-d",
            "--image-path",
            img,
            "--bundle",
            b.dir(),
            id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let args = restore("r1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    one_line(&args, "img: No such file or directory");
    assert!(o.leftovers().is_empty(), "state left: {:?}", o.leftovers());
    std::fs::create_dir(b.scratch.path().join("img")).unwrap();
    one_line(&args, "no checkpoint there (no inventory.img)");
    assert!(o.leftovers().is_empty(), "state left: {:?}", o.leftovers());
    one_line(
        &["checkpoint", "--empty-ns", "pid", "r1"],
        "--empty-ns pid: only \"network\" can be left empty",
    );
    o.ok(&["create", "--bundle", b.dir(), "r2"]);
    one_line(
        &["checkpoint", "--image-path", img, "r2"],
        "r2: container not running (created)",
    );
    // Restoring over an existing id: refused before CRIU runs, the container untouched.
    std::fs::write(b.scratch.path().join("img/inventory.img"), b"").unwrap();
    let over = restore("r2");
    let over: Vec<&str> = over.iter().map(String::as_str).collect();
    one_line(&over, "r2: container with that id exists already");
    assert!(o.ok(&["state", "r2"]).contains("\"created\""));
    o.ok(&["delete", "--force", "r2"]);
    let help = o.run(&["checkpoint", "--help"]);
    assert_eq!(
        help.status.code(),
        Some(0),
        "podman probes `checkpoint --help`"
    );
}
