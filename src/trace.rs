//! Named setup steps and their trace events.
//!
//! Every step of the create flow runs through [`step`], under a stable name (`clone3`,
//! `mount`, `pivot_root`, `capabilities` …). With `--debug` each step emits one event: its name,
//! the kernel calls it made with their key arguments, whether it failed, and how long it took.
//! Without `--debug` a step costs one relaxed atomic load: the call details are closures that
//! are never run.
//!
//! Events are written straight to the debug descriptor (the log file or stderr), so the
//! container init, a forked copy of onggi, reports its own steps in order with the parent's.

use std::fmt::Write as _;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns tracing on (called once at startup with `--debug`).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The kernel calls one step made, recorded only when tracing is on.
pub struct Calls {
    on: bool,
    list: Vec<String>,
}

impl Calls {
    /// Records one call; `f` runs only when tracing is on.
    pub fn note(&mut self, f: impl FnOnce() -> String) {
        if self.on {
            self.list.push(f());
        }
    }
}

/// Runs the step `name`; with tracing on, emits its event when it ends.
pub fn step<T, E: std::fmt::Display>(
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
    let mut msg = format!("step={name}");
    for c in &calls.list {
        let _ = write!(msg, " | {c}");
    }
    if let Err(e) = &r {
        let _ = write!(msg, " | FAILED: {e}");
    }
    let _ = write!(msg, " | took={}us", took.as_micros());
    emit(&msg);
    r
}

fn emit(msg: &str) {
    if let Some(fd) = crate::logging::debug_fd() {
        crate::logging::debug_to(fd, msg);
    }
}

/// Emits a free-standing event (for moments that are not steps, e.g. "waiting at start gate").
pub fn event(f: impl FnOnce() -> String) {
    if enabled() {
        emit(&f());
    }
}

/// The descriptor events go to, if any (kept open across the fork into the init).
pub fn sink() -> Option<BorrowedFd<'static>> {
    if enabled() {
        crate::logging::debug_fd()
    } else {
        None
    }
}
