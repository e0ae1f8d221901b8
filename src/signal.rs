//! Signal names and numbers as `kill` accepts them: `TERM`, `SIGTERM`, `sigterm`, `15`,
//! `RTMIN+3`.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown signal {0:?}: use a name such as TERM, SIGKILL or RTMIN+1, or a number 1-64")]
pub(crate) struct UnknownSignal(pub String);

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// Parses a signal given by name (any case, with or without `SIG`) or by number.
pub(crate) fn parse(s: &str) -> Result<i32, UnknownSignal> {
    let bad = || UnknownSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, UnknownSignal> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            let digits = rest
                .strip_prefix(if sign > 0 { '+' } else { '-' })
                .ok_or_else(bad)?;
            digits.parse().map_err(|_| bad())?
        };
        let n = base + sign * off;
        if (SIGRTMIN..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(SIGRTMIN, rest, 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(SIGRTMAX, rest, -1);
    }
    Err(bad())
}

/// The conventional name of a signal number (`SIGTERM`), for messages.
pub(crate) fn name(n: i32) -> String {
    match NAMES
        .iter()
        .find(|&&(k, v)| v == n && k != "IOT" && k != "POLL")
    {
        Some((k, _)) => format!("SIG{k}"),
        None if (SIGRTMIN..=SIGRTMAX).contains(&n) => format!("SIGRTMIN+{}", n - SIGRTMIN),
        None => format!("signal {n}"),
    }
}

/// The signals a foreground `run` or `exec` passes on to the container's process.
pub(crate) struct Relay(nix::sys::signal::SigSet);

impl Relay {
    /// Blocks the relayed signals (and SIGCHLD) in onggi. Call it before cloning, so nothing is
    /// lost; the child unblocks them for itself.
    pub(crate) fn block() -> std::io::Result<Relay> {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGWINCH,
            Signal::SIGCHLD,
        ] {
            set.add(s);
        }
        set.thread_block()?;
        Ok(Relay(set))
    }

    /// Waits for our child `pid` to exit, relaying every other signal to it through `pidfd`;
    /// returns its exit code, or 128+N when signal N killed it (as a shell reports it).
    pub(crate) fn wait(
        &self,
        pid: i32,
        pidfd: std::os::fd::BorrowedFd<'_>,
    ) -> std::io::Result<i32> {
        loop {
            let sig = self.0.wait()?;
            if sig == nix::sys::signal::Signal::SIGCHLD {
                match reaped(pid)? {
                    Some(code) => return Ok(code),
                    None => continue,
                }
            }
            let _ = crate::sys::pidfd_send_signal(pidfd, sig as i32);
        }
    }

    /// A signalfd for the blocked set, for callers that poll other descriptors too.
    pub(crate) fn signal_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        crate::sys::signal_fd(&self.0)
    }
}

/// Reaps our child `pid` if it has exited: its exit code, or 128+N when signal N killed it.
pub(crate) fn reaped(pid: i32) -> std::io::Result<Option<i32>> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, c)) => Ok(Some(c)),
        Ok(WaitStatus::Signaled(_, s, _)) => Ok(Some(128 + s as i32)),
        Ok(_) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        assert_eq!(parse("TERM"), Ok(15));
        assert_eq!(parse("SIGTERM"), Ok(15));
        assert_eq!(parse("sigkill"), Ok(9));
        assert_eq!(parse("15"), Ok(15));
        assert_eq!(parse("RTMIN"), Ok(34));
        assert_eq!(parse("RTMIN+3"), Ok(37));
        assert_eq!(parse("SIGRTMAX-1"), Ok(63));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "", "0", "65", "-1", "FOO", "SIG", "RTMIN+40", "RTMIN-1", "RTMIN+x", "TERM ",
        ] {
            assert!(parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(6), "SIGABRT");
        assert_eq!(name(29), "SIGIO");
        assert_eq!(name(35), "SIGRTMIN+1");
        for n in 1..=64 {
            if n == 32 || n == 33 {
                continue;
            }
            let nm = name(n);
            assert_eq!(parse(&nm), Ok(n), "{nm}");
        }
    }
}
