//! `linux.seccomp`: the syscall filter, compiled with libseccomp into BPF at create (or exec),
//! before the clone, or taken from the compiled-filter cache (`seccomp_cache`), and installed
//! as the very last step before execve.
//!
//! ```text
//!   create / exec, before the clone       init, before Ready         right before execve
//!   ─────────────────────────────────     ──────────────────         ───────────────────
//!   compile: default action, archs,       program: the BPF           seccomp(SET_MODE_FILTER,
//!   flags, one rule per syscall name      behind the ENOSYS          flags [| NEW_LISTENER]);
//!   (per argument index when several      stub (syscalls newer       NOTIFY: the fd to
//!   conditions test the same one);        than the profile get       listenerPath; the held
//!   unknown names skipped; unknown        ENOSYS)                    CAP_SYS_ADMIN dropped
//!   action/op/arch/flag: an error;
//!   libseccomp's BPF (or all of this
//!   from the cache)
//! ```
//!
//! Loading needs CAP_SYS_ADMIN (in the container's user namespace) or no_new_privs: onggi keeps
//! CAP_SYS_ADMIN effective until just after the load when the process would not have it. Only a
//! process that never had it (a non-root user with no capabilities configured) gets
//! no_new_privs, and the trace says so.

use anyhow::{anyhow, bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::str::FromStr;

use crate::{seccomp_cache, sys, trace};

/// The spec name of an enum value from oci-spec (its serde name: `SCMP_ACT_ERRNO`, …).
fn spec_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The libseccomp action for a spec action; `errno` is errnoRet (EPERM when absent).
pub(crate) fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let ret = errno.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(
            i32::try_from(ret)
                .ok()
                .filter(|v| *v <= u16::MAX as i32)
                .ok_or_else(|| anyhow!("errnoRet {ret} is out of range (0-65535)"))?,
        ),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(ret).map_err(|_| anyhow!("errnoRet {ret} is out of range (0-65535)"))?,
        ),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

/// The libseccomp comparison for a spec condition. For SCMP_CMP_MASKED_EQ, `value` is the mask
/// and `valueTwo` the value the masked argument must equal (as runc and crun read it).
pub(crate) fn condition(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    two: u64,
) -> Result<ScmpArgCompare> {
    if index > 5 {
        bail!("seccomp argument index {index} is out of range (0-5)");
    }
    let (op, datum) = match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(value), two),
    };
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

/// Groups conditions into rules: libseccomp refuses two conditions on one argument in a
/// rule, so (as runc does) each condition on a repeated index becomes a rule of its own.
fn rule_groups(conds: Vec<(usize, ScmpArgCompare)>) -> Vec<Vec<ScmpArgCompare>> {
    let mut seen = std::collections::HashSet::new();
    if conds.iter().all(|(i, _)| seen.insert(*i)) {
        return vec![conds.into_iter().map(|(_, c)| c).collect()];
    }
    conds.into_iter().map(|(_, c)| vec![c]).collect()
}

/// A compiled filter: libseccomp's BPF and what the trace and the install need to know of it.
/// Plain data, so that it can come from the compiled-filter cache (`seccomp_cache`).
pub(crate) struct Filter {
    pub(crate) insns: Vec<sys::SockFilter>,
    /// Rules added, and syscall names this kernel/arch does not know (skipped).
    pub(crate) rules: usize,
    pub(crate) skipped: Vec<String>,
    pub(crate) default: String,
    pub(crate) notify: bool,
    pub(crate) listener_metadata: Option<String>,
    /// The kernel's filter flags the profile asks for (SECCOMP_FILTER_FLAG_*).
    pub(crate) flags: u32,
    /// Syscalls of the native architecture numbered above this one are newer than the profile:
    /// they get ENOSYS instead of the default action, so a libc falls back (runc does the same).
    /// None when the default action lets them through anyway.
    pub(crate) enosys_above: Option<u32>,
}

