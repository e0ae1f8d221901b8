//! A create killed at any step, a create still running, an unreadable state file: onggi loses
//! nothing, blocks no one, and `delete --force` leaves nothing behind.

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs onggi with a hang guard (not a timing assertion): a command still running after 30 s
/// is blocked on something, which is the failure these tests look for.
fn bounded(o: &Onggi, args: &[&str]) -> std::process::Output {
    let n = std::sync::atomic::AtomicUsize::new(0);
    let _ = n;
    let io = Scratch::new("bounded");
    let (out, err) = (io.path().join("out"), io.path().join("err"));
    let mut child = o
        .command()
        .args(args)
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("spawn onggi");
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("onggi {args:?} was still blocked after 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&out).unwrap_or_default(),
        stderr: std::fs::read(&err).unwrap_or_default(),
    }
}

/// A cgroup directory made by the test below the v2 root (removed by Drop).
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(tag: &str) -> TestCgroup {
        let p = v2_mount().join(format!("onggi-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&p).expect("mkdir cgroup");
        TestCgroup(p)
    }
    fn rel(&self) -> String {
        format!(
            "/{}",
            self.0.strip_prefix(v2_mount()).expect("below").display()
        )
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// What a trial may have left: asserts there is none of it.
fn assert_nothing_left(o: &Onggi, id: &str, init: Option<i64>, cg: &Path, kept: bool, what: &str) {
    assert!(
        o.leftovers().is_empty(),
        "{what}: state left: {:?}",
        o.leftovers()
    );
    if let Some(pid) = init {
        wait_for(|| exited(pid));
    }
    if kept {
        assert!(cg.exists(), "{what}: the existing cgroup was removed");
        assert!(
            std::fs::read_to_string(cg.join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty(),
            "{what}: processes left in {}",
            cg.display()
        );
        assert_eq!(
            attached_device_programs(cg),
            0,
            "{what}: device program left on {}",
            cg.display()
        );
    } else {
        assert!(!cg.exists(), "{what}: cgroup {} left", cg.display());
    }
    let _ = id;
}

/// The steps of one traced create of `bundle`: (who, step).
fn traced_steps(o: &Onggi, bundle: &Bundle) -> Vec<(String, String)> {
    let out = o.run(&["--trace", "create", "--bundle", bundle.dir(), "probe"]);
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    o.ok(&["delete", "--force", "probe"]);
    text(&out.stderr)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip(2);
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// Kills `onggi create` right after `step` shows in its trace, then checks what it left.
fn kill_after(o: &Onggi, bundle: &Bundle, id: &str, step: &str, cg: &Path, kept: bool) {
    let mut child = o
        .command()
        .args(["--trace", "create", "--bundle", bundle.dir(), id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn create");
    let err = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(err).lines();
    let mut seen = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap_or_default();
        seen.push_str(&l);
        seen.push('\n');
        if l.split_whitespace().nth(3) == Some(step) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(lines);
    let what = format!("killed after {step}");
    // Whatever the kill left, it answers at once and no longer says `creating`.
    let st = bounded(o, &["state", id]);
    let init = if st.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("state json");
        assert!(
            ["stopped", "created"].contains(&v["status"].as_str().unwrap_or("")),
            "{what}: state says {} although its creator is gone",
            v["status"]
        );
        read_pid(o, id)
    } else {
        None
    };
    let d = bounded(o, &["delete", "--force", id]);
    assert!(
        d.status.success(),
        "{what}: delete --force: {}",
        text(&d.stderr)
    );
    assert_nothing_left(o, id, init, cg, kept, &what);
    assert!(
        host_mounts_under(Path::new(bundle.dir())).is_empty(),
        "{what}: mounts left on the host"
    );
}

/// The init's pid as state.json recorded it (also when the container counts as stopped).
fn read_pid(o: &Onggi, id: &str) -> Option<i64> {
    let s = std::fs::read(o.root.path().join(id).join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&s).ok()?;
    v["pid"].as_i64().filter(|p| *p > 0)
}

#[test]
fn a_create_killed_after_any_step_leaves_nothing_delete_force_cannot_remove() {
    let o = Onggi::new();
    let b = sh("exit 0");
    let steps = traced_steps(&o, &b);
    assert!(steps.len() > 15, "a traced create has its steps: {steps:?}");
    for (i, (_, step)) in steps.iter().enumerate() {
        let id = format!("k{i}");
        let cg = v2_mount().join(&id);
        kill_after(&o, &b, &id, step, &cg, false);
    }
}

/// The same with `--systemd-cgroup` (in the `vmrun.sh --systemd` guest): the scope and its
/// placeholder go too, and systemd is left with no unit.
#[test]
fn a_systemd_create_killed_after_any_step_leaves_no_unit() {
    if !has_systemd() {
        return;
    }
    let o = Onggi::systemd();
    let b = sh("exit 0");
    let steps = traced_steps(&o, &b);
    assert!(
        steps.iter().any(|(_, s)| s == "systemd_scope"),
        "the scope is a step: {steps:?}"
    );
    for (i, (_, step)) in steps.iter().enumerate() {
        let id = format!("s{i}");
        let unit = format!("onggi-{id}.scope");
        let cg = v2_mount().join("system.slice").join(&unit);
        kill_after(&o, &b, &id, step, &cg, false);
        assert!(!unit_exists(&unit), "killed after {step}: unit {unit} left");
    }
}

#[test]
fn a_create_into_an_existing_cgroup_killed_after_any_step_leaves_the_cgroup_clean() {
    let o = Onggi::new();
    let cg = TestCgroup::new("pre");
    let b = sh("exit 0").with(|c| c["linux"]["cgroupsPath"] = json!(cg.rel()));
    let steps = traced_steps(&o, &b);
    assert_eq!(
        attached_device_programs(&cg.0),
        0,
        "delete detaches onggi's device program"
    );
    for (i, (_, step)) in steps.iter().enumerate() {
        kill_after(&o, &b, &format!("p{i}"), step, &cg.0, true);
    }
}

#[test]
fn state_and_list_answer_while_a_create_waits_in_a_hook_and_delete_force_ends_it() {
    let o = Onggi::new();
    let b = sh("exit 0").with(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "611"]}]})
    });
    let mut create = o
        .command()
        .args(["create", "--bundle", b.dir(), "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn create");
    wait_for(|| read_pid(&o, "slow").is_some());
    let st = bounded(&o, &["state", "slow"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("state json");
    assert_eq!(v["status"], "creating");
    let l = bounded(&o, &["list", "-q"]);
    assert_eq!(text(&l.stdout).trim(), "slow");
    let s = bounded(&o, &["start", "slow"]);
    assert!(!s.status.success());
    assert!(
        text(&s.stderr).contains("still being created"),
        "{}",
        text(&s.stderr)
    );
    let init = read_pid(&o, "slow");
    let d = bounded(&o, &["delete", "--force", "slow"]);
    assert!(d.status.success(), "delete --force: {}", text(&d.stderr));
    let _ = create.wait();
    assert_nothing_left(
        &o,
        "slow",
        init,
        &v2_mount().join("slow"),
        false,
        "hung create",
    );
    // The hook went with the create that ran it.
    let sleepers = Command::new("pgrep")
        .args(["-f", "^sleep 611$"])
        .output()
        .expect("pgrep");
    assert!(
        text(&sleepers.stdout).trim().is_empty(),
        "the hook outlived its create"
    );
}

#[test]
fn an_unreadable_state_file_is_cleaned_up_from_the_saved_config() {
    for (n, junk) in [&b""[..], b"{\"id\": \"u", b"\x00garbage\xff"]
        .iter()
        .enumerate()
    {
        let o = Onggi::new();
        let id = format!("u{n}");
        // The bundle must outlive the container: dropping it deletes the rootfs.
        let b = sh("sleep 600");
        o.ok(&["run", "-d", "--bundle", b.dir(), &id]);
        let pid = read_pid(&o, &id).expect("pid");
        std::fs::write(o.root.path().join(&id).join("state.json"), junk).expect("corrupt");
        let d = o.run(&["delete", "--force", &id]);
        assert!(d.status.success(), "delete --force: {}", text(&d.stderr));
        assert_nothing_left(
            &o,
            &id,
            Some(pid),
            &v2_mount().join(&id),
            false,
            "unreadable state",
        );
    }
}

#[test]
fn a_megabyte_of_annotations_reaches_the_container_and_its_hooks() {
    let o = Onggi::new();
    let big = "a".repeat(1 << 20);
    let out = o.root.path().join("hook-stdin");
    let b = sh("echo ran").with(|c| {
        c["annotations"] = json!({"big": big, "phase": "creating"});
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}", out.display())]}]});
    });
    assert_eq!(o.output_of(&b).trim(), "ran");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("hook state")).expect("json");
    assert_eq!(
        v["annotations"]["big"].as_str().map(str::len),
        Some(1 << 20)
    );
    assert_eq!(v["annotations"]["phase"], "creating");
    assert_eq!(v["status"], "creating");
}

#[test]
fn the_start_container_hook_gets_a_typed_state() {
    let o = Onggi::new();
    let b = sh("true").with(|c| {
        c["annotations"] = json!({"phase": "creating"});
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sh",
            "args": ["sh", "-c", "cat > /hook-state.json"]}]});
    });
    o.output_of(&b);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.rootfs().join("hook-state.json")).expect("state"))
            .expect("json");
    assert_eq!(v["status"], "created");
    assert_eq!(
        v["annotations"]["phase"], "creating",
        "an annotation is not a status"
    );
}

