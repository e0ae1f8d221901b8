//! What the process inside really sees: hostname, pid, user, capabilities, rlimits, env, cwd,
//! mounts, devices, masked and read-only paths, namespaces, sysctls, fds.

mod common;
use common::*;
use serde_json::json;
use std::os::fd::AsRawFd;

#[test]
fn hostname_domainname_and_pid_1() {
    let o = Onggi::new();
    let b = sh("hostname; cat /proc/sys/kernel/domainname; echo $$").with(|c| {
        c["hostname"] = json!("jar");
        c["domainname"] = json!("onggi.test");
    });
    assert_eq!(o.output_of(&b), "jar\nonggi.test\n1\n");
}

#[test]
fn user_groups_umask_and_cwd() {
    let o = Onggi::new();
    let b = sh("grep -E '^(Uid|Gid|Groups):' /proc/self/status; umask; pwd").with(|c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 1002], "umask": 63});
        c["process"]["cwd"] = json!("/work/here");
    });
    let out = o.output_of(&b);
    assert_eq!(status_field(&out, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&out, "Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field(&out, "Groups"), "5 1002");
    assert!(out.contains("\n0077\n"), "umask 63 = 0077: {out}");
    assert!(
        out.ends_with("/work/here\n"),
        "cwd created and entered: {out}"
    );
}

#[test]
fn capabilities_all_five_sets() {
    let o = Onggi::new();
    // /proc/1/status: the shell onggi exec'd, not grep (execve recomputes capabilities).
    let b = sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/1/status").with(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        });
    });
    let out = o.output_of(&b);
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5, CAP_NET_RAW = bit 13
    assert_eq!(status_field(&out, "CapBnd"), "0000000000002021");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000021");
    assert_eq!(status_field(&out, "CapPrm"), "0000000000000021");
    assert_eq!(status_field(&out, "CapInh"), "0000000000000020");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000020");
}

#[test]
fn inheritable_is_empty_unless_configured() {
    // CVE-2022-29162: a non-empty inheritable set lets file capabilities raise privileges.
    let o = Onggi::new();
    let out = o.output_of(&sh("grep -E '^Cap(Inh|Amb|Eff):' /proc/1/status"));
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000");
    // the default config: CAP_AUDIT_WRITE(29), CAP_KILL(5), CAP_NET_BIND_SERVICE(10)
    assert_eq!(status_field(&out, "CapEff"), "0000000020000420");
}

#[test]
fn a_non_root_user_keeps_only_ambient_capabilities_across_exec() {
    let o = Onggi::new();
    let caps = |ambient: bool| {
        let mut v = json!({"bounding": ["CAP_NET_BIND_SERVICE"], "effective": ["CAP_NET_BIND_SERVICE"],
                           "permitted": ["CAP_NET_BIND_SERVICE"]});
        if ambient {
            v["inheritable"] = json!(["CAP_NET_BIND_SERVICE"]);
            v["ambient"] = json!(["CAP_NET_BIND_SERVICE"]);
        }
        v
    };
    for (ambient, want) in [(true, "0000000000000400"), (false, "0000000000000000")] {
        let b = sh("grep -E '^(Uid|CapEff):' /proc/1/status").with(|c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            c["process"]["capabilities"] = caps(ambient);
        });
        let out = o.output_of(&b);
        assert!(status_field(&out, "Uid").starts_with("1000"));
        // The kernel clears a non-root user's capabilities at execve unless they are ambient.
        assert_eq!(status_field(&out, "CapEff"), want, "ambient={ambient}");
    }
}

#[test]
fn no_new_privileges_and_rlimits() {
    let o = Onggi::new();
    let b =
        sh("grep NoNewPrivs /proc/self/status; grep -E 'open files|core file' /proc/self/limits")
            .with(|c| {
                c["process"]["noNewPrivileges"] = json!(true);
                c["process"]["rlimits"] = json!([
                    {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
                ]);
            });
    let out = o.output_of(&b);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    let nofile = out
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        nofile.split_whitespace().collect::<Vec<_>>()[3..5],
        ["512", "768"]
    );
    let b = sh("grep NoNewPrivs /proc/self/status")
        .with(|c| c["process"]["noNewPrivileges"] = json!(false));
    assert_eq!(status_field(&o.output_of(&b), "NoNewPrivs"), "0");
}

