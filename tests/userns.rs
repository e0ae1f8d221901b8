//! User namespaces: what the kernel refuses a process that is root only in its own user
//! namespace, and how onggi handles it (as runc and crun do): device nodes are binds of the
//! host's, flags the kernel locked on a host mount are kept and asking to clear one is a clear
//! error, sysfs without a network namespace of its own becomes a read-only bind of the host's
//! /sys. And joining an existing user namespace by path.

mod common;
use common::*;
use serde_json::json;
use std::process::{Command, Output, Stdio};

/// Root inside maps to host uid/gid 100000 (65536 ids).
fn in_userns(b: Bundle) -> Bundle {
    b.with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["type"] != "cgroup");
    })
}

/// Runs `onggi ARGS` in a private mount namespace of its own in which `setup` (a shell command,
/// e.g. a mount) ran first: the test's mounts never reach the host.
fn run_after(o: &Onggi, setup: &str, args: &[&str]) -> Output {
    output_via_files(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("{setup} && exec \"$0\" \"$@\""))
            .arg(onggi_bin())
            .arg("--root")
            .arg(o.root.path())
            .args(args),
    )
}

#[test]
fn device_nodes_are_binds_of_the_host_nodes() {
    // mknod is refused in a user namespace: the default devices and linux.devices are binds
    // of the host's nodes, so they are mount points inside and keep their numbers.
    let o = Onggi::new();
    let script = "for d in null fuse; do grep -c \" /dev/$d \" /proc/self/mountinfo; done; \
                  stat -c '%F %t:%T' /dev/null /dev/fuse; echo x > /dev/null && echo written";
    let b = in_userns(sh(script)).with(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10,
            "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}]);
    });
    let out = o.output_of(&b);
    assert_eq!(
        out,
        "1\n1\ncharacter special file 1:3\ncharacter special file a:e5\nwritten\n"
    );
    // Without a user namespace they are nodes made by mknod: not mount points.
    let b = sh(script).with(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10,
            "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}]);
    });
    assert!(o.output_of(&b).starts_with("0\n0\n"));
}

