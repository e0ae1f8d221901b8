//! `onggi spec` with Docker's flags: what a learner types after `docker run` becomes the
//! config.json fields it means (`onggi spec --memory 64m --user 1000:1000 -- sh`). Each flag
//! edits the default config (runc's); the result is parsed and validated as `create` would, so
//! a bad value is one line naming the flag and no file is written.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

// The flags, in `docker run`'s spelling.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct SpecFlags {
    /// The command, split at spaces (for quoting, give it after `--` instead)
    #[arg(long, value_name = "CMD")]
    pub(crate) args: Option<String>,
    /// An environment variable (repeatable); a bare NAME takes onggi's own value
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub(crate) env: Vec<String>,
    /// Environment variables from a file, one K=V per line (# comments)
    #[arg(long, value_name = "FILE")]
    pub(crate) env_file: Vec<PathBuf>,
    /// The working directory inside (process.cwd)
    #[arg(short = 'w', long, value_name = "DIR")]
    pub(crate) cwd: Option<String>,
    /// The container's hostname
    #[arg(long, value_name = "NAME")]
    pub(crate) hostname: Option<String>,
    /// A bind mount, SRC:DST[:ro] (docker's -v)
    #[arg(short = 'v', long = "mount", value_name = "SRC:DST[:ro]")]
    pub(crate) mounts: Vec<String>,
    /// A tmpfs at DST
    #[arg(long, value_name = "DST")]
    pub(crate) tmpfs: Vec<String>,
    /// none (its own network namespace with lo only), host, or the path of a namespace to join
    #[arg(long = "net", value_name = "none|host|PATH")]
    pub(crate) net: Option<String>,
    /// host: share the host's pid namespace
    #[arg(long, value_name = "host")]
    pub(crate) pid: Option<String>,
    /// UID[:GID], numbers (the rootfs's /etc/passwd is not read)
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub(crate) user: Option<String>,
    /// A read-only root filesystem (runc's default); --read-only=false makes it writable
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) read_only: Option<bool>,
    /// A memory limit: bytes, or with k, m or g (64m)
    #[arg(short = 'm', long, value_name = "SIZE")]
    pub(crate) memory: Option<String>,
    /// The most processes the container may have
    #[arg(long, value_name = "N")]
    pub(crate) pids_limit: Option<i64>,
    /// CPUs' worth of time per period (0.5: half a CPU)
    #[arg(long, value_name = "N")]
    pub(crate) cpus: Option<f64>,
    /// A capability to add (repeatable; CAP_ optional; ALL)
    #[arg(long, value_name = "CAP")]
    pub(crate) cap_add: Vec<String>,
    /// A capability to drop (repeatable; CAP_ optional; ALL)
    #[arg(long, value_name = "CAP")]
    pub(crate) cap_drop: Vec<String>,
    /// A terminal for the process (process.terminal)
    #[arg(short = 't', long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) tty: Option<bool>,
    /// default (podman's and Docker's profile), unconfined, or a seccomp JSON file
    #[arg(long, value_name = "default|unconfined|FILE")]
    pub(crate) seccomp: Option<String>,
    /// The command and its arguments
    #[arg(last = true, value_name = "CMD")]
    pub(crate) cmd: Vec<String>,
}

/// Where podman's containers-common package puts the default seccomp profile.
pub(crate) const DEFAULT_SECCOMP: &str = "/usr/share/containers/seccomp.json";

impl SpecFlags {
    /// Applies the flags to `c` (a default config), in the order `docker run` reads them.
    pub(crate) fn apply(&self, c: &mut Value) -> Result<()> {
        self.process(c)?;
        self.filesystems(c)?;
        self.namespaces(c)?;
        self.resources(c)?;
        self.capabilities(c)?;
        if let Some(s) = &self.seccomp {
            seccomp(c, s)?;
        }
        Ok(())
    }

