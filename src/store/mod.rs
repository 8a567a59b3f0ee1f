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
pub mod drift;
pub(crate) mod metrics;
mod open;
mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Finding, HistoryAnchor, Observation, PortState, Severity};

pub use crate::model::drift::ExceptionNote;
pub use drift::{Drift, PortChange, ServiceChange, drift};
pub use verify::{Tamper, Verification};

/// The schema version this build writes; older databases are migrated.
pub const SCHEMA_VERSION: i64 = 2;

/// A run hashed with plain SHA-256 (no key).
pub const CHAIN_SHA256: &str = "sha256";
/// A run hashed with HMAC-SHA256 under the history key.
pub const CHAIN_HMAC: &str = "hmac-sha256";

/// The `prev_hash` of the first run.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: [&str; 2] = [
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

/// The hash of a run's content: plain SHA-256, or HMAC-SHA256 under a key.
enum ChainHasher {
    Plain(Sha256),
    Keyed(Box<Hmac<Sha256>>),
}

impl ChainHasher {
    fn new(key: Option<&HistoryKey>) -> ChainHasher {
        match key {
            None => ChainHasher::Plain(Sha256::new()),
            Some(k) => ChainHasher::Keyed(Box::new(
                <Hmac<Sha256> as KeyInit>::new_from_slice(&k.0).expect("any key length"),
            )),
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            ChainHasher::Plain(h) => Digest::update(h, b),
            ChainHasher::Keyed(m) => m.update(b),
        }
    }

    fn finish(self) -> String {
        match self {
            ChainHasher::Plain(h) => hex::encode(h.finalize()),
            ChainHasher::Keyed(m) => hex::encode(m.finalize().into_bytes()),
        }
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
}

const ROW_COLUMNS: &str = "id, started, finished, scope_key, scope, params, policy_hash, \
     manifest_hash, exceptions, open_ports, severities, prev_hash, content_hash, chain, key_id";

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
    })
}

/// The canonical content of a run: every stored text, in a fixed order,
/// each length-prefixed so no two different runs share an encoding.
/// Keyed (HMAC) when the row says so; `key` must then be the history key.
fn content_hash(
    r: &Row,
    observations: &[String],
    findings: &[String],
    key: Option<&HistoryKey>,
) -> String {
    let mut h = ChainHasher::new(if r.chain == CHAIN_HMAC { key } else { None });
    let mut put = |s: &str| {
        h.update(&(s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    put(&r.id.to_string());
    put(&r.started);
    put(&r.finished);
    put(&r.scope_key);
    put(&r.scope);
    put(&r.params);
    put(r.policy_hash.as_deref().unwrap_or("-"));
    put(r.manifest_hash.as_deref().unwrap_or("-"));
    put(&r.exceptions);
    put(&r.open_ports.to_string());
    put(&r.severities);
    put(&r.prev_hash);
    put(&format!("observations:{}", observations.len()));
    for o in observations {
        put(o);
    }
    put(&format!("findings:{}", findings.len()));
    for f in findings {
        put(f);
    }
    h.finish()
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

    /// Records a run in one transaction and returns its id.
    pub fn record(&mut self, run: &NewRun) -> Result<i64, StoreError> {
        self.begin_record()?.commit(run)
    }

    /// Takes the write lock and says where the next run will sit: its id
    /// and the chain head it will link to. A report writes that anchor into
    /// its manifest before the run (which records the manifest's hash) is
    /// committed.
    pub fn begin_record(&mut self) -> Result<PendingRecord<'_>, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let key = self.key.clone();
        // Immediate: the read of the chain head and the insert are one
        // step, so two audits finishing together still form a chain.
        let stopped = self.stopped();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| match stopped() {
                true => StoreError::Interrupted { path: path.clone() },
                false => sql(e),
            })?;
        let head: Option<(i64, String, String, Option<String>)> = tx
            .query_row(
                "SELECT id, content_hash, chain, key_id FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?)),
            )
            .optional()
            .map_err(sql)?;
        if let Some((run, _, chain, key_id)) = &head
            && chain == CHAIN_HMAC
        {
            let key_id = key_id.clone().unwrap_or_default();
            match &key {
                None => {
                    return Err(StoreError::KeyNeeded {
                        path,
                        run: *run,
                        key_id,
                    });
                }
                Some(k) if k.id() != key_id => {
                    return Err(StoreError::WrongKey {
                        path,
                        run: *run,
                        key_id,
                        given: k.id(),
                    });
                }
                Some(_) => {}
            }
        }
        // AUTOINCREMENT hands out max(highest ever, highest now) + 1.
        let next: i64 = tx
            .query_row(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0), \
                 coalesce((SELECT max(id) FROM runs), 0)) + 1",
                [],
                |x| x.get(0),
            )
            .map_err(sql)?;
        let anchor = HistoryAnchor {
            store: path.display().to_string(),
            run: next,
            prev_hash: head.map_or_else(|| GENESIS.to_string(), |h| h.1),
            chain: if key.is_some() {
                CHAIN_HMAC
            } else {
                CHAIN_SHA256
            }
            .to_string(),
            key_id: key.as_ref().map(HistoryKey::id),
        };
        Ok(PendingRecord {
            tx,
            path,
            key,
            anchor,
        })
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

    fn texts(&self, table: &str, id: i64) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT json FROM {table} WHERE run_id = ?1 ORDER BY seq"
            ))
            .map_err(self.sql())?;
        let v = st
            .query_map([id], |r| r.get(0))
            .map_err(self.sql())?
            .collect::<Result<Vec<String>, _>>()
            .map_err(self.sql())?;
        Ok(v)
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

    /// Loads a whole run.
    pub fn load(&self, id: i64) -> Result<Run, StoreError> {
        let r = self
            .rows("WHERE id = ?1", &[&id])?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NoSuchRun {
                path: self.path.clone(),
                id,
            })?;
        let observations = self
            .texts("observations", id)?
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<Vec<Observation>, _>>()
            .map_err(self.corrupt(id, "observations"))?;
        let findings = self
            .texts("findings", id)?
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<Vec<Finding>, _>>()
            .map_err(self.corrupt(id, "findings"))?;
        let s = self.summary(&r)?;
        Ok(Run {
            id,
            record: NewRun {
                started: s.started,
                finished: s.finished,
                scope: serde_json::from_str(&r.scope).map_err(self.corrupt(id, "scope"))?,
                params: serde_json::from_str(&r.params).map_err(self.corrupt(id, "params"))?,
                policy_hash: r.policy_hash,
                manifest_hash: r.manifest_hash,
                exceptions: serde_json::from_str(&r.exceptions)
                    .map_err(self.corrupt(id, "exceptions"))?,
                observations,
                findings,
            },
            prev_hash: r.prev_hash,
            content_hash: r.content_hash,
        })
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

