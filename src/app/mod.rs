//! App layer: the audit as a pipeline of named steps, put together from
//! the layers below. The CLI calls it; it never prints.
//!
//! [`audit`] runs, in order:
//! 1. `rulebook`: rules, labels and policy, loaded and checked once;
//!    the `--sign-key` and the history are opened too (a typo there must
//!    not cost a scan);
//! 2. `collect::resolve_scope`: targets as asked, else the policy's;
//! 3. `collect`: scan (with identification) or import the observations;
//! 4. `judge`: evaluate against the policy, the measured vantage and the
//!    previous run; the drift since that run; the gate;
//! 5. `render`: the report folder, in a temporary directory (`outdir`);
//! 6. sign its manifest; 7. `commit`: put it in place and record the run
//!    together, or neither; 8. the metrics.
//!
//! It validates nothing the layers validate themselves and owns only the
//! order of the steps.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::mpsc;

mod cadence;
mod cancel;
mod collect;
mod commit;
mod imports;
mod judge;
mod outdir;
pub mod paths;
mod recording;
mod render;
mod request;
mod rulebook;
pub use crate::report::{NotAReport, OutDir, check_out_dir, write_jsonl};
pub use crate::scan::local::{interfaces_of, source_addresses};
pub use cancel::{Cancel, Cancelled, off_thread};
pub use collect::{
    Prepared, ScanChoice, Scope, choose_engine, prepare, prepare_with, scan, settle_udp,
};
pub use imports::vantages;
pub use outdir::{PendingReport, write_report_dir};
pub use recording::MetricsUnwritten;
pub use request::{AuditOutcome, AuditRequest};
pub use rulebook::{check_platforms, load_policy};

use crate::model::ScanEvent;
use crate::store::Store;
use collect::Collected;
use recording::interrupted;
use rulebook::Rulebook;

/// Ports an audit scans when none are given.
pub const DEFAULT_AUDIT_PORTS: &str = "common,high-risk-udp";
/// The `scan` command's default ports (TCP only: a plain scan stays quick).
pub const DEFAULT_SCAN_PORTS: &str = "common";

/// The evaluation clock: noon UTC of `as_of`, else now.
pub fn clock(as_of: Option<NaiveDate>) -> DateTime<Utc> {
    match as_of.and_then(|d| d.and_hms_opt(12, 0, 0)) {
        Some(t) => t.and_utc(),
        None => Utc::now(),
    }
}

/// Runs a whole audit and writes its report directory. Events (progress,
/// notices, observations) are forwarded to `events` as they happen.
pub async fn audit(
    req: Arc<AuditRequest>,
    events: mpsc::Sender<ScanEvent>,
) -> Result<AuditOutcome> {
    let started = Utc::now();
    // Every output path (report, metrics, history) can be written.
    paths::check_audit_outputs(&req)?;
    let sign_key = commit::load_sign_key(&req)?;
    let rulebook = rulebook::Rulebook::load(&req)?;
    let history = commit::open_history(&req)?;
    let scope = collect::resolve_scope(&req, &rulebook.policy);
    let (scope, collected) = if req.import.is_empty() {
        collect::scan_step(&req, scope, &rulebook, &events).await?
    } else {
        collect::import_step(&req, scope, &rulebook).await?
    };
    // The rest on a worker thread, so a cancel returns at once.
    let cancel = req.cancel.clone();
    off_thread(&cancel, move || {
        finish(
            &req,
            &scope,
            &rulebook,
            history,
            collected,
            started,
            sign_key.as_ref(),
        )
    })
    .await
}

/// Judges, renders, signs, commits and writes the metrics.
fn finish(
    req: &AuditRequest,
    scope: &Scope,
    rulebook: &Rulebook,
    mut history: Option<Store>,
    collected: Collected,
    started: DateTime<Utc>,
    sign_key: Option<&ed25519_dalek::SigningKey>,
) -> Result<AuditOutcome> {
    req.cancel.check()?;
    let mut judged = judge::judge(req, scope, rulebook, history.as_ref(), &collected, started)?;
    // The run's place in the history is fixed (and the write lock taken)
    // before the report is written, so its manifest can carry the anchor.
    let pending_run = match history.as_mut() {
        Some(h) => Some(h.begin_record().map_err(interrupted)?),
        None => None,
    };
    let anchor = pending_run.as_ref().map(|p| p.anchor().clone());
    let audit = render::Audit {
        req,
        scope,
        rulebook,
        collected: &collected,
        judged: &judged,
        started,
    };
    let pending = render::render(&audit, anchor)?;
    if let Some(key) = sign_key {
        crate::report::evidence::sign_manifest(pending.path(), key)?;
    }
    let (manifest_sha256, run_id) = commit::commit(req, pending, pending_run, &mut judged.record)?;
    commit::metrics(
        req,
        &judged.record,
        &collected.observations,
        &judged.evaluation,
        started,
        run_id,
    )?;
    Ok(AuditOutcome {
        evaluation: judged.evaluation,
        gate_tripped: judged.gate_tripped,
        summary: collected.summary,
        hosts: collected.hosts,
        ports: collected.ports,
        out: req.out.clone(),
        observations: collected.observations,
        manifest_sha256,
        run_id,
        drift: judged.drift,
        labels: rulebook.labels.clone(),
        partial_import: judged.partial_import,
        previous_unreadable: judged.previous_unreadable,
    })
}

#[cfg(test)]
mod tests;
