//! `state` and `list`: they read without the lock and never wait for another command.

use anyhow::Result;
use std::fmt::Write as _;

use crate::spec;
use crate::state::{ContainerDir, State, Status, Store, StoreError};

/// The OCI state of a container, with runc's extra fields (rootfs, created, owner: empty here,
/// as in runc's `state`; `list` fills it in).
pub(crate) fn oci_state(dir: &ContainerDir, s: &State) -> serde_json::Value {
    let status = dir.status(s);
    let pid = if status == Status::Stopped { 0 } else { s.pid };
    serde_json::json!({
        "ociVersion": spec::OCI_VERSION,
        "id": s.id,
        "pid": pid,
        "status": status.to_string(),
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": "",
        "annotations": s.annotations,
    })
}

/// `state`: the OCI state JSON on stdout. Reads only: never waits for another command.
pub(crate) fn state(store: &Store, id: &str) -> Result<()> {
    let dir = store.peek(id)?;
    let s = dir
        .load()?
        .ok_or_else(|| StoreError::NotExist(id.to_string()))?;
    let v = oci_state(&dir, &s);
    crate::logging::print(&serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `list`.
pub(crate) fn list(store: &Store, quiet: bool, json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for id in store.ids()? {
        let Ok(dir) = store.peek(&id) else { continue };
        let s = match dir.load() {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                // As runc: said on stderr, the others are still listed.
                crate::logging::warn(&format!("{e:#} (`delete --force {id}` removes it)"));
                continue;
            }
        };
        let mut v = oci_state(&dir, &s);
        // The owner's name is looked up here only (NSS is too slow for every create).
        v["owner"] = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(s.owner_uid))
            .ok()
            .flatten()
            .map_or_else(|| s.owner_uid.to_string(), |u| u.name)
            .into();
        rows.push(v);
    }
    let mut out = String::new();
    if quiet {
        for r in &rows {
            writeln!(out, "{}", r["id"].as_str().unwrap_or_default())?;
        }
    } else if json {
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
    } else {
        let table: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                let f = |k: &str| match &r[k] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                [
                    f("id"),
                    f("pid"),
                    f("status"),
                    f("bundle"),
                    f("created"),
                    f("owner"),
                ]
            })
            .collect();
        let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
        let mut widths = head.clone().map(|h| h.len());
        for row in &table {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.len());
            }
        }
        for row in std::iter::once(&head).chain(table.iter()) {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            writeln!(out, "{}", line.join("   ").trim_end())?;
        }
    }
    if !out.is_empty() {
        crate::logging::print(out.trim_end_matches('\n'));
    }
    Ok(())
}
