//! CRIU's RPC messages (criu/images/rpc.proto, proto2), the part onggi sends and reads, as
//! typed Rust values with their protobuf wire encoding. A dozen fields do not need a protobuf
//! runtime and its generated code: the encoder writes each set field as `key, value`, the decoder
//! reads the response's fields by number and skips the rest, so a newer CRIU's extra fields
//! cost nothing.

use anyhow::{bail, Result};

/// criu_req_type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReqType {
    Dump = 1,
    Restore = 2,
    PreDump = 4,
    Notify = 6,
    Version = 10,
}

impl ReqType {
    fn from_wire(n: u64) -> Option<ReqType> {
        Some(match n {
            1 => ReqType::Dump,
            2 => ReqType::Restore,
            4 => ReqType::PreDump,
            6 => ReqType::Notify,
            10 => ReqType::Version,
            _ => return None,
        })
    }
}

/// criu_cg_mode: what CRIU does with the cgroups (`--manage-cgroups-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CgroupMode {
    Ignore = 0,
    Soft = 3,
    Full = 4,
    Strict = 5,
}

/// criu_opts: the options of one dump or restore.
#[derive(Debug, Default)]
pub(crate) struct Opts {
    /// In the requester's descriptor table (CRIU opens /proc/<onggi>/fd/N).
    pub(crate) images_dir_fd: i32,
    pub(crate) work_dir_fd: Option<i32>,
    pub(crate) pid: Option<i32>,
    pub(crate) log_file: String,
    pub(crate) log_level: i32,
    pub(crate) root: Option<String>,
    pub(crate) parent_img: Option<String>,
    pub(crate) leave_running: bool,
    pub(crate) ext_unix_sk: bool,
    pub(crate) tcp_established: bool,
    pub(crate) tcp_skip_in_flight: bool,
    pub(crate) shell_job: bool,
    pub(crate) file_locks: bool,
    pub(crate) notify_scripts: bool,
    pub(crate) track_mem: bool,
    pub(crate) auto_dedup: bool,
    pub(crate) manage_cgroups: bool,
    pub(crate) manage_cgroups_mode: Option<CgroupMode>,
    pub(crate) rst_sibling: bool,
    pub(crate) orphan_pts_master: bool,
    pub(crate) lazy_pages: bool,
    pub(crate) freeze_cgroup: Option<String>,
    pub(crate) lsm_profile: Option<String>,
    pub(crate) lsm_mount_context: Option<String>,
    /// ext_mnt: (mount point in the container, what it is on the host).
    pub(crate) ext_mnt: Vec<(String, String)>,
    /// inherit_fd: (the resource's key in the images, a descriptor of the CRIU process).
    pub(crate) inherit_fd: Vec<(String, i32)>,
    /// cg_root: the cgroup (below the cgroup2 mount) that stands for the container's root.
    pub(crate) cg_root: Option<String>,
    /// external: `net[INODE]:KEY` and the like.
    pub(crate) external: Vec<String>,
    /// CLONE_NEW* flags of namespaces restored empty.
    pub(crate) empty_ns: u32,
}

/// criu_req.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) kind: ReqType,
    pub(crate) opts: Option<Opts>,
    /// For a NOTIFY answer: whether onggi's side of the notification succeeded.
    pub(crate) notify_success: Option<bool>,
}

impl Request {
    pub(crate) fn new(kind: ReqType, opts: Opts) -> Request {
        Request {
            kind,
            opts: Some(opts),
            notify_success: None,
        }
    }

