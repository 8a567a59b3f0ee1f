//! App layer: the history side of an audit — the previous run it is
//! judged against (an unreadable one never blocks it), a wait for the
//! history's lock ended by a signal, and metrics that could not be written
//! after the run was recorded.

use std::path::PathBuf;

use anyhow::Result;

use super::Cancelled;
use crate::store::{self, Store};

/// A wait for the history's write lock ended by a signal is a cancel.
pub(super) fn interrupted(e: store::StoreError) -> anyhow::Error {
    match e {
        store::StoreError::Interrupted { .. } => Cancelled.into(),
        e => e.into(),
    }
}

/// The previous run of the scope, the baseline of drift and change checks.
/// The chain from it to the head (which the new run will extend) must
/// hold. A run that cannot be read back never blocks the audit: it runs
/// without a baseline and says which run it could not read.
pub(super) fn previous_run(h: &Store, scope: &str) -> Result<(Option<store::Run>, Option<String>)> {
    let Some(id) = h.latest_of_scope(scope, None)? else {
        return Ok((None, None));
    };
    h.verify_segment(id, h.latest()?.unwrap_or(id))?;
    // Only what drift and the change checks read of it.
    match h.load_compared(id) {
        Ok(run) => Ok((Some(run), None)),
        Err(e @ store::StoreError::Corrupt { .. }) => Ok((
            None,
            Some(format!(
                "{e}; this audit was judged without a previous run (no drift, no change checks); `portwarden history verify` lists every unreadable run"
            )),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The report is in place and the run recorded, but the metrics file was
/// not written (a FIFO nobody read, or a signal while waiting for it).
#[derive(Debug, thiserror::Error)]
#[error(
    "{why}; the report is in {} and {}, but the metrics were not written",
    out.display(),
    match run_id { Some(id) => format!("the run is recorded as run {id}"), None => "the run is not recorded (no history)".to_string() }
)]
pub struct MetricsUnwritten {
    /// A signal ended the wait (the CLI exits 130).
    pub interrupted: bool,
    pub why: String,
    pub out: PathBuf,
    pub run_id: Option<i64>,
}
