//! One audit over signed bundles of several vantages (issue 20): each
//! policy group is judged from the bundles that scanned it. Labs with the
//! same prefix stand for the views of one network from different places:
//! * internet checks: from inside every listener answers; from the
//!   internet a firewall drops 22 on .9. The internal vantage scans both
//!   groups, the internet vantage only the edge group;
//! * segmentation: a cardholder segment that must be unreachable from the
//!   office is judged from the office's bundles only, never from the
//!   internal or internet bundles that reach it.
//!
//! Exact findings, per-group coverage and requirement statuses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::k8s::{QUICK, code, keygen, tempdir, text};
use crate::k8s_readme::readme_block;
use crate::lab::Lab;
use crate::verdicts::checks as findings;

const NET: &str = "198.19.7.0/28";
/// The edge group; the internet bundle scans its hosts .8–.14 (a /29 as
/// a scan target leaves out its network and broadcast addresses).
const EDGE: &str = "198.19.7.8/29";
const EDGE_HOSTS: &str = "198.19.7.8-14";

fn ip(last: u8) -> IpAddr {
    IpAddr::from([198, 19, 7, last])
}

/// `scan TARGETS -p 22,3306 --vantage V --sign-key K -o DIR/FILE` in `lab`.
fn bundle(lab: &Lab, dir: &Path, file: &str, targets: &str, vantage: &str, key: &Path) -> PathBuf {
    let out = dir.join(file);
    let args = [
        "scan",
        targets,
        "-p",
        "22,3306",
        "--seed",
        "7",
        "--vantage",
        vantage,
        "--sign-key",
        key.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let o = lab.run(&[&args[..], &QUICK[..]].concat());
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    out
}

fn audit(dir: &Path, tag: &str, policy: &Path, files: &[&Path], lab_setting: bool) -> Value {
    let out = dir.join(tag);
    let mut c = Command::new(Lab::bin());
    c.args(["audit", "--no-store", "--as-of", "2026-11-24", "--policy"])
        .arg(policy)
        .arg("--out")
        .arg(&out)
        .arg("--from-jsonl")
        .args(files)
        .env_remove("PORTWARDEN_STORE")
        .env_remove("PORTWARDEN_TEST_VANTAGE");
    if lab_setting {
        c.env("PORTWARDEN_TEST_VANTAGE", "lab");
    }
    let o: Output = c.output().unwrap();
    assert_eq!(code(&o), 1, "findings expected: {}", text(&o.stderr));
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("findings.json")).unwrap()).unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    doc["measured"] = Value::String(unnamed(
        report["scope"]["vantage_measured"].as_str().unwrap(),
    ));
    doc
}

/// `text` without the lab's interface names (` (pw123x0s)`), which change
/// with every run.
fn unnamed(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" (pw") {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        rest = rest.find(')').map_or("", |j| &rest[j + 1..]);
    }
    out.push_str(rest);
    out
}

/// Per group: `check → (ran, hosts, of, reason)`.
fn coverage(doc: &Value, group: &str, check: &str) -> (bool, u64, u64, String) {
    let g = doc["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group)
        .unwrap_or_else(|| panic!("no coverage of group {group}"));
    let c = g["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in group {group}"));
    (
        c["ran"].as_bool().unwrap(),
        c["hosts"].as_u64().unwrap(),
        c["of"].as_u64().unwrap(),
        unnamed(c["reason"].as_str().unwrap_or("")),
    )
}

