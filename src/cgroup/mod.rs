//! The cgroup v2 driver. onggi is v2-only: it finds the cgroup2 mount in /proc/self/mountinfo
//! (on a hybrid host it is not /sys/fs/cgroup) and never touches a v1 hierarchy.
//!
//! * `linux.resources` become file writes in resources.rs (pure).
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
mod resources;
pub(crate) mod setup;
pub(crate) mod systemd;

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use crate::{sys, trace};
pub(crate) use resources::{resource_writes, Write};

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
}
