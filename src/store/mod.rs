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
//! The database is opened in WAL mode with a busy timeout and records under
//! an immediate transaction, so two audits finishing at once both land and
//! the chain stays linear. The schema is versioned with `PRAGMA
//! user_version` and migrated forward on open.

pub mod drift;
pub mod metrics;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Finding, Observation, PortState, Severity};

pub use drift::{Drift, PortChange, ServiceChange, drift};

/// The schema version this build writes; older databases are migrated.
pub const SCHEMA_VERSION: i64 = 1;

/// The `prev_hash` of the first run.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: [&str; 1] = [r#"
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
"#];

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

/// An exception of the policy in force, kept so a later diff can say which
/// exceptions expired between two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionNote {
    pub id: String,
    pub target: String,
    pub expires: NaiveDate,
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

/// Something `verify` found wrong, with the run it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tamper {
    pub run: i64,
    pub problem: String,
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
}

const ROW_COLUMNS: &str = "id, started, finished, scope_key, scope, params, policy_hash, \
     manifest_hash, exceptions, open_ports, severities, prev_hash, content_hash";

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
    })
}

/// The canonical content of a run: every stored text, in a fixed order,
/// each length-prefixed so no two different runs share an encoding.
fn content_hash(r: &Row, observations: &[String], findings: &[String]) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
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
    hex::encode(h.finalize())
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The audit history.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the history at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.setup()?;
        Ok(store)
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

    fn setup(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = move |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        // A second audit waits for the first one's write instead of failing.
        self.conn
            .busy_timeout(Duration::from_secs(30))
            .map_err(&sql)?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(&sql)?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(&sql)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&sql)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        for (v, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(step).map_err(&sql)?;
            tx.pragma_update(None, "user_version", v as i64 + 1)
                .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)?;
        Ok(())
    }

    /// Records a run in one transaction and returns its id.
    pub fn record(&mut self, run: &NewRun) -> Result<i64, StoreError> {
        let path = self.path.clone();
        let sql = move |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let observations: Vec<String> = run
            .observations
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()
            .map_err(self.corrupt(0, "observations"))?;
        let findings: Vec<String> = run
            .findings
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()
            .map_err(self.corrupt(0, "findings"))?;
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
            scope: serde_json::to_string(&run.scope).map_err(self.corrupt(0, "scope"))?,
            params: serde_json::to_string(&run.params).map_err(self.corrupt(0, "params"))?,
            policy_hash: run.policy_hash.clone(),
            manifest_hash: run.manifest_hash.clone(),
            exceptions: serde_json::to_string(&run.exceptions)
                .map_err(self.corrupt(0, "exceptions"))?,
            open_ports,
            severities: serde_json::to_string(&severities)
                .map_err(self.corrupt(0, "severities"))?,
            prev_hash: String::new(),
            content_hash: String::new(),
        };
        // Immediate: the read of the chain head and the insert are one
        // step, so two audits finishing together still form a chain.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        r.prev_hash = tx
            .query_row(
                "SELECT content_hash FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |x| x.get(0),
            )
            .optional()
            .map_err(&sql)?
            .unwrap_or_else(|| GENESIS.to_string());
        tx.execute(
            "INSERT INTO runs (started, finished, scope_key, scope, params, policy_hash, \
             manifest_hash, exceptions, open_ports, severities, prev_hash, content_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, '')",
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
                r.prev_hash
            ],
        )
        .map_err(&sql)?;
        r.id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO observations (run_id, seq, ip, port, state, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(&sql)?;
            for (i, (o, j)) in run.observations.iter().zip(&observations).enumerate() {
                ins.execute(params![
                    r.id,
                    i as i64,
                    o.ip.to_string(),
                    o.port,
                    o.state.as_str(),
                    j
                ])
                .map_err(&sql)?;
            }
            let mut ins = tx
                .prepare(
                    "INSERT INTO findings (run_id, seq, fid, severity, status, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(&sql)?;
            for (i, (f, j)) in run.findings.iter().zip(&findings).enumerate() {
                ins.execute(params![
                    r.id,
                    i as i64,
                    f.id,
                    f.severity.as_str(),
                    f.status.as_str(),
                    j
                ])
                .map_err(&sql)?;
            }
        }
        r.content_hash = content_hash(&r, &observations, &findings);
        tx.execute(
            "UPDATE runs SET content_hash = ?1 WHERE id = ?2",
            params![r.content_hash, r.id],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(r.id)
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

    /// Checks the hash chain. Every edited run (its content no longer
    /// matches its hash, or its successor's link), every deleted run (a gap
    /// in the ids, or the newest ids removed) is named; empty means intact.
    pub fn verify(&self) -> Result<Vec<Tamper>, StoreError> {
        let mut out = Vec::new();
        let rows = self.rows("ORDER BY id", &[])?;
        let mut prev: Option<&Row> = None;
        for r in &rows {
            let obs = self.texts("observations", r.id)?;
            let fnd = self.texts("findings", r.id)?;
            let computed = content_hash(r, &obs, &fnd);
            if computed != r.content_hash {
                out.push(Tamper {
                    run: r.id,
                    problem: format!(
                        "run {} was edited: its content no longer matches its recorded hash",
                        r.id
                    ),
                });
            }
            let expected_prev = prev.map_or(GENESIS, |p| p.content_hash.as_str());
            let expected_id = prev.map_or(1, |p| p.id + 1);
            if r.id != expected_id {
                let gap = if r.id - expected_id == 1 {
                    format!("run {expected_id} was deleted")
                } else {
                    format!("runs {expected_id} to {} were deleted", r.id - 1)
                };
                out.push(Tamper {
                    run: expected_id,
                    problem: format!("{gap} (the history jumps to run {})", r.id),
                });
            } else if r.prev_hash != expected_prev {
                // The previous run was edited and its hash rewritten to
                // match: only this link still remembers the original.
                let p = prev.map_or(0, |p| p.id);
                if !out.iter().any(|t| t.run == p) {
                    out.push(Tamper {
                        run: p,
                        problem: format!(
                            "run {p} was edited: run {} recorded another hash for it",
                            r.id
                        ),
                    });
                }
            }
            prev = Some(r);
        }
        // AUTOINCREMENT remembers the highest id ever handed out.
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'runs'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        let last = rows.last().map_or(0, |r| r.id);
        if let Some(seq) = seq.filter(|s| *s > last) {
            out.push(Tamper {
                run: last + 1,
                problem: if seq == last + 1 {
                    format!("run {seq} (the newest) was deleted")
                } else {
                    format!("runs {} to {seq} (the newest) were deleted", last + 1)
                },
            });
        }
        Ok(out)
    }

    /// Number of runs held.
    pub fn count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .map_err(self.sql())
    }
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
