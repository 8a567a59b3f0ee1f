//! Schema 3: compact rows, their drift, their hash, and histories written
//! before them.

use super::tests::{finding, obs, run, tmp, two_runs};
use super::*;
use crate::model::{FindingStatus, Proto, Reason};

fn db_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|ext| {
            let mut p = db.as_os_str().to_owned();
            p.push(ext);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        })
        .sum()
}

/// The drift of the whole-record path, as the app computed it before.
fn pure(a: &NewRun, b: &NewRun, ids: (Option<i64>, Option<i64>)) -> Drift {
    drift((a, ids.0), (b, ids.1))
}

#[test]
fn drift_from_the_history_is_the_drift_of_the_records() {
    let (a, b) = two_runs();
    let p = tmp("v3-drift");
    let mut s = Store::open(&p).unwrap();
    assert_eq!(s.record(&a).unwrap(), 1);
    // The previous run read one row at a time, the current one in memory.
    let expected = pure(&a, &b, (Some(1), None));
    assert_eq!(s.drift_to(1, &b).unwrap(), expected);
    // What the audit loads of its previous run gives the same drift and
    // baseline.
    let compared = s.load_compared(1).unwrap();
    assert_eq!(pure(&compared.record, &b, (Some(1), None)), expected);
    assert_eq!(baseline(&compared), baseline(&s.load(1).unwrap()));
    assert!(!expected.opened.is_empty() && !expected.findings_new.is_empty());
    // The run being recorded, from its rows in the open transaction (added
    // in batches of two, the record left empty).
    {
        let mut pending = s.begin_record().unwrap();
        for chunk in b.observations.chunks(2) {
            pending.add_observations(chunk).unwrap();
        }
        for chunk in b.findings.chunks(2) {
            pending.add_findings(chunk).unwrap();
        }
        let header = NewRun {
            observations: Vec::new(),
            findings: Vec::new(),
            ..b.clone()
        };
        assert_eq!(pending.drift_from(1, &header).unwrap(), expected);
        assert_eq!(pending.commit(&header).unwrap(), 2);
    }
    // Two recorded runs, as `diff` shows them.
    assert_eq!(s.diff(1, 2).unwrap(), pure(&a, &b, (Some(1), Some(2))));
    assert!(s.verify().unwrap().is_empty());
    // Recorded in batches or whole: the same rows, the same counts.
    let batched = s.load(2).unwrap().record;
    s.record(&b).unwrap();
    let whole = s.load(3).unwrap().record;
    assert_eq!(batched.observations, whole.observations);
    assert_eq!(batched.findings, whole.findings);
    let list = s.list(None).unwrap();
    assert_eq!(list[1].open_ports, list[2].open_ports);
    assert_eq!(list[1].findings, list[2].findings);
    // The baseline is the open ports, newest observation first.
    let base = s.baseline(2).unwrap();
    assert_eq!(base, baseline(&s.load(2).unwrap()));
    assert!(
        !base
            .open
            .contains(&("198.18.0.5".parse().unwrap(), 23, Proto::Tcp))
    );
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}

#[test]
fn a_schema_2_history_is_migrated_and_keeps_its_runs_and_hashes() {
    let (a, b) = two_runs();
    let p = tmp("v3-migrate");
    {
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.record_as_schema_2(&a).unwrap(), 1);
        assert_eq!(s.record_as_schema_2(&b).unwrap(), 2);
        // Make it the database schema 2 wrote.
        s.conn
            .execute_batch(
                "ALTER TABLE runs DROP COLUMN format; DROP TABLE run_ports; \
                 DROP TABLE run_findings; DROP TABLE texts; PRAGMA user_version = 2;",
            )
            .unwrap();
    }
    let mut s = Store::open(&p).unwrap();
    let v: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    // The old runs read back whole and keep the hashes they were given.
    let old = s.load(2).unwrap();
    assert_eq!(old.record.observations, b.observations);
    assert_eq!(old.record.findings, b.findings);
    let r = s.rows("WHERE id = 2", &[]).unwrap().remove(0);
    let texts = |t: &str| -> Vec<String> {
        let mut st = s
            .conn
            .prepare(&format!(
                "SELECT json FROM {t} WHERE run_id = 2 ORDER BY seq"
            ))
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        hash::content_hash(&r, &texts("observations"), &texts("findings"), None),
        old.content_hash
    );
    // A new run extends the chain; drift crosses the two formats.
    assert_eq!(s.record(&a).unwrap(), 3);
    assert!(s.verify().unwrap().is_empty());
    assert_eq!(s.diff(1, 2).unwrap(), pure(&a, &b, (Some(1), Some(2))));
    assert_eq!(s.diff(2, 3).unwrap(), pure(&b, &a, (Some(2), Some(3))));
    assert_eq!(s.drift_to(2, &a).unwrap(), pure(&b, &a, (Some(2), None)));
    // Editing an old run is still caught.
    s.conn
        .execute(
            "UPDATE findings SET json = replace(json, '\"medium\"', '\"low\"') WHERE run_id = 1",
            [],
        )
        .unwrap();
    let t = s.verify().unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].run, 1);
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}