/// The compile step, at create (or exec) time: every error names what is wrong.
pub(crate) fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default =
        action(s.default_action(), s.default_errno_ret()).context("linux.seccomp.defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).context("seccomp_init")?;
    // onggi decides about no_new_privs itself (see the module comment).
    ctx.set_ctl_nnp(false)
        .context("seccomp: SCMP_FLTATR_CTL_NNP")?;
    // A binary tree over the syscall numbers instead of one comparison per rule: the same
    // decisions (libseccomp's guarantee; tests/seccomp.rs checks them), in fewer instructions
    // for every syscall of the container and for the kernel's per-syscall precomputation at
    // install. A libseccomp without it (< 2.5) keeps the linear program.
    let _ = ctx.set_ctl_optimize(2);
    for a in s.architectures().iter().flatten() {
        let name = spec_name(a);
        let arch = ScmpArch::from_str(&name).map_err(|_| {
            anyhow!("linux.seccomp.architectures: {name} is not known to libseccomp")
        })?;
        ctx.add_arch(arch)
            .with_context(|| format!("linux.seccomp.architectures: cannot add {name}"))?;
    }
    let flags = filter_flags(&mut ctx, s)?;
    let newest = newest_syscall(s);
    let mut notify = false;
    let (mut rules, mut skipped) = (0, Vec::new());
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret())
            .with_context(|| format!("linux.seccomp.syscalls[{i}].action"))?;
        if act == default {
            continue; // libseccomp refuses a rule that repeats the default action
        }
        notify |= act == ScmpAction::Notify;
        let mut conds = Vec::new();
        for a in sc.args().iter().flatten() {
            let c = condition(a.index(), a.op(), a.value(), a.value_two().unwrap_or(0))
                .with_context(|| format!("linux.seccomp.syscalls[{i}].args"))?;
            conds.push((a.index(), c));
        }
        let groups = rule_groups(conds);
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                skipped.push(name.clone());
                continue;
            };
            for g in &groups {
                ctx.add_rule_conditional(act, nr, g).with_context(|| {
                    format!("linux.seccomp.syscalls[{i}]: cannot add the rule for {name}")
                })?;
                rules += 1;
            }
        }
    }
    notify |= default == ScmpAction::Notify;
    if notify && s.listener_path().is_none() {
        bail!("linux.seccomp uses SCMP_ACT_NOTIFY but has no listenerPath");
    }
    let lets_through = matches!(default, ScmpAction::Allow | ScmpAction::Log)
        || default == ScmpAction::Errno(libc::ENOSYS);
    Ok(Filter {
        insns: bpf(&ctx)?,
        rules,
        skipped,
        default: spec_name(&s.default_action()),
        notify,
        listener_metadata: s.listener_metadata().clone(),
        flags,
        enosys_above: newest.filter(|_| !lets_through),
    })
}

/// linux.seccomp.flags: checked against libseccomp (which must support each) and returned as
/// the kernel's SECCOMP_FILTER_FLAG_* bits, which onggi passes to seccomp(2) itself.
fn filter_flags(ctx: &mut ScmpFilterContext, s: &LinuxSeccomp) -> Result<u32> {
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        let name = spec_name(f);
        let (r, bit) = match name.as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => (ctx.set_ctl_log(true), sys::SECCOMP_FILTER_FLAG_LOG),
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => {
                (ctx.set_ctl_ssb(true), sys::SECCOMP_FILTER_FLAG_SPEC_ALLOW)
            }
            "SECCOMP_FILTER_FLAG_TSYNC" => {
                (ctx.set_ctl_tsync(true), sys::SECCOMP_FILTER_FLAG_TSYNC)
            }
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => (
                ctx.set_ctl_waitkill(true),
                sys::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            ),
            _ => bail!("linux.seccomp.flags: unknown flag {name}"),
        };
        r.map_err(|e| anyhow!("linux.seccomp.flags: {name} is not supported here ({e})"))?;
        flags |= bit;
    }
    Ok(flags)
}

