//! App layer: the audit calendar of this audit's scope, read from the
//! history for the cadence checks (`policy::cadence`). Without a history
//! there is no calendar: the checks then say the audit ran without one.

use crate::policy::AuditHistory;
use crate::store::Store;

/// The earlier audits of `scope_key` (`None` without a history).
pub(super) fn audit_history(
    history: Option<&Store>,
    scope_key: &str,
) -> Result<Option<AuditHistory>, crate::store::StoreError> {
    let Some(h) = history else {
        return Ok(None);
    };
    Ok(Some(AuditHistory {
        earlier: h.audit_days(scope_key, None)?,
    }))
}
