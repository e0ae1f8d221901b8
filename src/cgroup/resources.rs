//! `linux.resources` as the cgroup v2 files they are written to: pure translation (dockerd's
//! and the CRI's zeros that mean "not set", v1 units turned into v2 ones), unit-tested without
//! a kernel. src/cgroup/mod.rs writes them.

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use crate::trace;

/// One file write the resources turn into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub(crate) controller: &'static str,
    pub(crate) file: String,
    pub(crate) value: String,
}

fn w(controller: &'static str, file: impl Into<String>, value: impl Into<String>) -> Write {
    Write {
        controller,
        file: file.into(),
        value: value.into(),
    }
}

/// cpu.shares (cgroup v1, 2..262144) to cpu.weight (1..10000), runc's and crun's linear formula.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000), as runc converts it.
pub(crate) fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    let w = u64::from(w).clamp(10, 1000);
    1 + (w - 10) * 9999 / 990
}

/// memory.swap.max from the spec's `swap` (memory + swap, as in cgroup v1) and `limit`, as
/// runc converts it: 0 is "not set", and an unlimited memory with swap not set makes swap
/// unlimited too.
pub(crate) fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
    let limit = limit.filter(|l| *l != 0);
    match (limit, swap.filter(|s| *s != 0)) {
        (Some(-1), None) if swap == Some(0) => Ok(Some("max".into())),
        (_, None) => Ok(None),
        (_, Some(-1)) => Ok(Some("max".into())),
        (None | Some(-1), Some(s)) => bail!(
            "linux.resources.memory.swap {s} needs memory.limit too (swap is memory+swap, as in cgroup v1)"
        ),
        (Some(l), Some(s)) if s < l => {
            bail!("linux.resources.memory.swap {s} is below memory.limit {l} (swap is memory+swap)")
        }
        (Some(l), Some(s)) => Ok(Some((s - l).to_string())),
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// The cgroup file writes for `r`, in order (pure: the conversions are unit-tested).
///
/// A value of 0 means "not set" wherever runc reads it so, and writes nothing: memory limit,
/// reservation and swap, cpu shares, quota and period (both 0: no cpu.max; a period of 0 is
/// 100000), blkio weights, the pids limit. Managers rely on it: dockerd sends
/// `"blockIO": {"weight": 0}` and `"cpu": {"shares": 0}` with every container, and `docker
/// update` sends every field, 0 for those the user did not name.
pub(crate) fn resource_writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        memory_writes(m, &mut out)?;
    }
    if let Some(c) = r.cpu() {
        cpu_writes(c, &mut out)?;
    }
    if let Some(p) = r.pids().as_ref().filter(|p| p.limit() != 0) {
        out.push(w(
            "pids",
            "pids.max",
            if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            },
        ));
    }
    if let Some(b) = r.block_io() {
        io_writes(b, &mut out);
    }
    other_writes(r, &mut out)?;
    if r.network().is_some() {
        bail!("linux.resources.network (net_cls/net_prio) does not exist in cgroup v2");
    }
    Ok(out)
}

/// linux.resources.memory.
fn memory_writes(m: &oci_spec::runtime::LinuxMemory, out: &mut Vec<Write>) -> Result<()> {
    if let Some(l) = m.limit().filter(|l| *l != 0) {
        out.push(w("memory", "memory.max", max_or(l)));
    }
    if let Some(l) = m.reservation().filter(|l| *l != 0) {
        out.push(w("memory", "memory.low", max_or(l)));
    }
    if let Some(s) = swap_max(m.limit(), m.swap())? {
        out.push(w("memory", "memory.swap.max", s));
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        trace::moment("warning", || {
            "memory.kernel and kernelTCP do not exist in cgroup v2; ignored".into()
        });
    }
    if m.disable_oom_killer() == Some(true) {
        // runc and crun ignore it on v2 too (there is no such knob); managers may send it.
        crate::logging::warn(
            "linux.resources.memory.disableOOMKiller has no cgroup v2 equivalent: ignored",
        );
    }
    Ok(())
}

/// linux.resources.cpu: cpu and cpuset.
fn cpu_writes(c: &oci_spec::runtime::LinuxCpu, out: &mut Vec<Write>) -> Result<()> {
    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
        bail!("linux.resources.cpu.realtimeRuntime/realtimePeriod are not supported by cgroup v2");
    }
    if let Some(s) = c.shares().filter(|s| *s > 0) {
        out.push(w("cpu", "cpu.weight", shares_to_weight(s).to_string()));
    }
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let quota = quota
            .filter(|q| *q > 0)
            .map_or("max".to_string(), |q| q.to_string());
        let period = period.unwrap_or(100_000);
        out.push(w("cpu", "cpu.max", format!("{quota} {period}")));
    }
    if let Some(b) = c.burst() {
        out.push(w("cpu", "cpu.max.burst", b.to_string()));
    }
    if let Some(i) = c.idle() {
        out.push(w("cpu", "cpu.idle", i.to_string()));
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        out.push(w("cpuset", "cpuset.cpus", cpus));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        out.push(w("cpuset", "cpuset.mems", mems));
    }
    Ok(())
}

