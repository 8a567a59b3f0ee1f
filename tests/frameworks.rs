//! More frameworks and the audit calendar (issue 19), through the binary
//! over `--from-jsonl` imports: SOC 2, HIPAA, 等保 levels 2/4 with the cloud
//! and industrial extensions, IEC 62443-3-3, the calendar checks judged
//! from the history (`--store`), the results per asset (测评对象), and
//! `portwarden profiles`. Exact statuses throughout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::read_doc;
use crate::lab::{FAST_CONNECT, Lab};

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pw-frameworks-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn obs(ip: &str, port: u16, state: &str, reason: &str, service: &str) -> String {
    format!(
        r#"{{"ip":"{ip}","port":{port},"proto":"tcp","state":"{state}","reason":"{reason}","time":"2026-11-24T10:00:00Z"{service}}}"#
    )
}

/// Telnet, an unauthenticated redis, a self-signed HTTPS and an unallowed
/// port on each of `ips`; a segment that answers; a host in no group.
fn observations(ips: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for ip in ips {
        v.push(obs(
            ip,
            443,
            "open",
            "syn-ack",
            r#","service":{"name":"https","confidence":0.9,"tls":{"self_signed":true,"expired":false,"sans":[]}}"#,
        ));
        v.push(obs(
            ip,
            23,
            "open",
            "syn-ack",
            r#","service":{"name":"telnet","confidence":0.9}"#,
        ));
        v.push(obs(
            ip,
            6379,
            "open",
            "syn-ack",
            r#","service":{"name":"redis","confidence":0.9,"auth":"none"}"#,
        ));
        v.push(obs(ip, 8080, "open", "syn-ack", ""));
    }
    v.push(obs("198.18.7.2", 22, "closed", "reset", ""));
    v.push(obs("198.18.7.9", 445, "open", "syn-ack", ""));
    v
}

const POLICY: &str = r#"baseline_profiles = ["soc2-2017", "hipaa-security-rule", "iec62443-3-3"]

[[group]]
name = "saas"
targets = ["198.18.7.1"]
profiles = ["soc2-2017", "hipaa-security-rule", "iec62443-3-3"]
max_open_ports = 2

[[group.allow]]
port = 443
service = "https"
justification = "web"
approver = "ciso"
review_by = 2027-01-31

[[group]]
name = "zone"
targets = ["198.18.7.2"]
expect = "unreachable"
profiles = ["iec62443-3-3", "soc2-2017"]

[[group]]
name = "gov"
targets = ["198.18.7.3"]
profiles = ["mlps2-level2", "mlps2-cloud"]
max_open_ports = 2

[[group.allow]]
port = 443
justification = "web"
approver = "ciso"
review_by = 2027-01-31
"#;

/// `audit --from-jsonl` of `lines` against `policy` into `dir/report`.
fn audit(dir: &Path, policy: &str, lines: &[String], extra: &[&str]) -> Output {
    let obs = dir.join("scan.jsonl");
    std::fs::write(&obs, lines.join("\n") + "\n").unwrap();
    let pol = dir.join("p.toml");
    std::fs::write(&pol, policy).unwrap();
    Command::new(Lab::bin())
        .args(["audit", "--from-jsonl"])
        .arg(&obs)
        .arg("--policy")
        .arg(&pol)
        .arg("--out")
        .arg(dir.join("report"))
        .args(extra)
        .env_remove("PORTWARDEN_TEST_VANTAGE")
        .env_remove("PORTWARDEN_STORE")
        .output()
        .unwrap()
}

fn findings(dir: &Path, o: &Output) -> Value {
    let raw = std::fs::read_to_string(dir.join("report/findings.json"))
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o.stderr)));
    serde_json::from_str(&raw).unwrap()
}

fn profile<'a>(doc: &'a Value, id: &str) -> Option<&'a Value> {
    doc["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == id)
}

/// `id status` of every requirement of a profile, in profile order.
fn statuses(doc: &Value, id: &str) -> Vec<String> {
    profile(doc, id).unwrap_or_else(|| panic!("{id} not reported"))["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["id"].as_str().unwrap(),
                r["status"].as_str().unwrap()
            )
        })
        .collect()
}

