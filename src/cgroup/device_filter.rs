//! The device cgroup of cgroup v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the
//! container's cgroup, that the kernel runs on every open and mknod of a device node.
//!
//! The rules are `linux.resources.devices`, then the default allow-list (as runc appends it),
//! then an allow rule for each `linux.devices` entry; a later rule wins over an earlier one, and
//! anything no rule matches is denied. The program checks the rules from the last to the first
//! and returns at the first match.

use anyhow::Result;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

/// One rule: type ('a' all, 'b', 'c'), major/minor (None = any), access bits, allow/deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) kind: char,
    pub(crate) major: Option<u32>,
    pub(crate) minor: Option<u32>,
    /// BPF_DEVCG_ACC_* bits: mknod 1, read 2, write 4.
    pub(crate) access: u32,
    pub(crate) allow: bool,
}

const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// r, w, m; any other letter is skipped with a trace warning, as runc ignores it (managers
/// send "rwa" and the like).
fn access_bits(s: &str) -> Result<u32> {
    let mut a = 0;
    for ch in s.chars() {
        a |= match ch {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => {
                crate::trace::moment("warning", || {
                    format!("linux.resources.devices access {s:?}: letter {other:?} ignored (r, w, m mean something)")
                });
                0
            }
        };
    }
    Ok(a)
}

impl Rule {
    fn allow(kind: char, major: Option<u32>, minor: Option<u32>, access: &str) -> Rule {
        Rule {
            kind,
            major,
            minor,
            access: access_bits(access).unwrap_or(7),
            allow: true,
        }
    }
}

/// The devices every container may use (runc's list): mknod of any node, the standard
/// character devices, ptys, and /dev/net/tun.
pub(crate) fn default_rules() -> Vec<Rule> {
    vec![
        Rule::allow('c', None, None, "m"),
        Rule::allow('b', None, None, "m"),
        Rule::allow('c', Some(1), Some(3), "rwm"),
        Rule::allow('c', Some(1), Some(5), "rwm"),
        Rule::allow('c', Some(1), Some(7), "rwm"),
        Rule::allow('c', Some(1), Some(8), "rwm"),
        Rule::allow('c', Some(1), Some(9), "rwm"),
        Rule::allow('c', Some(5), Some(0), "rwm"),
        Rule::allow('c', Some(5), Some(1), "rwm"),
        Rule::allow('c', Some(5), Some(2), "rwm"),
        Rule::allow('c', Some(136), None, "rwm"),
        Rule::allow('c', Some(10), Some(200), "rwm"),
    ]
}

/// The full rule list for a container.
pub(crate) fn rules(cgroup: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for d in cgroup {
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => 'a',
            Some(LinuxDeviceType::B) => 'b',
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => 'c',
            Some(LinuxDeviceType::P) => continue, // FIFOs are not devices to the kernel's filter
        };
        out.push(Rule {
            kind,
            major: d.major().filter(|m| *m >= 0).map(|m| m as u32),
            minor: d.minor().filter(|m| *m >= 0).map(|m| m as u32),
            access: access_bits(d.access().as_deref().unwrap_or("rwm"))?,
            allow: d.allow(),
        });
    }
    out.extend(default_rules());
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            _ => continue,
        };
        out.push(Rule::allow(
            kind,
            Some(d.major() as u32),
            Some(d.minor() as u32),
            "rwm",
        ));
    }
    Ok(out)
}

