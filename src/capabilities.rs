//! The five capability sets of `process.capabilities`, and the switch to the configured user.
//!
//! Order matters and is the one runc uses:
//! 1. drop from the bounding set (needs CAP_SETPCAP, so first);
//! 2. PR_SET_KEEPCAPS, then setgroups / setresgid / setresuid (the user switch);
//! 3. effective, permitted, inheritable (inheritable stays empty unless configured:
//!    CVE-2022-29162);
//! 4. ambient, each raise only as configured (a raise the kernel refuses is a warning, as in runc).

use anyhow::{Context, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{LinuxCapabilities, User};
use std::str::FromStr;

use crate::sys;
use crate::trace::{self, Calls};

/// Converts the config's capability names (already checked by the parser) into caps' type.
fn set_of(list: &Option<oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in list.iter().flatten() {
        let name = serde_json::to_value(c)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let cap = Capability::from_str(&name).map_err(|_| {
            anyhow::anyhow!("capability {name} is not known to this build of onggi")
        })?;
        out.insert(cap);
    }
    Ok(out)
}

fn names(s: &CapsHashSet) -> String {
    let mut v: Vec<String> = s.iter().map(|c| c.to_string()).collect();
    v.sort();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(",")
    }
}

/// The parsed sets.
#[derive(Clone)]
pub(crate) struct CapSets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapSets {
    /// Whether the configured effective set has CAP_SYS_ADMIN.
    pub(crate) fn has_sys_admin(&self) -> bool {
        self.effective.contains(&Capability::CAP_SYS_ADMIN)
    }

    /// Refuses sets that ask for a capability this process's own bounding set lacks (a host
    /// that withholds CAP_SYS_RESOURCE, say): no process onggi starts can be given it, and the
    /// kernel's answer would be a bare EPERM from capset.
    pub(crate) fn check_grantable(&self) -> Result<()> {
        let own =
            caps::read(None, caps::CapSet::Bounding).context("cannot read our bounding set")?;
        let mut missing: Vec<String> = self
            .effective
            .iter()
            .chain(&self.permitted)
            .chain(&self.inheritable)
            .chain(&self.ambient)
            .filter(|c| !own.contains(c))
            .map(|c| c.to_string())
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            anyhow::bail!(
                "process.capabilities asks for {} but onggi's own bounding set lacks it (this host withholds it from every process): no container can hold it; remove it from the config",
                missing.join(", ")
            );
        }
        Ok(())
    }

    pub(crate) fn from_config(c: &LinuxCapabilities) -> Result<CapSets> {
        Ok(CapSets {
            bounding: set_of(c.bounding())?,
            effective: set_of(c.effective())?,
            permitted: set_of(c.permitted())?,
            inheritable: set_of(c.inheritable())?,
            ambient: set_of(c.ambient())?,
        })
    }
}

/// Step 1: drop every capability not in the bounding set.
pub(crate) fn drop_bounding(sets: &CapSets, c: &mut Calls) -> Result<()> {
    // Every capability the kernel knows (it may know more than the caps crate): dropping one
    // already gone succeeds, and the first number past the kernel's last is EINVAL, so one
    // prctl per capability, without reading the set first. Without CAP_SETPCAP every drop is
    // EPERM: that is only an error for a capability the set still has.
    let keep: Vec<u32> = sets.bounding.iter().map(|c| c.index() as u32).collect();
    for cap in 0.. {
        if keep.contains(&cap) {
            continue;
        }
        match sys::capbset_drop(cap) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM)
                    && !sys::capbset_read(cap).unwrap_or(true) => {}
            r => r.with_context(|| format!("prctl(PR_CAPBSET_DROP, {cap})"))?,
        }
    }
    c.note(|| {
        format!(
            "prctl(PR_CAPBSET_DROP) keeping bounding={}",
            names(&sets.bounding)
        )
    });
    Ok(())
}

/// Step 2: the user switch (keeping the permitted set across it when capabilities follow).
pub(crate) fn switch_user(
    user: &User,
    keep_caps: bool,
    procfs: std::os::fd::BorrowedFd<'_>,
    c: &mut Calls,
) -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    if keep_caps {
        sys::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
    }
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // In a user namespace whose setgroups is denied (rootless), the group list cannot change:
    // with no additionalGids it stays as the namespace made it (runc skips it too). Read
    // through the host's procfs: the container may have no /proc mounted.
    let setgroups_file = crate::procfs::read(procfs, std::path::Path::new("self/setgroups")).ok();
    let denied = setgroups_file.is_some_and(|s| s.trim() == "deny");
    match (denied, groups.is_empty()) {
        (true, true) => {}
        (true, false) => anyhow::bail!(
            "process.user.additionalGids {groups:?}: setgroups is denied in this user namespace (rootless): remove them"
        ),
        (false, _) => setgroups(&groups).context("setgroups")?,
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).with_context(|| format!("setresgid({gid})"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).with_context(|| format!("setresuid({uid})"))?;
    if keep_caps {
        sys::set_keepcaps(false).context("prctl(PR_SET_KEEPCAPS, 0)")?;
    }
    c.note(|| format!("setgroups({groups:?}) setresgid({gid}) setresuid({uid})"));
    Ok(())
}

/// Steps 3 and 4. `hold_sys_admin`: keep CAP_SYS_ADMIN effective and permitted on top of the
/// configured sets, so the seccomp filter can be loaded without no_new_privs; it is applied
/// again without it right after the load.
pub(crate) fn apply_sets(sets: &CapSets, hold_sys_admin: bool, c: &mut Calls) -> Result<()> {
    let with_held = |s: &CapsHashSet| {
        let mut s = s.clone();
        if hold_sys_admin {
            s.insert(Capability::CAP_SYS_ADMIN);
        }
        s
    };
    // Effective first (a subset of the full permitted set we still have), then permitted, then
    // inheritable: each intermediate state is one the kernel accepts.
    caps::set(None, CapSet::Effective, &with_held(&sets.effective))
        .context("cannot set the effective capabilities")?;
    caps::set(None, CapSet::Permitted, &with_held(&sets.permitted)).context(
        "cannot set the permitted capabilities (is every effective capability also permitted?)",
    )?;
    caps::set(None, CapSet::Inheritable, &sets.inheritable)
        .context("cannot set the inheritable capabilities")?;
    c.note(|| {
        format!(
            "capset(effective={}, permitted={}, inheritable={}){}",
            names(&sets.effective),
            names(&sets.permitted),
            names(&sets.inheritable),
            if hold_sys_admin {
                " + CAP_SYS_ADMIN held until the seccomp filter is loaded"
            } else {
                ""
            }
        )
    });
    caps::clear(None, CapSet::Ambient).context("cannot clear the ambient capabilities")?;
    for cap in &sets.ambient {
        if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
            trace::moment("warning", || {
                format!("cannot raise ambient {cap}: {e} (it must be permitted and inheritable)")
            });
        }
    }
    c.note(|| format!("prctl(PR_CAP_AMBIENT_RAISE, {})", names(&sets.ambient)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_config() {
        let j =
            serde_json::json!({"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"]});
        let lc: LinuxCapabilities = serde_json::from_value(j).expect("parses");
        let s = CapSets::from_config(&lc).expect("known caps");
        assert_eq!(s.bounding.len(), 2);
        assert!(s.effective.contains(&Capability::CAP_KILL));
        assert!(
            s.inheritable.is_empty(),
            "inheritable stays empty unless configured"
        );
        assert_eq!(names(&s.bounding), "CAP_CHOWN,CAP_KILL");
    }
}
