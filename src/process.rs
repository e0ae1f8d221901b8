//! The process half of becoming the container's process, shared by the init and by exec's
//! joining process: rlimits, scheduling, LSM labels, stdio ownership, capabilities and the user
//! switch, the working directory (checked to be inside the root), the environment and PATH
//! lookup, no_new_privs; then, at the very end, the seccomp filter and execve.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{PosixRlimitType, Process};
use std::ffi::CString;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::capabilities::{self, CapSets};
use crate::plan::ProcessPlan;
use crate::spec::DEFAULT_PATH;
use crate::{sys, trace};

/// Everything execve needs, prepared before the init reports Ready (or exec's process execs).
pub(crate) struct Prepared {
    /// The pty slave when a terminal is attached at execve (exec; the init attaches its own
    /// during setup).
    pub(crate) console: Option<crate::console::Slave>,
    /// The configured capability sets, when CAP_SYS_ADMIN is still held for the seccomp load
    /// and must be dropped right after it.
    final_caps: Option<CapSets>,
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    umask: u32,
}

/// The process half of the setup for `p`. After it only the seccomp load and execve are left.
/// `seccomp`: a filter will be loaded at execve (CAP_SYS_ADMIN is kept until then when the
/// process would not have it and no_new_privs is not asked for). `procfs`: the host's /proc,
/// for the LSM labels and the user switch.
pub(crate) fn prepare(p: &ProcessPlan, seccomp: bool, procfs: BorrowedFd<'_>) -> Result<Prepared> {
    let process = &p.process;
    trace::step("rlimits", |c| set_rlimits(process, c))?;
    if !p.scheduling.is_empty() {
        // Before the capability step: real-time policies and negative nice need CAP_SYS_NICE.
        trace::step("scheduling", |c| p.scheduling.apply(c))?;
    }
    if !p.labels.is_empty() {
        // While still root: the /proc files of a non-dumpable process belong to root.
        trace::step("lsm_labels", |c| p.labels.apply(procfs, c))?;
    }
    let entered_as_root = nix::unistd::chdir(process.cwd()).is_ok();
    let uid = process.user().uid();
    trace::step("stdio_owner", |c| {
        let fds = give_stdio_to(uid);
        c.note(|| format!("fchown({fds:?}, {uid}, -1)"));
        anyhow::Ok(())
    })?;
    let hold = seccomp
        && !process.no_new_privileges().unwrap_or(false)
        && p.caps.as_ref().is_some_and(|s| !s.has_sys_admin());
    become_user(p, hold, procfs)?;
    trace::step("chdir", |c| enter_cwd(process.cwd(), entered_as_root, c))?;
    let env = environment(process);
    let path = trace::step("find_executable", |c| {
        let args = process.args().as_deref().unwrap_or(&[]);
        let found = find_executable(&args[0], path_var(&env))?;
        c.note(|| format!("{} -> {}", args[0], found.display()));
        Ok::<_, anyhow::Error>(found)
    })?;
    if process.no_new_privileges().unwrap_or(false) {
        trace::step("no_new_privs", |c| {
            sys::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
            c.note(|| "prctl(PR_SET_NO_NEW_PRIVS, 1)".into());
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let cs = |s: &str| CString::new(s).map_err(|_| anyhow!("{s:?} contains a NUL byte"));
    Ok(Prepared {
        console: None,
        final_caps: if hold { p.caps.clone() } else { None },
        path: CString::new(path.as_os_str().as_bytes())
            .map_err(|_| anyhow!("path has a NUL byte"))?,
        args: process
            .args()
            .iter()
            .flatten()
            .map(|a| cs(a))
            .collect::<Result<_>>()?,
        env: env.iter().map(|e| cs(e)).collect::<Result<_>>()?,
        umask: process.user().umask().unwrap_or(0o022),
    })
}

/// The bounding set, the user switch and the capability sets, in that order. `hold`: keep
/// CAP_SYS_ADMIN for the seccomp load (dropped right after it).
fn become_user(p: &ProcessPlan, hold: bool, procfs: BorrowedFd<'_>) -> Result<()> {
    if let Some(sets) = &p.caps {
        sets.check_grantable()?;
        trace::step("capabilities_bounding", |c| {
            capabilities::drop_bounding(sets, c)
        })?;
    }
    trace::step("user", |c| {
        capabilities::switch_user(p.process.user(), p.caps.is_some(), procfs, c)
    })?;
    if let Some(sets) = &p.caps {
        trace::step("capabilities", |c| capabilities::apply_sets(sets, hold, c))?;
    }
    Ok(())
}

/// The working directory: entered already while root when root could (a cwd the user may not
/// search, as runc allows), otherwise now as the user; and checked to be inside the container.
fn enter_cwd(cwd: &Path, entered_as_root: bool, c: &mut trace::Calls) -> Result<()> {
    if !entered_as_root {
        nix::unistd::chdir(cwd).with_context(|| format!("process.cwd {}: chdir", cwd.display()))?;
    }
    // A cwd outside the root (a leaked host directory, CVE-2024-21626) reads "(unreachable)".
    let now = nix::unistd::getcwd().context("getcwd")?;
    if !now.is_absolute() || now.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        bail!(
            "process.cwd {}: the working directory is outside the container",
            cwd.display()
        );
    }
    c.note(|| format!("chdir({})", cwd.display()));
    Ok(())
}

/// Makes the process's user the owner of its stdio (pipes, FIFOs, the pty), as runc does, so a
/// non-root process can reopen /dev/stdout or /proc/self/fd/1 (nginx, entrypoint scripts, a
/// `-it -u 1000` shell). /dev/null and descriptors it owns already are left alone, and so is
/// one the kernel will not give away (an owner not mapped in our user namespace, a read-only
/// /dev). Returns the descriptors it changed.
fn give_stdio_to(uid: u32) -> Vec<RawFd> {
    let mut changed = Vec::new();
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let is_null =
            st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        if st.st_uid == uid || is_null {
            continue;
        }
        let owner = Some(nix::unistd::Uid::from_raw(uid));
        if nix::unistd::fchown(fd, owner, None).is_ok() {
            changed.push(fd);
        }
    }
    changed
}

/// Closes every descriptor from 3 + `preserve_fds` up, except `keep`.
pub(crate) fn close_inherited_except(keep: &[RawFd], preserve_fds: u32) -> Result<()> {
    let first = 3 + preserve_fds as RawFd;
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first;
    for k in keep {
        if k > from {
            sys::close_range(from as u32, (k - 1) as u32).context("close_range")?;
        }
        from = k + 1;
    }
    sys::close_range(from as u32, u32::MAX).context("close_range")
}

fn rlimit_resource(t: PosixRlimitType) -> sys::RlimitResource {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn set_rlimits(process: &Process, c: &mut trace::Calls) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())?
            .as_str()
            .unwrap_or("?")
            .to_string();
        sys::set_rlimit(rlimit_resource(r.typ()), r.soft(), r.hard()).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (raising a hard limit needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            anyhow!(
                "process.rlimits {name} soft={} hard={}: {e}{hint}",
                r.soft(),
                r.hard()
            )
        })?;
        c.note(|| format!("prlimit({name}, {}, {})", r.soft(), r.hard()));
    }
    Ok(())
}