    fn process(&self, c: &mut Value) -> Result<()> {
        let p = &mut c["process"];
        if let Some(a) = &self.args {
            p["args"] = json!(a.split_whitespace().collect::<Vec<_>>());
            if self.args.as_deref().is_some_and(|a| a.trim().is_empty()) {
                bail!("--args: empty command");
            }
        }
        if !self.cmd.is_empty() {
            p["args"] = json!(self.cmd);
        }
        let mut env: Vec<String> = Vec::new();
        for f in &self.env_file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--env-file {}", f.display()))?;
            let lines = text.lines().map(str::trim);
            env.extend(
                lines
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        env.extend(self.env.iter().cloned());
        for kv in env {
            set_env(p, &kv)?;
        }
        if let Some(d) = &self.cwd {
            if !d.starts_with('/') {
                bail!("--cwd {d:?}: must be an absolute path inside the container");
            }
            p["cwd"] = json!(d);
        }
        if let Some(u) = &self.user {
            let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
            let num = |s: &str| -> Result<u32> {
                s.parse().with_context(|| {
                    format!("--user {u:?}: UID[:GID] as numbers (onggi does not read the rootfs's /etc/passwd)")
                })
            };
            p["user"] = json!({ "uid": num(uid)?, "gid": num(gid)? });
        }
        if let Some(t) = self.tty {
            p["terminal"] = json!(t);
        }
        if let Some(h) = &self.hostname {
            c["hostname"] = json!(h);
        }
        Ok(())
    }

    fn filesystems(&self, c: &mut Value) -> Result<()> {
        if let Some(ro) = self.read_only {
            c["root"]["readonly"] = json!(ro);
        }
        for m in &self.mounts {
            let parts: Vec<&str> = m.split(':').collect();
            let (src, dst, mode) = match parts[..] {
                [s, d] => (s, d, "rw"),
                [s, d, o @ ("ro" | "rw")] => (s, d, o),
                _ => bail!("--mount {m:?}: SRC:DST or SRC:DST:ro"),
            };
            let src =
                std::path::absolute(Path::new(src)).with_context(|| format!("--mount {m:?}"))?;
            if !src.exists() {
                bail!("--mount {m:?}: {} does not exist", src.display());
            }
            if !dst.starts_with('/') {
                bail!("--mount {m:?}: the destination must be an absolute path");
            }
            push_mount(
                c,
                json!({ "destination": dst, "type": "bind",
                "source": src, "options": ["rbind", mode] }),
            );
        }
        for d in &self.tmpfs {
            if !d.starts_with('/') {
                bail!("--tmpfs {d:?}: must be an absolute path");
            }
            push_mount(
                c,
                json!({ "destination": d, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"] }),
            );
        }
        Ok(())
    }

    fn namespaces(&self, c: &mut Value) -> Result<()> {
        let ns = &mut c["linux"]["namespaces"];
        let drop = |ns: &mut Value, t: &str| {
            if let Some(a) = ns.as_array_mut() {
                a.retain(|n| n["type"] != t);
            }
        };
        match self.net.as_deref() {
            None | Some("none") => {}
            Some("host") => drop(ns, "network"),
            Some(p) if p.starts_with('/') => {
                if !Path::new(p).exists() {
                    bail!("--net {p}: no such network namespace file");
                }
                drop(ns, "network");
                push(ns, json!({ "type": "network", "path": p }));
            }
            Some(o) => bail!("--net {o:?}: none, host, or the path of a network namespace"),
        }
        match self.pid.as_deref() {
            None => {}
            Some("host") => drop(ns, "pid"),
            Some(o) => bail!("--pid {o:?}: only host is known"),
        }
        Ok(())
    }

    fn resources(&self, c: &mut Value) -> Result<()> {
        let r = &mut c["linux"]["resources"];
        if let Some(m) = &self.memory {
            r["memory"]["limit"] = json!(size(m).with_context(|| format!("--memory {m:?}"))?);
        }
        if let Some(n) = self.pids_limit {
            if n == 0 || n < -1 {
                bail!("--pids-limit {n}: a positive number (or -1: unlimited)");
            }
            r["pids"]["limit"] = json!(n);
        }
        if let Some(cpus) = self.cpus {
            if !(cpus > 0.0 && cpus <= 4096.0) {
                bail!("--cpus {cpus}: a positive number of CPUs");
            }
            r["cpu"] = json!({ "quota": (cpus * 100_000.0).round() as i64, "period": 100_000 });
        }
        Ok(())
    }

    fn capabilities(&self, c: &mut Value) -> Result<()> {
        if self.cap_add.is_empty() && self.cap_drop.is_empty() {
            return Ok(());
        }
        let parse = |flag: &str, list: &[String]| -> Result<Vec<String>> {
            list.iter()
                .map(|n| cap_name(n).with_context(|| format!("{flag} {n:?}")))
                .collect()
        };
        let (add, drop) = (
            parse("--cap-add", &self.cap_add)?,
            parse("--cap-drop", &self.cap_drop)?,
        );
        let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        let caps = &mut c["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted", "ambient"] {
            let mut cur: Vec<String> = serde_json::from_value(caps[set].take()).unwrap_or_default();
            if drop.iter().any(|d| d == "ALL") {
                cur.clear();
            }
            cur.retain(|x| !drop.contains(x));
            // Ambient capabilities are only ever dropped (raising one needs it inheritable).
            if set != "ambient" {
                for a in &add {
                    let more = if a == "ALL" {
                        all.clone()
                    } else {
                        vec![a.clone()]
                    };
                    for m in more {
                        if !cur.contains(&m) {
                            cur.push(m);
                        }
                    }
                }
            }
            cur.sort();
            caps[set] = json!(cur);
        }
        Ok(())
    }
}

fn push(v: &mut Value, item: Value) {
    if let Some(a) = v.as_array_mut() {
        a.push(item);
    } else {
        *v = json!([item]);
    }
}

fn push_mount(c: &mut Value, m: Value) {
    push(&mut c["mounts"], m);
}

/// K=V replaces an earlier K; a bare K takes onggi's own value (as `docker run -e K` does).
fn set_env(p: &mut Value, kv: &str) -> Result<()> {
    let kv = match kv.split_once('=') {
        Some(("", _)) => bail!("--env {kv:?}: no name before ="),
        Some(_) => kv.to_string(),
        None => match std::env::var(kv) {
            Ok(v) => format!("{kv}={v}"),
            Err(_) => return Ok(()),
        },
    };
    let key = kv.split('=').next().unwrap_or("").to_string();
    let mut env: Vec<String> = serde_json::from_value(p["env"].take()).unwrap_or_default();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
    p["env"] = json!(env);
    Ok(())
}

/// `64m`, `1g`, `512k`, `1048576`, `100b`: bytes.
pub(crate) fn size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t.as_str(), 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| *n > 0.0)
        .context("a size: bytes, or a number with k, m or g")?;
    Ok((n * mult as f64) as i64)
}

/// `net_admin`, `CAP_NET_ADMIN`, `ALL` → `CAP_NET_ADMIN` / `ALL`, checked against the kernel's
/// names.
fn cap_name(n: &str) -> Result<String> {
    let up = n.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    full.parse::<caps::Capability>()
        .map(|c| c.to_string())
        .map_err(|_| anyhow::anyhow!("no such capability"))
}

/// `--seccomp`: podman's default profile (turned into an OCI one for these capabilities and
/// this architecture, as podman does), none, or a file of the config's linux.seccomp form.
fn seccomp(c: &mut Value, how: &str) -> Result<()> {
    let linux = &mut c["linux"];
    match how {
        "unconfined" => {
            if let Some(o) = linux.as_object_mut() {
                o.remove("seccomp");
            }
        }
        "default" => {
            let text = std::fs::read_to_string(DEFAULT_SECCOMP).with_context(|| {
                format!("--seccomp default reads podman's profile {DEFAULT_SECCOMP} (Debian: golang-github-containers-common, installed with podman)")
            })?;
            let profile: Value = serde_json::from_str(&text)
                .with_context(|| format!("--seccomp default: {DEFAULT_SECCOMP}"))?;
            let caps: Vec<String> =
                serde_json::from_value(c["process"]["capabilities"]["bounding"].clone())
                    .unwrap_or_default();
            c["linux"]["seccomp"] = crate::seccomp_profile::to_oci(&profile, &caps)?;
        }
        file => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("--seccomp {file}"))?;
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("--seccomp {file}: not JSON"))?;
            // From bytes, as create reads config.json: one deserializer in the binary.
            serde_json::from_slice::<oci_spec::runtime::LinuxSeccomp>(text.as_bytes()).map_err(
                |e| anyhow::anyhow!("--seccomp {file}: not a linux.seccomp object: {e}"),
            )?;
            linux["seccomp"] = v;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(f: SpecFlags) -> Result<Value> {
        let mut c = crate::spec::default_config();
        f.apply(&mut c)?;
        Ok(c)
    }

