//! The command line, as containerd, podman/conmon and people call runc.
//!
//! Global flags come before the subcommand (`--root`, `--log`, `--log-format`, `--debug`,
//! `--systemd-cgroup`); both `--flag value` and `--flag=value` work, and a subcommand's flags may
//! follow its container id.

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

use crate::lifecycle::create::CreateOptions;
use crate::lifecycle::{self, exec, update};
use crate::logging::{self, LogFormat};
use crate::state::Store;
use crate::{spec, trace};

#[derive(Parser, Debug)]
#[command(
    name = "onggi",
    about = "onggi: a low-level OCI container runtime (runc-compatible CLI)",
    disable_version_flag = true
)]
pub(crate) struct Cli {
    /// Where container state lives (default /run/onggi; $XDG_RUNTIME_DIR/onggi when not root)
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// Append errors (and --debug lines) to FILE
    #[arg(long, value_name = "FILE")]
    pub(crate) log: Option<PathBuf>,
    /// Format of --log lines
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// Debug lines, including every setup step, to --log (else stderr)
    #[arg(long)]
    pub(crate) debug: bool,
    /// Print every setup step of create/run/exec to stderr: name, kernel calls, time
    #[arg(long)]
    pub(crate) trace: bool,
    /// Format of --trace lines
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub(crate) trace_format: TraceFormat,
    /// Use systemd to manage cgroups: the container's cgroup is a transient scope, and
    /// linux.cgroupsPath is "slice:prefix:name"
    #[arg(long)]
    pub(crate) systemd_cgroup: bool,
    /// Accepted for runc compatibility (auto|true|false); onggi decides from its euid
    #[arg(long, value_name = "VALUE", hide = true)]
    pub(crate) rootless: Option<String>,
    /// The CRIU binary checkpoint and restore run
    #[arg(long, value_name = "PATH", default_value = "criu")]
    pub(crate) criu: PathBuf,
    /// Print version information
    #[arg(short = 'v', long)]
    pub(crate) version: bool,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// `--trace-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TraceFormat {
    Text,
    Json,
    /// Chrome trace-event JSON (Perfetto, chrome://tracing)
    Chrome,
}

#[derive(Args, Debug)]
pub(crate) struct CreateArgs {
    /// The bundle directory (holding config.json)
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub(crate) bundle: PathBuf,
    /// Write the init's host pid here (no newline)
    #[arg(long, value_name = "FILE")]
    pub(crate) pid_file: Option<PathBuf>,
    /// AF_UNIX socket that receives the pty master when process.terminal is true
    #[arg(long, value_name = "PATH")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for ramdisk roots)
    #[arg(long)]
    pub(crate) no_pivot: bool,
    /// Do not give the container a new session keyring
    #[arg(long)]
    pub(crate) no_new_keyring: bool,
    /// Pass N extra fds (3 .. 3+N-1) to the container process
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// The container id
    pub(crate) id: String,
}

impl CreateArgs {
    fn options(&self, systemd_cgroup: bool) -> CreateOptions<'_> {
        CreateOptions {
            id: &self.id,
            bundle: &self.bundle,
            pid_file: self.pid_file.as_deref(),
            console_socket: self.console_socket.as_deref(),
            terminal_relay: None,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            systemd_cgroup,
        }
    }
}

