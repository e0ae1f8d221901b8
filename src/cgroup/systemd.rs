//! The systemd cgroup driver (`--systemd-cgroup`), the pure half: where a container goes and
//! which unit properties it gets. The D-Bus calls are in [`super::bus`].
//!
//! * `linux.cgroupsPath` is runc's `slice:prefix:name`. The container gets the transient scope
//!   `<prefix>-<name>.scope` in `slice` (an empty slice is `system.slice`, or `user.slice` for a
//!   rootless caller; `-.slice` is the root slice). An empty or absent path is `:onggi:<id>`.
//! * A slice name expands as systemd expands it: `a-b-c.slice` lives at
//!   `/a.slice/a-b.slice/a-b-c.slice`.
//! * The resources that systemd has properties for become properties (derived from the same
//!   file writes the cgroupfs driver makes, so the two cannot disagree); the files are written
//!   as well, and what systemd has no property for is only written to the files.
//! * `org.systemd.property.<Name>` annotations add or replace unit properties, values in
//!   GVariant text as runc takes them (`true`, `uint64 123`, `'text'` …); a `…Sec` name is in
//!   seconds and becomes `…USec`.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cgroup::Write;

/// The scope a container runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The slice unit, `system.slice`, or `-.slice` for the root.
    pub(crate) slice: String,
    /// The scope unit, `<prefix>-<name>.scope`.
    pub(crate) name: String,
}

impl Unit {
    /// From `linux.cgroupsPath` (None or empty: `:onggi:<id>`).
    pub(crate) fn parse(cgroups_path: Option<&str>, id: &str, rootless: bool) -> Result<Unit> {
        let default = format!(":onggi:{id}");
        let path = cgroups_path.filter(|p| !p.is_empty()).unwrap_or(&default);
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            bail!("linux.cgroupsPath {path:?}: the systemd cgroup driver takes \"slice:prefix:name\" (e.g. \"system.slice:onggi:{id}\")");
        };
        let slice = match slice {
            "" if rootless => "user.slice",
            "" => "system.slice",
            s => s,
        };
        check_slice(slice).with_context(|| format!("linux.cgroupsPath {path:?}"))?;
        if name.is_empty() || name.contains('/') || prefix.contains('/') {
            bail!("linux.cgroupsPath {path:?}: the name must be non-empty and neither part may contain \"/\"");
        }
        if name.ends_with(".slice") {
            bail!("linux.cgroupsPath {path:?}: onggi puts a container in a scope, not in a slice of its own ({name})");
        }
        let name = match prefix {
            "" => format!("{name}.scope"),
            p => format!("{p}-{name}.scope"),
        };
        Ok(Unit {
            slice: slice.to_string(),
            name,
        })
    }

    /// The scope's cgroup below the v2 root.
    pub(crate) fn cgroup(&self) -> PathBuf {
        slice_path(&self.slice).join(&self.name)
    }
}

fn check_slice(slice: &str) -> Result<()> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        bail!("the slice {slice:?} must end in \".slice\"");
    };
    if slice == "-.slice" {
        return Ok(());
    }
    if stem.is_empty()
        || slice.contains('/')
        || stem.starts_with('-')
        || stem.ends_with('-')
        || stem.contains("--")
    {
        bail!("{slice:?} is not a slice name (no \"/\", no leading, trailing or double \"-\")");
    }
    Ok(())
}

/// Where systemd puts a slice: each `-` is one level down.
pub(crate) fn slice_path(slice: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    if slice == "-.slice" {
        return out;
    }
    let stem = slice.strip_suffix(".slice").unwrap_or(slice);
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    out
}

/// A unit property's value, in the D-Bus types systemd takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    U64(u64),
    I64(i64),
    U32(u32),
    I32(i32),
    F64(f64),
    Str(String),
    Strs(Vec<String>),
    Bytes(Vec<u8>),
    Pids(Vec<u32>),
}

/// Unit properties, by name.
pub(crate) type Properties = BTreeMap<String, Value>;

/// The properties of a new scope: its place, delegation and accounting, the resources, the
/// first pid.
pub(crate) fn scope_properties(
    unit: &Unit,
    id: &str,
    writes: &[Write],
    pid: u32,
) -> Result<Properties> {
    let mut p = Properties::new();
    let s = |v: &str| Value::Str(v.to_string());
    p.insert("Description".into(), s(&format!("onggi container {id}")));
    p.insert("Slice".into(), s(&unit.slice));
    p.insert("Delegate".into(), Value::Bool(true));
    p.insert("DefaultDependencies".into(), Value::Bool(false));
    for a in [
        "MemoryAccounting",
        "CPUAccounting",
        "IOAccounting",
        "TasksAccounting",
    ] {
        p.insert(a.into(), Value::Bool(true));
    }
    p.insert("PIDs".into(), Value::Pids(vec![pid]));
    p.extend(resource_properties(writes)?);
    Ok(p)
}

