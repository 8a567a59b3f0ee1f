//! Audit history, drift and imports end to end, with the real binary in the
//! namespace lab: an audit, a new listener, a second audit that reports the
//! drift and an `unapproved-change` finding, a change record that approves
//! it; a tampered history that `history verify` names; an nmap XML fixture
//! made by real `nmap -sT` in a lab, imported; `scan --format nmap-xml`
//! read back; JSONL shards of two halves of a /24 merged into one audit.

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::lab::{FAST_CONNECT, Lab};

/// Quick connect scans without identification.
fn fast() -> Vec<&'static str> {
    let mut v = FAST_CONNECT.to_vec();
    v.push("--no-identify");
    v
}

fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("pw-hist-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(path: &Path) -> Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap()
}

/// Runs the binary outside any namespace: only for commands that send no
/// packet (imports, history, diff).
fn offline(args: &[&str]) -> Output {
    Command::new(Lab::bin())
        .args(args)
        .env_remove("PORTWARDEN_STORE")
        .output()
        .expect("run portwarden")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// (ip, port) of the open observations in a report's observations.jsonl.
fn open_in(report: &Path) -> BTreeSet<(IpAddr, u16)> {
    let t = std::fs::read_to_string(report.join("observations.jsonl")).unwrap();
    t.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["state"] == "open")
        .map(|v| {
            (
                ip(v["ip"].as_str().unwrap()),
                v["port"].as_u64().unwrap() as u16,
            )
        })
        .collect()
}

