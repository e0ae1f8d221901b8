//! Mount options as config.json spells them, parsed into flags, attributes and data once; the
//! one table the parser and `features` both read.

use anyhow::{bail, Result};

use crate::sys;

/// `rootfsPropagation` and propagation mount options to mount(2) flags.
pub(crate) fn propagation_flag(name: &str) -> Result<libc::c_ulong> {
    Ok(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        other => bail!(
            "unknown propagation {other:?} (use [r]private, [r]shared, [r]slave or [r]unbindable)"
        ),
    })
}

/// A mount's options, sorted into what each kernel interface takes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// mount(2) flags to set (MS_RDONLY, MS_NOSUID …), including MS_BIND/MS_REC for binds.
    pub(crate) flags: libc::c_ulong,
    /// mount(2) flags the options turn off again (`rw`, `suid`, `dev`, `exec` …).
    pub(crate) clear: libc::c_ulong,
    /// Propagation changes, in order.
    pub(crate) propagation: Vec<libc::c_ulong>,
    /// MOUNT_ATTR_* set and cleared recursively (`rro`, `rnosuid` …).
    pub(crate) rec_set: u64,
    pub(crate) rec_clear: u64,
    /// Everything else, passed to the filesystem as the data string.
    pub(crate) data: Vec<String>,
    /// `tmpcopyup` (runc/crun extension, sent by podman for --read-only's tmpfs mounts): the
    /// new tmpfs starts with a copy of what the directory it covers held.
    pub(crate) tmpcopyup: bool,
    /// `idmap` / `ridmap` (recursive): the bind is idmapped with the mount's uid/gidMappings.
    pub(crate) idmap: Option<Idmap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idmap {
    /// `idmap`: the top mount of the bind only.
    Top,
    /// `ridmap`: every mount of a recursive bind.
    Recursive,
}

