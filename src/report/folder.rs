//! The report folder as a whole: whether `--out` may be replaced by a
//! report ([`check_out_dir`]), and the audit's data files beside the
//! rendered report: `observations.jsonl`, `findings.json`, `drift.json`.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::ReportError;
use crate::model::drift::Drift;
use crate::model::{Finding, GroupCoverage, Observation, PortVerdict, ProfileVerdict, Severity};
use crate::policy::Evaluation;

/// The audit's data, as the report folder keeps it.
pub struct AuditFiles<'a> {
    pub observations: &'a [Observation],
    pub evaluation: &'a Evaluation,
    /// Since the previous run of the scope (`drift.json`), if any.
    pub drift: Option<&'a Drift>,
    /// The policy file's name, the audit day and the gate, as
    /// `findings.json` states them.
    pub policy: &'a str,
    pub as_of: NaiveDate,
    pub fail_on: Severity,
}

/// `findings.json`, serialised straight to the file: a JSON tree of every
/// finding would cost several times the file's size in memory.
#[derive(serde::Serialize)]
struct FindingsDoc<'a> {
    schema_version: u32,
    policy: &'a str,
    as_of: NaiveDate,
    fail_on: Severity,
    findings: &'a [Finding],
    profiles: &'a [ProfileVerdict],
    ports: &'a [PortVerdict],
    coverage: &'a [GroupCoverage],
}

/// Writes `observations.jsonl`, `drift.json` (when there is a previous
/// run) and `findings.json` into `dir`.
pub fn write_audit_files(dir: &Path, a: &AuditFiles) -> Result<(), ReportError> {
    write_jsonl(&dir.join("observations.jsonl"), a.observations)?;
    if let Some(d) = a.drift {
        let path = dir.join("drift.json");
        let bytes = serde_json::to_vec_pretty(d).map_err(ReportError::Json)?;
        fs::write(&path, bytes).map_err(|source| ReportError::Io { path, source })?;
    }
    let path = dir.join("findings.json");
    let io = |source| ReportError::Io {
        path: path.clone(),
        source,
    };
    let mut w = BufWriter::new(fs::File::create(&path).map_err(io)?);
    let doc = FindingsDoc {
        schema_version: 1,
        policy: a.policy,
        as_of: a.as_of,
        fail_on: a.fail_on,
        findings: &a.evaluation.findings,
        profiles: &a.evaluation.profiles,
        ports: &a.evaluation.ports,
        coverage: &a.evaluation.coverage,
    };
    serde_json::to_writer_pretty(&mut w, &doc).map_err(ReportError::Json)?;
    w.flush().map_err(io)
}

/// Writes `observations.jsonl`: one observation per line.
pub fn write_jsonl(path: &Path, observations: &[Observation]) -> Result<(), ReportError> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut w = BufWriter::new(fs::File::create(path).map_err(io)?);
    for o in observations {
        serde_json::to_writer(&mut w, o).map_err(ReportError::Json)?;
        w.write_all(b"\n").map_err(io)?;
    }
    w.flush().map_err(io)
}

/// `--out` names something that is not ours to replace.
#[derive(Debug, thiserror::Error)]
#[error("{} exists and is not a portwarden report: choose another --out or remove it ({why})", dir.display())]
pub struct NotAReport {
    pub dir: PathBuf,
    pub why: String,
}

/// What `--out` names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutDir {
    /// Nothing: the report is renamed into place.
    Absent,
    /// An empty directory: replaced by the report.
    Empty,
    /// A previous portwarden report holding only its own files: replaced.
    Report,
}

/// Decides whether `out` may be replaced by a report: only when it does
/// not exist, is an empty directory, or is a previous portwarden report
/// with nothing in it that its manifest does not list. A regular file, a
/// symbolic link, a device or any other directory is refused untouched.
pub fn check_out_dir(out: &Path) -> std::result::Result<OutDir, NotAReport> {
    let refuse = |why: String| NotAReport {
        dir: out.to_path_buf(),
        why,
    };
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OutDir::Absent),
        Err(e) => return Err(refuse(e.to_string())),
    };
    let t = meta.file_type();
    if t.is_symlink() {
        return Err(refuse("it is a symbolic link".into()));
    }
    if !t.is_dir() {
        return Err(refuse(if t.is_file() {
            "it is a file".into()
        } else {
            "it is not a directory".into()
        }));
    }
    let mut entries = fs::read_dir(out).map_err(|e| refuse(e.to_string()))?;
    if entries.next().is_none() {
        return Ok(OutDir::Empty);
    }
    super::evidence::is_own_report(out).map_err(refuse)?;
    Ok(OutDir::Report)
}
