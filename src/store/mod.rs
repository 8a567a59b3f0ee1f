//! Store layer: the audit history, an embedded SQLite database.
//!
//! Every audit leaves one run record — its scope, parameters, policy hash,
//! observations and findings — written in one transaction, so a run is
//! either wholly in the history or not at all. Comparing runs of the same
//! scope is how drift and unapproved changes are found; a single audit
//! cannot see them. Because auditors must be able to trust that history,
//! each run stores the SHA-256 of its canonical content and of the previous
//! run's record: editing or deleting a run breaks the chain, and
//! [`Store::verify`] names the run.
//!
//! The chain alone cannot tell a deleted newest run, or a database
//! replaced wholesale, from an untouched one, and anyone can recompute
//! plain SHA-256 hashes after an edit. So each report's `manifest.json`
//! carries a [`HistoryAnchor`] (its run id and the chain head before it,
//! while the run records the manifest's hash): [`Store::check_anchor`]
//! proves the store still holds that run. With a [`HistoryKey`] the chain
//! becomes an HMAC-SHA256 chain, which cannot be recomputed without the
//! key. `docs/history.md` lists exactly what is and is not detected.
//!
//! The database is opened in WAL mode with a busy timeout and records under
//! an immediate transaction, so two audits finishing at once both land and
//! the chain stays linear. The schema is versioned with `PRAGMA
//! user_version` and migrated forward on open.

mod calendar;
mod compact;
mod compare;
pub mod drift;
mod hash;
mod legacy;
pub(crate) mod metrics;
mod open;
mod verify;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Finding, HistoryAnchor, Observation, PortState, Severity};

pub use crate::model::drift::ExceptionNote;
pub use drift::{Drift, PortChange, ServiceChange, drift};
pub use verify::{Tamper, Verification};

/// The schema version this build writes; older databases are migrated.
pub const SCHEMA_VERSION: i64 = 3;

/// A run hashed with plain SHA-256 (no key).
pub const CHAIN_SHA256: &str = "sha256";
/// A run hashed with HMAC-SHA256 under the history key.
pub const CHAIN_HMAC: &str = "hmac-sha256";

/// The `prev_hash` of the first run.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: [&str; 3] = [
    r#"
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    started       TEXT NOT NULL,
    finished      TEXT NOT NULL,
    scope_key     TEXT NOT NULL,
    scope         TEXT NOT NULL,
    params        TEXT NOT NULL,
    policy_hash   TEXT,
    manifest_hash TEXT,
    exceptions    TEXT NOT NULL,
    open_ports    INTEGER NOT NULL,
    severities    TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    content_hash  TEXT NOT NULL
);
CREATE INDEX runs_scope ON runs(scope_key, id);
CREATE TABLE observations (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    seq    INTEGER NOT NULL,
    ip     TEXT NOT NULL,
    port   INTEGER NOT NULL,
    state  TEXT NOT NULL,
    json   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE findings (
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    seq      INTEGER NOT NULL,
    fid      TEXT NOT NULL,
    severity TEXT NOT NULL,
    status   TEXT NOT NULL,
    json     TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#,
    r#"
ALTER TABLE runs ADD COLUMN chain TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE runs ADD COLUMN key_id TEXT;
"#,
    compact::MIGRATION,
];

/// Errors of the history store; each says which file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history {path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("history {path}: cannot create its directory: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "history {path}: schema version {found} is newer than this portwarden understands ({SCHEMA_VERSION}); upgrade portwarden"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error("history {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("history {path}: run {id} has unreadable {what}: {source}")]
    Corrupt {
        path: PathBuf,
        id: i64,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("history {path}: no run {id}; `portwarden history list` shows the runs it holds")]
    NoSuchRun { path: PathBuf, id: i64 },
    #[error("no audit history at {path} (run an audit first, or give --store PATH)")]
    Missing { path: PathBuf },
    #[error(
        "history {path} is an empty file (0 bytes): it holds no runs and no chain. If audits were recorded there, it was truncated; move it aside to start a new history"
    )]
    EmptyFile { path: PathBuf },
    #[error(
        "history {path} is HMAC-keyed (run {run} was recorded with key {key_id}): give the key with PORTWARDEN_HISTORY_KEY or --history-key-file"
    )]
    KeyNeeded {
        path: PathBuf,
        run: i64,
        key_id: String,
    },
    #[error(
        "history {path}: the key given (id {given}) is not the one run {run} was recorded with (id {key_id})"
    )]
    WrongKey {
        path: PathBuf,
        run: i64,
        key_id: String,
        given: String,
    },
    #[error(
        "history {path}: {problem}; refusing to use a broken chain (`portwarden history verify` lists every problem)"
    )]
    Broken {
        path: PathBuf,
        run: i64,
        problem: String,
    },
    #[error("history key: {0}")]
    BadKey(String),
    #[error(
        "history {path}: interrupted while waiting for another audit to finish writing (nothing recorded)"
    )]
    Interrupted { path: PathBuf },
}

