//! Named setup steps and their trace events: the create flow as a readable timeline.
//!
//! Every step of the create flow runs through [`step`], under a stable name (`clone3`,
//! `mount`, `pivot_root`, `capabilities` …). With tracing on, each step emits one event: its
//! name, the kernel calls it made with their key arguments, whether it failed, and how long it
//! took. With tracing off a step costs one relaxed atomic load: the call details are closures
//! that are never run.
//!
//! Three sinks, chosen once at startup ([`enable`]):
//! * `--trace` (text): one aligned line per step on stderr, e.g.
//!   `+   1.204ms onggi  clone3               clone3(CLONE_NEWNS|CLONE_NEWPID) = pid 4242  (1035us)`
//! * `--trace --trace-format json`: one JSON object per line on stderr
//!   (`{"t_us":…,"who":"init","pid":…,"step":"mounts","calls":[…],"took_us":…}`).
//! * `--trace --trace-format chrome`: Chrome's trace-event JSON on stderr, which Perfetto and
//!   chrome://tracing open: `[` once, then one event per line, each ending with a comma (the
//!   format lets the closing `]` be left out, so a trace cut short still loads). Each step is a
//!   complete event (`"ph":"X"`) on its process's track, its calls as arguments; the times are
//!   CLOCK_MONOTONIC, so the tracks of onggi, the init and exec line up.
//! * `--debug`: the same events as `level=debug` lines of the log (`--log`, else stderr), in the
//!   log's format, as `step=NAME | call | call | took=Nus`.
//!
//! The trace descriptor is a close-on-exec duplicate of stderr taken at startup, so the
//! container init (a forked copy of onggi) keeps reporting its own steps to the caller's stderr
//! after its stdio became the container's; it disappears at the final execve.

use std::fmt::Write as _;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where and how events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `--debug`: log lines (`step=NAME | … | took=Nus`).
    Debug,
    /// `--trace`: aligned human-readable lines on stderr.
    Text,
    /// `--trace --trace-format json`: one JSON object per line on stderr.
    Json,
    /// `--trace --trace-format chrome`: Chrome trace events on stderr.
    Chrome,
}

/// Who emits an event: onggi itself, the container init it forked, or a process joining the
/// container for `exec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    Onggi = 0,
    Init = 1,
    Exec = 2,
}

const OFF: u8 = 0;
static MODE: AtomicU8 = AtomicU8::new(OFF);
static WHO: AtomicU8 = AtomicU8::new(Who::Onggi as u8);
/// Where events go: a close-on-exec duplicate made at startup, never closed.
static SINK: OnceLock<std::os::fd::OwnedFd> = OnceLock::new();
static START: OnceLock<Instant> = OnceLock::new();
/// This process's pid as the host sees it (the init is pid 1 in its own namespace).
static PID: AtomicI32 = AtomicI32::new(0);
/// Chrome format: this process's track has been named (a metadata event before its first).
static NAMED: AtomicBool = AtomicBool::new(false);

/// Turns tracing on (once, at startup). For `Text`/`Json` the events go to a close-on-exec
/// duplicate of stderr; for `Debug` to the log's debug descriptor.
pub(crate) fn enable(mode: Mode) -> std::io::Result<()> {
    let fd = match mode {
        Mode::Debug => match crate::logging::debug_fd() {
            Some(fd) => fd.try_clone_to_owned()?,
            None => return Ok(()),
        },
        Mode::Text | Mode::Json | Mode::Chrome => crate::sys::stderr().try_clone_to_owned()?,
    };
    if mode == Mode::Chrome {
        nix::unistd::write(fd.as_fd(), b"[\n")?;
    }
    let _ = START.set(Instant::now());
    let _ = SINK.set(fd);
    MODE.store(mode as u8 + 1, Ordering::Relaxed);
    Ok(())
}

fn mode() -> Option<Mode> {
    match MODE.load(Ordering::Relaxed) {
        OFF => None,
        1 => Some(Mode::Debug),
        2 => Some(Mode::Text),
        3 => Some(Mode::Json),
        _ => Some(Mode::Chrome),
    }
}

pub(crate) fn enabled() -> bool {
    MODE.load(Ordering::Relaxed) != OFF
}

/// Marks this process as the container init or an exec'd process (called right after clone3,
/// while /proc is still the host's: its `self` link names the pid the host sees).
pub(crate) fn set_who(who: Who) {
    WHO.store(who as u8, Ordering::Relaxed);
    NAMED.store(false, Ordering::Relaxed);
    if enabled() {
        let pid = std::fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| std::process::id() as i32);
        PID.store(pid, Ordering::Relaxed);
    }
}

fn who() -> &'static str {
    match WHO.load(Ordering::Relaxed) {
        1 => "init",
        2 => "exec",
        _ => "onggi",
    }
}

