//! The root filesystem setup as a plan: the ordered operations, and for each entry of `mounts`
//! how it is made, decided from the config alone. `setup` (mod.rs) runs the plan, each
//! operation as the trace step of its name; the unit tests below check the order, the choices
//! and the fallbacks without root or a kernel.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxDevice, Mount, Spec};
use std::path::Path;

use super::options::{parse_options, MountOptions};

/// One operation, in the order the plan lists them.
#[derive(Debug, PartialEq)]
pub(crate) enum Op<'a> {
    /// The mounts below the rootfs made private (or as linux.rootfsPropagation says).
    RootfsPropagation(Option<&'a str>),
    /// The rootfs bound onto itself: the new root is a mount of its own.
    RootfsBind,
    /// Instead of the two above: the rootfs and bind sources cloned, a copy of the mount
    /// template entered, the rootfs attached in it, the tree made rslave (or as
    /// linux.rootfsPropagation says). See template.rs.
    TemplateRoot(Option<&'a str>),
    /// `mounts`, in config order.
    Mounts(Vec<MountOp<'a>>),
    /// /dev: the default nodes and links (on a new tmpfs when the config mounts none there).
    /// Left out when /dev is a bind of the host's.
    Dev {
        mount_tmpfs: bool,
    },
    /// `linux.devices`.
    Devices(&'a [LinuxDevice]),
    MaskedPaths(&'a [String]),
    ReadonlyPaths(&'a [String]),
    /// The createContainer hooks: mounts done, the root not switched yet.
    CreateContainerHooks,
    /// pivot_root into the rootfs, the old root detached.
    PivotRoot,
    /// --no-pivot: the rootfs moved over / and chrooted into.
    MoveRoot,
    /// process.cwd created if missing (as runc does), before the root may turn read-only.
    CwdCreate(&'a Path),
    /// A read-only /dev made read-only now, after its nodes and submounts (as runc does).
    DevReadonly,
    /// root.readonly.
    RootReadonly,
    /// linux.rootfsPropagation applied to the new /.
    RootPropagation(&'a str),
}

impl Op<'_> {
    /// The trace step that runs it.
    pub(crate) fn step(&self) -> &'static str {
        match self {
            Op::RootfsPropagation(_) => "rootfs_propagation",
            Op::RootfsBind => "rootfs_bind",
            Op::TemplateRoot(_) => "enter_template",
            Op::Mounts(_) => "mounts",
            Op::Dev { .. } => "dev",
            Op::Devices(_) => "devices",
            Op::MaskedPaths(_) => "masked_paths",
            Op::ReadonlyPaths(_) => "readonly_paths",
            Op::CreateContainerHooks => "createContainer",
            Op::PivotRoot => "pivot_root",
            Op::MoveRoot => "chroot",
            Op::CwdCreate(_) => "cwd_create",
            Op::DevReadonly => "dev_readonly",
            Op::RootReadonly => "root_readonly",
            Op::RootPropagation(_) => "root_propagation_final",
        }
    }
}

/// One entry of `mounts` and how it is made.
#[derive(Debug, PartialEq)]
pub(crate) struct MountOp<'a> {
    pub(crate) index: usize,
    pub(crate) mount: &'a Mount,
    pub(crate) plan: &'a MountPlan,
}

/// An entry of `mounts` as parsed at load: its options, and how it is made.
#[derive(Debug, PartialEq)]
pub(crate) struct MountPlan {
    pub(crate) options: MountOptions,
    pub(crate) how: How,
    /// Mounted read-write, made read-only at the end ([`Op::DevReadonly`]): a read-only /dev,
    /// whose nodes, links and submounts (/dev/pts, /dev/shm …) are made after it.
    pub(crate) readonly_at_end: bool,
}

/// How a mount is made.
#[derive(Debug, PartialEq)]
pub(crate) enum How {
    /// A bind (or rbind) of a host path (or of the descriptor onggi opened for it).
    Bind,
    /// A new instance of `fstype`.
    New {
        fstype: String,
        /// proc or sysfs: the target must not be reached through a symlink, and the
        /// filesystem type is checked after mounting.
        special: bool,
        /// What a user namespace falls back to when the kernel refuses the mount.
        fallback: Option<Fallback>,
    },
}

/// The user-namespace fallbacks: the kernel lets only the owner of the network (sysfs) or
/// cgroup (cgroup2) namespace mount them.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Fallback {
    /// A read-only recursive bind of the host's /sys.
    SysfsHostBind,
    /// A bind of the container's own cgroup directory.
    Cgroup2HostBind,
}

/// The filesystem type onggi mounts for a config `type` ("cgroup" means cgroup2: onggi is
/// cgroup-v2 only and never mounts or binds a v1 hierarchy).
fn fs_type(t: &str) -> &str {
    if t == "cgroup" {
        "cgroup2"
    } else {
        t
    }
}

/// Each entry of `mounts`, parsed: its options and how it is made. `userns`: the init will be
/// root of a user namespace (its own, or onggi's under rootless podman), where sysfs and
/// cgroup2 may need their fallbacks. An error names the entry and what is wrong with it.
pub(crate) fn plan_mounts(mounts: &[Mount], userns: bool) -> Result<Vec<MountPlan>> {
    let one = |m: &Mount| -> Result<MountPlan> {
        let mut options = parse_options(m.options().as_deref().unwrap_or(&[]))?;
        let how = how(m, &options, userns)?;
        let readonly_at_end = how != How::Bind
            && m.destination() == Path::new("/dev")
            && options.flags & libc::MS_RDONLY != 0;
        if readonly_at_end {
            options.flags &= !libc::MS_RDONLY;
        }
        Ok(MountPlan {
            options,
            how,
            readonly_at_end,
        })
    };
    mounts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            one(m).map_err(|e| e.context(format!("mounts[{i}] ({})", m.destination().display())))
        })
        .collect()
}

/// How mount `m` with the parsed `options` is made.
fn how(m: &Mount, options: &MountOptions, userns: bool) -> Result<How> {
    let typ = m.typ().as_deref().unwrap_or("");
    if options.is_bind() || typ == "bind" {
        if m.source().is_none() {
            bail!("a bind mount needs a source");
        }
        return Ok(How::Bind);
    }
    if typ.is_empty() || typ == "none" {
        bail!("mount type is missing (give a filesystem type, or the \"bind\" option)");
    }
    let fstype = fs_type(typ);
    if options.tmpcopyup && fstype != "tmpfs" {
        bail!("mount option \"tmpcopyup\" is only for tmpfs (this is {fstype})");
    }
    let fallback = match fstype {
        "sysfs" if userns => Some(Fallback::SysfsHostBind),
        "cgroup2" if userns => Some(Fallback::Cgroup2HostBind),
        _ => None,
    };
    Ok(How::New {
        fstype: fstype.to_string(),
        special: matches!(fstype, "proc" | "sysfs"),
        fallback,
    })
}

/// The whole root filesystem setup for `spec`, whose mounts `mounts` describes (by index);
/// `template`: the init enters a copy of the mount template (template.rs) instead of binding
/// the rootfs in a copy of the host's mounts.
pub(crate) fn plan<'a>(
    spec: &'a Spec,
    mounts: &'a [MountPlan],
    no_pivot: bool,
    template: bool,
) -> Vec<Op<'a>> {
    let linux = spec.linux().as_ref();
    let config = spec.mounts().as_deref().unwrap_or(&[]);
    let planned: Vec<MountOp<'a>> = config
        .iter()
        .zip(mounts)
        .enumerate()
        .map(|(index, (mount, plan))| MountOp { index, mount, plan })
        .collect();
    let dev = planned
        .iter()
        .find(|m| m.mount.destination() == Path::new("/dev"));
    let dev = match dev {
        Some(m) if m.plan.how == How::Bind => None,
        Some(_) => Some(Op::Dev { mount_tmpfs: false }),
        None => Some(Op::Dev { mount_tmpfs: true }),
    };
    let root_prop = linux.and_then(|l| l.rootfs_propagation().as_deref());
    let list = |f: Option<&'a Vec<String>>| f.map_or(&[][..], |v| v.as_slice());
    let mut ops = if template {
        vec![Op::TemplateRoot(root_prop)]
    } else {
        vec![Op::RootfsPropagation(root_prop), Op::RootfsBind]
    };
    ops.push(Op::Mounts(planned));
    ops.extend(dev);
    ops.extend([
        Op::Devices(linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[])),
        Op::MaskedPaths(list(linux.and_then(|l| l.masked_paths().as_ref()))),
        Op::ReadonlyPaths(list(linux.and_then(|l| l.readonly_paths().as_ref()))),
        Op::CreateContainerHooks,
        if no_pivot {
            Op::MoveRoot
        } else {
            Op::PivotRoot
        },
    ]);
    ops.extend(spec.process().as_ref().map(|p| Op::CwdCreate(p.cwd())));
    if mounts.iter().any(|m| m.readonly_at_end) {
        ops.push(Op::DevReadonly);
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        ops.push(Op::RootReadonly);
    }
    ops.extend(root_prop.map(Op::RootPropagation));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({
            "ociVersion": "1.2.1",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ],
            "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}
        });
        if let serde_json::Value::Object(m) = extra {
            for (k, x) in m {
                v[k] = x;
            }
        }
        serde_json::from_value(v).expect("valid test spec")
    }

    fn mounts(s: &Spec, userns: bool) -> Result<Vec<MountPlan>> {
        plan_mounts(s.mounts().as_deref().unwrap_or(&[]), userns)
    }

    fn steps(ops: &[Op<'_>]) -> Vec<&'static str> {
        ops.iter().map(Op::step).collect()
    }

    fn new(fstype: &str, special: bool, fallback: Option<Fallback>) -> How {
        How::New {
            fstype: fstype.into(),
            special,
            fallback,
        }
    }

    #[test]
    fn with_the_mount_template_one_step_replaces_propagation_and_bind() {
        let s = spec(serde_json::json!({"linux": {"rootfsPropagation": "rprivate"}}));
        let m = mounts(&s, false).expect("mounts");
        let ops = plan(&s, &m, false, true);
        assert_eq!(ops[0], Op::TemplateRoot(Some("rprivate")));
        assert_eq!(steps(&ops)[1], "mounts");
        assert!(!steps(&ops).contains(&"rootfs_bind"));
        assert_eq!(ops.last(), Some(&Op::RootPropagation("rprivate")));
    }

    #[test]
    fn the_default_order() {
        let s = spec(serde_json::json!({}));
        let m = mounts(&s, false).expect("mounts");
        let ops = plan(&s, &m, false, false);
        assert_eq!(
            steps(&ops),
            [
                "rootfs_propagation",
                "rootfs_bind",
                "mounts",
                "dev",
                "devices",
                "masked_paths",
                "readonly_paths",
                "createContainer",
                "pivot_root"
            ]
        );
        assert!(
            ops.contains(&Op::Dev { mount_tmpfs: false }),
            "/dev is mounted by the config"
        );
        let kinds: Vec<&How> = m.iter().map(|m| &m.how).collect();
        assert_eq!(
            kinds,
            [
                &new("proc", true, None),
                &new("tmpfs", false, None),
                &new("sysfs", true, None),
                &new("cgroup2", false, None),
            ]
        );
        assert_eq!(m[1].options.flags, libc::MS_NOSUID);
        assert_eq!(m[1].options.data, ["mode=755"]);
        let Op::Mounts(ops) = &ops[2] else {
            panic!("{ops:?}")
        };
        assert_eq!(
            ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn a_user_namespace_falls_back_to_host_binds_for_sysfs_and_cgroup2() {
        let s = spec(serde_json::json!({}));
        let fallbacks: Vec<Option<Fallback>> = mounts(&s, true)
            .expect("mounts")
            .iter()
            .map(|m| match m.how {
                How::New { fallback, .. } => fallback,
                How::Bind => None,
            })
            .collect();
        assert_eq!(
            fallbacks,
            [
                None,
                None,
                Some(Fallback::SysfsHostBind),
                Some(Fallback::Cgroup2HostBind)
            ]
        );
    }

    #[test]
    fn dev_is_made_unless_it_is_a_bind() {
        let none = spec(serde_json::json!({"mounts": []}));
        let ops = plan(&none, &[], false, false);
        assert!(ops.contains(&Op::Dev { mount_tmpfs: true }), "{ops:?}");
        let bind = spec(serde_json::json!({"mounts": [
            {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}
        ]}));
        let m = mounts(&bind, false).expect("mounts");
        assert_eq!(m[0].how, How::Bind);
        assert!(!steps(&plan(&bind, &m, false, false)).contains(&"dev"));
    }

    #[test]
    fn the_end_follows_the_root_settings() {
        let s = spec(serde_json::json!({
            "root": {"path": "rootfs", "readonly": true},
            "linux": {"rootfsPropagation": "rslave"}
        }));
        let m = mounts(&s, false).expect("mounts");
        let ops = plan(&s, &m, true, false);
        assert_eq!(ops[0], Op::RootfsPropagation(Some("rslave")));
        assert_eq!(
            steps(&ops)[ops.len() - 3..],
            ["chroot", "root_readonly", "root_propagation_final"]
        );
        assert_eq!(ops.last(), Some(&Op::RootPropagation("rslave")));
    }

    #[test]
    fn the_cwd_is_made_before_the_root_turns_read_only() {
        let s = spec(serde_json::json!({
            "root": {"path": "rootfs", "readonly": true},
            "process": {"cwd": "/work", "args": ["sh"], "user": {"uid": 0, "gid": 0}}
        }));
        let m = mounts(&s, false).expect("mounts");
        let ops = plan(&s, &m, false, false);
        assert_eq!(
            steps(&ops)[ops.len() - 3..],
            ["pivot_root", "cwd_create", "root_readonly"]
        );
        assert_eq!(ops[ops.len() - 2], Op::CwdCreate(Path::new("/work")));
    }

    #[test]
    fn a_bad_mount_is_refused_before_anything_is_made() {
        for (mount, why) in [
            (
                serde_json::json!({"destination": "/x", "source": "x"}),
                "mount type is missing",
            ),
            (
                serde_json::json!({"destination": "/x", "type": "bind"}),
                "a bind mount needs a source",
            ),
            (
                serde_json::json!({"destination": "/x", "type": "proc", "options": ["tmpcopyup"]}),
                "only for tmpfs",
            ),
            (
                serde_json::json!({"destination": "/x", "type": "tmpfs", "options": ["remount"]}),
                "remount",
            ),
        ] {
            let s = spec(serde_json::json!({ "mounts": [mount] }));
            let e = format!("{:#}", mounts(&s, false).expect_err("refused"));
            assert!(e.starts_with("mounts[0] (/x): "), "{e}");
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn a_read_only_dev_is_made_read_only_after_its_submounts() {
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nosuid"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts"}
        ]}));
        let m = mounts(&s, false).expect("mounts");
        assert!(m[0].readonly_at_end);
        assert_eq!(
            m[0].options.flags,
            libc::MS_NOSUID,
            "mounted read-write first"
        );
        assert!(!m[1].readonly_at_end);
        let steps = steps(&plan(&s, &m, false, false));
        let at = |name| steps.iter().position(|s| *s == name).expect(name);
        assert!(
            at("mounts") < at("dev") && at("pivot_root") < at("dev_readonly"),
            "{steps:?}"
        );
        let plain = spec(serde_json::json!({}));
        let m = mounts(&plain, false).expect("mounts");
        assert!(!steps_of(&plain, &m).contains(&"dev_readonly"));
    }

    fn steps_of(s: &Spec, m: &[MountPlan]) -> Vec<&'static str> {
        plan(s, m, false, false).iter().map(Op::step).collect()
    }
}
