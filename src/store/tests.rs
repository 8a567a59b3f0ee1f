use super::*;
use crate::model::{FindingStatus, Proto, Reason, ServiceInfo};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pw-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("history.db")
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn obs(ip: &str, port: u16, reason: Reason, service: Option<&str>, time: &str) -> Observation {
    let mut o = Observation::new(ip.parse().unwrap(), port, Proto::Tcp, reason, None);
    o.time = at(time);
    o.service = service.map(|n| ServiceInfo {
        name: n.into(),
        confidence: 1.0,
        ..Default::default()
    });
    o
}

fn finding(id: &str, ip: &str, port: u16, check: &str, severity: Severity) -> Finding {
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
        controls: vec![],
        remediation: "close-port".into(),
        message: format!("{check} on {ip}:{port}"),
        msg: Default::default(),
    }
}

fn run(day: &str, observations: Vec<Observation>, findings: Vec<Finding>) -> NewRun {
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

fn three_runs(path: &Path) -> Store {
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
        .execute(
            "UPDATE findings SET json = replace(json, '\"high\"', '\"low\"') WHERE run_id = 2",
            [],
        )
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
    let h = content_hash(
        &r,
        &s.texts("observations", 2).unwrap(),
        &s.texts("findings", 2).unwrap(),
    );
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
    for t in ["observations", "findings"] {
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
    for t in ["observations", "findings"] {
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

#[test]
fn drift_between_two_runs() {
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
