//! Policy layer: one verdict per open port — its group, the allowance that
//! admits it (policy file:line), the exception that applied, the checks
//! that fired and the risk rule — so the report's inventory and fixes read
//! the evaluator's decision instead of matching again.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::NaiveDate;

use super::catalogue::PortCatalogue;
use super::config::Policy;
use super::eval::{HostCtx, view};
use crate::model::{Finding, Observation, PortState, PortVerdict, Proto, RuleRef};

/// One verdict per open port: its group, the allowance that admits it, the
/// exception that applied, the checks that fired and the risk rule.
pub(super) fn port_verdicts(
    policy: &Policy,
    cat: &dyn PortCatalogue,
    ctxs: &[HostCtx],
    latest: &BTreeMap<(IpAddr, u16, Proto), &Observation>,
    findings: &[Finding],
    today: NaiveDate,
) -> Vec<PortVerdict> {
    let ctx_of: BTreeMap<IpAddr, &HostCtx> = ctxs.iter().map(|c| (c.ip, c)).collect();
    let mut by_port: BTreeMap<(IpAddr, u16, Proto), Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        if let (Some(p), Some(proto)) = (f.port, f.proto) {
            by_port.entry((f.ip, p, proto)).or_default().push(f);
        }
    }
    let mut out = Vec::new();
    for (&(ip, port, proto), o) in latest {
        if o.state != PortState::Open {
            continue;
        }
        let Some(ctx) = ctx_of.get(&ip) else {
            continue;
        };
        let v = view(cat, o);
        let rule = ctx.allowance(port, proto);
        let fired = by_port.get(&(ip, port, proto));
        out.push(PortVerdict {
            ip,
            port,
            proto,
            group: ctx.group_name(),
            allowed_by: rule.map(|r| RuleRef {
                file: policy.file.clone(),
                line: r.line,
            }),
            justification: rule.and_then(|r| r.justification.clone()),
            approver: rule.and_then(|r| r.approver.clone()),
            ticket: rule.and_then(|r| r.ticket.clone()),
            review_by: rule.and_then(|r| r.review_by),
            review_overdue: rule.is_some_and(|r| r.review_overdue(today)),
            exception: fired.and_then(|fs| fs.iter().find_map(|f| f.exception.clone())),
            checks_fired: fired
                .map(|fs| fs.iter().map(|f| f.check.clone()).collect())
                .unwrap_or_default(),
            service: v.name.clone(),
            catalogue_service: v.catalogue.as_ref().map(|f| f.service.clone()),
            identified_service: v.identified_name.clone(),
            catalogue_risk: v.catalogue.as_ref().map(|f| f.risk),
            identified_risk: v.identified_risk,
            effective_risk: v.risk(),
        });
    }
    out
}
