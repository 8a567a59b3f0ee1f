//! From drafts to findings and verdicts: the exceptions that waive a
//! finding, the requirements it counts against, one verdict per open port,
//! and each exception's state.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{Months, NaiveDate};

use super::super::config::{Exception, ExceptionState, ExceptionTarget, Policy};
use super::checks::{Draft, view};
use super::host::HostCtx;
use super::{Evaluator, finding_id};
use crate::model::{
    Controls, ExceptionVerdict, Finding, FindingStatus, Message, Observation, PortState,
    PortVerdict, Proto, RuleRef,
};
use crate::rules::profiles::{Assessment, CheckCondition, CheckKind, Profiles};

fn exception_matches(e: &Exception, ctx: &HostCtx, ip: IpAddr, d: &Draft) -> bool {
    let target = match &e.target {
        ExceptionTarget::Group(name) => ctx.groups.iter().any(|g| &g.name == name),
        ExceptionTarget::Addr(r) => r.contains(ip),
    };
    let port = match e.ports {
        None => true,
        Some(r) => d.port.is_some_and(|p| r.contains(p)) && d.proto == Some(e.proto),
    };
    let check = e.check.is_none_or(|c| c == d.check);
    // A path into a segment that must be unreachable is never waived.
    let waivable = d.check != CheckKind::SegmentationBreach;
    target && port && check && waivable
}

/// The requirements a finding of `check` counts against on this host;
/// `approved`: the finding's port has a justified, approved allowance
/// (mappings marked `@unapproved` then leave it out); `at`: the finding's
/// port, for `@vantage:internet` (open from the internet vantage).
pub(in crate::policy) fn controls(
    profiles: &Profiles,
    ctx: &HostCtx,
    check: CheckKind,
    approved: bool,
    at: Option<(u16, Proto)>,
) -> Controls {
    let mut out = Vec::new();
    for p in profiles.profiles() {
        if !ctx.profiles.contains(&p.id.as_str()) {
            continue;
        }
        for r in &p.requirements {
            // An extension's requirement counts only beside its level.
            if r.level
                .as_ref()
                .is_some_and(|l| !ctx.profiles.contains(&l.as_str()))
            {
                continue;
            }
            if let Assessment::Checks(refs) = &r.assessment
                && refs.iter().any(|c| {
                    c.check == check
                        && ctx.satisfies(&c.when, at)
                        && !(approved && c.when == CheckCondition::Unapproved)
                })
            {
                out.push(p.control_ref(r));
            }
        }
    }
    out.into()
}

