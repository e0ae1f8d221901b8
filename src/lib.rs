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

pub mod capabilities;
pub mod cgroup;
pub mod cgroup_commands;
pub mod cli;
pub mod console;
pub mod container;
pub mod exec;
pub mod hooks;
pub mod init;
pub mod logging;
pub mod lsm;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod scheduling;
pub mod seccomp;
pub mod self_exe;
pub mod signal;
pub mod sources;
pub mod spec;
pub mod state;
pub mod sys;
pub mod trace;