#[test]
fn environment_is_exactly_the_config_plus_home() {
    let o = Onggi::new();
    let b =
        sh("env | sort").with(|c| c["process"]["env"] = json!(["PATH=/bin", "A=1", "B=two words"]));
    let out = o
        .command()
        .args(["run", "--bundle", b.dir(), "env"])
        .env("ONGGI_HOST_SECRET", "leak")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "A=1\nB=two words\nHOME=/root\nPATH=/bin\nPWD=/\nSHLVL=1\n"
    );
}

#[test]
fn no_host_descriptor_reaches_the_container_but_preserved_ones_do() {
    let o = Onggi::new();
    let scratch = Scratch::new("fds");
    // Two descriptors onggi inherits without O_CLOEXEC: a directory (the CVE-2024-21626 shape)
    // and a file passed on purpose with --preserve-fds.
    let passed = std::fs::File::create(scratch.path().join("passed")).unwrap();
    let leaked = std::fs::File::open(scratch.path()).unwrap();
    let fds = [passed.as_raw_fd(), leaked.as_raw_fd()];
    for fd in fds {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
    }
    let b = sh("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo via-fd-3 >&3");
    let mut cmd = o.command();
    cmd.args(["run", "--preserve-fds", "1", "--bundle", b.dir(), "fd"]);
    // Make the preserved file fd 3 in onggi, and the leaked directory something higher.
    let (p, l) = (passed.as_raw_fd(), leaked.as_raw_fd());
    // SAFETY: pre_exec runs in the forked child before exec; dup2 is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(l, 20) < 0 || libc::dup2(p, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // ls sees 0 1 2 3 and its own directory fd; never 20, never onggi's own descriptors.
    let seen: Vec<i32> = text(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(&seen[..4], &[0, 1, 2, 3], "{seen:?}");
    assert!(
        seen.len() == 5 && seen[4] < 20,
        "only ls's own fd may follow: {seen:?}"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("passed")).unwrap(),
        "via-fd-3\n"
    );
}

#[test]
fn namespaces_are_new_and_the_init_is_pid_1() {
    let o = Onggi::new();
    let out = o.output_of(&sh(
        "for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done",
    ));
    for (line, n) in out
        .lines()
        .zip(["pid", "net", "ipc", "uts", "mnt", "cgroup"])
    {
        let host = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        assert_ne!(line, host.to_str().unwrap(), "{n} must be a new namespace");
    }
}

#[test]
fn a_namespace_joined_by_path_is_shared() {
    let o = Onggi::new();
    // Join the test's own uts and network namespaces: the hostname and links are the host's.
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let me = std::process::id();
    let b = sh("readlink /proc/self/ns/uts; readlink /proc/self/ns/net").with(|c| {
        c.as_object_mut().unwrap().remove("hostname");
        c["linux"]["namespaces"] = json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
            {"type": "uts", "path": format!("/proc/{me}/ns/uts")},
            {"type": "network", "path": format!("/proc/{me}/ns/net")}
        ]);
    });
    let out = o.output_of(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], host_uts.to_str().unwrap());
    assert_eq!(lines[1], host_net.to_str().unwrap());
}

#[test]
fn without_a_network_namespace_the_host_network_is_shared() {
    let o = Onggi::new();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let b = sh("readlink /proc/self/ns/net").with(|c| {
        c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]);
    });
    assert_eq!(o.output_of(&b).trim(), host.to_str().unwrap());
}

#[test]
fn mounts_are_where_and_how_the_config_says() {
    let o = Onggi::new();
    let out = o.output_of(&sh("cat /proc/self/mountinfo"));
    let find = |mp: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("no mount at {mp}:\n{out}"))
            .to_string()
    };
    assert!(find("/proc").contains(" - proc "));
    let sys = find("/sys");
    assert!(
        sys.contains(" - sysfs ") && sys.split(' ').nth(5).unwrap().starts_with("ro"),
        "{sys}"
    );
    let dev = find("/dev");
    assert!(dev.contains(" - tmpfs ") && dev.contains("nosuid"), "{dev}");
    assert!(find("/dev/pts").contains(" - devpts "));
    assert!(find("/dev/mqueue").contains(" - mqueue "));
    let cg = find("/sys/fs/cgroup");
    assert!(
        cg.contains(" - cgroup2 ") && cg.split(' ').nth(5).unwrap().starts_with("ro"),
        "cgroupfs read-only: {cg}"
    );
    // The old root is gone: nothing of the host is mounted under the container's root.
    assert!(
        !out.contains("/work/"),
        "host paths visible in the container:\n{out}"
    );
}

