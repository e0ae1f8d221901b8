//! The teaching labs (bundles/labs/<name>): each lab script runs for real, and what its README
//! promises under "What you will see" must come out, line by line and in that order. The
//! guides docs/labs.md and docs/labs.ko.md must list exactly the labs that exist.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn labs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/labs")
}

/// The lab names: every directory of bundles/labs with a lab.sh.
fn lab_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(labs_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("lab.sh").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The lines of the README's block that follows `<!-- expected -->`.
fn expected(lab: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(labs_dir().join(lab).join("README.md"))
        .unwrap_or_else(|e| panic!("{lab}/README.md: {e}"));
    let after = readme
        .split_once("<!-- expected -->")
        .unwrap_or_else(|| panic!("{lab}/README.md has no <!-- expected --> block"))
        .1;
    let block = after
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("{lab}/README.md: no ```text block after the marker"))
        .0;
    block.lines().map(|l| l.trim_end().to_string()).collect()
}

/// `*` matches any run of characters; everything else is literal.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// Runs the lab as `make lab-NAME` does and checks the README's promise.
fn lab(name: &str) {
    // The cgroup labs need their controller (the pure cgroup v2 guest has it: `make
    // test-cgroup-v2`); elsewhere they skip, unless ONGGI_REQUIRE_CGROUP_V2=1.
    if let Some(controller) = name.strip_prefix("cgroup-") {
        if !has_controller(controller) {
            return;
        }
    }
    let o = Onggi::new();
    let before = shared_rootfs_entries();
    let io = Scratch::new(&format!("lab-{name}"));
    let log = io.path().join("out");
    let f = std::fs::File::create(&log).unwrap();
    let status = Command::new("bash")
        .arg(labs_dir().join(name).join("lab.sh"))
        .env("ONGGI", onggi_bin())
        .env("LAB_ROOT", o.root.path())
        .stdin(std::process::Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .status()
        .unwrap();
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "lab {name} failed:\n{out}");
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let mut at = 0;
    for want in expected(name) {
        match lines[at..].iter().position(|l| glob(&want, l)) {
            Some(i) => at += i + 1,
            None => panic!(
                "lab {name}: the README promises the line\n  {want}\nbut after line {at} the output was:\n{}",
                lines[at..].join("\n")
            ),
        }
    }
    assert!(
        o.leftovers().is_empty(),
        "lab {name} left {:?}",
        o.leftovers()
    );
    // The labs run on bundles/rootfs itself: a mount point made there (a volume's
    // destination) would change every later user of it (a /www there broke Docker's test).
    assert_eq!(
        shared_rootfs_entries(),
        before,
        "lab {name} changed bundles/rootfs"
    );
}

/// The top-level names in bundles/rootfs.
fn shared_rootfs_entries() -> std::collections::BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/rootfs");
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn glob_matches_literals_and_stars() {
    assert!(glob("status: created", "status: created"));
    assert!(!glob("status: created", "status: created!"));
    assert!(glob("+ *ms init  gate *", "+    2.4ms init  gate  waiting"));
    assert!(glob("NSpid:\t*\t1", "NSpid:\t4242\t1"));
    assert!(!glob("a*b*c", "a-c-b"));
    assert!(glob("*", ""));
}

#[test]
fn every_lab_has_a_readme_with_a_promise() {
    let names = lab_names();
    assert!(names.len() >= 15, "{names:?}");
    for n in &names {
        assert!(expected(n).len() >= 3, "{n}: promise too thin");
    }
}

#[test]
fn both_guides_list_the_same_labs_as_bundles_labs() {
    // A guide lists a lab as a heading "## N. name" (the Korean guide may add a translation
    // after the name).
    let listed = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("## "))
            .filter_map(|h| {
                let (num, rest) = h.split_once(". ")?;
                num.parse::<u32>().ok()?;
                Some(
                    rest.split_whitespace()
                        .next()?
                        .trim_matches('`')
                        .to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let names = lab_names();
    assert_eq!(listed("docs/labs.md"), names, "docs/labs.md");
    assert_eq!(listed("docs/labs.ko.md"), names, "docs/labs.ko.md");
}

/// Each lab's README shows its trace as a picture (`make labs-pictures`): the SVG is there,
/// well-formed, and names every step the README's trace excerpt shows, and the final execve.
#[test]
fn every_lab_shows_its_trace_as_a_well_formed_picture() {
    for name in lab_names() {
        let dir = labs_dir().join(&name);
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.contains("](trace.svg)"),
            "{name}/README.md does not show trace.svg"
        );
        let svg = std::fs::read_to_string(dir.join("trace.svg"))
            .unwrap_or_else(|e| panic!("{name}/trace.svg: {e} (make labs-pictures)"));
        well_formed_xml(&dir.join("trace.svg"));
        let shown = readme
            .lines()
            .filter_map(|l| {
                l.split_once("# trace lines of: ")
                    .map(|(_, s)| s.to_string())
            })
            .flat_map(|s| s.split_whitespace().map(String::from).collect::<Vec<_>>());
        for step in shown.chain(["execve".to_string()]) {
            assert!(
                svg.contains(&format!(" {step} ")),
                "{name}/trace.svg does not name {step}"
            );
        }
    }
}

macro_rules! labs {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                lab($name);
            }
        )*
        #[test]
        fn there_is_a_test_for_every_lab() {
            let mut tested = vec![$($name.to_string()),*];
            tested.sort();
            assert_eq!(tested, lab_names());
        }
    };
}

labs! {
    lab_lifecycle => "lifecycle",
    lab_entrypoint_cmd => "entrypoint-cmd",
    lab_env => "env",
    lab_pid_namespace => "pid-namespace",
    lab_uts_ipc => "uts-ipc",
    lab_network_none_host => "network-none-host",
    lab_volumes => "volumes",
    lab_layers => "layers",
    lab_capabilities => "capabilities",
    lab_seccomp => "seccomp",
    lab_user_namespace => "user-namespace",
    lab_exec => "exec",
    lab_stop => "stop",
    cgroup_lab_memory => "cgroup-memory",
    cgroup_lab_pids => "cgroup-pids",
    lab_bridge_network => "bridge-network",
    lab_port_publish => "port-publish",
    lab_logs => "logs",
    lab_commit => "commit",
}
