//! Evidence-grade verdicts (issue 18): each case where a requirement used
//! to `pass` on evidence that was not there, run through the binary, with
//! the exact statuses it must have now. Imports (`--from-jsonl`) for the
//! policy cases; a bare network namespace for the ones that need real
//! probes that cannot reach anything.

use std::process::Command;

use serde_json::Value;

use crate::common::{policy_dir, read_doc, requirement as req, text};
use crate::lab::{FAST_CONNECT, Lab, Netns};

/// One JSONL observation at the audit's time.
fn line(
    ip: &str,
    port: u16,
    proto: &str,
    state: &str,
    reason: &str,
    service: Option<&str>,
) -> String {
    let svc = service
        .map(|s| format!(r#","service":{{"name":"{s}","confidence":0.9}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"ip":"{ip}","port":{port},"proto":"{proto}","state":"{state}","reason":"{reason}","time":"2026-11-24T10:00:00Z"{svc}}}"#
    )
}

fn open(ip: &str, port: u16, service: Option<&str>) -> String {
    line(ip, port, "tcp", "open", "syn-ack", service)
}

fn closed(ip: &str, port: u16) -> String {
    line(ip, port, "tcp", "closed", "reset", None)
}

/// `audit --from-jsonl` of `lines` against `policy`; the exit code, the
/// findings document (with the report's scope) and stdout.
fn audit_import(
    tag: &str,
    policy: &str,
    lines: &[String],
    extra: &[&str],
) -> (Option<i32>, Value, String) {
    let (dir, pol) = policy_dir(tag, "p.toml", policy);
    let obs = dir.join("scan.jsonl");
    std::fs::write(&obs, lines.join("\n") + "\n").unwrap();
    let out = dir.join("report");
    let o = Command::new(Lab::bin())
        .args(["audit", "--from-jsonl"])
        .arg(&obs)
        .arg("--policy")
        .arg(&pol)
        .args(["--as-of", "2026-11-24", "--no-store", "--out"])
        .arg(&out)
        .args(extra)
        .env_remove("PORTWARDEN_TEST_VANTAGE")
        .output()
        .unwrap();
    let doc = read_doc(&out, &o);
    let _ = std::fs::remove_dir_all(&dir);
    (o.status.code(), doc, text(&o.stdout))
}

fn status<'a>(doc: &'a Value, profile: &str, id: &str) -> &'a str {
    req(doc, profile, id)["status"].as_str().unwrap()
}