/// process.env, plus HOME from the container's /etc/passwd when the config does not set it.
pub(crate) fn environment(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = process.user().uid();
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| home_of(&p, uid))
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

fn path_var(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// Finds `name` as execve would run it: a name with a slash is used as given, anything else is
/// searched in PATH. The messages carry "no such file or directory" and "permission denied",
/// which podman turns into exit codes 127 and 126.
pub(crate) fn find_executable(name: &str, path: &str) -> Result<PathBuf> {
    let check = |p: &Path| -> Result<(), nix::errno::Errno> {
        let meta = std::fs::metadata(p)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
        if meta.is_dir() {
            return Err(nix::errno::Errno::EACCES);
        }
        nix::unistd::faccessat(
            None,
            p,
            nix::unistd::AccessFlags::X_OK,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return match check(&p) {
            Ok(()) => Ok(p),
            Err(nix::errno::Errno::EACCES) => bail!("exec: {name:?}: permission denied"),
            Err(nix::errno::Errno::ENOENT) => bail!("exec: {name:?}: no such file or directory"),
            Err(e) => bail!("exec: {name:?}: {}", e.desc().to_lowercase()),
        };
    }
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        match check(&p) {
            Ok(()) => return Ok(p),
            Err(nix::errno::Errno::EACCES) => denied = denied.or(Some(p)),
            Err(_) => {}
        }
    }
    match denied {
        Some(p) => bail!("exec: {name:?} ({}): permission denied", p.display()),
        None => {
            bail!("exec: {name:?}: executable file not found in $PATH: no such file or directory")
        }
    }
}

/// The seccomp filter to load at execve, and for SCMP_ACT_NOTIFY where its fd goes.
pub(crate) struct Seccomp<'a> {
    pub(crate) program: crate::seccomp::Program,
    pub(crate) listener: Option<&'a std::os::unix::net::UnixStream>,
    /// The process's pid as onggi sees it, and the container state JSON (for the listener).
    pub(crate) pid: i32,
    pub(crate) state: String,
}

