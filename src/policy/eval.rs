//! Policy layer: the evaluator — observations + policy + profiles → findings
//! and per-profile verdicts.
//!
//! Pure: no I/O and no clock (the caller passes `now`), so the same inputs
//! give the same findings, and the finding ids (a hash of host, port,
//! protocol and check) stay the same from one audit to the next — which is
//! what lets a report say "still open since March".
//!
//! How a host is judged:
//! * in one or more groups: against the union of their allowances, the
//!   group's vantage, cap and profiles (the first group's name labels it);
//! * in no group: against the baseline — high-risk ports, cleartext and
//!   unauthenticated services, every profile — plus one `unmanaged-host`
//!   finding, since nobody declared what it may expose.
//!
//! An allowed port is accepted as documented risk, so `high-risk-exposed`
//! applies only to ports without an allowance; checks about *how* a service
//! is exposed (cleartext, no authentication, internet reachability,
//! certificates) apply whether or not the port is allowed: an exception is
//! the way to accept those.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::catalogue::{PortCatalogue, PortFacts};
use super::config::{AllowRule, Exception, ExceptionState, ExceptionTarget, Group, Policy, Vantage};
use crate::model::{
    AuthStatus, Evidence, Finding, FindingStatus, Observation, PortState, ProfileVerdict, Proto,
    RequirementStatus, RequirementVerdict, Severity,
};
use crate::rules::profiles::{Assessment, CheckCondition, CheckKind, CheckParams, Profiles};

/// The result of evaluating one audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Sorted by host, port, protocol and check.
    pub findings: Vec<Finding>,
    /// One per loaded profile, in profile order.
    pub profiles: Vec<ProfileVerdict>,
}

/// True when any finding that is not waived is at or above `fail_on`: the
/// audit should then exit with the "findings" code.
pub fn gate(findings: &[Finding], fail_on: Severity) -> bool {
    findings
        .iter()
        .any(|f| f.status.is_failing() && f.severity >= fail_on)
}

/// The stable id of a finding: the same host, port, protocol and check give
/// the same id in every audit.
pub fn finding_id(ip: IpAddr, port: Option<u16>, proto: Option<Proto>, check: CheckKind) -> String {
    let key = format!(
        "{ip}|{}|{}|{check}",
        port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        proto.map(|p| p.as_str()).unwrap_or("-"),
    );
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// How the policy sees one host.
struct HostCtx<'a> {
    groups: Vec<&'a Group>,
    vantage: Vantage,
    cap: Option<usize>,
    profiles: Vec<&'a str>,
    tags: Vec<&'a str>,
}

impl<'a> HostCtx<'a> {
    fn new(policy: &'a Policy, profiles: &'a Profiles, ip: IpAddr) -> HostCtx<'a> {
        let groups = policy.groups_of(ip);
        if groups.is_empty() {
            return HostCtx {
                groups,
                vantage: Vantage::Internal,
                cap: None,
                profiles: profiles.ids(),
                tags: Vec::new(),
            };
        }
        // Overlapping groups were checked to agree on vantage and cap.
        let vantage = groups[0].vantage;
        let cap = groups.iter().find_map(|g| g.max_open_ports);
        let declared: BTreeSet<&str> = groups
            .iter()
            .flat_map(|g| g.profiles.iter().map(String::as_str))
            .collect();
        let profiles = profiles
            .ids()
            .into_iter()
            .filter(|p| declared.contains(p))
            .collect();
        let tags = groups
            .iter()
            .flat_map(|g| g.tags.iter().map(String::as_str))
            .collect();
        HostCtx {
            groups,
            vantage,
            cap,
            profiles,
            tags,
        }
    }

    fn managed(&self) -> bool {
        !self.groups.is_empty()
    }

    fn group_name(&self) -> Option<String> {
        self.groups.first().map(|g| g.name.clone())
    }

    fn allowance(&self, port: u16, proto: Proto) -> Option<&'a AllowRule> {
        self.groups
            .iter()
            .flat_map(|g| g.allow.iter())
            .find(|a| a.matches(port, proto))
    }

    fn satisfies(&self, cond: &CheckCondition) -> bool {
        match cond {
            CheckCondition::Always => true,
            CheckCondition::Tag(t) => self.tags.contains(&t.as_str()),
            CheckCondition::Vantage(v) => self.vantage.as_str() == v,
        }
    }
}

