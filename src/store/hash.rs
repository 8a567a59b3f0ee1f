//! Store layer: the hash of a run's content, read straight from its rows
//! (never held whole), and whether those rows read back. A run of schema 3
//! hashes its compact rows; an older run its JSON texts, exactly as it was
//! hashed when recorded, so migrating a history never changes a hash.

use hmac::{Hmac, KeyInit, Mac};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::compact::{self, FORMAT_COMPACT};
use super::{CHAIN_HMAC, HistoryKey, Row};
use crate::model::{Finding, Observation};

/// The hash of a run's content: plain SHA-256, or HMAC-SHA256 under a key.
pub(super) enum ChainHasher {
    Plain(Sha256),
    Keyed(Box<Hmac<Sha256>>),
}

impl ChainHasher {
    pub(super) fn new(key: Option<&HistoryKey>) -> ChainHasher {
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

    /// One field, length-prefixed so no two different runs share an
    /// encoding.
    pub(super) fn put(&mut self, b: &[u8]) {
        self.update(&(b.len() as u64).to_be_bytes());
        self.update(b);
    }

    pub(super) fn finish(self) -> String {
        match self {
            ChainHasher::Plain(h) => hex::encode(h.finalize()),
            ChainHasher::Keyed(m) => hex::encode(m.finalize().into_bytes()),
        }
    }
}

/// The hasher of run `r` with its stored header fed in, in a fixed order.
/// Keyed (HMAC) when the row says so; `key` must then be the history key.
fn header(r: &Row, key: Option<&HistoryKey>) -> ChainHasher {
    let mut h = ChainHasher::new(if r.chain == CHAIN_HMAC { key } else { None });
    for s in [
        &r.id.to_string(),
        &r.started,
        &r.finished,
        &r.scope_key,
        &r.scope,
        &r.params,
        r.policy_hash.as_deref().unwrap_or("-"),
        r.manifest_hash.as_deref().unwrap_or("-"),
        &r.exceptions,
        &r.open_ports.to_string(),
        &r.severities,
        &r.prev_hash,
    ] {
        h.put(s.as_bytes());
    }
    h
}

/// The canonical content of a schema-2 run: every stored text, in a fixed
/// order, each length-prefixed.
#[cfg(test)]
pub(super) fn content_hash(
    r: &Row,
    observations: &[String],
    findings: &[String],
    key: Option<&HistoryKey>,
) -> String {
    let mut h = header(r, key);
    h.put(format!("observations:{}", observations.len()).as_bytes());
    for o in observations {
        h.put(o.as_bytes());
    }
    h.put(format!("findings:{}", findings.len()).as_bytes());
    for f in findings {
        h.put(f.as_bytes());
    }
    h.finish()
}

/// What reading a run's rows found: its content hash and, when a row does
/// not read back, why (the chain may still hold).
pub(super) struct Scanned {
    pub hash: String,
    pub unreadable: Option<String>,
}

/// Hashes run `r` from its stored rows, one row at a time, and checks that
/// each reads back.
pub(super) fn scan(
    conn: &Connection,
    r: &Row,
    key: Option<&HistoryKey>,
) -> rusqlite::Result<Scanned> {
    if r.format == FORMAT_COMPACT {
        scan_compact(conn, r, key)
    } else {
        scan_json(conn, r, key)
    }
}

fn scan_compact(conn: &Connection, r: &Row, key: Option<&HistoryKey>) -> rusqlite::Result<Scanned> {
    let mut h = header(r, key);
    h.put(format!("format:{FORMAT_COMPACT}").as_bytes());
    let mut bad: Option<String> = None;
    let (mut ports, mut findings) = (0u64, 0u64);
    {
        let h = std::cell::RefCell::new(&mut h);
        let bad = std::cell::RefCell::new(&mut bad);
        let note = |e: Result<(), String>| {
            if let Err(e) = e {
                bad.borrow_mut().get_or_insert(e);
            }
        };
        compact::walk::<rusqlite::Error>(
            conn,
            r.id,
            &|e| e,
            &mut |p| {
                ports += 1;
                p.hash_into(&mut |b| h.borrow_mut().put(b));
                note(p.decode().map(drop));
                Ok(())
            },
            &mut |f| {
                findings += 1;
                f.hash_into(&mut |b| h.borrow_mut().put(b));
                note(f.decode().map(drop));
                Ok(())
            },
        )?;
    }
    h.put(format!("ports:{ports} findings:{findings}").as_bytes());
    Ok(Scanned {
        hash: h.finish(),
        unreadable: bad.map(|why| format!("run {} cannot be read back: {why}", r.id)),
    })
}

/// A schema-2 run: hashed as [`content_hash`] does, streaming its texts.
fn scan_json(conn: &Connection, r: &Row, key: Option<&HistoryKey>) -> rusqlite::Result<Scanned> {
    let mut h = header(r, key);
    let mut bad: Option<String> = None;
    for (table, what) in [("observations", "observations"), ("findings", "findings")] {
        let n: i64 = conn.query_row(
            &format!("SELECT count(*) FROM {table} WHERE run_id = ?1"),
            [r.id],
            |x| x.get(0),
        )?;
        h.put(format!("{what}:{n}").as_bytes());
        let mut st = conn.prepare(&format!(
            "SELECT json FROM {table} WHERE run_id = ?1 ORDER BY seq"
        ))?;
        let mut rows = st.query([r.id])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            h.put(text.as_bytes());
            if bad.is_none() {
                let parsed = match table {
                    "observations" => serde_json::from_str::<Observation>(&text).map(drop),
                    _ => serde_json::from_str::<Finding>(&text).map(drop),
                };
                if let Err(e) = parsed {
                    bad = Some(format!(
                        "run {} cannot be read back: its stored {what}: {e}",
                        r.id
                    ));
                }
            }
        }
    }
    Ok(Scanned {
        hash: h.finish(),
        unreadable: bad,
    })
}
