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
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .with_context(|| format!("--console-socket {}: cannot connect", path.display()))
}

/// The slave side kept by the init until execve.
pub struct Slave(pub OwnedFd);

/// Creates the pty in the container (after pivot_root), binds /dev/console, sends the master.
pub fn setup(socket: &UnixStream, size: Option<(u16, u16)>, c: &mut trace::Calls) -> Result<Slave> {
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
pub fn attach(slave: &Slave) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    sys::set_controlling_tty(slave.0.as_fd()).context("TIOCSCTTY")?;
    for fd in 0..3 {
        nix::unistd::dup2(slave.0.as_raw_fd(), fd).context("dup2 onto stdio")?;
    }
    Ok(())
}
