//! How and where the container's process runs: `process.scheduler` (sched_setattr),
//! `process.ioPriority` (ioprio_set), `process.execCPUAffinity` (sched_setaffinity),
//! `linux.memoryPolicy` (set_mempolicy) and `linux.personality` (personality).
//!
//! Everything is converted and checked at create (or exec) time by [`Plan::new`], so a bad
//! value fails before anything exists, naming its field. The init (and an exec'd process)
//! applies the plan in the `scheduling` step, before the capability step drops what it needs
//! (CAP_SYS_NICE for real-time policies and negative nice values); all of it survives execve.
//! `execCPUAffinity.initial` is applied by onggi to itself just before clone3 (the child
//! inherits it); `final` by the child, which is already in the container's cgroup.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType,
    MemoryPolicyModeType, Process,
};

use crate::sys;
use crate::trace::Calls;

/// The checked, converted settings of one process.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) sched: Option<sys::SchedAttr>,
    /// `(class, level)` for ioprio_set.
    pub(crate) ioprio: Option<(u16, u16)>,
    pub(crate) initial_cpus: Option<Vec<usize>>,
    pub(crate) final_cpus: Option<Vec<usize>>,
    /// `(mode | flags, node list)` for set_mempolicy.
    pub(crate) mempolicy: Option<(i32, Vec<usize>)>,
    pub(crate) personality: Option<u64>,
}