/// The properties systemd has for the cgroup files `writes` sets (the rest stays files only).
pub(crate) fn resource_properties(writes: &[Write]) -> Result<Properties> {
    let mut p = Properties::new();
    for wr in writes {
        let v = wr.value.trim();
        match wr.file.as_str() {
            "memory.max" => p.insert("MemoryMax".into(), Value::U64(limit(v)?)),
            "memory.low" => p.insert("MemoryLow".into(), Value::U64(limit(v)?)),
            "memory.high" => p.insert("MemoryHigh".into(), Value::U64(limit(v)?)),
            "memory.swap.max" => p.insert("MemorySwapMax".into(), Value::U64(limit(v)?)),
            "pids.max" => p.insert("TasksMax".into(), Value::U64(limit(v)?)),
            "cpu.weight" => p.insert("CPUWeight".into(), Value::U64(number(v)?)),
            "cpu.max" => {
                let (quota, period) = v.split_once(' ').unwrap_or((v, "100000"));
                let period = number(period)?;
                let per_sec = match quota {
                    "max" => u64::MAX,
                    q => number(q)?.saturating_mul(1_000_000) / period.max(1),
                };
                p.insert("CPUQuotaPeriodUSec".into(), Value::U64(period));
                p.insert("CPUQuotaPerSecUSec".into(), Value::U64(per_sec))
            }
            "cpuset.cpus" => p.insert("AllowedCPUs".into(), Value::Bytes(cpu_mask(v)?)),
            "cpuset.mems" => p.insert("AllowedMemoryNodes".into(), Value::Bytes(cpu_mask(v)?)),
            "io.weight" => match v.strip_prefix("default ") {
                Some(n) => p.insert("IOWeight".into(), Value::U64(number(n)?)),
                None => None,
            },
            _ => None,
        };
    }
    Ok(p)
}

fn number(v: &str) -> Result<u64> {
    v.trim()
        .parse()
        .with_context(|| format!("{v:?} is not a number"))
}

/// `max` is systemd's infinity.
fn limit(v: &str) -> Result<u64> {
    if v == "max" {
        Ok(u64::MAX)
    } else {
        number(v)
    }
}

/// A cpuset list (`0-3,5`) as the little-endian bit mask systemd's AllowedCPUs takes.
pub(crate) fn cpu_mask(list: &str) -> Result<Vec<u8>> {
    let mut mask = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (
            a.parse().with_context(|| format!("cpuset {list:?}"))?,
            b.parse().with_context(|| format!("cpuset {list:?}"))?,
        );
        if a > b || b > 8191 {
            bail!("cpuset {list:?}: bad range {part:?}");
        }
        for bit in a..=b {
            if mask.len() <= bit / 8 {
                mask.resize(bit / 8 + 1, 0);
            }
            mask[bit / 8] |= 1 << (bit % 8);
        }
    }
    Ok(mask)
}

/// The `org.systemd.property.<Name>` annotations as properties.
pub(crate) fn annotation_properties(
    annotations: &std::collections::HashMap<String, String>,
) -> Result<Properties> {
    let mut p = Properties::new();
    for (k, v) in annotations {
        let Some(name) = k.strip_prefix("org.systemd.property.") else {
            continue;
        };
        let parsed = parse_gvariant(v).with_context(|| format!("annotation {k}"))?;
        match name.strip_suffix("Sec").filter(|_| !name.ends_with("USec")) {
            Some(stem) => {
                let secs = match parsed {
                    Value::U64(n) => n as f64,
                    Value::I32(n) if n >= 0 => f64::from(n),
                    Value::F64(f) if f >= 0.0 => f,
                    _ => bail!("annotation {k}: {v:?} is not a number of seconds"),
                };
                p.insert(format!("{stem}USec"), Value::U64((secs * 1e6) as u64));
            }
            None => {
                p.insert(name.to_string(), parsed);
            }
        }
    }
    Ok(p)
}

/// The GVariant text forms runc's users put in those annotations: booleans, typed and bare
/// numbers (bare is int32, as GVariant reads it), quoted strings and arrays of them.
pub(crate) fn parse_gvariant(text: &str) -> Result<Value> {
    let t = text.trim();
    let typed = |prefixes: &[&str]| {
        prefixes
            .iter()
            .find_map(|p| t.strip_prefix(p).map(str::trim))
    };
    let bad = || {
        anyhow::anyhow!(
            "{text:?} is not a GVariant value onggi reads (true, uint64 N, 'text', ['a', 'b'] …)"
        )
    };
    if let Some(n) = typed(&["uint64 ", "@t "]) {
        return n.parse().map(Value::U64).map_err(|_| bad());
    }
    if let Some(n) = typed(&["int64 ", "@x "]) {
        return n.parse().map(Value::I64).map_err(|_| bad());
    }
    if let Some(n) = typed(&["uint32 ", "@u "]) {
        return n.parse().map(Value::U32).map_err(|_| bad());
    }
    if let Some(n) = typed(&["int32 ", "@i "]) {
        return n.parse().map(Value::I32).map_err(|_| bad());
    }
    match t {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let items: Result<Vec<String>> = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| unquote(s).ok_or_else(bad))
            .collect();
        return items.map(Value::Strs);
    }
    if let Some(s) = unquote(t) {
        return Ok(Value::Str(s));
    }
    if let Ok(n) = t.parse::<i32>() {
        return Ok(Value::I32(n));
    }
    t.parse::<f64>().map(Value::F64).map_err(|_| bad())
}