/// The probes behind a group's check (segmentation: its conclusive ones).
fn probes(doc: &Value, group: &str, check: &str) -> u64 {
    doc["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["group"] == group)
        .flat_map(|g| g["checks"].as_array().unwrap())
        .find(|c| c["check"] == check)
        .map_or(0, |c| c["probes"].as_u64().unwrap_or(0))
}

/// `profile:id → (status, reason)` of every requirement.
fn requirements(doc: &Value) -> BTreeMap<String, (String, String)> {
    let mut m = BTreeMap::new();
    for p in doc["profiles"].as_array().unwrap() {
        for r in p["requirements"].as_array().unwrap() {
            m.insert(
                format!(
                    "{}:{}",
                    p["profile"].as_str().unwrap(),
                    r["id"].as_str().unwrap()
                ),
                (
                    r["status"].as_str().unwrap().to_string(),
                    unnamed(r["reason"].as_str().unwrap_or("")),
                ),
            );
        }
    }
    m
}

#[test]
fn each_group_is_judged_from_the_vantages_that_scanned_it() {
    let dir = tempdir("vantages");
    let (internal_key, internal_pub) = keygen(&dir.join("k-internal"));
    let (internet_key, internet_pub) = keygen(&dir.join("k-internet"));
    std::fs::copy(&internal_pub, dir.join("internal.pub")).unwrap();
    std::fs::copy(&internet_pub, dir.join("internet.pub")).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[group]]\nname = \"inside\"\ntargets = [\"198.19.7.0/29\"]\nprofiles = [\"nist-800-53r5\"]\n\n\
             [[group]]\nname = \"edge\"\ntargets = [\"{EDGE}\"]\nvantage = \"internet\"\nprofiles = [\"cis-v8\"]\n\n\
             [[scanner]]\nname = \"inner\"\nvantage = \"internal\"\npubkey = \"internal.pub\"\n\n\
             [[scanner]]\nname = \"outer\"\nvantage = \"internet\"\npubkey = \"internet.pub\"\n"
        ),
    )
    .unwrap();
    let listeners = [(2u8, 22u16), (5, 3306), (9, 22), (14, 3306)];
    // From inside: every listener answers.
    let mut inside = Lab::builder().v4_prefix(NET).ports(&[22, 3306]);
    for (h, p) in listeners {
        inside = inside.open(ip(h), p);
    }
    let inside = inside.build();
    let internal = bundle(
        &inside,
        &dir,
        "internal.jsonl",
        NET,
        "internal",
        &internal_key,
    );
    drop(inside);
    // From the internet: 22 on .9 is dropped by the edge firewall. Scanned
    // after the internal bundle, so its silence is the newer answer.
    let mut outside = Lab::builder().v4_prefix(NET).ports(&[22, 3306]);
    for (h, p) in listeners.into_iter().filter(|&l| l != (9, 22)) {
        outside = outside.open(ip(h), p);
    }
    let outside = outside.drop(ip(9), 22).build();
    let internet = bundle(
        &outside,
        &dir,
        "internet.jsonl",
        EDGE_HOSTS,
        "internet",
        &internet_key,
    );
    drop(outside);

    let doc = audit(&dir, "lab", &policy, &[&internal, &internet], true);
    // Every lab address but the prefix's first and last answers: 7 hosts
    // per group. Internet checks only on the edge, only for what the internet saw
    // open: the database on .14; 22 on .9 is open from inside only (still
    // not allowed: an open answer from any vantage wins the merge).
    assert_eq!(
        findings(&doc),
        [
            "198.19.7.14 3306 database-internet fail",
            "198.19.7.14 3306 high-risk-exposed fail",
            "198.19.7.14 3306 not-allowed fail",
            "198.19.7.2 22 high-risk-exposed fail",
            "198.19.7.2 22 not-allowed fail",
            "198.19.7.5 3306 high-risk-exposed fail",
            "198.19.7.5 3306 not-allowed fail",
            "198.19.7.9 22 high-risk-exposed fail",
            "198.19.7.9 22 not-allowed fail",
        ]
    );
    let inside_why =
        "scanned only from vantage internal (198.18.0.1), none a proven internet vantage";
    for check in ["remote-admin-internet", "database-internet"] {
        assert_eq!(
            coverage(&doc, "edge", check),
            (true, 7, 7, String::new()),
            "{check}"
        );
        assert_eq!(
            coverage(&doc, "inside", check),
            (false, 0, 7, inside_why.to_string()),
            "{check}"
        );
    }
    // The report's scope names each vantage and what it proves.
    assert_eq!(
        doc["measured"],
        "--vantage internal; probes left from 198.18.0.1; not proven to be the internet; \
         --vantage internet; probes left from 198.18.0.1; proven internet (198.18.0.1) \
         — lab range accepted by the test setting PORTWARDEN_TEST_VANTAGE=lab"
    );
    let reqs = requirements(&doc);
    assert_eq!(reqs["cis-v8:12.2"].0, "fail");
    assert_eq!(reqs["nist-800-53r5:AC-17"].0, "not-assessed");
    assert!(
        reqs["nist-800-53r5:AC-17"].1.contains(inside_why),
        "{:?}",
        reqs["nist-800-53r5:AC-17"]
    );

    // Without the lab test setting the internet bundle's source (the lab's
    // 198.18.0.1) is not public: no group is judged from the internet.
    let doc = audit(&dir, "nolab", &policy, &[&internal, &internet], false);
    let both = "scanned only from vantage internal (198.18.0.1), internet (declared internet, scanned from 198.18.0.1), none a proven internet vantage";
    assert_eq!(
        coverage(&doc, "edge", "database-internet"),
        (false, 0, 7, both.to_string())
    );
    assert_eq!(
        coverage(&doc, "inside", "database-internet"),
        (false, 0, 7, inside_why.to_string())
    );
    assert!(
        !findings(&doc).iter().any(|f| f.contains("-internet")),
        "{:?}",
        findings(&doc)
    );
    assert_eq!(requirements(&doc)["cis-v8:12.2"].0, "not-assessed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The segmentation lab's prefix: the office's hosts .1–.7, the
/// cardholder segment .8–.15 (scanned: .8–.14).
const SEG_NET: &str = "198.19.9.0/28";

fn seg_ip(last: u8) -> IpAddr {
    IpAddr::from([198, 19, 9, last])
}

/// The cardholder segment as the office sees it: every probe of its hosts
/// dropped but `holes` (listeners); an office host answers (the control).
fn from_office(holes: &[(u8, u16)]) -> Lab {
    let mut b = Lab::builder()
        .v4_prefix(SEG_NET)
        .ports(&[22, 3306])
        .open(seg_ip(3), 22);
    for h in 8..=14u8 {
        for p in [22u16, 3306] {
            b = if holes.contains(&(h, p)) {
                b.open(seg_ip(h), p)
            } else {
                b.drop(seg_ip(h), p)
            };
        }
    }
    b.build()
}

/// `segmentation-breach` findings, as `ip port check status`.
fn breaches(doc: &Value) -> Vec<String> {
    findings(doc)
        .into_iter()
        .filter(|f| f.contains("segmentation-breach"))
        .collect()
}

#[test]
fn segmentation_is_judged_from_the_segments_own_bundles() {
    let dir = tempdir("segments");
    let mut keys = BTreeMap::new();
    for v in ["internal", "office", "internet"] {
        let (key, public) = keygen(&dir.join(format!("k-{v}")));
        std::fs::copy(&public, dir.join(format!("{v}.pub"))).unwrap();
        keys.insert(v, key);
    }
    // The README's scanners and segment group, as written, in the lab's
    // addresses, the scope narrowed to the lab's ports.
    let scanners = format!(
        "{}\n[[scanner]]\nname = \"desk\"\nvantage = \"office\"\npubkey = \"office.pub\"\n",
        readme_block("[[scanner]]")
    );
    let readme_cde = readme_block("[[group]]").replace("10.20.0.0/24", "198.19.9.8/29");
    let scope = "port_scope = { tcp = \"22,3306\", udp = \"\", justification = \"the CDE listens on these only\" }\n";
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, format!("{readme_cde}{scope}\n{scanners}")).unwrap();
    // From inside, and from the internet side, the segment answers: its
    // database listens on .10, every other port rejects (RST).
    let inside = Lab::builder()
        .v4_prefix(SEG_NET)
        .ports(&[22, 3306])
        .open(seg_ip(3), 22)
        .open(seg_ip(10), 3306)
        .build();
    let internal = bundle(
        &inside,
        &dir,
        "internal.jsonl",
        SEG_NET,
        "internal",
        &keys["internal"],
    );
    let internet = bundle(
        &inside,
        &dir,
        "internet.jsonl",
        SEG_NET,
        "internet",
        &keys["internet"],
    );
    drop(inside);
    // From the office the segment is sealed; in the second view 22 on .12
    // is a hole in it.
    let sealed = from_office(&[]);
    let office = bundle(
        &sealed,
        &dir,
        "office.jsonl",
        SEG_NET,
        "office",
        &keys["office"],
    );
    drop(sealed);
    let holed = from_office(&[(12, 22)]);
    let office_hole = bundle(
        &holed,
        &dir,
        "office-hole.jsonl",
        SEG_NET,
        "office",
        &keys["office"],
    );
    drop(holed);

    let req = |doc: &Value, id: &str| requirements(doc)[&format!("pci-dss-4.0:{id}")].clone();
    let cadence = "no findings, but the evidence is incomplete: segmentation-cadence (the audit ran without its history (--no-store, or no --store): the audit calendar cannot be judged)";
    // Sealed from the office: the test ran on the 7 hosts of the segment,
    // on the office's 14 conclusive probes; the internal and internet
    // bundles' answers (RST, the database) breach nothing. The database is
    // still open for the other checks (an open answer from any vantage).
    let doc = audit(
        &dir,
        "sealed",
        &policy,
        &[&internal, &office, &internet],
        false,
    );
    assert_eq!(
        findings(&doc),
        [
            "198.19.9.10 3306 high-risk-exposed fail",
            "198.19.9.10 3306 not-allowed fail",
            "198.19.9.3 - unmanaged-host fail",
            "198.19.9.3 22 high-risk-exposed fail",
        ]
    );
    assert_eq!(
        coverage(&doc, "cde", "segmentation-breach"),
        (true, 7, 7, String::new())
    );
    assert_eq!(probes(&doc, "cde", "segmentation-breach"), 14);
    assert_eq!(
        req(&doc, "11.4.5"),
        ("partial".to_string(), cadence.to_string())
    );

    // A hole seen from the office is the breach, and the only one.
    let doc = audit(
        &dir,
        "hole",
        &policy,
        &[&internal, &office_hole, &internet],
        false,
    );
    assert_eq!(breaches(&doc), ["198.19.9.12 22 segmentation-breach fail"]);
    assert_eq!(req(&doc, "11.4.5").0, "fail");

    // No office bundle: the internal and internet bundles that reach the
    // segment judge nothing of it.
    let doc = audit(&dir, "no-office", &policy, &[&internal, &internet], false);
    let why = "probed by no bundle of vantage office, the segment's: scanned only from vantage internal (198.18.0.1), internet (198.18.0.1)";
    assert_eq!(breaches(&doc), Vec::<String>::new());
    assert_eq!(
        coverage(&doc, "cde", "segmentation-breach"),
        (false, 0, 7, why.to_string())
    );
    let (status, reason) = req(&doc, "11.4.5");
    assert_eq!(status, "not-assessed");
    assert!(reason.contains(why), "{reason}");

    // One bundle of another vantage: the audit's one vantage is not the
    // segment's.
    let doc = audit(&dir, "internal-only", &policy, &[&internal], false);
    assert_eq!(breaches(&doc), Vec::<String>::new());
    assert_eq!(
        coverage(&doc, "cde", "segmentation-breach"),
        (
            false,
            0,
            7,
            "the segment must be unreachable from vantage office, and the audit ran from vantage internal".to_string()
        )
    );
    assert_eq!(req(&doc, "11.4.5").0, "not-assessed");

    // A segment group that names no vantage, in an audit of several: not
    // assessed, never judged from whichever bundle answered last.
    let unnamed = dir.join("unnamed.toml");
    let cde: String = readme_cde
        .lines()
        .filter(|l| !l.starts_with("unreachable_from"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(cde.lines().count() + 1, readme_cde.lines().count());
    std::fs::write(&unnamed, format!("{cde}{scope}\n{scanners}")).unwrap();
    let doc = audit(&dir, "unnamed", &unnamed, &[&internal, &office], false);
    assert_eq!(breaches(&doc), Vec::<String>::new());
    assert_eq!(
        coverage(&doc, "cde", "segmentation-breach"),
        (
            false,
            0,
            7,
            "the audit merges the vantages internal, office, and the group names none it must be unreachable from (unreachable_from)".to_string()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