impl Plan {
    /// Converts and checks the fields; every error names the field and the value.
    pub(crate) fn new(process: Option<&Process>, linux: Option<&Linux>) -> Result<Plan> {
        let mut plan = Plan::default();
        if let Some(p) = process {
            if let Some(s) = p.scheduler() {
                plan.sched = Some(sched_attr(s).context("config.json: process.scheduler")?);
            }
            if let Some(io) = p.io_priority() {
                let class = match io.class() {
                    IOPriorityClass::IoprioClassRt => 1,
                    IOPriorityClass::IoprioClassBe => 2,
                    IOPriorityClass::IoprioClassIdle => 3,
                };
                if !(0..=7).contains(&io.priority()) {
                    bail!(
                        "config.json: process.ioPriority.priority {} is outside 0..7",
                        io.priority()
                    );
                }
                plan.ioprio = Some((class, io.priority() as u16));
            }
            if let Some(a) = p.exec_cpu_affinity() {
                let list = |field: &str, v: &Option<String>| -> Result<Option<Vec<usize>>> {
                    v.as_deref()
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            cpu_list(s).with_context(|| {
                                format!("config.json: process.execCPUAffinity.{field} {s:?}")
                            })
                        })
                        .transpose()
                };
                plan.initial_cpus = list("initial", a.initial())?;
                plan.final_cpus = list("final", a.cpu_affinity_final())?;
            }
        }
        if let Some(l) = linux {
            if let Some(per) = l.personality() {
                if per.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                    bail!("config.json: linux.personality.flags {:?}: no flag is supported (the spec defines none)", per.flags().as_ref().unwrap_or(&Vec::new()));
                }
                plan.personality = Some(match per.domain() {
                    oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
                    oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
                });
            }
            if let Some(m) = l.memory_policy() {
                plan.mempolicy = Some(
                    mempolicy(m.mode(), m.nodes().as_deref(), m.flags().as_deref())
                        .context("config.json: linux.memoryPolicy")?,
                );
            }
        }
        Ok(plan)
    }

    /// onggi, just before clone3: `execCPUAffinity.initial` (inherited by the child).
    pub(crate) fn apply_initial(&self, c: &mut Calls) -> Result<()> {
        if let Some(cpus) = &self.initial_cpus {
            sys::set_affinity(cpus).context("sched_setaffinity(execCPUAffinity.initial)")?;
            c.note(|| format!("sched_setaffinity(0, {cpus:?})"));
        }
        Ok(())
    }

    /// The container's process, in its cgroup, before the capability step.
    pub(crate) fn apply(&self, c: &mut Calls) -> Result<()> {
        if let Some(p) = self.personality {
            sys::personality(p).with_context(|| format!("personality({p:#x})"))?;
            c.note(|| {
                format!(
                    "personality({})",
                    if p == 8 { "PER_LINUX32" } else { "PER_LINUX" }
                )
            });
        }
        if let Some((mode, nodes)) = &self.mempolicy {
            sys::set_mempolicy(*mode, nodes)
                .with_context(|| format!("set_mempolicy({mode:#x}, {nodes:?})"))?;
            c.note(|| format!("set_mempolicy({mode:#x}, nodes {nodes:?})"));
        }
        if let Some(attr) = &self.sched {
            sys::sched_setattr(attr).with_context(|| format!("sched_setattr({attr:?})"))?;
            c.note(|| format!("sched_setattr({attr:?})"));
        }
        if let Some((class, level)) = self.ioprio {
            sys::ioprio_set(class, level)
                .with_context(|| format!("ioprio_set(class {class}, level {level})"))?;
            c.note(|| format!("ioprio_set(IOPRIO_WHO_PROCESS, 0, class {class} level {level})"));
        }
        if let Some(cpus) = &self.final_cpus {
            sys::set_affinity(cpus).context("sched_setaffinity(execCPUAffinity.final)")?;
            c.note(|| format!("sched_setaffinity(0, {cpus:?})"));
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

fn sched_attr(s: &oci_spec::runtime::Scheduler) -> Result<sys::SchedAttr> {
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => bail!("policy SCHED_ISO does not exist in Linux"),
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("nice {nice} is outside -20..19");
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    if realtime && !(1..=99).contains(&priority) {
        bail!("priority {priority}: SCHED_FIFO and SCHED_RR need 1..99");
    }
    if !realtime && priority != 0 {
        bail!("priority {priority}: only SCHED_FIFO and SCHED_RR take a priority (use nice)");
    }
    let deadline = matches!(s.policy(), P::SchedDeadline);
    let (runtime, dl, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if !deadline && (runtime | dl | period) != 0 {
        bail!("runtime/deadline/period are for SCHED_DEADLINE only");
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(sys::SchedAttr {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline: dl,
        period,
    })
}

fn mempolicy(
    mode: MemoryPolicyModeType,
    nodes: Option<&str>,
    flags: Option<&[MemoryPolicyFlagType]>,
) -> Result<(i32, Vec<usize>)> {
    use MemoryPolicyModeType as M;
    let (m, takes_nodes) = match mode {
        M::MpolDefault => (0, false),
        M::MpolPreferred => (1, true),
        M::MpolBind => (2, true),
        M::MpolInterleave => (3, true),
        M::MpolLocal => (4, false),
        M::MpolPreferredMany => (5, true),
        M::MpolWeightedInterleave => (6, true),
    };
    let nodes = match nodes.filter(|n| !n.is_empty()) {
        Some(n) if !takes_nodes => bail!("mode {mode} takes no nodes (got {n:?})"),
        Some(n) => cpu_list(n).with_context(|| format!("nodes {n:?}"))?,
        None if takes_nodes => bail!("mode {mode} needs nodes"),
        None => Vec::new(),
    };
    let mut f = 0;
    for flag in flags.unwrap_or_default() {
        f |= match flag {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        };
    }
    Ok((m | f, nodes))
}

/// A kernel cpu/node list: `0-3,7,9-10`.
pub(crate) fn cpu_list(s: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (
            a.trim()
                .parse()
                .with_context(|| format!("{part:?} is not N or N-M"))?,
            b.trim()
                .parse()
                .with_context(|| format!("{part:?} is not N or N-M"))?,
        );
        if a > b || b >= 1024 {
            bail!("{part:?} is not an increasing range below 1024");
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(v: serde_json::Value) -> Result<Plan> {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v)?;
        Plan::new(spec.process().as_ref(), spec.linux().as_ref())
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"ociVersion": "1.2.1", "root": {"path": "r"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "linux": {}})
    }

    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(
            cpu_list("0-3,7").expect("test fixture is valid"),
            vec![0, 1, 2, 3, 7]
        );
        assert_eq!(cpu_list("1").expect("test fixture is valid"), vec![1]);
        assert!(cpu_list("3-1").is_err());
        assert!(cpu_list("a").is_err());
        assert!(cpu_list("5000").is_err());
    }

    #[test]
    fn scheduler_converts_and_checks() {
        let mut v = base();
        v["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_RESET_ON_FORK"]});
        let s = plan(v)
            .expect("test fixture is valid")
            .sched
            .expect("test fixture is valid");
        assert_eq!((s.policy, s.nice, s.flags), (3, 5, 1));
        let mut v = base();
        v["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_FIFO"});
        assert!(format!("{:#}", plan(v).unwrap_err()).contains("process.scheduler"));
        let mut v = base();
        v["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_OTHER", "nice": 40});
        assert!(format!("{:#}", plan(v).unwrap_err()).contains("nice 40"));
    }

    #[test]
    fn io_priority_memory_policy_personality() {
        let mut v = base();
        v["process"]["ioPriority"] =
            serde_json::json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7});
        v["linux"]["memoryPolicy"] = serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]});
        v["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"});
        let p = plan(v).expect("test fixture is valid");
        assert_eq!(p.ioprio, Some((3, 7)));
        assert_eq!(p.mempolicy, Some((3 | 1 << 15, vec![0])));
        assert_eq!(p.personality, Some(8));
        let mut v = base();
        v["process"]["ioPriority"] = serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
        assert!(plan(v)
            .unwrap_err()
            .to_string()
            .contains("ioPriority.priority 9"));
        let mut v = base();
        v["linux"]["memoryPolicy"] = serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"});
        assert!(format!("{:#}", plan(v).unwrap_err()).contains("takes no nodes"));
        let mut v = base();
        v["linux"]["personality"] = serde_json::json!({"domain": "LINUX", "flags": ["X"]});
        assert!(plan(v)
            .unwrap_err()
            .to_string()
            .contains("personality.flags"));
    }
}