/// One eBPF instruction (struct bpf_insn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    pub(crate) regs: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// Compiles the rules. Registers: r2 = type, r3 = access, r4 = major, r5 = minor (loaded from
/// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }), r1 scratch.
pub(crate) fn compile(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each check jumps to the end of this block when it does not match; the offset is
        // filled in once the block's length is known.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        match r.kind {
            'b' => block.push((insn(JNE_K, 2, 0, 0, DEV_BLOCK), true)),
            'c' => block.push((insn(JNE_K, 2, 0, 0, DEV_CHAR), true)),
            _ => {}
        }
        if r.access != 7 {
            // Every requested access bit must be in the rule: (access & rule) == access.
            block.push((insn(MOV32_X, 1, 3, 0, 0), false));
            block.push((insn(AND32_K, 1, 0, 0, r.access as i32), false));
            block.push((insn(JNE_X, 1, 3, 0, 0), true));
        }
        if let Some(m) = r.major {
            block.push((insn(JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(MOV64_K, 0, 0, 0, i32::from(r.allow)), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        let unconditional = !block.iter().any(|(_, jump)| *jump);
        for (i, (mut ins, jump)) in block.into_iter().enumerate() {
            if jump {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
        if unconditional {
            // A rule that matches everything ends the program: the verifier refuses
            // unreachable instructions, so nothing may follow it.
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Loads the program and attaches it to the cgroup (an O_RDONLY directory descriptor). When
/// the cgroup already has onggi's filter (an `update`), the new one replaces it atomically.
/// The program is taken from, or kept in, `pins` (src/cgroup/device_pins.rs) when given.
pub(crate) fn attach(
    cgroup: std::os::fd::BorrowedFd<'_>,
    prog: &[Insn],
    pins: Option<&std::path::Path>,
    c: &mut crate::trace::Calls,
) -> Result<()> {
    use anyhow::Context;
    let raw: Vec<[u8; 8]> = prog
        .iter()
        .map(|i| {
            let mut b = [0u8; 8];
            b[0] = i.code;
            b[1] = i.regs;
            b[2..4].copy_from_slice(&i.off.to_le_bytes());
            b[4..8].copy_from_slice(&i.imm.to_le_bytes());
            b
        })
        .collect();
    let fd = super::device_pins::load(&raw, pins, c)?;
    let old = crate::sys::bpf_attached_device_programs(cgroup)
        .context("cannot query the cgroup's device programs")?;
    if old.len() > 1 {
        anyhow::bail!(
            "the cgroup has {} device programs attached; onggi manages exactly one",
            old.len()
        );
    }
    let replace = old.first().map(std::os::fd::AsFd::as_fd);
    crate::sys::bpf_attach_device_program(cgroup, std::os::fd::AsFd::as_fd(&fd), replace)
        .context("cannot attach the device eBPF program to the cgroup")
}

/// The name onggi loads its device programs with (how `delete` tells its own from others').
pub(crate) const PROGRAM_NAME: &str = "onggi_device";

/// Detaches onggi's device programs from a cgroup that onggi did not create (and so does not
/// remove): a container created into an existing cgroup leaves no filter behind.
pub(crate) fn detach_ours(cgroup: &std::path::Path) -> Result<usize> {
    use anyhow::Context;
    use std::os::fd::AsFd;
    let dir = match std::fs::File::open(cgroup) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", cgroup.display())),
    };
    let progs = crate::sys::bpf_attached_device_programs(dir.as_fd())
        .context("cannot query the cgroup's device programs")?;
    let mut n = 0;
    for p in progs {
        if crate::sys::bpf_prog_name(p.as_fd()).is_ok_and(|name| name == PROGRAM_NAME) {
            crate::sys::bpf_detach_device_program(dir.as_fd(), p.as_fd())
                .context("cannot detach onggi's device program")?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
/// Runs a compiled program on one access (a tiny interpreter for the instructions `compile`
/// emits), so the rule semantics are unit-tested without the kernel.
pub(crate) fn evaluate(prog: &[Insn], kind: i32, access: u32, major: u32, minor: u32) -> bool {
    let ctx = [((access << 16) | kind as u32), major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    while pc < prog.len() {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDX_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
            AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
            RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
            MOV32_X => r[dst] = r[src] as u32 as u64,
            MOV64_K => r[dst] = i.imm as i64 as u64,
            JNE_K if r[dst] != i.imm as u32 as u64 => pc += i.off as usize,
            JNE_X if r[dst] != r[src] => pc += i.off as usize,
            JNE_K | JNE_X => {}
            EXIT => return r[0] == 1,
            _ => unreachable!("compile emits only these"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cg(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).expect("parses")
    }

    #[test]
    fn unknown_access_letters_are_ignored_as_runc_does() {
        assert_eq!(access_bits("rwa").expect("ignored"), ACC_READ | ACC_WRITE);
        assert_eq!(access_bits("m").expect("valid"), ACC_MKNOD);
    }

    #[test]
    fn deny_all_then_defaults() {
        let p = compile(
            &rules(
                &cg(serde_json::json!([{"allow": false, "access": "rwm"}])),
                &[],
            )
            .expect("valid test input"),
        );
        assert!(
            evaluate(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3),
            "/dev/null"
        );
        assert!(evaluate(&p, DEV_CHAR, ACC_READ, 136, 7), "/dev/pts/7");
        assert!(
            evaluate(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            "mknod of any node"
        );
        assert!(!evaluate(&p, DEV_BLOCK, ACC_READ, 8, 0), "reading a disk");
        assert!(!evaluate(&p, DEV_CHAR, ACC_READ, 1, 4), "/dev/port");
    }

    #[test]
    fn later_rules_win_and_access_must_be_covered() {
        let rules = rules(
            &cg(serde_json::json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"},
                {"allow": true, "type": "c", "major": 1, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 4, "access": "rwm"}
            ])),
            &[],
        )
        .expect("valid test input");
        let p = compile(&rules);
        assert!(evaluate(&p, DEV_BLOCK, ACC_READ, 7, 0));
        assert!(
            !evaluate(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 7, 0),
            "write not granted"
        );
        assert!(evaluate(&p, DEV_CHAR, ACC_READ, 1, 11), "c 1:* allowed");
        assert!(
            !evaluate(&p, DEV_CHAR, ACC_READ, 1, 4),
            "the later deny of c 1:4 wins"
        );
    }

    #[test]
    fn no_rules_means_defaults_only_and_linux_devices_are_allowed() {
        let dev: Vec<LinuxDevice> = serde_json::from_value(
            serde_json::json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]),
        )
        .expect("valid test input");
        let p = compile(&rules(&[], &dev).expect("valid test input"));
        assert!(evaluate(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 10, 229));
        assert!(!evaluate(&p, DEV_CHAR, ACC_READ, 10, 228));
        let allow_all = compile(
            &rules(
                &cg(serde_json::json!([{"allow": true, "access": "rwm"}])),
                &[],
            )
            .expect("valid test input"),
        );
        assert!(evaluate(&allow_all, DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 0));
    }

    /// Every instruction is reachable (the kernel's verifier rejects the program otherwise).
    fn all_reachable(p: &[Insn]) -> bool {
        let mut seen = vec![false; p.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= p.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            match p[pc].code {
                EXIT => {}
                JNE_K | JNE_X => todo.extend([pc + 1, pc + 1 + p[pc].off as usize]),
                _ => todo.push(pc + 1),
            }
        }
        seen.iter().all(|s| *s)
    }

    #[test]
    fn no_unreachable_instructions() {
        for rules_json in [
            serde_json::json!([]),
            serde_json::json!([{"allow": false, "access": "rwm"}]),
            serde_json::json!([{"allow": true, "access": "rwm"}, {"allow": false, "type": "b", "access": "rwm"}]),
        ] {
            let p = compile(&rules(&cg(rules_json.clone()), &[]).expect("valid test input"));
            assert!(all_reachable(&p), "{rules_json}");
        }
    }
}