/// `defer`: a command's arguments are built only when it is the one being parsed, so each start
/// of onggi builds one subcommand, not all of them (~55 fewer page faults and ~0.15 ms per start;
/// `make bench`). The arguments are added after the command's about line: the clap::Args structs
/// of the newtype variants (ExecArgs, UpdateFlags, …) therefore carry `//` comments, not doc
/// comments, which would replace it (the test `each_command_keeps_its_own_about` holds this).
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Write a config.json: runc's default, changed by docker run's flags
    /// (`onggi spec --memory 64m -v /src:/dst:ro -- sh -c 'echo hi'`)
    Spec {
        /// Directory to write config.json into
        #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
        bundle: PathBuf,
        /// A config for an unprivileged user (a user namespace mapping your uid and gid to root)
        #[arg(long)]
        rootless: bool,
        /// docker run's flags, as the config fields they mean
        #[command(flatten)]
        flags: crate::spec_flags::SpecFlags,
    },
    /// Create a container: its init waits before the user process until `start`
    Create(CreateArgs),
    /// Create and start a container; without -d, wait for it and exit with its status
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container runs
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container (stopped) after it exits, instead of deleting it
        #[arg(long)]
        keep: bool,
    },
    /// Start the user process of a created container
    Start { id: String },
    /// Print a container's OCI state as JSON
    State { id: String },
    /// Freeze every process of a running container (cgroup.freeze)
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change the resources of a running container (LinuxResources JSON and/or runc's flags)
    Update {
        #[command(flatten)]
        flags: crate::lifecycle::update::UpdateFlags,
        id: String,
    },
    /// Print the container's events as JSON lines (stats every interval, oom)
    Events {
        /// One stats event, then exit
        #[arg(long)]
        stats: bool,
        /// How often to print stats
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Send a signal (default TERM) to the container's init
    Kill {
        /// Signal every process of the container
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a stopped container (with --force, kill it first)
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// List containers
    #[command(alias = "ls")]
    List {
        /// Only the ids
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(short = 'f', long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
    },
    /// Run a new process in a running container
    Exec(crate::lifecycle::exec::ExecArgs),
    /// List the host pids of a container's processes
    Ps {
        #[arg(short = 'f', long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
        id: String,
    },
    /// Explain what the kernel sees of a live container: namespaces, cgroup, capabilities,
    /// seccomp, id maps, mounts, processes
    Explain {
        #[arg(short = 'f', long, value_parser = ["text", "json"], default_value = "text")]
        format: String,
        /// Labels in this language (default: Korean when LANG or LC_ALL is ko_*)
        #[arg(long, value_parser = ["en", "ko"])]
        lang: Option<String>,
        id: String,
    },
    /// Save a running container to image files with CRIU (it stops, unless --leave-running)
    Checkpoint(crate::lifecycle::checkpoint::CheckpointArgs),
    /// Bring a container back from checkpoint's image files
    Restore(crate::lifecycle::restore::RestoreArgs),
    /// Print the features this runtime supports (runtime-spec features.md)
    Features,
}

/// Whether the locale asks for Korean (LC_ALL, then LC_MESSAGES, then LANG, as gettext reads
/// them).
fn korean_locale() -> bool {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .is_some_and(|v| v.starts_with("ko"))
}

/// Finds `--log`/`--log-format` in raw arguments: used when clap itself rejects the command
/// line, so that even that failure reaches the log file.
fn scan_log_flags(args: &[OsString]) -> (Option<PathBuf>, LogFormat) {
    let mut log = None;
    let mut fmt = LogFormat::Text;
    let mut it = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        let (flag, val) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        match flag.as_str() {
            "--log" => log = val.or_else(|| it.next()).map(PathBuf::from),
            "--log-format" => {
                let v = val.or_else(|| it.next());
                fmt = if v.as_deref() == Some("json") {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                };
            }
            // Global flags with a value: skip the value too.
            "--root" | "--criu" | "--rootless" => {
                let _ = val.or_else(|| it.next());
            }
            _ if !flag.starts_with('-') => break,
            _ => {}
        }
    }
    (log, fmt)
}

/// Parses the command line and runs it; returns the process exit code.
/// The clap definition of the whole command line, for the generated man pages and shell
/// completions (`make man completions`, examples/gen-docs.rs).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The single-dash long flags that managers send, as runc's CLI library accepts them, spelled
/// with two dashes for clap: go-runc (containerd's shim) restores with `-no-subreaper`. Only
/// these, and only among the flags of their command: a container's own arguments are not
/// touched.
fn runc_single_dash(mut args: Vec<OsString>) -> Vec<OsString> {
    let restore = args.iter().position(|a| a == "restore");
    if let Some(i) = restore {
        for a in args.iter_mut().skip(i + 1) {
            if a == "-no-subreaper" {
                *a = "--no-subreaper".into();
            }
        }
    }
    args
}

pub fn main(args: Vec<OsString>) -> i32 {
    let args = runc_single_dash(args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return 0;
            }
            let (log, fmt) = scan_log_flags(&args);
            let _ = logging::init(log.as_deref(), fmt, false);
            let msg = e.kind().to_string();
            let detail = e.to_string();
            let first = detail
                .lines()
                .next()
                .unwrap_or(&msg)
                .trim_start_matches("error: ");
            logging::error(first);
            return 2;
        }
    };
    // Before onggi opens anything (the log, the trace descriptor): what --preserve-fds passes
    // must already be open, or onggi's own descriptors would take those numbers.
    let preserved = match &cli.command {
        Some(Command::Create(a)) | Some(Command::Run { create: a, .. }) => {
            crate::lifecycle::create::check_preserved_fds(a.preserve_fds)
        }
        Some(Command::Exec(a)) => crate::lifecycle::create::check_preserved_fds(a.preserve_fds),
        _ => Ok(()),
    };
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!(
            "onggi: --log {}: {e}",
            cli.log
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new(""))
                .display()
        );
        return 1;
    }
    let mode = match (cli.trace, cli.trace_format, cli.debug) {
        (true, TraceFormat::Text, _) => Some(trace::Mode::Text),
        (true, TraceFormat::Json, _) => Some(trace::Mode::Json),
        (true, TraceFormat::Chrome, _) => Some(trace::Mode::Chrome),
        (false, _, true) => Some(trace::Mode::Debug),
        (false, _, false) => None,
    };
    if let Err(e) = preserved {
        logging::error(&format!("{e:#}"));
        return 1;
    }
    if let Some(Err(e)) = mode.map(trace::enable) {
        logging::error(&format!("--trace: {e}"));
        return 1;
    }

    // A failure of `exec` itself exits 255, as runc's, so callers tell it from a process
    // that exited 1.
    let failure = if matches!(cli.command, Some(Command::Exec(_))) {
        255
    } else {
        1
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&format!("{e:#}"));
            failure
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    if cli.version {
        logging::print(&format!("onggi version {}", env!("CARGO_PKG_VERSION")));
        logging::print(&format!(
            "commit: {}",
            option_env!("ONGGI_COMMIT").unwrap_or("unknown")
        ));
        logging::print(&format!("spec: {}", spec::OCI_VERSION));
        return Ok(0);
    }
    let systemd = cli.systemd_cgroup;
    let Some(command) = cli.command else {
        anyhow::bail!("no command given: try `onggi --help`");
    };
    let store = || -> anyhow::Result<Store> { Store::open(&state_root(cli.root.clone())?) };
    match command {
        Command::Spec {
            bundle,
            rootless,
            flags,
        } => {
            spec::write_spec(&bundle, rootless, &flags)?;
        }
        Command::Create(a) => {
            lifecycle::create::create(&store()?, &a.options(systemd))?;
        }
        Command::Run {
            create,
            detach,
            keep,
        } => {
            return lifecycle::run(&store()?, &create.options(systemd), detach, keep);
        }
        Command::Start { id } => lifecycle::start(&store()?, &id)?,
        Command::Exec(a) => return exec::exec(&store()?, &a),
        Command::Ps { format, id } => lifecycle::ps(&store()?, &id, format == "json")?,
        Command::Explain { format, lang, id } => {
            let korean = lang.map_or_else(korean_locale, |l| l == "ko");
            lifecycle::explain(&store()?, &id, format == "json", korean)?
        }
        Command::State { id } => lifecycle::state(&store()?, &id)?,
        Command::Pause { id } => lifecycle::pause(&store()?, &id, true)?,
        Command::Resume { id } => lifecycle::pause(&store()?, &id, false)?,
        Command::Update { flags, id } => update::update(&store()?, &id, &flags)?,
        Command::Events {
            stats,
            interval,
            id,
        } => lifecycle::events(&store()?, &id, stats, &interval)?,
        Command::Kill { all, id, signal } => lifecycle::kill(&store()?, &id, &signal, all)?,
        Command::Delete { force, id } => lifecycle::delete(&store()?, &id, force)?,
        Command::List { quiet, format } => lifecycle::list(&store()?, quiet, format == "json")?,
        Command::Checkpoint(a) => lifecycle::checkpoint::checkpoint(&store()?, &a, &cli.criu)?,
        Command::Restore(a) => {
            return lifecycle::restore::restore(&store()?, &a, &cli.criu, systemd);
        }
        Command::Features => {
            logging::print(&serde_json::to_string_pretty(&crate::features::features())?)
        }
    }
    Ok(0)
}

