//! Report layer: the evidence bundle. `manifest.json` records the SHA-256
//! of every file of a report directory together with who ran the audit,
//! when, with which tool, rules and policy; [`verify`] recomputes the hashes
//! and names every file that was altered, removed or added since.
//!
//! The manifest proves integrity only as far as the manifest itself is
//! trusted: its own hash ([`manifest_sha256`]) is what an auditor records
//! elsewhere (a ticket, a signed mail) to make later tampering detectable.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ReportError;

/// The name of the manifest in a report directory.
pub const MANIFEST: &str = "manifest.json";

/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 1;

/// The embedded rule files, by the name they have in a rules directory.
const EMBEDDED_RULES: &[(&str, &str)] = &[
    ("ports.toml", include_str!("../../rules/ports.toml")),
    (
        "remediation.toml",
        include_str!("../../rules/remediation.toml"),
    ),
    (
        "profiles/checks.toml",
        include_str!("../../rules/profiles/checks.toml"),
    ),
    (
        "profiles/cis-v8.toml",
        include_str!("../../rules/profiles/cis-v8.toml"),
    ),
    (
        "profiles/iso27001-2022.toml",
        include_str!("../../rules/profiles/iso27001-2022.toml"),
    ),
    (
        "profiles/mlps2-level3.toml",
        include_str!("../../rules/profiles/mlps2-level3.toml"),
    ),
    (
        "profiles/nist-800-53r5.toml",
        include_str!("../../rules/profiles/nist-800-53r5.toml"),
    ),
    (
        "profiles/pci-dss-4.0.toml",
        include_str!("../../rules/profiles/pci-dss-4.0.toml"),
    ),
];

/// Which rules an audit used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesInfo {
    /// `embedded (portwarden 0.1.0)`, or the overriding directory.
    pub version: String,
    /// SHA-256 over the per-file hashes below (name, hash; one per line).
    pub sha256: String,
    /// Each rule file in effect and its SHA-256.
    pub files: BTreeMap<String, String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub rules: RulesInfo,
    pub policy_file: String,
    pub policy_sha256: Option<String>,
    pub command_line: Vec<String>,
    pub operator: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub as_of: NaiveDate,
    /// The scan result files an import audit read, with their SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<super::model::InputFile>,
    /// Every other file of the directory (relative path, `/`-separated) → SHA-256.
    pub files: BTreeMap<String, String>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct VerifyReport {
    /// Files whose content matches.
    pub intact: Vec<String>,
    /// Files whose content changed.
    pub altered: Vec<String>,
    /// Files the manifest lists that are gone.
    pub missing: Vec<String>,
    /// Files present that the manifest does not list.
    pub extra: Vec<String>,
    /// The manifest's own SHA-256 (to compare with the one recorded at audit time).
    pub manifest_sha256: String,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.altered.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn file_sha256(path: &Path) -> Result<String, ReportError> {
    let bytes = fs::read(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sha256_hex(&bytes))
}

/// The rule files in effect: a rules directory's own files where it has
/// them, the embedded ones otherwise (that is how the loaders resolve them).
pub fn rules_info(rules_dir: Option<&Path>) -> Result<RulesInfo, ReportError> {
    let mut files = BTreeMap::new();
    for (name, text) in EMBEDDED_RULES {
        let own = rules_dir.map(|d| d.join(name)).filter(|p| p.is_file());
        let hash = match own {
            Some(p) => file_sha256(&p)?,
            None => sha256_hex(text.as_bytes()),
        };
        files.insert((*name).to_string(), hash);
    }
    // Extra profiles a rules directory adds.
    if let Some(dir) = rules_dir {
        let profiles = dir.join("profiles");
        if let Ok(entries) = fs::read_dir(&profiles) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml") {
                    let name = format!("profiles/{}", e.file_name().to_string_lossy());
                    if let std::collections::btree_map::Entry::Vacant(slot) = files.entry(name) {
                        slot.insert(file_sha256(&p)?);
                    }
                }
            }
        }
    }
    let joined: String = files.iter().map(|(n, h)| format!("{n} {h}\n")).collect();
    let version = match rules_dir {
        Some(d) => format!("{} (overrides the embedded rules)", d.display()),
        None => format!("embedded (portwarden {})", env!("CARGO_PKG_VERSION")),
    };
    Ok(RulesInfo {
        version,
        sha256: sha256_hex(joined.as_bytes()),
        files,
    })
}

/// Every regular file under `dir` except the manifest, as sorted
/// `/`-separated relative paths.
fn list_files(dir: &Path) -> Result<Vec<String>, ReportError> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), ReportError> {
        let io = |source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        };
        for e in fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let path = e.path();
            let kind = e.file_type().map_err(io)?;
            if kind.is_dir() {
                walk(base, &path, out)?;
            } else {
                let rel = path.strip_prefix(base).unwrap_or(&path);
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(name);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.retain(|n| n != MANIFEST);
    out.sort();
    Ok(out)
}