/// The secret that turns the chain into an HMAC-SHA256 chain: with it, a
/// run edited and its chain recomputed without the key no longer verifies.
#[derive(Clone)]
pub struct HistoryKey(Vec<u8>);

impl std::fmt::Debug for HistoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HistoryKey(id {})", self.id())
    }
}

impl HistoryKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from its bytes (a trailing newline is not part of it).
    pub fn new(bytes: &[u8]) -> Result<HistoryKey, StoreError> {
        let mut v = bytes.to_vec();
        while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            v.pop();
        }
        if v.len() < Self::MIN_LEN {
            return Err(StoreError::BadKey(format!(
                "{} bytes is too short: use at least {} (e.g. `head -c 32 /dev/urandom | base64`)",
                v.len(),
                Self::MIN_LEN
            )));
        }
        Ok(HistoryKey(v))
    }

    /// Reads a key file (at most 4 KiB).
    pub fn from_file(path: &Path) -> Result<HistoryKey, StoreError> {
        use std::io::Read;
        let f = std::fs::File::open(path)
            .map_err(|e| StoreError::BadKey(format!("cannot read {}: {e}", path.display())))?;
        let mut bytes = Vec::new();
        f.take(4097)
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::BadKey(format!("cannot read {}: {e}", path.display())))?;
        if bytes.len() > 4096 {
            return Err(StoreError::BadKey(format!(
                "{} is larger than 4 KiB: not a key file",
                path.display()
            )));
        }
        HistoryKey::new(&bytes).map_err(|e| StoreError::BadKey(format!("{}: {e}", path.display())))
    }

    /// A public name of the key (not the key): the first 8 bytes of an
    /// HMAC of a fixed label, in hex.
    pub fn id(&self) -> String {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key length");
        m.update(b"portwarden history key id");
        hex::encode(&m.finalize().into_bytes()[..8])
    }
}

/// Where the history lives unless `--store` says otherwise:
/// `$XDG_DATA_HOME/portwarden/history.db`, else
/// `~/.local/share/portwarden/history.db`.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/share")
        }
    };
    Some(base.join("portwarden").join("history.db"))
}

/// What was audited. Runs with the same [`ScopeRecord::key`] are compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRecord {
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
    pub ports: String,
    pub key: String,
}

impl ScopeRecord {
    /// The key ignores the order of targets and excludes (and duplicates):
    /// `a b` and `b a` are the same scope.
    pub fn new(targets: &[String], excludes: &[String], ports: &str) -> ScopeRecord {
        let norm = |v: &[String]| {
            let mut v: Vec<String> = v.iter().map(|s| s.trim().to_string()).collect();
            v.sort();
            v.dedup();
            v
        };
        let (t, e) = (norm(targets), norm(excludes));
        let text = format!("t={}\ne={}\np={}", t.join(","), e.join(","), ports.trim());
        ScopeRecord {
            targets: t,
            excludes: e,
            ports: ports.trim().to_string(),
            key: hex::encode(&Sha256::digest(text.as_bytes())[..8]),
        }
    }
}

/// A run about to be recorded.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub scope: ScopeRecord,
    /// Engine, rates, identification, gate, source of the observations…
    pub params: serde_json::Value,
    /// SHA-256 of the policy file's bytes (`None` without a policy).
    pub policy_hash: Option<String>,
    /// SHA-256 of the report's `manifest.json`, when the report has one.
    pub manifest_hash: Option<String>,
    pub exceptions: Vec<ExceptionNote>,
    pub observations: Vec<Observation>,
    pub findings: Vec<Finding>,
}

/// A recorded run.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub record: NewRun,
    pub prev_hash: String,
    pub content_hash: String,
}

/// One line of `history list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub scope_key: String,
    pub targets: Vec<String>,
    pub ports: String,
    pub open_ports: i64,
    /// Failing (non-waived) findings by severity.
    pub findings: BTreeMap<Severity, i64>,
}

