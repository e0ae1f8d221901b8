//! The mount template (src/rootfs/template.rs): a container's mount namespace is a copy of a
//! three-mount namespace pinned in the state root, not of the host's whole table; bind mounts
//! still behave as binds in a rslave copy of the host would; containers that cannot use it
//! copy the host's table as before.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// The mounts of the namespace pinned at `ns`, as its own /proc shows them to a thread that
/// entered it (the template has no binaries to run there).
fn template_mounts(ns: &Path) -> Vec<String> {
    let ns = std::fs::File::open(ns).expect("open the pin");
    std::thread::scope(|s| {
        s.spawn(|| {
            use nix::sched::{setns, unshare, CloneFlags};
            unshare(CloneFlags::CLONE_FS).expect("unshare(CLONE_FS) in the thread");
            setns(&ns, CloneFlags::CLONE_NEWNS).expect("setns into the template");
            std::fs::read_to_string("/proc/thread-self/mountinfo").expect("its mountinfo")
        })
        .join()
        .expect("the thread")
    })
    .lines()
    .map(String::from)
    .collect()
}

#[test]
fn the_template_holds_three_mounts_and_nothing_else_of_the_host() {
    let o = Onggi::new();
    let out = o.run(&["--trace", "run", "--bundle", sh("true").dir(), "t"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace = text(&out.stderr);
    assert!(
        trace_step(&trace, "mount_template").contains("the template pinned"),
        "{trace}"
    );
    let ns = o.root.path().join(MOUNT_TEMPLATE).join("ns");
    let mounts = template_mounts(&ns);
    let points: Vec<&str> = mounts.iter().filter_map(|l| l.split(' ').nth(4)).collect();
    assert_eq!(points, ["/", "/proc", "/dev/null"], "{mounts:#?}");
    let root_opts = mounts[0].split(' ').nth(5).expect("mount options");
    assert!(
        root_opts.starts_with("ro,"),
        "a read-only root: {mounts:#?}"
    );
    // A second container opens the pin instead of making another.
    let out = o.run(&["--trace", "run", "--bundle", sh("true").dir(), "t2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = trace_step(&text(&out.stderr), "mount_template").to_string();
    assert!(line.contains(&format!("open({})", ns.display())), "{line}");
    let pins = all_mounts_under(&o.root.path().join(MOUNT_TEMPLATE));
    assert_eq!(pins.len(), 2, "the private directory and the pin: {pins:?}");
}

#[test]
fn the_host_mounts_are_not_copied_and_the_container_sees_only_its_own() {
    // 300 more mounts in a namespace of its own, where onggi runs.
    let o = Onggi::new();
    let b = sh("cat /proc/self/mountinfo");
    let many = Scratch::new("many");
    let script = format!(
        "set -e; cd {m}; for i in $(seq 300); do mkdir $i; mount -t tmpfs -o size=4k many-$i $i; done; \
         exec {onggi} --root {root} --trace run --bundle {b} many",
        m = many.path().display(),
        onggi = onggi_bin(),
        root = o.root.path().display(),
        b = b.dir()
    );
    let out = output_via_files(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace = text(&out.stderr);
    let clone3 = trace_step(&trace, "clone3");
    assert!(!clone3.contains("CLONE_NEWNS"), "{clone3}");
    let enter = trace
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some("enter_template"))
        .unwrap_or_else(|| panic!("no enter_template in the trace:\n{trace}"));
    assert!(
        enter.contains("a copy of the template's 3 mounts"),
        "{enter}"
    );
    let inside = text(&out.stdout);
    assert!(
        !inside.contains("many-"),
        "a host mount is inside:\n{inside}"
    );
    assert!(inside.lines().count() < 30, "{inside}");
}

#[test]
fn a_bind_of_a_shared_host_mount_gets_host_mounts_and_gives_none_back() {
    // The volume is a shared mount on the host: a mount made below it later shows in the
    // container (rslave, as runc's copied table gives), one made in the container stays there.
    let vol = Scratch::new("shared-vol");
    let v = vol.path().display().to_string();
    let host = |cmd: &str| {
        let st = Command::new("sh").args(["-c", cmd]).status().expect("sh");
        assert!(st.success(), "{cmd}");
    };
    host(&format!(
        "mount -t tmpfs vol {v} && mount --make-shared {v} && mkdir {v}/later {v}/back"
    ));
    let o = Onggi::new();
    let b = sh("while [ ! -e /vol/later/marker ]; do sleep 0.02; done; \
                mount -t tmpfs back /vol/back && echo seen")
    .with(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/vol", "type": "bind", "source": v, "options": ["rbind"]}),
        );
        c["process"]["capabilities"] = json!({"bounding": ["CAP_SYS_ADMIN"],
            "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN"]});
    });
    o.ok(&["create", "--bundle", b.dir(), "vol"]);
    o.ok(&["start", "vol"]);
    host(&format!(
        "mount -t tmpfs later {v}/later && touch {v}/later/marker"
    ));
    let pid = o.state("vol")["pid"].as_i64().expect("pid");
    wait_for(|| exited(pid));
    let back = host_mounts_under(&vol.path().join("back"));
    host(&format!("umount -R -l {v}"));
    assert!(
        back.is_empty(),
        "the container's mount reached the host: {back:?}"
    );
    let log = o.state("vol");
    assert_eq!(log["status"], "stopped", "{log}");
    o.ok(&["delete", "vol"]);
}

#[test]
fn containers_that_cannot_use_the_template_copy_the_host_table() {
    // A createContainer hook runs before pivot_root and must find the host's files.
    let o = Onggi::new();
    let mark = Scratch::new("hook");
    let f = mark.path().join("ran");
    let b = sh("true").with(|c| {
        c["hooks"] = json!({"createContainer": [{"path": "/bin/sh",
            "args": ["sh", "-c", format!("touch {}", f.display())]}]});
    });
    let out = o.run(&["--trace", "run", "--bundle", b.dir(), "hooked"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace = text(&out.stderr);
    assert!(
        trace_step(&trace, "clone3").contains("CLONE_NEWNS"),
        "{trace}"
    );
    trace_step(&trace, "rootfs_bind");
    assert!(
        !trace.contains("enter_template") && f.exists(),
        "the hook ran in a copy of the host's table:\n{trace}"
    );
}

#[test]
fn many_first_creates_at_once_pin_one_template() {
    let o = Onggi::new();
    let b = sh("true");
    let kids: Vec<_> = (0..8)
        .map(|i| {
            o.command()
                .args(["run", "--bundle", b.dir(), &format!("p{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn onggi")
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let pins = all_mounts_under(&o.root.path().join(MOUNT_TEMPLATE));
    assert_eq!(pins.len(), 2, "one directory, one pin: {pins:?}");
    assert!(o.leftovers().is_empty(), "{:?}", o.leftovers());
}

#[test]
fn a_missing_bind_source_names_the_mount() {
    let o = Onggi::new();
    let b = sh("true").with(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/data", "type": "bind", "source": "/nonexistent-onggi-src", "options": ["rbind"]}),
        );
    });
    let err = o.fails(&["run", "--bundle", b.dir(), "nosrc"]);
    assert!(
        err.contains("/data") && err.contains("/nonexistent-onggi-src"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(o.leftovers().is_empty(), "{:?}", o.leftovers());
}

#[test]
fn a_state_root_reached_through_a_symlink_pins_one_template() {
    // /var/run is a symlink to /run on many hosts: the pin must be found through it.
    let real = Scratch::new("real-root");
    let link = Scratch::new("link-root");
    let via = link.path().join("via");
    std::os::unix::fs::symlink(real.path(), &via).expect("symlink");
    let root = via.join("state");
    let b = sh("true");
    for id in ["s1", "s2", "s3"] {
        let out = output_via_files(Command::new(onggi_bin()).arg("--root").arg(&root).args([
            "--trace",
            "run",
            "--bundle",
            b.dir(),
            id,
        ]));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let pins = all_mounts_under(&real.path().join("state").join(MOUNT_TEMPLATE));
    for p in pins.iter().rev() {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    assert_eq!(pins.len(), 2, "one directory, one pin: {pins:?}");
}