/// The kernel calls one step made, recorded only when tracing is on.
pub(crate) struct Calls {
    on: bool,
    list: Vec<String>,
}

impl Calls {
    /// Records one call; `f` runs only when tracing is on. Several calls may be given in one
    /// note separated by ` | `.
    pub(crate) fn note(&mut self, f: impl FnOnce() -> String) {
        if self.on {
            self.list.push(f());
        }
    }
}

/// Runs the step `name`; with tracing on, emits its event when it ends.
pub(crate) fn step<T, E: std::fmt::Display>(
    name: &'static str,
    f: impl FnOnce(&mut Calls) -> Result<T, E>,
) -> Result<T, E> {
    if !enabled() {
        return f(&mut Calls {
            on: false,
            list: Vec::new(),
        });
    }
    let start = Instant::now();
    let mut calls = Calls {
        on: true,
        list: Vec::new(),
    };
    let r = f(&mut calls);
    let took = start.elapsed();
    let error = r.as_ref().err().map(|e| format!("{e:#}"));
    emit(&Event {
        step: name,
        calls: &calls.list,
        error: error.as_deref(),
        took: Some(took),
    });
    r
}

/// Emits the event of a step that was timed by hand (clone3: both processes return from it,
/// only the parent reports it).
pub(crate) fn finished(name: &'static str, took: Duration, call: impl FnOnce() -> String) {
    if enabled() {
        emit(&Event {
            step: name,
            calls: &[call()],
            error: None,
            took: Some(took),
        });
    }
}

/// Emits a moment that is not a timed step (the wait at the start gate, the final execve, a
/// warning).
pub(crate) fn moment(name: &'static str, f: impl FnOnce() -> String) {
    if enabled() {
        emit(&Event {
            step: name,
            calls: &[f()],
            error: None,
            took: None,
        });
    }
}

/// The descriptor events go to, if any: the init and exec'd processes keep it open.
pub(crate) fn sink() -> Option<BorrowedFd<'static>> {
    SINK.get().filter(|_| enabled()).map(|fd| fd.as_fd())
}

struct Event<'a> {
    step: &'static str,
    calls: &'a [String],
    error: Option<&'a str>,
    took: Option<Duration>,
}

fn emit(ev: &Event<'_>) {
    let (Some(mode), Some(fd)) = (mode(), sink()) else {
        return;
    };
    let since = START.get().map(Instant::elapsed).unwrap_or_default();
    match mode {
        Mode::Debug => crate::logging::debug_to(fd, &debug_line(ev)),
        Mode::Text => {
            let _ = nix::unistd::write(fd, text_line(ev, since, who()).as_bytes());
        }
        Mode::Json => {
            let _ = nix::unistd::write(fd, json_line(ev, since, who()).as_bytes());
        }
        Mode::Chrome => {
            let first = !NAMED.swap(true, Ordering::Relaxed);
            let line = chrome_line(ev, monotonic_us(), pid(), who(), first);
            let _ = nix::unistd::write(fd, line.as_bytes());
        }
    }
}

/// This process's pid as the host sees it.
fn pid() -> i32 {
    match PID.load(Ordering::Relaxed) {
        0 => std::process::id() as i32,
        p => p,
    }
}

/// CLOCK_MONOTONIC in microseconds: one clock for every process of a trace.
fn monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

/// One Chrome trace event (and, before a process's first, the metadata naming its track), each
/// a line ending with a comma. A step is a complete event that began `took` before `now_us`; a
/// moment is an instant event.
fn chrome_line(ev: &Event<'_>, now_us: u64, pid: i32, who: &str, first: bool) -> String {
    let mut out = String::new();
    if first {
        let meta = serde_json::json!({"name": "process_name", "ph": "M", "pid": pid, "tid": pid,
            "args": {"name": format!("{who} (pid {pid})")}});
        let _ = writeln!(out, "{meta},");
    }
    let mut args = serde_json::json!({"calls": split(ev.calls).collect::<Vec<_>>()});
    if let Some(e) = ev.error {
        args["error"] = serde_json::json!(e);
    }
    let mut v =
        serde_json::json!({"name": ev.step, "cat": who, "pid": pid, "tid": pid, "args": args});
    match ev.took {
        Some(t) => {
            let dur = t.as_micros() as u64;
            v["ph"] = "X".into();
            v["ts"] = now_us.saturating_sub(dur).into();
            v["dur"] = dur.into();
        }
        None => {
            v["ph"] = "i".into();
            v["s"] = "p".into();
            v["ts"] = now_us.into();
        }
    }
    let _ = writeln!(out, "{v},");
    out
}

/// Each recorded note, split into its individual calls.
fn split(calls: &[String]) -> impl Iterator<Item = &str> {
    calls
        .iter()
        .flat_map(|c| c.split(" | "))
        .filter(|c| !c.is_empty())
}