/// The runs table row, as stored (texts unparsed: the hash is over them).
struct Row {
    id: i64,
    started: String,
    finished: String,
    scope_key: String,
    scope: String,
    params: String,
    policy_hash: Option<String>,
    manifest_hash: Option<String>,
    exceptions: String,
    open_ports: i64,
    severities: String,
    prev_hash: String,
    content_hash: String,
    /// [`CHAIN_SHA256`] or [`CHAIN_HMAC`].
    chain: String,
    key_id: Option<String>,
    /// How its rows are stored: `compact::FORMAT_JSON` or `FORMAT_COMPACT`.
    format: i64,
}

const ROW_COLUMNS: &str = "id, started, finished, scope_key, scope, params, policy_hash, \
     manifest_hash, exceptions, open_ports, severities, prev_hash, content_hash, chain, key_id, \
     format";

fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        started: r.get(1)?,
        finished: r.get(2)?,
        scope_key: r.get(3)?,
        scope: r.get(4)?,
        params: r.get(5)?,
        policy_hash: r.get(6)?,
        manifest_hash: r.get(7)?,
        exceptions: r.get(8)?,
        open_ports: r.get(9)?,
        severities: r.get(10)?,
        prev_hash: r.get(11)?,
        content_hash: r.get(12)?,
        chain: r.get(13)?,
        key_id: r.get(14)?,
        format: r.get(15)?,
    })
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The audit history.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    key: Option<HistoryKey>,
    /// Raised (a signal), a wait for another process's write lock ends
    /// with [`StoreError::Interrupted`].
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// A run being recorded: the write lock is held from [`Store::begin_record`]
/// to [`PendingRecord::commit`], so the anchor it promises (the run's id
/// and the head it links to) is the one it gets. Dropped without commit,
/// nothing is recorded.
pub struct PendingRecord<'a> {
    tx: rusqlite::Transaction<'a>,
    path: PathBuf,
    key: Option<HistoryKey>,
    anchor: HistoryAnchor,
    /// Ids of the texts this run has used (service names, checks, messages).
    texts: std::collections::HashMap<String, i64>,
    /// Open observations added.
    open_ports: i64,
    /// Failing findings added, by severity.
    severities: BTreeMap<Severity, i64>,
}

impl Store {
    /// Uses `key` for the runs recorded from now on and to check keyed runs.
    pub fn set_key(&mut self, key: Option<HistoryKey>) {
        self.key = key;
    }

