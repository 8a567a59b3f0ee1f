use super::*;
use crate::model::{FindingStatus, Proto, Reason, ServiceInfo};

pub(super) fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pw-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("history.db")
}

pub(super) fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub(super) fn obs(
    ip: &str,
    port: u16,
    reason: Reason,
    service: Option<&str>,
    time: &str,
) -> Observation {
    let mut o = Observation::new(ip.parse().unwrap(), port, Proto::Tcp, reason, None);
    o.time = at(time);
    o.service = service.map(|n| ServiceInfo {
        name: n.into(),
        confidence: 1.0,
        ..Default::default()
    });
    o
}

pub(super) fn finding(id: &str, ip: &str, port: u16, check: &str, severity: Severity) -> Finding {
    Finding {
        id: id.into(),
        check: check.into(),
        severity,
        ip: ip.parse().unwrap(),
        port: Some(port),
        proto: Some(Proto::Tcp),
        service: None,
        group: None,
        evidence: None,
        status: FindingStatus::Fail,
        exception: None,
        controls: Default::default(),
        remediation: "close-port".into(),
        message: format!("{check} on {ip}:{port}"),
        msg: Default::default(),
        allowed_by: None,
    }
}

pub(super) fn run(day: &str, observations: Vec<Observation>, findings: Vec<Finding>) -> NewRun {
    NewRun {
        started: at(&format!("{day}T10:00:00Z")),
        finished: at(&format!("{day}T10:05:00Z")),
        scope: ScopeRecord::new(&["198.18.0.0/24".into()], &[], "common"),
        params: serde_json::json!({"engine": "connect"}),
        policy_hash: Some("ab".repeat(32)),
        manifest_hash: None,
        exceptions: vec![ExceptionNote {
            id: "RISK-1".into(),
            target: "198.18.0.9".into(),
            expires: "2026-11-10".parse().unwrap(),
        }],
        observations,
        findings,
    }
}

pub(super) fn three_runs(path: &Path) -> Store {
    let mut s = Store::open(path).unwrap();
    for day in ["2026-11-01", "2026-11-08", "2026-11-15"] {
        let r = run(
            day,
            vec![obs(
                "198.18.0.5",
                22,
                Reason::Connected,
                Some("ssh"),
                &format!("{day}T10:01:00Z"),
            )],
            vec![finding(
                "f1",
                "198.18.0.5",
                22,
                "not-allowed",
                Severity::High,
            )],
        );
        s.record(&r).unwrap();
    }
    s
}

#[test]
fn schema_is_versioned_and_wal() {
    let path = tmp("schema");
    let s = Store::open(&path).unwrap();
    let v: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = s
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(s);
    // Reopening does not migrate twice.
    let s = Store::open(&path).unwrap();
    assert_eq!(s.count().unwrap(), 0);
    s.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(s);
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("schema version 99 is newer"), "{err}");
}

#[test]
fn records_load_back_and_list() {
    let path = tmp("roundtrip");
    let s = three_runs(&path);
    let r = s.load(2).unwrap();
    assert_eq!(r.record.observations.len(), 1);
    assert_eq!(r.record.observations[0].port, 22);
    assert_eq!(
        r.record.observations[0].service.as_ref().unwrap().name,
        "ssh"
    );
    assert_eq!(r.record.findings[0].id, "f1");
    assert_eq!(r.prev_hash, s.load(1).unwrap().content_hash);
    assert_eq!(s.load(1).unwrap().prev_hash, GENESIS);
    let list = s.list(None).unwrap();
    assert_eq!(list.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(list[0].open_ports, 1);
    assert_eq!(list[0].findings.get(&Severity::High), Some(&1));
    assert_eq!(list[0].targets, ["198.18.0.0/24"]);
    let key = list[0].scope_key.clone();
    assert_eq!(s.latest_of_scope(&key, None).unwrap(), Some(3));
    assert_eq!(s.latest_of_scope(&key, Some(3)).unwrap(), Some(2));
    assert_eq!(s.latest_of_scope("nope", None).unwrap(), None);
    let err = s.load(9).unwrap_err().to_string();
    assert!(err.contains("no run 9"), "{err}");
    assert!(s.verify().unwrap().is_empty());
}

#[test]
fn scope_key_ignores_order() {
    let a = ScopeRecord::new(&["b".into(), "a".into(), "a".into()], &[], "22");
    let b = ScopeRecord::new(&["a".into(), "b".into()], &[], " 22");
    assert_eq!(a.key, b.key);
    assert_eq!(a.key.len(), 16);
    assert_ne!(a.key, ScopeRecord::new(&["a".into()], &[], "22").key);
    assert_ne!(
        a.key,
        ScopeRecord::new(&["a".into(), "b".into()], &[], "23").key
    );
}

#[test]
fn verify_names_an_edited_run() {
    let path = tmp("edit");
    let s = three_runs(&path);
    s.conn
        .execute("UPDATE run_findings SET severity = 1 WHERE run_id = 2", [])
        .unwrap();
    let t = s.verify().unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].run, 2);
    assert_eq!(
        t[0].problem,
        "run 2 was edited: its content no longer matches its recorded hash"
    );
}