fn debug_line(ev: &Event<'_>) -> String {
    let mut msg = format!("step={}", ev.step);
    for c in split(ev.calls) {
        let _ = write!(msg, " | {c}");
    }
    if let Some(e) = ev.error {
        let _ = write!(msg, " | FAILED: {e}");
    }
    if let Some(t) = ev.took {
        let _ = write!(msg, " | took={}us", t.as_micros());
    }
    msg
}

fn text_line(ev: &Event<'_>, since: Duration, who: &str) -> String {
    let ms = since.as_secs_f64() * 1000.0;
    let mut line = format!("+{ms:9.3}ms {who:<5} {:<22}", ev.step);
    let calls: Vec<&str> = split(ev.calls).collect();
    line.push_str(if calls.is_empty() { "-" } else { "" });
    line.push_str(&calls.join("; "));
    if let Some(e) = ev.error {
        let _ = write!(line, "  FAILED: {e}");
    }
    if let Some(t) = ev.took {
        let _ = write!(line, "  ({}us)", t.as_micros());
    }
    line.push('\n');
    line
}

fn json_line(ev: &Event<'_>, since: Duration, who: &str) -> String {
    let mut v = serde_json::json!({
        "t_us": since.as_micros() as u64,
        "who": who,
        "pid": match PID.load(Ordering::Relaxed) {
            0 => std::process::id() as i32,
            p => p,
        },
        "step": ev.step,
        "calls": split(ev.calls).collect::<Vec<_>>(),
    });
    if let Some(t) = ev.took {
        v["took_us"] = serde_json::json!(t.as_micros() as u64);
    }
    if let Some(e) = ev.error {
        v["error"] = serde_json::json!(e);
    }
    format!("{v}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(calls: &'a [String], error: Option<&'a str>) -> Event<'a> {
        Event {
            step: "mounts",
            calls,
            error,
            took: Some(Duration::from_micros(124)),
        }
    }

    #[test]
    fn text_line_is_aligned_and_splits_calls() {
        let calls = vec!["mount(proc, /proc) | mount(tmpfs, /dev)".to_string()];
        let l = text_line(&ev(&calls, None), Duration::from_micros(1204), "init");
        assert_eq!(
            l,
            "+    1.204ms init  mounts                mount(proc, /proc); mount(tmpfs, /dev)  (124us)\n"
        );
        let l = text_line(&ev(&[], Some("EPERM")), Duration::ZERO, "onggi");
        assert!(
            l.contains("mounts                -  FAILED: EPERM  (124us)"),
            "{l}"
        );
    }

    #[test]
    fn json_line_has_the_calls_as_a_list() {
        let calls = vec!["a(1) | b(2)".to_string(), "c(3)".to_string()];
        let l = json_line(&ev(&calls, None), Duration::from_micros(7), "exec");
        let v: serde_json::Value =
            serde_json::from_str(l.trim_end()).expect("test fixture is valid");
        assert_eq!(v["step"], "mounts");
        assert_eq!(v["who"], "exec");
        assert_eq!(v["t_us"], 7);
        assert_eq!(v["took_us"], 124);
        assert_eq!(v["calls"], serde_json::json!(["a(1)", "b(2)", "c(3)"]));
        assert!(v.get("error").is_none());
    }

    #[test]
    fn chrome_line_is_a_complete_event_after_its_track_name() {
        let calls = vec!["a(1) | b(2)".to_string()];
        let out = chrome_line(&ev(&calls, None), 10_000, 42, "init", true);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l.strip_suffix(',').expect("ends with a comma")))
            .collect::<Result<_, _>>()
            .expect("each line is one JSON event");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["ph"], "M");
        assert_eq!(lines[0]["args"]["name"], "init (pid 42)");
        let e = &lines[1];
        assert_eq!(
            (&e["name"], &e["ph"], &e["pid"]),
            (&"mounts".into(), &"X".into(), &42.into())
        );
        assert_eq!(
            (e["ts"].as_u64(), e["dur"].as_u64()),
            (Some(10_000 - 124), Some(124))
        );
        assert_eq!(e["args"]["calls"], serde_json::json!(["a(1)", "b(2)"]));
        let moment = Event {
            step: "gate",
            calls: &[],
            error: None,
            took: None,
        };
        let out = chrome_line(&moment, 5, 42, "init", false);
        assert!(
            out.starts_with('{') && out.ends_with("},\n") && out.contains("\"ph\":\"i\""),
            "{out}"
        );
    }

    #[test]
    fn debug_line_keeps_the_log_shape() {
        let calls = vec!["x | y".to_string()];
        assert_eq!(
            debug_line(&ev(&calls, Some("boom"))),
            "step=mounts | x | y | FAILED: boom | took=124us"
        );
    }
}
