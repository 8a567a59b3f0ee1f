//! History store benchmark: recording, drift and verification of a
//! synthetic 1.2-million-observation run (issue 21).
//!
//! Not part of CI; run on demand (no root, no network):
//!
//! ```text
//! cargo bench --bench store                       # 120,000 hosts × 10 ports
//! cargo bench --bench store -- --hosts 20000      # a smaller scope
//! ```
//!
//! It builds run 1 (every host has 10 open TCP ports, about 1.25 findings
//! per port, a fifth of them waived) and records it into a fresh store,
//! then run 2 with about 1 % of the ports changed (closed, opened, another
//! service) and some findings changed, and records it too. Each phase runs
//! in its own process, so its peak RSS (`VmHWM`) is its own: the database
//! growth and commit wall time of each run, the drift between them, and
//! `history verify`. The temporary store is removed at the end.
//!
//! Measured on the 2-core build machine (loaded by other builds), 120,000
//! hosts: schema 3 adds 101.5 MB per run (85 B/observation), commits in
//! 12–18 s with about 57 MB above the run held in memory, diffs in 11 s at
//! 43 MB peak and verifies in 7.7 s at 37 MB. Schema 2 (at 24,000 hosts,
//! disk being short): 803 B/observation, drift 12.8 s at 921 MB, verify
//! 6.5 s at 389 MB; the issue measured 1.1 GB per 1.2-million-port run.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use portwarden::model::{
    Finding, FindingStatus, Observation, Proto, Reason, ServiceInfo, Severity,
};
use portwarden::store::{self, ExceptionNote, NewRun, ScopeRecord, Store};

const PORTS: [(u16, &str); 10] = [
    (22, "ssh"),
    (80, "http"),
    (443, "https"),
    (3306, "mysql"),
    (5432, "postgresql"),
    (6379, "redis"),
    (8080, "http-proxy"),
    (25, "smtp"),
    (3389, "ms-wbt-server"),
    (9200, "elasticsearch"),
];

fn peak_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ip(h: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + h))
}

fn id(ip: IpAddr, port: u16, check: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{ip}|{port}|tcp|{check}").as_bytes());
    hex::encode(&d[..8])
}

/// Run `n` (1 or 2) of `hosts` hosts: run 2 changes about 1 % of the ports.
fn synth(hosts: u32, n: u32) -> NewRun {
    let started: DateTime<Utc> = "2026-11-01T10:00:00Z".parse().unwrap();
    let started = started + Duration::days(7 * i64::from(n - 1));
    let mut observations = Vec::with_capacity(hosts as usize * PORTS.len());
    let mut findings = Vec::new();
    for h in 0..hosts {
        let addr = ip(h);
        for (i, (port, svc)) in PORTS.iter().enumerate() {
            let k = h as usize * PORTS.len() + i;
            // Run 2: 0.4 % closed, 0.3 % another service, 0.3 % moved.
            let (port, svc) = match (n, k % 1000) {
                (2, 0..=3) => continue,
                (2, 4..=6) => (*port, "unknown"),
                (2, 7..=9) => (port + 10000, *svc),
                _ => (*port, *svc),
            };
            let mut o = Observation::new(addr, port, Proto::Tcp, Reason::SynAck, None);
            o.time = started + Duration::milliseconds(k as i64);
            o.service = Some(ServiceInfo {
                name: svc.into(),
                confidence: 0.9,
                ..Default::default()
            });
            observations.push(o);
            let checks: &[&str] = if k.is_multiple_of(4) {
                &["not-allowed", "cleartext-admin"]
            } else {
                &["not-allowed"]
            };
            for check in checks {
                let waived = k.is_multiple_of(5) && !(n == 2 && k % 1000 == 15);
                findings.push(Finding {
                    id: id(addr, port, check),
                    check: (*check).into(),
                    severity: Severity::High,
                    ip: addr,
                    port: Some(port),
                    proto: Some(Proto::Tcp),
                    service: Some(svc.into()),
                    group: Some("office".into()),
                    evidence: None,
                    status: if waived {
                        FindingStatus::Waived
                    } else {
                        FindingStatus::Fail
                    },
                    exception: waived.then(|| "RISK-7".into()),
                    controls: vec!["pci-dss-4.0:1.2.5".to_string()].into(),
                    remediation: "close-port".into(),
                    message: format!(
                        "{port}/tcp ({svc}) is open but not allowed for group 'office'"
                    ),
                    msg: Default::default(),
                    allowed_by: None,
                });
            }
        }
    }
    NewRun {
        started,
        finished: started + Duration::minutes(30),
        scope: ScopeRecord::new(&["10.0.0.0/8".into()], &[], "top10"),
        params: serde_json::json!({"source": {"kind": "jsonl"}}),
        policy_hash: Some("ab".repeat(32)),
        manifest_hash: Some("cd".repeat(32)),
        exceptions: vec![ExceptionNote {
            id: "RISK-7".into(),
            target: "10.0.0.0/8".into(),
            expires: "2026-11-04".parse().unwrap(),
        }],
        observations,
        findings,
    }
}

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