impl PendingRecord<'_> {
    /// Where the run will sit once committed.
    pub fn anchor(&self) -> &HistoryAnchor {
        &self.anchor
    }

    /// Writes the run and commits; its id is the anchor's.
    pub fn commit(self, run: &NewRun) -> Result<i64, StoreError> {
        let PendingRecord {
            tx,
            path,
            key,
            anchor,
        } = self;
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let corrupt = |what: &'static str| {
            let path = path.clone();
            move |source| StoreError::Corrupt {
                path: path.clone(),
                id: 0,
                what,
                source,
            }
        };
        let observations: Vec<String> = run
            .observations
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()
            .map_err(corrupt("observations"))?;
        let findings: Vec<String> = run
            .findings
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()
            .map_err(corrupt("findings"))?;
        let mut severities: BTreeMap<Severity, i64> = BTreeMap::new();
        for f in run.findings.iter().filter(|f| f.status.is_failing()) {
            *severities.entry(f.severity).or_default() += 1;
        }
        let open_ports = run
            .observations
            .iter()
            .filter(|o| o.state == PortState::Open)
            .count() as i64;
        let mut r = Row {
            id: 0,
            started: time_text(run.started),
            finished: time_text(run.finished),
            scope_key: run.scope.key.clone(),
            scope: serde_json::to_string(&run.scope).map_err(corrupt("scope"))?,
            params: serde_json::to_string(&run.params).map_err(corrupt("params"))?,
            policy_hash: run.policy_hash.clone(),
            manifest_hash: run.manifest_hash.clone(),
            exceptions: serde_json::to_string(&run.exceptions).map_err(corrupt("exceptions"))?,
            open_ports,
            severities: serde_json::to_string(&severities).map_err(corrupt("severities"))?,
            prev_hash: anchor.prev_hash.clone(),
            content_hash: String::new(),
            chain: anchor.chain.clone(),
            key_id: anchor.key_id.clone(),
        };
        tx.execute(
            "INSERT INTO runs (started, finished, scope_key, scope, params, policy_hash, \
             manifest_hash, exceptions, open_ports, severities, prev_hash, content_hash, chain, key_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, '', ?12, ?13)",
            params![
                r.started,
                r.finished,
                r.scope_key,
                r.scope,
                r.params,
                r.policy_hash,
                r.manifest_hash,
                r.exceptions,
                r.open_ports,
                r.severities,
                r.prev_hash,
                r.chain,
                r.key_id
            ],
        )
        .map_err(sql)?;
        r.id = tx.last_insert_rowid();
        if r.id != anchor.run {
            // Cannot happen under the write lock; never record a run whose
            // report names another id.
            return Err(StoreError::Broken {
                path: path.clone(),
                run: r.id,
                problem: format!(
                    "run {} was expected, the database gave {}",
                    anchor.run, r.id
                ),
            });
        }
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO observations (run_id, seq, ip, port, state, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql)?;
            for (i, (o, j)) in run.observations.iter().zip(&observations).enumerate() {
                ins.execute(params![
                    r.id,
                    i as i64,
                    o.ip.to_string(),
                    o.port,
                    o.state.as_str(),
                    j
                ])
                .map_err(sql)?;
            }
            let mut ins = tx
                .prepare(
                    "INSERT INTO findings (run_id, seq, fid, severity, status, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql)?;
            for (i, (f, j)) in run.findings.iter().zip(&findings).enumerate() {
                ins.execute(params![
                    r.id,
                    i as i64,
                    f.id,
                    f.severity.as_str(),
                    f.status.as_str(),
                    j
                ])
                .map_err(sql)?;
            }
        }
        r.content_hash = content_hash(&r, &observations, &findings, key.as_ref());
        tx.execute(
            "UPDATE runs SET content_hash = ?1 WHERE id = ?2",
            params![r.content_hash, r.id],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(r.id)
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