#[test]
fn verify_names_an_edited_run_whose_hash_was_rewritten() {
    let path = tmp("rehash");
    let s = three_runs(&path);
    s.conn
        .execute("UPDATE runs SET open_ports = 0 WHERE id = 2", [])
        .unwrap();
    // The forger recomputes run 2's own hash …
    let r = s.rows("WHERE id = 2", &[]).unwrap().remove(0);
    let h = hash::scan(&s.conn, &r, None).unwrap().hash;
    s.conn
        .execute("UPDATE runs SET content_hash = ?1 WHERE id = 2", [h])
        .unwrap();
    // … but run 3 still links to the original.
    let t = s.verify().unwrap();
    assert_eq!(
        t,
        [Tamper {
            run: 2,
            problem: "run 2 was edited: run 3 recorded another hash for it".into()
        }]
    );
}

#[test]
fn verify_names_deleted_runs() {
    let path = tmp("delete");
    let s = three_runs(&path);
    for t in ["observations", "findings", "run_ports", "run_findings"] {
        s.conn
            .execute(&format!("DELETE FROM {t} WHERE run_id = 2"), [])
            .unwrap();
    }
    s.conn.execute("DELETE FROM runs WHERE id = 2", []).unwrap();
    let t = s.verify().unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].run, 2);
    assert_eq!(
        t[0].problem,
        "run 2 was deleted (the history jumps to run 3)"
    );

    let path = tmp("delete-last");
    let s = three_runs(&path);
    for t in ["observations", "findings", "run_ports", "run_findings"] {
        s.conn
            .execute(&format!("DELETE FROM {t} WHERE run_id = 3"), [])
            .unwrap();
    }
    s.conn.execute("DELETE FROM runs WHERE id = 3", []).unwrap();
    let t = s.verify().unwrap();
    assert_eq!(
        t,
        [Tamper {
            run: 3,
            problem: "run 3 (the newest) was deleted".into()
        }]
    );
}

#[test]
fn concurrent_audits_both_land_in_one_chain() {
    let path = tmp("concurrent");
    Store::open(&path).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut s = Store::open(&path).unwrap();
                for _ in 0..5 {
                    s.record(&run(&format!("2026-11-0{}", i + 1), vec![], vec![]))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.count().unwrap(), 20);
    assert!(s.verify().unwrap().is_empty());
}

