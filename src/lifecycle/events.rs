//! `events` and runc's stats object: what the shim and podman read from a running container's
//! cgroup.

use anyhow::Result;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;

use super::cgroup_of;
use super::LifecycleError;
use crate::cgroup;
use crate::state::{Status, Store};

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
pub(crate) fn stats(cg: &Path) -> Value {
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
                    json!({"usage": cgroup::read_u64(&e.path()).unwrap_or(0), "max": 0, "failcnt": n(&events, "max")}),
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
            "usage": {"usage": cgroup::read_u64(&cg.join("memory.current")).unwrap_or(0),
                      "max": cgroup::read_u64(&cg.join("memory.peak")).unwrap_or(0),
                      "limit": num_or_max(&cg.join("memory.max")), "failcnt": n(&mem_events, "max")},
            "swap": {"usage": cgroup::read_u64(&cg.join("memory.swap.current")).unwrap_or(0),
                     "limit": num_or_max(&cg.join("memory.swap.max"))},
            "raw": mem
        },
        "pids": {"current": cgroup::read_u64(&cg.join("pids.current")).unwrap_or(0), "limit": num_or_max(&cg.join("pids.max"))},
        "blkio": {"ioServiceBytesRecursive": io},
        "hugetlb": hugetlb
    })
}

/// "5s", "500ms", "1m", "2" (seconds).
pub(crate) fn parse_interval(s: &str) -> Result<std::time::Duration> {
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
pub(crate) fn events(store: &Store, id: &str, once: bool, interval: &str) -> Result<()> {
    let every = parse_interval(interval)?;
    let (cg, status) = cgroup_of(store, id)?;
    if status == Status::Stopped {
        return Err(LifecycleError::NotRunning(id.into()).into());
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
    fn flat_files() {
        let m = parse_flat("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nbogus x\n");
        assert_eq!(m.get("usage_usec"), Some(&json!(1500)));
        assert!(!m.contains_key("bogus"));
    }
}
