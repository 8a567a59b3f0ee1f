//! Store layer: runs of schema 1 and 2, whose observations and findings are
//! JSON texts. They are kept as they were recorded (their hashes are over
//! those texts) and read back whole, as before.

use std::path::Path;

use rusqlite::{Connection, params};

use super::compact::FORMAT_JSON;
use super::{NewRun, Store, StoreError};
use crate::model::{Finding, Observation, PortState};

fn json_texts(conn: &Connection, table: &str, id: i64) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!(
        "SELECT json FROM {table} WHERE run_id = ?1 ORDER BY seq"
    ))?;
    st.query_map([id], |r| r.get(0))?.collect()
}

/// The observations and findings of schema-2 run `id` of the history at
/// `path`.
pub(super) fn json_rows(
    conn: &Connection,
    path: &Path,
    id: i64,
) -> Result<(Vec<Observation>, Vec<Finding>), StoreError> {
    let sql = |source| StoreError::Sql {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |what: &'static str| {
        move |source| StoreError::Corrupt {
            path: path.to_path_buf(),
            id,
            what,
            source,
        }
    };
    let observations = json_texts(conn, "observations", id)
        .map_err(sql)?
        .iter()
        .map(|t| serde_json::from_str(t))
        .collect::<Result<Vec<Observation>, _>>()
        .map_err(corrupt("observations"))?;
    let findings = json_texts(conn, "findings", id)
        .map_err(sql)?
        .iter()
        .map(|t| serde_json::from_str(t))
        .collect::<Result<Vec<Finding>, _>>()
        .map_err(corrupt("findings"))?;
    Ok((observations, findings))
}

impl Store {
    /// The observations and findings of a schema-2 run.
    pub(super) fn json_rows(
        &self,
        id: i64,
    ) -> Result<(Vec<Observation>, Vec<Finding>), StoreError> {
        json_rows(&self.conn, &self.path, id)
    }

    /// Records `run` as a schema-2 version did (JSON rows): for tests of
    /// histories written before schema 3.
    #[doc(hidden)]
    pub fn record_as_schema_2(&mut self, run: &NewRun) -> Result<i64, StoreError> {
        let mut p = self.begin_record()?;
        let id = p.anchor.run;
        p.open_ports = run
            .observations
            .iter()
            .filter(|o| o.state == PortState::Open)
            .count() as i64;
        for f in run.findings.iter().filter(|f| f.status.is_failing()) {
            *p.severities.entry(f.severity).or_default() += 1;
        }
        p.seal(run, FORMAT_JSON, |tx| {
            let mut ins = tx.prepare(
                "INSERT INTO observations (run_id, seq, ip, port, state, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (i, o) in run.observations.iter().enumerate() {
                let j = serde_json::to_string(o).map_err(json_err)?;
                ins.execute(params![id, i as i64, o.ip.to_string(), o.port, o.state.as_str(), j])?;
            }
            let mut ins = tx.prepare(
                "INSERT INTO findings (run_id, seq, fid, severity, status, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (i, f) in run.findings.iter().enumerate() {
                let j = serde_json::to_string(f).map_err(json_err)?;
                ins.execute(params![id, i as i64, f.id, f.severity.as_str(), f.status.as_str(), j])?;
            }
            Ok(())
        })
    }
}

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}
