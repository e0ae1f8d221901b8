//! Compiled seccomp filters, cached in the state root (`ROOT/@seccomp-cache`, a name no
//! container id can take): libseccomp needs ~0.5 ms to turn the podman/docker default profile
//! into BPF, on every create and exec, for the same few profiles.
//!
//! An entry is keyed by everything the BPF depends on: the profile as JSON, the libseccomp
//! version, the kernel (release and build) and onggi's own build (version, commit, and the
//! size, inode and mtime of its executable). The whole key is stored in
//! the entry and compared on every read, so a hash collision or a stale or damaged entry only
//! means compiling again. The cache is an optimisation: any failure to read or write it is
//! silent, and the filter is compiled as without it. Entries are written to a temporary name
//! and renamed, so a reader never sees half of one; more than [`MAX_ENTRIES`] files empty the
//! directory before the next write.

use anyhow::Result;
use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::seccomp::Filter;
use crate::sys::SockFilter;

/// The cache directory's name in the state root.
pub(crate) const DIR: &str = "@seccomp-cache";
/// More entries than this and the directory is emptied before the next write.
const MAX_ENTRIES: usize = 32;

/// What one cache file holds after its key: the file is the key's bytes, a NUL (which the key
/// cannot hold: its JSON escapes control characters), then this as JSON. A read compares the
/// key as bytes and parses only this.
#[derive(Serialize, Deserialize)]
struct Entry {
    rules: usize,
    skipped: Vec<String>,
    default: String,
    notify: bool,
    listener_metadata: Option<String>,
    flags: u32,
    enosys_above: Option<u32>,
    /// The instructions, each packed as code | jt << 16 | jf << 24 | k << 32.
    bpf: Vec<u64>,
}

/// The key of `spec`: everything its compiled BPF depends on.
pub(crate) fn key(spec: &LinuxSeccomp) -> Result<String> {
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let uts = nix::sys::utsname::uname()?;
    // This very build of onggi, not only its version: a rebuild with other compile logic and
    // the same commit (a working tree) must not take an older build's filters.
    let exe = std::fs::metadata("/proc/self/exe")?;
    Ok(format!(
        "onggi {} {} {}:{}:{}.{}; libseccomp {lib} api {}; kernel {} {} {}; {}",
        env!("CARGO_PKG_VERSION"),
        option_env!("ONGGI_COMMIT").unwrap_or("unknown"),
        exe.len(),
        exe.ino(),
        exe.mtime(),
        exe.mtime_nsec(),
        libseccomp::get_api(),
        uts.release().to_string_lossy(),
        uts.version().to_string_lossy(),
        uts.machine().to_string_lossy(),
        serde_json::to_string(spec)?
    ))
}

/// The cache file for `key` under `dir`.
pub(crate) fn path(dir: &Path, key: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    dir.join(format!("{:016x}.json", h.finish()))
}

/// The cached filter for `key`, if there is one that holds exactly this key.
pub(crate) fn load(file: &Path, key: &str) -> Option<Filter> {
    let bytes = std::fs::read(file).ok()?;
    let body = bytes.strip_prefix(key.as_bytes())?.strip_prefix(b"\0")?;
    let e: Entry = serde_json::from_slice(body).ok()?;
    Some(Filter {
        insns: e.bpf.iter().map(|&w| unpack(w)).collect(),
        rules: e.rules,
        skipped: e.skipped,
        default: e.default,
        notify: e.notify,
        listener_metadata: e.listener_metadata,
        flags: e.flags,
        enosys_above: e.enosys_above,
    })
}

/// Stores `f` under `key`; silent on failure (the next create compiles again).
pub(crate) fn store(file: &Path, key: &str, f: &Filter) {
    let _ = try_store(file, key, f);
}

fn try_store(file: &Path, key: &str, f: &Filter) -> Result<()> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e.into());
        }
    }
    if std::fs::read_dir(dir)?.count() >= MAX_ENTRIES {
        for e in std::fs::read_dir(dir)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let e = Entry {
        rules: f.rules,
        skipped: f.skipped.clone(),
        default: f.default.clone(),
        notify: f.notify,
        listener_metadata: f.listener_metadata.clone(),
        flags: f.flags,
        enosys_above: f.enosys_above,
        bpf: f.insns.iter().map(pack).collect(),
    };
    let mut bytes = Vec::from(key.as_bytes());
    bytes.push(0);
    serde_json::to_writer(&mut bytes, &e)?;
    crate::state::write_atomic(file, &bytes, 0o600)
}

fn pack(i: &SockFilter) -> u64 {
    u64::from(i.code) | u64::from(i.jt) << 16 | u64::from(i.jf) << 24 | u64::from(i.k) << 32
}

fn unpack(w: u64) -> SockFilter {
    SockFilter {
        code: w as u16,
        jt: (w >> 16) as u8,
        jf: (w >> 24) as u8,
        k: (w >> 32) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> Filter {
        Filter {
            insns: vec![
                SockFilter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 4,
                },
                SockFilter {
                    code: 0x15,
                    jt: 1,
                    jf: 255,
                    k: 0xC000_003E,
                },
                SockFilter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x7fff_0000,
                },
            ],
            rules: 3,
            skipped: vec!["nosuchcall".into()],
            default: "SCMP_ACT_ERRNO".into(),
            notify: false,
            listener_metadata: None,
            flags: 4,
            enosys_above: Some(450),
        }
    }

    #[test]
    fn an_entry_comes_back_only_for_its_own_key() {
        let dir = std::env::temp_dir().join(format!("onggi-sc-cache-{}", std::process::id()));
        let file = path(&dir, "key one");
        store(&file, "key one", &filter());
        let got = load(&file, "key one").expect("the entry just stored");
        assert_eq!(got.insns, filter().insns);
        assert_eq!((got.rules, got.flags, got.enosys_above), (3, 4, Some(450)));
        assert_eq!(got.skipped, ["nosuchcall"]);
        // The same file asked for with another key (a collision, a stale entry) is a miss, and
        // so is a key that only begins like the stored one.
        assert!(load(&file, "key two").is_none());
        assert!(load(&file, "key").is_none());
        assert!(load(&file, "key one and more").is_none());
        std::fs::write(&file, b"{not json").expect("damage the entry");
        assert!(
            load(&file, "key one").is_none(),
            "a damaged entry is a miss"
        );
        std::fs::remove_dir_all(&dir).expect("remove the test cache");
    }

    #[test]
    fn the_directory_is_emptied_when_full() {
        let dir = std::env::temp_dir().join(format!("onggi-sc-full-{}", std::process::id()));
        for i in 0..MAX_ENTRIES + 3 {
            let k = format!("key {i}");
            store(&path(&dir, &k), &k, &filter());
            assert!(
                std::fs::read_dir(&dir)
                    .expect("the cache directory")
                    .count()
                    <= MAX_ENTRIES
            );
        }
        std::fs::remove_dir_all(&dir).expect("remove the test cache");
    }
}
