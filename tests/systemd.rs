//! The systemd cgroup driver (`--systemd-cgroup`): a container in a transient scope that
//! systemd knows, with its limits in both systemd's view and the cgroup files, through update,
//! pause, exec, events and delete. Run by `make test-systemd` in the `vmrun.sh --systemd` guest
//! (ONGGI_REQUIRE_SYSTEMD=1); elsewhere only the no-bus test runs and the others say why not.

mod common;
use common::*;
use serde_json::json;
use std::path::PathBuf;

/// A unique container id for a test.
fn unique(tag: &str) -> String {
    format!("sd{}-{tag}", std::process::id())
}

fn scope_dir(rel: &str) -> PathBuf {
    v2_mount().join(rel.trim_start_matches('/'))
}

/// A property of `unit` as `systemctl show` reports it.
fn prop(unit: &str, name: &str) -> String {
    systemctl(&["show", "-p", name, "--value", unit])
        .1
        .trim()
        .to_string()
}

fn read(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// `run -d` of `b` as `id`, and the init's pid once it has written /ready.
fn start(o: &Onggi, b: &Bundle, id: &str) -> i64 {
    o.ok(&["run", "-d", "--bundle", b.dir(), id]);
    wait_for(|| b.rootfs().join("ready").exists());
    o.state(id)["pid"].as_i64().expect("pid")
}

#[test]
fn without_a_system_bus_the_flag_is_one_clear_line_and_leaves_nothing() {
    let o = Onggi::systemd();
    let b = sh("exit 0");
    let out = o
        .command()
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .args(["run", "--bundle", b.dir(), "nobus"])
        .output()
        .expect("run");
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "--systemd-cgroup: cannot reach systemd on the system bus (unix:path=/nonexistent/bus)"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(o.leftovers().is_empty(), "{:?}", o.leftovers());
}

#[test]
fn a_cgroups_path_not_in_slice_form_names_the_field() {
    let o = Onggi::systemd();
    for bad in [
        "/plain/path",
        "system.slice:only-two",
        "nodot:p:n",
        "a--b.slice:p:n",
    ] {
        let b = sh("exit 0").with(|c| c["linux"]["cgroupsPath"] = json!(bad));
        let err = o.fails(&["run", "--bundle", b.dir(), "badpath"]);
        assert!(err.contains("linux.cgroupsPath"), "{bad}: {err}");
        assert!(o.leftovers().is_empty(), "{bad}: {:?}", o.leftovers());
    }
}

#[test]
fn a_container_lives_in_its_scope_with_limits_systemd_and_the_files_agree_on() {
    if !has_systemd() {
        return;
    }
    let o = Onggi::systemd();
    let id = unique("scope");
    let unit = format!("onggi-test-{id}.scope");
    let rel = format!("/system.slice/{unit}");
    let b = sh("touch /ready; while :; do sleep 0.05; done").with(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:onggi-test:{id}"));
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 20},
            "cpu": {"quota": 50000, "period": 100000}});
    });
    let pid = start(&o, &b, &id);
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(host_view.trim(), format!("0::{rel}"));
    let dir = scope_dir(&rel);
    assert_eq!(prop(&unit, "ActiveState"), "active");
    assert_eq!(prop(&unit, "Delegate"), "yes");
    assert_eq!(prop(&unit, "Description"), format!("onggi container {id}"));
    assert_eq!(prop(&unit, "MemoryMax"), "67108864");
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(prop(&unit, "TasksMax"), "20");
    assert_eq!(read(&dir, "pids.max"), "20");
    assert_eq!(prop(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    // Only the container is in the scope: the placeholder that held it has gone.
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    for p in read(&dir, "cgroup.procs").lines() {
        assert_eq!(
            ns(p),
            ns(&pid.to_string()),
            "pid {p} in the scope is not the container's"
        );
    }

    o.ok(&["update", "--memory", "33554432", "--pids-limit", "10", &id]);
    assert_eq!(prop(&unit, "MemoryMax"), "33554432");
    assert_eq!(read(&dir, "memory.max"), "33554432");
    assert_eq!(prop(&unit, "TasksMax"), "10");
    assert_eq!(read(&dir, "pids.max"), "10");

    o.ok(&["pause", &id]);
    assert_eq!(o.status(&id), "paused");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    o.ok(&["resume", &id]);
    assert_eq!(o.status(&id), "running");

    // exec joins the scope; events --stats reads it.
    let out = o.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(
        out.trim(),
        "0::/",
        "exec is in the container's cgroup (its namespace root)"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&o.ok(&["events", "--stats", &id])).expect("stats json");
    assert!(
        stats["data"]["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{stats}"
    );

    o.ok(&["delete", "--force", &id]);
    assert!(!unit_exists(&unit), "delete leaves no unit");
    let (code, _) = systemctl(&["status", &unit]);
    assert_eq!(code, 4, "systemctl status: no such unit");
    assert!(!dir.exists(), "delete leaves no cgroup");
}

#[test]
fn an_oom_kill_and_a_pids_limit_bite_and_delete_forgets_the_failed_scope() {
    if !has_systemd() {
        return;
    }
    let o = Onggi::systemd();
    let id = unique("oom");
    let unit = format!("onggi-test-{id}.scope");
    let b = sh("tail /dev/zero").with(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:onggi-test:{id}"));
        c["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}});
    });
    let (code, _, _) = o.run_container(&b, &id);
    assert_eq!(code, 137, "the OOM killer's SIGKILL is the exit status");
    assert!(
        !unit_exists(&unit),
        "run --rm style: no unit left after the OOM kill"
    );

    let id = unique("pids");
    let unit = format!("onggi-test-{id}.scope");
    let b = sh("for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; echo forks-done").with(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:onggi-test:{id}"));
        c["linux"]["resources"] = json!({"pids": {"limit": 4}});
    });
    let (_, out, err) = o.run_container(&b, &id);
    assert!(
        format!("{out}{err}").contains("can't fork"),
        "pids.max 4 refuses the 4th fork: {out}{err}"
    );
    o.ok(&["delete", "--force", &id]);
    assert!(!unit_exists(&unit));
}

#[test]
fn a_pids_limit_of_one_still_takes_the_init() {
    if !has_systemd() {
        return;
    }
    let o = Onggi::systemd();
    let id = unique("one");
    let unit = format!("onggi-test-{id}.scope");
    let b = Bundle::new(&["sleep", "60"]).with(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:onggi-test:{id}"));
        c["linux"]["resources"] = json!({"pids": {"limit": 1}});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), &id]);
    assert_eq!(o.status(&id), "running");
    assert_eq!(prop(&unit, "TasksMax"), "1");
    assert_eq!(
        read(&scope_dir(&format!("/system.slice/{unit}")), "pids.max"),
        "1"
    );
    o.ok(&["delete", "--force", &id]);
    assert!(!unit_exists(&unit));
}