/// Installs the filter, as the last step before execve (with CAP_SYS_ADMIN, or no_new_privs
/// when the process has never had it), sends a notification fd to the listener, and drops a
/// capability held for the load. Few system calls come after it: the profile need not allow
/// what onggi itself does first (close_range, sigaction …).
fn load_seccomp(s: &Seccomp<'_>, final_caps: Option<&CapSets>) -> Result<()> {
    trace::step("seccomp", |c| {
        if !sys::no_new_privs()
            && !caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_ADMIN,
            )
            .unwrap_or(false)
        {
            sys::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
            c.note(|| {
                "no CAP_SYS_ADMIN to load a filter with: prctl(PR_SET_NO_NEW_PRIVS, 1)".into()
            });
        }
        if let Some(fd) = s.program.install(c)? {
            let sock = s
                .listener
                .ok_or_else(|| anyhow!("SCMP_ACT_NOTIFY without a listener socket"))?;
            let state = serde_json::from_str(&s.state).unwrap_or_default();
            crate::seccomp::send_to_listener(sock, &fd, s.pid, s.program.metadata(), state)?;
            c.note(|| "sendmsg(listenerPath, SCM_RIGHTS seccomp fd)".into());
        }
        if let Some(sets) = final_caps {
            capabilities::apply_sets(sets, false, c)?;
        }
        Ok(())
    })
}

/// Marks descriptors ≥ 3 + `preserve_fds` close-on-exec, resets every signal disposition,
/// sets the umask, loads the seccomp filter, and execs. Never returns (127/126/1 when execve
/// fails).
pub(crate) fn exec(p: Prepared, preserve_fds: u32, seccomp: Option<Seccomp<'_>>) -> ! {
    if let Some(slave) = &p.console {
        if let Err(e) = crate::console::attach(slave) {
            crate::logging::stderr_line(&format!("onggi: cannot attach the terminal: {e:#}"));
            sys::exit_now(1);
        }
    }
    // Only stdio and the --preserve-fds survive execve (CVE-2024-21626).
    if let Err(e) = sys::cloexec_from(3 + preserve_fds) {
        crate::logging::stderr_line(&format!("onggi: cannot close onggi's descriptors: {e}"));
        sys::exit_now(1);
    }
    // Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored across execve:
    // give the container every signal at its default.
    sys::reset_signal_dispositions();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(p.umask));
    if let Some(s) = &seccomp {
        if let Err(e) = load_seccomp(s, p.final_caps.as_ref()) {
            crate::logging::stderr_line(&format!("onggi: {e:#}"));
            sys::exit_now(1);
        }
    }
    trace::moment("execve", || format!("execve({:?}, {:?})", p.path, p.args));
    let err = nix::unistd::execve(&p.path, &p.args, &p.env).unwrap_err();
    let code = match err {
        nix::errno::Errno::ENOENT => 127,
        nix::errno::Errno::EACCES => 126,
        _ => 1,
    };
    crate::logging::stderr_line(&format!(
        "onggi: exec {:?}: {}",
        p.path,
        err.desc().to_lowercase()
    ));
    sys::exit_now(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_from_passwd() {
        let p = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nbad\n";
        assert_eq!(home_of(p, 0).as_deref(), Some("/root"));
        assert_eq!(home_of(p, 1000).as_deref(), Some("/home/bob"));
        assert_eq!(home_of(p, 7), None);
    }

    #[test]
    fn path_lookup_messages() {
        let e = find_executable("definitely-not-here-onggi", "/nonexistent")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file or directory"), "{e}");
        let dir = std::env::temp_dir().join(format!("onggi-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        std::fs::write(dir.join("plain"), "data").expect("write");
        let plain = dir.join("plain");
        let e = find_executable(plain.to_str().expect("utf8"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("permission denied"), "{e}");
        let e = find_executable("plain", dir.to_str().expect("utf8"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("permission denied"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        let e = find_executable("/", "").unwrap_err().to_string();
        assert!(e.contains("permission denied"), "{e}");
        assert_eq!(
            find_executable("sh", "/nonexistent:/bin").ok(),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn last_path_wins() {
        let env = vec![
            "PATH=/a".to_string(),
            "X=1".to_string(),
            "PATH=/b".to_string(),
        ];
        assert_eq!(path_var(&env), "/b");
        assert_eq!(path_var(&[]), DEFAULT_PATH);
    }
}