/// What is known about the service on an open port.
struct PortView {
    name: Option<String>,
    facts: Option<PortFacts>,
    identified: bool,
    tls: bool,
}

fn view(cat: &dyn PortCatalogue, o: &Observation) -> PortView {
    let registered = cat.port(o.port, o.proto);
    match o.service.as_ref().filter(|s| !s.name.trim().is_empty()) {
        Some(s) => {
            let name = s.name.trim().to_ascii_lowercase();
            let facts = match registered {
                Some(f) if f.service.eq_ignore_ascii_case(&name) => Some(f),
                _ => cat.service(&name),
            };
            PortView {
                name: Some(name),
                facts,
                identified: true,
                tls: s.tls.is_some(),
            }
        }
        None => PortView {
            name: registered.as_ref().map(|f| f.service.to_ascii_lowercase()),
            facts: registered,
            identified: false,
            tls: false,
        },
    }
}

fn selects(params: &CheckParams, v: &PortView) -> bool {
    v.name.as_ref().is_some_and(|n| params.services.contains(n))
        || v
            .facts
            .as_ref()
            .is_some_and(|f| f.tags.iter().any(|t| params.tags.contains(t)))
}

/// `https` is HTTP over TLS; identification may report either.
fn same_service(declared: &str, v: &PortView) -> bool {
    let Some(found) = v.name.as_deref() else {
        return true;
    };
    let strip = |s: &str| s.trim_start_matches("ssl/").to_string();
    let (d, f) = (strip(declared), strip(found));
    d == f || (v.tls && d == "https" && f == "http") || (d == "http" && f == "https")
}

struct Draft {
    check: CheckKind,
    severity: Severity,
    port: Option<u16>,
    proto: Option<Proto>,
    service: Option<String>,
    evidence: Evidence,
    message: String,
}

fn evidence(o: &Observation) -> Evidence {
    Evidence {
        time: o.time,
        state: o.state,
        reason: o.reason,
    }
}

fn port_label(o: &Observation, v: &PortView) -> String {
    match &v.name {
        Some(n) => format!("{}/{} ({n})", o.port, o.proto),
        None => format!("{}/{}", o.port, o.proto),
    }
}