/// linux.resources.blockIO, as io.weight and io.max.
fn io_writes(b: &oci_spec::runtime::LinuxBlockIo, out: &mut Vec<Write>) {
    if let Some(weight) = b.weight().filter(|w| *w != 0) {
        out.push(w(
            "io",
            "io.weight",
            format!("default {}", blkio_to_io_weight(weight)),
        ));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(weight) = d.weight().filter(|w| *w != 0) {
            out.push(w(
                "io",
                "io.weight",
                format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(weight)),
            ));
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for d in list.iter().flatten() {
            out.push(w(
                "io",
                "io.max",
                format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
}

/// hugepageLimits, rdma and unified.
fn other_writes(r: &LinuxResources, out: &mut Vec<Write>) -> Result<()> {
    for h in r.hugepage_limits().iter().flatten() {
        out.push(w(
            "hugetlb",
            format!("hugetlb.{}.max", h.page_size()),
            h.limit().to_string(),
        ));
    }
    for (dev, l) in r.rdma().iter().flatten() {
        let mut v = Vec::new();
        if let Some(h) = l.hca_handles() {
            v.push(format!("hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            v.push(format!("hca_object={o}"));
        }
        out.push(w("rdma", "rdma.max", format!("{dev} {}", v.join(" "))));
    }
    let mut unified: Vec<_> = r.unified().iter().flatten().collect();
    unified.sort();
    for (k, v) in unified {
        if k.contains('/') || k.starts_with('.') {
            bail!("linux.resources.unified key {k:?} is not a cgroup file name");
        }
        let controller = match k.split('.').next().unwrap_or("") {
            "memory" => "memory",
            "cpu" => "cpu",
            "cpuset" => "cpuset",
            "io" => "io",
            "pids" => "pids",
            "hugetlb" => "hugetlb",
            "rdma" => "rdma",
            "misc" => "misc",
            _ => "",
        };
        out.push(w(controller, k.clone(), v.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes_of(json: &str) -> Vec<(String, String)> {
        let r: LinuxResources = serde_json::from_str(json).expect("valid test input");
        resource_writes(&r)
            .expect("valid test input")
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect()
    }

    #[test]
    fn zero_means_not_set_as_dockerd_sends_it() {
        // Every `docker run`.
        assert!(writes_of(r#"{"blockIO": {"weight": 0}, "cpu": {"shares": 0}}"#).is_empty());
        // `docker update --restart always`: every field, 0 where the user named nothing.
        let update = r#"{"memory":{"limit":0,"reservation":0,"kernel":0},
            "cpu":{"shares":0,"quota":0,"period":0},"blockIO":{"weight":0}}"#;
        assert!(writes_of(update).is_empty());
        assert!(writes_of(r#"{"pids": {"limit": 0}, "memory": {"swap": 0}}"#).is_empty());
        assert!(writes_of(
            r#"{"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 0}]}}"#
        )
        .is_empty());
    }

    #[test]
    fn values_that_are_set_still_land() {
        let w = |f: &str, v: &str| (f.to_string(), v.to_string());
        assert_eq!(
            writes_of(
                r#"{"memory":{"limit":100663296,"reservation":0,"kernel":0},
                "cpu":{"shares":0,"quota":50000,"period":0},"blockIO":{"weight":0}}"#
            ),
            [w("memory.max", "100663296"), w("cpu.max", "50000 100000")]
        );
        assert_eq!(
            writes_of(r#"{"cpu":{"quota":0,"period":50000}, "pids": {"limit": -1}}"#),
            [w("cpu.max", "max 50000"), w("pids.max", "max")]
        );
        assert_eq!(
            writes_of(r#"{"memory":{"limit":-1,"swap":0}}"#),
            [w("memory.max", "max"), w("memory.swap.max", "max")]
        );
    }

    #[test]
    fn cpu_shares_to_weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 0);
    }

    #[test]
    fn blkio_weight_to_io_weight() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_is_memory_plus_swap() {
        assert_eq!(
            swap_max(Some(100), Some(300)).expect("valid test input"),
            Some("200".into())
        );
        assert_eq!(
            swap_max(Some(100), Some(-1)).expect("valid test input"),
            Some("max".into())
        );
        assert_eq!(swap_max(Some(100), None).expect("valid test input"), None);
        assert!(swap_max(Some(300), Some(100)).is_err());
        assert!(swap_max(None, Some(100)).is_err());
    }

    #[test]
    fn resources_to_files() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576, "reservation": 524288, "swap": 2097152},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 10},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "2000000"}
        }))
        .expect("valid test input");
        let got: Vec<(String, String)> = resource_writes(&r)
            .expect("valid test input")
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        let want = [
            ("memory.max", "1048576"),
            ("memory.low", "524288"),
            ("memory.swap.max", "1048576"),
            ("cpu.weight", "39"),
            ("cpu.max", "50000 100000"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("pids.max", "10"),
            ("io.weight", "default 4950"),
            ("io.max", "8:0 rbps=1000"),
            ("hugetlb.2MB.max", "4194304"),
            ("memory.high", "2000000"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn quota_without_limit_is_max_and_realtime_is_refused() {
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"cpu": {"quota": -1, "period": 50000}}))
                .expect("valid test input");
        assert_eq!(
            resource_writes(&r).expect("valid test input")[0].value,
            "max 50000"
        );
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"cpu": {"realtimeRuntime": 10}}))
                .expect("valid test input");
        assert!(resource_writes(&r).is_err());
    }
}
