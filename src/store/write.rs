//! Store layer: recording a run. [`Store::begin_record`] takes the write
//! lock; the run's rows go in as they come ([`PendingRecord::add_observations`],
//! [`PendingRecord::add_findings`], in batches of any size) or whole with
//! the record ([`PendingRecord::commit`]); the commit writes the run's
//! header and its hash, read back from the rows, in the same transaction.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::compact::{self, FORMAT_COMPACT};
use super::{
    CHAIN_HMAC, CHAIN_SHA256, GENESIS, HistoryKey, NewRun, PendingRecord, Row, Store, StoreError,
    hash, time_text,
};
use crate::model::{Finding, HistoryAnchor, Observation, PortState};

impl Store {
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
        // Rows left by a deleted run whose id is handed out again would
        // become this run's: refuse instead.
        let orphans: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM run_ports WHERE run_id = ?1) \
                 OR EXISTS (SELECT 1 FROM run_findings WHERE run_id = ?1)",
                [next],
                |x| x.get(0),
            )
            .map_err(sql)?;
        if orphans {
            return Err(StoreError::Broken {
                path,
                run: next,
                problem: format!(
                    "rows of run {next} are in the history without the run (it was deleted and its id is being handed out again)"
                ),
            });
        }
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
            texts: HashMap::new(),
            open_ports: 0,
            severities: BTreeMap::new(),
        })
    }
}

/// A newer observation of a port replaces the older one (the newest wins,
/// as in [`super::drift::open_ports`]).
const PORT_SQL: &str = "INSERT INTO run_ports (run_id, ip, port, proto, state, service, seen) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id, ip, port, proto) DO UPDATE SET \
     state = excluded.state, service = excluded.service, seen = excluded.seen \
     WHERE excluded.seen >= run_ports.seen";

/// A finding id seen twice keeps the last one, except that a waived one
/// never hides a failing one (drift compares the failing ones by id).
const FINDING_SQL: &str = "INSERT INTO run_findings (run_id, fid, check_id, severity, status, ip, \
     port, proto, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
     ON CONFLICT (run_id, fid) DO UPDATE SET check_id = excluded.check_id, \
     severity = excluded.severity, status = excluded.status, ip = excluded.ip, \
     port = excluded.port, proto = excluded.proto, message = excluded.message \
     WHERE NOT (excluded.status = 1 AND run_findings.status != 1)";

impl PendingRecord<'_> {
    /// Where the run will sit once committed.
    pub fn anchor(&self) -> &HistoryAnchor {
        &self.anchor
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// The id of `text` in the shared text table, added when new.
    fn text(&mut self, text: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.texts.get(text) {
            return Ok(*id);
        }
        let id: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO texts (text) VALUES (?1) ON CONFLICT (text) DO UPDATE SET text = text \
                 RETURNING id",
            )
            .and_then(|mut st| st.query_row([text], |r| r.get(0)))
            .map_err(self.sql())?;
        self.texts.insert(text.to_string(), id);
        Ok(id)
    }

    /// Adds observations to the run (any number of calls, any batch size).
    /// Every state is kept per port, the newest observation winning, so a
    /// port seen open and later closed is not open.
    pub fn add_observations(&mut self, batch: &[Observation]) -> Result<(), StoreError> {
        let run = self.anchor.run;
        let mut services = Vec::with_capacity(batch.len());
        for o in batch {
            services.push(match &o.service {
                Some(s) => Some(self.text(&s.name)?),
                None => None,
            });
            if o.state == PortState::Open {
                self.open_ports += 1;
            }
        }
        let mut st = self.tx.prepare_cached(PORT_SQL).map_err(self.sql())?;
        for (o, service) in batch.iter().zip(services) {
            st.execute(params![
                run,
                compact::ip_blob(o.ip),
                o.port,
                compact::proto_code(o.proto),
                compact::state_code(o.state),
                service,
                o.time.timestamp_micros()
            ])
            .map_err(self.sql())?;
        }
        Ok(())
    }

    /// Adds findings to the run (any number of calls, any batch size).
    pub fn add_findings(&mut self, batch: &[Finding]) -> Result<(), StoreError> {
        let run = self.anchor.run;
        let mut texts = Vec::with_capacity(batch.len());
        for f in batch {
            texts.push((self.text(&f.check)?, self.text(&f.message)?));
            if f.status.is_failing() {
                *self.severities.entry(f.severity).or_default() += 1;
            }
        }
        let mut st = self.tx.prepare_cached(FINDING_SQL).map_err(self.sql())?;
        for (f, (check, message)) in batch.iter().zip(texts) {
            st.execute(params![
                run,
                f.id,
                check,
                compact::severity_code(f.severity),
                compact::status_code(f.status),
                compact::ip_blob(f.ip),
                f.port,
                f.proto.map(compact::proto_code),
                message
            ])
            .map_err(self.sql())?;
        }
        Ok(())
    }

    /// Writes the run and commits; its id is the anchor's. The record's
    /// observations and findings are added first (empty when they were
    /// added in batches).
    pub fn commit(mut self, run: &NewRun) -> Result<i64, StoreError> {
        self.add_observations(&run.observations)?;
        self.add_findings(&run.findings)?;
        self.seal(run, FORMAT_COMPACT, |_| Ok(()))
    }

    /// Writes the run's header (its rows in `format`, `rows` writing any
    /// not yet written), its hash read back from the rows, and commits.
    pub(super) fn seal(
        self,
        run: &NewRun,
        format: i64,
        rows: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<()>,
    ) -> Result<i64, StoreError> {
        let corrupt = |what: &'static str| {
            let path = self.path.clone();
            move |source| StoreError::Corrupt {
                path: path.clone(),
                id: 0,
                what,
                source,
            }
        };
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
            open_ports: self.open_ports,
            severities: serde_json::to_string(&self.severities).map_err(corrupt("severities"))?,
            prev_hash: self.anchor.prev_hash.clone(),
            content_hash: String::new(),
            chain: self.anchor.chain.clone(),
            key_id: self.anchor.key_id.clone(),
            format,
        };
        self.tx
            .execute(
                "INSERT INTO runs (started, finished, scope_key, scope, params, policy_hash, \
             manifest_hash, exceptions, open_ports, severities, prev_hash, content_hash, chain, \
             key_id, format) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, '', ?12, ?13, ?14)",
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
                    r.key_id,
                    r.format
                ],
            )
            .map_err(self.sql())?;
        r.id = self.tx.last_insert_rowid();
        if r.id != self.anchor.run {
            // Cannot happen under the write lock; never record a run whose
            // report names another id.
            return Err(StoreError::Broken {
                path: self.path.clone(),
                run: r.id,
                problem: format!(
                    "run {} was expected, the database gave {}",
                    self.anchor.run, r.id
                ),
            });
        }
        rows(&self.tx).map_err(self.sql())?;
        r.content_hash = hash::scan(&self.tx, &r, self.key.as_ref())
            .map_err(self.sql())?
            .hash;
        self.tx
            .execute(
                "UPDATE runs SET content_hash = ?1 WHERE id = ?2",
                params![r.content_hash, r.id],
            )
            .map_err(self.sql())?;
        let PendingRecord { tx, path, .. } = self;
        tx.commit()
            .map_err(|source| StoreError::Sql { path, source })?;
        Ok(r.id)
    }
}
