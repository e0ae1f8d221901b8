//! The `--log FILE --log-format text|json` contract that containerd and podman rely on, and the
//! `--debug` stream.
//!
//! * Every failure writes one line to stderr and, with `--log`, appends one line to the log file:
//!   `{"level":"error","msg":"…","time":"<RFC3339>"}` in json format (containerd reads the last
//!   error line, podman parses the file as a single object on a failed create), or
//!   `time="…" level=error msg="…"` (logrus' text format, as runc writes it).
//! * The log file is opened (and created) as soon as the global flags are parsed, so it exists
//!   even when onggi fails early.
//! * Debug lines (the trace of each setup step) go to the log file, or to stderr without one,
//!   and only with `--debug`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

struct Logger {
    file: Option<File>,
    format: LogFormat,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets up the logger from the global flags. The file is opened O_APPEND|O_CLOEXEC and created
/// with mode 0640 when missing.
pub(crate) fn init(path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(p)?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
    Ok(())
}

/// The descriptor debug lines go to (the log file, else stderr), for a forked child that must
/// keep writing to the same place.
pub(crate) fn debug_fd() -> Option<BorrowedFd<'static>> {
    let l = LOGGER.get()?;
    if !l.debug {
        return None;
    }
    match &l.file {
        Some(f) => Some(f.as_fd()),
        None => Some(crate::sys::stderr()),
    }
}

fn line(format: LogFormat, level: &str, msg: &str) -> String {
    let time = rfc3339(SystemTime::now());
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        }
        LogFormat::Text => {
            format!("time=\"{time}\" level={level} msg={}\n", quote(msg))
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Reports a failure: one line on stderr, one line in the log file.
/// The line says `error:`, as runc's says `level=error`: scripts grep for it.
pub(crate) fn error(msg: &str) {
    report("error", "error: ", msg);
}

/// A warning: stderr and the log file, like an error, but the command goes on.
pub(crate) fn warn(msg: &str) {
    report("warning", "warning: ", msg);
}

/// `msg` as one line: control characters (a newline inside a config string, say) escaped as
/// `\n`, `\t`, `\u{1b}`.
pub(crate) fn one_line(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(char::is_control) {
        return msg.into();
    }
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

fn report(level: &str, prefix: &str, msg: &str) {
    let msg = &*one_line(msg);
    let _ = writeln!(std::io::stderr(), "onggi: {prefix}{msg}");
    if let Some(Logger {
        file: Some(f),
        format,
        ..
    }) = LOGGER.get()
    {
        let _ = (&*f).write_all(line(*format, level, msg).as_bytes());
    }
}

/// Writes `text` and a newline to stdout (command output: state, list, features …). A reader
/// that went away (`onggi --version | head -1`) ends onggi quietly with 141 (128+SIGPIPE), as a
/// tool killed by SIGPIPE would, instead of a panic.
pub(crate) fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let r = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if r.is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
        crate::sys::exit_now(128 + libc::SIGPIPE);
    }
}

/// One line on stderr, never failing (the init reports its last error this way).
pub(crate) fn stderr_line(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{}", one_line(msg));
}

/// Writes a debug line straight to a descriptor: used by the container init, which writes to the
/// descriptor it inherited from onggi.
pub(crate) fn debug_to(fd: BorrowedFd<'_>, msg: &str) {
    let format = LOGGER.get().map_or(LogFormat::Text, |l| l.format);
    let text = line(format, "debug", msg);
    let _ = nix::unistd::write(fd, text.as_bytes());
}

/// RFC 3339 time in UTC with nanoseconds, e.g. `2026-11-23T13:46:05.123456789Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_one_line() {
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(one_line("a\nb\tc\u{1b}[31m"), "a\\nb\\tc\\u{1b}[31m");
        assert!(!one_line("x\r\ny").contains('\n'));
    }
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.5
        let t = UNIX_EPOCH + Duration::new(951_827_696, 500_000_000);
        assert_eq!(rfc3339(t), "2000-02-29T12:34:56.500000000Z");
        // 2026-11-23T00:00:00Z
        let t = UNIX_EPOCH + Duration::from_secs(1_795_392_000);
        assert_eq!(rfc3339(t), "2026-11-23T00:00:00.000000000Z");
    }

    #[test]
    fn json_line_is_one_object() {
        let l = line(LogFormat::Json, "error", "bad \"thing\"\nhere");
        assert!(l.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(l.trim_end()).expect("json");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "bad \"thing\"\nhere");
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn text_line_quotes_message() {
        let l = line(LogFormat::Text, "error", "a \"b\"");
        assert!(l.contains("level=error msg=\"a \\\"b\\\"\""), "{l}");
    }
}
