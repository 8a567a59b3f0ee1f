//! Tests of the app layer: the report folder's swap, import scopes, the
//! source address.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::imports::{imported_ports, imported_targets};
use super::*;
use crate::model::{Observation, Proto};
use crate::report;

/// A fill that writes `files` and a manifest listing them, as a report would.
fn report_with<'a>(files: &'a [(&'a str, &'a str)]) -> impl FnOnce(&Path) -> Result<()> + 'a {
    move |d: &Path| {
        let mut listed = serde_json::Map::new();
        for (name, text) in files {
            fs::write(d.join(name), text)?;
            listed.insert(
                (*name).into(),
                report::evidence::sha256_hex(text.as_bytes()).into(),
            );
        }
        let manifest = serde_json::json!({
            "manifest_version": 1, "tool": "portwarden", "tool_version": "0.1.0",
            "rules": {"version": "embedded", "sha256": "00", "files": {}},
            "policy_file": "p.toml", "policy_sha256": null, "command_line": [],
            "operator": "t", "started": "2026-01-01T00:00:00Z",
            "finished": "2026-01-01T00:00:00Z", "as_of": "2026-01-01", "files": listed,
        });
        fs::write(d.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
        Ok(())
    }
}

fn scratch(tag: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!("pw-app-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    base
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes and commits a report directory.
fn write_report_dir<T>(
    out: &Path,
    cancel: &Cancel,
    fill: impl FnOnce(&Path) -> Result<()>,
    then: impl FnOnce() -> Result<T>,
) -> Result<T> {
    super::write_report_dir(out, cancel, fill)?.commit(then)
}

#[test]
fn an_import_scope_is_what_its_files_probed() {
    use crate::model::Reason;
    let o = |ip: &str, port: u16, proto: Proto| {
        Observation::new(ip.parse().unwrap(), port, proto, Reason::ConnRefused, None)
    };
    let obs = [
        o("198.18.0.1", 22, Proto::Tcp),
        o("198.18.0.2", 22, Proto::Tcp),
        o("198.18.0.3", 23, Proto::Tcp),
        o("198.18.0.3", 24, Proto::Tcp),
        o("198.18.0.9", 80, Proto::Tcp),
        o("198.18.0.9", 161, Proto::Udp),
        o("2001:2::5", 53, Proto::Udp),
    ];
    assert_eq!(
        imported_targets(&obs),
        ["198.18.0.1", "198.18.0.2/31", "198.18.0.9", "2001:2::5"]
    );
    assert_eq!(imported_ports(&obs), "22-24,80,U:53,161");
    assert_eq!(imported_ports(&obs[5..]), "U:53,161");
    assert_eq!(imported_ports(&obs[..2]), "22");
}

#[test]
fn source_address_toward_loopback_is_loopback() {
    let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(source_addresses([lo, lo]), [lo]);
    assert!(source_addresses([]).is_empty());
    // An address no interface holds has no name.
    let none: std::net::IpAddr = "198.51.100.254".parse().unwrap();
    assert_eq!(interfaces_of(&[lo, none]), [Some("lo".to_string()), None]);
}

#[test]
fn report_dir_replaces_atomically_and_survives_failures() {
    let base = scratch("replace");
    let out = base.join("report");
    let c = Cancel::new();
    let ok = || Ok(());
    write_report_dir(&out, &c, report_with(&[("a", "1")]), ok).unwrap();
    assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "1");
    // A failing fill leaves the previous report untouched.
    let err = write_report_dir(
        &out,
        &c,
        |d| {
            fs::write(d.join("a"), "2")?;
            anyhow::bail!("boom")
        },
        ok,
    );
    assert!(err.is_err());
    assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "1");
    write_report_dir(&out, &c, report_with(&[("b", "3")]), ok).unwrap();
    assert!(!out.join("a").exists());
    assert_eq!(fs::read_to_string(out.join("b")).unwrap(), "3");
    assert_eq!(
        names(&base),
        vec!["report"],
        "no temporary directories left behind"
    );
    // An empty directory is fine too.
    let empty = base.join("empty");
    fs::create_dir(&empty).unwrap();
    write_report_dir(&empty, &c, report_with(&[("x", "1")]), ok).unwrap();
    assert_eq!(names(&empty), vec!["manifest.json", "x"]);
    fs::remove_dir_all(&base).unwrap();
}