impl MountOptions {
    pub(crate) fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

/// The options that are mount(2) flags: (name, flags set, flags cleared). With the
/// propagation names, [`EXTENSIONS`] and the `r`-prefixed [`RECURSIVE`] attributes, this is
/// every option onggi knows (`features` lists them from here); anything else is filesystem data.
const FLAGS: &[(&str, libc::c_ulong, libc::c_ulong)] = &[
    ("async", 0, libc::MS_SYNCHRONOUS),
    ("atime", 0, libc::MS_NOATIME),
    ("bind", libc::MS_BIND, 0),
    ("defaults", 0, 0),
    ("dev", 0, libc::MS_NODEV),
    ("diratime", 0, libc::MS_NODIRATIME),
    ("dirsync", libc::MS_DIRSYNC, 0),
    ("exec", 0, libc::MS_NOEXEC),
    ("iversion", libc::MS_I_VERSION, 0),
    ("lazytime", libc::MS_LAZYTIME, 0),
    ("loud", 0, libc::MS_SILENT),
    ("mand", libc::MS_MANDLOCK, 0),
    ("noatime", libc::MS_NOATIME, 0),
    ("nodev", libc::MS_NODEV, 0),
    ("nodiratime", libc::MS_NODIRATIME, 0),
    ("noexec", libc::MS_NOEXEC, 0),
    ("noiversion", 0, libc::MS_I_VERSION),
    ("nolazytime", 0, libc::MS_LAZYTIME),
    ("nomand", 0, libc::MS_MANDLOCK),
    ("norelatime", 0, libc::MS_RELATIME),
    ("nostrictatime", 0, libc::MS_STRICTATIME),
    ("nosuid", libc::MS_NOSUID, 0),
    ("nosymfollow", libc::MS_NOSYMFOLLOW, 0),
    ("rbind", libc::MS_BIND | libc::MS_REC, 0),
    ("relatime", libc::MS_RELATIME, 0),
    ("ro", libc::MS_RDONLY, 0),
    ("rw", 0, libc::MS_RDONLY),
    ("silent", libc::MS_SILENT, 0),
    ("strictatime", libc::MS_STRICTATIME, 0),
    ("suid", 0, libc::MS_NOSUID),
    ("sync", libc::MS_SYNCHRONOUS, 0),
];

/// Propagation options (see [`propagation_flag`]).
const PROPAGATION: &[&str] = &[
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// runc and crun extensions: `tmpcopyup`, and idmapped mounts.
const EXTENSIONS: &[&str] = &["idmap", "ridmap", "tmpcopyup"];

/// The recursive (`r`-prefixed) mount attributes: (name without the `r`, MOUNT_ATTR bit, set?).
/// "ratime", "rnorelatime", "rnostrictatime" go back to the default (relatime).
const RECURSIVE: &[(&str, u64, bool)] = &[
    ("ro", sys::MOUNT_ATTR_RDONLY, true),
    ("rw", sys::MOUNT_ATTR_RDONLY, false),
    ("nosuid", sys::MOUNT_ATTR_NOSUID, true),
    ("suid", sys::MOUNT_ATTR_NOSUID, false),
    ("nodev", sys::MOUNT_ATTR_NODEV, true),
    ("dev", sys::MOUNT_ATTR_NODEV, false),
    ("noexec", sys::MOUNT_ATTR_NOEXEC, true),
    ("exec", sys::MOUNT_ATTR_NOEXEC, false),
    ("nodiratime", sys::MOUNT_ATTR_NODIRATIME, true),
    ("diratime", sys::MOUNT_ATTR_NODIRATIME, false),
    ("nosymfollow", sys::MOUNT_ATTR_NOSYMFOLLOW, true),
    ("symfollow", sys::MOUNT_ATTR_NOSYMFOLLOW, false),
    ("noatime", sys::MOUNT_ATTR_NOATIME, true),
    ("strictatime", sys::MOUNT_ATTR_STRICTATIME, true),
    ("relatime", sys::MOUNT_ATTR_RELATIME, true),
    ("atime", sys::MOUNT_ATTR_RELATIME, true),
    ("norelatime", sys::MOUNT_ATTR_RELATIME, true),
    ("nostrictatime", sys::MOUNT_ATTR_RELATIME, true),
];

/// Every mount option onggi knows, sorted (what `features` reports).
pub(crate) fn known_options() -> Vec<String> {
    let mut all: Vec<String> = FLAGS
        .iter()
        .map(|(n, _, _)| n.to_string())
        .chain(PROPAGATION.iter().chain(EXTENSIONS).map(|n| n.to_string()))
        .chain(RECURSIVE.iter().map(|(n, _, _)| format!("r{n}")))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Sorts `options` (the runc/crun table of mount options).
pub(crate) fn parse_options(options: &[String]) -> Result<MountOptions> {
    let mut o = MountOptions::default();
    for opt in options {
        let opt = opt.as_str();
        if opt == "remount" {
            bail!("mount option \"remount\" is not allowed in a container config");
        }
        if let Some((_, set, clear)) = FLAGS.iter().find(|(n, _, _)| *n == opt) {
            o.flags = (o.flags | set) & !clear;
            o.clear = (o.clear | clear) & !set;
        } else if PROPAGATION.contains(&opt) {
            o.propagation.push(propagation_flag(opt)?);
        } else if let Some(attr) = opt.strip_prefix('r').and_then(recursive_attr) {
            o.recursive(attr);
        } else {
            match opt {
                "tmpcopyup" => o.tmpcopyup = true,
                "idmap" => o.idmap = Some(Idmap::Top),
                "ridmap" => o.idmap = Some(Idmap::Recursive),
                _ => o.data.push(opt.to_string()),
            }
        }
    }
    Ok(o)
}

impl MountOptions {
    /// An `r`-prefixed attribute: (MOUNT_ATTR bit, set?).
    fn recursive(&mut self, (attr, on): (u64, bool)) {
        if on {
            self.rec_set |= attr;
            self.rec_clear &= !attr;
        } else {
            self.rec_clear |= attr;
            self.rec_set &= !attr;
        }
        if attr & sys::MOUNT_ATTR__ATIME != 0 || attr == 0 {
            // atime modes are one field: clearing it selects the new mode.
            self.rec_clear |= sys::MOUNT_ATTR__ATIME;
        }
    }
}

/// The recursive attribute `name` (without its `r`): (MOUNT_ATTR bit, set?).
fn recursive_attr(name: &str) -> Option<(u64, bool)> {
    RECURSIVE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, attr, on)| (*attr, *on))
}

/// mount(2) flags to MOUNT_ATTR_* (set, clear) for mount_setattr on a bind mount.
pub(super) fn flags_to_attrs(flags: libc::c_ulong, clear: libc::c_ulong) -> (u64, u64) {
    const MAP: &[(libc::c_ulong, u64)] = &[
        (libc::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
        (libc::MS_NOSYMFOLLOW, sys::MOUNT_ATTR_NOSYMFOLLOW),
    ];
    let (mut set, mut clr) = (0, 0);
    for (ms, attr) in MAP {
        if flags & ms != 0 {
            set |= attr;
        }
        if clear & ms != 0 {
            clr |= attr;
        }
    }
    let atime = if flags & libc::MS_NOATIME != 0 {
        Some(sys::MOUNT_ATTR_NOATIME)
    } else if flags & libc::MS_STRICTATIME != 0 {
        Some(sys::MOUNT_ATTR_STRICTATIME)
    } else if flags & libc::MS_RELATIME != 0 {
        Some(sys::MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    if let Some(a) = atime {
        set |= a;
        clr |= sys::MOUNT_ATTR__ATIME;
    }
    (set, clr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    fn o(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("parses")
    }

    #[test]
    fn flags_and_data() {
        let m = o(&["nosuid", "noexec", "mode=755", "size=65536k", "ro"]);
        assert_eq!(m.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_RDONLY);
        assert_eq!(m.data, vec!["mode=755", "size=65536k"]);
        assert!(!m.is_bind());
    }

    #[test]
    fn later_options_win() {
        let m = o(&["ro", "rw"]);
        assert_eq!(m.flags & libc::MS_RDONLY, 0);
        assert_eq!(m.clear & libc::MS_RDONLY, libc::MS_RDONLY);
        let m = o(&["rw", "ro"]);
        assert_eq!(m.flags & libc::MS_RDONLY, libc::MS_RDONLY);
        assert_eq!(m.clear & libc::MS_RDONLY, 0);
    }

    #[test]
    fn binds_propagation_and_recursive() {
        let m = o(&["rbind", "rprivate", "rro", "rnosuid"]);
        assert!(m.is_bind());
        assert_eq!(m.flags & libc::MS_REC, libc::MS_REC);
        assert_eq!(m.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(m.rec_set, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID);
        let m = o(&["bind", "rnoatime"]);
        assert_eq!(m.rec_set, sys::MOUNT_ATTR_NOATIME);
        assert_eq!(m.rec_clear, sys::MOUNT_ATTR__ATIME);
    }

    #[test]
    fn remount_is_refused_and_idmap_is_parsed() {
        assert!(parse_options(&["remount".into()]).is_err());
        assert_eq!(
            parse_options(&["idmap".into()])
                .expect("test fixture is valid")
                .idmap,
            Some(Idmap::Top)
        );
        assert_eq!(
            parse_options(&["rbind".into(), "ridmap".into()])
                .expect("test fixture is valid")
                .idmap,
            Some(Idmap::Recursive)
        );
    }

    #[test]
    fn bind_flags_to_attrs() {
        let (set, clr) = flags_to_attrs(
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOATIME,
            libc::MS_NOEXEC,
        );
        assert_eq!(
            set,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOATIME
        );
        assert_eq!(clr, sys::MOUNT_ATTR_NOEXEC | sys::MOUNT_ATTR__ATIME);
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            propagation_flag("rshared").ok(),
            Some(libc::MS_SHARED | libc::MS_REC)
        );
        assert!(propagation_flag("bogus").is_err());
    }

    #[test]
    fn the_known_options_are_the_documented_ones() {
        let documented = [
            "async",
            "atime",
            "bind",
            "defaults",
            "dev",
            "diratime",
            "dirsync",
            "exec",
            "idmap",
            "iversion",
            "lazytime",
            "loud",
            "mand",
            "noatime",
            "nodev",
            "nodiratime",
            "noexec",
            "noiversion",
            "nolazytime",
            "nomand",
            "norelatime",
            "nostrictatime",
            "nosuid",
            "nosymfollow",
            "private",
            "ratime",
            "rbind",
            "rdev",
            "rdiratime",
            "relatime",
            "rexec",
            "ridmap",
            "rnoatime",
            "rnodev",
            "rnodiratime",
            "rnoexec",
            "rnorelatime",
            "rnostrictatime",
            "rnosuid",
            "rnosymfollow",
            "ro",
            "rprivate",
            "rrelatime",
            "rro",
            "rrw",
            "rshared",
            "rslave",
            "rstrictatime",
            "rsuid",
            "rsymfollow",
            "runbindable",
            "rw",
            "shared",
            "silent",
            "slave",
            "strictatime",
            "suid",
            "sync",
            "tmpcopyup",
            "unbindable",
        ];
        assert_eq!(known_options(), documented);
        for o in known_options() {
            let m = parse_options(std::slice::from_ref(&o)).expect("known");
            assert!(m.data.is_empty(), "{o} is not filesystem data");
        }
    }
}
