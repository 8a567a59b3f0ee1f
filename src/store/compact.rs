//! Store layer: the compact rows of a run (schema 3). A run keeps what
//! drift, change checks and `history verify` read — per port its address,
//! number, protocol, state, service name and when it was seen; per finding
//! its id, check, severity, status, port and message — as integer-keyed
//! `WITHOUT ROWID` rows, with every repeated text (service names, check
//! kinds, messages) stored once in `texts`. The report keeps the rest.
//!
//! Rows are read back in key order (address, port, protocol; finding id),
//! the order of [`super::drift::open_ports`] and of drift's outputs, so
//! two runs are compared by walking both cursors side by side and a run is
//! hashed or checked without holding it.

use std::net::IpAddr;

use rusqlite::Connection;

use crate::model::{FindingStatus, PortState, Proto, Severity};

/// Schema 2 → 3: runs written from now on keep compact rows; older runs
/// keep their JSON rows (and their hashes) and are read as before.
pub(super) const MIGRATION: &str = r#"
ALTER TABLE runs ADD COLUMN format INTEGER NOT NULL DEFAULT 2;
CREATE TABLE texts (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);
CREATE TABLE run_ports (
    run_id  INTEGER NOT NULL,
    ip      BLOB NOT NULL,
    port    INTEGER NOT NULL,
    proto   INTEGER NOT NULL,
    state   INTEGER NOT NULL,
    service INTEGER,
    seen    INTEGER NOT NULL,
    PRIMARY KEY (run_id, ip, port, proto)
) WITHOUT ROWID;
CREATE TABLE run_findings (
    run_id   INTEGER NOT NULL,
    fid      TEXT NOT NULL,
    check_id INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    status   INTEGER NOT NULL,
    ip       BLOB NOT NULL,
    port     INTEGER,
    proto    INTEGER,
    message  INTEGER NOT NULL,
    PRIMARY KEY (run_id, fid)
) WITHOUT ROWID;
"#;

/// `runs.format` of a run whose rows are JSON texts (schema 1 and 2).
pub(super) const FORMAT_JSON: i64 = 2;
/// `runs.format` of a run whose rows are compact.
pub(super) const FORMAT_COMPACT: i64 = 3;

/// The ports of a run in key order, texts resolved.
pub(super) const PORTS_SQL: &str = "SELECT p.ip, p.port, p.proto, p.state, t.text, p.seen \
     FROM run_ports p LEFT JOIN texts t ON t.id = p.service \
     WHERE p.run_id = ?1 ORDER BY p.ip, p.port, p.proto";

/// The findings of a run in id order, texts resolved (`?2`: only failing).
pub(super) const FINDINGS_SQL: &str = "SELECT f.fid, c.text, f.severity, f.status, f.ip, f.port, \
     f.proto, m.text FROM run_findings f LEFT JOIN texts c ON c.id = f.check_id \
     LEFT JOIN texts m ON m.id = f.message \
     WHERE f.run_id = ?1 AND (?2 = 0 OR f.status != 1) ORDER BY f.fid";

/// Addresses sort as [`IpAddr`] does: the family first, then the octets.
pub(super) fn ip_blob(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => [&[4u8][..], &a.octets()].concat(),
        IpAddr::V6(a) => [&[6u8][..], &a.octets()].concat(),
    }
}

fn blob_ip(b: &[u8]) -> Option<IpAddr> {
    match b {
        [4, rest @ ..] => <[u8; 4]>::try_from(rest).ok().map(IpAddr::from),
        [6, rest @ ..] => <[u8; 16]>::try_from(rest).ok().map(IpAddr::from),
        _ => None,
    }
}

pub(super) fn proto_code(p: Proto) -> i64 {
    match p {
        Proto::Tcp => 0,
        Proto::Udp => 1,
    }
}

fn code_proto(c: i64) -> Option<Proto> {
    [Proto::Tcp, Proto::Udp]
        .get(usize::try_from(c).ok()?)
        .copied()
}

const STATES: [PortState; 4] = [
    PortState::Closed,
    PortState::Open,
    PortState::Filtered,
    PortState::OpenFiltered,
];

pub(super) fn state_code(s: PortState) -> i64 {
    STATES.iter().position(|x| *x == s).unwrap_or(0) as i64
}

pub(super) fn severity_code(s: Severity) -> i64 {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0) as i64
}

const STATUSES: [FindingStatus; 3] = [
    FindingStatus::Fail,
    FindingStatus::Waived,
    FindingStatus::ExpiredWaiver,
];

pub(super) fn status_code(s: FindingStatus) -> i64 {
    STATUSES.iter().position(|x| *x == s).unwrap_or(0) as i64
}

fn get<T: Copy>(all: &[T], c: i64) -> Option<T> {
    all.get(usize::try_from(c).ok()?).copied()
}

/// One port of a run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PortRow {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub state: PortState,
    pub service: Option<String>,
    /// Microseconds since the epoch.
    pub seen: i64,
}

/// One finding of a run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FindingRow {
    pub id: String,
    pub check: String,
    pub severity: Severity,
    pub status: FindingStatus,
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub proto: Option<Proto>,
    pub message: String,
}

