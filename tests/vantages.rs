//! One audit over signed bundles of two vantages (issue 20): each policy
//! group is judged from the bundles that scanned it. Two labs with the same
//! prefix stand for the two views of one network: from inside every
//! listener answers; from the internet a firewall drops 22 on .9. The
//! internal vantage scans both groups, the internet vantage only the edge
//! group. Exact findings, per-group coverage and requirement statuses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::k8s::{QUICK, code, keygen, tempdir, text};
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