#[test]
fn default_devices_and_links() {
    let o = Onggi::new();
    let out = o.output_of(&sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         for l in ptmx fd stdin stdout stderr; do echo /dev/$l $(readlink /dev/$l); done; \
         echo x > /dev/null && head -c 3 /dev/zero | wc -c",
    ));
    for (d, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        assert!(
            out.contains(&format!(
                "/dev/{d} character special file {maj:x}:{min:x} 666"
            )),
            "{d}:\n{out}"
        );
    }
    assert!(out.contains("/dev/ptmx pts/ptmx"));
    assert!(out.contains("/dev/fd /proc/self/fd"));
    assert!(out.contains("/dev/stderr /proc/self/fd/2"));
    assert!(out.ends_with("3\n"), "{out}");
}

#[test]
fn linux_devices_are_created_with_mode_and_owner() {
    let o = Onggi::new();
    let b = sh("stat -c '%n %F %t:%T %a %u:%g' /dev/mynull /dev/sub/fifo").with(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 432, "uid": 7, "gid": 8},
            {"path": "/dev/sub/fifo", "type": "p"}
        ]);
    });
    let out = o.output_of(&b);
    assert!(
        out.contains("/dev/mynull character special file 1:3 660 7:8"),
        "{out}"
    );
    assert!(out.contains("/dev/sub/fifo fifo 0:0 666 0:0"), "{out}");
}

#[test]
fn masked_and_readonly_paths() {
    let o = Onggi::new();
    let b = sh(
        "stat -c '%t:%T' /proc/keys; ls /proc/acpi 2>/dev/null | wc -l; \
         echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo wrote || echo refused",
    );
    let out = o.output_of(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1:3", "/proc/keys is covered by /dev/null");
    assert_eq!(lines[1], "0", "/proc/acpi is an empty tmpfs");
    assert_eq!(lines[2], "refused", "/proc/sys is read-only");
}

#[test]
fn readonly_root_and_a_writable_tmpfs() {
    let o = Onggi::new();
    let b = sh(
        "touch /x 2>/dev/null && echo root-writable || echo root-ro; touch /tmp/y && echo tmp-ok",
    )
    .with(|c| {
        c["root"]["readonly"] = json!(true);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    });
    assert_eq!(o.output_of(&b), "root-ro\ntmp-ok\n");
    assert!(!b.rootfs().join("x").exists());
}

/// A Kubernetes pod with readOnlyRootFilesystem and a workingDir the image lacks: the directory
/// is made before the root turns read-only, as runc makes it.
#[test]
fn a_missing_cwd_under_a_readonly_root() {
    let o = Onggi::new();
    let b = sh("pwd; touch /x 2>/dev/null && echo root-writable || echo root-ro").with(|c| {
        c["root"]["readonly"] = json!(true);
        c["process"]["cwd"] = json!("/work/app");
    });
    assert_eq!(o.output_of(&b), "/work/app\nroot-ro\n");
    assert!(b.rootfs().join("work/app").is_dir());
}

#[test]
fn bind_mounts_rw_and_ro_like_docker_volumes() {
    let o = Onggi::new();
    let vol = Scratch::new("vol");
    std::fs::write(vol.path().join("from-host"), "hello\n").unwrap();
    let ro = Scratch::new("volro");
    let b = sh("cat /data/from-host; echo inside > /data/from-container; \
                touch /ro/x 2>/dev/null && echo ro-writable || echo ro-refused")
    .with(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data", "type": "bind", "source": vol.path(), "options": ["rbind", "rw"]}));
        m.push(json!({"destination": "/ro", "type": "bind", "source": ro.path(), "options": ["bind", "ro"]}));
    });
    assert_eq!(o.output_of(&b), "hello\nro-refused\n");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("from-container")).unwrap(),
        "inside\n"
    );
    assert!(
        host_mounts_under(vol.path()).is_empty(),
        "the bind must not appear on the host"
    );
}

