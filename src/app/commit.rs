//! Steps 8 to 10: sign the manifest, then put the report in place and
//! record the run together (or neither), then the metrics.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::outdir::PendingReport;
use super::recording::interrupted;
use super::{AuditRequest, MetricsUnwritten};
use crate::model::Observation;
use crate::report;
use crate::store::{self, PendingRecord, Store};

/// Opens the audit history (`--store`), before anything is scanned.
pub(super) fn open_history(req: &AuditRequest) -> Result<Option<Store>> {
    Ok(match req.store.as_deref() {
        Some(path) => {
            let mut s = Store::open_interruptible(path, req.cancel.flag()).map_err(interrupted)?;
            s.set_key(req.history_key.clone());
            Some(s)
        }
        None => None,
    })
}

/// Reads the `--sign-key`, before anything is scanned.
pub(super) fn load_sign_key(req: &AuditRequest) -> Result<Option<ed25519_dalek::SigningKey>> {
    Ok(req
        .sign_key
        .as_deref()
        .map(report::evidence::load_signing_key)
        .transpose()?)
}

/// Behind the commit gate: the report goes in place and the run is
/// recorded together, or neither when a cancel comes first. Gives the
/// manifest's hash and the run's id.
pub(super) fn commit(
    req: &AuditRequest,
    pending: PendingReport,
    pending_run: Option<PendingRecord<'_>>,
    record: &mut store::NewRun,
) -> Result<(String, Option<i64>)> {
    pending.commit(|| {
        let manifest_sha256 = report::evidence::manifest_sha256(&req.out)?;
        record.finished = Utc::now();
        record.manifest_hash = Some(manifest_sha256.clone());
        let run_id = match pending_run {
            Some(p) => Some(p.commit(record).with_context(|| {
                format!(
                    "the report is in {} but the run was not recorded in the history",
                    req.out.display()
                )
            })?),
            None => None,
        };
        Ok((manifest_sha256, run_id))
    })
}

/// Writes the Prometheus metrics (`--metrics`), after the commit.
pub(super) fn metrics(
    req: &AuditRequest,
    record: &store::NewRun,
    observations: &[Observation],
    evaluation: &crate::policy::Evaluation,
    started: DateTime<Utc>,
    run_id: Option<i64>,
) -> Result<()> {
    let Some(path) = &req.metrics else {
        return Ok(());
    };
    store::metrics::write(
        path,
        &store::metrics::Metrics {
            scope: &record.scope.key,
            observations,
            evaluation,
            duration: (record.finished - started).to_std().unwrap_or_default(),
            finished: record.finished,
        },
        &|| req.cancel.signalled(),
    )
    .map_err(|e| MetricsUnwritten {
        interrupted: matches!(e, crate::safe_fs::SafeFsError::Interrupted(_)),
        why: e.to_string(),
        out: req.out.clone(),
        run_id,
    })?;
    Ok(())
}