/// The highest native syscall number the profile names (whatever its action).
fn newest_syscall(s: &LinuxSeccomp) -> Option<u32> {
    s.syscalls()
        .iter()
        .flatten()
        .flat_map(|sc| sc.names())
        .filter_map(|n| ScmpSyscall::from_name(n).ok())
        .filter_map(|nr| u32::try_from(i32::from(nr)).ok())
        .max()
}

impl Filter {
    pub(crate) fn uses_notify(&self) -> bool {
        self.notify
    }

    /// The filter as the kernel will get it: libseccomp's BPF behind the ENOSYS stub, with the
    /// profile's flags. Installing it is one system call, made right before execve.
    pub(crate) fn program(&self) -> Result<Program> {
        let mut insns = self.insns.clone();
        let stub = self.enosys_above.zip(native_audit_arch());
        if let Some((newest, arch)) = stub {
            insns = with_enosys_stub(arch, newest, insns);
        }
        let listener = if self.notify {
            sys::SECCOMP_FILTER_FLAG_NEW_LISTENER
        } else {
            0
        };
        let mut note = format!(
            "seccomp(SECCOMP_SET_MODE_FILTER): {} rules, default {}",
            self.rules, self.default
        );
        if let Some((newest, _)) = stub {
            note += &format!("; ENOSYS above syscall {newest}");
        }
        if !self.skipped.is_empty() {
            note += &format!(
                "; skipped (unknown to this kernel/arch): {}",
                self.skipped.join(",")
            );
        }
        Ok(Program {
            insns,
            flags: self.flags | listener,
            note,
            metadata: self.listener_metadata.clone(),
        })
    }
}

