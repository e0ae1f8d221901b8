//! `update`: new resources written into a running container's cgroup, all or nothing, with
//! runc's flags (containerd and podman send them).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::Path;

use crate::cgroup;
use crate::state::{Status, Store};

// runc's `update` flags; each overrides the matching field of `--resources`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct UpdateFlags {
    /// LinuxResources JSON file, or - for stdin
    #[arg(short = 'r', long, value_name = "FILE")]
    pub(crate) resources: Option<String>,
    /// Memory limit in bytes (suffixes k, m, g, t; -1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub(crate) memory: Option<String>,
    /// Memory reservation (memory.low; -1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub(crate) memory_reservation: Option<String>,
    /// Memory plus swap (-1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub(crate) memory_swap: Option<String>,
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub(crate) cpu_quota: Option<i64>,
    #[arg(long, value_name = "US")]
    pub(crate) cpu_period: Option<u64>,
    #[arg(long, value_name = "SHARES")]
    pub(crate) cpu_shares: Option<u64>,
    #[arg(long, value_name = "LIST")]
    pub(crate) cpuset_cpus: Option<String>,
    #[arg(long, value_name = "LIST")]
    pub(crate) cpuset_mems: Option<String>,
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(crate) pids_limit: Option<i64>,
    #[arg(long, value_name = "10-1000")]
    pub(crate) blkio_weight: Option<u16>,
}

/// "512m" → 536870912; "-1" → -1. Binary units, as docker/runc's RAMInBytes.
pub(crate) fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a size (use e.g. 1048576, 512k, 64m, 2g)"))?;
    n.checked_mul(mult)
        .filter(|v| *v >= 0)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is out of range"))
}

/// The resources an `update` asks for: the JSON, then the flags on top.
pub(crate) fn requested(flags: &UpdateFlags) -> Result<LinuxResources> {
    let mut v: Value = match flags.resources.as_deref() {
        None => json!({}),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read --resources from stdin")?;
            serde_json::from_str(&s).context("--resources: not LinuxResources JSON")?
        }
        Some(f) => {
            let s = std::fs::read_to_string(f).with_context(|| format!("--resources {f}"))?;
            serde_json::from_str(&s)
                .with_context(|| format!("--resources {f}: not LinuxResources JSON"))?
        }
    };
    let obj = v
        .as_object_mut()
        .context("--resources must be a JSON object")?;
    let mut set = |section: &str, key: &str, val: Value| {
        let s = obj
            .entry(section)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = s.as_object_mut() {
            m.insert(key.to_string(), val);
        }
    };
    if let Some(m) = &flags.memory {
        set("memory", "limit", json!(parse_bytes(m)?));
    }
    if let Some(m) = &flags.memory_reservation {
        set("memory", "reservation", json!(parse_bytes(m)?));
    }
    if let Some(m) = &flags.memory_swap {
        set("memory", "swap", json!(parse_bytes(m)?));
    }
    if let Some(q) = flags.cpu_quota {
        set("cpu", "quota", json!(q));
    }
    if let Some(p) = flags.cpu_period {
        set("cpu", "period", json!(p));
    }
    if let Some(s) = flags.cpu_shares {
        set("cpu", "shares", json!(s));
    }
    if let Some(c) = &flags.cpuset_cpus {
        set("cpu", "cpus", json!(c));
    }
    if let Some(c) = &flags.cpuset_mems {
        set("cpu", "mems", json!(c));
    }
    if let Some(p) = flags.pids_limit {
        set("pids", "limit", json!(p));
    }
    if let Some(w) = flags.blkio_weight {
        set("blockIO", "weight", json!(w));
    }
    serde_json::from_value(v).context("--resources: not valid LinuxResources")
}

