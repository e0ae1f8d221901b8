//! Terminals through --console-socket: the message shape conmon and go-runc require, and a real
//! interactive session driven through the pty.

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

/// Accepts one connection and receives the console message; checks it carries exactly one
/// SCM_RIGHTS message with exactly one descriptor, and returns (data, fd).
fn receive(listener: &UnixListener) -> (String, OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = listener.accept().expect("onggi connects");
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let cmsgs: Vec<ControlMessageOwned> = msg.cmsgs().expect("cmsgs").collect();
    assert_eq!(cmsgs.len(), 1, "exactly one control message");
    let fds = match &cmsgs[0] {
        ControlMessageOwned::ScmRights(fds) => fds.clone(),
        other => panic!("not SCM_RIGHTS: {other:?}"),
    };
    assert_eq!(fds.len(), 1, "exactly one descriptor");
    let n = msg.bytes;
    let data = String::from_utf8_lossy(&buf[..n]).into_owned();
    // SAFETY: the descriptor was just received and is owned by nothing else.
    (data, unsafe { OwnedFd::from_raw_fd(fds[0]) })
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