#[test]
fn a_kubepods_style_nested_slice_expands_as_systemd_expands_it() {
    if !has_systemd() {
        return;
    }
    let o = Onggi::systemd();
    let id = unique("kube");
    let pod = format!("kubepods-besteffort-pod{}", std::process::id());
    let unit = format!("cri-containerd-{id}.scope");
    let rel = format!("/kubepods.slice/kubepods-besteffort.slice/{pod}.slice/{unit}");
    let b = sh("touch /ready; while :; do sleep 0.05; done").with(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("{pod}.slice:cri-containerd:{id}"));
        c["annotations"] = json!({"org.systemd.property.CollectMode": "'inactive-or-failed'",
            "org.systemd.property.TimeoutStopSec": "7"});
    });
    let pid = start(&o, &b, &id);
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(host_view.trim(), format!("0::{rel}"));
    assert_eq!(prop(&unit, "Slice"), format!("{pod}.slice"));
    assert_eq!(prop(&unit, "CollectMode"), "inactive-or-failed");
    assert_eq!(prop(&unit, "TimeoutStopUSec"), "7s");
    o.ok(&["kill", "--all", &id, "KILL"]);
    wait_for(|| o.status(&id) == "stopped");
    o.ok(&["delete", &id]);
    assert!(!unit_exists(&unit));
    assert!(!scope_dir(&rel).exists());
    let _ = systemctl(&["stop", &format!("{pod}.slice")]);
}

#[test]
fn features_say_the_systemd_driver_works() {
    let o = Onggi::new();
    let f: serde_json::Value = serde_json::from_str(&o.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["cgroup"]["systemd"], json!(true), "{f}");
}