/// `update`: writes the new resources into the running container's cgroup.
pub(crate) fn update(store: &Store, id: &str, flags: &UpdateFlags) -> Result<()> {
    let (cg, status) = super::cgroup_of(store, id)?;
    if status == Status::Stopped {
        return Err(super::LifecycleError::NotRunning(id.into()).into());
    }
    let mut r = requested(flags)?;
    if let Ok(current) = std::fs::read_to_string(cg.join("cpu.max")) {
        r = with_current_cpu_max(r, &current)?;
    }
    let writes = cgroup::resource_writes(&r)?;
    let mount = cgroup::v2_mount()?;
    let rel = Path::new("/").join(
        cg.strip_prefix(&mount)
            .context("the container's cgroup is not below the v2 mount")?,
    );
    let group = cgroup::Cgroup { mount, rel };
    let controllers = group.check_controllers(&writes)?;
    if let Some(m) = r.memory() {
        if m.check_before_update() == Some(true) {
            if let Some(limit) = m.limit().filter(|l| *l > 0) {
                let cur: i64 = cgroup::read_u64(&cg.join("memory.current")).unwrap_or(0) as i64;
                if cur > limit {
                    bail!("{id}: memory.limit {limit} is below the current usage {cur} (checkBeforeUpdate)");
                }
            }
        }
    }
    let unit = super::Container::open(store, id)?.state.systemd_unit;
    if let Some(unit) = &unit {
        // systemd's view first (it writes the same files), then the files themselves.
        crate::trace::step("systemd_update", |c| {
            let props = cgroup::systemd::resource_properties(&writes)?;
            crate::cgroup::bus::Bus::connect(crate::namespaces::rootless())?
                .set_properties(unit, &props)?;
            c.note(|| {
                format!(
                    "D-Bus SetUnitProperties({unit}, runtime, {} properties)",
                    props.len()
                )
            });
            anyhow::Ok(())
        })?;
    }
    crate::trace::step("update", |c| {
        if unit.is_none() {
            group.create(&controllers, c)?;
        }
        group.apply_all_or_nothing(&writes, c)
    })?;
    if let Some(devs) = r.devices() {
        // The new rules replace the filter atomically; linux.devices stay allowed.
        let config = store.get(id)?.load_config()?;
        let devices = config
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        let rules = crate::cgroup::device_filter::rules(devs, &devices)?;
        crate::trace::step("update_devices", |c| {
            let fd = group.open()?;
            crate::cgroup::device_filter::attach(
                std::os::fd::AsFd::as_fd(&fd),
                &crate::cgroup::device_filter::compile(&rules),
                None,
                c,
            )?;
            c.note(|| {
                format!(
                    "bpf(BPF_PROG_ATTACH, BPF_F_REPLACE) with {} rules",
                    rules.len()
                )
            });
            Ok::<_, anyhow::Error>(())
        })?;
    }
    Ok(())
}

/// An update that names only the cpu quota or only the period keeps the other as the cgroup
/// has it (runc merges its flags into the container's resources): `--cpu-period 900000` on a
/// 500000 quota is `500000 900000`, not a lifted limit.
pub(crate) fn with_current_cpu_max(r: LinuxResources, cpu_max: &str) -> Result<LinuxResources> {
    let mut v = serde_json::to_value(&r)?;
    let quota = v["cpu"]["quota"].as_i64().filter(|q| *q != 0);
    let period = v["cpu"]["period"].as_u64().filter(|p| *p != 0);
    if quota.is_some() == period.is_some() {
        return Ok(r);
    }
    let mut cur = cpu_max.split_whitespace();
    let (cq, cp) = (cur.next().unwrap_or("max"), cur.next().unwrap_or("100000"));
    if quota.is_none() {
        v["cpu"]["quota"] = json!(cq.parse::<i64>().unwrap_or(-1));
    }
    if period.is_none() {
        v["cpu"]["period"] = json!(cp.parse::<u64>().unwrap_or(100_000));
    }
    serde_json::from_value(v).context("the merged resources")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_alone_keeps_the_quota_and_a_quota_alone_the_period() {
        let cpu = |j: serde_json::Value| -> LinuxResources {
            serde_json::from_value(json!({ "cpu": j })).expect("valid test input")
        };
        let writes = |r: LinuxResources| -> Vec<String> {
            cgroup::resource_writes(&r)
                .expect("valid")
                .into_iter()
                .map(|w| w.value)
                .collect()
        };
        let r =
            with_current_cpu_max(cpu(json!({"period": 900000})), "500000 100000\n").expect("merge");
        assert_eq!(writes(r), ["500000 900000"]);
        let r = with_current_cpu_max(cpu(json!({"quota": 20000})), "max 50000\n").expect("merge");
        assert_eq!(writes(r), ["20000 50000"]);
        let r = with_current_cpu_max(cpu(json!({"quota": 1, "period": 2})), "max 50000")
            .expect("merge");
        assert_eq!(writes(r), ["1 2"]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576").expect("valid test input"), 1 << 20);
        assert_eq!(parse_bytes("512k").expect("valid test input"), 512 << 10);
        assert_eq!(parse_bytes("64M").expect("valid test input"), 64 << 20);
        assert_eq!(parse_bytes("2g").expect("valid test input"), 2 << 30);
        assert_eq!(parse_bytes("1gb").expect("valid test input"), 1 << 30);
        assert_eq!(parse_bytes("-1").expect("valid test input"), -1);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("9999999999t").is_err());
    }

    #[test]
    fn flags_override_the_json() {
        let f = UpdateFlags {
            memory: Some("64m".into()),
            pids_limit: Some(5),
            cpu_quota: Some(-1),
            ..Default::default()
        };
        let r = requested(&f).expect("valid test input");
        assert_eq!(
            r.memory().as_ref().expect("valid test input").limit(),
            Some(64 << 20)
        );
        assert_eq!(r.pids().as_ref().expect("valid test input").limit(), 5);
        assert_eq!(
            r.cpu().as_ref().expect("valid test input").quota(),
            Some(-1)
        );
    }
}
