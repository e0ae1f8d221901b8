//! onggi: a low-level OCI container runtime.
//!
//! The modules, in the order a container meets them (docs/architecture.md draws them):
//! * `cli`: the runc-compatible command line; `lifecycle`: one file per verb (create, start,
//!   kill, delete, exec, update, events …) over a container handle;
//! * `plan`: the typed plan of a container, parsed once from config.json (`spec`);
//! * `state`: the container state store (state.json, locks, live status);
//! * `init`: the container init's setup steps, up to execve; `process`: the process half the
//!   init and exec share; `msg`: the typed messages between onggi and its children;
//! * `namespaces`, `rootfs`, `capabilities`, `scheduling`, `lsm`, `netdev`, `seccomp`: what
//!   the init sets up;
//! * `cgroup`: the v2 files, the cgroupfs and systemd drivers, the eBPF device filter;
//! * `procfs`: every /proc write, through a verified handle; `console`: ptys and
//!   --console-socket; `hooks`: OCI hooks at the spec's moments;
//! * `signal`, `logging`, `trace`: signal names, the --log contract, step events;
//! * `self_exe`: create/run/exec run from a read-only mount of onggi's binary (CVE-2019-5736);
//! * `sys`: the only `unsafe` code, small system-call wrappers.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod capabilities;
mod cgroup;
pub mod cli;
mod console;
mod criu;
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
mod seccomp_cache;
mod seccomp_profile;
mod self_exe;
mod signal;
mod sources;
mod spec;
mod spec_flags;
mod state;
// The only module allowed `unsafe`: each block says why it is sound (`// SAFETY:`).
#[allow(unsafe_code)]
mod sys;
mod trace;

/// For the integration tests (tests/common): the device programs attached to a cgroup, to
/// check that onggi leaves none behind.
#[doc(hidden)]
pub use sys::bpf_attached_device_programs;