impl Evaluator<'_> {
    /// One verdict per open port: its group, the allowance that admits it, the
    /// exception that applied, the checks that fired and the risk rule.
    pub(super) fn port_verdicts(
        &self,
        ctxs: &[HostCtx],
        latest: &BTreeMap<(IpAddr, u16, Proto), &Observation>,
        findings: &[Finding],
    ) -> Vec<PortVerdict> {
        let Evaluator {
            policy, cat, today, ..
        } = *self;
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

    /// Applies the exceptions to a draft and records the finding (plus an
    /// `exception-expired` finding when a lapsed exception was all that covered it).
    pub(super) fn settle(&self, ctx: &HostCtx, d: Draft, out: &mut Vec<Finding>) {
        let Evaluator {
            policy,
            profiles,
            today,
            ..
        } = *self;
        let ip = ctx.ip;
        let matching: Vec<&Exception> = policy
            .exceptions
            .iter()
            .filter(|e| exception_matches(e, ctx, ip, &d))
            .collect();
        let by_state = |s: ExceptionState| {
            matching
                .iter()
                .copied()
                .filter(move |e| e.state(today) == s)
        };
        let mut message = d.message;
        let mut msg = d.msg;
        let mut status = FindingStatus::Fail;
        let mut exception = None;
        let mut lapsed = None;
        let mut active = None;
        if let Some(e) = by_state(ExceptionState::Active).max_by_key(|e| e.expires) {
            active = Some(e);
            status = FindingStatus::Waived;
            exception = Some(e.id.clone());
            message = format!(
                "{message} — waived by exception {} until {} ({}; approved by {})",
                e.id, e.expires, e.reason, e.approver
            );
            msg = msg
                .arg("exception_state", "waived")
                .arg("exception", &e.id)
                .arg("expires", e.expires)
                .arg("exception_reason", &e.reason)
                .arg("approver", &e.approver);
        } else if let Some(e) = by_state(ExceptionState::Expired).max_by_key(|e| e.expires) {
            status = FindingStatus::ExpiredWaiver;
            exception = Some(e.id.clone());
            message = format!("{message} — exception expired on {} ({})", e.expires, e.id);
            msg = msg
                .arg("exception_state", "expired")
                .arg("exception", &e.id)
                .arg("expires", e.expires);
            lapsed = Some(e);
        } else if let Some(e) = by_state(ExceptionState::OutsideWindow).next() {
            exception = Some(e.id.clone());
            if let Some(w) = e.window {
                message = format!(
                    "{message} — exception {} applies only in its window ({w}); {today} is outside it",
                    e.id
                );
                msg = msg
                    .arg("exception_state", "outside-window")
                    .arg("exception", &e.id)
                    .arg("window", w)
                    .arg("today", today);
            }
        }
        let group = ctx.group_name();
        let rule = match (d.port, d.proto) {
            (Some(p), Some(proto)) => ctx.allowance(p, proto),
            _ => None,
        };
        let approved = rule.is_some_and(|a| a.is_justified());
        let allowed_by = rule.map(|r| RuleRef {
            file: policy.file.clone(),
            line: r.line,
        });
        // A finding about the exception itself, beside the one it covers.
        let mut about = |check: CheckKind, e: &Exception, message: String, msg: Message| {
            out.push(Finding {
                id: finding_id(ip, d.port, d.proto, check),
                check: check.as_str().to_string(),
                severity: profiles.check(check).severity,
                ip,
                port: d.port,
                proto: d.proto,
                service: d.service.clone(),
                group: group.clone(),
                evidence: Some(d.evidence.clone()),
                status: FindingStatus::Fail,
                exception: Some(e.id.clone()),
                controls: controls(profiles, ctx, check, approved, d.port.zip(d.proto)),
                remediation: profiles.check(check).remediation.clone(),
                message,
                msg,
                allowed_by: allowed_by.clone(),
            });
        };
        if let Some(e) = lapsed {
            about(
                CheckKind::ExceptionExpired,
                e,
                format!(
                    "exception {} (policy line {}) expired on {}: renew it with a fresh approval, or fix the exposure and remove it",
                    e.id, e.line, e.expires
                ),
                Message::new("msg.exception_expired")
                    .arg("exception", &e.id)
                    .arg("line", e.line)
                    .arg("expires", e.expires),
            );
        }
        if let Some(e) = active
            && let Some((message, msg)) = overlong(e, today, policy.max_exception_months)
        {
            about(CheckKind::ExceptionOverlong, e, message, msg);
        }
        out.push(Finding {
            id: finding_id(ip, d.port, d.proto, d.check),
            check: d.check.as_str().to_string(),
            severity: d.severity,
            ip,
            port: d.port,
            proto: d.proto,
            service: d.service,
            group,
            evidence: Some(d.evidence),
            status,
            exception,
            controls: controls(profiles, ctx, d.check, approved, d.port.zip(d.proto)),
            remediation: profiles.check(d.check).remediation.clone(),
            message,
            msg,
            allowed_by,
        });
    }
}

/// Every exception with its state as of `today`.
pub(super) fn exception_verdicts(policy: &Policy, today: NaiveDate) -> Vec<ExceptionVerdict> {
    policy
        .exceptions
        .iter()
        .map(|e| ExceptionVerdict {
            id: e.id.clone(),
            line: e.line,
            target: e.target_spec.clone(),
            ports: e.ports_label(),
            check: e.check.map(|c| c.as_str().to_string()),
            state: e.state(today).as_str().to_string(),
            expires: e.expires,
            days_left: e.days_left(today),
            review_by: e.review_by,
            approver: e.approver.clone(),
            reason: e.reason.clone(),
        })
        .collect()
}

/// `exception-overlong`: an active exception that runs more than
/// `max_months` past the audit day, or more than six months without a
/// review date within six months (the review rule allowances follow).
fn overlong(e: &Exception, today: NaiveDate, max_months: u32) -> Option<(String, Message)> {
    let limit = today.checked_add_months(Months::new(max_months))?;
    let six = today.checked_add_months(Months::new(6))?;
    let base = |why: &str| {
        Message::new(&format!("msg.exception_overlong.{why}"))
            .arg("exception", &e.id)
            .arg("line", e.line)
            .arg("expires", e.expires)
    };
    if e.expires > limit {
        return Some((
            format!(
                "exception {} (policy line {}) runs until {}, more than {max_months} months ahead: accept a risk for a bounded time, and renew it with a fresh approval",
                e.id, e.line, e.expires
            ),
            base("long").arg("months", max_months),
        ));
    }
    let reviewed = e.review_by.is_some_and(|r| r <= six);
    if e.expires > six && !reviewed {
        return Some((
            format!(
                "exception {} (policy line {}) runs until {} with no review within six months (review_by)",
                e.id, e.line, e.expires
            ),
            base("unreviewed"),
        ));
    }
    None
}