/// The checks of one open port.
fn port_checks(
    ctx: &HostCtx,
    profiles: &Profiles,
    cat: &dyn PortCatalogue,
    o: &Observation,
    today: NaiveDate,
    now: DateTime<Utc>,
    out: &mut Vec<Draft>,
) {
    let v = view(cat, o);
    let label = port_label(o, &v);
    let mut push = |check: CheckKind, severity: Severity, message: String| {
        out.push(Draft {
            check,
            severity,
            port: Some(o.port),
            proto: Some(o.proto),
            service: v.name.clone(),
            evidence: evidence(o),
            message,
        })
    };
    let risk = v.facts.as_ref().map(|f| f.risk);
    let allowance = ctx.allowance(o.port, o.proto);
    let group = ctx.group_name().unwrap_or_default();

    match allowance {
        None => {
            if ctx.managed() {
                let p = profiles.check(CheckKind::NotAllowed);
                let sev = match risk {
                    Some(r) if p.escalate_to_risk => p.severity.max(r),
                    _ => p.severity,
                };
                push(
                    CheckKind::NotAllowed,
                    sev,
                    format!("{label} is open but not allowed for group '{group}'"),
                );
            }
            let p = profiles.check(CheckKind::HighRiskExposed);
            if let Some(r) = risk
                && r >= p.min_risk.unwrap_or(Severity::High)
            {
                push(
                    CheckKind::HighRiskExposed,
                    r,
                    format!("high-risk port {label} (risk {r}) is exposed without an allowance"),
                );
            }
        }
        Some(rule) => {
            if !rule.is_justified() {
                let missing = match (
                    rule.justification.as_deref().is_some_and(|s| !s.trim().is_empty()),
                    rule.approver.as_deref().is_some_and(|s| !s.trim().is_empty()),
                ) {
                    (false, false) => "a justification and an approver",
                    (false, true) => "a justification",
                    _ => "an approver",
                };
                push(
                    CheckKind::AllowedUnjustified,
                    profiles.check(CheckKind::AllowedUnjustified).severity,
                    format!(
                        "{label} is allowed (policy line {}) without {missing}",
                        rule.line
                    ),
                );
            }
            if let Some(due) = rule.review_by
                && due < today
            {
                push(
                    CheckKind::AllowedReviewOverdue,
                    profiles.check(CheckKind::AllowedReviewOverdue).severity,
                    format!(
                        "the allowance of {label} (policy line {}) was due for review on {due}",
                        rule.line
                    ),
                );
            }
            if let Some(declared) = &rule.service
                && v.identified
                && !same_service(declared, &v)
            {
                push(
                    CheckKind::UnexpectedService,
                    profiles.check(CheckKind::UnexpectedService).severity,
                    format!(
                        "{}/{} is allowed for '{declared}' but '{}' answers",
                        o.port,
                        o.proto,
                        v.name.as_deref().unwrap_or("?")
                    ),
                );
            }
        }
    }

    let p = profiles.check(CheckKind::CleartextAdmin);
    if !v.tls && selects(p, &v) {
        push(
            CheckKind::CleartextAdmin,
            p.severity,
            format!("{label} carries credentials and data in cleartext"),
        );
    }
    if ctx.vantage == Vantage::Internet {
        let p = profiles.check(CheckKind::RemoteAdminInternet);
        if selects(p, &v) {
            push(
                CheckKind::RemoteAdminInternet,
                p.severity,
                format!("remote administration {label} is reachable from the internet"),
            );
        }
        let p = profiles.check(CheckKind::DatabaseInternet);
        if selects(p, &v) {
            push(
                CheckKind::DatabaseInternet,
                p.severity,
                format!("database/cache {label} is reachable from the internet"),
            );
        }
        if let Some(tls) = o.service.as_ref().and_then(|s| s.tls.as_ref()) {
            let mut issues = Vec::new();
            if tls.expired || tls.not_after.is_some_and(|t| t < now) {
                match tls.not_after {
                    Some(t) => issues.push(format!("expired on {}", t.date_naive())),
                    None => issues.push("expired".to_string()),
                }
            }
            if tls.self_signed {
                issues.push("self-signed".to_string());
            }
            if !issues.is_empty() {
                push(
                    CheckKind::TlsCert,
                    profiles.check(CheckKind::TlsCert).severity,
                    format!("the certificate of {label} is {}", issues.join(" and ")),
                );
            }
        }
    }
    if o.service.as_ref().is_some_and(|s| s.auth == AuthStatus::None) {
        push(
            CheckKind::UnauthService,
            profiles.check(CheckKind::UnauthService).severity,
            format!("{label} answers commands without authentication"),
        );
    }
}

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
    target && port && check
}

fn controls(profiles: &Profiles, ctx: &HostCtx, check: CheckKind) -> Vec<String> {
    let mut out = Vec::new();
    for p in profiles.profiles() {
        if !ctx.profiles.contains(&p.id.as_str()) {
            continue;
        }
        for r in &p.requirements {
            if let Assessment::Checks(refs) = &r.assessment
                && refs
                    .iter()
                    .any(|c| c.check == check && ctx.satisfies(&c.when))
            {
                out.push(p.control_ref(r));
            }
        }
    }
    out
}