#[test]
fn a_file_bind_mount_and_a_relative_source() {
    let o = Onggi::new();
    let b = sh("cat /etc/greeting");
    std::fs::write(b.scratch.path().join("greeting"), "안녕\n").unwrap();
    let b = b.with(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc/greeting", "source": "greeting", "options": ["bind", "ro"]}));
    });
    assert_eq!(o.output_of(&b), "안녕\n");
}

#[test]
fn sysctl_changes_the_container_not_the_host() {
    let o = Onggi::new();
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let b = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni").with(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    });
    assert_eq!(o.output_of(&b), "1\n1234\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host
    );
}

#[test]
fn oom_score_adj_is_set() {
    let o = Onggi::new();
    let b = sh("cat /proc/self/oom_score_adj").with(|c| c["process"]["oomScoreAdj"] = json!(500));
    assert_eq!(o.output_of(&b), "500\n");
}

#[test]
fn rootfs_propagation_is_applied_to_the_container_root() {
    let o = Onggi::new();
    let root_line = "awk '$5 == \"/\"' /proc/self/mountinfo";
    let b = sh(root_line).with(|c| c["linux"]["rootfsPropagation"] = json!("rshared"));
    let out = o.output_of(&b);
    assert!(out.contains("shared:"), "{out}");
    let b = sh(root_line).with(|c| c["linux"]["rootfsPropagation"] = json!("unbindable"));
    assert!(o.output_of(&b).contains("unbindable"));
}

#[test]
fn no_pivot_chroots_into_the_rootfs() {
    let o = Onggi::new();
    let b = sh("hostname; ls /bin/busybox");
    let out = o.run(&["run", "--no-pivot", "--bundle", b.dir(), "np"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "onggi\n/bin/busybox\n");
}

#[test]
fn a_user_namespace_maps_root_to_an_unprivileged_host_uid() {
    let o = Onggi::new();
    let b =
        sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/made-inside").with(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            // /tmp on the host side is the rootfs' own /tmp: give it to the mapped root.
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| m["type"] != "cgroup");
        });
    std::os::unix::fs::chown(b.rootfs().join("tmp"), Some(100000), Some(100000)).unwrap();
    let out = o.output_of(&b);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "100000", "65536"]);
    assert_eq!(lines[2], ["0"], "root inside");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(b.rootfs().join("tmp/made-inside")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (100000, 100000),
        "an unprivileged uid outside"
    );
}

#[test]
fn tmpcopyup_starts_a_tmpfs_with_the_covered_directory_contents() {
    let o = Onggi::new();
    let b = sh("mkdir -p /etc/sub && echo data > /etc/sub/f && ln -sf passwd /etc/link; \
                grep -c root /etc/link; stat -c '%a %u' /etc/passwd; grep ' /etc ' /proc/self/mountinfo | grep -c tmpfs; \
                touch /etc/new")
    .with(|c| {
        c["root"]["readonly"] = json!(true);
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc", "type": "tmpfs",
            "source": "tmpfs", "options": ["rw", "nosuid", "nodev", "tmpcopyup"]}));
    });
    let mode = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(b.rootfs().join("etc/passwd")).unwrap();
        format!("{:o} {}", m.mode() & 0o7777, m.uid())
    };
    let out = o.output_of(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_ne!(
        lines[0], "0",
        "the image's /etc/passwd is there, through a copied symlink"
    );
    assert_eq!(lines[1], mode, "mode and owner kept");
    assert_eq!(lines[2], "1", "/etc is a tmpfs");
    assert!(
        !b.rootfs().join("etc/new").exists(),
        "writes land in the tmpfs"
    );
    assert!(!b.rootfs().join("etc/sub").exists());
}

#[test]
fn a_new_network_namespace_has_only_lo_and_it_is_up() {
    // runc's behaviour: the runtime brings lo up in a network namespace it creates.
    let o = Onggi::new();
    let out = o.output_of(&sh("ip -o link | cut -d' ' -f2,3"));
    assert_eq!(out, "lo: <LOOPBACK,UP,LOWER_UP>\n");
}

