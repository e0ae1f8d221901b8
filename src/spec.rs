//! The bundle's config.json: loading (with the line and column of a JSON error), validation that
//! names the offending field, and the default config `onggi spec` writes.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The runtime-spec version onggi implements (reported by `--version`, `state`, `features`).
pub(crate) const OCI_VERSION: &str = "1.2.1";

/// The search path used for `process.args[0]` when `process.env` has no PATH.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A loaded, validated bundle.
pub(crate) struct Bundle {
    /// The bundle directory, absolute.
    pub(crate) dir: PathBuf,
    /// The root filesystem, absolute and canonical.
    pub(crate) rootfs: PathBuf,
    pub(crate) spec: Spec,
    /// config.json as read: the state directory's snapshot is these bytes (they parse to
    /// `spec` again), not a new serialisation of it.
    pub(crate) raw: Vec<u8>,
}

impl Bundle {
    /// Loads `<dir>/config.json` and validates it.
    pub(crate) fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir)
            .with_context(|| format!("bundle {}: cannot make the path absolute", dir.display()))?;
        if !dir.is_dir() {
            bail!("bundle {}: not a directory", dir.display());
        }
        let path = dir.join("config.json");
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let spec =
            parse(&bytes).with_context(|| format!("{} is not a valid config", path.display()))?;
        Bundle::from_spec(dir, spec, bytes)
    }

    /// Validates `spec` (parsed from `raw`) as the config of the bundle `dir`.
    fn from_spec(dir: PathBuf, spec: Spec, raw: Vec<u8>) -> Result<Bundle> {
        validate_version(spec.version())?;
        let root = spec
            .root()
            .as_ref()
            .context("config.json: root is missing")?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        let rootfs = std::fs::canonicalize(&rootfs)
            .with_context(|| format!("root.path {}: does not exist", rootfs.display()))?;
        if !rootfs.is_dir() {
            bail!("root.path {}: not a directory", rootfs.display());
        }
        validate(&spec)?;
        Ok(Bundle {
            dir,
            rootfs,
            spec,
            raw,
        })
    }

    /// The namespaces of the config, in config order.
    pub(crate) fn namespaces(&self) -> &[oci_spec::runtime::LinuxNamespace] {
        self.spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or(&[])
    }

    /// Whether the config asks for a new (path-less) namespace of type `t`.
    pub(crate) fn new_namespace(&self, t: LinuxNamespaceType) -> bool {
        self.namespaces()
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    }

    /// Whether the config has a namespace of type `t` at all (new or joined).
    pub(crate) fn has_namespace(&self, t: LinuxNamespaceType) -> bool {
        self.namespaces().iter().any(|n| n.typ() == t)
    }
}

/// Parses config.json text; a JSON error carries its line and column.
pub(crate) fn parse(bytes: &[u8]) -> Result<Spec> {
    serde_json::from_slice(bytes).map_err(|e| anyhow::anyhow!("{e}"))
}

fn validate_version(v: &str) -> Result<()> {
    let major = v.split('.').next().unwrap_or("");
    match major.parse::<u32>() {
        Ok(1) => Ok(()),
        _ => bail!(
            "ociVersion {v:?} is not supported: onggi implements runtime-spec 1.x (up to {OCI_VERSION})"
        ),
    }
}

/// sysctl keys that are namespaced, and the namespace each needs.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Fields onggi does not implement yet are refused, never silently ignored: a container that
/// asked for seccomp must not run unconfined, a network hook must not be skipped.
fn refuse_unsupported(spec: &Spec) -> Result<()> {
    let not_yet = |field: &str| {
        anyhow::anyhow!(
            "config.json: {field} is not supported by onggi yet: refusing to run without it"
        )
    };
    if let Some(l) = spec.linux() {
        crate::lsm::check_mount_label(l.mount_label().as_deref())?;
        if l.intel_rdt().is_some() {
            return Err(not_yet("linux.intelRdt"));
        }
    }
    Ok(())
}