fn reason(doc: &Value, profile: &str, id: &str) -> String {
    req(doc, profile, id)["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn checks(doc: &Value) -> Vec<String> {
    let mut v: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {}",
                f["ip"].as_str().unwrap(),
                f["port"]
                    .as_u64()
                    .map(|p| p.to_string())
                    .unwrap_or("-".into()),
                f["check"].as_str().unwrap(),
                f["status"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

/// An audit in a namespace with nothing but `lo`: every probe to a lab
/// address fails locally (no route).
fn audit_in(ns: &Netns, tag: &str, policy: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let (dir, pol) = policy_dir(tag, "p.toml", policy);
    let out = dir.join("report");
    let mut c = ns.command(Lab::bin());
    c.arg("audit")
        .args(args)
        .arg("--policy")
        .arg(&pol)
        .args(["--as-of", "2026-11-24", "--no-store", "--out"])
        .arg(&out)
        .args(FAST_CONNECT)
        .env_remove("PORTWARDEN_TEST_VANTAGE");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        text(&o.stderr)
    );
    let doc = read_doc(&out, &o);
    let _ = std::fs::remove_dir_all(&dir);
    doc
}

const SEG: &str = r#"
[[group]]
name = "cde"
targets = ["198.18.7.5"]
tags = ["cardholder"]
expect = "unreachable"
profiles = ["pci-dss-4.0"]
"#;

/// Case 1: 11.4.5 never passes on probes that were not sent, on one
/// probe of a /24, on UDP silence, or with a waived breach.
#[test]
fn segmentation_passes_only_on_conclusive_probes_and_a_control() {
    // No route at all: every probe is a local error.
    let ns = Netns::new();
    let doc = audit_in(
        &ns,
        "noroute",
        SEG,
        &["-p", "22,443,5432", "198.18.7.5"],
        &[],
    );
    assert_eq!(checks(&doc), Vec::<String>::new());
    assert_eq!(status(&doc, "pci-dss-4.0", "11.4.5"), "not-assessed");
    assert!(
        reason(&doc, "pci-dss-4.0", "11.4.5").contains("3 never sent (local errors)"),
        "{}",
        reason(&doc, "pci-dss-4.0", "11.4.5")
    );
    // One filtered probe for a /24 segment (and a control host that
    // answers): 253 addresses were never probed.
    let seg24 = SEG.replace("198.18.7.5\"", "198.18.7.0/24\"");
    let lines = [
        line("198.18.7.5", 22, "tcp", "filtered", "no-response", None),
        closed("198.18.9.1", 22),
    ];
    let (_, doc, _) = audit_import("seg24", &seg24, &lines, &[]);
    assert_eq!(status(&doc, "pci-dss-4.0", "11.4.5"), "partial");
    assert!(
        reason(&doc, "pci-dss-4.0", "11.4.5")
            .contains("253 of 254 addresses of group 'cde' were not probed"),
        "{}",
        reason(&doc, "pci-dss-4.0", "11.4.5")
    );
    // UDP only, all open|filtered: silence proves nothing for UDP.
    let lines = [
        line(
            "198.18.7.5",
            161,
            "udp",
            "open|filtered",
            "no-response",
            None,
        ),
        line(
            "198.18.7.5",
            123,
            "udp",
            "open|filtered",
            "no-response",
            None,
        ),
        closed("198.18.9.1", 22),
    ];
    let (_, doc, _) = audit_import("segudp", SEG, &lines, &[]);
    assert_eq!(status(&doc, "pci-dss-4.0", "11.4.5"), "not-assessed");
    assert!(reason(&doc, "pci-dss-4.0", "11.4.5").contains("2 UDP probes open|filtered"));
    // A breach on 5432 and a group-wide exception for it: still a failure.
    let waived = format!(
        "{SEG}[[exception]]\ntarget = \"cde\"\nport = 5432\nreason = \"migration\"\napprover = \"someone\"\nexpires = 2099-01-01\n"
    );
    let lines = [open("198.18.7.5", 5432, None), closed("198.18.9.1", 22)];
    let (code, doc, _) = audit_import("segwaive", &waived, &lines, &[]);
    assert_eq!(code, Some(1));
    // The exception waives the port's other checks, never the breach.
    assert_eq!(
        checks(&doc),
        [
            "198.18.7.5 5432 exception-overlong fail",
            "198.18.7.5 5432 high-risk-exposed waived",
            "198.18.7.5 5432 not-allowed waived",
            "198.18.7.5 5432 segmentation-breach fail"
        ]
    );
    assert_eq!(status(&doc, "pci-dss-4.0", "11.4.5"), "fail");
}

/// Case 2: one host of two does not pass a scope.
#[test]
fn one_host_does_not_pass_for_the_group() {
    // A cardholder web host and a cardholder PostgreSQL host (its port
    // closed): database-internet ran on neither from an import, which
    // records no vantage; the hosts are declared internet.
    let policy = r#"
[[group]]
name = "cde-web"
targets = ["198.18.1.10"]
tags = ["cardholder"]
vantage = "internet"
profiles = ["pci-dss-4.0"]
[[group.allow]]
port = 443
justification = "payments"
approver = "ciso"
review_by = 2027-01-31
[[group]]
name = "cde-db"
targets = ["198.18.1.20"]
tags = ["cardholder"]
profiles = ["pci-dss-4.0"]
"#;
    let lines = [open("198.18.1.10", 443, None), closed("198.18.1.20", 5432)];
    let (_, doc, _) = audit_import("onehost", policy, &lines, &[]);
    assert_eq!(status(&doc, "pci-dss-4.0", "1.4.4"), "not-assessed");
    assert!(
        reason(&doc, "pci-dss-4.0", "1.4.4").contains("declared internet"),
        "{}",
        reason(&doc, "pci-dss-4.0", "1.4.4")
    );
    // PCI as a baseline profile: an ungrouped host with 8080 and 22 open
    // and a clean grouped host. not-allowed ran on one host of two.
    let policy = r#"
baseline_profiles = ["pci-dss-4.0", "nist-800-53r5", "cis-v8"]
[[group]]
name = "clean"
targets = ["198.18.2.2"]
profiles = ["pci-dss-4.0", "nist-800-53r5", "cis-v8"]
"#;
    let lines = [
        open("198.18.2.1", 8080, None),
        open("198.18.2.1", 22, None),
        closed("198.18.2.2", 80),
    ];
    let (_, doc, _) = audit_import("baseline", policy, &lines, &[]);
    for (p, id) in [
        ("pci-dss-4.0", "1.2.5"),
        ("pci-dss-4.0", "2.2.4"),
        ("nist-800-53r5", "SC-7(5)"),
        ("nist-800-53r5", "CM-7b."),
        ("cis-v8", "4.4"),
    ] {
        let st = status(&doc, p, id);
        assert!(st != "pass", "{p}:{id} {st}");
    }
    assert_eq!(status(&doc, "pci-dss-4.0", "1.2.5"), "partial");
    assert!(
        reason(&doc, "pci-dss-4.0", "1.2.5").contains("not-allowed ran on 1 of 2 hosts"),
        "{}",
        reason(&doc, "pci-dss-4.0", "1.2.5")
    );
}

const INTERNET_LO: &str = r#"
[[group]]
name = "web"
targets = ["127.0.0.1"]
vantage = "internet"
profiles = ["pci-dss-4.0", "mlps2-level3", "cis-v8"]
"#;

/// Case 3: a declared internet vantage is a label, not evidence.
#[test]
fn declared_internet_vantage_is_not_evidence() {
    let ns = Netns::new();
    for (tag, extra, why) in [
        (
            "novantage",
            &[][..],
            "declared internet, but the audit was not run with --vantage internet (scanned from 127.0.0.1 (lo))",
        ),
        (
            "vantage",
            &["--vantage", "internet"][..],
            "declared internet, scanned from 127.0.0.1 (lo)",
        ),
    ] {
        let mut args = vec!["-p", "80", "127.0.0.1"];
        args.extend_from_slice(extra);
        let doc = audit_in(&ns, tag, INTERNET_LO, &args, &[]);
        for (p, id) in [
            ("pci-dss-4.0", "1.4.1"),
            ("pci-dss-4.0", "1.4.2"),
            ("pci-dss-4.0", "1.4.4"),
            ("pci-dss-4.0", "2.2.4"),
            ("pci-dss-4.0", "2.2.7"),
            ("mlps2-level3", "8.1.4.4 c)"),
            ("cis-v8", "12.2"),
            ("cis-v8", "13.4"),
        ] {
            assert_ne!(status(&doc, p, id), "pass", "{tag} {p}:{id}");
        }
        assert_eq!(status(&doc, "pci-dss-4.0", "1.4.1"), "not-assessed");
        assert!(
            reason(&doc, "pci-dss-4.0", "1.4.1").contains(why),
            "{}",
            reason(&doc, "pci-dss-4.0", "1.4.1")
        );
        // Port coverage decides too: 1 of 65,535 TCP ports.
        assert!(
            reason(&doc, "pci-dss-4.0", "2.2.4").contains("scanned 1 of 65,535 TCP ports"),
            "{}",
            reason(&doc, "pci-dss-4.0", "2.2.4")
        );
        let measured = doc["scope"]["vantage_measured"].as_str().unwrap();
        assert!(measured.contains("127.0.0.1 (lo)"), "{measured}");
        assert!(
            measured.contains("not proven to be the internet"),
            "{measured}"
        );
        // No percentage anywhere while requirements are not assessed.
        for p in doc["profiles"].as_array().unwrap() {
            assert!(p["score"].is_null(), "{p}");
        }
    }
    // The lab test setting accepts 198.18.0.0/15 only, never loopback.
    let doc = audit_in(
        &ns,
        "labsetting",
        INTERNET_LO,
        &["-p", "80", "127.0.0.1", "--vantage", "internet"],
        &[("PORTWARDEN_TEST_VANTAGE", "lab")],
    );
    assert_eq!(status(&doc, "pci-dss-4.0", "1.4.1"), "not-assessed");
}

const CDE: &str = r#"
[[group]]
name = "cde"
targets = ["198.18.3.5"]
tags = ["cardholder"]
profiles = ["pci-dss-4.0", "mlps2-level3"]
"#;

/// Case 4: a waiver is risk acceptance, never a pass; a blanket one is
/// refused.
#[test]
fn waivers_are_accepted_risk_never_a_pass() {
    let blanket = format!(
        "{CDE}[[exception]]\ntarget = \"cde\"\nreason = \"legacy\"\napprover = \"someone\"\nexpires = 2099-01-01\n"
    );
    let (dir, pol) = policy_dir("blanket", "p.toml", &blanket);
    let o = Command::new(Lab::bin())
        .args(["policy", "check"])
        .arg(&pol)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr)
            .contains("p.toml:7:1: a blanket exception (no port and no check) is not accepted"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Telnet and an unauthenticated Redis, each waived by its port.
    let waived = format!(
        "{CDE}[[exception]]\ntarget = \"cde\"\nport = 23\nreason = \"legacy terminal\"\napprover = \"ciso\"\nexpires = 2027-01-31\n[[exception]]\ntarget = \"cde\"\nport = 6379\nreason = \"cache\"\napprover = \"ciso\"\nexpires = 2027-01-31\n"
    );
    let lines = [
        open("198.18.3.5", 23, Some("telnet")),
        open("198.18.3.5", 6379, Some("redis")),
    ];
    let (code, doc, _) = audit_import("waived", &waived, &lines, &[]);
    assert_eq!(code, Some(0));
    for id in ["1.2.5", "1.2.6", "2.2.4", "2.2.7"] {
        assert_eq!(status(&doc, "pci-dss-4.0", id), "accepted", "{id}");
        assert!(
            reason(&doc, "pci-dss-4.0", id).contains("the risk is accepted, not met"),
            "{}",
            reason(&doc, "pci-dss-4.0", id)
        );
    }
    let pci = &doc["profiles"][0];
    assert_eq!(pci["passed"], 0);
    assert!(pci["score"].is_null());
    // Each framework's own words: PCI DSS reads "in place with
    // compensating control", 等保 风险接受 (zh-CN run below).
    let page = doc["_index"].as_str().unwrap();
    assert!(
        page.contains("In place with compensating control"),
        "PCI wording"
    );
    let (_, doc, _) = audit_import("waived-zh", &waived, &lines, &["--lang", "zh-CN"]);
    assert!(doc["_index"].as_str().unwrap().contains("风险接受"));
    // A two-year exception with no review is itself a finding.
    let long = waived.replace("expires = 2027-01-31", "expires = 2099-01-01");
    let (code, doc, _) = audit_import("long", &long, &lines, &[]);
    assert_eq!(code, Some(0));
    assert!(
        checks(&doc).contains(&"198.18.3.5 23 exception-overlong fail".to_string()),
        "{:?}",
        checks(&doc)
    );
    assert_eq!(status(&doc, "pci-dss-4.0", "1.2.7"), "fail");
}

/// Case 5: the whole rule base is reviewed, not only rules on open ports.
#[test]
fn allowances_on_closed_ports_are_reviewed() {
    let policy = r#"
[[group]]
name = "db"
targets = ["198.18.4.5"]
profiles = ["pci-dss-4.0", "mlps2-level3", "iso27001-2022", "cis-v8"]
[[group.allow]]
port = 3306
"#;
    let lines = [closed("198.18.4.5", 3306), open("198.18.4.5", 443, None)];
    let (_, doc, _) = audit_import("incomplete", policy, &lines, &[]);
    assert_eq!(
        checks(&doc)
            .into_iter()
            .filter(|c| c.contains("allowance"))
            .collect::<Vec<_>>(),
        [
            "198.18.4.5 3306 allowance-incomplete fail",
            "198.18.4.5 3306 allowance-unused fail"
        ]
    );
    for (p, id) in [
        ("pci-dss-4.0", "1.2.5"),
        ("pci-dss-4.0", "1.2.7"),
        ("mlps2-level3", "8.1.3.2 b)"),
        ("iso27001-2022", "A.8.20"),
        ("cis-v8", "4.4"),
    ] {
        assert_eq!(status(&doc, p, id), "fail", "{p}:{id}");
    }
    // Documented, reviewed a year ahead, port closed: a redundant rule.
    let documented = policy.replace(
        "port = 3306\n",
        "port = 3306\njustification = \"reporting\"\napprover = \"dba\"\nreview_by = 2027-11-24\n",
    );
    let (_, doc, _) = audit_import("unused", &documented, &lines, &[]);
    assert!(checks(&doc).contains(&"198.18.4.5 3306 allowance-unused fail".to_string()));
    assert_eq!(status(&doc, "pci-dss-4.0", "1.2.7"), "fail");
    // Its port never probed: unused cannot be judged, so no finding.
    let (_, doc, _) = audit_import("unprobed", &documented, &lines[1..], &[]);
    assert!(!checks(&doc).iter().any(|c| c.contains("allowance-unused")));
}

/// Case 6: the amplifier check counts only UDP answers that carry evidence.
#[test]
fn udp_amplifier_needs_a_payload_or_a_named_service() {
    let policy = r#"
[[group]]
name = "infra"
targets = ["198.18.5.5"]
profiles = ["pci-dss-4.0", "mlps2-level3", "nist-800-53r5"]
"#;
    // nmap -sU names memcached "memcache": an amplifier.
    let lines = [
        line(
            "198.18.5.5",
            11211,
            "udp",
            "open",
            "udp-response",
            Some("memcache"),
        ),
        line(
            "198.18.5.5",
            161,
            "udp",
            "open",
            "udp-response",
            Some("snmp"),
        ),
    ];
    let (_, doc, _) = audit_import("memcache", policy, &lines, &[]);
    assert!(checks(&doc).contains(&"198.18.5.5 11211 amplification-vector fail".to_string()));
    assert_eq!(status(&doc, "pci-dss-4.0", "2.2.5"), "fail");
    assert_eq!(status(&doc, "mlps2-level3", "8.1.4.4 b)"), "fail");
    assert_eq!(status(&doc, "nist-800-53r5", "CM-7(1)"), "fail");
    // A bare import names no service: the check did not run.
    let lines = [
        line("198.18.5.5", 11211, "udp", "open", "udp-response", None),
        line(
            "198.18.5.5",
            161,
            "udp",
            "open|filtered",
            "no-response",
            None,
        ),
    ];
    let (_, doc, _) = audit_import("bare-udp", policy, &lines, &[]);
    for (p, id) in [("pci-dss-4.0", "2.2.5"), ("nist-800-53r5", "CM-7(1)")] {
        assert_ne!(status(&doc, p, id), "pass", "{p}:{id}");
    }
    let cov = &req(&doc, "nist-800-53r5", "CM-7(1)")["coverage"]["checks"];
    let amp = cov
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "amplification-vector")
        .unwrap();
    assert_eq!(amp["ran"], false);
    assert!(
        amp["reason"].as_str().unwrap().contains("a bare import"),
        "{amp}"
    );
}

/// Case 7 and 9: what a scan can never show is partial at best; words.
#[test]
fn pass_impossible_requirements_and_words() {
    let policy = r#"
[[group]]
name = "ci"
targets = ["198.18.6.5"]
tags = ["Cardholder"]
profiles = ["pci-dss-4.0", "mlps2-level3"]
port_scope = { tcp = "8080", udp = "", justification = "CI host, one service" }
[[group.allow]]
port = 8080
service = "http"
justification = "Jenkins"
approver = "ciso"
review_by = 2027-01-31
"#;
    let lines = [open("198.18.6.5", 8080, Some("http"))];
    let (_, doc, out) = audit_import("jenkins", policy, &lines, &["--lang", "zh-CN"]);
    assert_eq!(status(&doc, "pci-dss-4.0", "2.2.7"), "partial");
    assert_eq!(status(&doc, "mlps2-level3", "8.1.4.1 c)"), "partial");
    // The tag matches whatever its case: 1.3.1 applies to the group.
    let cov = &req(&doc, "pci-dss-4.0", "1.3.1")["coverage"]["checks"][0];
    assert_eq!(cov["check"], "not-allowed@tag:cardholder");
    assert_eq!(cov["ran"], true, "{cov}");
    // The headline: counts, never a percentage; 等保 words in zh-CN.
    assert!(!out.contains('%'), "{out}");
    assert!(out.contains("证据不完整"), "{out}");
    assert!(out.contains("未测评"), "{out}");
    assert!(!out.contains("部分符合"), "{out}");
    // An all-filtered host in a group says so.
    let lines = [line(
        "198.18.6.5",
        8080,
        "tcp",
        "filtered",
        "no-response",
        None,
    )];
    let (_, doc, _) = audit_import("filtered", policy, &lines, &[]);
    assert_eq!(status(&doc, "pci-dss-4.0", "2.2.4"), "not-assessed");
    assert_eq!(
        reason(&doc, "pci-dss-4.0", "2.2.4"),
        "none of the 1 probed host(s) this profile applies to answered: every probe was filtered or never sent"
    );
}

/// `policy check` warns about tags no profile uses and allowances without
/// a review date.
#[test]
fn policy_check_warns_about_tags_and_reviews() {
    let (dir, pol) = policy_dir(
        "check",
        "p.toml",
        "[[group]]\nname = \"cde\"\ntargets = [\"198.18.3.5\"]\ntags = [\"card-holder\"]\nprofiles = [\"pci-dss-4.0\"]\n[[group.allow]]\nport = 443\njustification = \"web\"\napprover = \"ciso\"\n[[exception]]\ntarget = \"cde\"\ncheck = \"cleartext-admin\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2020-01-01\n",
    );
    let o = Command::new(Lab::bin())
        .args(["policy", "check", "--as-of", "2026-11-24"])
        .arg(&pol)
        .output()
        .unwrap();
    let all = text(&o.stdout) + &text(&o.stderr);
    assert!(
        all.contains("tag 'card-holder' is used by no profile (did you mean 'cardholder'?)"),
        "{all}"
    );
    assert!(all.contains("allowance 443/tcp has no review_by"), "{all}");
    assert!(
        all.contains("waives 'cleartext-admin' on every port of cde"),
        "{all}"
    );
    assert!(all.contains("expired 2519 days ago"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}
