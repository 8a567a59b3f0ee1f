//! Store layer: checking the history — the hash chain run by run, the
//! segment a comparison relies on, a report's anchor, and whether every
//! run can still be read back.

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::{CHAIN_HMAC, GENESIS, Row, Store, StoreError, hash, short};
use crate::model::HistoryAnchor;

/// Something `verify` found wrong, with the run it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tamper {
    pub run: i64,
    pub problem: String,
}

/// What [`Store::verification`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Runs held.
    pub runs: i64,
    /// Every problem, with the run it concerns; empty when intact.
    pub problems: Vec<Tamper>,
    /// HMAC-keyed runs that could not be checked because no key was given.
    pub unproven: Vec<i64>,
    /// Runs whose chain may hold but whose content cannot be read back (a
    /// number stored as `null` by an older version, a damaged row): no
    /// audit compares with them and `diff` refuses them. Each says why.
    pub unreadable: Vec<Tamper>,
}

/// What [`Store::check_rows`] found.
struct Checked {
    problems: Vec<Tamper>,
    unproven: Vec<i64>,
    unreadable: Vec<Tamper>,
}

impl Store {
    /// Checks the hash chain. Every edited run (its content no longer
    /// matches its hash, or its successor's link), every deleted run (a gap
    /// in the ids, or the newest ids removed) is named; empty means intact
    /// as far as the chain can tell (see [`Store::verification`] for keyed
    /// runs left unchecked, and [`Store::check_anchor`] for what only a
    /// report's anchor can tell).
    pub fn verify(&self) -> Result<Vec<Tamper>, StoreError> {
        Ok(self.verification()?.problems)
    }

