//! `update` and `events`: the commands that read and change a running container's cgroup, in
//! the shapes containerd and podman expect from runc.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::path::Path;

use crate::cgroup;
use crate::state::{Status, Store, StoreError};

/// runc's `update` flags; each overrides the matching field of `--resources`.
#[derive(Debug, Default, clap::Args)]
pub struct UpdateFlags {
    /// LinuxResources JSON file, or - for stdin
    #[arg(short = 'r', long, value_name = "FILE")]
    pub resources: Option<String>,
    /// Memory limit in bytes (suffixes k, m, g, t; -1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (memory.low; -1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap (-1 for unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long, value_name = "US")]
    pub cpu_period: Option<u64>,
    #[arg(long, value_name = "SHARES")]
    pub cpu_shares: Option<u64>,
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long, value_name = "10-1000")]
    pub blkio_weight: Option<u16>,
}

/// "512m" → 536870912; "-1" → -1. Binary units, as docker/runc's RAMInBytes.
pub fn parse_bytes(s: &str) -> Result<i64> {
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
pub fn requested(flags: &UpdateFlags) -> Result<LinuxResources> {
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

fn cgroup_of(store: &Store, id: &str) -> Result<(std::path::PathBuf, Status)> {
    let dir = store.get(id)?;
    let s = dir
        .load()?
        .ok_or_else(|| StoreError::NotExist(id.to_string()))?;
    let status = dir.status(&s);
    let cg = s.cgroup.clone().with_context(|| {
        format!(
            "{id}: the container has no cgroup ({})",
            crate::container::no_cgroup_reason()
        )
    })?;
    Ok((cg, status))
}

/// `update`: writes the new resources into the running container's cgroup.
pub fn update(store: &Store, id: &str, flags: &UpdateFlags) -> Result<()> {
    let (cg, status) = cgroup_of(store, id)?;
    if status == Status::Stopped {
        bail!("{id}: container not running");
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
                let cur: i64 = read_num(&cg.join("memory.current")).unwrap_or(0) as i64;
                if cur > limit {
                    bail!("{id}: memory.limit {limit} is below the current usage {cur} (checkBeforeUpdate)");
                }
            }
        }
    }
    crate::trace::step("update", |c| {
        group.create(&controllers, c)?;
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
pub fn with_current_cpu_max(r: LinuxResources, cpu_max: &str) -> Result<LinuxResources> {
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

fn read_num(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// "key value" lines (cpu.stat, memory.stat, memory.events) as a map.
fn read_flat(p: &Path) -> Map<String, Value> {
    std::fs::read_to_string(p)
        .map(|t| parse_flat(&t))
        .unwrap_or_default()
}

fn parse_flat(t: &str) -> Map<String, Value> {
    t.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| {
            v.trim()
                .parse::<u64>()
                .ok()
                .map(|n| (k.to_string(), json!(n)))
        })
        .collect()
}

fn num_or_max(p: &Path) -> u64 {
    match std::fs::read_to_string(p) {
        Ok(t) if t.trim() == "max" => u64::MAX,
        Ok(t) => t.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

/// runc's stats object from the cgroup v2 files.
pub fn stats(cg: &Path) -> Value {
    let cpu = read_flat(&cg.join("cpu.stat"));
    let n = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mem = read_flat(&cg.join("memory.stat"));
    let mem_events = read_flat(&cg.join("memory.events"));
    let mut hugetlb = Map::new();
    if let Ok(rd) = std::fs::read_dir(cg) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(size) = name
                .strip_prefix("hugetlb.")
                .and_then(|r| r.strip_suffix(".current"))
            {
                let events = read_flat(&cg.join(format!("hugetlb.{size}.events")));
                hugetlb.insert(
                    size.to_string(),
                    json!({"usage": read_num(&e.path()).unwrap_or(0), "max": 0, "failcnt": n(&events, "max")}),
                );
            }
        }
    }
    let mut io = Vec::new();
    if let Ok(t) = std::fs::read_to_string(cg.join("io.stat")) {
        for l in t.lines() {
            let mut parts = l.split_whitespace();
            let Some((maj, min)) = parts.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            for kv in parts {
                if let Some((k, v)) = kv.split_once('=') {
                    let op = match k {
                        "rbytes" | "rios" => "Read",
                        "wbytes" | "wios" => "Write",
                        _ => continue,
                    };
                    io.push(json!({"major": maj.parse::<u64>().unwrap_or(0), "minor": min.parse::<u64>().unwrap_or(0),
                                   "op": op, "value": v.parse::<u64>().unwrap_or(0), "kind": k}));
                }
            }
        }
    }
    json!({
        "cpu": {
            "usage": {"total": n(&cpu, "usage_usec") * 1000, "kernel": n(&cpu, "system_usec") * 1000,
                      "user": n(&cpu, "user_usec") * 1000, "percpu": []},
            "throttling": {"periods": n(&cpu, "nr_periods"), "throttledPeriods": n(&cpu, "nr_throttled"),
                           "throttledTime": n(&cpu, "throttled_usec") * 1000}
        },
        "memory": {
            "usage": {"usage": read_num(&cg.join("memory.current")).unwrap_or(0),
                      "max": read_num(&cg.join("memory.peak")).unwrap_or(0),
                      "limit": num_or_max(&cg.join("memory.max")), "failcnt": n(&mem_events, "max")},
            "swap": {"usage": read_num(&cg.join("memory.swap.current")).unwrap_or(0),
                     "limit": num_or_max(&cg.join("memory.swap.max"))},
            "raw": mem
        },
        "pids": {"current": read_num(&cg.join("pids.current")).unwrap_or(0), "limit": num_or_max(&cg.join("pids.max"))},
        "blkio": {"ioServiceBytesRecursive": io},
        "hugetlb": hugetlb
    })
}

/// "5s", "500ms", "1m", "2" (seconds).
pub fn parse_interval(s: &str) -> Result<std::time::Duration> {
    let bad = || anyhow::anyhow!("--interval {s:?}: use e.g. 5s, 500ms or 1m");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

/// `events`: with --stats one stats event; otherwise stats every interval and an `oom` event
/// whenever memory.events' oom_kill grows, until the container stops.
pub fn events(store: &Store, id: &str, once: bool, interval: &str) -> Result<()> {
    let every = parse_interval(interval)?;
    let (cg, status) = cgroup_of(store, id)?;
    if status == Status::Stopped {
        bail!("{id}: container not running");
    }
    let mut out = std::io::stdout().lock();
    let emit = |out: &mut std::io::StdoutLock<'_>, v: Value| -> Result<()> {
        writeln!(out, "{v}")?;
        out.flush()?;
        Ok(())
    };
    if once {
        return emit(
            &mut out,
            json!({"type": "stats", "id": id, "data": stats(&cg)}),
        );
    }
    let ooms = |cg: &Path| {
        read_flat(&cg.join("memory.events"))
            .get("oom_kill")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let mut seen = ooms(&cg);
    let mut last = std::time::Instant::now() - every;
    loop {
        let (_, status) = match cgroup_of(store, id) {
            Ok(v) => v,
            Err(_) => return Ok(()),
        };
        if status == Status::Stopped {
            return Ok(());
        }
        let now = ooms(&cg);
        if now > seen {
            seen = now;
            emit(&mut out, json!({"type": "oom", "id": id}))?;
        }
        if last.elapsed() >= every {
            last = std::time::Instant::now();
            emit(
                &mut out,
                json!({"type": "stats", "id": id, "data": stats(&cg)}),
            )?;
        }
        std::thread::sleep(std::time::Duration::from_millis(100).min(every));
    }
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
    fn intervals() {
        assert_eq!(
            parse_interval("5s").expect("valid test input"),
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            parse_interval("250ms").expect("valid test input"),
            std::time::Duration::from_millis(250)
        );
        assert_eq!(
            parse_interval("2").expect("valid test input"),
            std::time::Duration::from_secs(2)
        );
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("fast").is_err());
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

    #[test]
    fn flat_files() {
        let m = parse_flat("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nbogus x\n");
        assert_eq!(m.get("usage_usec"), Some(&json!(1500)));
        assert!(!m.contains_key("bogus"));
    }
}
