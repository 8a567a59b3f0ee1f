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
use super::config::{
    AllowRule, ChangeState, Exception, ExceptionState, ExceptionTarget, Group, Policy, Vantage,
};
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

/// Identification's own threshold between "identified" and "guessed from
/// the port number" (`identify` reports a guess for every open port).
const IDENTIFIED_CONFIDENCE: f32 = 0.5;

fn view(cat: &dyn PortCatalogue, o: &Observation) -> PortView {
    let registered = cat.port(o.port, o.proto);
    // A TLS handshake is a fact even when the service behind it is unknown.
    let tls = o.service.as_ref().is_some_and(|s| s.tls.is_some());
    let identified = o
        .service
        .as_ref()
        .filter(|s| s.confidence >= IDENTIFIED_CONFIDENCE && !s.name.trim().is_empty());
    match identified {
        Some(s) => {
            let name = s.name.trim().to_ascii_lowercase();
            // The port's own entry when it names the same service (http on
            // 8080 keeps 8080's risk), else wherever the service is registered.
            let facts = match registered {
                Some(f) if same_service(&f.service, &name) => Some(f),
                _ => cat.service(&name),
            };
            PortView {
                name: Some(name),
                facts,
                identified: true,
                tls,
            }
        }
        None => PortView {
            name: registered.as_ref().map(|f| f.service.to_ascii_lowercase()),
            facts: registered,
            identified: false,
            tls,
        },
    }
}

fn selects(params: &CheckParams, v: &PortView) -> bool {
    v.name.as_ref().is_some_and(|n| params.services.contains(n))
        || v.facts.as_ref().is_some_and(|f| {
            params.tags.iter().any(|want| {
                want.split('+')
                    .all(|t| f.tags.iter().any(|h| h.eq_ignore_ascii_case(t.trim())))
            })
        })
}

