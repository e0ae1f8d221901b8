//! The cgroup v2 driver. onggi is v2-only: it finds the cgroup2 mount in /proc/self/mountinfo
//! (on a hybrid host it is not /sys/fs/cgroup) and never touches a v1 hierarchy.
//!
//! * `linux.cgroupsPath`: absolute → below the v2 root; relative → below onggi's own cgroup;
//!   absent → `/<id>` (as runc's cgroupfs driver).
//! * Every controller the config needs is checked before anything is created; a missing one is
//!   one clear error naming it and the mount, and nothing is left behind.
//! * Controllers are enabled in each ancestor's `cgroup.subtree_control`, the resources are
//!   written, and the init is cloned straight into the cgroup (clone3 CLONE_INTO_CGROUP), so it
//!   never runs a moment outside it.
//! * pause/resume write `cgroup.freeze` and wait for `frozen` in `cgroup.events`; `kill --all`
//!   and `delete --force` use `cgroup.kill`.

pub(crate) mod bus;
pub(crate) mod device_filter;
pub(crate) mod device_pins;
pub(crate) mod setup;
pub(crate) mod systemd;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use crate::{sys, trace};

/// The cgroup2 mount point: /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified (hybrid) when
/// that is one (a statfs each), else from /proc/self/mountinfo, which costs 2-3 ms on a host
/// with 1000 mounts.
pub(crate) fn v2_mount() -> Result<PathBuf> {
    for well_known in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let p = Path::new(well_known);
        if nix::sys::statfs::statfs(p)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            && sys::is_mount_root(p).unwrap_or(false)
        {
            return Ok(p.to_path_buf());
        }
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    // A mount stacked on top hides an earlier one (mountinfo lists both): take the last one
    // that is reachable.
    v2_mounts(&info)
        .into_iter()
        .rev()
        .find(|m| m.join("cgroup.controllers").exists())
        .context("no cgroup2 filesystem is mounted on this host (onggi needs cgroup v2)")
}

/// Every cgroup2 mount point in mountinfo, in mount order.
fn v2_mounts(info: &str) -> Vec<PathBuf> {
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2")
                .then(|| PathBuf::from(left.split(' ').nth(4).unwrap_or("/")))
        })
        .collect()
}

/// onggi's own cgroup (the `0::` line of /proc/self/cgroup).
pub(crate) fn own_cgroup() -> Result<PathBuf> {
    let text =
        std::fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
        .context("/proc/self/cgroup has no cgroup v2 entry")
}

/// The container's cgroup relative to the v2 root, from `linux.cgroupsPath`. `own` (onggi's
/// own cgroup) is asked for only by a relative path: reading /proc/self/cgroup takes the
/// kernel's cgroup_mutex, which every other container's cgroup mkdir and rmdir hold too.
pub(crate) fn container_path(
    cgroups_path: Option<&Path>,
    own: impl FnOnce() -> Result<PathBuf>,
    id: &str,
) -> Result<PathBuf> {
    let p = match cgroups_path {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("/").join(id),
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => own()?.join(p),
        None => PathBuf::from("/").join(id),
    };
    if p.components().any(|c| c == Component::ParentDir) {
        bail!("linux.cgroupsPath {p:?} must not contain \"..\"");
    }
    // A systemd-style "slice:prefix:name" is not a path onggi understands.
    if p.to_string_lossy().contains(':') {
        bail!("linux.cgroupsPath {p:?} looks like a systemd slice; onggi's cgroupfs driver takes a path");
    }
    if p == Path::new("/") {
        bail!("linux.cgroupsPath must not be the root cgroup");
    }
    Ok(p)
}

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

/// A number read from a cgroup file (memory.current, pids.current …); None when it is missing
/// or not a number.
pub(crate) fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// A container's cgroup.
pub(crate) struct Cgroup {
    /// The v2 mount point.
    pub(crate) mount: PathBuf,
    /// The path below it.
    pub(crate) rel: PathBuf,
}

impl Cgroup {
    pub(crate) fn dir(&self) -> PathBuf {
        self.mount
            .join(self.rel.strip_prefix("/").unwrap_or(&self.rel))
    }