/// Idmapped mounts (runc's rules): a bind mount with both uidMappings and gidMappings; the
/// `idmap`/`ridmap` option without mappings, or mappings on another mount type, is an error.
fn validate_idmapped_mounts(spec: &Spec) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = m.options().as_deref().unwrap_or(&[]);
        let asks = opts.iter().any(|o| o == "idmap" || o == "ridmap");
        let has = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
            v.as_ref().is_some_and(|v| !v.is_empty())
        };
        let (u, g) = (has(m.uid_mappings()), has(m.gid_mappings()));
        if !(asks || u || g) {
            continue;
        }
        let bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        if !bind {
            bail!(
                "config.json: mounts[{i}] ({}): idmapped mounts must be bind mounts",
                m.destination().display()
            );
        }
        if !(u && g) {
            bail!(
                "config.json: mounts[{i}] ({}): an idmapped mount needs both uidMappings and gidMappings",
                m.destination().display()
            );
        }
    }
    Ok(())
}

/// The kernel's limits on the names (HOST_NAME_MAX), and the id maps a new user namespace
/// cannot do without (without them every id in it is the overflow id, and the first chown
/// fails with a bare EOVERFLOW).
fn validate_names_and_maps(spec: &Spec) -> Result<()> {
    for (field, v) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if let Some(v) = v.as_deref().filter(|v| v.len() > 64) {
            bail!(
                "config.json: {field} is {} bytes long; the kernel takes at most 64",
                v.len()
            );
        }
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if new_userns {
        for (field, maps) in [
            ("uidMappings", linux.uid_mappings()),
            ("gidMappings", linux.gid_mappings()),
        ] {
            if maps.as_ref().is_none_or(|m| m.is_empty()) {
                bail!("config.json: linux.{field} is missing: a new user namespace needs uidMappings and gidMappings (ids of the container mapped to ids of the host)");
            }
        }
    }
    Ok(())
}

fn validate(spec: &Spec) -> Result<()> {
    refuse_unsupported(spec)?;
    validate_idmapped_mounts(spec)?;
    let new_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_none())
        });
    crate::netdev::validate(spec, new_netns)?;
    validate_names_and_maps(spec)?;
    if let Some(p) = spec.process() {
        validate_process(p)?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination().as_os_str().is_empty() {
            bail!("config.json: mounts[{i}].destination is empty");
        }
        if m.destination()
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            bail!(
                "config.json: mounts[{i}].destination {:?} must not contain \"..\"",
                m.destination()
            );
        }
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let types = validate_namespaces(linux)?;
    validate_namespaced(spec, linux, &types)?;
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            bail!(
                "config.json: linux.devices[{i}].path {:?} must be absolute",
                d.path()
            );
        }
        if !d.path().starts_with("/dev") {
            bail!(
                "config.json: linux.devices[{i}].path {:?} must be under /dev",
                d.path()
            );
        }
    }
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    // With a user namespace joined by path, mappings may be given (podman does, for its pods):
    // they must then be that namespace's own, which onggi checks once the init is in it.
    let userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User);
    if maps && !userns {
        bail!("config.json: linux.uidMappings/gidMappings need a user namespace (linux.namespaces has no \"user\")");
    }
    Ok(())
}

/// process: args, cwd, rlimits, env.
fn validate_process(p: &oci_spec::runtime::Process) -> Result<()> {
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("config.json: process.args must name the program to run"),
    }
    if !p.cwd().is_absolute() {
        bail!(
            "config.json: process.cwd {:?} must be an absolute path",
            p.cwd()
        );
    }
    let mut seen = HashSet::new();
    for r in p.rlimits().iter().flatten() {
        if !seen.insert(format!("{:?}", r.typ())) {
            bail!("config.json: process.rlimits has {:?} twice", r.typ());
        }
        if r.soft() > r.hard() {
            bail!(
                "config.json: process.rlimits {:?}: soft {} is above hard {}",
                r.typ(),
                r.soft(),
                r.hard()
            );
        }
    }
    if let Some(env) = p.env() {
        if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
            bail!("config.json: process.env entry {bad:?} is not KEY=VALUE");
        }
    }
    Ok(())
}