/// One phase, in this process: prints one line.
fn phase(name: &str, db: &Path, hosts: u32) {
    match name {
        "record1" | "record2" => {
            let n = if name == "record1" { 1 } else { 2 };
            let run = synth(hosts, n);
            let held = peak_rss_kb() / 1024;
            let before = db_bytes(db);
            let mut s = Store::open(db).unwrap();
            let t = Instant::now();
            let id = s.record(&run).unwrap();
            let secs = t.elapsed().as_secs_f64();
            drop(s);
            let growth = db_bytes(db) - before;
            println!(
                "{name}: run {id}: {} observations, {} findings; commit {secs:.2} s; growth {:.1} MB ({:.0} B/observation); peak RSS {} MB ({held} MB with the run built, before recording)",
                run.observations.len(),
                run.findings.len(),
                growth as f64 / 1e6,
                growth as f64 / run.observations.len() as f64,
                peak_rss_kb() / 1024
            );
        }
        "drift" => {
            let s = Store::open(db).unwrap();
            let t = Instant::now();
            let d = drift(&s, 1, 2);
            println!(
                "drift 1→2: {} opened, {} closed, {} services, {} findings new, {} resolved; {:.2} s; peak RSS {} MB",
                d.opened.len(),
                d.closed.len(),
                d.services_changed.len(),
                d.findings_new.len(),
                d.findings_resolved.len(),
                t.elapsed().as_secs_f64(),
                peak_rss_kb() / 1024
            );
        }
        "verify" => {
            let s = Store::open(db).unwrap();
            let t = Instant::now();
            let v = s.verification().unwrap();
            assert!(v.problems.is_empty() && v.unreadable.is_empty(), "{v:?}");
            println!(
                "history verify: {} runs intact; {:.2} s; peak RSS {} MB",
                v.runs,
                t.elapsed().as_secs_f64(),
                peak_rss_kb() / 1024
            );
        }
        other => panic!("unknown phase {other}"),
    }
}

/// The drift between two recorded runs, as `diff` computes it.
fn drift(s: &Store, a: i64, b: i64) -> store::Drift {
    s.verify_segment(a, b).unwrap();
    s.diff(a, b).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let hosts: u32 = arg("--hosts")
        .and_then(|v| v.parse().ok())
        .unwrap_or(120_000);
    if let (Some(p), Some(db)) = (arg("--phase"), arg("--db")) {
        phase(&p, Path::new(&db), hosts);
        return;
    }
    let dir = std::env::temp_dir().join(format!("pw-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("history.db");
    println!("{hosts} hosts × {} ports", PORTS.len());
    let me = std::env::current_exe().unwrap();
    for p in ["record1", "record2", "drift", "verify"] {
        let st = Command::new(&me)
            .args(["--phase", p, "--db"])
            .arg(&db)
            .args(["--hosts", &hosts.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "phase {p} failed");
    }
    println!("database: {:.1} MB", db_bytes(&db) as f64 / 1e6);
    std::fs::remove_dir_all(&dir).unwrap();
}