fn unquote(s: &str) -> Option<String> {
    ['\'', '"'].iter().find_map(|q| {
        s.strip_prefix(*q)
            .and_then(|r| r.strip_suffix(*q))
            .map(String::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(p: &str) -> Result<Unit> {
        Unit::parse(Some(p), "c1", false)
    }

    #[test]
    fn cgroups_path_forms() {
        let u = unit("system.slice:docker:abc").expect("the test input is valid");
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.cgroup(), PathBuf::from("/system.slice/docker-abc.scope"));
        let u = unit("kubepods-besteffort-pod1.slice:cri-containerd:x")
            .expect("the test input is valid");
        assert_eq!(
            u.cgroup(),
            PathBuf::from("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-x.scope")
        );
        assert_eq!(
            unit("-.slice:p:n")
                .expect("the test input is valid")
                .cgroup(),
            PathBuf::from("/p-n.scope")
        );
        assert_eq!(
            unit(":onggi:c1").expect("the test input is valid").slice,
            "system.slice"
        );
        assert_eq!(
            Unit::parse(None, "c1", true)
                .expect("the test input is valid")
                .slice,
            "user.slice"
        );
        assert_eq!(
            Unit::parse(Some(""), "c1", false)
                .expect("the test input is valid")
                .name,
            "onggi-c1.scope"
        );
        assert_eq!(
            unit("machine.slice::n")
                .expect("the test input is valid")
                .name,
            "n.scope"
        );
        for bad in [
            "/a/b",
            "a:b",
            "a.slice:b:c:d",
            "x:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "a.slice:p:",
            "a.slice:p:n.slice",
        ] {
            let e = unit(bad).expect_err("the test input is invalid");
            assert!(
                format!("{e:#}").contains("linux.cgroupsPath"),
                "{bad}: {e:#}"
            );
        }
    }

    fn wr(file: &str, value: &str) -> Write {
        Write {
            controller: "",
            file: file.into(),
            value: value.into(),
        }
    }

    #[test]
    fn resources_become_properties() {
        let p = resource_properties(&[
            wr("memory.max", "67108864"),
            wr("memory.swap.max", "max"),
            wr("pids.max", "20"),
            wr("cpu.max", "50000 100000"),
            wr("cpu.weight", "39"),
            wr("cpuset.cpus", "0-1,9"),
            wr("io.weight", "default 500"),
            wr("io.weight", "8:0 100"),
            wr("hugetlb.2MB.max", "0"),
        ])
        .expect("the test input is valid");
        assert_eq!(p["MemoryMax"], Value::U64(67108864));
        assert_eq!(p["MemorySwapMax"], Value::U64(u64::MAX));
        assert_eq!(p["TasksMax"], Value::U64(20));
        assert_eq!(p["CPUQuotaPerSecUSec"], Value::U64(500_000));
        assert_eq!(p["CPUQuotaPeriodUSec"], Value::U64(100_000));
        assert_eq!(p["CPUWeight"], Value::U64(39));
        assert_eq!(p["AllowedCPUs"], Value::Bytes(vec![0b11, 0b10]));
        assert_eq!(p["IOWeight"], Value::U64(500));
        assert_eq!(p.len(), 8, "{p:?}");
    }

    #[test]
    fn annotations_in_gvariant_text() {
        let a: std::collections::HashMap<String, String> = [
            ("org.systemd.property.TimeoutStopUSec", "uint64 123456789"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.TimeoutStopSec", "2"),
            ("org.systemd.property.Wants", "['a.service', \"b.service\"]"),
            ("org.systemd.property.IgnoreOnIsolate", "true"),
            ("other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = annotation_properties(&a).expect("the test input is valid");
        assert_eq!(p["CollectMode"], Value::Str("inactive-or-failed".into()));
        assert_eq!(p["IgnoreOnIsolate"], Value::Bool(true));
        assert_eq!(
            p["Wants"],
            Value::Strs(vec!["a.service".into(), "b.service".into()])
        );
        // TimeoutStopSec (2 s) and TimeoutStopUSec name the same property; one wins.
        assert!(matches!(
            p["TimeoutStopUSec"],
            Value::U64(2_000_000 | 123_456_789)
        ));
        assert_eq!(
            parse_gvariant("42").expect("the test input is valid"),
            Value::I32(42)
        );
        let bad: std::collections::HashMap<String, String> =
            [("org.systemd.property.X".to_string(), "{oops".to_string())].into();
        assert!(format!(
            "{:#}",
            annotation_properties(&bad).expect_err("the test input is invalid")
        )
        .contains("org.systemd.property.X"));
    }
}