/// Two runs of one scope, a fortnight apart: 8443 and 9000 opened, 23 and
/// 25 closed, 80 changed service, one exception added.
pub(super) fn two_runs() -> (NewRun, NewRun) {
    let a = run(
        "2026-11-01",
        vec![
            obs(
                "198.18.0.5",
                22,
                Reason::Connected,
                Some("ssh"),
                "2026-11-01T10:01:00Z",
            ),
            obs(
                "198.18.0.5",
                80,
                Reason::Connected,
                Some("http"),
                "2026-11-01T10:01:00Z",
            ),
            obs(
                "198.18.0.5",
                23,
                Reason::Connected,
                None,
                "2026-11-01T10:01:00Z",
            ),
            obs(
                "198.18.0.6",
                25,
                Reason::Connected,
                None,
                "2026-11-01T10:01:00Z",
            ),
        ],
        vec![
            finding("f23", "198.18.0.5", 23, "cleartext-admin", Severity::High),
            finding("f22", "198.18.0.5", 22, "not-allowed", Severity::Medium),
        ],
    );
    let mut b = run(
        "2026-11-15",
        vec![
            obs(
                "198.18.0.5",
                22,
                Reason::Connected,
                Some("ssh"),
                "2026-11-15T10:01:00Z",
            ),
            obs(
                "198.18.0.5",
                80,
                Reason::Connected,
                Some("nginx"),
                "2026-11-15T10:01:00Z",
            ),
            obs(
                "198.18.0.5",
                23,
                Reason::ConnRefused,
                None,
                "2026-11-15T10:01:00Z",
            ),
            obs(
                "198.18.0.5",
                8443,
                Reason::Connected,
                None,
                "2026-11-15T10:01:00Z",
            ),
            obs(
                "198.18.0.5",
                9000,
                Reason::Connected,
                None,
                "2026-11-15T10:01:00Z",
            ),
        ],
        vec![
            finding("f22", "198.18.0.5", 22, "not-allowed", Severity::Medium),
            finding(
                "f8443",
                "198.18.0.5",
                8443,
                "unapproved-change",
                Severity::High,
            ),
        ],
    );
    b.exceptions.push(ExceptionNote {
        id: "RISK-2".into(),
        target: "198.18.0.7".into(),
        expires: "2026-12-31".parse().unwrap(),
    });
    (a, b)
}

#[test]
fn drift_between_two_runs() {
    let (a, b) = two_runs();
    let d = drift((&a, Some(1)), (&b, None));
    let brief = |v: &[PortChange]| {
        v.iter()
            .map(|c| format!("{}:{} {:?}", c.ip, c.port, c.approval))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        brief(&d.opened),
        [
            "198.18.0.5:8443 Some(\"unapproved\")",
            "198.18.0.5:9000 Some(\"approved\")"
        ]
    );
    // The history keeps open ports only: not open any more is closed.
    assert_eq!(
        brief(&d.closed),
        ["198.18.0.5:23 None", "198.18.0.6:25 None"]
    );
    assert_eq!(d.services_changed.len(), 1);
    assert_eq!(d.services_changed[0].before.as_deref(), Some("http"));
    assert_eq!(d.services_changed[0].after.as_deref(), Some("nginx"));
    assert_eq!(d.findings_new.len(), 1);
    assert_eq!(d.findings_new[0].id, "f8443");
    assert_eq!(d.findings_resolved.len(), 1);
    assert_eq!(d.findings_resolved[0].id, "f23");
    assert_eq!(d.exceptions_expired.len(), 1);
    assert_eq!(d.exceptions_expired[0].id, "RISK-1");
    assert_eq!(d.from.id, Some(1));
    assert_eq!(d.to.id, None);
    let rows = drift::rows(&d);
    assert_eq!(rows.len(), 8);
    assert_eq!(
        rows[0],
        [
            "opened".to_string(),
            "198.18.0.5".into(),
            "8443/tcp".into(),
            "unapproved".into()
        ]
    );
    assert!(!d.is_empty());
    // Judged over the runs in between too: 9000's finding was waived there.
    let mut mid = b.clone();
    mid.findings = vec![finding(
        "f9000",
        "198.18.0.5",
        9000,
        "unapproved-change",
        Severity::High,
    )];
    mid.findings[0].status = FindingStatus::Waived;
    let mut d2 = d.clone();
    drift::judge_approval(&mut d2, &[&mid, &b]);
    assert_eq!(
        brief(&d2.opened),
        [
            "198.18.0.5:8443 Some(\"unapproved\")",
            "198.18.0.5:9000 Some(\"waived\")"
        ]
    );
    assert!(drift((&a, None), (&a, None)).is_empty());
}

fn key(b: u8) -> HistoryKey {
    HistoryKey::new(&[b; 32]).unwrap()
}