    /// The answer to a notification.
    pub(crate) fn notified(success: bool) -> Request {
        Request {
            kind: ReqType::Notify,
            opts: None,
            notify_success: Some(success),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.varint(1, self.kind as u64);
        if let Some(o) = &self.opts {
            w.message(2, &o.encode());
        }
        if let Some(s) = self.notify_success {
            w.varint(3, s as u64);
        }
        w.0
    }
}

impl Opts {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.int32(1, self.images_dir_fd);
        if let Some(p) = self.pid {
            w.int32(2, p);
        }
        let flags = [
            (3, self.leave_running),
            (4, self.ext_unix_sk),
            (5, self.tcp_established),
            (7, self.shell_job),
            (8, self.file_locks),
            (12, self.notify_scripts),
            (15, self.track_mem),
            (16, self.auto_dedup),
            (24, self.manage_cgroups),
            (26, self.rst_sibling),
            (46, self.tcp_skip_in_flight),
            (48, self.lazy_pages),
            (50, self.orphan_pts_master),
        ];
        for (field, on) in flags {
            if on {
                w.varint(field, 1);
            }
        }
        w.int32(9, self.log_level);
        w.string(10, &self.log_file);
        let strings = [
            (13, &self.root),
            (14, &self.parent_img),
            (44, &self.freeze_cgroup),
            (53, &self.lsm_profile),
            (63, &self.lsm_mount_context),
        ];
        for (field, s) in strings {
            if let Some(s) = s {
                w.string(field, s);
            }
        }
        if let Some(fd) = self.work_dir_fd {
            w.int32(17, fd);
        }
        for (key, val) in &self.ext_mnt {
            let mut m = Writer::default();
            m.string(1, key);
            m.string(2, val);
            w.message(23, &m.0);
        }
        for (key, fd) in &self.inherit_fd {
            let mut m = Writer::default();
            m.string(1, key);
            m.int32(2, *fd);
            w.message(27, &m.0);
        }
        if let Some(path) = &self.cg_root {
            let mut m = Writer::default();
            m.string(2, path);
            w.message(25, &m.0);
        }
        if let Some(mode) = self.manage_cgroups_mode {
            w.varint(34, mode as u64);
        }
        for e in &self.external {
            w.string(37, e);
        }
        if self.empty_ns != 0 {
            w.varint(38, self.empty_ns as u64);
        }
        w.0
    }
}

/// criu_resp, the fields onggi reads.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Response {
    pub(crate) kind: Option<ReqType>,
    pub(crate) success: bool,
    /// restore.pid: the restored init, in onggi's pid namespace.
    pub(crate) restored_pid: Option<i32>,
    /// notify.script and notify.pid.
    pub(crate) notify: Option<(String, i32)>,
    pub(crate) errno: Option<i32>,
    pub(crate) errmsg: Option<String>,
    /// version: (major, minor, sublevel).
    pub(crate) version: Option<(i32, i32, i32)>,
}