fn unapproved(report: &Path) -> Vec<String> {
    json(&report.join("findings.json"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "unapproved-change")
        .map(|f| {
            format!(
                "{}:{} {}",
                f["ip"].as_str().unwrap(),
                f["port"],
                f["status"].as_str().unwrap()
            )
        })
        .collect()
}

fn requirement(report: &Path, profile: &str, id: &str) -> String {
    let doc = json(&report.join("findings.json"));
    let p = doc["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == profile)
        .unwrap()
        .clone();
    p["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

const POLICY: &str = r#"
[[group]]
name = "web"
targets = ["198.19.2.0/28"]
profiles = ["pci-dss-4.0", "mlps2-level3"]

[[group.allow]]
port = 22
justification = "administration"
approver = "ciso"
"#;

const CHANGES: &str = r#"
[[change]]
ticket = "CHG-100"
approver = "cab"
approved = 2026-11-20
target = "198.19.2.3"
opens = [8080]

[[change]]
ticket = "CHG-101"
approver = "cab"
approved = 2026-11-01
target = "web"
opens = [9000]
window = { from = 2026-11-02, until = 2026-11-10 }
"#;

#[test]
fn drift_unapproved_change_and_approval() {
    let lab = Lab::builder()
        .v4_prefix("198.19.2.0/28")
        .ports(&[22, 8080, 9000])
        .open(ip("198.19.2.1"), 22)
        .open(ip("198.19.2.2"), 22)
        .build();
    let dir = tempdir("drift");
    let store = dir.join("history.db");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let audit = |out: &str, as_of: &str| -> (Output, PathBuf) {
        let report = dir.join(out);
        let o = lab.run(
            &[
                &[
                    "audit",
                    "198.19.2.0/28",
                    "-p",
                    "22,8080,9000",
                    "--policy",
                    policy.to_str().unwrap(),
                    "--store",
                    store.to_str().unwrap(),
                    "--as-of",
                    as_of,
                    "--out",
                    report.to_str().unwrap(),
                ][..],
                &fast()[..],
            ]
            .concat(),
        );
        (o, report)
    };

    // Run 1: the baseline; nothing to compare with.
    let (o, r1) = audit("r1", "2026-11-24");
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("recorded as run 1 in the history"));
    assert!(!r1.join("drift.json").exists());
    assert_eq!(requirement(&r1, "pci-dss-4.0", "1.2.2"), "not-assessed");

    // Two services appear between the audits.
    let _l1 = lab.in_target(|| TcpListener::bind(("198.19.2.3", 8080)).unwrap());
    let _l2 = lab.in_target(|| TcpListener::bind(("198.19.2.4", 9000)).unwrap());

    // Run 2: both are drift, neither has a change record.
    let (o, r2) = audit("r2", "2026-11-24");
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let d = json(&r2.join("drift.json"));
    assert_eq!(d["from"]["id"], 1);
    let opened: Vec<String> = d["opened"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{} {}",
                c["ip"].as_str().unwrap(),
                c["port"],
                c["approval"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        opened,
        ["198.19.2.3:8080 unapproved", "198.19.2.4:9000 unapproved"]
    );
    assert_eq!(d["closed"].as_array().unwrap().len(), 0);
    assert_eq!(
        unapproved(&r2),
        ["198.19.2.3:8080 fail", "198.19.2.4:9000 fail"]
    );
    assert_eq!(requirement(&r2, "pci-dss-4.0", "1.2.2"), "fail");
    assert_eq!(requirement(&r2, "mlps2-level3", "8.1.10.6 g)"), "fail");

    // The drift table, for `--nocapture` readers.
    let table = offline(&["diff", "--store", store.to_str().unwrap()]);
    eprintln!("{}", text(&table.stdout));
    // `diff` (the last two runs of the scope) says the same.
    let o = offline(&[
        "diff",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let dj: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(dj["from"]["id"], 1);
    assert_eq!(dj["to"]["id"], 2);
    assert_eq!(dj["opened"], d["opened"]);
    let o = offline(&[
        "diff",
        "1",
        "2",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    let csv = text(&o.stdout);
    assert!(csv.starts_with("change,host,port,detail\n"), "{csv}");
    assert!(
        csv.contains("opened,198.19.2.3,8080/tcp,unapproved\n"),
        "{csv}"
    );

    // The change records arrive. Run 3 is compared with run 2, where both
    // ports were open already: no drift. But CHG-101 opened 9000 only until
    // 2026-11-10, so the still-open port is a finding without drift.
    std::fs::write(&policy, format!("{POLICY}{CHANGES}")).unwrap();
    let (o, r3) = audit("r3", "2026-11-24");
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert_eq!(unapproved(&r3), ["198.19.2.4:9000 fail"]);
    let f = json(&r3.join("findings.json"));
    let msg = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "unapproved-change")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        msg,
        "9000/tcp (fastcgi) on 198.19.2.4 is still open after temporary change CHG-101 ended on 2026-11-10: close it, or record a new approved change"
    );
    // Run 3 against run 2: nothing opened, the 8080 finding resolved.
    let d = json(&r3.join("drift.json"));
    assert_eq!(d["from"]["id"], 2);
    assert_eq!(d["opened"].as_array().unwrap().len(), 0);
    let resolved: Vec<&str> = d["findings_resolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert!(resolved.contains(&"unapproved-change"), "{resolved:?}");
    // Run 1 → run 3 spans run 2, where both ports were judged unapproved.
    let o = offline(&[
        "diff",
        "1",
        "3",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let dj: Value = serde_json::from_slice(&o.stdout).unwrap();
    let approvals: Vec<&str> = dj["opened"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["approval"].as_str().unwrap())
        .collect();
    assert_eq!(approvals, ["unapproved", "unapproved"]);

    // With a fresh history whose baseline predates the listeners, the same
    // policy approves 8080 at once: drift, but no finding for it.
    let store2 = dir.join("history2.db");
    std::fs::write(&policy, POLICY).unwrap();
    drop(_l1);
    drop(_l2);
    let base = dir.join("b1");
    let args = |out: &Path, store: &Path| -> Vec<String> {
        [
            "audit",
            "198.19.2.0/28",
            "-p",
            "22,8080,9000",
            "--policy",
            policy.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--as-of",
            "2026-11-24",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(fast().into_iter().map(|s| s.to_string()))
        .collect()
    };
    let o = lab.run(&args(&base, &store2));
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let _l3 = lab.in_target(|| TcpListener::bind(("198.19.2.3", 8080)).unwrap());
    std::fs::write(&policy, format!("{POLICY}{CHANGES}")).unwrap();
    let b2 = dir.join("b2");
    let o = lab.run(&args(&b2, &store2));
    // Approved as a change, but the group still does not allow 8080: the
    // change record is not an allowance (`not-allowed` trips the gate).
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let d = json(&b2.join("drift.json"));
    assert_eq!(d["opened"][0]["port"], 8080);
    assert_eq!(d["opened"][0]["approval"], "approved");
    assert!(unapproved(&b2).is_empty());
    // The drift check ran and found nothing unapproved; only the scan's
    // coverage (3 TCP ports of PCI's 65,535) keeps 1.2.2 from a pass.
    assert_eq!(requirement(&b2, "pci-dss-4.0", "1.2.2"), "partial");

    // history list shows the runs; verify passes, then names a forged run.
    let o = offline(&["history", "list", "--store", store.to_str().unwrap()]);
    let list = text(&o.stdout);
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(list.lines().nth(2).unwrap().contains("    4  0/"), "{list}");
    let o = offline(&["history", "verify", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains(": 3 runs, hash chain intact (give --against"),
        "{}",
        text(&o.stdout)
    );
    // Each report anchors its run; the history still holds all three.
    assert_eq!(json(&r3.join("manifest.json"))["history"]["run"], 3);
    let o = offline(&[
        "history",
        "verify",
        "--store",
        store.to_str().unwrap(),
        "--against",
        r1.to_str().unwrap(),
        r2.to_str().unwrap(),
        r3.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).ends_with("3 runs, hash chain intact; 3 report anchor(s) found in it\n"),
        "{}",
        text(&o.stdout)
    );
    let db = rusqlite::Connection::open(&store).unwrap();
    db.execute(
        "UPDATE run_findings SET status = 1 WHERE run_id = 2 AND status = 0",
        [],
    )
    .unwrap();
    let o = offline(&["history", "verify", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        text(&o.stdout),
        "run 2: run 2 was edited: its content no longer matches its recorded hash\n"
    );
    // diff reads runs 1 to 3 and refuses the broken segment, naming run 2.
    let o = offline(&["diff", "1", "3", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("run 2 was edited: its content no longer matches its recorded hash; refusing to use a broken chain"),
        "{}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty());
    for t in ["run_findings", "run_ports"] {
        db.execute(&format!("DELETE FROM {t} WHERE run_id = 3"), [])
            .unwrap();
    }
    db.execute("DELETE FROM runs WHERE id = 3", []).unwrap();
    let o = offline(&["history", "verify", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stdout).ends_with("run 3: run 3 (the newest) was deleted\n"),
        "{}",
        text(&o.stdout)
    );
}

/// The lab the nmap fixture was made in (and whose truth it must show).
fn fixture_lab() -> Lab {
    Lab::builder()
        .v4_prefix("198.19.7.0/29")
        .ports(&[22, 80, 443, 3306])
        .open(ip("198.19.7.1"), 22)
        .open(ip("198.19.7.1"), 80)
        .open(ip("198.19.7.2"), 443)
        .open(ip("198.19.7.3"), 3306)
        .drop(ip("198.19.7.4"), 80)
        .reject(ip("198.19.7.5"), 22)
        .build()
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nmap-lab.xml")
}

/// Regenerates `tests/fixtures/nmap-lab.xml` with the real nmap, inside the
/// lab's scanner namespace: `cargo test -- --ignored make_nmap_fixture`.
#[test]
#[ignore = "regenerates a committed fixture; needs nmap"]
fn make_nmap_fixture() {
    let lab = fixture_lab();
    let o = lab.run_program(
        "nmap",
        &[
            "-sT",
            "-Pn",
            "-n",
            "--reason",
            "-T4",
            "-p",
            "22,80,443,3306",
            "-oX",
            "-",
            "198.19.7.0/29",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::create_dir_all(fixture().parent().unwrap()).unwrap();
    std::fs::write(fixture(), &o.stdout).unwrap();
}

#[test]
fn nmap_fixture_imports_with_the_lab_truth() {
    // No scan: the binary only reads the file.
    let dir = tempdir("nmap");
    let report = dir.join("r");
    let o = offline(&[
        "audit",
        "--from-nmap",
        fixture().to_str().unwrap(),
        "--no-store",
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(code(&o) == 0 || code(&o) == 1, "{}", text(&o.stderr));
    let want: BTreeSet<(IpAddr, u16)> = [
        ("198.19.7.1", 22),
        ("198.19.7.1", 80),
        ("198.19.7.2", 443),
        ("198.19.7.3", 3306),
    ]
    .into_iter()
    .map(|(a, p)| (ip(a), p))
    .collect();
    assert_eq!(open_in(&report), want);
    let all: Vec<Value> = std::fs::read_to_string(report.join("observations.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 8 hosts × 4 ports, every one concluded.
    assert_eq!(all.len(), 32);
    let find = |a: &str, p: u64| {
        all.iter()
            .find(|v| v["ip"] == a && v["port"] == p)
            .unwrap_or_else(|| panic!("{a}:{p} missing"))
    };
    assert_eq!(find("198.19.7.1", 22)["reason"], "connected");
    assert_eq!(find("198.19.7.1", 443)["state"], "closed");
    assert_eq!(find("198.19.7.1", 443)["reason"], "conn-refused");
    assert_eq!(find("198.19.7.4", 80)["state"], "filtered");
    assert_eq!(find("198.19.7.4", 80)["reason"], "no-response");
    assert_eq!(find("198.19.7.5", 22)["state"], "filtered");
    // connect() sees ICMP admin-prohibited as EHOSTUNREACH, as nmap says.
    assert_eq!(find("198.19.7.5", 22)["reason"], "host-unreach");
    // nmap's guess from its port table is no identification.
    let svc = &find("198.19.7.3", 3306)["service"];
    assert_eq!(svc["name"], "mysql");
    assert!(svc["confidence"].as_f64().unwrap() < 0.5);
    // The scope says where the data came from: the file, its hash, and
    // what nmap recorded about its scan; the manifest carries the same.
    let json = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(report.join(name)).unwrap()).unwrap()
    };
    let scope = json("report.json")["scope"].clone();
    let input = &scope["inputs"][0];
    assert_eq!(input["kind"], "nmap-xml");
    assert_eq!(input["scanner"], "nmap");
    assert_eq!(input["scanner_version"], "7.93");
    assert_eq!(
        input["args"],
        "nmap -sT -Pn -n --reason -T4 -p 22,80,443,3306 -oX - 198.19.7.0/29"
    );
    assert_eq!(input["started"], "2026-11-24T22:46:27Z");
    assert_eq!(input["finished"], "2026-11-24T22:46:28Z");
    assert_eq!(
        input["ports"],
        serde_json::json!([{"protocol": "tcp", "scan_type": "connect", "ports": "22,80,443,3306"}])
    );
    assert_eq!(json("manifest.json")["inputs"], scope["inputs"]);
    // Imported results have no source address, hence no interface.
    assert!(scope.get("source_interfaces").is_none());
}

#[test]
fn scan_nmap_xml_export_reads_back() {
    let lab = fixture_lab();
    let dir = tempdir("export");
    let xml = dir.join("scan.xml");
    let o = lab.run(
        &[
            &[
                "scan",
                "198.19.7.0/29",
                "-p",
                &lab.ports_arg(),
                "--format",
                "nmap-xml",
                "-o",
                xml.to_str().unwrap(),
            ][..],
            &FAST_CONNECT[..],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let body = std::fs::read_to_string(&xml).unwrap();
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n<nmaprun scanner=\"portwarden\""), "{body}");
    assert!(body.contains("<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"4\" services=\"22,80,443,3306\"/>"), "{body}");
    let report = dir.join("r");
    let o = offline(&[
        "audit",
        "--from-nmap",
        xml.to_str().unwrap(),
        "--no-store",
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(code(&o) == 0 || code(&o) == 1, "{}", text(&o.stderr));
    let want: BTreeSet<(IpAddr, u16)> = lab.open_pairs();
    assert_eq!(open_in(&report), want);
}

#[test]
fn jsonl_shards_merge_into_one_audit_of_the_whole_scope() {
    let mut b = Lab::builder()
        .v4_prefix("198.19.3.0/24")
        .ports(&[22, 80, 443]);
    for (host, port) in [(5, 22), (77, 80), (128, 443), (200, 22), (254, 80)] {
        b = b.open(IpAddr::from([198, 19, 3, host]), port);
    }
    let lab = b.build();
    let dir = tempdir("shards");
    let mut shards = Vec::new();
    // Two scanners with one seed split the whole /24 with --shard, as the
    // Indexed Job in deploy/kubernetes does.
    for i in 0..2 {
        let f = dir.join(format!("shard-{i}.jsonl"));
        let shard = format!("{i}/2");
        let o = lab.run(
            &[
                &[
                    "scan",
                    "198.19.3.0/24",
                    "--shard",
                    &shard,
                    "-p",
                    "22,80,443",
                    "--format",
                    "jsonl",
                    "-o",
                    f.to_str().unwrap(),
                ][..],
                &FAST_CONNECT[..],
            ]
            .concat(),
        );
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        shards.push(f);
    }
    // Disjoint and complete: the shards' rows add up to the whole space.
    let rows: Vec<usize> = shards
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .collect();
    assert_eq!(rows.iter().sum::<usize>(), 254 * 3, "{rows:?}");
    assert!(rows.iter().all(|&r| r > 254), "uneven shards: {rows:?}");
    let store = dir.join("h.db");
    let report = dir.join("merged");
    // The scope: the policy's group names the /24; the ports are the ones
    // the files probed (an import takes no positional targets nor -p).
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[group]]\nname = \"lab\"\ntargets = [\"198.19.3.0/24\"]\n",
    )
    .unwrap();
    let o = offline(&[
        "audit",
        "--policy",
        policy.to_str().unwrap(),
        "--from-jsonl",
        shards[0].to_str().unwrap(),
        shards[1].to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(code(&o) == 0 || code(&o) == 1, "{}", text(&o.stderr));
    assert_eq!(open_in(&report), lab.open_pairs());
    let lines = std::fs::read_to_string(report.join("observations.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 254 * 3);

    // A direct audit of the group's /24 over the same ports has the same
    // scope: it is compared with the merged one and finds no drift.
    let direct = dir.join("direct");
    let o = lab.run(
        &[
            &[
                "audit",
                "--policy",
                policy.to_str().unwrap(),
                "-p",
                "22,80,443",
                "--store",
                store.to_str().unwrap(),
                "--out",
                direct.to_str().unwrap(),
            ][..],
            &fast()[..],
        ]
        .concat(),
    );
    assert!(code(&o) == 0 || code(&o) == 1, "{}", text(&o.stderr));
    let d = json(&direct.join("drift.json"));
    assert_eq!(d["from"]["id"], 1);
    assert_eq!(d["opened"].as_array().unwrap().len(), 0);
    assert_eq!(d["closed"].as_array().unwrap().len(), 0);
}

#[test]
fn metrics_file_for_the_textfile_collector() {
    let lab = Lab::builder()
        .v4_prefix("198.19.4.0/30")
        .ports(&[22, 23])
        .open(ip("198.19.4.1"), 23)
        .build();
    let dir = tempdir("metrics");
    let prom = dir.join("portwarden.prom");
    let o = lab.run(
        &[
            &[
                "audit",
                "198.19.4.0/30",
                "-p",
                "22,23",
                "--no-store",
                "--metrics",
                prom.to_str().unwrap(),
                "--out",
                dir.join("r").to_str().unwrap(),
            ][..],
            &fast()[..],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let m = std::fs::read_to_string(&prom).unwrap();
    let value = |series: &str| -> String {
        m.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("{series} missing:\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let key = {
        let l = m
            .lines()
            .find(|l| l.starts_with("portwarden_open_ports{"))
            .unwrap();
        l.split('"').nth(1).unwrap().to_string()
    };
    assert_eq!(
        value(&format!("portwarden_open_ports{{scope=\"{key}\"}}")),
        "1"
    );
    // The counts are those of findings.json.
    let findings = json(&dir.join("r").join("findings.json"));
    for sev in ["info", "low", "medium", "high", "critical"] {
        let n = findings["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == sev && f["status"] != "waived")
            .count();
        assert_eq!(
            value(&format!(
                "portwarden_findings{{scope=\"{key}\",severity=\"{sev}\"}}"
            )),
            n.to_string(),
            "{sev}"
        );
    }
    assert_eq!(
        value(&format!(
            "portwarden_findings{{scope=\"{key}\",severity=\"medium\"}}"
        )),
        "1",
        "unmanaged-host"
    );
    assert!(m.contains("# TYPE portwarden_compliance_score gauge\n"));
    // No percentage while requirements are partial or not assessed: the
    // counts per status say it instead.
    assert!(!m.contains(&format!(
        "portwarden_compliance_score{{scope=\"{key}\",profile=\"cis-v8\"}} "
    )));
    assert!(m.contains(&format!(
        "portwarden_requirements{{scope=\"{key}\",profile=\"cis-v8\",status=\"not-assessed\"}} "
    )));
    let t: i64 = value(&format!(
        "portwarden_last_success_timestamp_seconds{{scope=\"{key}\"}}"
    ))
    .parse()
    .unwrap();
    assert!((t - chrono::Utc::now().timestamp()).abs() < 600);
    assert!(m.contains(&format!(
        "portwarden_audit_duration_seconds{{scope=\"{key}\"}} "
    )));
}

/// Audits the same JSONL three times into `store`, returning the reports.
fn three_import_audits(dir: &Path, store: &Path, key: Option<&str>) -> Vec<PathBuf> {
    let obs = dir.join("obs.jsonl");
    std::fs::write(
        &obs,
        concat!(
            r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-11-20T10:00:00Z"}"#,
            "\n",
            r#"{"ip":"198.18.0.5","port":80,"proto":"tcp","state":"closed","reason":"conn-refused","rtt_ms":0.1,"time":"2026-11-20T10:00:00Z"}"#,
            "\n"
        ),
    )
    .unwrap();
    (1..=3)
        .map(|i| {
            let out = dir.join(format!("r{i}"));
            let mut c = Command::new(Lab::bin());
            c.args(["audit", "--from-jsonl"])
                .arg(&obs)
                .args(["--as-of", "2026-11-24", "--store"])
                .arg(store)
                .arg("--out")
                .arg(&out)
                .env_remove("PORTWARDEN_STORE")
                .env_remove("PORTWARDEN_HISTORY_KEY");
            if let Some(k) = key {
                c.env("PORTWARDEN_HISTORY_KEY", k);
            }
            let o = c.output().unwrap();
            assert!(code(&o) == 0 || code(&o) == 1, "{}", text(&o.stderr));
            assert!(
                text(&o.stderr).contains(&format!("recorded as run {i} in the history")),
                "{}",
                text(&o.stderr)
            );
            out
        })
        .collect()
}

fn verify_cmd(store: &Path, against: &[PathBuf], key: Option<&str>) -> Output {
    let mut c = Command::new(Lab::bin());
    c.args(["history", "verify", "--store"])
        .arg(store)
        .env_remove("PORTWARDEN_STORE")
        .env_remove("PORTWARDEN_HISTORY_KEY");
    if !against.is_empty() {
        c.arg("--against").args(against);
    }
    if let Some(k) = key {
        c.env("PORTWARDEN_HISTORY_KEY", k);
    }
    c.output().unwrap()
}

/// The issue's four tamper cases, through the CLI: the newest run deleted
/// with `sqlite_sequence` adjusted, every run deleted, a 0-byte database,
/// and a keyed chain rewritten without the key.
#[test]
fn history_tamper_cases_through_the_cli() {
    let dir = tempdir("tamper");
    let store = dir.join("h.db");
    let reports = three_import_audits(&dir, &store, None);
    let o = verify_cmd(&store, &reports, None);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));

    // 1. The newest run deleted, the sequence adjusted: the chain alone
    // looks whole, the report's anchor does not.
    let db = rusqlite::Connection::open(&store).unwrap();
    for t in ["run_ports", "run_findings"] {
        db.execute(&format!("DELETE FROM {t} WHERE run_id = 3"), [])
            .unwrap();
    }
    db.execute("DELETE FROM runs WHERE id = 3", []).unwrap();
    db.execute("UPDATE sqlite_sequence SET seq = 2 WHERE name = 'runs'", [])
        .unwrap();
    let o = verify_cmd(&store, &[], None);
    assert_eq!(
        code(&o),
        0,
        "undetectable without an anchor: {}",
        text(&o.stdout)
    );
    let o = verify_cmd(&store, &reports, None);
    assert_eq!(code(&o), 1, "{}", text(&o.stdout));
    assert_eq!(
        text(&o.stdout),
        format!(
            "{}: run 3 is missing: the history ends at run 2, so its newest runs were deleted (or the database was replaced)\n",
            reports[2].display()
        )
    );

    // 2. Every run deleted (and the sequence row): not "intact".
    for t in ["run_ports", "run_findings", "runs", "sqlite_sequence"] {
        db.execute(&format!("DELETE FROM {t}"), []).unwrap();
    }
    let o = verify_cmd(&store, &[], None);
    assert_eq!(code(&o), 1, "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("holds no runs: nothing is proven"),
        "{}",
        text(&o.stdout)
    );
    assert!(!text(&o.stdout).contains("intact"));
    let o = verify_cmd(&store, &reports[..1], None);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stdout).contains("run 1 is missing: the history holds no runs at all"));
    drop(db);

    // 3. A 0-byte database, and none at all: said so, never "intact", and
    // left as it is (an audit refuses to start a new chain in it).
    std::fs::write(&store, b"").unwrap();
    for f in ["h.db-wal", "h.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let o = verify_cmd(&store, &[], None);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("is an empty file (0 bytes)"),
        "{}",
        text(&o.stderr)
    );
    let o = offline(&["history", "list", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0);
    let o = verify_cmd(&dir.join("none.db"), &[], None);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("no audit history at"),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.join("none.db").exists());

    // 4. A keyed history: unverifiable without the key, and a chain
    // rewritten without it is named with it.
    let kdir = tempdir("keyed");
    let kstore = kdir.join("k.db");
    let key = "correct horse battery staple 42";
    let reports = three_import_audits(&kdir, &kstore, Some(key));
    let m = json(&reports[0].join("manifest.json"));
    assert_eq!(m["history"]["chain"], "hmac-sha256");
    let o = verify_cmd(&kstore, &reports, Some(key));
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("3 runs, HMAC chain (keyed) intact"),
        "{}",
        text(&o.stdout)
    );
    let o = verify_cmd(&kstore, &[], None);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("3 of 3 runs are HMAC-keyed"),
        "{}",
        text(&o.stderr)
    );
    let o = verify_cmd(&kstore, &[], Some("another key, sixteen+ bytes"));
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stdout).contains("run 1 was keyed with another key"),
        "{}",
        text(&o.stdout)
    );
    // The forger downgrades the runs to plain hashes.
    let db = rusqlite::Connection::open(&kstore).unwrap();
    db.execute("UPDATE runs SET chain = 'sha256', key_id = NULL", [])
        .unwrap();
    let o = verify_cmd(&kstore, &reports, Some(key));
    assert_eq!(code(&o), 1);
    let out = text(&o.stdout);
    for run in 1..=3 {
        assert!(
            out.contains(&format!(
                "run {run}: run {run} is not HMAC-keyed although a key was given"
            )),
            "{out}"
        );
    }
    assert!(
        out.contains("is hashed as sha256 (key none), the report recorded hmac-sha256"),
        "{out}"
    );
}

/// An audit judges drift against the previous run of its scope: a broken
/// chain from there to the head is refused (exit 2, naming the run), and
/// nothing is recorded.
#[test]
fn drift_refuses_a_broken_chain() {
    let dir = tempdir("drift-broken");
    let store = dir.join("h.db");
    three_import_audits(&dir, &store, None);
    let db = rusqlite::Connection::open(&store).unwrap();
    db.execute("UPDATE runs SET open_ports = 7 WHERE id = 3", [])
        .unwrap();
    let o = Command::new(Lab::bin())
        .args(["audit", "--from-jsonl"])
        .arg(dir.join("obs.jsonl"))
        .args(["--store"])
        .arg(&store)
        .arg("--out")
        .arg(dir.join("r4"))
        .env_remove("PORTWARDEN_STORE")
        .env_remove("PORTWARDEN_HISTORY_KEY")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("run 3 was edited"),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.join("r4").exists());
    let n: i64 = db
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}

/// The issue's nmap file cut at a `</host>` boundary, an empty import and
/// an endless JSONL: each refused with exit 2 and a message that names the
/// file; with --allow-partial-import the cut file is audited and the report
/// and the run's source say "partial import".
#[test]
fn truncated_and_empty_imports_are_refused_unless_allowed() {
    let dir = tempdir("cut");
    let full = std::fs::read_to_string(fixture()).unwrap();
    let cut_at = full.match_indices("</host>").nth(2).unwrap().0 + "</host>".len();
    let cut = dir.join("cut.xml");
    std::fs::write(&cut, &full[..cut_at]).unwrap();
    let store = dir.join("h.db");
    let audit = |extra: &[&str], out: &str| {
        let mut args = vec![
            "audit",
            "--from-nmap",
            cut.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = dir.join(out);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        (offline(&args), out)
    };
    let (o, out) = audit(&[], "r-strict");
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(&format!(
            "{} is truncated: it has no <runstats><finished>: nmap did not finish writing it (12 results read before the cut)",
            cut.display()
        )),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("--allow-partial-import"));
    assert!(!out.exists());
    let runs: i64 = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 0, "nothing recorded");

    let (o, out) = audit(&["--allow-partial-import"], "r-partial");
    assert!(code(&o) == 0 || code(&o) == 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("\npartial import: a file was cut short"),
        "{}",
        text(&o.stderr)
    );
    let rows = std::fs::read_to_string(out.join("observations.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 12, "3 whole hosts × 4 ports");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("partial import"), "the report says so");
    let db = rusqlite::Connection::open(&store).unwrap();
    let params: String = db
        .query_row("SELECT params FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let params: Value = serde_json::from_str(&params).unwrap();
    assert_eq!(params["source"]["partial"], true, "{params}");

    // An nmap run that found nothing is not a clean audit.
    let empty = dir.join("empty.xml");
    std::fs::write(
        &empty,
        "<nmaprun start=\"1\"><runstats><finished time=\"2\"/></runstats></nmaprun>",
    )
    .unwrap();
    let o = offline(&[
        "audit",
        "--from-nmap",
        empty.to_str().unwrap(),
        "--no-store",
        "--out",
        dir.join("r-empty").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains(&format!("no observations in {}", empty.display())),
        "{}",
        text(&o.stderr)
    );
    // An endless "JSONL" fails at once, naming file and line.
    let o = offline(&[
        "audit",
        "--from-jsonl",
        "/dev/zero",
        "--no-store",
        "--out",
        dir.join("r-zero").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("/dev/zero:1:1048576: line longer than 1024 KiB"),
        "{}",
        text(&o.stderr)
    );
    // So does an endless target list.
    let o = offline(&["scan", "@/dev/zero", "-p", "1"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("/dev/zero:1: line longer than 1024 KiB"),
        "{}",
        text(&o.stderr)
    );
}
