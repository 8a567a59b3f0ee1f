//! Steps 4 to 6: evaluate the observations against the policy, with the
//! measured vantage and the previous run of the same scope; the drift since
//! that run; the gate.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::collect::Collected;
use super::recording::previous_run;
use super::rulebook::Rulebook;
use super::{AuditRequest, Scope, clock};
use crate::model::AuditVantage;
use crate::policy::{self, Evaluation};
use crate::scan::local::{interfaces_of, source_addresses};
use crate::store::{self, Drift, Store};

/// What the audit decided, and the run record the history will keep.
pub(super) struct Judged {
    pub(super) record: store::NewRun,
    /// The previous run of the scope could not be read back: why.
    pub(super) previous_unreadable: Option<String>,
    /// The one clock of the evaluation and its records.
    pub(super) now: DateTime<Utc>,
    pub(super) vantage: AuditVantage,
    pub(super) evaluation: Evaluation,
    pub(super) drift: Option<Drift>,
    pub(super) gate_tripped: bool,
    /// An import that accepted a file cut short.
    pub(super) partial_import: bool,
}

/// Evaluates, compares with the previous run of the scope and applies the
/// gate.
pub(super) fn judge(
    req: &AuditRequest,
    scope: &Scope,
    rulebook: &Rulebook,
    history: Option<&Store>,
    collected: &Collected,
    started: DateTime<Utc>,
) -> Result<Judged> {
    let Rulebook {
        policy, profiles, ..
    } = rulebook;
    let observations = &collected.observations;
    let partial_import = collected.source["partial"] == serde_json::Value::Bool(true);
    let mut record = store::audit_record(store::AuditFacts {
        started,
        scope_targets: &scope.targets,
        scope_excludes: &scope.excludes,
        ports: &scope.ports,
        policy,
        policy_path: req.policy.as_deref(),
        params: serde_json::json!({
            "source": collected.source,
            "fail_on": req.fail_on,
            "as_of": req.as_of,
        }),
        observations,
    });
    // The run record keeps the open ports for the history's drift; with no
    // history nothing reads them, and a /16 import has ~100,000.
    if history.is_none() {
        record.observations = Vec::new();
    }
    let (previous, previous_unreadable) = match history {
        Some(h) => previous_run(h, &record.scope.key)?,
        None => (None, None),
    };
    let baseline = previous.as_ref().map(store::baseline);
    let audits = super::cadence::audit_history(history, &record.scope.key)?;
    let now = clock(req.as_of);
    let vantage = vantage(req, collected);
    let evaluation = policy::evaluate_in(
        policy,
        profiles,
        &collected.catalogue,
        observations,
        &policy::EvalContext {
            now,
            baseline: baseline.as_ref(),
            vantage: vantage.clone(),
            scans: collected.scans.clone(),
            udp: policy::UdpEvidence {
                payload_ports: collected.udp_payload_ports.clone(),
                monlist: req.udp_monlist && collected.engine.is_some(),
            },
            audits: audits.as_ref(),
        },
    );
    req.cancel.check()?;
    // The history's copy of the findings is needed only when there is a
    // history (a /16 audit has ~150,000 findings).
    if history.is_some() {
        record.findings = evaluation.findings.clone();
    }
    let drift = previous
        .as_ref()
        .map(|p| store::drift((&p.record, Some(p.id)), (&record, None)));
    let gate_tripped = policy::gate(&evaluation.findings, req.fail_on);
    Ok(Judged {
        record,
        previous_unreadable,
        now,
        vantage,
        evaluation,
        drift,
        gate_tripped,
        partial_import,
    })
}

/// The vantage of the audit: the one its signed bundles recorded, else the
/// operator's `--vantage` with the source addresses a scan used.
fn vantage(req: &AuditRequest, collected: &Collected) -> AuditVantage {
    match &collected.vantage {
        Some(v) => AuditVantage {
            lab: req.lab_vantage,
            ..v.clone()
        },
        None => {
            let sources = match collected.engine {
                Some(_) => source_addresses(collected.observations.iter().map(|o| o.ip)),
                None => Vec::new(),
            };
            AuditVantage {
                name: req.vantage.clone(),
                interfaces: interfaces_of(&sources),
                sources,
                lab: req.lab_vantage,
            }
        }
    }
}