/// Evaluates observations against the policy and the profiles.
///
/// Only the newest observation of each (address, port, protocol) counts.
/// `now` decides expiries, windows and review dates (by its UTC date).
pub fn evaluate(
    policy: &Policy,
    profiles: &Profiles,
    catalogue: &dyn PortCatalogue,
    observations: &[Observation],
    now: DateTime<Utc>,
) -> Evaluation {
    let today = now.date_naive();
    let mut latest: BTreeMap<(IpAddr, u16, Proto), &Observation> = BTreeMap::new();
    for o in observations {
        let e = latest.entry((o.ip, o.port, o.proto)).or_insert(o);
        if o.time >= e.time {
            *e = o;
        }
    }
    // Hosts that answered at all (open or closed) are in scope of their
    // profiles; only open ports produce port findings.
    let mut hosts: BTreeMap<IpAddr, Vec<&Observation>> = BTreeMap::new();
    for o in latest.values() {
        if matches!(o.state, PortState::Open | PortState::Closed) {
            let open = hosts.entry(o.ip).or_default();
            if o.state == PortState::Open {
                open.push(o);
            }
        }
    }

    let mut findings = Vec::new();
    let mut ctxs = Vec::new();
    for (&ip, open) in &hosts {
        let ctx = HostCtx::new(policy, profiles, ip);
        let mut drafts = Vec::new();
        for o in open {
            port_checks(&ctx, profiles, catalogue, o, today, now, &mut drafts);
        }
        if let Some(newest) = open.iter().max_by_key(|o| o.time) {
            let ports = || {
                open.iter()
                    .map(|o| format!("{}/{}", o.port, o.proto))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if let Some(cap) = ctx.cap
                && open.len() > cap
            {
                drafts.push(Draft {
                    check: CheckKind::PortCap,
                    severity: profiles.check(CheckKind::PortCap).severity,
                    port: None,
                    proto: None,
                    service: None,
                    evidence: evidence(newest),
                    message: format!(
                        "{} open ports, above the cap of {cap} for group '{}': {}",
                        open.len(),
                        ctx.group_name().unwrap_or_default(),
                        ports()
                    ),
                });
            }
            if !ctx.managed() {
                drafts.push(Draft {
                    check: CheckKind::UnmanagedHost,
                    severity: profiles.check(CheckKind::UnmanagedHost).severity,
                    port: None,
                    proto: None,
                    service: None,
                    evidence: evidence(newest),
                    message: format!(
                        "{ip} has {} open port(s) ({}) but is in no asset group of {}",
                        open.len(),
                        ports(),
                        policy.file
                    ),
                });
            }
        }
        for d in drafts {
            settle(policy, profiles, &ctx, ip, d, today, &mut findings);
        }
        ctxs.push(ctx);
    }

    findings.sort_by(|a, b| {
        (a.ip, a.port, a.proto, a.check.as_str()).cmp(&(b.ip, b.port, b.proto, b.check.as_str()))
    });
    findings.dedup_by(|a, b| a.id == b.id);
    let verdicts = verdicts(profiles, &ctxs, &findings);
    Evaluation {
        findings,
        profiles: verdicts,
    }
}

/// Applies the exceptions to a draft and records the finding (plus an
/// `exception-expired` finding when a lapsed exception was all that covered it).
fn settle(
    policy: &Policy,
    profiles: &Profiles,
    ctx: &HostCtx,
    ip: IpAddr,
    d: Draft,
    today: NaiveDate,
    out: &mut Vec<Finding>,
) {
    let matching: Vec<&Exception> = policy
        .exceptions
        .iter()
        .filter(|e| exception_matches(e, ctx, ip, &d))
        .collect();
    let by_state = |s: ExceptionState| matching.iter().copied().filter(move |e| e.state(today) == s);
    let mut message = d.message;
    let mut status = FindingStatus::Fail;
    let mut exception = None;
    let mut lapsed = None;
    if let Some(e) = by_state(ExceptionState::Active).max_by_key(|e| e.expires) {
        status = FindingStatus::Waived;
        exception = Some(e.id.clone());
        message = format!(
            "{message} — waived by exception {} until {} ({}; approved by {})",
            e.id, e.expires, e.reason, e.approver
        );
    } else if let Some(e) = by_state(ExceptionState::Expired).max_by_key(|e| e.expires) {
        status = FindingStatus::ExpiredWaiver;
        exception = Some(e.id.clone());
        message = format!("{message} — exception expired on {} ({})", e.expires, e.id);
        lapsed = Some(e);
    } else if let Some(e) = by_state(ExceptionState::OutsideWindow).next() {
        exception = Some(e.id.clone());
        if let Some(w) = e.window {
            message = format!(
                "{message} — exception {} applies only in its window ({w}); {today} is outside it",
                e.id
            );
        }
    }
    let group = ctx.group_name();
    if let Some(e) = lapsed {
        let check = CheckKind::ExceptionExpired;
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
            controls: controls(profiles, ctx, check),
            remediation: profiles.check(check).remediation.clone(),
            message: format!(
                "exception {} (policy line {}) expired on {}: renew it with a fresh approval, or fix the exposure and remove it",
                e.id, e.line, e.expires
            ),
        });
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
        controls: controls(profiles, ctx, d.check),
        remediation: profiles.check(d.check).remediation.clone(),
        message,
    });
}