#[test]
fn foreign_data_at_out_is_never_touched() {
    let base = scratch("foreign");
    let c = Cancel::new();
    let ok = || Ok(());
    let refused = |out: &Path| {
        let e = write_report_dir(out, &c, report_with(&[("a", "1")]), ok).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains(
                "exists and is not a portwarden report: choose another --out or remove it"
            ),
            "{msg}"
        );
        msg
    };
    // A directory of someone's work.
    let thesis = base.join("d");
    fs::create_dir(&thesis).unwrap();
    fs::write(thesis.join("thesis.txt"), "x").unwrap();
    refused(&thesis);
    assert_eq!(names(&thesis), vec!["thesis.txt"]);
    // A regular file.
    let file = base.join("file");
    fs::write(&file, "keep").unwrap();
    assert!(refused(&file).contains("it is a file"));
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
    // A previous report to which someone added a file of their own.
    let rep = base.join("rep");
    write_report_dir(&rep, &c, report_with(&[("a", "1")]), ok).unwrap();
    fs::write(rep.join("notes.txt"), "mine").unwrap();
    assert!(refused(&rep).contains("notes.txt"));
    assert_eq!(fs::read_to_string(rep.join("notes.txt")).unwrap(), "mine");
    fs::remove_file(rep.join("notes.txt")).unwrap();
    // A manifest that is a symbolic link, or not ours.
    let link = base.join("link");
    fs::create_dir(&link).unwrap();
    std::os::unix::fs::symlink(rep.join("manifest.json"), link.join("manifest.json")).unwrap();
    assert!(refused(&link).contains("symbolic link"));
    let other = base.join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("manifest.json"), r#"{"tool":"other"}"#).unwrap();
    refused(&other);
    assert_eq!(names(&other), vec!["manifest.json"]);
    // A symbolic link as --out.
    let outlink = base.join("outlink");
    std::os::unix::fs::symlink(&rep, &outlink).unwrap();
    assert!(refused(&outlink).contains("symbolic link"));
    assert_eq!(
        names(&base),
        vec!["d", "file", "link", "other", "outlink", "rep"],
        "nothing created, nothing left"
    );
    fs::remove_dir_all(&base).unwrap();
}

#[test]
fn leftovers_of_a_killed_run_go_nothing_else_does() {
    let base = scratch("stale");
    let out = base.join("report");
    // PID 0x7fffffff is above pid_max: never alive.
    let dead = base.join(".report.tmp-2147483647-0123456789ab");
    let live = base.join(format!(".report.tmp-{}-0123456789ab", std::process::id()));
    let odd = base.join(".report.tmp-2147483647-notrandom");
    for d in [&dead, &live, &odd] {
        fs::create_dir(d).unwrap();
        fs::write(d.join("big"), "x").unwrap();
    }
    write_report_dir(&out, &Cancel::new(), report_with(&[("a", "1")]), || Ok(())).unwrap();
    assert!(!dead.exists());
    assert!(live.exists() && odd.exists());
    fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_cancel_before_the_commit_leaves_nothing() {
    let base = scratch("cancel");
    let out = base.join("report");
    let c = Cancel::new();
    let r = write_report_dir(
        &out,
        &c,
        |d| {
            fs::write(d.join("a"), "1")?;
            c.cancel();
            Ok(())
        },
        || -> Result<()> { panic!("must not commit") },
    );
    assert!(r.unwrap_err().is::<Cancelled>());
    assert!(names(&base).is_empty(), "{:?}", names(&base));
    fs::remove_dir_all(&base).unwrap();
}