fn reason(doc: &Value, id: &str, req: &str) -> String {
    profile(doc, id).unwrap()["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == req)
        .unwrap()["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// For each check that fired: the requirements of `profiles` it failed.
fn mapped(doc: &Value, profiles: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in doc["findings"].as_array().unwrap() {
        let check = f["check"].as_str().unwrap();
        for c in f["controls"].as_array().unwrap() {
            let c = c.as_str().unwrap();
            if profiles.iter().any(|p| c.starts_with(&format!("{p}:"))) {
                let line = format!("{check} {c}");
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn soc2_hipaa_iec62443_fail_per_mapped_check_and_stay_partial_or_not_assessed() {
    let dir = tempdir("new");
    let o = audit(
        &dir,
        POLICY,
        &observations(&["198.18.7.1", "198.18.7.3"]),
        &["--as-of", "2026-11-24", "--no-store"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let doc = findings(&dir, &o);
    assert_eq!(
        statuses(&doc, "soc2-2017"),
        [
            "CC6.1 fail",
            "CC6.6 fail",
            "CC6.7 fail",
            "CC7.1 not-assessed",
            "CC8.1 not-assessed",
            "CC7.2 not-assessed"
        ]
    );
    assert_eq!(
        statuses(&doc, "hipaa-security-rule"),
        [
            "164.308(a)(1)(ii)(A) fail",
            "164.308(a)(8) not-assessed",
            "164.312(a)(1) fail",
            "164.312(d) fail",
            "164.312(e)(1) fail",
            "164.312(e)(2)(ii) fail",
            "164.312(b) not-assessed"
        ]
    );
    assert_eq!(
        statuses(&doc, "iec62443-3-3"),
        [
            "SR 1.1 fail",
            "SR 1.13 not-assessed",
            "SR 4.1 fail",
            "SR 5.1 fail",
            "SR 5.1 RE 1 not-assessed",
            "SR 5.2 fail",
            "SR 5.2 RE 1 fail",
            "SR 7.7 fail",
            "SR 7.8 fail"
        ]
    );
    // Each check that fired, and the requirements of the new profiles it
    // failed: every mapping of these checks is exercised.
    assert_eq!(
        mapped(&doc, &["soc2-2017", "hipaa-security-rule", "iec62443-3-3"]),
        [
            "cleartext-admin hipaa-security-rule:164.312(e)(1)",
            "cleartext-admin hipaa-security-rule:164.312(e)(2)(ii)",
            "cleartext-admin iec62443-3-3:SR 4.1",
            "cleartext-admin iec62443-3-3:SR 7.7",
            "cleartext-admin soc2-2017:CC6.7",
            "high-risk-exposed hipaa-security-rule:164.308(a)(1)(ii)(A)",
            "high-risk-exposed iec62443-3-3:SR 7.7",
            "high-risk-exposed soc2-2017:CC6.6",
            "not-allowed hipaa-security-rule:164.308(a)(1)(ii)(A)",
            "not-allowed iec62443-3-3:SR 5.2",
            "not-allowed iec62443-3-3:SR 5.2 RE 1",
            "not-allowed iec62443-3-3:SR 7.7",
            "not-allowed soc2-2017:CC6.1",
            "port-cap iec62443-3-3:SR 7.7",
            "segmentation-breach iec62443-3-3:SR 5.1",
            "segmentation-breach iec62443-3-3:SR 5.2",
            "segmentation-breach soc2-2017:CC6.6",
            "tls-cert hipaa-security-rule:164.312(e)(1)",
            "tls-cert hipaa-security-rule:164.312(e)(2)(ii)",
            "tls-cert soc2-2017:CC6.7",
            "unauth-service hipaa-security-rule:164.312(a)(1)",
            "unauth-service hipaa-security-rule:164.312(d)",
            "unauth-service iec62443-3-3:SR 1.1",
            "unauth-service soc2-2017:CC6.1",
            "unmanaged-host hipaa-security-rule:164.308(a)(1)(ii)(A)",
            "unmanaged-host iec62443-3-3:SR 7.8",
        ]
    );
    // What a single audit without its history cannot show stays so, and
    // says why.
    assert_eq!(
        reason(&doc, "hipaa-security-rule", "164.308(a)(8)"),
        "none of its checks could run: scan-cadence (the audit ran without its history (--no-store, or no --store): the audit calendar cannot be judged); rescan-after-change (the audit ran without its history (--no-store, or no --store): the audit calendar cannot be judged)"
    );
    // Not declared anywhere: not reported.
    assert!(profile(&doc, "mlps2-level4").is_none());
    assert!(profile(&doc, "mlps2-ics").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mlps2_extensions_sit_beside_their_level_with_results_per_asset() {
    let dir = tempdir("mlps");
    let o = audit(
        &dir,
        POLICY,
        &observations(&["198.18.7.1", "198.18.7.3"]),
        &["--as-of", "2026-11-24", "--no-store", "--lang", "zh-CN"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let doc = findings(&dir, &o);
    assert_eq!(
        statuses(&doc, "mlps2-level2"),
        [
            "7.1.2.1 b) not-assessed",
            "7.1.3.1 a) not-assessed",
            "7.1.3.2 a) fail",
            "7.1.3.2 b) partial",
            "7.1.3.2 c) partial",
            "7.1.4.1 a) fail",
            "7.1.4.1 c) fail",
            "7.1.4.2 b) fail",
            "7.1.4.4 a) fail",
            "7.1.4.4 b) fail",
            "7.1.4.4 c) not-assessed",
            "7.1.10.2 a) not-assessed",
            "7.1.10.5 a) fail",
            "7.1.10.10 a) not-assessed",
            "7.1.5 not-assessed"
        ]
    );
    // Beside level 2: only the cloud clauses of chapter 7.
    assert_eq!(
        statuses(&doc, "mlps2-cloud"),
        [
            "7.2.2.1 b) not-assessed",
            "7.2.3.1 a) fail",
            "7.2.3.1 b) not-assessed"
        ]
    );
    // Results per asset, in assets.csv, signed with the rest.
    let csv = std::fs::read_to_string(dir.join("report/assets.csv")).unwrap();
    let rows: Vec<&str> = csv
        .lines()
        .filter(|l| l.contains("mlps2-level2,198.18.7.3,gov,7.1.4.4"))
        .collect();
    assert_eq!(
        rows.len(),
        3,
        "{}",
        csv.lines().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(rows[0].starts_with("mlps2-level2,198.18.7.3,gov,7.1.4.4 a),not-met,不符合,"));
    // b): not-allowed and high-risk-exposed fired; amplification-vector
    // could not run (no UDP), so nothing ran clean: not met.
    assert!(rows[1].starts_with("mlps2-level2,198.18.7.3,gov,7.1.4.4 b),not-met,不符合,"));
    // c) concerns hosts seen from the internet only: not applicable here.
    assert_eq!(
        rows[2],
        "mlps2-level2,198.18.7.3,gov,7.1.4.4 c),not-applicable,不适用,,its checks concern only hosts of another tag or vantage"
    );
    let manifest = std::fs::read_to_string(dir.join("report/manifest.json")).unwrap();
    assert!(manifest.contains("\"assets.csv\""));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap())
            .unwrap();
    // Schema 5: the per-asset results are in assets.csv only.
    assert_eq!(report["schema_version"], 5);
    assert!(report.get("assets").is_none());
    let cell = |id: &str| {
        let prefix = "soc2-2017,198.18.7.1,";
        csv.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].split(',').nth(1) == Some(id))
            .unwrap_or_else(|| panic!("soc2-2017 198.18.7.1 {id}"))
            .split(',')
            .nth(4)
            .unwrap()
            .to_string()
    };
    assert_eq!(cell("CC6.1"), "not-met");
    assert_eq!(cell("CC7.2"), "not-assessed");
    let html = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
    assert!(html.contains("<section id=\"assets\">"));
    assert!(html.contains("测评对象结果"));
    assert!(html.contains("<td class=\"asset-not-met\""));
    let _ = std::fs::remove_dir_all(&dir);
}

const CALENDAR: &str = r#"
[[group]]
name = "cde"
targets = ["198.18.7.1"]
profiles = ["pci-dss-4.0", "nist-800-53r5"]

[[group.allow]]
port = 443
justification = "web"
approver = "ciso"
review_by = 2027-01-31

[[change]]
ticket = "CHG-7"
approver = "ciso"
approved = 2026-05-01
target = "cde"
opens = [443]
"#;

#[test]
fn the_audit_calendar_comes_from_the_history_of_the_scope() {
    let dir = tempdir("cadence");
    let db = dir.join("history.db");
    let lines = vec![obs("198.18.7.1", 443, "open", "syn-ack", "")];
    let run = |day: &str| {
        let o = audit(
            &dir,
            CALENDAR,
            &lines,
            &["--as-of", day, "--store", db.to_str().unwrap()],
        );
        assert!(o.status.code().is_some(), "{}", text(&o.stderr));
        findings(&dir, &o)
    };
    // The first audit of the scope: nothing to compare with, never a pass.
    let doc = run("2026-01-10");
    assert_eq!(
        reason(&doc, "pci-dss-4.0", "11.3.1"),
        "none of its checks could run: scan-cadence (no earlier audit of this scope in the history)"
    );
    let calendar: Vec<String> = statuses(&doc, "pci-dss-4.0")
        .into_iter()
        .filter(|s| s.starts_with("11.3.1"))
        .collect();
    assert_eq!(calendar, ["11.3.1 not-assessed", "11.3.1.3 not-assessed"]);
    // 85 days later: no gap, but the year is not covered yet.
    let doc = run("2026-04-05");
    assert_eq!(
        reason(&doc, "pci-dss-4.0", "11.3.1"),
        "none of its checks could run: scan-cadence (the history of this scope reaches back 85 days; judging the last 12 months needs 273)"
    );
    // 100 days later: a gap, with the dates; and CHG-7 (2026-05-01) was
    // followed by no audit within 30 days.
    let doc = run("2026-07-14");
    let msgs: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["check"].as_str().unwrap().contains("cadence") || f["check"] == "rescan-after-change"
        })
        .map(|f| {
            format!(
                "{} {}",
                f["check"].as_str().unwrap(),
                f["message"].as_str().unwrap()
            )
        })
        .collect();
    let pol = dir.join("p.toml").display().to_string();
    assert_eq!(
        msgs,
        [
            format!("rescan-after-change no audit of this scope within 30 days after approved change(s): CHG-7 ({pol}:13, 2026-05-01; next audit 2026-07-14)"),
            "scan-cadence audits of this scope more than 92 days apart in the last 12 months: 2026-04-05 → 2026-07-14 (100 days); audits: 2026-01-10, 2026-04-05, 2026-07-14".to_string(),
        ]
    );
    for (p, id) in [
        ("pci-dss-4.0", "11.3.1"),
        ("pci-dss-4.0", "11.3.1.3"),
        ("nist-800-53r5", "RA-5"),
        ("nist-800-53r5", "CA-2"),
    ] {
        let s = &statuses(&doc, p);
        assert!(s.contains(&format!("{id} fail")), "{p}:{id} {s:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn profiles_lists_every_profile_and_policies_name_them_exactly() {
    let o = Command::new(Lab::bin())
        .args(["profiles", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = doc["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "pci-dss-4.0",
            "iso27001-2022",
            "mlps2-level3",
            "cis-v8",
            "nist-800-53r5",
            "soc2-2017",
            "hipaa-security-rule",
            "mlps2-level2",
            "mlps2-level4",
            "mlps2-cloud",
            "mlps2-ics",
            "iec62443-3-3"
        ]
    );
    let soc2 = &doc["profiles"][5];
    assert_eq!(
        (soc2["requirements"].as_u64(), soc2["confirmed"].as_u64()),
        (Some(6), Some(5))
    );
    assert_eq!(soc2["partial_evidence"].as_array().unwrap().len(), 6);
    let o = Command::new(Lab::bin()).arg("profiles").output().unwrap();
    let out = text(&o.stdout);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("ID                   VERSION"),
        "{out}"
    );
    assert!(out.contains("\nmlps2-cloud          2019 "), "{out}");
    // A policy naming an unknown id: file:line and the closest id.
    let dir = tempdir("unknown");
    let pol = dir.join("p.toml");
    let check = |profiles: &str| {
        std::fs::write(
            &pol,
            format!(
                "[[group]]\nname = \"a\"\ntargets = [\"198.18.7.1\"]\nprofiles = [{profiles}]\n"
            ),
        )
        .unwrap();
        let o = Command::new(Lab::bin())
            .args(["policy", "check"])
            .arg(&pol)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        text(&o.stderr)
    };
    let err = check("\"mlps2-levl3\"");
    assert!(
        err.contains("p.toml:4:13: unknown profile 'mlps2-levl3'"),
        "{err}"
    );
    assert!(err.contains("did you mean 'mlps2-level3'?"), "{err}");
    // An extension alone, without its level.
    let err = check("\"mlps2-ics\"");
    assert!(
        err.contains("p.toml:4:13: profile 'mlps2-ics' is an extension: declare it beside one of mlps2-level2, mlps2-level3, mlps2-level4"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checks the other tests here leave without a failing case.
const UNEXERCISED: [&str; 10] = [
    "remote-admin-internet",
    "database-internet",
    "unapproved-change",
    "exception-expired",
    "allowance-unused",
    "allowance-incomplete",
    "allowed-unjustified",
    "allowed-review-overdue",
    "amplification-vector",
    "snmp-default-community",
];

/// The profile sets, one group (and host `<net>.<n>`) each: every new
/// profile, the extensions beside each level.
const SETS: [(&str, &str); 4] = [
    (
        "saas",
        r#""soc2-2017", "hipaa-security-rule", "iec62443-3-3""#,
    ),
    ("l2", r#""mlps2-level2", "mlps2-cloud", "mlps2-ics""#),
    ("l3", r#""mlps2-level3", "mlps2-cloud", "mlps2-ics""#),
    ("l4", r#""mlps2-level4", "mlps2-cloud", "mlps2-ics""#),
];

/// The baseline profiles of the second audit (unmanaged-host).
const BASELINE: &str =
    r#""soc2-2017", "hipaa-security-rule", "iec62443-3-3", "mlps2-level2", "mlps2-level4""#;

const NEW_PROFILES: [&str; 7] = [
    "soc2-2017",
    "hipaa-security-rule",
    "mlps2-level2",
    "mlps2-level4",
    "mlps2-cloud",
    "mlps2-ics",
    "iec62443-3-3",
];

/// A group per profile set on `<net>.1` … `<net>.4`, each with `body`
/// (its allowances), and `tail` after each group (its exception).
fn groups(net: &str, body: &str, tail: &str) -> String {
    let mut p = String::new();
    for (n, (name, profiles)) in SETS.iter().enumerate() {
        let ip = format!("{net}.{}", n + 1);
        p += &format!(
            "[[group]]\nname = \"{name}\"\ntargets = [\"{ip}\"]\nprofiles = [{profiles}]\n{body}\n{}\n",
            tail.replace("{ip}", &ip)
        );
    }
    p
}

/// `check profile:requirement` of every mapping in the new profiles'
/// files of a check in `checks` whose condition `holds` (given the
/// condition after `@`, or "" for none).
fn expected_mappings(checks: &[&str], holds: impl Fn(&str) -> bool) -> Vec<String> {
    mappings(|check, cond| checks.contains(&check) && holds(cond))
}

/// `check profile:requirement` of every mapping in the new profiles'
/// files that `keep(check, condition)` keeps (condition "" for none).
fn mappings(keep: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for p in NEW_PROFILES {
        let path = format!("{}/rules/profiles/{p}.toml", env!("CARGO_MANIFEST_DIR"));
        let file: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for r in file["requirement"].as_array().unwrap() {
            let Some(mapped) = r.get("checks").and_then(|c| c.as_array()) else {
                continue;
            };
            for c in mapped {
                let (check, cond) = c
                    .as_str()
                    .unwrap()
                    .split_once('@')
                    .unwrap_or((c.as_str().unwrap(), ""));
                if keep(check, cond) {
                    let line = format!("{check} {p}:{}", r["id"].as_str().unwrap());
                    if !out.contains(&line) {
                        out.push(line);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// `profile:requirement` named in `mappings` (lines of
/// [`expected_mappings`]) that `doc` does not report as `fail`.
fn not_failed(doc: &Value, mappings: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    for m in mappings {
        let control = m.split_once(' ').unwrap().1;
        let (p, id) = control.split_once(':').unwrap();
        let st = profile(doc, p)
            .and_then(|prof| {
                prof["requirements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["id"] == id)
            })
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "unreported".into());
        if st != "fail" {
            bad.push(format!("{control} {st}"));
        }
    }
    bad
}

#[test]
fn every_check_of_the_new_profiles_fails_its_requirements() {
    // Part 1, the lab from a proven internet vantage, audited twice into a
    // store: remote administration (3389, opened since the first audit
    // with no [[change]]) and a database (6379) open from the internet, an
    // expired exception, and allowances that are unjustified (22),
    // overdue (8080), incomplete and unused (3306, closed).
    const PORTS: [u16; 5] = [22, 3306, 3389, 6379, 8080];
    // The lab with 3389 closed (the first audit of the scope) or open.
    let lab = |rdp: bool| {
        let mut b = Lab::builder().v4_prefix("198.19.3.0/24").ports(&PORTS);
        for n in 1..=4u8 {
            for p in [22, 3389, 6379, 8080] {
                if p != 3389 || rdp {
                    b = b.open(std::net::IpAddr::from([198, 19, 3, n]), p);
                }
            }
        }
        b.build()
    };
    let allow = r#"
[[group.allow]]
port = 22
approver = "ciso"
review_by = 2027-01-31

[[group.allow]]
port = 8080
justification = "admin console"
approver = "ciso"
review_by = 2026-01-01

[[group.allow]]
port = 3306
"#;
    let exception = r#"[[exception]]
id = "RISK-{ip}"
target = "{ip}"
port = 3389
reason = "vendor support session"
approver = "ciso"
expires = 2020-01-31
"#;
    let dir = tempdir("every");
    let pol = dir.join("internet.toml");
    std::fs::write(&pol, groups("198.19.3", allow, exception)).unwrap();
    let ports: Vec<String> = PORTS.iter().map(u16::to_string).collect();
    let ports = ports.join(",");
    let out = dir.join("internet");
    let db = dir.join("internet.db");
    let scan = |rdp: bool| {
        let mut args = vec![
            "audit",
            "198.19.3.0/29",
            "--vantage",
            "internet",
            "-p",
            &ports,
            "--as-of",
            "2026-11-24",
            "--store",
            db.to_str().unwrap(),
            "--policy",
            pol.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(FAST_CONNECT);
        let lab = lab(rdp);
        let o = lab
            .command(Lab::bin())
            .args(&args)
            .env("PORTWARDEN_TEST_VANTAGE", "lab")
            .env_remove("PORTWARDEN_STORE")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        o
    };
    // 3389 opened since the previous audit, from the internet, with no
    // [[change]]: unapproved-change@vantage:internet.
    scan(false);
    let o = scan(true);
    let internet = read_doc(&out, &o);
    let doc = &internet;
    let checks = &UNEXERCISED[..8];
    let fired = mapped(doc, &NEW_PROFILES);
    let fired: Vec<String> = fired
        .into_iter()
        .filter(|l| checks.contains(&l.split_once(' ').unwrap().0))
        .filter(|l| !l.starts_with("unapproved-change"))
        .collect();
    // Every condition holds here: internet vantage, ports not approved.
    let want = expected_mappings(&checks[..2], |_| true)
        .into_iter()
        .chain(expected_mappings(&checks[3..], |_| true))
        .collect::<Vec<_>>();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(fired, want_sorted);
    assert_eq!(not_failed(doc, &want), Vec::<String>::new());
    let mut covered = want_sorted;

    // Part 2, two imports into one store, 14 months apart (the calendar
    // checks): the second has a port opened with no [[change]], memcached
    // and SNMP with the default community; both have telnet, an
    // unauthenticated redis, a self-signed certificate, a port cap
    // exceeded, an unexpected service, answering segments and a host in
    // no group.
    let db = dir.join("history.db");
    // Each host has a change approved 2026-05-01 that no audit followed
    // within 30 days, and a segment group stands beside them.
    let change = "[[change]]\nticket = \"CHG-{ip}\"\napprover = \"ciso\"\napproved = 2026-05-01\ntarget = \"{ip}\"\nopens = [443]\n";
    // A port cap of 2, and 443 allowed for ssh while https answers.
    let body = "max_open_ports = 2\n[[group.allow]]\nport = 443\nservice = \"ssh\"\njustification = \"bastion\"\napprover = \"ciso\"\nreview_by = 2027-01-31\n";
    let mut policy =
        format!("baseline_profiles = [{}]\n", BASELINE) + &groups("198.18.9", body, change);
    // Beside each profile set, a segment that answers (198.18.9.5-7).
    for (n, (_, profiles)) in SETS.iter().enumerate().skip(1) {
        let profiles = if n == 1 {
            format!("{}, {profiles}", SETS[0].1)
        } else {
            profiles.to_string()
        };
        policy += &format!(
            "[[group]]\nname = \"zone{n}\"\ntargets = [\"198.18.9.{}\"]\nexpect = \"unreachable\"\nprofiles = [{profiles}]\n",
            n + 4
        );
    }
    // The same ports probed both times (the scope of an import is what it
    // probed): closed before, open after.
    let udp = |ip: &str, port: u16, open: bool, service: &str| {
        let (state, reason) = if open {
            ("open", "udp-response")
        } else {
            ("closed", "port-unreach")
        };
        format!(
            r#"{{"ip":"{ip}","port":{port},"proto":"udp","state":"{state}","reason":"{reason}","time":"2026-11-24T10:00:00Z"{}}}"#,
            if open { service } else { "" }
        )
    };
    let run = |open: bool| -> Vec<String> {
        let mut v = Vec::new();
        for n in 1..=4 {
            let ip = format!("198.18.9.{n}");
            v.push(obs(
                &ip,
                443,
                "open",
                "syn-ack",
                r#","service":{"name":"https","confidence":0.9,"tls":{"self_signed":true,"expired":false,"sans":[]}}"#,
            ));
            v.push(obs(
                &ip,
                23,
                "open",
                "syn-ack",
                r#","service":{"name":"telnet","confidence":0.9}"#,
            ));
            v.push(obs(
                &ip,
                6379,
                "open",
                "syn-ack",
                r#","service":{"name":"redis","confidence":0.9,"auth":"none"}"#,
            ));
            v.push(if open {
                obs(&ip, 8443, "open", "syn-ack", "")
            } else {
                obs(&ip, 8443, "closed", "reset", "")
            });
            v.push(udp(
                &ip,
                11211,
                open,
                r#","service":{"name":"memcache","confidence":0.9}"#,
            ));
            v.push(udp(
                &ip,
                161,
                open,
                r#","service":{"name":"snmp","confidence":0.9,"extra":{"community":"public"}}"#,
            ));
        }
        for n in 5..=7 {
            v.push(obs(&format!("198.18.9.{n}"), 22, "closed", "reset", ""));
        }
        // A host in no group, judged by the baseline profiles.
        v.push(obs("198.18.9.9", 8080, "open", "syn-ack", ""));
        v
    };
    let (before, after) = (run(false), run(true));
    let store = ["--store", db.to_str().unwrap()];
    let o = audit(
        &dir,
        &policy,
        &before,
        &[&["--as-of", "2025-05-01"][..], &store].concat(),
    );
    assert!(o.status.code().is_some(), "{}", text(&o.stderr));
    let o = audit(
        &dir,
        &policy,
        &after,
        &[&["--as-of", "2026-07-14"][..], &store].concat(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let doc = findings(&dir, &o);
    let checks = [
        "unapproved-change",
        "amplification-vector",
        "snmp-default-community",
        "scan-cadence",
        "rescan-after-change",
        "segmentation-cadence",
    ];
    let fired: Vec<String> = mapped(&doc, &NEW_PROFILES)
        .into_iter()
        .filter(|l| checks.contains(&l.split_once(' ').unwrap().0))
        .collect();
    // An import proves no internet vantage: the mapping that needs one
    // (mlps2-level4 9.1.10.6 j)) is left out, and fails in part 1.
    let want = expected_mappings(&checks, |c| c != "vantage:internet");
    assert_eq!(fired, want);
    assert_eq!(not_failed(&doc, &want), Vec::<String>::new());
    // Every check named above is mapped somewhere, so none of the
    // comparisons above was vacuous.
    covered.extend(want);
    let mut named: Vec<&str> = covered
        .iter()
        .map(|l| l.split_once(' ').unwrap().0)
        .collect();
    named.sort();
    named.dedup();
    let mut all: Vec<&str> = UNEXERCISED.iter().chain(&checks[3..]).copied().collect();
    all.sort();
    assert_eq!(named, all);
    assert_eq!(covered.len(), 59, "{covered:#?}");
    // And every mapping of every check of the new profiles fired and
    // failed its requirement in one of the two audits.
    let every = mappings(|_, _| true);
    assert_eq!(every.len(), 149);
    let missing: Vec<String> = every
        .into_iter()
        .filter(|m| {
            ![&internet, &doc].iter().any(|d| {
                mapped(d, &NEW_PROFILES).contains(m)
                    && not_failed(d, std::slice::from_ref(m)).is_empty()
            })
        })
        .collect();
    assert_eq!(missing, Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}
