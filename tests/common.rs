//! Helpers shared by the integration tests that audit through the binary
//! and read what it wrote (`policy`, `verdicts`).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A fresh, empty directory under the system temp dir, unique per call.
pub fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("pw-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `findings.json` of the report folder `out` written by the run `o`, with
/// the report's `scope` (from `report.json`) and its page (`_index`).
pub fn read_doc(out: &Path, o: &Output) -> Value {
    let raw = std::fs::read_to_string(out.join("findings.json"))
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o.stderr)));
    let mut doc: Value = serde_json::from_str(&raw).unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    doc["scope"] = report["scope"].clone();
    doc["_index"] = Value::String(std::fs::read_to_string(out.join("index.html")).unwrap());
    doc
}

/// Requirement `id` of `profile` in a findings document.
pub fn requirement<'a>(doc: &'a Value, profile: &str, id: &str) -> &'a Value {
    doc["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == profile)
        .unwrap_or_else(|| panic!("{profile}"))["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{profile}:{id}"))
}

/// A fresh [`tempdir`] holding the policy `text` as `file`; returns both.
pub fn policy_dir(tag: &str, file: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir(tag);
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}