    #[test]
    fn docker_flags_become_config_fields() {
        let c = applied(SpecFlags {
            cmd: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["A=1".into(), "TERM=dumb".into()],
            cwd: Some("/tmp".into()),
            user: Some("1000:1000".into()),
            memory: Some("64m".into()),
            cpus: Some(0.5),
            pids_limit: Some(20),
            net: Some("host".into()),
            cap_drop: vec!["all".into()],
            cap_add: vec!["net_bind_service".into()],
            tty: Some(false),
            read_only: Some(false),
            ..Default::default()
        })
        .expect("the test input is valid");
        assert_eq!(c["process"]["args"], json!(["sh", "-c", "echo hi"]));
        let env = c["process"]["env"].to_string();
        assert!(
            env.contains("A=1") && env.contains("TERM=dumb") && !env.contains("xterm"),
            "{env}"
        );
        assert_eq!(c["process"]["user"], json!({"uid": 1000, "gid": 1000}));
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], json!(67108864));
        assert_eq!(
            c["linux"]["resources"]["cpu"],
            json!({"quota": 50000, "period": 100000})
        );
        assert!(!c["linux"]["namespaces"].to_string().contains("network"));
        assert_eq!(
            c["process"]["capabilities"]["bounding"],
            json!(["CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(c["process"]["capabilities"]["ambient"], json!([]));
        assert_eq!(c["root"]["readonly"], json!(false));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: Vec<(SpecFlags, &str)> = vec![
            (
                SpecFlags {
                    memory: Some("lots".into()),
                    ..Default::default()
                },
                "--memory",
            ),
            (
                SpecFlags {
                    user: Some("bob".into()),
                    ..Default::default()
                },
                "--user",
            ),
            (
                SpecFlags {
                    cap_add: vec!["CAP_FLY".into()],
                    ..Default::default()
                },
                "--cap-add",
            ),
            (
                SpecFlags {
                    net: Some("bridge".into()),
                    ..Default::default()
                },
                "--net",
            ),
            (
                SpecFlags {
                    mounts: vec!["/nonexistent-src:/x".into()],
                    ..Default::default()
                },
                "--mount",
            ),
            (
                SpecFlags {
                    cwd: Some("tmp".into()),
                    ..Default::default()
                },
                "--cwd",
            ),
            (
                SpecFlags {
                    cpus: Some(0.0),
                    ..Default::default()
                },
                "--cpus",
            ),
        ];
        for (f, flag) in cases {
            let e = format!("{:#}", applied(f).expect_err("the test input is invalid"));
            assert!(e.starts_with(flag), "{flag}: {e}");
        }
        assert_eq!(size("1g").expect("the test input is valid"), 1 << 30);
        assert_eq!(size("512K").expect("the test input is valid"), 512 << 10);
    }
}