fn verdicts(profiles: &Profiles, ctxs: &[HostCtx], findings: &[Finding]) -> Vec<ProfileVerdict> {
    let mut out = Vec::new();
    for p in profiles.profiles() {
        let scope: Vec<&HostCtx> = ctxs
            .iter()
            .filter(|c| c.profiles.contains(&p.id.as_str()))
            .collect();
        let mut reqs = Vec::new();
        for r in &p.requirements {
            let (status, reason, ids) = match &r.assessment {
                Assessment::NotAssessed { reason } => {
                    (RequirementStatus::NotAssessed, Some(reason.clone()), vec![])
                }
                Assessment::Checks(refs) => {
                    let applicable = scope
                        .iter()
                        .any(|c| refs.iter().any(|x| c.satisfies(&x.when)));
                    if scope.is_empty() {
                        (
                            RequirementStatus::NotAssessed,
                            Some("no audited host is in a group that declares this profile".into()),
                            vec![],
                        )
                    } else if !applicable {
                        (
                            RequirementStatus::NotAssessed,
                            Some(
                                "no audited host in scope meets the condition of its checks (tag or vantage)"
                                    .into(),
                            ),
                            vec![],
                        )
                    } else {
                        let key = p.control_ref(r);
                        let ids: Vec<String> = findings
                            .iter()
                            .filter(|f| f.status.is_failing() && f.controls.contains(&key))
                            .map(|f| f.id.clone())
                            .collect();
                        let status = if ids.is_empty() {
                            RequirementStatus::Pass
                        } else {
                            RequirementStatus::Fail
                        };
                        (status, None, ids)
                    }
                }
            };
            reqs.push(RequirementVerdict {
                id: r.id.clone(),
                title_en: r.title_en.clone(),
                title_zh: r.title_zh.clone(),
                status,
                confirmed: r.confirmed,
                reason,
                findings: ids,
            });
        }
        let count = |s| reqs.iter().filter(|r| r.status == s).count();
        let passed = count(RequirementStatus::Pass);
        let failed = count(RequirementStatus::Fail);
        out.push(ProfileVerdict {
            profile: p.id.clone(),
            name: p.name.clone(),
            passed,
            failed,
            not_assessed: count(RequirementStatus::NotAssessed),
            score: (passed + failed > 0).then(|| passed as f64 / (passed + failed) as f64),
            requirements: reqs,
        });
    }
    out
}
