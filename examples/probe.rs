//! Test helper (not part of onggi): tries the syscalls a seccomp profile is about and prints
//! `name=OK` or `name=<errno>` for each, so tests can check what a filter really does.
//! Usage: probe mkdir unshare keyctl ptrace personality nr1000

fn main() {
    for name in std::env::args().skip(1) {
        // SAFETY: each call passes only integers and valid pointers; a failure sets errno.
        let r = unsafe {
            match name.as_str() {
                "mkdir" => libc::mkdir(c"/tmp/probe-dir".as_ptr(), 0o755),
                "unshare" => libc::unshare(libc::CLONE_NEWUTS),
                "keyctl" => libc::syscall(
                    libc::SYS_keyctl,
                    0,  // KEYCTL_GET_KEYRING_ID
                    -3, // KEY_SPEC_SESSION_KEYRING
                    0,
                ) as i32,
                "ptrace" => libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) as i32,
                "personality" => libc::personality(0xffff_ffff),
                // A syscall number no kernel has yet: what a newer libc would try first.
                "nr1000" => libc::syscall(1000) as i32,
                other => {
                    println!("{other}=UNKNOWN");
                    continue;
                }
            }
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            println!("{name}={}", errno_name(e.raw_os_error().unwrap_or(0)));
        } else {
            println!("{name}=OK");
        }
    }
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EROFS => "EROFS".into(),
        n => format!("errno{n}"),
    }
}