impl Response {
    pub(crate) fn decode(buf: &[u8]) -> Result<Response> {
        let mut r = Response::default();
        for field in Reader(buf) {
            match field? {
                (1, Value::Varint(n)) => r.kind = ReqType::from_wire(n),
                (2, Value::Varint(n)) => r.success = n != 0,
                (4, Value::Bytes(b)) => r.restored_pid = int_field(b, 1)?,
                (5, Value::Bytes(b)) => {
                    let script = string_field(b, 1)?.unwrap_or_default();
                    r.notify = Some((script, int_field(b, 2)?.unwrap_or(0)));
                }
                (7, Value::Varint(n)) => r.errno = Some(n as i32),
                (9, Value::Bytes(b)) => r.errmsg = Some(String::from_utf8_lossy(b).into_owned()),
                (10, Value::Bytes(b)) => {
                    let n = |f| int_field(b, f).map(|v| v.unwrap_or(0));
                    r.version = Some((n(1)?, n(2)?, n(4)?));
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

fn int_field(msg: &[u8], number: u32) -> Result<Option<i32>> {
    for field in Reader(msg) {
        if let (n, Value::Varint(v)) = field? {
            if n == number {
                return Ok(Some(v as i32));
            }
        }
    }
    Ok(None)
}

fn string_field(msg: &[u8], number: u32) -> Result<Option<String>> {
    for field in Reader(msg) {
        if let (n, Value::Bytes(b)) = field? {
            if n == number {
                return Ok(Some(String::from_utf8_lossy(b).into_owned()));
            }
        }
    }
    Ok(None)
}

/// The protobuf wire format, the two field kinds rpc.proto uses (varints and
/// length-delimited), plus the fixed-size kinds skipped.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn varint(&mut self, field: u32, v: u64) {
        self.raw_varint(u64::from(field) << 3);
        self.raw_varint(v);
    }

    /// int32: a negative value is sign-extended to ten bytes, as protobuf does.
    fn int32(&mut self, field: u32, v: i32) {
        self.varint(field, i64::from(v) as u64);
    }

    fn message(&mut self, field: u32, bytes: &[u8]) {
        self.raw_varint((u64::from(field) << 3) | 2);
        self.raw_varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.message(field, s.as_bytes());
    }
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn raw_varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&b, rest)) = self.0.split_first() else {
                bail!("CRIU's answer ends inside a number");
            };
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("CRIU's answer has a number longer than 64 bits")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            bail!("CRIU's answer ends inside a field");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>)> {
        let key = self.raw_varint()?;
        let number = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Value::Varint(self.raw_varint()?),
            1 => self.take(8).map(|_| Value::Fixed)?,
            2 => {
                let n = self.raw_varint()? as usize;
                Value::Bytes(self.take(n)?)
            }
            5 => self.take(4).map(|_| Value::Fixed)?,
            t => bail!("CRIU's answer has a field of unknown wire type {t}"),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let r = self.field();
        if r.is_err() {
            self.0 = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_request_has_the_fields_protobuf_would_write() {
        let opts = Opts {
            images_dir_fd: 5,
            pid: Some(300),
            log_file: "dump.log".into(),
            log_level: 4,
            leave_running: true,
            ext_mnt: vec![("/data".into(), "/data".into())],
            ..Opts::default()
        };
        let bytes = Request::new(ReqType::Dump, opts).encode();
        // type = 1; opts = {images_dir_fd 5, pid 300 (0xac 0x02), leave_running, log_level 4,
        // log_file "dump.log", ext_mnt {key, val}}.
        let want_opts: Vec<u8> = [
            &[0x08, 5, 0x10, 0xac, 0x02, 0x18, 1, 0x48, 4][..],
            &[0x52, 8],
            b"dump.log",
            &[0xba, 0x01, 14, 0x0a, 5],
            b"/data",
            &[0x12, 5],
            b"/data",
        ]
        .concat();
        let mut want = vec![0x08, 1, 0x12, want_opts.len() as u8];
        want.extend_from_slice(&want_opts);
        assert_eq!(bytes, want);
    }

    #[test]
    fn negative_int32_takes_ten_bytes() {
        let mut w = Writer::default();
        w.int32(1, -1);
        assert_eq!(
            w.0,
            [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn responses_decode_and_unknown_fields_are_skipped() {
        let mut notify = Writer::default();
        notify.string(1, "post-restore");
        notify.int32(2, 4242);
        let mut restore = Writer::default();
        restore.int32(1, 4242);
        let mut w = Writer::default();
        w.varint(1, 2);
        w.varint(2, 1);
        w.message(4, &restore.0);
        w.message(5, &notify.0);
        w.0.extend_from_slice(&[0x5d, 1, 2, 3, 4]); // field 11, fixed32: skipped
        w.varint(7, 2);
        w.string(9, "Dumping FAILED");
        let r = Response::decode(&w.0).expect("decodes");
        assert_eq!(r.kind, Some(ReqType::Restore));
        assert!(r.success);
        assert_eq!(r.restored_pid, Some(4242));
        assert_eq!(r.notify, Some(("post-restore".into(), 4242)));
        assert_eq!(r.errno, Some(2));
        assert_eq!(r.errmsg.as_deref(), Some("Dumping FAILED"));
    }

    #[test]
    fn a_truncated_response_is_an_error_not_a_panic() {
        let mut w = Writer::default();
        w.string(9, "cut short");
        for n in 0..w.0.len() {
            let _ = Response::decode(&w.0[..n]);
        }
        assert!(Response::decode(&w.0[..w.0.len() - 1]).is_err());
        assert!(Response::decode(&[0x0f]).is_err(), "wire type 7");
    }
}