    /// The whole check: problems, the keyed runs that could not be checked
    /// without the key, and how many runs there are.
    pub fn verification(&self) -> Result<Verification, StoreError> {
        let rows = self.rows("ORDER BY id", &[])?;
        let Checked {
            mut problems,
            unproven,
            mut unreadable,
        } = self.check_rows(&rows, None)?;
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
            problems.push(Tamper {
                run: last + 1,
                problem: if seq == last + 1 {
                    format!("run {seq} (the newest) was deleted")
                } else {
                    format!("runs {} to {seq} (the newest) were deleted", last + 1)
                },
            });
        }
        for r in &rows {
            if let Some(why) = self.unreadable_header(r.id)? {
                unreadable.push(Tamper {
                    run: r.id,
                    problem: why,
                });
            }
        }
        unreadable.sort_by_key(|t| t.run);
        unreadable.dedup_by_key(|t| t.run);
        Ok(Verification {
            runs: rows.len() as i64,
            problems,
            unproven,
            unreadable,
        })
    }

    /// Why run `id` cannot be loaded, if it cannot (`None`: it reads back).
    /// Reads the run one row at a time.
    pub fn unreadable(&self, id: i64) -> Result<Option<String>, StoreError> {
        if let Some(why) = self.unreadable_header(id)? {
            return Ok(Some(why));
        }
        let (r, _) = self.head(id)?;
        Ok(hash::scan(&self.conn, &r, self.key.as_ref())
            .map_err(self.sql())?
            .unreadable)
    }

    /// Why run `id`'s header (times, scope, parameters, exceptions) cannot
    /// be read back, if it cannot.
    fn unreadable_header(&self, id: i64) -> Result<Option<String>, StoreError> {
        match self.head(id) {
            Ok(_) => Ok(None),
            Err(StoreError::Corrupt { what, source, .. }) => Ok(Some(format!(
                "run {id} cannot be read back: its stored {what}: {source}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Checks runs `from..=to` (ids), each against its own hash and its
    /// link to the run before it (also the one just before `from`). Used
    /// before comparing runs: a broken segment is a [`StoreError::Broken`]
    /// naming the first bad run, and so is a keyed run without the key.
    pub fn verify_segment(&self, from: i64, to: i64) -> Result<(), StoreError> {
        let (from, to) = (from.min(to), from.max(to));
        let before: Option<Row> = self
            .rows("WHERE id < ?1 ORDER BY id DESC LIMIT 1", &[&from])?
            .into_iter()
            .next();
        let rows = self.rows("WHERE id >= ?1 AND id <= ?2 ORDER BY id", &[&from, &to])?;
        let broken = |run: i64, problem: String| StoreError::Broken {
            path: self.path.clone(),
            run,
            problem,
        };
        match rows.first() {
            None => return Err(broken(from, format!("run {from} is not in the history"))),
            Some(r) if r.id != from => {
                return Err(broken(from, format!("run {from} was deleted")));
            }
            Some(_) => {}
        }
        if rows.last().map(|r| r.id) != Some(to) {
            return Err(broken(to, format!("run {to} is not in the history")));
        }
        let Checked {
            problems, unproven, ..
        } = self.check_rows(&rows, before.as_ref())?;
        if let Some(t) = problems.first() {
            return Err(broken(t.run, t.problem.clone()));
        }
        if let Some(&run) = unproven.first() {
            let r = rows.iter().find(|r| r.id == run);
            return Err(StoreError::KeyNeeded {
                path: self.path.clone(),
                run,
                key_id: r.and_then(|r| r.key_id.clone()).unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Checks consecutive rows: content, links and gaps. `before` is the
    /// row preceding the first (its link is checked, its content is not);
    /// without it the first row must be run 1 or follow a gap of deletions.
    fn check_rows(&self, rows: &[Row], before: Option<&Row>) -> Result<Checked, StoreError> {
        let mut out = Vec::new();
        let mut unproven = Vec::new();
        let mut unreadable = Vec::new();
        let key = self.key.as_ref();
        let mut prev: Option<&Row> = before;
        for r in rows {
            let keyed = r.chain == CHAIN_HMAC;
            // One pass over the run's rows: its hash, and whether each row
            // reads back.
            let scanned = hash::scan(&self.conn, r, key).map_err(self.sql())?;
            if let Some(why) = scanned.unreadable {
                unreadable.push(Tamper {
                    run: r.id,
                    problem: why,
                });
            }
            match (keyed, key) {
                (true, None) => unproven.push(r.id),
                (true, Some(k)) if r.key_id.as_deref() != Some(k.id().as_str()) => {
                    out.push(Tamper {
                        run: r.id,
                        problem: format!(
                            "run {} was keyed with another key (id {}, given {})",
                            r.id,
                            r.key_id.as_deref().unwrap_or("none"),
                            k.id()
                        ),
                    });
                }
                (false, Some(_)) => out.push(Tamper {
                    run: r.id,
                    problem: format!(
                        "run {} is not HMAC-keyed although a key was given: anyone could have recomputed its hash",
                        r.id
                    ),
                }),
                _ => {
                    if scanned.hash != r.content_hash {
                        out.push(Tamper {
                            run: r.id,
                            problem: format!(
                                "run {} was edited: its content no longer matches its recorded hash",
                                r.id
                            ),
                        });
                    }
                }
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
        Ok(Checked {
            problems: out,
            unproven,
            unreadable,
        })
    }

    /// Checks a report's anchor against the history: the run it names must
    /// be there, link to the head the report saw, and record the hash of
    /// the report's manifest (`manifest_sha256`). Each problem is a sentence.
    pub fn check_anchor(
        &self,
        anchor: &HistoryAnchor,
        manifest_sha256: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let Some(r) = self
            .rows("WHERE id = ?1", &[&anchor.run])?
            .into_iter()
            .next()
        else {
            let newest = self.latest()?;
            out.push(match newest {
                Some(n) if n < anchor.run => format!(
                    "run {} is missing: the history ends at run {n}, so its newest runs were deleted (or the database was replaced)",
                    anchor.run
                ),
                Some(_) => format!("run {} is missing: it was deleted", anchor.run),
                None => format!(
                    "run {} is missing: the history holds no runs at all",
                    anchor.run
                ),
            });
            return Ok(out);
        };
        if r.prev_hash != anchor.prev_hash {
            out.push(format!(
                "run {} links to another chain head than the report saw ({} instead of {}): the history before it was rewritten, or the database replaced",
                r.id,
                short(&r.prev_hash),
                short(&anchor.prev_hash)
            ));
        }
        if r.manifest_hash.as_deref() != Some(manifest_sha256) {
            out.push(format!(
                "run {} records another report manifest ({} instead of {}): the run was replaced, or the report edited",
                r.id,
                r.manifest_hash.as_deref().map_or("none", short),
                short(manifest_sha256)
            ));
        }
        if r.chain != anchor.chain || r.key_id != anchor.key_id {
            out.push(format!(
                "run {} is hashed as {} (key {}), the report recorded {} (key {})",
                r.id,
                r.chain,
                r.key_id.as_deref().unwrap_or("none"),
                anchor.chain,
                anchor.key_id.as_deref().unwrap_or("none")
            ));
        }
        Ok(out)
    }
}
