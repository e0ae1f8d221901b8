//! `make install`: the binary, a man page per command and the bash, zsh and fish completions,
//! all generated from the clap definitions the binary parses with (examples/gen-docs.rs).

mod common;
use common::release_example;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch() -> PathBuf {
    let p = std::env::temp_dir().join(format!("onggi-test-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn make_install_puts_binary_man_pages_and_completions_under_destdir() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = scratch();
    let (docs, dest) = (tmp.join("docs"), tmp.join("dest"));
    run(Command::new(release_example("gen-docs")).arg(&docs));
    run(Command::new("make")
        .args(["-s", "-C", root, "install-files", "PREFIX=/usr"])
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("DOCS={}", docs.display())));
    let usr = dest.join("usr");
    let version = run(Command::new(usr.join("bin/onggi")).arg("--version"));
    assert!(version.starts_with("onggi version"), "{version}");

    let cmd = onggi::cli::command();
    let pages = usr.join("share/man/man8");
    let page = |name: &str| std::fs::read_to_string(pages.join(format!("{name}.8"))).unwrap();
    assert!(page("onggi").contains(".TH ONGGI 8"));
    let mut n = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let text = page(&format!("onggi-{}", sub.get_name()));
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "onggi-{}.8 documents --{long}",
                    sub.get_name()
                );
            }
        }
        n += 1;
    }
    assert!(n >= 15, "a page per command: {n}");

    // bash completes a command name and a flag from the installed script.
    let bash = usr.join("share/bash-completion/completions/onggi");
    let complete = |words: &str| {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _onggi onggi \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\"",
            bash.display()
        );
        run(Command::new("bash").args(["-c", &script]))
    };
    assert_eq!(complete("onggi cre").trim(), "create");
    assert!(complete("onggi run --pid").contains("--pid-file"));
    let zsh = std::fs::read_to_string(usr.join("share/zsh/site-functions/_onggi")).unwrap();
    assert!(
        zsh.starts_with("#compdef onggi") && zsh.contains("create"),
        "{zsh}"
    );
    let fish = usr.join("share/fish/vendor_completions.d/onggi.fish");
    assert!(std::fs::read_to_string(&fish)
        .unwrap()
        .contains("complete -c onggi"));
    let _ = std::fs::remove_dir_all(Path::new(&tmp));
}
