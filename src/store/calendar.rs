//! Store layer: the audit calendar of a scope — when each earlier audit of
//! it took place, for the cadence checks (`policy::cadence`).

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

use super::{Store, StoreError, bad_time, parse_time};

impl Store {
    /// The day of every run of `scope_key` recorded before run `before`
    /// (or at all), oldest first: the run's `--as-of` day when it was given
    /// (an audit judged as of that day), else when it finished.
    pub fn audit_days(
        &self,
        scope_key: &str,
        before: Option<i64>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, finished, params FROM runs WHERE scope_key = ?1 AND id < ?2 ORDER BY id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![scope_key, before.unwrap_or(i64::MAX)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, finished, params) = row.map_err(self.sql())?;
            let as_of = serde_json::from_str::<serde_json::Value>(&params)
                .ok()
                .and_then(|p| {
                    p["as_of"]
                        .as_str()
                        .and_then(|s| s.parse::<NaiveDate>().ok())
                });
            let t = match as_of {
                Some(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
                None => parse_time(&finished).ok_or_else(|| bad_time(self, id))?,
            };
            out.push(t);
        }
        Ok(out)
    }
}
