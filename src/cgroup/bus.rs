//! The systemd driver's D-Bus calls (org.freedesktop.systemd1.Manager), synchronous, through
//! libdbus (the `dbus` crate, built in: no thread, no runtime library needed): start a transient
//! scope and wait for its job, change a unit's properties, stop a unit and forget it.

use anyhow::{anyhow, bail, Context, Result};
use dbus::arg::{RefArg, Variant};
use dbus::blocking::LocalConnection;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cgroup::systemd::{Properties, Value};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a job (start or stop of a scope: both are immediate for systemd) may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

type Props = Vec<(String, Variant<Box<dyn RefArg>>)>;

/// A connection to systemd: the system bus, or a rootless caller's user bus.
pub(crate) struct Bus {
    conn: LocalConnection,
    /// JobRemoved signals seen so far: (job path, result).
    removed: Rc<RefCell<Vec<(String, String)>>>,
}

impl Bus {
    pub(crate) fn connect(rootless: bool) -> Result<Bus> {
        let conn = if rootless {
            let addr = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok().or_else(|| {
                std::env::var("XDG_RUNTIME_DIR")
                    .ok()
                    .map(|d| format!("unix:path={d}/bus"))
            });
            let addr = addr.context("--systemd-cgroup, not root: no user bus (neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set)")?;
            let ch = dbus::channel::Channel::open_private(&addr)
                .and_then(|mut ch| ch.register().map(|()| ch))
                .map_err(|e| {
                    anyhow!(
                        "--systemd-cgroup: cannot reach systemd on the user bus {addr}: {}",
                        text(&e)
                    )
                })?;
            LocalConnection::from(ch)
        } else {
            LocalConnection::new_system().map_err(|e| {
                let addr = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                    .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
                anyhow!(
                    "--systemd-cgroup: cannot reach systemd on the system bus ({addr}): {}",
                    text(&e)
                )
            })?
        };
        Ok(Bus {
            conn,
            removed: Rc::default(),
        })
    }

    fn manager(&self) -> dbus::blocking::Proxy<'_, &LocalConnection> {
        self.conn.with_proxy(DEST, PATH, JOB_TIMEOUT)
    }

    /// Watches JobRemoved (systemd sends its signals only once a client has subscribed).
    fn watch_jobs(&self) -> Result<()> {
        let seen = self.removed.clone();
        let rule = dbus::message::MatchRule::new_signal(MANAGER, "JobRemoved");
        self.conn
            .add_match(
                rule,
                move |(_, job, _, result): (u32, dbus::Path<'static>, String, String), _, _| {
                    seen.borrow_mut().push((job.to_string(), result));
                    true
                },
            )
            .map_err(|e| anyhow!("systemd: AddMatch JobRemoved: {}", text(&e)))?;
        let r: Result<(), dbus::Error> = self.manager().method_call(MANAGER, "Subscribe", ());
        r.map_err(|e| anyhow!("systemd: Subscribe: {}", text(&e)))
    }

    /// Starts the transient scope `unit` and waits for its job. A failed unit of that name left
    /// from an earlier container is reset first.
    pub(crate) fn start_scope(&self, unit: &str, props: &Properties) -> Result<()> {
        self.watch_jobs()?;
        let call = || -> Result<dbus::Path<'static>, dbus::Error> {
            let aux: Vec<(String, Props)> = Vec::new();
            let (job,) = self.manager().method_call(
                MANAGER,
                "StartTransientUnit",
                (unit, "replace", to_dbus(props), aux),
            )?;
            Ok(job)
        };
        let job = match call() {
            Err(e) if e.name() == Some("org.freedesktop.systemd1.UnitExists") => {
                self.reset_failed(unit);
                call()
            }
            r => r,
        }
        .map_err(|e| anyhow!("systemd: StartTransientUnit {unit}: {}", text(&e)))?;
        match self.wait(&job)?.as_str() {
            "done" => Ok(()),
            r => bail!("systemd: the start job of {unit} ended {r:?} (see journalctl -u {unit})"),
        }
    }

    /// `update`: the unit's properties, at runtime (not persisted).
    pub(crate) fn set_properties(&self, unit: &str, props: &Properties) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let r: Result<(), dbus::Error> =
            self.manager()
                .method_call(MANAGER, "SetUnitProperties", (unit, true, to_dbus(props)));
        r.map_err(|e| anyhow!("systemd: SetUnitProperties {unit}: {}", text(&e)))
    }

    /// Stops `unit` (a unit that is gone already is fine) and forgets a failed one, so that
    /// nothing of the container stays in systemd.
    pub(crate) fn stop(&self, unit: &str) -> Result<()> {
        self.watch_jobs()?;
        let r: Result<(dbus::Path<'static>,), dbus::Error> =
            self.manager()
                .method_call(MANAGER, "StopUnit", (unit, "replace"));
        match r {
            Ok((job,)) => {
                self.wait(&job)?;
            }
            Err(e) if e.name() == Some("org.freedesktop.systemd1.NoSuchUnit") => {}
            Err(e) => bail!("systemd: StopUnit {unit}: {}", text(&e)),
        }
        self.reset_failed(unit);
        Ok(())
    }

    fn reset_failed(&self, unit: &str) {
        let _: Result<(), dbus::Error> =
            self.manager()
                .method_call(MANAGER, "ResetFailedUnit", (unit,));
    }

    /// The result of `job` ("done", "failed", "timeout" …) once systemd removes it.
    fn wait(&self, job: &dbus::Path<'_>) -> Result<String> {
        let deadline = Instant::now() + JOB_TIMEOUT;
        let job = job.to_string();
        loop {
            if let Some((_, r)) = self.removed.borrow().iter().find(|(j, _)| *j == job) {
                return Ok(r.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("systemd: job {job} did not finish within {JOB_TIMEOUT:?}");
            }
            self.conn
                .process(left)
                .map_err(|e| anyhow!("systemd: waiting for job {job}: {}", text(&e)))?;
        }
    }
}

fn text(e: &dbus::Error) -> String {
    match (e.name(), e.message()) {
        (Some(n), Some(m)) => format!("{m} ({n})"),
        (_, Some(m)) => m.to_string(),
        (Some(n), None) => n.to_string(),
        _ => "unknown D-Bus error".into(),
    }
}

fn to_dbus(props: &Properties) -> Props {
    props
        .iter()
        .map(|(k, v)| {
            let v: Box<dyn RefArg> = match v {
                Value::Bool(b) => Box::new(*b),
                Value::U64(n) => Box::new(*n),
                Value::I64(n) => Box::new(*n),
                Value::U32(n) => Box::new(*n),
                Value::I32(n) => Box::new(*n),
                Value::F64(n) => Box::new(*n),
                Value::Str(s) => Box::new(s.clone()),
                Value::Strs(s) => Box::new(s.clone()),
                Value::Bytes(b) => Box::new(b.clone()),
                Value::Pids(p) => Box::new(p.clone()),
            };
            (k.clone(), Variant(v))
        })
        .collect()
}
