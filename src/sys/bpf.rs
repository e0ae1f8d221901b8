//! bpf(2) for the cgroup device filter: load, attach, query, detach, and a program's name.

use super::{c_string_lossy, check, owned};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// The part of `union bpf_attr` BPF_PROG_LOAD reads (the rest stays zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u64; 8],
}

/// The part of `union bpf_attr` BPF_PROG_ATTACH reads.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _rest: [u32; 11],
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The part of `union bpf_attr` BPF_OBJ_GET_INFO_BY_FD reads.
#[repr(C)]
#[derive(Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
    _rest: [u32; 12],
}

/// The start of `struct bpf_prog_info`, up to its name.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// The name a BPF program was loaded with.
pub(crate) fn bpf_prog_name(prog: BorrowedFd<'_>) -> io::Result<String> {
    Ok(c_string_lossy(&prog_info(prog)?.name))
}

fn prog_info(prog: BorrowedFd<'_>) -> io::Result<ProgInfoHead> {
    let mut info = ProgInfoHead::default();
    let attr = InfoByFdAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as u64,
        ..Default::default()
    };
    // SAFETY: `attr` and the `info` buffer it points to (of the size it gives) outlive the
    // call; the kernel writes at most info_len bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoByFdAttr,
            std::mem::size_of::<InfoByFdAttr>(),
        )
    };
    check(ret)?;
    Ok(info)
}

/// Detaches the device program `prog` from a cgroup.
pub(crate) fn bpf_detach_device_program(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
) -> io::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: `attr` is valid for the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_DETACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    check(ret).map(|_| ())
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _rest: [u32; 11],
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    _rest: [u32; 13],
}

/// The device programs attached directly to a cgroup, as descriptors.
pub fn bpf_attached_device_programs(cgroup: BorrowedFd<'_>) -> io::Result<Vec<OwnedFd>> {
    let mut ids = [0u32; 64];
    let mut attr = ProgQueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: `attr` and the `ids` buffer it points to outlive the call; the kernel writes at
    // most prog_cnt ids and updates prog_cnt.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQueryAttr,
            std::mem::size_of::<ProgQueryAttr>(),
        )
    };
    check(ret)?;
    let n = (attr.prog_cnt as usize).min(ids.len());
    ids[..n]
        .iter()
        .map(|id| {
            let a = GetFdByIdAttr {
                id: *id,
                ..Default::default()
            };
            // SAFETY: `a` is valid for the call and its size is passed.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_PROG_GET_FD_BY_ID,
                    &a as *const GetFdByIdAttr,
                    std::mem::size_of::<GetFdByIdAttr>(),
                )
            };
            check(r).map(owned)
        })
        .collect()
}

/// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program made of raw `struct bpf_insn` (8 bytes each).
/// The verifier's log is asked for only when a first load fails (it is costly to produce),
/// and then comes back in the error.
pub(crate) fn bpf_load_device_program(insns: &[[u8; 8]]) -> io::Result<OwnedFd> {
    bpf_prog_load(insns, false).or_else(|_| bpf_prog_load(insns, true))
}

fn bpf_prog_load(insns: &[[u8; 8]], with_log: bool) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; if with_log { 64 * 1024 } else { 0 }];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"onggi_device");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(with_log),
        log_size: log.len() as u32,
        log_buf: if with_log { log.as_mut_ptr() as u64 } else { 0 },
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: `attr` and every buffer it points to (instructions, license, log) outlive the
    // call; the size passed is the struct's size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    check(ret).map(owned).map_err(|e| {
        let text = c_string_lossy(&log);
        if text.is_empty() {
            e
        } else {
            io::Error::new(e.kind(), format!("{e}; verifier: {}", text.trim_end()))
        }
    })
}

/// Attaches a device program to a cgroup (BPF_F_ALLOW_MULTI: programs of parent cgroups keep
/// applying too). With `replace`, the given program is swapped for the new one atomically
/// (BPF_F_REPLACE): there is no moment without a filter.
pub(crate) fn bpf_attach_device_program(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    replace: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI | if replace.is_some() { BPF_F_REPLACE } else { 0 },
        replace_bpf_fd: replace.map_or(0, |r| r.as_raw_fd() as u32),
        ..Default::default()
    };
    // SAFETY: `attr` is valid for the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    check(ret).map(|_| ())
}

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;

/// The part of `union bpf_attr` BPF_OBJ_PIN and BPF_OBJ_GET read.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    _rest: [u32; 12],
}

fn bpf_obj(
    cmd: libc::c_long,
    path: &std::path::Path,
    fd: u32,
    flags: u32,
) -> io::Result<libc::c_long> {
    let c = super::cstr(path)?;
    let attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd,
        file_flags: flags,
        ..Default::default()
    };
    // SAFETY: `attr` and the path string it points to outlive the call; its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &attr as *const ObjAttr,
            std::mem::size_of::<ObjAttr>(),
        )
    };
    check(ret)
}

/// BPF_OBJ_PIN: `prog` pinned at `path` in a bpf filesystem.
pub(crate) fn bpf_obj_pin(prog: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    bpf_obj(BPF_OBJ_PIN, path, prog.as_raw_fd() as u32, 0).map(|_| ())
}

/// BPF_OBJ_GET: a descriptor (close-on-exec, as the kernel makes it) of the object pinned at
/// `path`.
pub(crate) fn bpf_obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    bpf_obj(BPF_OBJ_GET, path, 0, 0).map(owned)
}

/// The type of a BPF program (15: a cgroup device program) and the name it was loaded with.
pub(crate) fn bpf_prog_type_and_name(prog: BorrowedFd<'_>) -> io::Result<(u32, String)> {
    let info = prog_info(prog)?;
    Ok((info.prog_type, c_string_lossy(&info.name)))
}
