//! podman's and Docker's seccomp profile format (containers-common's
//! /usr/share/containers/seccomp.json: an `archMap`, and rules that apply only with some
//! capabilities or on some architectures) turned into the OCI linux.seccomp form for one
//! container, as podman does before it calls the runtime.

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// Go's name of this machine's architecture, as the profile's `includes.arches` spell it.
const ARCH: &str = if cfg!(target_arch = "x86_64") {
    "amd64"
} else if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    std::env::consts::ARCH
};

/// The OCI seccomp object of `profile` for a process with the bounding set `caps`.
pub(crate) fn to_oci(profile: &Value, caps: &[String]) -> Result<Value> {
    let native = match ARCH {
        "amd64" => "SCMP_ARCH_X86_64",
        "arm64" => "SCMP_ARCH_AARCH64",
        _ => "",
    };
    let arches: Vec<Value> = profile["archMap"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["architecture"] == native)
        .flat_map(|a| {
            let subs = a["subArchitectures"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            std::iter::once(a["architecture"].clone()).chain(subs)
        })
        .collect();
    let mut out = json!({
        "defaultAction": profile["defaultAction"].as_str().context("the profile has no defaultAction")?,
        "architectures": arches,
        "syscalls": [],
    });
    if let Some(e) = profile["defaultErrnoRet"].as_u64() {
        out["defaultErrnoRet"] = json!(e);
    }
    let rules: Vec<Value> = profile["syscalls"]
        .as_array()
        .context("the profile has no syscalls list")?
        .iter()
        .filter(|r| applies(r, caps))
        .map(|r| {
            let mut o = json!({ "names": r["names"], "action": r["action"] });
            if let Some(a) = r["args"].as_array().filter(|a| !a.is_empty()) {
                o["args"] = json!(a);
            }
            if let Some(e) = r["errnoRet"].as_u64() {
                o["errnoRet"] = json!(e);
            }
            o
        })
        .collect();
    out["syscalls"] = json!(rules);
    Ok(out)
}

/// Whether a rule's `includes` hold and its `excludes` do not, for `caps` on this machine.
fn applies(rule: &Value, caps: &[String]) -> bool {
    let list = |v: &Value| -> Vec<String> { serde_json::from_value(v.clone()).unwrap_or_default() };
    let (inc, exc) = (&rule["includes"], &rule["excludes"]);
    let inc_arches = list(&inc["arches"]);
    let has = |c: &String| caps.contains(c);
    (inc_arches.is_empty() || inc_arches.iter().any(|a| a == ARCH))
        && list(&inc["caps"]).iter().all(has)
        && !list(&exc["arches"]).iter().any(|a| a == ARCH)
        && !list(&exc["caps"]).iter().any(has)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_capabilities_and_architecture() {
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [ARCH]}},
                {"names": ["s390_pci_mmio_read"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}}
            ]
        });
        let o = to_oci(&p, &["CAP_KILL".into()]).expect("the test input is valid");
        let names: Vec<&str> = o["syscalls"]
            .as_array()
            .expect("the test input is valid")
            .iter()
            .map(|r| r["names"][0].as_str().expect("the test input is valid"))
            .collect();
        assert_eq!(names, ["read", "unshare", "arch_prctl"]);
        assert_eq!(o["defaultErrnoRet"], 38);
        assert_eq!(o["syscalls"][1]["errnoRet"], 1);
        let admin = to_oci(&p, &["CAP_SYS_ADMIN".into()]).expect("the test input is valid");
        assert!(
            admin["syscalls"].to_string().contains("mount")
                && !admin["syscalls"].to_string().contains("unshare")
        );
        if ARCH == "amd64" {
            assert_eq!(
                o["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
            );
        }
    }
}