    /// True when a history key was given ([`Store::set_key`]).
    pub fn keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, id: i64, what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
        let path = self.path.clone();
        move |source| StoreError::Corrupt {
            path: path.clone(),
            id,
            what,
            source,
        }
    }

    fn rows(&self, filter: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Row>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {ROW_COLUMNS} FROM runs {filter}"))
            .map_err(self.sql())?;
        let rows = st
            .query_map(args, row)
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        Ok(rows)
    }

    fn summary(&self, r: &Row) -> Result<RunSummary, StoreError> {
        let scope: ScopeRecord =
            serde_json::from_str(&r.scope).map_err(self.corrupt(r.id, "scope"))?;
        Ok(RunSummary {
            id: r.id,
            started: parse_time(&r.started).ok_or_else(|| bad_time(self, r.id))?,
            finished: parse_time(&r.finished).ok_or_else(|| bad_time(self, r.id))?,
            scope_key: r.scope_key.clone(),
            targets: scope.targets,
            ports: scope.ports,
            open_ports: r.open_ports,
            findings: serde_json::from_str(&r.severities)
                .map_err(self.corrupt(r.id, "severities"))?,
        })
    }

    /// Every run, oldest first (`scope`: only runs of that scope key).
    pub fn list(&self, scope: Option<&str>) -> Result<Vec<RunSummary>, StoreError> {
        let rows = match scope {
            Some(k) => self.rows("WHERE scope_key = ?1 ORDER BY id", &[&k])?,
            None => self.rows("ORDER BY id", &[])?,
        };
        rows.iter().map(|r| self.summary(r)).collect()
    }

    /// Run `id`'s stored header row and the run it describes, its
    /// observations and findings left empty.
    fn head(&self, id: i64) -> Result<(Row, Run), StoreError> {
        let r = self
            .rows("WHERE id = ?1", &[&id])?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NoSuchRun {
                path: self.path.clone(),
                id,
            })?;
        let s = self.summary(&r)?;
        let run = Run {
            id,
            record: NewRun {
                started: s.started,
                finished: s.finished,
                scope: serde_json::from_str(&r.scope).map_err(self.corrupt(id, "scope"))?,
                params: serde_json::from_str(&r.params).map_err(self.corrupt(id, "params"))?,
                policy_hash: r.policy_hash.clone(),
                manifest_hash: r.manifest_hash.clone(),
                exceptions: serde_json::from_str(&r.exceptions)
                    .map_err(self.corrupt(id, "exceptions"))?,
                observations: Vec::new(),
                findings: Vec::new(),
            },
            prev_hash: r.prev_hash.clone(),
            content_hash: r.content_hash.clone(),
        };
        Ok((r, run))
    }

    /// Run `id` without its observations and findings: what `diff`, the
    /// drift of an audit and its change checks need besides the rows they
    /// read one at a time ([`Store::diff`], [`Store::baseline`]).
    pub fn header(&self, id: i64) -> Result<Run, StoreError> {
        Ok(self.head(id)?.1)
    }

    /// Loads a whole run. A run recorded by this version keeps, per
    /// observation, its address, port, protocol, state, service name and
    /// time, and per finding its id, check, severity, status, port and
    /// message: the rest of each comes back empty (the report has it).
    pub fn load(&self, id: i64) -> Result<Run, StoreError> {
        let (r, mut run) = self.head(id)?;
        let (observations, findings) = if r.format == compact::FORMAT_COMPACT {
            self.compact_rows(id)?
        } else {
            self.json_rows(id)?
        };
        run.record.observations = observations;
        run.record.findings = findings;
        Ok(run)
    }

    /// The newest run of `scope_key` recorded before run `before` (or at
    /// all, without `before`).
    pub fn latest_of_scope(
        &self,
        scope_key: &str,
        before: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM runs WHERE scope_key = ?1 AND id < ?2 ORDER BY id DESC LIMIT 1",
                params![scope_key, before.unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())
    }

    /// The newest run of any scope.
    pub fn latest(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
            .map_err(self.sql())
    }

    /// Number of runs held.
    pub fn count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .map_err(self.sql())
    }
}

/// The first 12 hex digits of a hash, for messages.
fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn bad_time(store: &Store, id: i64) -> StoreError {
    StoreError::Corrupt {
        path: store.path.clone(),
        id,
        what: "timestamps",
        source: serde::de::Error::custom("not an RFC 3339 time"),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v3;

/// What an audit knows when it builds its run record.
#[derive(Debug)]
pub struct AuditFacts<'a> {
    pub started: DateTime<Utc>,
    /// Empty for an import without targets: the addresses seen stand in.
    pub scope_targets: &'a [String],
    pub scope_excludes: &'a [String],
    pub ports: &'a str,
    pub policy: &'a crate::policy::Policy,
    pub policy_path: Option<&'a Path>,
    pub params: serde_json::Value,
    pub observations: &'a [Observation],
}

/// The run record of an audit, findings still empty. Only open ports are
/// kept: they are what drift compares, and a full-range scan's closed and
/// filtered ports would swamp the history (the report keeps them all).
pub fn audit_record(f: AuditFacts) -> NewRun {
    let targets: Vec<String> = if f.scope_targets.is_empty() {
        let ips: std::collections::BTreeSet<_> = f.observations.iter().map(|o| o.ip).collect();
        ips.iter().map(|ip| ip.to_string()).collect()
    } else {
        f.scope_targets.to_vec()
    };
    NewRun {
        started: f.started,
        finished: f.started,
        scope: ScopeRecord::new(&targets, f.scope_excludes, f.ports),
        params: f.params,
        // Hashed when the policy was read: the file is not read again.
        policy_hash: f.policy.sha256.clone(),
        manifest_hash: None,
        exceptions: f
            .policy
            .exceptions
            .iter()
            .map(|e| ExceptionNote {
                id: e.id.clone(),
                target: e.target_spec.clone(),
                expires: e.expires,
            })
            .collect(),
        observations: f
            .observations
            .iter()
            .filter(|o| o.state == PortState::Open)
            .cloned()
            .collect(),
        findings: Vec::new(),
    }
}

/// The previous run as the policy engine's baseline for change checks.
pub fn baseline(run: &Run) -> crate::policy::Baseline {
    crate::policy::Baseline {
        run: run.id,
        open: drift::open_ports(&run.record.observations)
            .into_keys()
            .collect(),
    }
}