/// Records three runs through begin/commit and returns their anchors, as
/// an audit does (the manifest hash stands in for a report's).
fn three_anchored(path: &Path, k: Option<HistoryKey>) -> (Store, Vec<(HistoryAnchor, String)>) {
    let mut s = Store::open(path).unwrap();
    s.set_key(k);
    let mut anchors = Vec::new();
    for (i, day) in ["2026-11-01", "2026-11-08", "2026-11-15"]
        .iter()
        .enumerate()
    {
        let mut r = run(
            day,
            vec![obs(
                "198.18.0.5",
                22,
                Reason::Connected,
                None,
                &format!("{day}T10:01:00Z"),
            )],
            vec![],
        );
        let pending = s.begin_record().unwrap();
        let anchor = pending.anchor().clone();
        let manifest = format!("{i:064}");
        r.manifest_hash = Some(manifest.clone());
        let id = pending.commit(&r).unwrap();
        assert_eq!(id, anchor.run);
        anchors.push((anchor, manifest));
    }
    (s, anchors)
}

fn delete_run(s: &Store, id: i64) {
    for t in ["observations", "findings", "run_ports", "run_findings"] {
        s.conn
            .execute(&format!("DELETE FROM {t} WHERE run_id = ?1"), [id])
            .unwrap();
    }
    s.conn
        .execute("DELETE FROM runs WHERE id = ?1", [id])
        .unwrap();
}

#[test]
fn anchors_name_the_run_and_the_head_before_it() {
    let path = tmp("anchor");
    let (s, anchors) = three_anchored(&path, None);
    assert_eq!(anchors[0].0.prev_hash, GENESIS);
    assert_eq!(anchors[0].0.chain, CHAIN_SHA256);
    let run1 = s.load(1).unwrap();
    assert_eq!(anchors[1].0.prev_hash, run1.content_hash);
    assert_eq!(anchors[2].0.run, 3);
    for (a, m) in &anchors {
        assert!(s.check_anchor(a, m).unwrap().is_empty());
    }
    // A report whose manifest changed no longer matches its run.
    let p = s.check_anchor(&anchors[2].0, &"f".repeat(64)).unwrap();
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("run 3 records another report manifest"),
        "{p:?}"
    );
    // Dropping a pending record leaves nothing behind.
    let mut s = s;
    let pending = s.begin_record().unwrap();
    assert_eq!(pending.anchor().run, 4);
    drop(pending);
    assert_eq!(s.count().unwrap(), 3);
    assert!(s.verify().unwrap().is_empty());
}

/// Tamper case 1: the newest run deleted and `sqlite_sequence` adjusted.
/// The chain alone cannot see it; the report's anchor does.
#[test]
fn deleting_the_newest_run_and_fixing_the_sequence_is_caught_by_the_anchor() {
    let path = tmp("newest");
    let (s, anchors) = three_anchored(&path, None);
    delete_run(&s, 3);
    s.conn
        .execute("UPDATE sqlite_sequence SET seq = 2 WHERE name = 'runs'", [])
        .unwrap();
    assert!(
        s.verify().unwrap().is_empty(),
        "undetectable from the chain alone"
    );
    let p = s.check_anchor(&anchors[2].0, &anchors[2].1).unwrap();
    assert_eq!(
        p,
        [
            "run 3 is missing: the history ends at run 2, so its newest runs were deleted (or the database was replaced)"
        ]
    );
    // And a new run 3 recorded in its place links elsewhere.
    let mut s = s;
    let mut r = run("2026-11-20", vec![], vec![]);
    r.manifest_hash = Some("e".repeat(64));
    s.record(&r).unwrap();
    let p = s.check_anchor(&anchors[2].0, &anchors[2].1).unwrap();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("run 3 records another report manifest"),
        "{p:?}"
    );
}

