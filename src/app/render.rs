//! Step 7: the report folder, written by the report layer in a temporary
//! directory next to `--out`, put in place only at the commit.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::collect::Collected;
use super::judge::Judged;
use super::outdir::{PendingReport, write_report_dir};
use super::rulebook::Rulebook;
use super::{AuditRequest, Scope};
use crate::report;
use crate::scan::ScanSummary;
use crate::store::Drift;

/// Everything an audit gathered and decided, as the render step reads it.
#[derive(Clone, Copy)]
pub(super) struct Audit<'a> {
    pub(super) req: &'a AuditRequest,
    pub(super) scope: &'a Scope,
    pub(super) rulebook: &'a Rulebook,
    pub(super) collected: &'a Collected,
    pub(super) judged: &'a Judged,
    pub(super) started: DateTime<Utc>,
}

/// Writes the whole report folder; `anchor` is the run's place in the
/// history, which the manifest carries.
pub(super) fn render(
    a: &Audit,
    anchor: Option<crate::model::HistoryAnchor>,
) -> Result<PendingReport> {
    let Audit {
        req,
        rulebook,
        collected,
        judged,
        ..
    } = *a;
    let evaluation = &judged.evaluation;
    let observations = &collected.observations;
    write_report_dir(&req.out, &req.cancel, |dir| {
        report::write_audit_files(
            dir,
            &report::AuditFiles {
                observations,
                evaluation,
                drift: judged.drift.as_ref(),
                policy: &rulebook.policy.file,
                as_of: judged.now.date_naive(),
                fail_on: req.fail_on,
            },
        )?;
        report::write_bundle_with(
            dir,
            &report::ReportInput {
                labels: &rulebook.labels,
                facts: facts(a, anchor),
                observations,
                evaluation,
                policy: &rulebook.policy,
                profiles: &rulebook.profiles,
                catalogue: &collected.catalogue,
                remediation: &rulebook.remediation,
            },
            report::BundleOptions {
                csv_bom: req.csv_bom,
                pdf_with: req.pdf_with.clone(),
                paper: req.paper,
                compress: req.compress,
            },
        )?;
        Ok(())
    })
}

/// What the report says about the run itself.
fn facts(a: &Audit, anchor: Option<crate::model::HistoryAnchor>) -> report::RunFacts {
    let Audit {
        req,
        scope,
        rulebook,
        collected,
        judged,
        started,
    } = *a;
    let vantage = &judged.vantage;
    report::RunFacts {
        targets: scope.targets.clone(),
        excludes: scope.excludes.clone(),
        ports: scope.ports.clone(),
        port_count: collected.ports,
        host_count: collected.hosts,
        scan_type: collected.engine,
        rate: collected.rate,
        started,
        finished: Utc::now(),
        operator: req.operator.clone(),
        command_line: req.command_line.clone(),
        as_of: judged.now.date_naive(),
        fail_on: req.fail_on,
        gate_tripped: judged.gate_tripped,
        rules_dir: req.scope.rules_dir.clone(),
        policy_path: req.policy.clone(),
        rule_files: rulebook.rules.files.clone(),
        source_interfaces: vantage.interfaces.clone(),
        source_addresses: vantage.sources.clone(),
        vantage: vantage.clone(),
        partial_import: judged.partial_import,
        local_errors: collected.summary.local_errors,
        udp_undecided: collected.summary.udp_undecided,
        history: anchor,
        inputs: collected.inputs.clone(),
        coverage: scan_coverage(
            &collected.summary,
            &collected.protocols,
            collected.identification,
        ),
        trend: judged
            .drift
            .as_ref()
            .map(|d| trend(d, &judged.evaluation.findings)),
    }
}

/// What the report says the scan covered.
fn scan_coverage(
    summary: &ScanSummary,
    protocols: &[report::ProtocolCoverage],
    identification: Option<bool>,
) -> report::ScanCoverage {
    report::ScanCoverage {
        states: report::StateCounts {
            probed: summary.probed,
            open: summary.open,
            closed: summary.closed,
            filtered: summary.filtered,
            open_filtered: summary.open_filtered,
        },
        protocols: protocols.to_vec(),
        identification,
    }
}

/// The failing findings against the previous run of the scope.
fn trend(d: &Drift, findings: &[crate::model::Finding]) -> report::Trend {
    let failing = findings.iter().filter(|f| f.status.is_failing()).count();
    report::Trend {
        previous_run: d.from.id,
        previous_started: d.from.started,
        new: d.findings_new.len(),
        resolved: d.findings_resolved.len(),
        still_open: failing.saturating_sub(d.findings_new.len()),
    }
}