/// Names agree when identification's own rule says so (`https` is `http`,
/// `-alt` variants, common aliases), so the policy and the identify report
/// never disagree about what counts as a surprise.
fn same_service(a: &str, b: &str) -> bool {
    crate::identify::same_service(a, b)
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
                    rule.justification
                        .as_deref()
                        .is_some_and(|s| !s.trim().is_empty()),
                    rule.approver
                        .as_deref()
                        .is_some_and(|s| !s.trim().is_empty()),
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
                && v.name
                    .as_deref()
                    .is_some_and(|n| !same_service(declared, n))
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
    if o.service
        .as_ref()
        .is_some_and(|s| s.auth == AuthStatus::None)
    {
        push(
            CheckKind::UnauthService,
            profiles.check(CheckKind::UnauthService).severity,
            format!("{label} answers commands without authentication"),
        );
    }
    // UDP-only checks (amplifiers, default SNMP communities): see policy::udp.
    for (check, message) in super::udp::udp_checks(o, &label) {
        push(check, profiles.check(check).severity, message);
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

/// What the audit history knows of the previous run of the same scope:
/// the ports open then. A port open now and not then is a change, which an
/// approved `[[change]]` record (or a justified allowance) must cover.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Baseline {
    /// The previous run's id in the history.
    pub run: i64,
    pub open: BTreeSet<(IpAddr, u16, Proto)>,
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
    evaluate_with_history(policy, profiles, catalogue, observations, now, None)
}

/// [`evaluate`], plus the change checks that need the previous run of the
/// same scope. Without a baseline, requirements judged only by
/// `unapproved-change` are `not-assessed` (one audit cannot see drift).
pub fn evaluate_with_history(
    policy: &Policy,
    profiles: &Profiles,
    catalogue: &dyn PortCatalogue,
    observations: &[Observation],
    now: DateTime<Utc>,
    baseline: Option<&Baseline>,
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
            change_checks(
                policy,
                &ctx,
                profiles,
                catalogue,
                o,
                today,
                baseline,
                &mut drafts,
            );
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
    let verdicts = verdicts(profiles, &ctxs, &findings, baseline.is_some());
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
    let by_state = |s: ExceptionState| {
        matching
            .iter()
            .copied()
            .filter(move |e| e.state(today) == s)
    };
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

/// `unapproved-change`: a port opened since the previous run that no active
/// change record (nor a justified allowance) covers, and a port a temporary
/// change opened that is still open after the change's window.
#[allow(clippy::too_many_arguments)]
fn change_checks(
    policy: &Policy,
    ctx: &HostCtx,
    profiles: &Profiles,
    cat: &dyn PortCatalogue,
    o: &Observation,
    today: NaiveDate,
    baseline: Option<&Baseline>,
    out: &mut Vec<Draft>,
) {
    let groups: Vec<&str> = ctx.groups.iter().map(|g| g.name.as_str()).collect();
    let covering: Vec<_> = policy
        .changes
        .iter()
        .filter(|c| c.targets(o.ip, &groups) && c.opens_port(o.port, o.proto))
        .collect();
    if covering
        .iter()
        .any(|c| c.state(today) == ChangeState::Active)
    {
        return;
    }
    let allowed = ctx
        .allowance(o.port, o.proto)
        .is_some_and(|a| a.is_justified());
    let v = view(cat, o);
    let label = port_label(o, &v);
    let ended = covering
        .iter()
        .filter(|c| c.state(today) == ChangeState::Ended)
        .max_by_key(|c| c.until);
    let message = match baseline {
        Some(b) if !b.open.contains(&(o.ip, o.port, o.proto)) && !allowed => {
            let why = if let Some(c) = ended {
                format!(
                    "change {} covered it only until {}",
                    c.ticket,
                    c.until.unwrap_or(today)
                )
            } else if let Some(c) = covering.first() {
                format!(
                    "change {} is approved from {} only",
                    c.ticket,
                    c.from.unwrap_or(c.approved).max(c.approved)
                )
            } else {
                "no approved [[change]] record covers it".to_string()
            };
            format!(
                "{label} on {} opened since run {} of this scope; {why}: record the approved change in the policy, or close the port",
                o.ip, b.run
            )
        }
        _ => match ended {
            Some(c) if !allowed => format!(
                "{label} on {} is still open after temporary change {} ended on {}: close it, or record a new approved change",
                o.ip,
                c.ticket,
                c.until.unwrap_or(today)
            ),
            _ => return,
        },
    };
    let check = CheckKind::UnapprovedChange;
    out.push(Draft {
        check,
        severity: profiles.check(check).severity,
        port: Some(o.port),
        proto: Some(o.proto),
        service: v.name.clone(),
        evidence: evidence(o),
        message,
    });
}

fn verdicts(
    profiles: &Profiles,
    ctxs: &[HostCtx],
    findings: &[Finding],
    history: bool,
) -> Vec<ProfileVerdict> {
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
                Assessment::Checks(all) => {
                    // Drift needs a previous run: without one, the change
                    // check has judged nothing.
                    let refs: Vec<_> = all
                        .iter()
                        .filter(|x| history || x.check != CheckKind::UnapprovedChange)
                        .collect();
                    let applicable = scope
                        .iter()
                        .any(|c| refs.iter().any(|x| c.satisfies(&x.when)));
                    if refs.is_empty() {
                        (
                            RequirementStatus::NotAssessed,
                            Some(
                                "needs the audit history: no previous run of this scope to compare with (drift)"
                                    .into(),
                            ),
                            vec![],
                        )
                    } else if scope.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Reason, ServiceInfo, TlsInfo};
    use crate::policy::StaticCatalogue;

    const POLICY: &str = r#"
[[group]]
name = "cardholder"
targets = ["198.18.0.0/28"]
tags = ["cardholder"]
profiles = ["pci-dss-4.0", "mlps2-level3"]
max_open_ports = 3

[[group.allow]]
port = 443
service = "https"
justification = "payment API"
approver = "ciso"
review_by = 2027-01-31

[[group.allow]]
port = 22
justification = "admin from the jump host"
review_by = 2026-06-30

[[group.allow]]
port = 5432
service = "postgresql"
justification = "card vault"
approver = "ciso"

[[group]]
name = "dmz"
targets = ["198.18.0.16/28"]
vantage = "internet"
profiles = ["pci-dss-4.0", "iso27001-2022", "cis-v8", "nist-800-53r5"]

[[group.allow]]
port = 443
service = "https"
justification = "web site"
approver = "lead"

[[group.allow]]
port = 22
service = "ssh"
justification = "admin"
approver = "lead"

[[group.allow]]
port = 80
justification = "redirect to HTTPS"
approver = "lead"

[[group]]
name = "ot"
targets = ["198.18.0.32/28"]
profiles = ["mlps2-level3"]
max_open_ports = 2

[[group.allow]]
port = 502
justification = "SCADA polling"
approver = "ot-sec"

[[exception]]
id = "RISK-1"
target = "198.18.0.33"
port = 23
reason = "legacy PLC"
approver = "ot-sec"
expires = 2027-06-30

[[exception]]
id = "RISK-2"
target = "198.18.0.2"
port = 3389
reason = "vendor support"
approver = "ciso"
expires = 2026-10-31

[[exception]]
id = "RISK-3"
target = "dmz"
port = 6379
check = "database-internet"
reason = "month-end batch"
approver = "ciso"
expires = 2027-12-31
window = { every = "month", days = "25-31" }
"#;

    fn catalogue() -> StaticCatalogue {
        use Severity::*;
        StaticCatalogue::new()
            .with(22, Proto::Tcp, "ssh", Medium, &["remote-admin"])
            .with(
                23,
                Proto::Tcp,
                "telnet",
                High,
                &["cleartext", "remote-admin"],
            )
            .with(443, Proto::Tcp, "https", Low, &[])
            .with(80, Proto::Tcp, "http", Low, &["web", "cleartext"])
            .with(445, Proto::Tcp, "microsoft-ds", Critical, &[])
            .with(502, Proto::Tcp, "modbus", High, &["ot"])
            .with(3389, Proto::Tcp, "rdp", High, &["remote-admin"])
            .with(5432, Proto::Tcp, "postgresql", High, &["database"])
            .with(6379, Proto::Tcp, "redis", High, &["database", "cache"])
    }

    fn at(day: &str) -> DateTime<Utc> {
        format!("{day}T12:00:00Z").parse().unwrap()
    }

    fn obs(ip: &str, port: u16, reason: Reason, service: Option<ServiceInfo>) -> Observation {
        let mut o = Observation::new(ip.parse().unwrap(), port, Proto::Tcp, reason, Some(1.0));
        o.time = "2026-11-24T08:00:00Z".parse().unwrap();
        o.service = service;
        o
    }

    fn svc(name: &str) -> Option<ServiceInfo> {
        Some(ServiceInfo {
            name: name.into(),
            confidence: 1.0,
            ..Default::default()
        })
    }

    fn observations() -> Vec<Observation> {
        use Reason::{ConnRefused, Connected, NoResponse, SynAck};
        let mut stale = obs("198.18.0.17", 443, ConnRefused, None);
        stale.time = "2026-11-01T00:00:00Z".parse().unwrap();
        let tls = |self_signed| {
            let mut s = svc("https").unwrap();
            s.tls = Some(TlsInfo {
                self_signed,
                ..Default::default()
            });
            Some(s)
        };
        let mut redis = svc("redis").unwrap();
        redis.auth = AuthStatus::None;
        vec![
            obs("198.18.0.2", 443, SynAck, tls(false)),
            obs("198.18.0.2", 22, SynAck, svc("ssh")),
            obs("198.18.0.2", 3389, SynAck, None),
            obs("198.18.0.2", 5432, SynAck, svc("postgresql")),
            obs("198.18.0.2", 80, ConnRefused, None),
            obs("198.18.0.3", 443, SynAck, svc("ssh")),
            obs("198.18.0.17", 22, Connected, svc("ssh")),
            obs("198.18.0.17", 80, Connected, svc("http")),
            obs("198.18.0.17", 443, Connected, tls(true)),
            stale,
            obs("198.18.0.17", 6379, Connected, Some(redis)),
            obs("198.18.0.33", 502, SynAck, None),
            obs("198.18.0.33", 23, SynAck, svc("telnet")),
            obs("198.18.0.33", 2323, SynAck, svc("telnet")),
            obs("198.18.0.99", 445, SynAck, None),
            obs("198.18.0.99", 80, ConnRefused, None),
            obs("198.18.0.200", 22, NoResponse, None),
        ]
    }

    fn run(day: &str) -> Evaluation {
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(POLICY, "policy.toml", &profiles).unwrap();
        evaluate(&policy, &profiles, &catalogue(), &observations(), at(day))
    }

    fn brief(f: &Finding) -> String {
        let port = f.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        format!("{} {port} {} {} {}", f.ip, f.check, f.status, f.severity)
    }

    fn find<'a>(e: &'a Evaluation, ip: &str, port: Option<u16>, check: &str) -> &'a Finding {
        let ip: IpAddr = ip.parse().unwrap();
        e.findings
            .iter()
            .find(|f| f.ip == ip && f.port == port && f.check == check)
            .unwrap_or_else(|| panic!("no {check} on {ip}:{port:?}"))
    }

    #[test]
    fn every_check_kind_with_exact_statuses() {
        let e = run("2026-11-24");
        let got: Vec<String> = e.findings.iter().map(brief).collect();
        assert_eq!(
            got,
            [
                "198.18.0.2 - port-cap fail medium",
                "198.18.0.2 22 allowed-review-overdue fail low",
                "198.18.0.2 22 allowed-unjustified fail low",
                "198.18.0.2 3389 exception-expired fail medium",
                "198.18.0.2 3389 high-risk-exposed expired-waiver high",
                "198.18.0.2 3389 not-allowed expired-waiver high",
                "198.18.0.3 443 unexpected-service fail medium",
                "198.18.0.17 22 remote-admin-internet fail high",
                "198.18.0.17 443 tls-cert fail medium",
                "198.18.0.17 6379 database-internet fail critical",
                "198.18.0.17 6379 high-risk-exposed fail high",
                "198.18.0.17 6379 not-allowed fail high",
                "198.18.0.17 6379 unauth-service fail critical",
                "198.18.0.33 - port-cap fail medium",
                "198.18.0.33 23 cleartext-admin waived high",
                "198.18.0.33 23 high-risk-exposed waived high",
                "198.18.0.33 23 not-allowed waived high",
                "198.18.0.33 2323 cleartext-admin fail high",
                "198.18.0.33 2323 high-risk-exposed fail high",
                "198.18.0.33 2323 not-allowed fail high",
                "198.18.0.99 - unmanaged-host fail medium",
                "198.18.0.99 445 high-risk-exposed fail critical",
            ]
        );
        let kinds: BTreeSet<&str> = e.findings.iter().map(|f| f.check.as_str()).collect();
        // All but `unapproved-change`, which needs a baseline (see below),
        // and the two UDP checks (tested in policy::udp).
        assert_eq!(kinds.len(), CheckKind::ALL.len() - 3);
    }

    #[test]
    fn unapproved_change_needs_a_baseline_and_no_change_record() {
        let text = r#"
[[group]]
name = "web"
targets = ["198.18.0.0/28"]
profiles = ["pci-dss-4.0", "mlps2-level3", "iso27001-2022"]

[[group.allow]]
port = 443
justification = "web"
approver = "ciso"

[[change]]
ticket = "CHG-1"
approver = "cab"
approved = 2026-11-20
target = "198.18.0.5"
opens = [8443]

[[change]]
ticket = "CHG-2"
approver = "cab"
approved = 2026-11-01
target = "web"
opens = ["9000-9001"]
window = { from = 2026-11-02, until = 2026-11-10 }

[[change]]
ticket = "CHG-3"
approver = "cab"
approved = 2026-12-01
target = "198.18.0.5"
opens = [7000]
"#;
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(text, "p.toml", &profiles).unwrap();
        let o = vec![
            obs("198.18.0.5", 443, Reason::Connected, None),
            obs("198.18.0.5", 8443, Reason::Connected, None),
            obs("198.18.0.5", 9000, Reason::Connected, None),
            obs("198.18.0.5", 7000, Reason::Connected, None),
            obs("198.18.0.5", 8080, Reason::Connected, None),
        ];
        let changes = |e: &Evaluation| {
            e.findings
                .iter()
                .filter(|f| f.check == "unapproved-change")
                .map(|f| format!("{} {}", f.port.unwrap(), f.message))
                .collect::<Vec<_>>()
        };
        let req = |e: &Evaluation, p: &str, id: &str| {
            let v = e.profiles.iter().find(|v| v.profile == p).unwrap();
            let r = v.requirements.iter().find(|r| r.id == id).unwrap();
            (r.status, r.reason.clone())
        };
        // No history: only the temporary change past its window counts, and
        // requirements judged by drift alone are not assessed.
        let e = evaluate(&policy, &profiles, &catalogue(), &o, at("2026-11-24"));
        assert_eq!(
            changes(&e),
            [
                "9000 9000/tcp on 198.18.0.5 is still open after temporary change CHG-2 ended on 2026-11-10: close it, or record a new approved change"
            ]
        );
        assert_eq!(
            req(&e, "pci-dss-4.0", "1.2.2"),
            (
                RequirementStatus::NotAssessed,
                Some("needs the audit history: no previous run of this scope to compare with (drift)".into())
            )
        );
        // ISO A.8.32 is also judged by exception-expired: assessed, and the
        // unapproved-change finding of CHG-2 fails it.
        assert_eq!(
            req(&e, "iso27001-2022", "A.8.32").0,
            RequirementStatus::Fail
        );

        // With a baseline where only 443 was open: 8443 is approved by
        // CHG-1, 9000's window ended, 7000's change is not yet in force,
        // 8080 has no record at all.
        let b = Baseline {
            run: 4,
            open: [("198.18.0.5".parse().unwrap(), 443, Proto::Tcp)]
                .into_iter()
                .collect(),
        };
        let e = evaluate_with_history(
            &policy,
            &profiles,
            &catalogue(),
            &o,
            at("2026-11-24"),
            Some(&b),
        );
        assert_eq!(
            changes(&e),
            [
                "7000 7000/tcp on 198.18.0.5 opened since run 4 of this scope; change CHG-3 is approved from 2026-12-01 only: record the approved change in the policy, or close the port",
                "8080 8080/tcp on 198.18.0.5 opened since run 4 of this scope; no approved [[change]] record covers it: record the approved change in the policy, or close the port",
                "9000 9000/tcp on 198.18.0.5 opened since run 4 of this scope; change CHG-2 covered it only until 2026-11-10: record the approved change in the policy, or close the port",
            ]
        );
        let f = find(&e, "198.18.0.5", Some(8080), "unapproved-change");
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.remediation, "approve-or-revert-change");
        assert_eq!(
            f.controls,
            [
                "pci-dss-4.0:1.2.2",
                "pci-dss-4.0:6.5.1",
                "iso27001-2022:A.8.32",
                "mlps2-level3:8.1.10.6",
                "mlps2-level3:8.1.10.10 a)",
                "mlps2-level3:8.1.10.10 b)",
            ]
        );
        assert_eq!(req(&e, "pci-dss-4.0", "1.2.2").0, RequirementStatus::Fail);
        // Everything open before: nothing drifted, the requirement passes.
        let b = Baseline {
            run: 4,
            open: o.iter().map(|o| (o.ip, o.port, o.proto)).collect(),
        };
        let mut o2 = o.clone();
        o2.retain(|x| x.port != 9000);
        let e = evaluate_with_history(
            &policy,
            &profiles,
            &catalogue(),
            &o2,
            at("2026-11-24"),
            Some(&b),
        );
        assert!(changes(&e).is_empty());
        assert_eq!(req(&e, "pci-dss-4.0", "1.2.2").0, RequirementStatus::Pass);
    }

    #[test]
    fn control_refs_are_exact() {
        let e = run("2026-11-24");
        assert_eq!(
            find(&e, "198.18.0.2", Some(3389), "not-allowed").controls,
            [
                "pci-dss-4.0:1.2.5",
                "pci-dss-4.0:1.3.1",
                "pci-dss-4.0:2.2.4",
                "mlps2-level3:8.1.3.2 a)",
                "mlps2-level3:8.1.4.4 b)",
            ]
        );
        // Internet vantage: 1.4.2 instead of 1.3.1 (no cardholder tag).
        assert_eq!(
            find(&e, "198.18.0.17", Some(6379), "not-allowed").controls,
            [
                "pci-dss-4.0:1.2.5",
                "pci-dss-4.0:1.4.2",
                "pci-dss-4.0:2.2.4",
                "iso27001-2022:A.8.20",
                "iso27001-2022:A.8.21",
                "cis-v8:4.4",
                "cis-v8:4.8",
                "cis-v8:13.9",
                "nist-800-53r5:CM-7 b",
                "nist-800-53r5:SC-7(5)",
            ]
        );
        assert_eq!(
            find(&e, "198.18.0.2", Some(3389), "exception-expired").controls,
            [
                "pci-dss-4.0:1.2.5",
                "pci-dss-4.0:1.2.7",
                "mlps2-level3:8.1.10.10 a)"
            ]
        );
        assert_eq!(
            find(&e, "198.18.0.17", Some(22), "remote-admin-internet").controls,
            [
                "pci-dss-4.0:1.4.1",
                "pci-dss-4.0:1.4.2",
                "iso27001-2022:A.8.20",
                "iso27001-2022:A.8.22",
                "cis-v8:12.2",
                "cis-v8:13.4",
                "nist-800-53r5:AC-17",
                "nist-800-53r5:SC-7",
            ]
        );
        assert_eq!(
            find(&e, "198.18.0.33", Some(2323), "cleartext-admin").controls,
            ["mlps2-level3:8.1.4.1 c)"]
        );
        assert_eq!(
            find(&e, "198.18.0.2", Some(22), "allowed-unjustified").controls,
            ["pci-dss-4.0:1.2.5", "mlps2-level3:8.1.3.2 b)"]
        );
        assert_eq!(
            find(&e, "198.18.0.99", None, "unmanaged-host").controls,
            [
                "pci-dss-4.0:1.2.4",
                "pci-dss-4.0:12.5.1",
                "iso27001-2022:A.5.9",
                "mlps2-level3:8.1.10.2 a)",
                "cis-v8:1.1",
                "nist-800-53r5:CM-8",
            ]
        );
        assert_eq!(
            find(&e, "198.18.0.17", Some(6379), "unauth-service").controls,
            [
                "pci-dss-4.0:2.2.2",
                "pci-dss-4.0:8.2.1",
                "iso27001-2022:A.8.5",
                "cis-v8:4.7",
                "nist-800-53r5:AC-3",
                "nist-800-53r5:IA-2",
            ]
        );
    }

    #[test]
    fn messages_evidence_and_remediation() {
        let e = run("2026-11-24");
        let f = find(&e, "198.18.0.2", Some(3389), "not-allowed");
        assert_eq!(
            f.message,
            "3389/tcp (rdp) is open but not allowed for group 'cardholder' — exception expired on 2026-10-31 (RISK-2)"
        );
        assert_eq!(f.exception.as_deref(), Some("RISK-2"));
        assert_eq!(f.remediation, "close-port");
        assert_eq!(f.group.as_deref(), Some("cardholder"));
        let ev = f.evidence.as_ref().unwrap();
        assert_eq!((ev.state, ev.reason), (PortState::Open, Reason::SynAck));
        assert_eq!(
            find(&e, "198.18.0.2", Some(3389), "exception-expired").message,
            "exception RISK-2 (policy line 69) expired on 2026-10-31: renew it with a fresh approval, or fix the exposure and remove it"
        );
        assert_eq!(
            find(&e, "198.18.0.17", Some(6379), "database-internet").message,
            "database/cache 6379/tcp (redis) is reachable from the internet — exception RISK-3 applies only in its window (days 25-31 of each month); 2026-11-24 is outside it"
        );
        assert_eq!(
            find(&e, "198.18.0.2", None, "port-cap").message,
            "4 open ports, above the cap of 3 for group 'cardholder': 22/tcp, 443/tcp, 3389/tcp, 5432/tcp"
        );
        assert_eq!(
            find(&e, "198.18.0.3", Some(443), "unexpected-service").message,
            "443/tcp is allowed for 'https' but 'ssh' answers"
        );
        assert_eq!(
            find(&e, "198.18.0.17", Some(443), "tls-cert").message,
            "the certificate of 443/tcp (https) is self-signed"
        );
        assert_eq!(
            find(&e, "198.18.0.2", Some(22), "allowed-review-overdue").message,
            "the allowance of 22/tcp (ssh) (policy line 16) was due for review on 2026-06-30"
        );
        assert!(
            find(&e, "198.18.0.33", Some(23), "cleartext-admin")
                .message
                .ends_with(
                    "— waived by exception RISK-1 until 2027-06-30 (legacy PLC; approved by ot-sec)"
                )
        );
        assert_eq!(find(&e, "198.18.0.99", None, "unmanaged-host").group, None);
    }

    #[test]
    fn window_and_expiry_follow_the_clock() {
        // Inside RISK-3's window (day 26): waived.
        let e = run("2026-11-26");
        let f = find(&e, "198.18.0.17", Some(6379), "database-internet");
        assert_eq!(f.status, FindingStatus::Waived);
        // Other checks on that port are not covered: RISK-3 names one check.
        assert_eq!(
            find(&e, "198.18.0.17", Some(6379), "unauth-service").status,
            FindingStatus::Fail
        );
        // After RISK-1 expires the telnet port fails again, with the date.
        let e = run("2027-07-01");
        let f = find(&e, "198.18.0.33", Some(23), "cleartext-admin");
        assert_eq!(f.status, FindingStatus::ExpiredWaiver);
        assert!(
            f.message
                .ends_with("— exception expired on 2027-06-30 (RISK-1)"),
            "{}",
            f.message
        );
        assert_eq!(
            find(&e, "198.18.0.33", Some(23), "exception-expired").status,
            FindingStatus::Fail
        );
        // On its last day it still holds.
        let e = run("2027-06-30");
        assert_eq!(
            find(&e, "198.18.0.33", Some(23), "cleartext-admin").status,
            FindingStatus::Waived
        );
    }

    #[test]
    fn ids_are_stable() {
        let a = run("2026-11-24");
        let b = run("2026-11-26");
        let id = |e: &Evaluation| find(e, "198.18.0.2", Some(3389), "not-allowed").id.clone();
        assert_eq!(id(&a), id(&b));
        assert_eq!(
            id(&a),
            finding_id(
                "198.18.0.2".parse().unwrap(),
                Some(3389),
                Some(Proto::Tcp),
                CheckKind::NotAllowed
            )
        );
        assert_eq!(id(&a).len(), 16);
        assert_ne!(
            id(&a),
            finding_id(
                "198.18.0.2".parse().unwrap(),
                Some(3389),
                Some(Proto::Tcp),
                CheckKind::HighRiskExposed
            )
        );
    }

    #[test]
    fn profile_verdicts() {
        let e = run("2026-11-24");
        let pci = &e.profiles[0];
        assert_eq!(pci.profile, "pci-dss-4.0");
        let req = |id: &str| pci.requirements.iter().find(|r| r.id == id).unwrap();
        assert_eq!(req("1.2.8").status, RequirementStatus::NotAssessed);
        assert_eq!(req("2.2.7").status, RequirementStatus::Pass);
        let r = req("1.3.1");
        assert_eq!(r.status, RequirementStatus::Fail);
        assert_eq!(
            r.findings,
            [
                find(&e, "198.18.0.2", Some(3389), "not-allowed").id.clone(),
                find(&e, "198.18.0.17", Some(6379), "database-internet")
                    .id
                    .clone(),
            ]
        );
        assert!(!req("4.2.1").confirmed);
        assert_eq!(req("4.2.1").status, RequirementStatus::Fail);
        assert_eq!((pci.passed, pci.failed, pci.not_assessed), (1, 14, 7));
        assert_eq!(pci.score, Some(1.0 / 15.0));
        // Waived findings do not fail a requirement: only 198.18.0.33 (ot) is
        // in MLPS scope with cleartext, and 2323 fails.
        let mlps = &e.profiles[2];
        let c = mlps
            .requirements
            .iter()
            .find(|r| r.id == "8.1.4.1 c)")
            .unwrap();
        assert_eq!(
            c.findings,
            [find(&e, "198.18.0.33", Some(2323), "cleartext-admin")
                .id
                .clone()]
        );
    }

    #[test]
    fn profile_without_hosts_is_not_assessed() {
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(
            "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nprofiles = [\"cis-v8\"]\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let o = vec![obs("198.18.0.1", 443, Reason::ConnRefused, None)];
        let e = evaluate(&policy, &profiles, &catalogue(), &o, at("2026-11-24"));
        assert!(e.findings.is_empty());
        let pci = &e.profiles[0];
        assert_eq!(pci.passed + pci.failed, 0);
        assert_eq!(pci.score, None);
        assert_eq!(
            pci.requirements[4].reason.as_deref(),
            Some("no audited host is in a group that declares this profile")
        );
        let cis = &e.profiles[3];
        assert_eq!((cis.passed, cis.failed), (8, 0));
        assert_eq!(cis.score, Some(1.0));
    }

    #[test]
    fn gate_ignores_waived_findings() {
        let e = run("2026-11-24");
        assert!(gate(&e.findings, Severity::Critical));
        let waived: Vec<Finding> = e
            .findings
            .iter()
            .filter(|f| f.status == FindingStatus::Waived)
            .cloned()
            .collect();
        assert_eq!(waived.len(), 3);
        assert!(!gate(&waived, Severity::Info));
        let low: Vec<Finding> = e
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Low)
            .cloned()
            .collect();
        assert!(gate(&low, Severity::Low));
        assert!(!gate(&low, Severity::Medium));
    }

    #[test]
    fn real_catalogue_http_is_not_cleartext_admin_but_telnet_anywhere_is() {
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(
            "[[group]]\nname = \"web\"\ntargets = [\"198.18.0.0/28\"]\nprofiles = [\"cis-v8\"]\n[[group.allow]]\nport = 80\njustification = \"web\"\napprover = \"lead\"\n[[group.allow]]\nport = 2323\njustification = \"odd\"\napprover = \"lead\"\n[[group.allow]]\nport = 8022\njustification = \"odd\"\napprover = \"lead\"\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let o = vec![
            obs("198.18.0.1", 80, Reason::SynAck, svc("http")),
            obs("198.18.0.1", 8022, Reason::SynAck, svc("telnet")),
            obs("198.18.0.1", 2323, Reason::SynAck, svc("ssh")),
        ];
        let cat = crate::rules::Catalogue::embedded();
        let e = evaluate(&policy, &profiles, &cat, &o, at("2026-11-24"));
        let got: Vec<String> = e.findings.iter().map(brief).collect();
        assert_eq!(got, ["198.18.0.1 8022 cleartext-admin fail high"]);
        assert_eq!(e.findings[0].controls, ["cis-v8:3.10"]);
    }

    #[test]
    fn guesses_from_identification_are_not_identifications() {
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(
            "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group.allow]]\nport = 443\nservice = \"https\"\njustification = \"web\"\napprover = \"lead\"\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let guess = |name: &str, confidence: f32| {
            Some(ServiceInfo {
                name: name.into(),
                confidence,
                ..Default::default()
            })
        };
        let o = vec![
            obs("198.18.0.1", 443, Reason::SynAck, guess("unknown", 0.0)),
            obs("198.18.0.1", 6379, Reason::SynAck, guess("unknown", 0.2)),
            obs("198.18.0.2", 443, Reason::SynAck, guess("http", 0.9)),
        ];
        let e = evaluate(&policy, &profiles, &catalogue(), &o, at("2026-11-24"));
        let got: Vec<String> = e.findings.iter().map(brief).collect();
        assert_eq!(
            got,
            [
                "198.18.0.1 6379 high-risk-exposed fail high",
                "198.18.0.1 6379 not-allowed fail high",
            ]
        );
        assert_eq!(e.findings[0].service.as_deref(), Some("redis"));
    }
}