/// `--root`, else /run/onggi for root, else $XDG_RUNTIME_DIR/onggi (runc's rootless default).
/// Root of a user namespace (rootless podman runs its runtime so) counts as not root when
/// XDG_RUNTIME_DIR is set and $USER is not "root", as runc decides.
fn state_root(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(r) = given {
        return Ok(r);
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    let real_root = nix::unistd::geteuid().is_root()
        && (!crate::namespaces::in_user_namespace()
            || xdg.is_none()
            || std::env::var_os("USER").is_some_and(|u| u == "root"));
    if real_root {
        return Ok(PathBuf::from("/run/onggi"));
    }
    match xdg {
        Some(d) => Ok(PathBuf::from(d).join("onggi")),
        None => anyhow::bail!(
            "not root and XDG_RUNTIME_DIR is not set: give --root DIR (a directory you own)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_keeps_its_own_about() {
        let mut cmd = command();
        cmd.build();
        let about = |name: &str| {
            let sub = cmd.find_subcommand(name).expect("a subcommand");
            sub.get_about().map(|a| a.to_string()).unwrap_or_default()
        };
        assert_eq!(about("exec"), "Run a new process in a running container");
        assert!(about("spec").starts_with("Write a config.json"));
        assert!(about("update").starts_with("Change the resources"));
        assert!(about("checkpoint").starts_with("Save a running container"));
        assert!(about("restore").starts_with("Bring a container back"));
    }

    fn parse(v: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(v.iter().map(OsString::from))
    }

    #[test]
    fn go_runcs_single_dash_no_subreaper_is_the_restore_flag() {
        let v = ["onggi", "restore", "-no-subreaper", "--bundle", "b", "c1"];
        let args = runc_single_dash(v.iter().map(OsString::from).collect());
        match Cli::try_parse_from(args).expect("parses").command {
            Some(Command::Restore(a)) => assert!(a.no_subreaper && a.id == "c1"),
            _ => panic!("not restore"),
        }
        let run = ["onggi", "run", "-b", "b", "c1"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(runc_single_dash(run.clone()), run);
    }

    #[test]
    fn global_flags_both_forms() {
        let c = parse(&[
            "onggi",
            "--root=/x",
            "--log",
            "/l",
            "--log-format=json",
            "state",
            "c1",
        ])
        .expect("parses");
        assert_eq!(c.root, Some(PathBuf::from("/x")));
        assert_eq!(c.log, Some(PathBuf::from("/l")));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn create_flags_after_id() {
        let c =
            parse(&["onggi", "create", "c1", "--bundle", "/b", "--pid-file=/p"]).expect("parses");
        match c.command {
            Some(Command::Create(a)) => {
                assert_eq!(a.id, "c1");
                assert_eq!(a.bundle, PathBuf::from("/b"));
                assert_eq!(a.pid_file, Some(PathBuf::from("/p")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kill_default_signal_and_all() {
        match parse(&["onggi", "kill", "--all", "c1"])
            .expect("parses")
            .command
        {
            Some(Command::Kill { all, id, signal }) => {
                assert!(all);
                assert_eq!(id, "c1");
                assert_eq!(signal, "TERM");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scan_log_flags_finds_json() {
        let args: Vec<OsString> = ["onggi", "--log", "/tmp/l", "--log-format=json", "bogus"]
            .iter()
            .map(OsString::from)
            .collect();
        let (l, f) = scan_log_flags(&args);
        assert_eq!(l, Some(PathBuf::from("/tmp/l")));
        assert_eq!(f, LogFormat::Json);
    }
}