#[test]
fn an_init_error_of_any_size_is_one_clear_line() {
    let o = Onggi::new();
    let name = format!("/no-such-{}", "x".repeat(1 << 20));
    let b = Bundle::new(&[&name]);
    let err = o.fails(&["run", "--bundle", b.dir(), "big-err"]);
    assert_eq!(err.trim_end().lines().count(), 1, "one line");
    assert!(
        err.contains("file name too long") && err.contains("bytes left out"),
        "{}",
        &err[..200.min(err.len())]
    );
    assert!(
        err.len() < 20_000,
        "cut to a readable length: {} bytes",
        err.len()
    );
    assert!(o.leftovers().is_empty());
    let b = sh("true").with(|c| c["hostname"] = json!("h".repeat(1 << 20)));
    let err = o.fails(&["run", "--bundle", b.dir(), "big-host"]);
    assert!(
        err.contains("hostname is 1048576 bytes long"),
        "{}",
        &err[..200.min(err.len())]
    );
}

#[test]
fn a_hook_that_prints_a_megabyte_does_not_block_and_a_failing_hook_shows_its_stderr() {
    let o = Onggi::new();
    let loud = "head -c 1048576 /dev/zero | tr '\\0' x; head -c 1048576 /dev/zero | tr '\\0' y >&2";
    let b = sh("echo ok").with(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", loud],
            "env": ["PATH=/usr/bin:/bin"]}]})
    });
    let r = bounded(&o, &["run", "--bundle", b.dir(), "loud"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let b = sh("echo ok").with(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh",
            "args": ["sh", "-c", "echo why-it-failed >&2; exit 3"]}]})
    });
    let err = o.fails(&["run", "--bundle", b.dir(), "failing"]);
    assert!(err.contains("why-it-failed"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
}

#[test]
fn two_mounts_at_one_destination_stack() {
    let o = Onggi::new();
    let b = sh("grep -c ' /sys/fs/cgroup ' /proc/self/mountinfo").with(|c| {
        let m = c["mounts"].as_array_mut().expect("mounts");
        m.push(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "ro"]}),
        );
    });
    assert_eq!(o.output_of(&b).trim(), "2");
}

