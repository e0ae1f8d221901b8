//! Terminals: `process.terminal` with `--console-socket`.
//!
//! The init connects to the console socket while the host path is still reachable (before
//! pivot_root), then, inside the container, opens a pty pair in the container's own devpts,
//! binds the slave over /dev/console from the pty descriptor itself (never by path: checklist
//! row 9, CVE-2025-52565), and sends the master over the socket: one message whose data is the
//! pty's path and exactly one SCM_RIGHTS descriptor, as conmon and go-runc expect. The send
//! completes before the init reports Ready, so before `create` returns. At the start gate the
//! slave becomes the controlling terminal (setsid, TIOCSCTTY) and stdin/stdout/stderr.

use anyhow::{bail, Context, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::{rootfs, sys, trace};

/// Connects to the manager's console socket (in the runtime's mount namespace).
pub(crate) fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .with_context(|| format!("--console-socket {}: cannot connect", path.display()))
}

/// Where a process's pty master goes: the --console-socket (connected now, while the host path
/// resolves), or onggi's own relay (a socket pair, in the foreground). Errors name the mismatch.
pub(crate) fn target(
    terminal: bool,
    socket: Option<&Path>,
    relay: Option<&UnixStream>,
) -> Result<Option<UnixStream>> {
    match (terminal, socket, relay) {
        (true, Some(p), _) => connect(p).map(Some),
        (true, None, Some(r)) => Ok(Some(r.try_clone().context("dup socket")?)),
        (true, None, _) => bail!("process.terminal is true but no --console-socket was given (only a foreground run or exec relays the terminal itself)"),
        (false, Some(_), _) => bail!("--console-socket was given but process.terminal is false"),
        (false, None, _) => Ok(None),
    }
}

/// The slave side kept by the init until execve.
pub(crate) struct Slave(pub OwnedFd);

/// Opens a pty pair in the devpts of the current root: (master, slave, slave path).
fn open_pty(size: Option<(u16, u16)>) -> Result<(nix::pty::PtyMaster, OwnedFd, String)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("cannot open /dev/ptmx in the container")?;
    nix::pty::grantpt(&master).context("grantpt")?;
    nix::pty::unlockpt(&master).context("unlockpt")?;
    let name = nix::pty::ptsname_r(&master).context("ptsname")?;
    let slave = sys::openat2(
        sys::at_fdcwd(),
        Path::new(&name),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .with_context(|| format!("cannot open {name}"))?;
    // The slave must be a pts device: major 136-143 (UNIX98_PTY_SLAVE_MAJOR).
    let st = nix::sys::stat::fstat(slave.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || !(136..=143).contains(&libc::major(st.st_rdev))
    {
        bail!("{name} is not a pts device: refusing to use it as the console");
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::set_window_size(master.as_fd(), &ws).context("TIOCSWINSZ")?;
    }
    Ok((master, slave, name))
}

/// The init's terminal (after pivot_root): a pty whose slave is bound over /dev/console, the
/// master sent to the console socket.
pub(crate) fn setup(
    socket: &UnixStream,
    size: Option<(u16, u16)>,
    c: &mut trace::Calls,
) -> Result<Slave> {
    let (master, slave, name) = open_pty(size)?;
    bind_console(slave.as_fd())?;
    sys::send_with_fd(socket.as_fd(), name.as_bytes(), master.as_fd())
        .context("cannot send the pty master to --console-socket")?;
    c.note(|| {
        format!(
            "posix_openpt() = {name}; bind {name} over /dev/console; sendmsg(SCM_RIGHTS master)"
        )
    });
    Ok(Slave(slave))
}

/// An exec'd process's terminal (after joining the container's namespaces): a new pty in the
/// container's devpts, the master sent to the console socket. /dev/console stays the init's.
pub(crate) fn setup_exec(
    socket: &UnixStream,
    size: Option<(u16, u16)>,
    c: &mut trace::Calls,
) -> Result<Slave> {
    let (master, slave, name) = open_pty(size)?;
    sys::send_with_fd(socket.as_fd(), name.as_bytes(), master.as_fd())
        .context("cannot send the pty master to --console-socket")?;
    c.note(|| format!("posix_openpt() = {name}; sendmsg(SCM_RIGHTS master)"));
    Ok(Slave(slave))
}

/// Binds the pty slave over /dev/console (created as an empty file if missing), from the fd.
fn bind_console(slave: BorrowedFd<'_>) -> Result<()> {
    let root = sys::openat2(
        sys::at_fdcwd(),
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )?;
    let target = rootfs::ensure_in_root(
        root.as_fd(),
        Path::new("/dev/console"),
        rootfs::TargetKind::File,
    )
    .context("cannot create /dev/console")?;
    let tree = sys::open_tree(slave, Path::new(""), sys::OPEN_TREE_CLONE)
        .context("cannot clone the pty slave")?;
    sys::move_mount(tree.as_fd(), target.as_fd()).context("cannot bind the pty over /dev/console")
}

/// At the gate: a new session, the slave as controlling terminal and as stdio.
pub(crate) fn attach(slave: &Slave) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    sys::set_controlling_tty(slave.0.as_fd()).context("TIOCSCTTY")?;
    for fd in 0..3 {
        nix::unistd::dup2(slave.0.as_raw_fd(), fd).context("dup2 onto stdio")?;
    }
    Ok(())
}