/// linux.namespaces: each type once, paths absolute. Returns the types.
fn validate_namespaces(linux: &oci_spec::runtime::Linux) -> Result<HashSet<LinuxNamespaceType>> {
    let mut types = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        if !types.insert(ns.typ()) {
            bail!(
                "config.json: linux.namespaces has {} twice",
                crate::namespaces::name(ns.typ())
            );
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                bail!(
                    "config.json: linux.namespaces {} path {:?} must be absolute",
                    crate::namespaces::name(ns.typ()),
                    p
                );
            }
        }
    }
    Ok(types)
}

/// What needs a namespace of the container's own: time offsets, host and domain names, sysctls.
fn validate_namespaced(
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
    types: &HashSet<LinuxNamespaceType>,
) -> Result<()> {
    let has = |t| types.contains(&t);
    if let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    {
        if !offsets.is_empty()
            && !linux
                .namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none())
        {
            bail!("config.json: linux.timeOffsets needs a new time namespace (linux.namespaces has no path-less \"time\")");
        }
        for k in offsets.keys() {
            if k != "monotonic" && k != "boottime" {
                bail!("config.json: linux.timeOffsets key {k:?}: only \"monotonic\" and \"boottime\" can be offset");
            }
        }
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        bail!("config.json: hostname is set but linux.namespaces has no \"uts\": onggi will not change the host's hostname");
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts)
    {
        bail!("config.json: domainname is set but linux.namespaces has no \"uts\"");
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        match sysctl_namespace(key) {
            Some(t) if has(t) => {}
            Some(t) => bail!(
                "config.json: linux.sysctl {key:?} needs a {} namespace, which the config does not have",
                crate::namespaces::name(t)
            ),
            None => bail!("config.json: linux.sysctl {key:?} is not namespaced: onggi will not change the host's value"),
        }
    }
    Ok(())
}

/// The default config.json `onggi spec` writes: runc's, with onggi's hostname.
pub(crate) fn default_config() -> serde_json::Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    serde_json::json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [format!("PATH={DEFAULT_PATH}"), "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "onggi",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// `spec --rootless`: the default config for an unprivileged caller `uid`/`gid` (runc's
/// shape): a user namespace mapping the caller to root, no network or cgroup namespace and no
/// resources (it may own no cgroup), /sys as a read-only rbind of the host's (sysfs needs a
/// network namespace the user owns), devpts without `gid=5` (not mapped), no cgroup mount.
pub(crate) fn rootless_config(uid: u32, gid: u32) -> serde_json::Value {
    let mut c = default_config();
    let linux = &mut c["linux"];
    linux["resources"] = serde_json::Value::Null;
    linux["namespaces"] = serde_json::json!([
        { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" },
        { "type": "user" }
    ]);
    linux["uidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
    linux["gidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    if let Some(mounts) = c["mounts"].as_array_mut() {
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = serde_json::json!({ "destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
            }
            if m["destination"] == "/dev/pts" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| x != "gid=5");
                }
            }
        }
    }
    c
}

