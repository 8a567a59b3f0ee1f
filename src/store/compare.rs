//! Store layer: drift and baselines read from the history one row at a
//! time. Two recorded runs are compared by walking both in key order
//! (never holding either); the run being recorded is compared from its
//! rows inside the open transaction, or from memory.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, Statement, params};

use super::compact::{self, FINDINGS_SQL, FORMAT_COMPACT, FindingRow, PORTS_SQL};
use super::drift::{self, Drift, Key, OpenPort, Sides};
use super::{NewRun, PendingRecord, Row, Store, StoreError, legacy};
use crate::model::drift::FindingChange;
use crate::model::{Finding, FindingStatus, Observation, PortState};

type Next<'s, T> = Box<dyn FnMut() -> Result<Option<T>, StoreError> + 's>;

/// Reads runs of the history at `path` through `conn` (the store's
/// connection, or the open transaction of a run being recorded).
struct Reader<'c> {
    conn: &'c Connection,
    path: &'c Path,
}

impl<'c> Reader<'c> {
    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + 'c {
        let path = self.path;
        move |source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        }
    }

    fn bad(&self, id: i64, what: &'static str) -> impl Fn(String) -> StoreError + 'c {
        let path = self.path;
        move |why| StoreError::Corrupt {
            path: path.to_path_buf(),
            id,
            what,
            source: serde::de::Error::custom(why),
        }
    }

    fn statements(&self) -> Result<[Statement<'c>; 2], StoreError> {
        Ok([
            self.conn.prepare(PORTS_SQL).map_err(self.sql())?,
            self.conn.prepare(FINDINGS_SQL).map_err(self.sql())?,
        ])
    }

    /// The open ports and failing findings of run `id` in key order:
    /// streamed from compact rows (`compact`), else read whole from the
    /// JSON rows of an older run.
    fn sides<'s>(
        &self,
        [ports, findings]: &'s mut [Statement<'c>; 2],
        id: i64,
        compact: bool,
    ) -> Result<(Next<'s, OpenPort>, Next<'s, FindingChange>), StoreError>
    where
        'c: 's,
    {
        if !compact {
            let (o, f) = legacy::json_rows(self.conn, self.path, id)?;
            let run = NewRun {
                observations: o,
                findings: f,
                ..empty_run()
            };
            let mut p = drift::open_in_memory(&run);
            let mut f: std::vec::IntoIter<FindingChange> = drift::failing_in_memory(&run)
                .collect::<Vec<_>>()
                .into_iter();
            return Ok((
                Box::new(move || Ok(p.next())),
                Box::new(move || Ok(f.next())),
            ));
        }
        let (sql, bad_port, bad_finding) =
            (self.sql(), self.bad(id, "ports"), self.bad(id, "findings"));
        let mut prows = ports.query([id]).map_err(self.sql())?;
        let sql2 = self.sql();
        let port: Next<'s, OpenPort> = Box::new(move || {
            while let Some(r) = prows.next().map_err(&sql)? {
                let p = compact::raw_port(r)
                    .map_err(&sql)?
                    .decode()
                    .map_err(&bad_port)?;
                if p.state == PortState::Open {
                    return Ok(Some(((p.ip, p.port, p.proto), p.service)));
                }
            }
            Ok(None)
        });
        let mut frows = findings.query(params![id, 1]).map_err(self.sql())?;
        let finding: Next<'s, FindingChange> = Box::new(move || {
            let Some(r) = frows.next().map_err(&sql2)? else {
                return Ok(None);
            };
            let f = compact::raw_finding(r)
                .map_err(&sql2)?
                .decode()
                .map_err(&bad_finding)?;
            Ok(Some(FindingChange {
                id: f.id,
                check: f.check,
                severity: f.severity,
                ip: f.ip,
                port: f.port,
                message: f.message,
            }))
        });
        Ok((port, finding))
    }

    fn format(&self, id: i64) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT format FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .map_err(self.sql())
    }

    /// The ports of `unapproved-change` findings in runs `ids`: failing
    /// ones, and waived ones.
    fn approvals(&self, ids: &[(i64, bool)]) -> Result<[BTreeSet<Key>; 2], StoreError> {
        let mut out = [BTreeSet::new(), BTreeSet::new()];
        let mut put = |f: &FindingRowLite| {
            if let (Some(port), Some(proto)) = (f.port, f.proto) {
                out[usize::from(!f.failing)].insert((f.ip, port, proto));
            }
        };
        for &(id, compact) in ids {
            if !compact {
                let (_, findings) = legacy::json_rows(self.conn, self.path, id)?;
                for f in findings.iter().filter(|f| f.check == "unapproved-change") {
                    put(&FindingRowLite::of(f));
                }
                continue;
            }
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT f.fid, c.text, f.severity, f.status, f.ip, f.port, f.proto, '' \
                     FROM run_findings f JOIN texts c ON c.id = f.check_id \
                     WHERE f.run_id = ?1 AND c.text = 'unapproved-change'",
                )
                .map_err(self.sql())?;
            let mut rows = st.query([id]).map_err(self.sql())?;
            while let Some(r) = rows.next().map_err(self.sql())? {
                let f = compact::raw_finding(r)
                    .map_err(self.sql())?
                    .decode()
                    .map_err(self.bad(id, "findings"))?;
                put(&FindingRowLite {
                    ip: f.ip,
                    port: f.port,
                    proto: f.proto,
                    failing: f.status != FindingStatus::Waived,
                });
            }
        }
        Ok(out)
    }
}