/// The filter as libseccomp generates it: classic BPF instructions. This takes milliseconds
/// for a large profile, which is why compiled filters are cached (`seccomp_cache`).
fn bpf(ctx: &ScmpFilterContext) -> Result<Vec<sys::SockFilter>> {
    use std::io::{Read, Seek};
    let fd = sys::memfd_sealable("onggi-seccomp").context("memfd_create")?;
    ctx.export_bpf(&fd)
        .map_err(|e| anyhow!("seccomp: cannot generate the filter: {e}"))?;
    let mut f = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    f.rewind()
        .and_then(|_| f.read_to_end(&mut bytes))
        .context("seccomp: cannot read the generated filter")?;
    Ok(bytes
        .chunks_exact(8)
        .map(|i| sys::SockFilter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect())
}

/// The AUDIT_ARCH value of the architecture onggi runs on, when the ENOSYS stub knows it.
fn native_audit_arch() -> Option<u32> {
    match ScmpArch::native() {
        ScmpArch::X8664 => Some(AUDIT_ARCH_X86_64),
        ScmpArch::Aarch64 => Some(0xC000_00B7),
        _ => None,
    }
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// x32 syscalls are x86_64 numbers with this bit set: the stub leaves them to the filter.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `prog` behind a stub that answers ENOSYS for a syscall of `arch` numbered above `newest`:
/// a syscall newer than the profile is unknown to it, and a libc then falls back to an older
/// one instead of failing with the profile's default errno. The program's own jumps are
/// relative, so it runs unchanged after the stub.
fn with_enosys_stub(arch: u32, newest: u32, prog: Vec<sys::SockFilter>) -> Vec<sys::SockFilter> {
    const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
    let i = |code, jt, jf, k| sys::SockFilter { code, jt, jf, k };
    let x32 = if arch == AUDIT_ARCH_X86_64 {
        X32_SYSCALL_BIT
    } else {
        0
    };
    let mut out = vec![
        i(LD_ABS, 0, 0, 4),   // A = seccomp_data.arch
        i(JEQ, 0, 4, arch),   // another arch: to the filter
        i(LD_ABS, 0, 0, 0),   // A = seccomp_data.nr
        i(JSET, 2, 0, x32),   // an x32 syscall: to the filter
        i(JGT, 0, 1, newest), // newer than the profile: ENOSYS
        i(RET, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
    ];
    out.extend(prog);
    out
}

/// For create and exec, before the clone: the compiled filter of `linux.seccomp` (if any) and
/// the connected listenerPath socket (when it uses SCMP_ACT_NOTIFY).
pub(crate) fn prepare(
    spec: Option<&LinuxSeccomp>,
    cache: Option<&Path>,
) -> Result<(Option<Filter>, Option<UnixStream>)> {
    let Some(s) = spec else {
        return Ok((None, None));
    };
    let filter = trace::step("seccomp_compile", |c| {
        let entry = cache.and_then(|dir| {
            let key = seccomp_cache::key(s).ok()?;
            Some((seccomp_cache::path(dir, &key), key))
        });
        if let Some(f) = entry
            .as_ref()
            .and_then(|(file, key)| seccomp_cache::load(file, key))
        {
            c.note(|| {
                format!(
                    "compiled filter from the cache ({} rules, default {})",
                    f.rules, f.default
                )
            });
            return Ok(f);
        }
        let f = compile(s)?;
        if let Some((file, key)) = &entry {
            seccomp_cache::store(file, key, &f);
        }
        c.note(|| {
            format!(
                "seccomp_rule_add x{} (default {}; {} unknown names skipped)",
                f.rules,
                f.default,
                f.skipped.len()
            )
        });
        anyhow::Ok(f)
    })?;
    Ok((Some(filter), connect_listener(s)?))
}

/// Connects to listenerPath (in the runtime's mount namespace, before the clone).
fn connect_listener(s: &LinuxSeccomp) -> Result<Option<UnixStream>> {
    let Some(p) = s.listener_path() else {
        return Ok(None);
    };
    let uses_notify = s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|sc| sc.action() == LinuxSeccompAction::ScmpActNotify);
    if !uses_notify {
        return Ok(None);
    }
    connect(p).map(Some)
}

fn connect(p: &Path) -> Result<UnixStream> {
    UnixStream::connect(p)
        .with_context(|| format!("linux.seccomp.listenerPath {}: cannot connect", p.display()))
}

/// Sends the notification fd with the container process state (runtime-spec runtime.md).
pub(crate) fn send_to_listener(
    sock: &UnixStream,
    fd: &OwnedFd,
    pid: i32,
    metadata: Option<&str>,
    state: serde_json::Value,
) -> Result<()> {
    let msg = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or(""),
        "state": state,
    });
    sys::send_with_fd(sock.as_fd(), msg.to_string().as_bytes(), fd.as_fd())
        .context("cannot send the seccomp fd to listenerPath")
}

/// A filter ready to install: see [`Filter::program`].
pub(crate) struct Program {
    insns: Vec<sys::SockFilter>,
    flags: u32,
    /// What the trace says of it.
    note: String,
    metadata: Option<String>,
}

impl Program {
    /// Installs the filter in the calling process. Returns the notification fd when the filter
    /// has SCMP_ACT_NOTIFY rules.
    pub(crate) fn install(&self, c: &mut trace::Calls) -> Result<Option<OwnedFd>> {
        let fd = sys::seccomp_set_filter(&self.insns, self.flags)
            .map_err(|e| anyhow!("cannot load the seccomp filter: {e}"))?;
        c.note(|| self.note.clone());
        Ok(fd)
    }

    pub(crate) fn metadata(&self) -> Option<&str> {
        self.metadata.as_deref()
    }
}