#[test]
fn a_cgroup_killed_before_takes_a_new_container_and_exec() {
    let o = Onggi::new();
    let cg = TestCgroup::new("killed");
    std::fs::write(cg.0.join("cgroup.kill"), "1").expect("cgroup.kill");
    let b = sh("sleep 600").with(|c| c["linux"]["cgroupsPath"] = json!(cg.rel()));
    o.ok(&["run", "-d", "--bundle", b.dir(), "again"]);
    let pid = o.state("again")["pid"].as_i64().expect("pid");
    let procs = std::fs::read_to_string(cg.0.join("cgroup.procs")).expect("procs");
    assert!(
        procs.lines().any(|p| p == pid.to_string()),
        "the init is in the cgroup: {procs}"
    );
    assert_eq!(o.ok(&["exec", "again", "echo", "joined"]).trim(), "joined");
    o.ok(&["delete", "--force", "again"]);
    assert_nothing_left(&o, "again", Some(pid), &cg.0, true, "killed cgroup");
}

#[test]
fn small_edges_get_clear_answers() {
    let o = Onggi::new();
    let long = "i".repeat(255);
    o.ok(&["run", "--bundle", sh("true").dir(), &long]);
    let err = o.fails(&["state", &"i".repeat(256)]);
    assert!(err.contains("1-255 characters"), "{err}");
    // Kept while the container runs: a bundle dropped at the end of the statement deleted the
    // rootfs under a container still on its way to execve (about 1 run in 6, under load).
    let alive = sh("sleep 600");
    o.ok(&["run", "-d", "--bundle", alive.dir(), "alive"]);
    o.ok(&["kill", "alive", "0"]);
    o.ok(&["kill", "alive", "KILL"]);
    wait_for(|| o.status("alive") == "stopped");
    assert!(o.fails(&["kill", "alive", "0"]).contains("not running"));
    o.ok(&["delete", "alive"]);
    std::fs::write(o.root.path().join("afile"), "x").expect("file");
    let err = o.fails(&["state", "afile"]);
    assert!(
        err.contains("afile") && err.contains("not a directory"),
        "{err}"
    );
    std::fs::remove_file(o.root.path().join("afile")).expect("rm");
    let b = sh("true").with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .push(json!({"type": "user"}));
    });
    let err = o.fails(&["run", "--bundle", b.dir(), "nomaps"]);
    assert!(err.contains("linux.uidMappings is missing"), "{err}");
    let b = Bundle::new(&["/no\nsuch"]);
    let err = o.fails(&["run", "--bundle", b.dir(), "nl"]);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("/no\\nsuch"), "{err}");
}