    /// Checks that the hierarchy has every controller `writes` need (before creating anything).
    pub(crate) fn check_controllers(&self, writes: &[Write]) -> Result<BTreeSet<&'static str>> {
        let available = read_controllers(&self.mount.join("cgroup.controllers"))?;
        let needed: BTreeSet<&'static str> = writes
            .iter()
            .map(|w| w.controller)
            .filter(|c| !c.is_empty())
            .collect();
        for c in &needed {
            if !available.contains(*c) {
                let what = writes
                    .iter()
                    .find(|w| w.controller == *c)
                    .map_or(String::new(), |w| w.file.clone());
                bail!(
                    "linux.resources needs the {c} controller ({what}), which the cgroup v2 hierarchy at {} does not have (it has: {})",
                    self.mount.display(),
                    if available.is_empty() { "none".into() } else { available.iter().cloned().collect::<Vec<_>>().join(" ") }
                );
            }
        }
        Ok(needed)
    }

    /// Creates the cgroup (and missing parents) and enables `controllers` down to it. Returns
    /// whether onggi created the leaf (only then does delete remove it).
    pub(crate) fn create(
        &self,
        controllers: &BTreeSet<&'static str>,
        c: &mut trace::Calls,
    ) -> Result<bool> {
        let dir = self.dir();
        let created = !dir.exists();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
        c.note(|| format!("mkdir {}", dir.display()));
        if let Err(e) = self.enable(controllers, c) {
            // Leave nothing: the leaf onggi just made goes again.
            if created {
                let _ = std::fs::remove_dir(&dir);
            }
            return Err(e);
        }
        self.enable_all_available(c);
        Ok(created)
    }

    /// Enables `controllers` in each ancestor's `cgroup.subtree_control` down to the cgroup.
    pub(crate) fn enable(
        &self,
        controllers: &BTreeSet<&'static str>,
        c: &mut trace::Calls,
    ) -> Result<()> {
        for cur in self.ancestors().iter().filter(|_| !controllers.is_empty()) {
            let file = cur.join("cgroup.subtree_control");
            // Only what is not enabled yet: a delegated user may not write an ancestor's file
            // that already has every controller it needs.
            let line = not_enabled(&file, controllers.iter().copied()).join(" ");
            if line.is_empty() {
                continue;
            }
            if let Err(e) = std::fs::write(&file, &line) {
                let hint = if e.raw_os_error() == Some(libc::EBUSY) {
                    " (that cgroup has processes of its own: the no-internal-processes rule)"
                } else {
                    ""
                };
                return Err(e)
                    .with_context(|| format!("cannot enable {line} in {}{hint}", file.display()));
            }
            c.note(|| format!("write {} = {line:?}", file.display()));
        }
        Ok(())
    }

    /// Enables, best effort, every controller each ancestor has, as runc does on the way down:
    /// a container without limits still gets memory, io and pids accounting (memory.current,
    /// memory.stat, io.stat), which `docker stats`, cAdvisor and `kubectl top` read. A refusal
    /// (an ancestor with processes of its own, a file a delegated user may not write) is not
    /// an error: the controllers the config needs were enabled above, or create failed.
    fn enable_all_available(&self, c: &mut trace::Calls) {
        for cur in self.ancestors() {
            let file = cur.join("cgroup.subtree_control");
            let available =
                std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
            let missing = not_enabled(&file, available.split_whitespace());
            if missing.is_empty() {
                continue;
            }
            if std::fs::write(&file, missing.join(" ")).is_err() {
                for m in &missing {
                    let _ = std::fs::write(&file, m);
                }
            }
            c.note(|| {
                format!(
                    "write {} = {:?} (best effort)",
                    file.display(),
                    missing.join(" ")
                )
            });
        }
    }

    /// The cgroups whose `cgroup.subtree_control` decides what the container's has: the v2
    /// root and every directory below it down to the container's parent.
    fn ancestors(&self) -> Vec<PathBuf> {
        let mut cur = self.mount.clone();
        let mut out = Vec::new();
        for comp in self
            .rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
        {
            out.push(cur.clone());
            cur.push(comp);
        }
        out
    }

    /// Writes the resource files.
    pub(crate) fn apply(&self, writes: &[Write], c: &mut trace::Calls) -> Result<()> {
        let dir = self.dir();
        for wr in writes {
            let file = dir.join(&wr.file);
            if !file.exists() {
                bail!("cgroup file {} does not exist (linux.resources: unknown key or missing controller)", file.display());
            }
            std::fs::write(&file, &wr.value)
                .with_context(|| format!("cannot write {:?} to {}", wr.value, file.display()))?;
            c.note(|| format!("write {} = {:?}", wr.file, wr.value));
        }
        Ok(())
    }

    /// `update`: every file is checked first, and when the kernel refuses a value half-way the
    /// files already written get their previous values back, so a failing update changes
    /// nothing.
    pub(crate) fn apply_all_or_nothing(
        &self,
        writes: &[Write],
        c: &mut trace::Calls,
    ) -> Result<()> {
        let dir = self.dir();
        let mut before = Vec::new();
        for wr in writes {
            let file = dir.join(&wr.file);
            let old = std::fs::read_to_string(&file).with_context(|| {
                format!("cgroup file {} cannot be read (linux.resources: unknown key or missing controller)", file.display())
            })?;
            before.push((file, old));
        }
        for (i, wr) in writes.iter().enumerate() {
            let file = &before[i].0;
            if let Err(e) = std::fs::write(file, &wr.value) {
                for (f, old) in before[..i].iter().rev() {
                    // Multi-line files (io.weight, io.max) take one line per write.
                    for line in old.lines().filter(|l| !l.trim().is_empty()) {
                        let _ = std::fs::write(f, line);
                    }
                }
                return Err(e).with_context(|| {
                    format!(
                        "cannot write {:?} to {} (nothing was changed)",
                        wr.value,
                        file.display()
                    )
                });
            }
            c.note(|| format!("write {} = {:?}", wr.file, wr.value));
        }
        Ok(())
    }

    /// A directory descriptor for clone3(CLONE_INTO_CGROUP).
    pub(crate) fn open(&self) -> Result<OwnedFd> {
        sys::openat2(
            sys::at_fdcwd(),
            &self.dir(),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_NO_SYMLINKS,
        )
        .with_context(|| format!("cannot open the cgroup {}", self.dir().display()))
    }
}