/// What approval reads of a finding.
struct FindingRowLite {
    ip: std::net::IpAddr,
    port: Option<u16>,
    proto: Option<crate::model::Proto>,
    failing: bool,
}

impl FindingRowLite {
    fn of(f: &Finding) -> FindingRowLite {
        FindingRowLite {
            ip: f.ip,
            port: f.port,
            proto: f.proto,
            failing: f.status.is_failing(),
        }
    }
}

/// A finding with the fields the history keeps, the rest empty.
fn stored_finding(f: FindingRow) -> Finding {
    Finding {
        id: f.id,
        check: f.check,
        severity: f.severity,
        ip: f.ip,
        port: f.port,
        proto: f.proto,
        service: None,
        group: None,
        evidence: None,
        status: f.status,
        exception: None,
        controls: Default::default(),
        remediation: String::new(),
        message: f.message,
        msg: Default::default(),
        allowed_by: None,
    }
}

fn empty_run() -> NewRun {
    NewRun {
        started: chrono::DateTime::UNIX_EPOCH,
        finished: chrono::DateTime::UNIX_EPOCH,
        scope: super::ScopeRecord::new(&[], &[], ""),
        params: serde_json::Value::Null,
        policy_hash: None,
        manifest_hash: None,
        exceptions: Vec::new(),
        observations: Vec::new(),
        findings: Vec::new(),
    }
}