/// Receives the pty master that `setup`/`setup_exec` sent over our end of a socket pair.
pub(crate) fn receive(sock: &UnixStream) -> Result<OwnedFd> {
    sys::recv_fd(sock.as_fd()).context("cannot receive the pty master")
}

/// Restores the terminal's mode when the relay ends.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    /// Puts stdin in raw mode when it is a terminal: keys go to the container as typed.
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

/// Copies our terminal's window size to the container's pty (no-op when stdin is no terminal).
fn copy_window_size(master: BorrowedFd<'_>) {
    if let Ok(ws) = sys::window_size(std::io::stdin().as_fd()) {
        let _ = sys::set_window_size(master, &ws);
    }
}

/// `run`/`exec` in the foreground with a terminal and no --console-socket: onggi is the other
/// end of the container's pty. Our stdin (raw, when it is a terminal) goes to the master, the
/// master's output to our stdout; SIGWINCH copies our window size over; other relayed signals
/// go to the process. Returns its exit code as [`crate::signal::Relay::wait`] does.
pub(crate) fn relay(
    signals: &crate::signal::Relay,
    pid: i32,
    pidfd: BorrowedFd<'_>,
    master: OwnedFd,
) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signal::Signal;
    use std::io::{Read, Write};
    let _raw = RawMode::enter();
    copy_window_size(master.as_fd());
    let sfd = signals.signal_fd().context("signalfd")?;
    let mut pty = std::fs::File::from(master);
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let (mut stdin_open, mut pty_open) = (true, true);
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if pty_open {
            fds.push(PollFd::new(pty.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open && pty_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.context("poll")?,
        };
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready.get(1) == Some(&true) && pty_open {
            match pty.read(&mut buf) {
                Ok(0) | Err(_) => pty_open = false, // EIO: every slave is closed
                Ok(n) => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
            }
        }
        if ready.get(2) == Some(&true) {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if pty.write_all(&buf[..n]).is_err() {
                        pty_open = false;
                    }
                }
            }
        }
        if ready[0] {
            let Some(sig) = sys::read_signal(sfd.as_fd())? else {
                continue;
            };
            match Signal::try_from(sig) {
                Ok(Signal::SIGWINCH) => copy_window_size(pty.as_fd()),
                Ok(Signal::SIGCHLD) => {
                    if let Some(code) = crate::signal::reaped(pid)? {
                        // What the process wrote before it exited is still in the pty.
                        sys::set_nonblocking(pty.as_fd())?;
                        while pty_open {
                            match pty.read(&mut buf) {
                                Ok(n) if n > 0 => stdout.write_all(&buf[..n])?,
                                _ => pty_open = false,
                            }
                        }
                        stdout.flush()?;
                        return Ok(code);
                    }
                }
                _ => {
                    let _ = sys::pidfd_send_signal(pidfd, sig);
                }
            }
        }
    }
}