/// `+name` for each of `wanted` that the subtree_control `file` does not list yet.
fn not_enabled<'a>(file: &Path, wanted: impl Iterator<Item = &'a str>) -> Vec<String> {
    let enabled = std::fs::read_to_string(file).unwrap_or_default();
    wanted
        .filter(|w| !enabled.split_whitespace().any(|e| e == *w))
        .map(|w| format!("+{w}"))
        .collect()
}

fn read_controllers(path: &Path) -> Result<BTreeSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.split_whitespace().map(String::from).collect())
}

/// The pids in a cgroup (`cgroup.procs`).
pub(crate) fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether the cgroup is frozen (`frozen 1` in cgroup.events).
pub(crate) fn is_frozen(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "frozen 1"))
        .unwrap_or(false)
}

/// Freezes or thaws, and waits (up to 5 s) until cgroup.events says so.
pub(crate) fn freeze(dir: &Path, on: bool) -> Result<()> {
    let file = dir.join("cgroup.freeze");
    std::fs::write(&file, if on { "1" } else { "0" })
        .with_context(|| format!("cannot write {}", file.display()))?;
    for _ in 0..5000 {
        if is_frozen(dir) == on {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    bail!(
        "the cgroup {} did not {} within 5 s",
        dir.display(),
        if on { "freeze" } else { "thaw" }
    )
}

/// SIGKILL to every process of the cgroup (cgroup.kill; else freeze, signal each, thaw).
pub(crate) fn kill_all(dir: &Path, sig: i32) -> Result<()> {
    let kill_file = dir.join("cgroup.kill");
    if sig == libc::SIGKILL && kill_file.exists() {
        return std::fs::write(&kill_file, "1")
            .with_context(|| format!("cannot write {}", kill_file.display()));
    }
    // Frozen, nobody can fork away between reading cgroup.procs and signalling.
    freeze(dir, true)?;
    for pid in procs(dir) {
        if let Ok(fd) = sys::pidfd_open(pid) {
            let _ = sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), sig);
        }
    }
    freeze(dir, false)
}

/// Removes the cgroup directory once its processes are gone (retrying briefly on EBUSY).
pub(crate) fn remove(dir: &Path) -> Result<()> {
    // Sub-cgroups made inside the container (or for `exec --cgroup`) go first, deepest first.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&e.path())?;
            }
        }
    }
    for _ in 0..500 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot remove the cgroup {}", dir.display()))
            }
        }
    }
    bail!("the cgroup {} still has processes after 5 s", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mounts_on_a_hybrid_host() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    90 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 none rw\n";
        let want = [
            PathBuf::from("/sys/fs/cgroup/unified"),
            PathBuf::from("/sys/fs/cgroup"),
        ];
        assert_eq!(v2_mounts(info), want);
        assert!(v2_mounts("1 0 0:1 / / rw - ext4 /dev/vda rw\n").is_empty());
    }

    #[test]
    fn the_well_known_v2_mount_is_one_mountinfo_lists() {
        let info =
            std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
        if let Ok(found) = v2_mount() {
            assert!(
                v2_mounts(&info).contains(&found),
                "{found:?} is not a cgroup2 mount"
            );
        } else {
            assert!(v2_mounts(&info).is_empty());
        }
    }

    #[test]
    fn cgroups_path_resolution() {
        let own = || Ok(PathBuf::from("/system.slice/shim"));
        assert_eq!(
            container_path(None, own, "c1").expect("valid test input"),
            PathBuf::from("/c1")
        );
        assert_eq!(
            container_path(Some(Path::new("/a/b")), own, "c1").expect("valid test input"),
            PathBuf::from("/a/b")
        );
        assert_eq!(
            container_path(Some(Path::new("x/y")), own, "c1").expect("valid test input"),
            PathBuf::from("/system.slice/shim/x/y")
        );
        assert!(container_path(Some(Path::new("/a/../b")), own, "c1").is_err());
        assert!(container_path(Some(Path::new("system.slice:docker:abc")), own, "c1").is_err());
        assert!(container_path(Some(Path::new("/")), own, "c1").is_err());
    }

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