/// Tamper case 2: every run deleted (and the sequence with them).
#[test]
fn deleting_every_run_is_not_intact() {
    let path = tmp("all");
    let (s, anchors) = three_anchored(&path, None);
    for id in 1..=3 {
        delete_run(&s, id);
    }
    let v = s.verification().unwrap();
    assert_eq!(v.problems.len(), 1, "the sequence remembers: {v:?}");
    assert_eq!(
        v.problems[0].problem,
        "runs 1 to 3 (the newest) were deleted"
    );
    s.conn.execute("DELETE FROM sqlite_sequence", []).unwrap();
    let v = s.verification().unwrap();
    assert_eq!((v.runs, v.problems.len()), (0, 0));
    let p = s.check_anchor(&anchors[0].0, &anchors[0].1).unwrap();
    assert_eq!(p, ["run 1 is missing: the history holds no runs at all"]);
}

/// Tamper case 3: a 0-byte database, and a missing one.
#[test]
fn a_zero_byte_or_missing_store_is_reported_as_such() {
    let path = tmp("zero");
    std::fs::write(&path, b"").unwrap();
    let e = Store::open(&path).unwrap_err();
    assert!(matches!(e, StoreError::EmptyFile { .. }), "{e}");
    assert!(e.to_string().contains("is an empty file (0 bytes)"), "{e}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left untouched");
    let e = Store::open_existing(&path).unwrap_err();
    assert!(matches!(e, StoreError::EmptyFile { .. }), "{e}");
    let gone = path.with_file_name("nothing.db");
    let e = Store::open_existing(&gone).unwrap_err();
    assert!(matches!(e, StoreError::Missing { .. }), "{e}");
    assert!(!gone.exists(), "a reading command never creates a store");
}

/// Tamper case 4: a run edited and the whole chain recomputed without the
/// key. With the key, every recomputed run is named.
#[test]
fn recomputing_a_keyed_chain_without_the_key_is_detected() {
    let path = tmp("hmac");
    let (mut s, anchors) = three_anchored(&path, Some(key(7)));
    assert_eq!(anchors[0].0.chain, CHAIN_HMAC);
    assert_eq!(anchors[0].0.key_id, Some(key(7).id()));
    assert!(s.verify().unwrap().is_empty());
    // Without the key nothing keyed can be checked: unproven, not intact.
    s.set_key(None);
    let v = s.verification().unwrap();
    assert_eq!(v.unproven, [1, 2, 3]);
    assert!(matches!(
        s.verify_segment(1, 3),
        Err(StoreError::KeyNeeded { run: 1, .. })
    ));
    // Nor can a run be added without it.
    assert!(matches!(
        s.record(&run("2026-11-30", vec![], vec![])),
        Err(StoreError::KeyNeeded { run: 3, .. })
    ));
    s.set_key(Some(key(8)));
    assert!(matches!(
        s.record(&run("2026-11-30", vec![], vec![])),
        Err(StoreError::WrongKey { run: 3, .. })
    ));
    // The forger edits run 2 and rebuilds the chain with plain SHA-256.
    s.conn
        .execute("UPDATE runs SET open_ports = 0 WHERE id = 2", [])
        .unwrap();
    let mut prev = GENESIS.to_string();
    for id in 1..=3i64 {
        s.conn
            .execute(
                "UPDATE runs SET chain = 'sha256', key_id = NULL, prev_hash = ?1 WHERE id = ?2",
                rusqlite::params![prev, id],
            )
            .unwrap();
        let r = s.rows("WHERE id = ?1", &[&id]).unwrap().remove(0);
        let h = hash::scan(&s.conn, &r, None).unwrap().hash;
        s.conn
            .execute(
                "UPDATE runs SET content_hash = ?1 WHERE id = ?2",
                rusqlite::params![h, id],
            )
            .unwrap();
        prev = h;
    }
    // Without the key the rebuilt chain looks whole …
    s.set_key(None);
    assert!(s.verify().unwrap().is_empty());
    // … with it, every run is named, and the anchors disagree.
    s.set_key(Some(key(7)));
    let t = s.verify().unwrap();
    assert_eq!(
        t.iter().map(|t| t.run).collect::<Vec<_>>(),
        [1, 2, 3],
        "{t:?}"
    );
    assert!(
        t[0].problem
            .contains("is not HMAC-keyed although a key was given"),
        "{t:?}"
    );
    let p = s.check_anchor(&anchors[2].0, &anchors[2].1).unwrap();
    assert!(
        p.iter().any(|p| p.contains("links to another chain head")),
        "{p:?}"
    );
    assert!(p.iter().any(|p| p.contains("is hashed as sha256")), "{p:?}");
    // Keeping the HMAC label but guessing the key fails too.
    s.conn
        .execute(
            "UPDATE runs SET chain = 'hmac-sha256', key_id = ?1",
            [key(7).id()],
        )
        .unwrap();
    let t = s.verify().unwrap();
    assert!(
        t.iter()
            .any(|t| t.run == 2 && t.problem.contains("was edited")),
        "{t:?}"
    );
}

