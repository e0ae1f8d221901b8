//! onggi: a low-level OCI container runtime.
//!
//! The modules, in the order a container meets them:
//! * [`cli`]: the runc-compatible command line;
//! * [`spec`]: config.json loading and validation, and the default config;
//! * [`state`]: the container state store (state.json, locks, live status);
//! * [`process`]: the create flow in onggi (clone3, the init channel, cleanup);
//! * [`init`]: the container init's setup steps, up to execve;
//! * [`namespaces`], [`rootfs`], [`capabilities`]: what the init sets up;
//! * [`scheduling`]: scheduler, I/O priority, CPU affinity, memory policy, personality;
//! * [`lsm`]: AppArmor profiles and SELinux labels (refused on hosts without them);
//! * [`netdev`]: linux.netDevices moved into the container and back;
//! * [`cgroups`]: the cgroup v2 driver (resources, freeze, kill); [`cgroup_commands`]: update, events;
//! * [`devices`]: the eBPF device filter of the container's cgroup;
//! * [`container`]: start, state, kill, delete, list, run, features; [`exec`]: exec and ps;
//! * [`procfs`]: every /proc write, through a verified handle;
//! * [`console`]: ptys and --console-socket; [`hooks`]: OCI hooks at the spec's moments;
//! * [`signal`], [`logging`], [`trace`]: signal names, the --log contract, step events;
//! * [`self_exe`]: create/run/exec run from a read-only mount of onggi's binary (CVE-2019-5736);
//! * [`sys`]: the only `unsafe` code, small system-call wrappers.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod capabilities;
mod cgroup;
pub mod cli;
mod console;
mod features;
mod hooks;
mod init;
mod lifecycle;
mod logging;
mod lsm;
mod msg;
mod namespaces;
mod netdev;
mod plan;
mod process;
mod procfs;
mod rootfs;
mod scheduling;
mod seccomp;
mod self_exe;
mod signal;
mod sources;
mod spec;
mod state;
// The only module allowed `unsafe`: each block says why it is sound (`// SAFETY:`).
#[allow(unsafe_code)]
mod sys;
mod trace;

/// For the integration tests (tests/common): the device programs attached to a cgroup, to
/// check that onggi leaves none behind.
#[doc(hidden)]
pub use sys::bpf_attached_device_programs;