/// Hashes every file in `dir` and writes `manifest.json` (last, so it
/// covers everything else). `files` in `manifest` is replaced.
pub fn write_manifest(dir: &Path, mut manifest: Manifest) -> Result<Manifest, ReportError> {
    manifest.files.clear();
    for name in list_files(dir)? {
        let hash = file_sha256(&dir.join(&name))?;
        manifest.files.insert(name, hash);
    }
    let path = dir.join(MANIFEST);
    let mut text = serde_json::to_vec_pretty(&manifest).map_err(ReportError::Json)?;
    text.push(b'\n');
    fs::write(&path, text).map_err(|source| ReportError::Io { path, source })?;
    Ok(manifest)
}

/// The SHA-256 of a report directory's manifest.
pub fn manifest_sha256(dir: &Path) -> Result<String, ReportError> {
    file_sha256(&dir.join(MANIFEST))
}

/// Checks a report directory against its manifest.
pub fn verify(dir: &Path) -> Result<VerifyReport, ReportError> {
    let path: PathBuf = dir.join(MANIFEST);
    let text = fs::read(&path).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| ReportError::BadManifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let mut report = VerifyReport {
        manifest_sha256: sha256_hex(&text),
        ..VerifyReport::default()
    };
    let present = list_files(dir)?;
    for (name, want) in &manifest.files {
        if !present.contains(name) {
            report.missing.push(name.clone());
        } else if file_sha256(&dir.join(name))? == *want {
            report.intact.push(name.clone());
        } else {
            report.altered.push(name.clone());
        }
    }
    report.extra = present
        .into_iter()
        .filter(|n| !manifest.files.contains_key(n))
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            tool: "portwarden".into(),
            tool_version: "0.1.0".into(),
            rules: rules_info(None).unwrap(),
            policy_file: "p.toml".into(),
            policy_sha256: None,
            command_line: vec!["portwarden".into(), "audit".into()],
            operator: "tester".into(),
            started: "2026-01-02T03:04:05Z".parse().unwrap(),
            finished: "2026-01-02T03:05:05Z".parse().unwrap(),
            as_of: "2026-01-02".parse().unwrap(),
            inputs: Vec::new(),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_names_altered_missing_and_extra_files() {
        let dir = std::env::temp_dir().join(format!("pw-evidence-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a.txt"), "a").unwrap();
        fs::write(dir.join("b.txt"), "b").unwrap();
        fs::write(dir.join("sub/c.txt"), "c").unwrap();
        let m = write_manifest(&dir, manifest()).unwrap();
        assert_eq!(
            m.files.keys().collect::<Vec<_>>(),
            vec!["a.txt", "b.txt", "sub/c.txt"]
        );
        assert_eq!(m.files["a.txt"], sha256_hex(b"a"));
        let clean = verify(&dir).unwrap();
        assert!(clean.is_intact());
        assert_eq!(clean.intact.len(), 3);
        assert_eq!(clean.manifest_sha256, manifest_sha256(&dir).unwrap());

        fs::write(dir.join("a.txt"), "A").unwrap();
        fs::remove_file(dir.join("sub/c.txt")).unwrap();
        fs::write(dir.join("new.txt"), "x").unwrap();
        let r = verify(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(!r.is_intact());
        assert_eq!(r.altered, vec!["a.txt"]);
        assert_eq!(r.missing, vec!["sub/c.txt"]);
        assert_eq!(r.extra, vec!["new.txt"]);
        assert_eq!(r.intact, vec!["b.txt"]);
    }

    #[test]
    fn a_rules_directory_overrides_what_it_holds() {
        let dir = std::env::temp_dir().join(format!("pw-evidence-rules-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("profiles")).unwrap();
        fs::write(dir.join("ports.toml"), "x").unwrap();
        fs::write(dir.join("profiles/extra.toml"), "y").unwrap();
        let own = rules_info(Some(&dir)).unwrap();
        let embedded = rules_info(None).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(own.files["ports.toml"], sha256_hex(b"x"));
        assert_eq!(own.files["profiles/extra.toml"], sha256_hex(b"y"));
        assert_eq!(
            own.files["remediation.toml"],
            embedded.files["remediation.toml"]
        );
        assert_eq!(own.files.len(), embedded.files.len() + 1);
        assert_ne!(own.sha256, embedded.sha256);
        assert!(own.version.ends_with("(overrides the embedded rules)"));
    }

    #[test]
    fn embedded_rules_are_all_hashed() {
        let r = rules_info(None).unwrap();
        assert_eq!(r.files.len(), EMBEDDED_RULES.len());
        assert_eq!(
            r.files["ports.toml"],
            sha256_hex(EMBEDDED_RULES[0].1.as_bytes())
        );
        assert!(r.version.starts_with("embedded (portwarden "));
        assert_eq!(r.sha256.len(), 64);
    }
}