#[test]
fn a_time_namespace_shifts_boottime_and_monotonic_by_the_offsets() {
    let o = Onggi::new();
    // A year of boottime: /proc/uptime reads CLOCK_BOOTTIME in the reader's time namespace.
    let b = sh("cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime").with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 3600, "nanosecs": 0},
            "boottime": {"secs": 31536000, "nanosecs": 0}});
    });
    let out = o.output_of(&b);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["monotonic", "3600", "0"], "{out}");
    assert_eq!(lines[1], ["boottime", "31536000", "0"], "{out}");
    let host_uptime: u64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inside: u64 = lines[2][0].parse().unwrap();
    assert!(
        inside >= host_uptime + 31536000 - 5,
        "uptime inside {inside}, host {host_uptime}"
    );
    // A process joining with exec enters the same time namespace.
    let b = b.with(|c| {
        c["process"]["args"] = json!(["sh", "-c", "touch /tmp/up; while :; do sleep 0.05; done"])
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "tns-exec"]);
    let up = o.ok(&["exec", "tns-exec", "cut", "-d.", "-f1", "/proc/uptime"]);
    let up: u64 = up.trim().parse().unwrap();
    assert!(up >= host_uptime + 31536000 - 5, "exec'd uptime {up}");
    o.ok(&["delete", "--force", "tns-exec"]);
    // Offsets without a new time namespace are refused, naming the field.
    let b = sh("true").with(|c| c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}}));
    let err = o.fails(&["create", "--bundle", b.dir(), "tns"]);
    assert!(err.contains("linux.timeOffsets"), "{err}");
    assert!(o.leftovers().is_empty());
}

#[test]
fn an_idmapped_bind_shows_host_uid_1000_as_the_mapped_id() {
    use std::os::unix::fs::MetadataExt;
    let o = Onggi::new();
    let host = Scratch::new("idmap");
    let f = host.path().join("owned-by-1000");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(1000), Some(1000)).unwrap();
    // runc's convention: the mappings are written as the uid_map of the mount's user
    // namespace, so an on-disk id in the containerID column shows as the hostID column.
    let maps = json!([{"containerID": 1000, "hostID": 2000, "size": 1}]);
    let b = sh("stat -c '%u:%g' /mnt/owned-by-1000; stat -c '%u' /mnt").with(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": host.path(),
            "options": ["rbind", "idmap"], "uidMappings": maps, "gidMappings": maps}));
    });
    // The directory itself (host root) is outside the mapping: the overflow id.
    assert_eq!(o.output_of(&b), "2000:2000\n65534\n");
    // Nothing changed on the host.
    let meta = std::fs::metadata(&f).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    // idmap without mappings, or on a non-bind mount, is refused naming the mount.
    let b = sh("true").with(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}));
    });
    let err = o.fails(&["create", "--bundle", b.dir(), "idm"]);
    assert!(
        err.contains("mounts[") && err.contains("uidMappings"),
        "{err}"
    );
    assert!(o.leftovers().is_empty());
}

#[test]
fn net_devices_move_in_renamed_and_go_back_on_delete() {
    let o = Onggi::new();
    let link = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip (iproute2)")
    };
    let (host, peer) = ("onggi-nd0", "onggi-nd1");
    let _ = link(&["link", "del", host]);
    // Deleted however the test ends (deleting one end of a veth removes both).
    struct DelLink(&'static str);
    impl Drop for DelLink {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", self.0])
                .output();
        }
    }
    let _cleanup = DelLink(host);
    let made = link(&["link", "add", host, "type", "veth", "peer", "name", peer]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let b = sh("touch /tmp/up; while :; do sleep 0.05; done").with(|c| {
        c["linux"]["netDevices"] = json!({host: {"name": "eth7"}});
    });
    o.ok(&["run", "-d", "--bundle", b.dir(), "nd"]);
    let inside = o.ok(&[
        "exec",
        "nd",
        "sh",
        "-c",
        "ip -o link | cut -d' ' -f2 | cut -d@ -f1",
    ]);
    assert!(inside.lines().any(|l| l == "eth7"), "{inside}");
    assert!(
        !link(&["link", "show", host]).status.success(),
        "still on the host"
    );
    o.ok(&["delete", "--force", "nd"]);
    let back = link(&["link", "show", host]);
    assert!(
        back.status.success(),
        "not moved back: {}",
        text(&back.stderr)
    );
    let _ = link(&["link", "del", host]);
    // Without a new network namespace of its own, the config is refused naming the field.
    let b = sh("true").with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
        c["linux"]["netDevices"] = json!({host: {}});
    });
    let err = o.fails(&["create", "--bundle", b.dir(), "nd2"]);
    assert!(err.contains("linux.netDevices"), "{err}");
    assert!(o.leftovers().is_empty());
}