/// A stored row that does not decode: what is wrong with it.
pub(super) type Bad = String;

/// The raw columns of a [`PORTS_SQL`] row, hashed as stored.
pub(super) struct RawPort {
    ip: Vec<u8>,
    port: i64,
    proto: i64,
    state: i64,
    service: Option<String>,
    seen: i64,
}

pub(super) fn raw_port(r: &rusqlite::Row) -> rusqlite::Result<RawPort> {
    Ok(RawPort {
        ip: r.get(0)?,
        port: r.get(1)?,
        proto: r.get(2)?,
        state: r.get(3)?,
        service: r.get(4)?,
        seen: r.get(5)?,
    })
}

impl RawPort {
    pub(super) fn decode(&self) -> Result<PortRow, Bad> {
        let bad = |what: &str| format!("a port row has an invalid {what}");
        Ok(PortRow {
            ip: blob_ip(&self.ip).ok_or_else(|| bad("address"))?,
            port: u16::try_from(self.port).map_err(|_| bad("port"))?,
            proto: code_proto(self.proto).ok_or_else(|| bad("protocol"))?,
            state: get(&STATES, self.state).ok_or_else(|| bad("state"))?,
            service: self.service.clone(),
            seen: self.seen,
        })
    }

    /// Feeds the row, field by field and length-prefixed, to `put`.
    pub(super) fn hash_into(&self, put: &mut dyn FnMut(&[u8])) {
        put(b"P");
        put(&self.ip);
        put(&self.port.to_be_bytes());
        put(&self.proto.to_be_bytes());
        put(&self.state.to_be_bytes());
        match &self.service {
            Some(s) => put(format!("+{s}").as_bytes()),
            None => put(b"-"),
        }
        put(&self.seen.to_be_bytes());
    }
}

/// The raw columns of a [`FINDINGS_SQL`] row.
pub(super) struct RawFinding {
    id: String,
    check: Option<String>,
    severity: i64,
    status: i64,
    ip: Vec<u8>,
    port: Option<i64>,
    proto: Option<i64>,
    message: Option<String>,
}

pub(super) fn raw_finding(r: &rusqlite::Row) -> rusqlite::Result<RawFinding> {
    Ok(RawFinding {
        id: r.get(0)?,
        check: r.get(1)?,
        severity: r.get(2)?,
        status: r.get(3)?,
        ip: r.get(4)?,
        port: r.get(5)?,
        proto: r.get(6)?,
        message: r.get(7)?,
    })
}

impl RawFinding {
    pub(super) fn decode(&self) -> Result<FindingRow, Bad> {
        let bad = |what: &str| format!("finding {} has an invalid {what}", self.id);
        Ok(FindingRow {
            id: self.id.clone(),
            check: self.check.clone().ok_or_else(|| bad("check"))?,
            severity: get(&Severity::ALL, self.severity).ok_or_else(|| bad("severity"))?,
            status: get(&STATUSES, self.status).ok_or_else(|| bad("status"))?,
            ip: blob_ip(&self.ip).ok_or_else(|| bad("address"))?,
            port: self
                .port
                .map(|p| u16::try_from(p).map_err(|_| bad("port")))
                .transpose()?,
            proto: self
                .proto
                .map(|p| code_proto(p).ok_or_else(|| bad("protocol")))
                .transpose()?,
            message: self.message.clone().ok_or_else(|| bad("message"))?,
        })
    }

    pub(super) fn hash_into(&self, put: &mut dyn FnMut(&[u8])) {
        let opt = |v: Option<i64>| v.map_or(-1i64, |v| v).to_be_bytes();
        put(b"F");
        put(self.id.as_bytes());
        put(self.check.as_deref().unwrap_or("\u{0}").as_bytes());
        put(&self.severity.to_be_bytes());
        put(&self.status.to_be_bytes());
        put(&self.ip);
        put(&opt(self.port));
        put(&opt(self.proto));
        put(self.message.as_deref().unwrap_or("\u{0}").as_bytes());
    }
}

/// Walks the stored rows of compact run `id` in key order: `port` gets
/// each port row, `finding` each finding row. Stops at the first error.
pub(super) fn walk<E>(
    conn: &Connection,
    id: i64,
    sql: &dyn Fn(rusqlite::Error) -> E,
    port: &mut dyn FnMut(RawPort) -> Result<(), E>,
    finding: &mut dyn FnMut(RawFinding) -> Result<(), E>,
) -> Result<(), E> {
    let mut st = conn.prepare_cached(PORTS_SQL).map_err(sql)?;
    let mut rows = st.query([id]).map_err(sql)?;
    while let Some(r) = rows.next().map_err(sql)? {
        port(raw_port(r).map_err(sql)?)?;
    }
    let mut st = conn.prepare_cached(FINDINGS_SQL).map_err(sql)?;
    let mut rows = st.query(rusqlite::params![id, 0]).map_err(sql)?;
    while let Some(r) = rows.next().map_err(sql)? {
        finding(raw_finding(r).map_err(sql)?)?;
    }
    Ok(())
}
