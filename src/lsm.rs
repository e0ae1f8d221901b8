//! AppArmor and SELinux: `process.apparmorProfile`, `process.selinuxLabel`, `linux.mountLabel`
//! (and exec's `--apparmor` / `--process-label`).
//!
//! On a host without the LSM a label is refused with one line (runc's behaviour), never
//! silently ignored. On a host with it, the exec label is written by the process itself to its
//! own `/proc/<tid>/attr/...` through the verified host procfs handle while it is still root
//! (the files of a non-dumpable process belong to root), and the kernel applies it at execve:
//! AppArmor `exec <profile>` to `attr/apparmor/exec` (or the older `attr/exec`), SELinux the
//! label to `attr/exec`. `mountLabel` becomes a `context="…"` option of every mount that is not
//! a bind, proc, sysfs or cgroup mount (as runc does).
//!
//! This host has neither LSM: only the refusals are exercised by the tests here; the apply
//! paths run on a host that has AppArmor or SELinux enabled (README "Security").

use anyhow::{bail, Context, Result};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use crate::trace::Calls;

/// runc's test: the apparmor module says `Y`.
pub(crate) fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// SELinux is enabled when selinuxfs is mounted (its `enforce` file exists).
pub(crate) fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// The labels one process asks for, checked against the host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ExecLabels {
    pub(crate) apparmor: Option<String>,
    pub(crate) selinux: Option<String>,
}

impl ExecLabels {
    /// The process's labels; an error naming the field when the host lacks the LSM.
    pub(crate) fn new(p: &oci_spec::runtime::Process) -> Result<ExecLabels> {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let labels = ExecLabels {
            apparmor: set(p.apparmor_profile()),
            selinux: set(p.selinux_label()),
        };
        if let Some(a) = &labels.apparmor {
            if !apparmor_enabled() {
                bail!("process.apparmorProfile {a:?} is set but AppArmor is not enabled on this host: refusing to run without it");
            }
        }
        if let Some(l) = &labels.selinux {
            if !selinux_enabled() {
                bail!("process.selinuxLabel {l:?} is set but SELinux is not enabled on this host: refusing to run without it");
            }
        }
        Ok(labels)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.apparmor.is_none() && self.selinux.is_none()
    }

    /// Writes the exec labels to our own attr files (applied by the kernel at execve).
    pub(crate) fn apply(&self, procfs: BorrowedFd<'_>, c: &mut Calls) -> Result<()> {
        let me = PathBuf::from(
            nix::fcntl::readlinkat(
                Some(std::os::fd::AsRawFd::as_raw_fd(&procfs)),
                "thread-self",
            )
            .context("readlink /proc/thread-self")?,
        );
        if let Some(profile) = &self.apparmor {
            let value = format!("exec {profile}");
            let newer = me.join("attr/apparmor/exec");
            crate::procfs::write(procfs, &newer, &value)
                .or_else(|_| crate::procfs::write(procfs, &me.join("attr/exec"), &value))
                .context("process.apparmorProfile")?;
            c.note(|| {
                format!(
                    "write /proc/{}/attr/apparmor/exec = {value:?}",
                    me.display()
                )
            });
        }
        if let Some(label) = &self.selinux {
            crate::procfs::write(procfs, &me.join("attr/exec"), label)
                .context("process.selinuxLabel")?;
            c.note(|| format!("write /proc/{}/attr/exec = {label:?}", me.display()));
        }
        Ok(())
    }
}

/// `linux.mountLabel`: refused without SELinux.
pub(crate) fn check_mount_label(label: Option<&str>) -> Result<()> {
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        if !selinux_enabled() {
            bail!("config.json: linux.mountLabel {l:?} is set but SELinux is not enabled on this host: refusing to run without it");
        }
    }
    Ok(())
}

/// The mount data with `context="LABEL"` added, for the mount types that take it.
pub(crate) fn with_mount_label(
    data: &str,
    fstype: &str,
    bind: bool,
    label: Option<&str>,
) -> String {
    match label.filter(|l| !l.is_empty()) {
        Some(l) if !bind && !matches!(fstype, "proc" | "sysfs" | "cgroup" | "cgroup2") => {
            if data.is_empty() {
                format!("context=\"{l}\"")
            } else {
                format!("{data},context=\"{l}\"")
            }
        }
        _ => data.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_label_goes_to_the_mount_types_that_take_it() {
        const L: &str = "system_u:object_r:container_file_t:s0:c1,c2";
        assert_eq!(
            with_mount_label("mode=755", "tmpfs", false, Some(L)),
            format!("mode=755,context=\"{L}\"")
        );
        assert_eq!(
            with_mount_label("", "mqueue", false, Some(L)),
            format!("context=\"{L}\"")
        );
        assert_eq!(with_mount_label("", "proc", false, Some(L)), "");
        assert_eq!(with_mount_label("x", "tmpfs", true, Some(L)), "x");
        assert_eq!(with_mount_label("x", "tmpfs", false, None), "x");
    }
}
