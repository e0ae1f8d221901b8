//! Loaded device programs kept for the next container: a bpf filesystem at
//! `ROOT/@device-programs` holds each program onggi loaded, pinned under a name made from its
//! instructions (BPF_OBJ_PIN), so that a container with the same device rules gets the loaded
//! program back (BPF_OBJ_GET, microseconds) instead of loading it again (BPF_PROG_LOAD, whose
//! verifier costs ~0.35 ms here, more when 20 containers start at once). The rules of a
//! container rarely differ from the default, so a state root keeps a few programs at most; past
//! 64, a new program is loaded and not pinned.
//!
//! A pin is used only when it is a cgroup device program loaded by onggi (its type and name are
//! checked); the directory is root's alone (mode 0700). To remove a whole state root, first
//! `umount ROOT/@device-programs`.

use anyhow::{Context, Result};
use std::hash::{Hash, Hasher};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::sys;
use crate::trace::Calls;

/// The pins' directory in a state root.
pub(crate) const DIR: &str = "@device-programs";
const MAX_PINS: usize = 64;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;

/// The device program of instructions `raw`: pinned under `dir` already, or loaded now (and
/// pinned there). Without `dir`, loaded.
pub(crate) fn load(raw: &[[u8; 8]], dir: Option<&Path>, c: &mut Calls) -> Result<OwnedFd> {
    let Some(dir) = dir else {
        return fresh(raw, c);
    };
    let pin = dir.join(key(raw));
    if let Some(fd) = pinned(&pin) {
        c.note(|| format!("bpf(BPF_OBJ_GET, {}) (loaded before)", pin.display()));
        return Ok(fd);
    }
    let fd = fresh(raw, c)?;
    match keep(dir, &pin, &fd) {
        Ok(true) => c.note(|| format!("bpf(BPF_OBJ_PIN, {})", pin.display())),
        Ok(false) => c.note(|| format!("not pinned: {MAX_PINS} programs are pinned already")),
        Err(e) => c.note(|| format!("not pinned ({e:#})")),
    }
    Ok(fd)
}

fn fresh(raw: &[[u8; 8]], c: &mut Calls) -> Result<OwnedFd> {
    let fd = sys::bpf_load_device_program(raw).context("cannot load the device eBPF program")?;
    c.note(|| format!("bpf(BPF_PROG_LOAD, CGROUP_DEVICE, {} insns)", raw.len()));
    Ok(fd)
}

/// The program pinned at `pin`, if it is an onggi device program.
fn pinned(pin: &Path) -> Option<OwnedFd> {
    let fd = sys::bpf_obj_get(pin).ok()?;
    let (kind, name) = sys::bpf_prog_type_and_name(fd.as_fd()).ok()?;
    (kind == BPF_PROG_TYPE_CGROUP_DEVICE && name == super::device_filter::PROGRAM_NAME)
        .then_some(fd)
}

/// The pin's name: two 64-bit hashes of the instructions and their count.
fn key(raw: &[[u8; 8]]) -> String {
    let hash = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        raw.hash(&mut h);
        h.finish()
    };
    format!("dev-{}-{:016x}{:016x}", raw.len(), hash(0), hash(1))
}

/// Pins `fd` at `pin`, with the bpf filesystem mounted at `dir` first if it is not. False when
/// the directory is full. A pin another onggi made meanwhile is as good.
fn keep(dir: &Path, pin: &Path, fd: &OwnedFd) -> Result<bool> {
    mount_bpffs(dir)?;
    let pins = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("dev-"))
        .count();
    if pins >= MAX_PINS {
        return Ok(false);
    }
    match sys::bpf_obj_pin(fd.as_fd(), pin) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(true),
        r => r.map(|_| true).context("BPF_OBJ_PIN"),
    }
}

/// A bpf filesystem (mode 0700) at `dir`, mounted under a lock unless it is one already.
fn mount_bpffs(dir: &Path) -> Result<()> {
    let is_bpffs = || {
        sys::openat2(sys::at_fdcwd(), dir, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            .and_then(|fd| sys::fs_magic(fd.as_fd()))
            .is_ok_and(|m| m == BPF_FS_MAGIC)
    };
    if is_bpffs() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot make {}", dir.display()))?;
    let lock = sys::openat2(
        sys::at_fdcwd(),
        dir,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
    )?;
    sys::flock_exclusive(lock.as_fd())?;
    if is_bpffs() {
        return Ok(());
    }
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    sys::mount(
        Some(Path::new("bpf")),
        dir,
        Some("bpf"),
        flags,
        Some("mode=0700"),
    )
    .with_context(|| format!("cannot mount a bpf filesystem at {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_name_follows_the_instructions() {
        let a = [[1u8, 0, 0, 0, 0, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]];
        let mut b = a;
        b[0][4] = 1;
        assert_eq!(key(&a), key(&a));
        assert_ne!(key(&a), key(&b));
        assert!(key(&a).starts_with("dev-2-") && key(&a).len() < 64);
    }
}