/// What `features` reports: what this build and the host's libseccomp really support.
pub(crate) fn features() -> serde_json::Value {
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let api = libseccomp::get_api();
    let mut flags = vec![
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ];
    let mut actions = vec![
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ];
    if api >= 6 {
        actions.push("SCMP_ACT_NOTIFY");
    }
    if api >= 7 {
        flags.push("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    }
    serde_json::json!({
        "enabled": true,
        "actions": actions,
        "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                      "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86",
                  "SCMP_ARCH_X86_64"],
        "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "supportedFlags": flags,
        "libseccomp": v,
        "libseccompApiLevel": api,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(j: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(j).expect("valid test input")
    }

    #[test]
    fn actions_and_errno() {
        assert_eq!(
            action(LinuxSeccompAction::ScmpActErrno, None).expect("ok"),
            ScmpAction::Errno(libc::EPERM)
        );
        assert_eq!(
            action(LinuxSeccompAction::ScmpActErrno, Some(38)).expect("ok"),
            ScmpAction::Errno(38)
        );
        assert_eq!(
            action(LinuxSeccompAction::ScmpActKill, None).expect("ok"),
            ScmpAction::KillThread
        );
        assert!(action(LinuxSeccompAction::ScmpActErrno, Some(70000)).is_err());
    }

    #[test]
    fn repeated_argument_indexes_become_separate_rules() {
        let eq = |i: usize, v| {
            (
                i,
                condition(i, LinuxSeccompOperator::ScmpCmpEq, v, 0).expect("ok"),
            )
        };
        assert_eq!(rule_groups(vec![eq(0, 1), eq(1, 2)]).len(), 1);
        assert_eq!(rule_groups(vec![eq(0, 1), eq(0, 2)]).len(), 2);
        assert_eq!(rule_groups(vec![]).len(), 1, "no condition: one plain rule");
        assert!(condition(6, LinuxSeccompOperator::ScmpCmpEq, 0, 0).is_err());
    }

    #[test]
    fn compiles_and_reports_what_it_skipped() {
        let f = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        })))
        .expect("compiles");
        assert_eq!(
            f.rules, 3,
            "mkdir, mkdirat, personality; getpid repeats the default"
        );
        assert_eq!(f.skipped, vec!["no_such_call".to_string()]);
        assert!(!f.uses_notify());
        let e = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .err()
        .expect("notify needs a listener");
        assert!(e.to_string().contains("listenerPath"), "{e}");
    }

    /// Runs the few classic-BPF instructions the stub uses (and a final RET) on one syscall.
    fn run(prog: &[sys::SockFilter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            let jump = |taken: bool| pc + 1 + usize::from(if taken { i.jt } else { i.jf });
            pc = match i.code {
                0x20 => {
                    a = if i.k == 4 { arch } else { nr };
                    pc + 1
                }
                0x15 => jump(a == i.k),
                0x45 => jump(a & i.k != 0),
                0x25 => jump(a > i.k),
                0x06 => return i.k,
                other => panic!("opcode {other:#x}"),
            };
        }
    }

    #[test]
    fn syscalls_newer_than_the_profile_get_enosys() {
        const ALLOW: u32 = 0x7fff_0000;
        let filter = vec![sys::SockFilter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: ALLOW,
        }];
        let p = with_enosys_stub(AUDIT_ARCH_X86_64, 453, filter);
        let enosys = 0x0005_0000 | libc::ENOSYS as u32;
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 1000), enosys);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 454), enosys);
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, 453),
            ALLOW,
            "the newest the profile knows"
        );
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0), ALLOW);
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1000),
            ALLOW,
            "x32"
        );
        assert_eq!(
            run(&p, 0x4000_0003, 1000),
            ALLOW,
            "i386 is left to the filter"
        );
    }

    #[test]
    fn the_stub_is_only_for_a_default_that_refuses() {
        let profile = |default: &str| -> LinuxSeccomp {
            serde_json::from_value(serde_json::json!({
                "defaultAction": default,
                "syscalls": [{"names": ["read", "write", "getpid"], "action": "SCMP_ACT_ALLOW"}]
            }))
            .expect("valid profile")
        };
        let f = compile(&profile("SCMP_ACT_ERRNO")).expect("compiles");
        let newest = ["read", "write", "getpid"]
            .iter()
            .map(|n| i32::from(ScmpSyscall::from_name(n).expect("known")) as u32)
            .max();
        assert_eq!(f.enosys_above, newest);
        let f = compile(&profile("SCMP_ACT_LOG")).expect("compiles");
        assert_eq!(f.enosys_above, None);
    }
}
