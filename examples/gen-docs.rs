//! Writes onggi's man pages (onggi.8 and one onggi-COMMAND.8 per command) and its bash, zsh and
//! fish completions, from the same clap definitions the binary parses with.
//! usage: cargo run --release --example gen-docs -- OUTDIR   (make man completions)

use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/docs".into()),
    );
    let cmd = onggi::cli::command().name("onggi");
    let man = out.join("man8");
    std::fs::create_dir_all(&man)?;
    write_page(&man, "onggi", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // A page's NAME and SYNOPSIS say `onggi-run`, as git's and podman's pages do.
        let name: &'static str = Box::leak(format!("onggi-{}", sub.get_name()).into_boxed_str());
        write_page(&man, name, sub.clone().name(name))?;
    }
    let comp = out.join("completions");
    std::fs::create_dir_all(&comp)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "onggi", &comp)?;
    }
    println!("{}", out.display());
    Ok(())
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("8")
        .title(name.to_uppercase())
        .render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.8")), buf)
}
