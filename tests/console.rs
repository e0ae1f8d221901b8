//! Terminals through --console-socket: the message shape conmon and go-runc require, and a real
//! interactive session driven through the pty.

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// Accepts one connection and receives the console message (path + exactly one fd).
fn receive(listener: &UnixListener) -> (String, OwnedFd) {
    let (conn, _) = listener.accept().expect("onggi connects");
    recv_one_fd(&conn)
}

#[test]
fn an_interactive_session_through_the_console_socket() {
    let o = Onggi::new();
    let scratch = Scratch::new("console");
    let sock = scratch.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let b = Bundle::new(&["sh"]).with(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    });
    let mut fg = o
        .command()
        .args([
            "run",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.dir(),
            "tty",
        ])
        .spawn()
        .unwrap();
    let (path, master) = receive(&listener);
    assert!(
        path.starts_with("/dev/pts/"),
        "the data is the pty's path: {path:?}"
    );
    let mut m = std::fs::File::from(master);
    m.write_all(b"tty; stty size; ls -l /dev/console | sed 's/.* -> //'; echo END; exit 5\n")
        .unwrap();
    let mut seen = String::new();
    let mut chunk = [0u8; 4096];
    while !seen.contains("END\r\n") {
        match m.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    assert!(seen.contains("/dev/pts/0"), "{seen}");
    assert!(seen.contains("33 101"), "consoleSize: {seen}");
    assert_eq!(wait_child(&mut fg).code(), Some(5));
}

#[test]
fn a_terminal_needs_a_socket_and_a_socket_needs_a_terminal() {
    let o = Onggi::new();
    let b = Bundle::new(&["true"]).with(|c| c["process"]["terminal"] = json!(true));
    let e = o.fails(&["create", "--bundle", b.dir(), "t1"]);
    assert!(e.contains("--console-socket"), "{e}");
    let scratch = Scratch::new("console2");
    let sock = scratch.path().join("s");
    let _l = UnixListener::bind(&sock).unwrap();
    let b = Bundle::new(&["true"]);
    let e = o.fails(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir(),
        "t2",
    ]);
    assert!(e.contains("terminal is false"), "{e}");
    assert!(o.leftovers().is_empty());
}