/// `spec`: writes the default config.json into `dir`; refuses to overwrite one.
pub(crate) fn write_spec(
    dir: &Path,
    rootless: bool,
    flags: &crate::spec_flags::SpecFlags,
) -> Result<()> {
    let path = dir.join("config.json");
    let mut config = if rootless {
        rootless_config(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        default_config()
    };
    flags.apply(&mut config)?;
    let text = serde_json::to_string_pretty(&config)? + "\n";
    // What the flags made is checked as create checks it (from the text, as create reads it:
    // one deserializer for the config in the binary), so no file is written for a config
    // create would refuse.
    validate(&parse(text.as_bytes()).context("the flags made a config")?)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{} exists already: remove it first", path.display())
            } else {
                anyhow::anyhow!("cannot create {}: {e}", path.display())
            }
        })?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_config_maps_the_caller_and_owns_nothing_it_cannot() {
        let c = rootless_config(1234, 5678);
        let spec: Spec = serde_json::from_value(c.clone()).expect("test fixture is valid");
        validate(&spec).expect("test fixture is valid");
        assert_eq!(c["linux"]["uidMappings"][0]["hostID"], 1234);
        assert_eq!(c["linux"]["gidMappings"][0]["hostID"], 5678);
        let ns: Vec<&str> = c["linux"]["namespaces"]
            .as_array()
            .expect("test fixture is valid")
            .iter()
            .map(|n| n["type"].as_str().expect("test fixture is valid"))
            .collect();
        assert!(ns.contains(&"user") && !ns.contains(&"network") && !ns.contains(&"cgroup"));
        assert!(c["linux"].get("resources").is_none());
        let text = c["mounts"].to_string();
        assert!(!text.contains("gid=5") && !text.contains("cgroup") && text.contains("rbind"));
    }

    #[test]
    fn default_config_parses_and_validates() {
        let v = default_config();
        let spec: Spec = serde_json::from_value(v).expect("default config parses");
        validate(&spec).expect("default config validates");
        assert_eq!(spec.hostname().as_deref(), Some("onggi"));
    }

    #[test]
    fn json_errors_have_a_location() {
        let e = parse(b"{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": [\n}").unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
    }

    #[test]
    fn version_major_must_be_1() {
        assert!(validate_version("1.0.2-dev").is_ok());
        assert!(validate_version("1.2.1").is_ok());
        let e = validate_version("2.0.0").unwrap_err().to_string();
        assert!(e.contains("\"2.0.0\""), "{e}");
        assert!(validate_version("").is_err());
    }

    #[test]
    fn sysctl_namespacing() {
        assert_eq!(
            sysctl_namespace("kernel.shmmax"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            sysctl_namespace("fs.mqueue.msg_max"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            sysctl_namespace("net.ipv4.ip_forward"),
            Some(LinuxNamespaceType::Network)
        );
        assert_eq!(sysctl_namespace("vm.swappiness"), None);
        assert_eq!(sysctl_namespace("kernel.panic"), None);
    }

    fn with(f: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
        let mut v = default_config();
        f(&mut v);
        let spec: Spec = serde_json::from_value(v)?;
        validate(&spec)?;
        // What is parsed at load (src/plan.rs) is refused there.
        crate::plan::parts(&spec).map(|_| ())
    }

    #[test]
    fn unsupported_fields_are_refused_not_ignored() {
        let e = with(|v| v["process"]["apparmorProfile"] = "docker-default".into()).unwrap_err();
        assert!(e.to_string().contains("apparmorProfile"), "{e}");
        let e = with(|v| v["linux"]["timeOffsets"] = serde_json::json!({"monotonic": {"secs": 1}}))
            .unwrap_err();
        assert!(e.to_string().contains("linux.timeOffsets"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let e = with(|v| v["process"]["args"] = serde_json::json!([])).unwrap_err();
        assert!(e.to_string().contains("process.args"), "{e}");
        let e = with(|v| v["process"]["cwd"] = "rel".into()).unwrap_err();
        assert!(e.to_string().contains("process.cwd"), "{e}");
        let e =
            with(|v| v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"})).unwrap_err();
        assert!(e.to_string().contains("vm.swappiness"), "{e}");
        let e =
            with(|v| v["linux"]["namespaces"] = serde_json::json!([{"type":"pid"},{"type":"pid"}]))
                .unwrap_err();
        assert!(e.to_string().contains("pid twice"), "{e}");
        let e = with(|v| {
            v["linux"]["namespaces"] = serde_json::json!([{"type":"mount"}]);
        })
        .unwrap_err();
        assert!(e.to_string().contains("hostname"), "{e}");
        let e = with(|v| v["linux"]["rootfsPropagation"] = "sideways".into()).unwrap_err();
        assert!(e.to_string().contains("rootfsPropagation"), "{e}");
        let e = with(|v| v["mounts"][0]["destination"] = "/a/../../etc".into()).unwrap_err();
        assert!(e.to_string().contains("mounts[0]"), "{e}");
    }
}
