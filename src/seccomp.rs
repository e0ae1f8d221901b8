//! `linux.seccomp`: the syscall filter, compiled with libseccomp at create and loaded by the
//! init before it reports Ready (by an exec'd process, as its last step before execve).
//!
//! ```text
//!   create / exec, before the clone            init: end of setup, before Ready; exec: at execve
//!   ─────────────────────────────────────      ────────────────────────────────────────
//!   compile: default action, archs, flags,     capabilities already final, except that
//!   one rule per syscall name (per argument    CAP_SYS_ADMIN is still held when the filter
//!   index when several conditions test the     needs it (no no_new_privs asked for) —
//!   same one); unknown names skipped           seccomp(SECCOMP_SET_MODE_FILTER), then drop
//!   (debug note); unknown action/op/arch/flag  it (capset), then execve
//!   is an error at create                      SCMP_ACT_NOTIFY: the listener fd is sent to
//!                                              listenerPath with the container state
//! ```
//!
//! Loading needs CAP_SYS_ADMIN (in the container's user namespace) or no_new_privs. runc loads
//! before dropping capabilities when noNewPrivileges is false; onggi loads after the capability
//! step and keeps CAP_SYS_ADMIN effective until just after the load. The init loads before
//! Ready, not after `start`: generating the BPF takes milliseconds that must not delay the user
//! process (a signal sent right after `start` would find no handler yet). Only a process that never had it (a non-root user with
//! no capabilities configured) gets no_new_privs, and the trace says so.

use anyhow::{anyhow, bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::str::FromStr;

use crate::{sys, trace};

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

/// A compiled filter, ready to load.
pub(crate) struct Filter {
    ctx: ScmpFilterContext,
    /// Rules added, and syscall names this kernel/arch does not know (skipped).
    rules: usize,
    skipped: Vec<String>,
    default: String,
    notify: bool,
    listener_metadata: Option<String>,
}

/// The compile step, at create (or exec) time: every error names what is wrong.
pub(crate) fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default =
        action(s.default_action(), s.default_errno_ret()).context("linux.seccomp.defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).context("seccomp_init")?;
    // onggi decides about no_new_privs itself (see the module comment).
    ctx.set_ctl_nnp(false)
        .context("seccomp: SCMP_FLTATR_CTL_NNP")?;
    for a in s.architectures().iter().flatten() {
        let name = spec_name(a);
        let arch = ScmpArch::from_str(&name).map_err(|_| {
            anyhow!("linux.seccomp.architectures: {name} is not known to libseccomp")
        })?;
        ctx.add_arch(arch)
            .with_context(|| format!("linux.seccomp.architectures: cannot add {name}"))?;
    }
    for f in s.flags().iter().flatten() {
        let name = spec_name(f);
        let r = match name.as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => ctx.set_ctl_log(true),
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => ctx.set_ctl_ssb(true),
            "SECCOMP_FILTER_FLAG_TSYNC" => ctx.set_ctl_tsync(true),
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => ctx.set_ctl_waitkill(true),
            _ => bail!("linux.seccomp.flags: unknown flag {name}"),
        };
        r.map_err(|e| anyhow!("linux.seccomp.flags: {name} is not supported here ({e})"))?;
    }
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
    Ok(Filter {
        ctx,
        rules,
        skipped,
        default: spec_name(&s.default_action()),
        notify,
        listener_metadata: s.listener_metadata().clone(),
    })
}

impl Filter {
    pub(crate) fn uses_notify(&self) -> bool {
        self.notify
    }

    /// Loads the filter into the calling process (see the module comment for when). Returns the
    /// notification fd when the filter has SCMP_ACT_NOTIFY rules.
    pub(crate) fn load(&self, c: &mut trace::Calls) -> Result<Option<OwnedFd>> {
        self.ctx
            .load()
            .map_err(|e| anyhow!("cannot load the seccomp filter: {e}"))?;
        c.note(|| {
            let mut s = format!(
                "seccomp(SECCOMP_SET_MODE_FILTER): {} rules, default {}",
                self.rules, self.default
            );
            if !self.skipped.is_empty() {
                s += &format!(
                    "; skipped (unknown to this kernel/arch): {}",
                    self.skipped.join(",")
                );
            }
            s
        });
        if !self.notify {
            return Ok(None);
        }
        let fd = sys::seccomp_notify_fd(&self.ctx)
            .map_err(|e| anyhow!("seccomp: no notification fd: {e}"))?;
        Ok(Some(fd))
    }
}

/// For create and exec, before the clone: the compiled filter of `linux.seccomp` (if any) and
/// the connected listenerPath socket (when it uses SCMP_ACT_NOTIFY).
pub(crate) fn prepare(spec: Option<&LinuxSeccomp>) -> Result<(Option<Filter>, Option<UnixStream>)> {
    let Some(s) = spec else {
        return Ok((None, None));
    };
    let filter = trace::step("seccomp_compile", |c| {
        let f = compile(s)?;
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

impl Filter {
    pub(crate) fn metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
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
}