#[test]
fn locked_flags_of_a_host_mount_are_kept_and_clearing_one_is_a_clear_error() {
    let o = Onggi::new();
    let src = Scratch::new("locked");
    let mount = format!(
        "mount -t tmpfs -o ro,nosuid,nodev,noexec,noatime tmpfs {}",
        src.path().display()
    );
    let with_options = |opts: &[&str]| {
        in_userns(sh("grep ' /mnt ' /proc/self/mountinfo | cut -d' ' -f6")).with(|c| {
            c["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": "/mnt", "type": "bind",
                "source": src.path(), "options": opts}));
        })
    };
    // A plain bind: the flags the host mount has come along (the kernel locked them).
    let b = with_options(&["bind"]);
    let out = run_after(&o, &mount, &["run", "--bundle", b.dir(), "locked"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let flags = text(&out.stdout);
    for f in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
        assert!(flags.trim().split(',').any(|x| x == f), "{f} in {flags}");
    }
    // Asking to clear one: one line naming the mount, the locked flag and the option.
    for (option, locked) in [
        ("rw", "ro"),
        ("suid", "nosuid"),
        ("dev", "nodev"),
        ("exec", "noexec"),
        ("relatime", "noatime"),
    ] {
        let b = with_options(&["bind", option]);
        let out = run_after(&o, &mount, &["run", "--bundle", b.dir(), "locked"]);
        assert!(!out.status.success(), "{option}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("mounts[") && err.contains("(/mnt)"), "{err}");
        assert!(
            err.contains(&format!(" is {locked} and a user namespace")),
            "{err}"
        );
        assert!(err.contains(&format!("remove \"{option}\"")), "{err}");
        assert!(o.leftovers().is_empty(), "{option}: {:?}", o.leftovers());
    }
}

#[test]
fn sysfs_without_its_own_network_namespace_is_a_read_only_bind_of_the_hosts() {
    let o = Onggi::new();
    let no_netns = |b: Bundle| {
        in_userns(b).with(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .retain(|n| n["type"] != "network");
        })
    };
    // sysfs in a user namespace needs the network namespace's owner: with the host's, the
    // kernel refuses, and a read-only request gets the host's /sys bound read-only (crun).
    let b = no_netns(sh(
        "awk '$5 == \"/sys\" {print $6, $9}' /proc/self/mountinfo; ls /sys/class/net",
    ));
    let out = o.output_of(&b);
    let mut lines = out.lines();
    let first = lines.next().expect("the /sys line");
    let (opts, fstype) = first.split_once(' ').expect("options and type");
    assert_eq!(fstype, "sysfs", "{out}");
    assert!(opts.split(',').any(|x| x == "ro"), "{out}");
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("host /sys/class/net")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let inside: Vec<&str> = lines.flat_map(|l| l.split_whitespace()).collect();
    assert_eq!(inside, host, "the host's network devices");
    // A read-write sysfs cannot be had that way: one clear line, nothing left.
    let b = b.with(|c| {
        for m in c["mounts"].as_array_mut().expect("mounts") {
            if m["type"] == "sysfs" {
                m["options"] = json!(["nosuid", "noexec", "nodev"]);
            }
        }
    });
    let err = o.fails(&["run", "--bundle", b.dir(), "rwsys"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("(/sys)") && err.contains("network namespace") && err.contains("\"ro\""),
        "{err}"
    );
    assert!(o.leftovers().is_empty());
    // With a network namespace of its own, it is a real sysfs showing only that namespace's lo.
    let out = o.output_of(&in_userns(sh("ls /sys/class/net")));
    assert_eq!(out, "lo\n");
}

#[test]
fn cgroup2_without_its_own_cgroup_namespace_is_a_bind_of_the_hierarchy() {
    // cgroup2 may only be mounted by the owner of the cgroup namespace. Without one of its
    // own, the container gets a read-only bind of the host's v2 hierarchy (runc's fallback),
    // where its own cgroup is one of the directories; with one, only its own cgroup.
    let o = Onggi::new();
    let script = "awk '$5 == \"/sys/fs/cgroup\" {print $6, $9}' /proc/self/mountinfo; \
                  ls /sys/fs/cgroup; touch /sys/fs/cgroup/x 2>/dev/null || echo read-only";
    let with_cgroup_mount = |b: Bundle, cgroupns: bool| {
        b.with(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
            ns.retain(|n| n["type"] != "cgroup");
            if cgroupns {
                ns.push(json!({"type": "cgroup"}));
            }
            c["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
        })
    };
    let b = with_cgroup_mount(in_userns(sh(script)), false);
    let (code, out, err) = o.run_container(&b, "cg-bind");
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let (opts, fstype) = lines
        .next()
        .and_then(|l| l.split_once(' '))
        .expect("the /sys/fs/cgroup line");
    assert_eq!(fstype, "cgroup2", "{out}");
    assert!(opts.split(',').any(|f| f == "ro"), "{out}");
    let names: Vec<&str> = lines.collect();
    assert!(names.contains(&"cgroup.procs"), "{out}");
    assert!(
        names.contains(&"cg-bind"),
        "its own cgroup among the host's: {out}"
    );
    assert_eq!(names.last(), Some(&"read-only"), "{out}");
    // With a cgroup namespace of its own the kernel allows the mount: the root is its cgroup.
    let b = with_cgroup_mount(in_userns(sh(script)), true);
    let (code, out, err) = o.run_container(&b, "cg-ns");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ro,"), "{out}");
    assert!(!out.lines().any(|l| l == "cg-ns"), "{out}");
    assert!(out.lines().any(|l| l == "cgroup.procs"), "{out}");
}

/// A process holding a user namespace (0 → 100000, 65536 ids), killed at drop.
struct Holder(std::process::Child);

impl Holder {
    fn new() -> Holder {
        let child = Command::new("unshare")
            .args(["-U", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare -U");
        let pid = child.id();
        let h = Holder(child);
        let ours = std::fs::read_link("/proc/self/ns/user").expect("our user ns");
        wait_for(|| {
            std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|n| n != ours)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c == "sleep\n")
        });
        for f in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{f}"), "0 100000 65536\n").expect("write map");
        }
        h
    }
    fn ns_path(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
    fn ns(&self) -> String {
        std::fs::read_link(self.ns_path())
            .expect("holder ns")
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_user_namespace_joined_by_path_owns_the_containers_new_namespaces() {
    let o = Onggi::new();
    let holder = Holder::new();
    // The new mount and pid namespaces must belong to the joined user namespace, or the init
    // could not mount anything (nor /proc for its pid namespace).
    let b = sh(
        "cat /proc/self/uid_map; readlink /proc/self/ns/user; id -u; cat /proc/1/comm; \
                touch /tmp/made-inside && stat -c %u /tmp/made-inside",
    )
    .with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "user", "path": holder.ns_path()}));
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["type"] != "cgroup");
    });
    std::os::unix::fs::chown(b.rootfs().join("tmp"), Some(100000), Some(100000))
        .expect("chown tmp");
    let out = o.output_of(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(lines[1], holder.ns(), "the holder's namespace");
    assert_eq!(lines[2], "0", "root inside");
    assert_eq!(lines[3], "sh", "its own /proc, its own pid 1");
    assert_eq!(lines[4], "0");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(b.rootfs().join("tmp/made-inside")).expect("made inside");
    assert_eq!(meta.uid(), 100000, "host uid of root inside");
    // exec joins the same user namespace.
    let b = b.with(|c| c["process"]["args"] = json!(["sleep", "100"]));
    o.ok(&["run", "-d", "--bundle", b.dir(), "joined"]);
    // The init was cloned (by the helper, from inside the user namespace) into its cgroup.
    let st = o.state("joined");
    let pid = st["pid"].as_i64().expect("pid");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let v2 = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a v2 line");
    assert!(v2.ends_with("/joined"), "{cgroups}");
    assert_eq!(
        std::fs::read_to_string(
            v2_mount()
                .join(v2.trim_start_matches('/'))
                .join("cgroup.procs")
        )
        .expect("cgroup.procs")
        .trim(),
        pid.to_string(),
        "only the init is in the container's cgroup (the helper is not)"
    );
    let seen = o.ok(&["exec", "joined", "readlink", "/proc/self/ns/user"]);
    assert_eq!(seen.trim(), holder.ns());
    o.ok(&["delete", "--force", "joined"]);
    assert!(o.leftovers().is_empty());
    // Mappings may come with the path (podman sends them for its pods): they must be the
    // namespace's own.
    let with_maps = |b: Bundle, host: u32| {
        b.with(|c| {
            c["process"]["args"] = json!(["id", "-u"]);
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": host, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        })
    };
    let b = with_maps(b, 100000);
    assert_eq!(o.output_of(&b), "0\n");
    let b = with_maps(b, 200000);
    let err = o.fails(&["create", "--bundle", b.dir(), "othermaps"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("linux.uidMappings 0 200000 65536 do not match the user namespace")
            && err.contains("it maps 0 100000 65536"),
        "{err}"
    );
    assert!(o.leftovers().is_empty());
    // A path that is not a user namespace: one line naming the field, nothing left.
    let b = b.with(|c| {
        c["linux"]["uidMappings"] = json!([]);
        c["linux"]["gidMappings"] = json!([]);
        for n in c["linux"]["namespaces"].as_array_mut().expect("ns") {
            if n["type"] == "user" {
                n["path"] = json!("/proc/self/ns/net");
            }
        }
    });
    let err = o.fails(&["create", "--bundle", b.dir(), "notuser"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("linux.namespaces user path"), "{err}");
    assert!(o.leftovers().is_empty());
}
