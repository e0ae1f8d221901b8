//! `linux.netDevices`: host network links moved into the container's network namespace (and
//! renamed), and moved back when the container is deleted.
//!
//! onggi, on the host, sends one rtnetlink RTM_NEWLINK per device while the init waits:
//! IFLA_NET_NS_PID (the init) and IFLA_IFNAME (the name inside) in the same message, so the
//! kernel moves and renames at once. `delete` of a container whose init still runs moves each
//! device back first (a forked helper enters the container's network namespace and sends
//! IFLA_NET_NS_FD = onggi's own namespace with the host name), then kills. A container that
//! already stopped has lost its namespace: the kernel returns physical devices to the host
//! namespace by itself, and a virtual one (a veth end) is destroyed with it; onggi says so in
//! the trace and cannot do more.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNetDevice, Spec};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;

use crate::sys;
use crate::trace::Calls;

const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_NET_NS_FD: u16 = 28;

/// The devices of a config, in a fixed order: (name on the host, name in the container).
pub(crate) fn devices(spec: &Spec) -> Vec<(String, String)> {
    let map: Option<&HashMap<String, LinuxNetDevice>> =
        spec.linux().as_ref().and_then(|l| l.net_devices().as_ref());
    let mut v: Vec<(String, String)> = map
        .into_iter()
        .flatten()
        .map(|(host, d)| {
            let inside = d.name().clone().filter(|n| !n.is_empty());
            (host.clone(), inside.unwrap_or_else(|| host.clone()))
        })
        .collect();
    v.sort();
    v
}

/// Names must be valid interface names; the container needs a network namespace of its own.
pub(crate) fn validate(spec: &Spec, has_new_netns: bool) -> Result<()> {
    let devs = devices(spec);
    if devs.is_empty() {
        return Ok(());
    }
    if !has_new_netns {
        bail!("config.json: linux.netDevices needs a new network namespace (linux.namespaces has no path-less \"network\")");
    }
    for (host, inside) in &devs {
        for n in [host, inside] {
            if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', ':']) || n == "." || n == ".."
            {
                bail!("config.json: linux.netDevices {host:?}: {n:?} is not a valid interface name (1-15 bytes, no '/', ':' or spaces)");
            }
        }
    }
    Ok(())
}

/// onggi, on the host: moves each device into the namespace of `pid` under its new name.
pub(crate) fn move_in(devs: &[(String, String)], pid: i32, c: &mut Calls) -> Result<()> {
    for (host, inside) in devs {
        let index = sys::if_index(host)
            .with_context(|| format!("linux.netDevices {host:?}: no such link on the host"))?;
        sys::rtnl_setlink(
            index,
            &[
                (IFLA_NET_NS_PID, (pid as u32).to_ne_bytes().to_vec()),
                (IFLA_IFNAME, name_attr(inside)),
            ],
        )
        .with_context(|| format!("linux.netDevices {host:?}: cannot move it into the container"))?;
        c.note(|| {
            format!("RTM_NEWLINK(index {index} {host:?}, IFLA_NET_NS_PID={pid}, IFLA_IFNAME={inside:?})")
        });
    }
    Ok(())
}

/// `delete` while the init lives: each device goes back to onggi's network namespace under its
/// host name. Runs in a forked helper that enters the container's network namespace.
pub(crate) fn move_back(
    devs: &[(String, String)],
    init: BorrowedFd<'_>,
    c: &mut Calls,
) -> Result<()> {
    if devs.is_empty() {
        return Ok(());
    }
    let host_ns = std::fs::File::open("/proc/self/ns/net").context("open /proc/self/ns/net")?;
    let child = sys::spawn(0, None, || {
        let ok = sys::setns(init, libc::CLONE_NEWNET).is_ok()
            && devs.iter().all(|(host, inside)| {
                sys::if_index(inside).is_ok_and(|index| {
                    let ns = (host_ns.as_raw_fd() as u32).to_ne_bytes().to_vec();
                    sys::rtnl_setlink(
                        index,
                        &[(IFLA_NET_NS_FD, ns), (IFLA_IFNAME, name_attr(host))],
                    )
                    .is_ok()
                })
            });
        i32::from(!ok)
    })
    .context("clone3")?;
    let status = match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None)
        .context("wait for the helper")?
    {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        _ => 1,
    };
    c.note(|| format!("setns(init, CLONE_NEWNET) + RTM_NEWLINK(IFLA_NET_NS_FD=host) for {devs:?}"));
    if status != 0 {
        bail!("linux.netDevices: cannot move {devs:?} back to the host");
    }
    Ok(())
}

fn name_attr(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_default_to_the_host_name_and_names_are_checked() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.1", "root": {"path": "r"},
            "linux": {"netDevices": {"veth1": {"name": "eth1"}, "dummy0": {}}}}))
        .expect("test fixture is valid");
        assert_eq!(
            devices(&spec),
            vec![
                ("dummy0".into(), "dummy0".into()),
                ("veth1".into(), "eth1".into())
            ]
        );
        assert!(validate(&spec, true).is_ok());
        assert!(validate(&spec, false)
            .unwrap_err()
            .to_string()
            .contains("network namespace"));
        let bad: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.1", "root": {"path": "r"},
            "linux": {"netDevices": {"veth1": {"name": "a/b"}}}}))
        .expect("test fixture is valid");
        assert!(validate(&bad, true)
            .unwrap_err()
            .to_string()
            .contains("\"a/b\""));
    }
}