/// Reads from `m` until `want` appears (or the pty closes); returns everything read.
fn read_until(m: &mut std::fs::File, want: &str) -> String {
    let mut seen = String::new();
    let mut chunk = [0u8; 4096];
    while !seen.contains(want) {
        match m.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    seen
}

/// The test's own terminal: onggi's stdin/stdout/stderr are the slave, the test drives the master.
fn test_terminal(rows: u16, cols: u16) -> (std::fs::File, OwnedFd) {
    let ws = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    (std::fs::File::from(pty.master), pty.slave)
}

fn stdio_from(fd: &OwnedFd) -> std::process::Stdio {
    std::process::Stdio::from(fd.try_clone().unwrap())
}

fn local_flags(fd: &OwnedFd) -> nix::sys::termios::LocalFlags {
    nix::sys::termios::tcgetattr(fd).unwrap().local_flags
}

#[test]
fn run_with_a_terminal_and_no_socket_relays_it_raw_with_window_size_changes() {
    use nix::sys::termios::LocalFlags;
    let o = Onggi::new();
    let b = Bundle::new(&["sh"]).with(|c| c["process"]["terminal"] = json!(true));
    let (mut m, slave) = test_terminal(40, 120);
    let mut fg = o
        .command()
        .args(["run", "--bundle", b.dir(), "relay"])
        .stdin(stdio_from(&slave))
        .stdout(stdio_from(&slave))
        .stderr(stdio_from(&slave))
        .spawn()
        .unwrap();
    // O''NE: the echo of the typed line must not match what we wait for.
    m.write_all(b"tty; stty size; echo O''NE\n").unwrap();
    let seen = read_until(&mut m, "ONE\r\n");
    assert!(seen.contains("/dev/pts/0"), "{seen}");
    assert!(seen.contains("40 120"), "our window size is copied: {seen}");
    // While onggi relays, our terminal is raw: no echo, no line editing by the host's tty.
    let during = local_flags(&slave);
    assert!(
        !during.contains(LocalFlags::ECHO) && !during.contains(LocalFlags::ICANON),
        "{during:?}"
    );
    // A window-size change (the kernel would signal the foreground group; we do it by hand).
    let ws = libc::winsize {
        ws_row: 50,
        ws_col: 130,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: a valid winsize for TIOCSWINSZ on our own pty.
    assert_eq!(
        unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    // The relay handles the signal before it reads the next keys only if it saw it: retry.
    let mut seen = String::new();
    for _ in 0..50 {
        m.write_all(b"stty size; echo T''WO\n").unwrap();
        seen = read_until(&mut m, "TWO\r\n");
        if seen.contains("50 130") {
            break;
        }
    }
    assert!(
        seen.contains("50 130"),
        "SIGWINCH copies the new size: {seen}"
    );
    m.write_all(b"exit 5\n").unwrap();
    assert_eq!(wait_child(&mut fg).code(), Some(5));
    let after = local_flags(&slave);
    assert!(
        after.contains(LocalFlags::ECHO) && after.contains(LocalFlags::ICANON),
        "the terminal's mode is restored: {after:?}"
    );
    assert!(o.leftovers().is_empty(), "run removes the container");
}

#[test]
fn exec_with_a_terminal_through_the_console_socket_and_relayed() {
    let o = Onggi::new();
    let b = sh("touch /ready; while :; do sleep 0.05; done");
    o.ok(&["run", "-d", "--bundle", b.dir(), "ex"]);
    wait_for(|| b.rootfs().join("ready").exists());
    // As conmon does it: exec -t --console-socket, the test drives the master it receives.
    let scratch = Scratch::new("exec-console");
    let sock = scratch.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut fg = o
        .command()
        .args([
            "exec",
            "-t",
            "--console-socket",
            sock.to_str().unwrap(),
            "ex",
            "sh",
        ])
        .spawn()
        .unwrap();
    let (path, master) = receive(&listener);
    assert!(path.starts_with("/dev/pts/"), "{path:?}");
    let mut m = std::fs::File::from(master);
    m.write_all(b"tty; readlink /proc/self/fd/0; echo END; exit 5\n")
        .unwrap();
    let seen = read_until(&mut m, "END\r\n");
    assert!(seen.contains(&format!("{path}\r\n{path}\r\n")), "{seen}");
    assert_eq!(wait_child(&mut fg).code(), Some(5));
    // Without a socket in the foreground, onggi relays: plain pipes on our side.
    let mut fg = o
        .command()
        .args(["exec", "-t", "ex", "sh"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    fg.stdin
        .take()
        .unwrap()
        .write_all(b"tty; exit 7\n")
        .unwrap();
    let mut out = String::new();
    fg.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("/dev/pts/"), "{out}");
    assert_eq!(wait_child(&mut fg).code(), Some(7));
    // Detached, a terminal needs somewhere to go.
    let e = o.fails(&["exec", "-d", "-t", "ex", "sh"]);
    assert!(e.contains("--console-socket"), "{e}");
    o.ok(&["delete", "-f", "ex"]);
}

#[test]
fn create_with_a_terminal_does_not_keep_the_callers_output_pipe_open() {
    // go-runc (containerd's shim) reads create's output until EOF: the waiting init must have
    // replaced its stdio with the pty already, or the shim waits forever.
    let o = Onggi::new();
    let scratch = Scratch::new("console-eof");
    let sock = scratch.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let b = Bundle::new(&["true"]).with(|c| c["process"]["terminal"] = json!(true));
    let mut create = o
        .command()
        .args([
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.dir(),
            "eof",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (_path, _master) = receive(&listener);
    let mut out = create.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let eof = rx.recv_timeout(std::time::Duration::from_secs(20));
    assert!(
        eof.is_ok(),
        "create's stdout never reached EOF: the init holds it"
    );
    assert!(wait_child(&mut create).success());
    assert_eq!(o.status("eof"), "created");
    o.ok(&["delete", "-f", "eof"]);
}