impl Store {
    fn reader(&self) -> Reader<'_> {
        Reader {
            conn: &self.conn,
            path: &self.path,
        }
    }

    /// The drift from recorded run `a` to recorded run `b`, as `diff` shows
    /// it: an opened port is judged by the `unapproved-change` findings of
    /// every run of `b`'s scope after `a` up to `b`. Reads both runs one row
    /// at a time. Check the segment first ([`Store::verify_segment`]).
    pub fn diff(&self, a: i64, b: i64) -> Result<Drift, StoreError> {
        let (ra, ha) = self.head(a)?;
        let (rb, hb) = self.head(b)?;
        let rd = self.reader();
        let (mut sa, mut sb) = (rd.statements()?, rd.statements()?);
        let (mut pa, mut fa) = rd.sides(&mut sa, a, ra.format == FORMAT_COMPACT)?;
        let (mut pb, mut fb) = rd.sides(&mut sb, b, rb.format == FORMAT_COMPACT)?;
        let mut d = drift::compare(
            (&ha.record, Some(a)),
            (&hb.record, Some(b)),
            Sides {
                ports: [&mut pa, &mut pb],
                findings: [&mut fa, &mut fb],
            },
        )?;
        let judged: Vec<(i64, bool)> = self
            .rows(
                "WHERE scope_key = ?1 AND id > ?2 AND id <= ?3 ORDER BY id",
                &[&hb.record.scope.key, &a, &b],
            )?
            .iter()
            .chain(std::iter::once(&rb).filter(|_| a >= b))
            .map(|r: &Row| (r.id, r.format == FORMAT_COMPACT))
            .collect();
        let [failing, waived] = rd.approvals(&judged)?;
        drift::approve(&mut d, &failing, &waived);
        Ok(d)
    }

    /// The drift from recorded run `a` to `current`, a run held in memory
    /// (not recorded yet), as [`drift::drift`] gives it; run `a` is read one
    /// row at a time.
    pub fn drift_to(&self, a: i64, current: &NewRun) -> Result<Drift, StoreError> {
        let (ra, ha) = self.head(a)?;
        let rd = self.reader();
        let mut sa = rd.statements()?;
        let (mut pa, mut fa) = rd.sides(&mut sa, a, ra.format == FORMAT_COMPACT)?;
        let mut pb = drift::open_in_memory(current);
        let mut fb = drift::failing_in_memory(current);
        let mut d = drift::compare(
            (&ha.record, Some(a)),
            (current, None),
            Sides {
                ports: [&mut pa, &mut || Ok(pb.next())],
                findings: [&mut fa, &mut || Ok(fb.next())],
            },
        )?;
        drift::judge_approval(&mut d, &[current]);
        Ok(d)
    }

    /// The previous run as the policy engine's baseline for change checks,
    /// read one row at a time.
    pub fn baseline(&self, id: i64) -> Result<crate::policy::Baseline, StoreError> {
        let rd = self.reader();
        let compact = rd.format(id)? == FORMAT_COMPACT;
        let mut st = rd.statements()?;
        let (mut ports, _) = rd.sides(&mut st, id, compact)?;
        let mut open = BTreeSet::new();
        while let Some((k, _)) = ports()? {
            open.insert(k);
        }
        Ok(crate::policy::Baseline { run: id, open })
    }

    /// Run `id` with what drift and change checks read of it: its open
    /// ports (one observation each, the newest) and its failing findings
    /// (one per id, status `fail`, protocol left out), each with the
    /// fields the history keeps. As the `from` side of [`drift::drift`] and
    /// for [`super::baseline`] it gives what the whole run gives, in a
    /// fraction of the memory.
    pub fn load_compared(&self, id: i64) -> Result<super::Run, StoreError> {
        let (r, mut run) = self.head(id)?;
        let rd = self.reader();
        let mut st = rd.statements()?;
        let (mut ports, mut failing) = rd.sides(&mut st, id, r.format == FORMAT_COMPACT)?;
        while let Some(((ip, port, proto), service)) = ports()? {
            let mut o = Observation::new(ip, port, proto, crate::model::Reason::SynAck, None);
            o.time = run.record.started;
            o.service = service.map(|name| crate::model::ServiceInfo {
                name,
                ..Default::default()
            });
            run.record.observations.push(o);
        }
        while let Some(f) = failing()? {
            run.record.findings.push(stored_finding(FindingRow {
                id: f.id,
                check: f.check,
                severity: f.severity,
                status: FindingStatus::Fail,
                ip: f.ip,
                port: f.port,
                proto: None,
                message: f.message,
            }));
        }
        Ok(run)
    }

    /// The observations and findings of compact run `id`, each with the
    /// fields the history keeps.
    pub(super) fn compact_rows(
        &self,
        id: i64,
    ) -> Result<(Vec<Observation>, Vec<Finding>), StoreError> {
        let rd = self.reader();
        let (mut observations, mut findings) = (Vec::new(), Vec::new());
        compact::walk::<StoreError>(
            &self.conn,
            id,
            &self.sql(),
            &mut |p| {
                let p = p.decode().map_err(rd.bad(id, "observations"))?;
                let reason = crate::model::Reason::SynAck;
                let mut o = Observation::new(p.ip, p.port, p.proto, reason, None);
                o.state = p.state;
                o.time = chrono::DateTime::from_timestamp_micros(p.seen).unwrap_or_default();
                o.service = p.service.map(|name| crate::model::ServiceInfo {
                    name,
                    ..Default::default()
                });
                observations.push(o);
                Ok(())
            },
            &mut |f| {
                let f = f.decode().map_err(rd.bad(id, "findings"))?;
                findings.push(stored_finding(f));
                Ok(())
            },
        )?;
        Ok((observations, findings))
    }
}

impl PendingRecord<'_> {
    /// The drift from recorded run `a` to this run, from the rows added so
    /// far ([`PendingRecord::add_observations`], [`PendingRecord::add_findings`])
    /// and `header` (its time, scope and exceptions): both runs are read
    /// one row at a time.
    pub fn drift_from(&self, a: i64, header: &NewRun) -> Result<Drift, StoreError> {
        let rd = Reader {
            conn: &self.tx,
            path: &self.path,
        };
        let b = self.anchor.run;
        let ha = {
            let mut st = self
                .tx
                .prepare(&format!(
                    "SELECT {} FROM runs WHERE id = ?1",
                    super::ROW_COLUMNS
                ))
                .map_err(rd.sql())?;
            st.query_row([a], super::row).map_err(rd.sql())?
        };
        let from = header_run(&ha).map_err(rd.bad(a, "header"))?;
        let (mut sa, mut sb) = (rd.statements()?, rd.statements()?);
        let (mut pa, mut fa) = rd.sides(&mut sa, a, ha.format == FORMAT_COMPACT)?;
        let (mut pb, mut fb) = rd.sides(&mut sb, b, true)?;
        let mut d = drift::compare(
            (&from, Some(a)),
            (header, None),
            Sides {
                ports: [&mut pa, &mut pb],
                findings: [&mut fa, &mut fb],
            },
        )?;
        let [failing, waived] = rd.approvals(&[(b, true)])?;
        drift::approve(&mut d, &failing, &waived);
        Ok(d)
    }
}

/// What drift reads of a stored header: its start, scope and exceptions.
fn header_run(r: &Row) -> Result<NewRun, String> {
    Ok(NewRun {
        started: super::parse_time(&r.started).ok_or("not an RFC 3339 time")?,
        scope: serde_json::from_str(&r.scope).map_err(|e| e.to_string())?,
        exceptions: serde_json::from_str(&r.exceptions).map_err(|e| e.to_string())?,
        ..empty_run()
    })
}