#[test]
fn editing_compact_rows_or_shared_texts_is_detected() {
    let (a, b) = two_runs();
    let p = tmp("v3-tamper");
    let mut s = Store::open(&p).unwrap();
    s.record(&a).unwrap();
    s.record(&b).unwrap();
    assert!(s.verify().unwrap().is_empty());
    let edited = |s: &Store| -> Vec<i64> { s.verify().unwrap().iter().map(|t| t.run).collect() };
    // A service renamed in the shared text table: both runs used it.
    s.conn
        .execute("UPDATE texts SET text = 'telnet' WHERE text = 'ssh'", [])
        .unwrap();
    assert_eq!(edited(&s), [1, 2]);
    s.conn
        .execute("UPDATE texts SET text = 'ssh' WHERE text = 'telnet'", [])
        .unwrap();
    assert!(s.verify().unwrap().is_empty());
    // A port deleted, a finding waived, a row added.
    let sp = s
        .conn
        .execute("DELETE FROM run_ports WHERE run_id = 2 AND port = 9000", []);
    assert_eq!(sp.unwrap(), 1);
    assert_eq!(edited(&s), [2]);
    let p2 = tmp("v3-tamper2");
    let mut s = Store::open(&p2).unwrap();
    s.record(&a).unwrap();
    s.record(&b).unwrap();
    s.conn
        .execute("UPDATE run_findings SET status = 1 WHERE run_id = 1", [])
        .unwrap();
    assert_eq!(edited(&s), [1]);
    s.conn
        .execute(
            "INSERT INTO run_ports SELECT 2, ip, port + 1000, proto, state, service, seen \
             FROM run_ports WHERE run_id = 2 AND port = 22",
            [],
        )
        .unwrap();
    assert_eq!(edited(&s), [1, 2]);
    // A row that no longer decodes is named as unreadable, besides.
    s.conn
        .execute(
            "UPDATE run_ports SET proto = 7 WHERE run_id = 2 AND port = 23",
            [],
        )
        .unwrap();
    let v = s.verification().unwrap();
    assert_eq!(v.unreadable.len(), 1, "{v:?}");
    assert_eq!(
        v.unreadable[0].problem,
        "run 2 cannot be read back: a port row has an invalid protocol"
    );
    assert!(matches!(
        s.diff(1, 2),
        Err(StoreError::Corrupt { id: 2, .. })
    ));
    // Run 2 deleted without its rows and its id handed out again: the next
    // run would inherit them, so it is refused.
    s.conn.execute("DELETE FROM runs WHERE id = 2", []).unwrap();
    s.conn
        .execute("UPDATE sqlite_sequence SET seq = 1 WHERE name = 'runs'", [])
        .unwrap();
    let e = s.record(&b).unwrap_err();
    assert!(matches!(e, StoreError::Broken { run: 2, .. }), "{e}");
    for p in [p, p2] {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}

/// 2,000 hosts × 10 open ports, about 1.25 findings per port (a fifth
/// waived): the run and its findings take at most 100 bytes per
/// observation (about 76 today; a schema-2 run took about 900).
#[test]
fn database_growth_per_observation_is_bounded() {
    let p = tmp("v3-growth");
    let mut s = Store::open(&p).unwrap();
    s.record(&run("2026-11-01", vec![], vec![])).unwrap();
    s.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let before = db_bytes(&p);
    let (mut observations, mut findings) = (Vec::new(), Vec::new());
    for h in 0..2000u32 {
        let ip = std::net::Ipv4Addr::from(0xc612_0000 + h).to_string();
        for (i, port) in [22u16, 80, 443, 3306, 5432, 6379, 8080, 25, 3389, 9200]
            .into_iter()
            .enumerate()
        {
            let k = h as usize * 10 + i;
            observations.push(obs(
                &ip,
                port,
                Reason::SynAck,
                Some("http"),
                "2026-11-08T10:01:00Z",
            ));
            let checks: &[&str] = if k.is_multiple_of(4) {
                &["not-allowed", "cleartext-admin"]
            } else {
                &["not-allowed"]
            };
            for check in checks {
                let mut f = finding(
                    &format!("{:016x}", k * 2 + check.len()),
                    &ip,
                    port,
                    check,
                    Severity::High,
                );
                f.message = format!("{port}/tcp (http) is open but not allowed for group 'office'");
                if k.is_multiple_of(5) {
                    f.status = FindingStatus::Waived;
                }
                findings.push(f);
            }
        }
    }
    let n = observations.len() as u64;
    s.record(&run("2026-11-08", observations, findings))
        .unwrap();
    s.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let growth = db_bytes(&p) - before;
    eprintln!("{growth} bytes for {n} observations");
    assert!(growth <= 100 * n, "{growth} bytes for {n} observations");
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}