/// diff and drift read a segment of the chain and refuse a broken one.
#[test]
fn a_broken_segment_is_refused_naming_the_run() {
    let path = tmp("segment");
    let s = three_runs(&path);
    s.verify_segment(1, 3).unwrap();
    s.verify_segment(2, 3).unwrap();
    s.conn
        .execute("UPDATE runs SET severities = '{}' WHERE id = 2", [])
        .unwrap();
    let e = s.verify_segment(1, 3).unwrap_err();
    assert!(matches!(e, StoreError::Broken { run: 2, .. }), "{e}");
    assert!(e.to_string().contains("run 2 was edited"), "{e}");
    // Run 3 alone links to run 2's recorded hash: still whole.
    s.verify_segment(3, 3).unwrap();
    delete_run(&s, 2);
    let e = s.verify_segment(1, 3).unwrap_err();
    assert!(e.to_string().contains("run 2 was deleted"), "{e}");
}

#[test]
fn an_unreadable_run_is_named_by_verification_not_as_tampering() {
    let p = tmp("unreadable");
    let mut s = Store::open(&p).unwrap();
    let mut o = obs(
        "198.18.0.5",
        80,
        Reason::Connected,
        Some("http"),
        "2026-11-01T10:01:00Z",
    );
    // What older versions let through from an import: stored as null.
    o.service.as_mut().unwrap().confidence = f32::NAN;
    s.record_as_schema_2(&run("2026-11-01", vec![o], vec![]))
        .unwrap();
    s.record(&run("2026-11-08", vec![], vec![])).unwrap();
    let v = s.verification().unwrap();
    assert!(v.problems.is_empty(), "the chain holds: {:?}", v.problems);
    assert_eq!(v.unreadable.len(), 1, "{:?}", v.unreadable);
    assert_eq!(v.unreadable[0].run, 1);
    assert!(
        v.unreadable[0]
            .problem
            .starts_with("run 1 cannot be read back: its stored observations: invalid type: null"),
        "{}",
        v.unreadable[0].problem
    );
    assert_eq!(s.unreadable(2).unwrap(), None);
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}

#[test]
fn twenty_first_opens_at_once_all_record_and_leave_nothing_behind() {
    let p = tmp("first-at-once");
    let go = std::sync::Arc::new(std::sync::Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (p, go) = (p.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                let mut s = Store::open(&p).map_err(|e| format!("open {i}: {e}"))?;
                s.record(&run("2026-11-01", vec![], vec![]))
                    .map_err(|e| format!("record {i}: {e}"))
            })
        })
        .collect();
    let mut ids: Vec<i64> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<i64>>());
    let s = Store::open(&p).unwrap();
    assert_eq!(s.count().unwrap(), 20);
    assert!(s.verify().unwrap().is_empty());
    drop(s);
    let mut left: Vec<String> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".new-"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "temporary databases left: {left:?}");
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}

#[test]
fn a_raised_stop_ends_the_wait_for_the_write_lock() {
    let p = tmp("stop-wait");
    let mut holder = Store::open(&p).unwrap();
    let pending = holder.begin_record().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waiter = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = Store::open_interruptible(&p, stop).unwrap();
            s.begin_record().map(|_| ()).map_err(|e| e.to_string())
        })
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = waiter.join().unwrap().unwrap_err();
    assert!(
        e.ends_with(
            "interrupted while waiting for another audit to finish writing (nothing recorded)"
        ),
        "{e}"
    );
    drop(pending);
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}
