//! Store layer: Prometheus textfile-collector metrics of an audit, so a
//! scheduled audit is monitored like any other job — open ports, failing
//! findings by severity, compliance score per framework, how long it took
//! and when it last succeeded (alert when that grows stale).
//!
//! The file is replaced atomically (written beside it, then renamed): the
//! node exporter must never read half a file. A FIFO or a character device
//! (`/dev/null`) is written in place, never replaced; a directory is refused
//! (see [`crate::safe_fs`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{Observation, PortState, RequirementStatus, Severity};
use crate::policy::Evaluation;

/// What the metrics are made of.
#[derive(Debug)]
pub struct Metrics<'a> {
    /// The scope key labels every series, so several scheduled audits can
    /// write their own files into one collector directory.
    pub scope: &'a str,
    pub observations: &'a [Observation],
    pub evaluation: &'a Evaluation,
    pub duration: Duration,
    pub finished: DateTime<Utc>,
}

/// Label values escaped as the exposition format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(m: &Metrics) -> String {
    let scope = label(m.scope);
    let open = m
        .observations
        .iter()
        .filter(|o| o.state == PortState::Open)
        .count();
    let mut out = String::new();
    let head = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    head(
        &mut out,
        "portwarden_open_ports",
        "Open ports found by the last audit.",
    );
    let _ = writeln!(out, "portwarden_open_ports{{scope=\"{scope}\"}} {open}");
    head(
        &mut out,
        "portwarden_findings",
        "Failing (not waived) findings of the last audit by severity.",
    );
    let mut by: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
    for f in m
        .evaluation
        .findings
        .iter()
        .filter(|f| f.status.is_failing())
    {
        *by.entry(f.severity).or_default() += 1;
    }
    for (s, n) in &by {
        let _ = writeln!(
            out,
            "portwarden_findings{{scope=\"{scope}\",severity=\"{s}\"}} {n}"
        );
    }
    head(
        &mut out,
        "portwarden_compliance_score",
        "Passed / assessed requirements per compliance profile (0-1); absent while any requirement is partial, accepted or not assessed (see portwarden_requirements).",
    );
    for p in &m.evaluation.profiles {
        if let Some(score) = p.score {
            let _ = writeln!(
                out,
                "portwarden_compliance_score{{scope=\"{scope}\",profile=\"{}\"}} {score}",
                label(&p.profile)
            );
        }
    }
    head(
        &mut out,
        "portwarden_requirements",
        "Requirements per compliance profile by status.",
    );
    for p in &m.evaluation.profiles {
        for status in [
            RequirementStatus::Pass,
            RequirementStatus::Fail,
            RequirementStatus::Accepted,
            RequirementStatus::Partial,
            RequirementStatus::NotAssessed,
        ] {
            let n = p.requirements.iter().filter(|r| r.status == status).count();
            let _ = writeln!(
                out,
                "portwarden_requirements{{scope=\"{scope}\",profile=\"{}\",status=\"{status}\"}} {n}",
                label(&p.profile)
            );
        }
    }
    head(
        &mut out,
        "portwarden_audit_duration_seconds",
        "Wall time of the last audit.",
    );
    let _ = writeln!(
        out,
        "portwarden_audit_duration_seconds{{scope=\"{scope}\"}} {:.3}",
        m.duration.as_secs_f64()
    );
    head(
        &mut out,
        "portwarden_last_success_timestamp_seconds",
        "Unix time the last audit finished and wrote its report.",
    );
    let _ = writeln!(
        out,
        "portwarden_last_success_timestamp_seconds{{scope=\"{scope}\"}} {}",
        m.finished.timestamp()
    );
    out
}

/// Writes the metrics file atomically (see [`crate::safe_fs`]).
pub fn write(path: &Path, m: &Metrics) -> Result<(), crate::safe_fs::SafeFsError> {
    crate::safe_fs::write(path, render(m).as_bytes())
}
