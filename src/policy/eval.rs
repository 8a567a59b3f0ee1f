//! Policy layer: the evaluator — observations + policy + profiles → findings,
//! a verdict per open port, what each check covered, and per-profile verdicts.
//!
//! Pure: no I/O and no clock (the caller passes `now`), so the same inputs
//! give the same findings, and the finding ids (a hash of host, port,
//! protocol and check) stay the same from one audit to the next — which is
//! what lets a report say "still open since March".
//!
//! How a host is judged:
//! * in one or more groups: against the union of their allowances, the
//!   group's vantage, cap and profiles (the first group's name labels it);
//!   a group with `expect = "unreachable"` is a segmentation test: any open
//!   or closed port there is a `segmentation-breach`;
//! * in no group: against the baseline — high-risk ports, cleartext and
//!   unauthenticated services, the policy's `baseline_profiles` — plus one
//!   `unmanaged-host` finding, since nobody declared what it may expose.
//!
//! An allowed port is accepted as documented risk, so `high-risk-exposed`
//! applies only to ports without an allowance; checks about *how* a service
//! is exposed (cleartext, no authentication, internet reachability,
//! certificates) apply whether or not the port is allowed: an exception is
//! the way to accept those.
//!
//! A requirement passes only on evidence: every check mapped to it ran over
//! at least one in-scope host with the data it needs (identification for
//! unauth/tls/unexpected-service, a previous run for drift, an internet
//! vantage for the internet checks, a declared cap, allowances to review, an
//! unreachable group for segmentation). Otherwise it is `partial` (some ran)
//! or `not-assessed` (none ran), with the reason. Identification may raise a
//! port's risk, never lower it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::catalogue::{PortCatalogue, PortFacts};
use super::config::{
    AllowRule, ChangeState, DEFAULT_BASELINE_PROFILES, Exception, ExceptionState, ExceptionTarget,
    Expect, Group, Policy, Vantage,
};
use crate::model::{
    AuthStatus, CheckCoverage, Controls, Coverage, Evidence, EvidenceLevel, Finding, FindingStatus,
    GroupCoverage, Message, Observation, PortState, PortVerdict, ProfileVerdict, Proto,
    RequirementStatus, RequirementVerdict, RuleRef, Severity,
};
use crate::rules::profiles::{
    Assessment, CheckCondition, CheckKind, CheckParams, CheckRef, Profiles, Requirement,
};

/// The result of evaluating one audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Sorted by host, port, protocol and check.
    pub findings: Vec<Finding>,
    /// One per loaded profile, in profile order.
    pub profiles: Vec<ProfileVerdict>,
    /// One per open port, sorted by host, port and protocol.
    pub ports: Vec<PortVerdict>,
    /// Per group (and the hosts in no group): which checks ran.
    pub coverage: Vec<GroupCoverage>,
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

/// Why a check could not run: English text and its translation key.
#[derive(Debug, Clone)]
struct NotRun {
    msg: Message,
    text: String,
    /// Nothing of the check's kind exists (no exception, no allowance):
    /// not missing data, so it does not keep a requirement from passing.
    nothing_to_judge: bool,
}

fn not_run(key: &str, text: &str) -> NotRun {
    NotRun {
        msg: Message::new(key),
        text: text.to_string(),
        nothing_to_judge: false,
    }
}

fn nothing_to_judge(key: &str, text: &str) -> NotRun {
    NotRun {
        nothing_to_judge: true,
        ..not_run(key, text)
    }
}

/// How the policy sees one host.
struct HostCtx<'a> {
    groups: Vec<&'a Group>,
    vantage: Vantage,
    cap: Option<usize>,
    profiles: Vec<&'a str>,
    tags: Vec<&'a str>,
    /// In a group that must be unreachable from this vantage.
    unreachable: bool,
    /// Open ports, and those identification named with confidence.
    open: usize,
    identified: usize,
    /// UDP pairs probed (the UDP checks judge their answers).
    udp_probes: usize,
    /// Probes concluded on the host (any state).
    probes: u64,
    /// Exceptions of the policy that cover the host.
    exceptions: usize,
}

impl<'a> HostCtx<'a> {
    fn new(policy: &'a Policy, profiles: &'a Profiles, ip: IpAddr) -> HostCtx<'a> {
        let groups = policy.groups_of(ip);
        if groups.is_empty() {
            let baseline: Vec<&str> = match &policy.baseline_profiles {
                Some(list) => list.iter().map(String::as_str).collect(),
                None => DEFAULT_BASELINE_PROFILES.to_vec(),
            };
            return HostCtx {
                groups,
                vantage: Vantage::Internal,
                cap: None,
                profiles: profiles
                    .ids()
                    .into_iter()
                    .filter(|p| baseline.contains(p))
                    .collect(),
                tags: Vec::new(),
                unreachable: false,
                open: 0,
                identified: 0,
                udp_probes: 0,
                probes: 0,
                exceptions: 0,
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
        let unreachable = groups.iter().any(|g| g.expect == Expect::Unreachable);
        HostCtx {
            groups,
            vantage,
            cap,
            profiles,
            tags,
            unreachable,
            open: 0,
            identified: 0,
            udp_probes: 0,
            probes: 0,
            exceptions: 0,
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

    fn allowances(&self) -> usize {
        self.groups.iter().map(|g| g.allow.len()).sum()
    }

    fn satisfies(&self, cond: &CheckCondition) -> bool {
        match cond {
            CheckCondition::Always => true,
            CheckCondition::Tag(t) => self.tags.contains(&t.as_str()),
            CheckCondition::Vantage(v) => self.vantage.as_str() == v,
        }
    }

    /// Whether `check` ran on this host with the data it needs.
    fn ran(&self, check: CheckKind, history: bool) -> Result<(), NotRun> {
        let identified = || {
            if self.open == 0 {
                Err(not_run(
                    "msg.cov.no_open_ports",
                    "no open port to identify on the hosts in scope",
                ))
            } else if self.identified == 0 {
                Err(not_run(
                    "msg.cov.no_identification",
                    "no service was identified (identification off, or imported results without service detection such as nmap -sV)",
                ))
            } else {
                Ok(())
            }
        };
        let internet = || {
            if self.vantage == Vantage::Internet {
                Ok(())
            } else {
                Err(not_run(
                    "msg.cov.no_internet_vantage",
                    "no host in scope is audited from an internet vantage (vantage = \"internet\")",
                ))
            }
        };
        let managed = || {
            if self.managed() {
                Ok(())
            } else {
                Err(not_run(
                    "msg.cov.unmanaged",
                    "the hosts are in no group: there is no allow list to judge against",
                ))
            }
        };
        let allowances = || {
            managed()?;
            if self.allowances() == 0 {
                Err(nothing_to_judge(
                    "msg.cov.no_allowances",
                    "the groups in scope allow no port: there is no allowance to review",
                ))
            } else {
                Ok(())
            }
        };
        match check {
            CheckKind::HighRiskExposed | CheckKind::CleartextAdmin => Ok(()),
            CheckKind::ExceptionExpired => {
                if self.exceptions > 0 {
                    Ok(())
                } else {
                    Err(nothing_to_judge(
                        "msg.cov.no_exceptions",
                        "no exception of the policy covers the hosts in scope",
                    ))
                }
            }
            CheckKind::NotAllowed => managed(),
            CheckKind::RemoteAdminInternet | CheckKind::DatabaseInternet => internet(),
            CheckKind::TlsCert => {
                internet()?;
                identified()
            }
            CheckKind::PortCap => {
                managed()?;
                match self.cap {
                    Some(_) => Ok(()),
                    None => Err(not_run(
                        "msg.cov.no_cap",
                        "no group in scope declares max_open_ports",
                    )),
                }
            }
            CheckKind::AllowedUnjustified
            | CheckKind::AllowedReviewOverdue
            | CheckKind::AllowedReviewMissing => allowances(),
            CheckKind::UnexpectedService => {
                managed()?;
                identified()
            }
            CheckKind::UnauthService => identified(),
            CheckKind::AmplificationVector | CheckKind::SnmpDefaultCommunity => {
                if self.udp_probes > 0 {
                    Ok(())
                } else {
                    Err(not_run(
                        "msg.cov.no_udp",
                        "no UDP port was probed on the hosts in scope (add UDP ports, e.g. high-risk-udp)",
                    ))
                }
            }
            CheckKind::UnmanagedHost => {
                if self.managed() {
                    Err(not_run(
                        "msg.cov.all_managed",
                        "every audited host in scope is in a group: the scan reached no host outside them",
                    ))
                } else {
                    Ok(())
                }
            }
            CheckKind::UnapprovedChange => {
                if history {
                    Ok(())
                } else {
                    Err(not_run(
                        "msg.cov.no_history",
                        "needs the audit history: no previous run of this scope to compare with (drift)",
                    ))
                }
            }
            CheckKind::SegmentationBreach => {
                if self.unreachable {
                    Ok(())
                } else {
                    Err(not_run(
                        "msg.cov.no_segmentation_test",
                        "no group in scope declares expect = \"unreachable\" (no segmentation test)",
                    ))
                }
            }
        }
    }
}

/// Names that say only "something speaks HTTP/TLS" or nothing at all: they
/// never replace a specific service the catalogue registers for the port.
const GENERIC_NAMES: [&str; 8] = [
    "http",
    "https",
    "ssl",
    "tls",
    "ssl/http",
    "ssl/https",
    "tcpwrapped",
    "unknown",
];

fn is_generic(name: &str) -> bool {
    GENERIC_NAMES.contains(&name.trim().to_ascii_lowercase().as_str())
}

/// What is known about the service on an open port.
struct PortView {
    /// The service judged.
    name: Option<String>,
    /// Its facts, with `risk` the effective risk.
    facts: Option<PortFacts>,
    /// Identification named a service with confidence.
    identified: bool,
    tls: bool,
    catalogue: Option<PortFacts>,
    identified_name: Option<String>,
    identified_risk: Option<Severity>,
}

impl PortView {
    fn risk(&self) -> Option<Severity> {
        self.facts.as_ref().map(|f| f.risk)
    }
}

/// Identification's own threshold between "identified" and "guessed from
/// the port number" (`identify` reports a guess for every open port).
const IDENTIFIED_CONFIDENCE: f32 = 0.5;

fn is_identified(o: &Observation) -> bool {
    o.service
        .as_ref()
        .is_some_and(|s| s.confidence >= IDENTIFIED_CONFIDENCE && !s.name.trim().is_empty())
}

/// The service a port is judged as, and its effective risk: the higher of
/// the catalogue entry's and the identified service's. A generic name
/// (`http`, `tcpwrapped`, …) never replaces a specific catalogue service.
fn view(cat: &dyn PortCatalogue, o: &Observation) -> PortView {
    let registered = cat.port(o.port, o.proto);
    // A TLS handshake is a fact even when the service behind it is unknown.
    let tls = o.service.as_ref().is_some_and(|s| s.tls.is_some());
    let ident = o
        .service
        .as_ref()
        .filter(|_| is_identified(o))
        .map(|s| s.name.trim().to_ascii_lowercase());
    // The port's own entry when it names the same service (http on 8080
    // keeps 8080's risk), else wherever the service is registered.
    let ident_facts = ident.as_ref().and_then(|n| match &registered {
        Some(f) if same_service(&f.service, n) => Some(f.clone()),
        _ => cat.service(n),
    });
    let catalogue_name = registered.as_ref().map(|f| f.service.to_ascii_lowercase());
    let keep_catalogue = match (&ident, &registered) {
        (None, _) => true,
        (Some(n), Some(f)) => is_generic(n) && !is_generic(&f.service),
        (Some(_), None) => false,
    };
    let identified_risk = ident_facts.as_ref().map(|f| f.risk);
    let catalogue_risk = registered.as_ref().map(|f| f.risk);
    let effective = catalogue_risk.max(identified_risk);
    let (name, facts) = if keep_catalogue {
        (
            catalogue_name,
            registered.clone().map(|mut f| {
                f.risk = f.risk.max(identified_risk.unwrap_or(f.risk));
                f
            }),
        )
    } else {
        let facts = match (&ident_facts, &registered) {
            (Some(f), _) => Some(f.clone()),
            // A specific service the catalogue does not know: the port's
            // risk still stands, its tags (what it is) do not.
            (None, Some(r)) => Some(PortFacts {
                service: ident.clone().unwrap_or_default(),
                risk: r.risk,
                tags: Vec::new(),
            }),
            (None, None) => None,
        };
        (
            ident.clone(),
            facts.map(|mut f| {
                if let Some(r) = effective {
                    f.risk = r;
                }
                f
            }),
        )
    };
    PortView {
        name,
        facts,
        identified: ident.is_some(),
        tls,
        catalogue: registered,
        identified_name: ident,
        identified_risk,
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
    msg: Message,
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

/// An allowance's next review is due within six months of the audit day
/// (PCI DSS 1.2.7); `None` when it is, else why not.
fn review_gap(rule: &AllowRule, today: NaiveDate) -> Option<&'static str> {
    match rule.review_by {
        None => Some("none"),
        Some(due)
            if today
                .checked_add_months(Months::new(6))
                .is_some_and(|l| due > l) =>
        {
            Some("far")
        }
        Some(_) => None,
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
    let mut push = |check: CheckKind, severity: Severity, message: String, msg: Message| {
        out.push(Draft {
            check,
            severity,
            port: Some(o.port),
            proto: Some(o.proto),
            service: v.name.clone(),
            evidence: evidence(o),
            message,
            msg: msg.arg("port", &label),
        })
    };
    let risk = v.risk();
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
                    Message::new("msg.not_allowed").arg("group", &group),
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
                    Message::new("msg.high_risk_exposed").arg("risk", r),
                );
            }
        }
        Some(rule) => {
            if !rule.is_justified() {
                let (missing, key) = match (
                    rule.justification
                        .as_deref()
                        .is_some_and(|s| !s.trim().is_empty()),
                    rule.approver
                        .as_deref()
                        .is_some_and(|s| !s.trim().is_empty()),
                ) {
                    (false, false) => (
                        "a justification and an approver",
                        "msg.allowed_unjustified.both",
                    ),
                    (false, true) => ("a justification", "msg.allowed_unjustified.justification"),
                    _ => ("an approver", "msg.allowed_unjustified.approver"),
                };
                push(
                    CheckKind::AllowedUnjustified,
                    profiles.check(CheckKind::AllowedUnjustified).severity,
                    format!(
                        "{label} is allowed (policy line {}) without {missing}",
                        rule.line
                    ),
                    Message::new(key).arg("line", rule.line),
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
                    Message::new("msg.allowed_review_overdue")
                        .arg("line", rule.line)
                        .arg("due", due),
                );
            }
            match (review_gap(rule, today), rule.review_by) {
                (Some("none"), _) => push(
                    CheckKind::AllowedReviewMissing,
                    profiles.check(CheckKind::AllowedReviewMissing).severity,
                    format!(
                        "the allowance of {label} (policy line {}) has no review date (review_by): rules are reviewed at least every six months",
                        rule.line
                    ),
                    Message::new("msg.allowed_review_missing.none").arg("line", rule.line),
                ),
                (Some(_), Some(due)) => push(
                    CheckKind::AllowedReviewMissing,
                    profiles.check(CheckKind::AllowedReviewMissing).severity,
                    format!(
                        "the allowance of {label} (policy line {}) is next reviewed on {due}, more than six months ahead",
                        rule.line
                    ),
                    Message::new("msg.allowed_review_missing.far")
                        .arg("line", rule.line)
                        .arg("due", due),
                ),
                _ => {}
            }
            if let Some(declared) = &rule.service
                && v.identified
                && v.name
                    .as_deref()
                    .is_some_and(|n| !same_service(declared, n))
            {
                let found = v.name.as_deref().unwrap_or("?");
                push(
                    CheckKind::UnexpectedService,
                    profiles.check(CheckKind::UnexpectedService).severity,
                    format!(
                        "{}/{} is allowed for '{declared}' but '{found}' answers",
                        o.port, o.proto,
                    ),
                    Message::new("msg.unexpected_service")
                        .arg("declared", declared)
                        .arg("found", found),
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
            Message::new("msg.cleartext_admin"),
        );
    }
    if ctx.vantage == Vantage::Internet {
        let p = profiles.check(CheckKind::RemoteAdminInternet);
        if selects(p, &v) {
            push(
                CheckKind::RemoteAdminInternet,
                p.severity,
                format!("remote administration {label} is reachable from the internet"),
                Message::new("msg.remote_admin_internet"),
            );
        }
        let p = profiles.check(CheckKind::DatabaseInternet);
        if selects(p, &v) {
            push(
                CheckKind::DatabaseInternet,
                p.severity,
                format!("database/cache {label} is reachable from the internet"),
                Message::new("msg.database_internet"),
            );
        }
        if let Some(tls) = o.service.as_ref().and_then(|s| s.tls.as_ref()) {
            let mut issues = Vec::new();
            let mut args: Vec<(&str, String)> = Vec::new();
            let expired = tls.expired || tls.not_after.is_some_and(|t| t < now);
            if expired {
                match tls.not_after {
                    Some(t) => {
                        issues.push(format!("expired on {}", t.date_naive()));
                        args.push(("date", t.date_naive().to_string()));
                    }
                    None => issues.push("expired".to_string()),
                }
            }
            if tls.self_signed {
                issues.push("self-signed".to_string());
            }
            let key = match (expired, tls.self_signed, tls.not_after.is_some()) {
                (true, true, true) => "msg.tls_cert.expired_on_self_signed",
                (true, true, false) => "msg.tls_cert.expired_self_signed",
                (true, false, true) => "msg.tls_cert.expired_on",
                (true, false, false) => "msg.tls_cert.expired",
                _ => "msg.tls_cert.self_signed",
            };
            let mut msg = Message::new(key);
            for (k, v) in args {
                msg = msg.arg(k, v);
            }
            if !issues.is_empty() {
                push(
                    CheckKind::TlsCert,
                    profiles.check(CheckKind::TlsCert).severity,
                    format!("the certificate of {label} is {}", issues.join(" and ")),
                    msg,
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
            Message::new("msg.unauth_service"),
        );
    }
    // UDP-only checks (amplifiers, default SNMP communities): see policy::udp.
    for (check, message, msg) in super::udp::udp_checks(o, &label) {
        push(check, profiles.check(check).severity, message, msg);
    }
}

/// `segmentation-breach`: a port of a host that must be unreachable from
/// this vantage answered (open or closed: either way a packet got through).
fn segmentation_check(
    ctx: &HostCtx,
    profiles: &Profiles,
    cat: &dyn PortCatalogue,
    o: &Observation,
    out: &mut Vec<Draft>,
) {
    if !ctx.unreachable || !matches!(o.state, PortState::Open | PortState::Closed) {
        return;
    }
    let v = view(cat, o);
    let label = port_label(o, &v);
    let group = ctx.group_name().unwrap_or_default();
    let check = CheckKind::SegmentationBreach;
    out.push(Draft {
        check,
        severity: profiles.check(check).severity,
        port: Some(o.port),
        proto: Some(o.proto),
        service: v.name.clone(),
        evidence: evidence(o),
        message: format!(
            "{label} on {} answered ({}, {}) though group '{group}' must be unreachable from this vantage",
            o.ip, o.state, o.reason
        ),
        msg: Message::new("msg.segmentation_breach")
            .arg("port", &label)
            .arg("ip", o.ip)
            .arg("state", o.state)
            .arg("reason", o.reason)
            .arg("group", &group),
    });
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

fn controls(profiles: &Profiles, ctx: &HostCtx, check: CheckKind) -> Controls {
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
    out.into()
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
/// same scope. Without a baseline, `unapproved-change` has not run, and the
/// requirements it maps to say so.
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
    // Every probed host, with its answers. Hosts that answered at all (open
    // or closed) are in scope of their profiles; so is every probed host of
    // an unreachable group, whose silence is the evidence.
    let mut probed: BTreeMap<IpAddr, Vec<&Observation>> = BTreeMap::new();
    for o in latest.values() {
        probed.entry(o.ip).or_default().push(o);
    }

    let mut findings = Vec::new();
    // One copy of each distinct control list, shared by its findings.
    let mut shared_controls: HashSet<Controls> = HashSet::new();
    let mut ctxs = Vec::new();
    for (&ip, all) in &probed {
        let mut ctx = HostCtx::new(policy, profiles, ip);
        let answered = all
            .iter()
            .any(|o| matches!(o.state, PortState::Open | PortState::Closed));
        if !answered && !ctx.unreachable {
            continue;
        }
        let open: Vec<&Observation> = all
            .iter()
            .copied()
            .filter(|o| o.state == PortState::Open)
            .collect();
        ctx.open = open.len();
        ctx.identified = open.iter().filter(|o| is_identified(o)).count();
        ctx.probes = all.len() as u64;
        ctx.udp_probes = all.iter().filter(|o| o.proto == Proto::Udp).count();
        ctx.exceptions = policy
            .exceptions
            .iter()
            .filter(|x| match &x.target {
                ExceptionTarget::Group(name) => ctx.groups.iter().any(|g| &g.name == name),
                ExceptionTarget::Addr(r) => r.contains(ip),
            })
            .count();
        let mut drafts = Vec::new();
        for o in all {
            segmentation_check(&ctx, profiles, catalogue, o, &mut drafts);
        }
        for o in &open {
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
        host_checks(policy, profiles, &ctx, ip, &open, &mut drafts);
        let first = findings.len();
        for d in drafts {
            settle(policy, profiles, &ctx, ip, d, today, &mut findings);
        }
        for f in &mut findings[first..] {
            match shared_controls.get(&f.controls) {
                Some(c) => f.controls = c.clone(),
                None => {
                    shared_controls.insert(f.controls.clone());
                }
            }
        }
        ctxs.push((ip, ctx));
    }

    findings.sort_by(|a, b| {
        (a.ip, a.port, a.proto, a.check.as_str()).cmp(&(b.ip, b.port, b.proto, b.check.as_str()))
    });
    findings.dedup_by(|a, b| a.id == b.id);
    let ports = port_verdicts(policy, catalogue, &ctxs, &latest, &findings);
    let history = baseline.is_some();
    let coverage = group_coverage(policy, &ctxs, history);
    let ctxs: Vec<HostCtx> = ctxs.into_iter().map(|(_, c)| c).collect();
    let verdicts = verdicts(profiles, &ctxs, &findings, history);
    Evaluation {
        findings,
        profiles: verdicts,
        ports,
        coverage,
    }
}

/// Host-level checks: the group's cap, and a host in no group.
fn host_checks(
    policy: &Policy,
    profiles: &Profiles,
    ctx: &HostCtx,
    ip: IpAddr,
    open: &[&Observation],
    drafts: &mut Vec<Draft>,
) {
    let Some(newest) = open.iter().max_by_key(|o| o.time) else {
        return;
    };
    let ports = open
        .iter()
        .map(|o| format!("{}/{}", o.port, o.proto))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(cap) = ctx.cap
        && open.len() > cap
    {
        let group = ctx.group_name().unwrap_or_default();
        drafts.push(Draft {
            check: CheckKind::PortCap,
            severity: profiles.check(CheckKind::PortCap).severity,
            port: None,
            proto: None,
            service: None,
            evidence: evidence(newest),
            message: format!(
                "{} open ports, above the cap of {cap} for group '{group}': {ports}",
                open.len(),
            ),
            msg: Message::new("msg.port_cap")
                .arg("count", open.len())
                .arg("cap", cap)
                .arg("group", group)
                .arg("ports", &ports),
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
                "{ip} has {} open port(s) ({ports}) but is in no asset group of {}",
                open.len(),
                policy.file
            ),
            msg: Message::new("msg.unmanaged_host")
                .arg("ip", ip)
                .arg("count", open.len())
                .arg("ports", &ports)
                .arg("policy", &policy.file),
        });
    }
}

/// One verdict per open port: its group, the allowance that admits it, the
/// exception that applied, the checks that fired and the risk rule.
fn port_verdicts(
    policy: &Policy,
    cat: &dyn PortCatalogue,
    ctxs: &[(IpAddr, HostCtx)],
    latest: &BTreeMap<(IpAddr, u16, Proto), &Observation>,
    findings: &[Finding],
) -> Vec<PortVerdict> {
    let ctx_of: BTreeMap<IpAddr, &HostCtx> = ctxs.iter().map(|(ip, c)| (*ip, c)).collect();
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

/// Which checks ran per group (and for the hosts in no group).
fn group_coverage(
    policy: &Policy,
    ctxs: &[(IpAddr, HostCtx)],
    history: bool,
) -> Vec<GroupCoverage> {
    let mut names: Vec<Option<String>> =
        policy.groups.iter().map(|g| Some(g.name.clone())).collect();
    names.push(None);
    names
        .into_iter()
        .map(|name| {
            let hosts: Vec<&HostCtx> = ctxs
                .iter()
                .map(|(_, c)| c)
                .filter(|c| c.group_name() == name)
                .collect();
            let checks = CheckKind::ALL
                .iter()
                .map(|&k| {
                    check_coverage(
                        k.as_str(),
                        &hosts,
                        |c| c.ran(k, history),
                        k == CheckKind::SegmentationBreach,
                    )
                })
                .collect();
            GroupCoverage {
                group: name,
                hosts: hosts.len(),
                probes: hosts.iter().map(|c| c.probes).sum(),
                checks,
            }
        })
        .collect()
}

/// Coverage of one check over `hosts`: the hosts it ran on, else every
/// distinct reason it could not (hosts in scope may lack different data).
fn check_coverage(
    label: &str,
    hosts: &[&HostCtx],
    ran: impl Fn(&HostCtx) -> Result<(), NotRun>,
    count_probes: bool,
) -> CheckCoverage {
    let mut on = 0;
    let mut probes = 0;
    let mut reasons: Vec<NotRun> = Vec::new();
    for c in hosts {
        match ran(c) {
            Ok(()) => {
                on += 1;
                if count_probes {
                    probes += c.probes;
                }
            }
            Err(e) => {
                if !reasons.iter().any(|r| r.msg == e.msg) {
                    reasons.push(e);
                }
            }
        }
    }
    // Missing data on any host outweighs "nothing to judge".
    let nothing = on == 0 && !reasons.is_empty() && reasons.iter().all(|r| r.nothing_to_judge);
    if !nothing {
        reasons.retain(|r| !r.nothing_to_judge);
    }
    let why = if on > 0 {
        None
    } else if reasons.is_empty() {
        Some(not_run("msg.cov.no_hosts", "no audited host is in scope"))
    } else {
        let text = reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut first = reasons.swap_remove(0);
        first.text = text;
        Some(first)
    };
    CheckCoverage {
        check: label.to_string(),
        ran: on > 0,
        hosts: on,
        nothing_to_judge: nothing,
        probes,
        reason: why.as_ref().map(|w| w.text.clone()),
        reason_msg: why.map(|w| w.msg),
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
    let mut msg = d.msg;
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
            msg: Message::new("msg.exception_expired")
                .arg("exception", &e.id)
                .arg("line", e.line)
                .arg("expires", e.expires),
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
        msg,
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
    let base = |why: &str| {
        Message::new(&format!("msg.unapproved_change.{why}"))
            .arg("port", &label)
            .arg("ip", o.ip)
    };
    let (message, msg) = match baseline {
        Some(b) if !b.open.contains(&(o.ip, o.port, o.proto)) && !allowed => {
            let (why, msg) = if let Some(c) = ended {
                let until = c.until.unwrap_or(today);
                (
                    format!("change {} covered it only until {until}", c.ticket),
                    base("ended").arg("ticket", &c.ticket).arg("until", until),
                )
            } else if let Some(c) = covering.first() {
                let from = c.from.unwrap_or(c.approved).max(c.approved);
                (
                    format!("change {} is approved from {from} only", c.ticket),
                    base("not_yet").arg("ticket", &c.ticket).arg("from", from),
                )
            } else {
                (
                    "no approved [[change]] record covers it".to_string(),
                    base("none"),
                )
            };
            let msg = msg.arg("run", b.run);
            (
                format!(
                    "{label} on {} opened since run {} of this scope; {why}: record the approved change in the policy, or close the port",
                    o.ip, b.run
                ),
                msg,
            )
        }
        _ => match ended {
            Some(c) if !allowed => {
                let until = c.until.unwrap_or(today);
                (
                    format!(
                        "{label} on {} is still open after temporary change {} ended on {until}: close it, or record a new approved change",
                        o.ip, c.ticket,
                    ),
                    Message::new("msg.change_ended")
                        .arg("port", &label)
                        .arg("ip", o.ip)
                        .arg("ticket", &c.ticket)
                        .arg("until", until),
                )
            }
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
        msg,
    });
}

/// `check@tag:x` as written in the profile.
fn ref_label(r: &CheckRef) -> String {
    match &r.when {
        CheckCondition::Always => r.check.as_str().to_string(),
        CheckCondition::Tag(t) => format!("{}@tag:{t}", r.check),
        CheckCondition::Vantage(v) => format!("{}@vantage:{v}", r.check),
    }
}

/// Coverage of one mapped check over the hosts in a profile's scope.
fn ref_coverage(r: &CheckRef, scope: &[&HostCtx], history: bool) -> CheckCoverage {
    let hosts: Vec<&HostCtx> = scope
        .iter()
        .copied()
        .filter(|c| c.satisfies(&r.when))
        .collect();
    if hosts.is_empty() && !scope.is_empty() {
        let (key, text) = match &r.when {
            CheckCondition::Tag(t) => (
                Message::new("msg.cov.condition_tag").arg("tag", t),
                format!("no audited host in scope is in a group tagged '{t}'"),
            ),
            CheckCondition::Vantage(v) => (
                Message::new("msg.cov.condition_vantage").arg("vantage", v),
                format!("no audited host in scope is audited from an {v} vantage"),
            ),
            CheckCondition::Always => (
                Message::new("msg.cov.no_hosts"),
                "no audited host is in scope".into(),
            ),
        };
        return CheckCoverage {
            check: ref_label(r),
            ran: false,
            hosts: 0,
            nothing_to_judge: false,
            probes: 0,
            reason: Some(text),
            reason_msg: Some(key),
        };
    }
    check_coverage(
        &ref_label(r),
        &hosts,
        |c| c.ran(r.check, history),
        r.check == CheckKind::SegmentationBreach,
    )
}

/// The verdict of one requirement from its coverage and the failing
/// findings that map to it.
fn requirement_verdict(
    r: &Requirement,
    key: &str,
    scope: &[&HostCtx],
    findings: &[Finding],
    history: bool,
) -> RequirementVerdict {
    let ids: Vec<String> = findings
        .iter()
        .filter(|f| f.status.is_failing() && f.controls.iter().any(|c| c == key))
        .map(|f| f.id.clone())
        .collect();
    let coverage = Coverage {
        hosts_in_scope: scope.len(),
        checks: match &r.assessment {
            Assessment::Checks(refs) => refs
                .iter()
                .map(|x| ref_coverage(x, scope, history))
                .collect(),
            Assessment::NotAssessed { .. } => Vec::new(),
        },
    };
    // Checks with nothing to judge neither block a pass nor evidence one.
    let not_run: Vec<&CheckCoverage> = coverage
        .checks
        .iter()
        .filter(|c| !c.ran && !c.nothing_to_judge)
        .collect();
    let ran = coverage.checks.iter().filter(|c| c.ran).count();
    let why_not = || {
        not_run
            .iter()
            .map(|c| format!("{} ({})", c.check, c.reason.as_deref().unwrap_or("no data")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (status, reason, reason_msg) = if !ids.is_empty() {
        (RequirementStatus::Fail, None, None)
    } else if let Assessment::NotAssessed { reason } = &r.assessment {
        (
            RequirementStatus::NotAssessed,
            Some(reason.clone()),
            Some(Message::new("msg.req.scan_cannot_judge").arg("text", reason)),
        )
    } else if scope.is_empty() {
        (
            RequirementStatus::NotAssessed,
            Some("no audited host is in a group that declares this profile".to_string()),
            Some(Message::new("msg.req.out_of_scope")),
        )
    } else if ran == 0 {
        let why = coverage
            .checks
            .iter()
            .map(|c| format!("{} ({})", c.check, c.reason.as_deref().unwrap_or("no data")))
            .collect::<Vec<_>>()
            .join("; ");
        (
            RequirementStatus::NotAssessed,
            Some(format!("none of its checks could run: {why}")),
            Some(Message::new("msg.req.nothing_ran").arg("checks", why)),
        )
    } else if !not_run.is_empty() {
        let why = why_not();
        (
            RequirementStatus::Partial,
            Some(format!("no findings, but some checks could not run: {why}")),
            Some(Message::new("msg.req.some_not_run").arg("checks", why)),
        )
    } else if r.evidence == EvidenceLevel::Partial {
        (
            RequirementStatus::Partial,
            Some(
                "no findings (partial evidence): a scan can show this requirement failing, never that it is met"
                    .to_string(),
            ),
            Some(Message::new("msg.req.partial_evidence")),
        )
    } else {
        (RequirementStatus::Pass, None, None)
    };
    RequirementVerdict {
        id: r.id.clone(),
        title_en: r.title_en.clone(),
        title_zh: r.title_zh.clone(),
        status,
        confirmed: r.confirmed,
        reason,
        reason_msg,
        findings: ids,
        evidence: r.evidence,
        coverage,
    }
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
        let reqs: Vec<RequirementVerdict> = p
            .requirements
            .iter()
            .map(|r| requirement_verdict(r, &p.control_ref(r), &scope, findings, history))
            .collect();
        let count = |s| reqs.iter().filter(|r| r.status == s).count();
        // The score counts only confirmed mappings: an unconfirmed one (†)
        // is shown and marked, never counted.
        let scored = |s| reqs.iter().filter(|r| r.confirmed && r.status == s).count();
        let (sp, sf) = (
            scored(RequirementStatus::Pass),
            scored(RequirementStatus::Fail),
        );
        out.push(ProfileVerdict {
            profile: p.id.clone(),
            name: p.name.clone(),
            passed: count(RequirementStatus::Pass),
            failed: count(RequirementStatus::Fail),
            not_assessed: count(RequirementStatus::NotAssessed),
            partial: count(RequirementStatus::Partial),
            unconfirmed: reqs.iter().filter(|r| !r.confirmed).count(),
            score: (sp + sf > 0).then(|| sp as f64 / (sp + sf) as f64),
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

    /// A closed UDP port (ICMP port unreachable): the UDP checks ran.
    fn udp_closed(ip: &str, port: u16) -> Observation {
        let mut o = Observation::new(
            ip.parse().unwrap(),
            port,
            Proto::Udp,
            Reason::PortUnreach,
            Some(1.0),
        );
        o.time = "2026-11-24T08:00:00Z".parse().unwrap();
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

    /// `id status [†] — reason` for every requirement of a profile.
    fn statuses(p: &ProfileVerdict) -> Vec<String> {
        p.requirements
            .iter()
            .map(|r| {
                format!(
                    "{} {}{}{}",
                    r.id,
                    r.status,
                    if r.confirmed { "" } else { " †" },
                    r.reason
                        .as_deref()
                        .map(|x| format!(" — {x}"))
                        .unwrap_or_default()
                )
            })
            .collect()
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
                "198.18.0.2 5432 allowed-review-missing fail low",
                "198.18.0.3 443 unexpected-service fail medium",
                "198.18.0.17 22 allowed-review-missing fail low",
                "198.18.0.17 22 remote-admin-internet fail high",
                "198.18.0.17 80 allowed-review-missing fail low",
                "198.18.0.17 443 allowed-review-missing fail low",
                "198.18.0.17 443 tls-cert fail medium",
                "198.18.0.17 6379 database-internet fail critical",
                "198.18.0.17 6379 high-risk-exposed fail high",
                "198.18.0.17 6379 not-allowed fail high",
                "198.18.0.17 6379 unauth-service fail critical",
                "198.18.0.33 - port-cap fail medium",
                "198.18.0.33 23 cleartext-admin waived high",
                "198.18.0.33 23 high-risk-exposed waived high",
                "198.18.0.33 23 not-allowed waived high",
                "198.18.0.33 502 allowed-review-missing fail low",
                "198.18.0.33 2323 cleartext-admin fail high",
                "198.18.0.33 2323 high-risk-exposed fail high",
                "198.18.0.33 2323 not-allowed fail high",
                "198.18.0.99 - unmanaged-host fail medium",
                "198.18.0.99 445 high-risk-exposed fail critical",
            ]
        );
        let kinds: BTreeSet<&str> = e.findings.iter().map(|f| f.check.as_str()).collect();
        // All but `unapproved-change`, which needs a baseline (see below),
        // `segmentation-breach`, which needs an unreachable group, and the
        // two UDP checks (tested in policy::udp).
        assert_eq!(kinds.len(), CheckKind::ALL.len() - 4);
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
        // The ended change is a failing finding even without history; the
        // drift half of the check did not run, which the coverage records.
        assert_eq!(req(&e, "pci-dss-4.0", "1.2.2").0, RequirementStatus::Fail);
        let cov = e
            .coverage
            .iter()
            .find(|g| g.group.as_deref() == Some("web"))
            .unwrap();
        let drift = cov
            .checks
            .iter()
            .find(|c| c.check == "unapproved-change")
            .unwrap();
        assert!(!drift.ran);
        assert_eq!(
            drift.reason.as_deref(),
            Some("needs the audit history: no previous run of this scope to compare with (drift)")
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
                "pci-dss-4.0:11.3.1.3",
                "iso27001-2022:A.8.32",
                "mlps2-level3:8.1.10.6 g)",
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
                "nist-800-53r5:CM-7b.",
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
            // A host in no group: the default baseline profiles only (no
            // PCI DSS, no 等保 unless the policy names them).
            [
                "iso27001-2022:A.5.9",
                "cis-v8:1.1",
                "nist-800-53r5:CM-8",
                "nist-800-53r5:CM-8(3)",
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
        // 1.3.1 concerns cardholder groups only: the DMZ's redis is not in it.
        let r = req("1.3.1");
        assert_eq!(r.status, RequirementStatus::Fail);
        assert_eq!(
            r.findings,
            [find(&e, "198.18.0.2", Some(3389), "not-allowed").id.clone()]
        );
        assert!(!req("4.2.1").confirmed);
        assert_eq!(req("4.2.1").status, RequirementStatus::Fail);
        assert_eq!(
            (pci.passed, pci.failed, pci.partial, pci.not_assessed),
            (1, 11, 0, 13)
        );
        // The score counts confirmed mappings only: 2.2.2, 4.2.1 and 8.2.1
        // fail but are unconfirmed (†), so 1 pass over 1 + 8 fails.
        assert_eq!(pci.unconfirmed, 5);
        assert_eq!(pci.score, Some(1.0 / 9.0));
        // Internet requirements are judged only from an internet vantage,
        // 1.4.4 only for cardholder groups: the cardholder group is internal.
        assert_eq!(
            req("1.4.4").reason.as_deref(),
            Some(
                "none of its checks could run: database-internet@tag:cardholder (no host in scope is audited from an internet vantage (vantage = \"internet\"))"
            )
        );
        assert_eq!(
            req("1.4.4").reason_msg.as_ref().unwrap().key,
            "msg.req.nothing_ran"
        );
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
        // Nothing open, no cap, no allowances, no identification, internal
        // only: one pass (it used to be 8 passes out of 8).
        let cis = &e.profiles[3];
        assert_eq!(
            statuses(cis),
            [
                "1.1 not-assessed † — none of its checks could run: unmanaged-host (every audited host in scope is in a group: the scan reached no host outside them)",
                "3.10 partial † — no findings, but some checks could not run: tls-cert (no host in scope is audited from an internet vantage (vantage = \"internet\"))",
                // A deny-all group with nothing open: not-allowed ran; there
                // is no allowance to justify or review (nothing to judge).
                "4.4 pass",
                "4.7 not-assessed † — none of its checks could run: unauth-service (no open port to identify on the hosts in scope); snmp-default-community (no UDP port was probed on the hosts in scope (add UDP ports, e.g. high-risk-udp))",
                "4.8 partial — no findings, but some checks could not run: port-cap (no group in scope declares max_open_ports); amplification-vector (no UDP port was probed on the hosts in scope (add UDP ports, e.g. high-risk-udp))",
                "7.6 not-assessed — Evidence of a schedule comes from the audit history; one audit is not a schedule, and a port audit is not a vulnerability scan.",
                "12.2 not-assessed — none of its checks could run: remote-admin-internet@vantage:internet (no audited host in scope is audited from an internet vantage); database-internet@vantage:internet (no audited host in scope is audited from an internet vantage)",
                "13.4 not-assessed — none of its checks could run: remote-admin-internet@vantage:internet (no audited host in scope is audited from an internet vantage); database-internet@vantage:internet (no audited host in scope is audited from an internet vantage)",
            ]
        );
        assert_eq!((cis.passed, cis.failed, cis.partial), (1, 0, 2));
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
            "[[group]]\nname = \"web\"\ntargets = [\"198.18.0.0/28\"]\nprofiles = [\"cis-v8\"]\n[[group.allow]]\nport = 80\njustification = \"web\"\napprover = \"lead\"\nreview_by = 2027-01-31\n[[group.allow]]\nport = 2323\njustification = \"odd\"\napprover = \"lead\"\nreview_by = 2027-01-31\n[[group.allow]]\nport = 8022\njustification = \"odd\"\napprover = \"lead\"\nreview_by = 2027-01-31\n",
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
            "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group.allow]]\nport = 443\nservice = \"https\"\njustification = \"web\"\napprover = \"lead\"\nreview_by = 2027-01-31\n",
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

    fn cis_req<'a>(e: &'a Evaluation, id: &str) -> &'a RequirementVerdict {
        e.profiles
            .iter()
            .find(|p| p.profile == "cis-v8")
            .unwrap()
            .requirements
            .iter()
            .find(|r| r.id == id)
            .unwrap()
    }

    /// One requirement (CIS 4.8: not-allowed, high-risk-exposed, port-cap)
    /// through every status, on a fixed clock.
    #[test]
    fn status_transitions_follow_the_evidence() {
        let profiles = Profiles::embedded().unwrap();
        let group = |cap: &str| {
            format!(
                "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nprofiles = [\"cis-v8\"]\n{cap}[[group.allow]]\nport = 443\nservice = \"https\"\njustification = \"web\"\napprover = \"lead\"\nreview_by = 2027-01-31\n"
            )
        };
        let eval = |text: &str, o: &[Observation]| {
            let policy = Policy::parse(text, "p.toml", &profiles).unwrap();
            evaluate(&policy, &profiles, &catalogue(), o, at("2026-11-24"))
        };
        let web = [
            obs("198.18.0.1", 443, Reason::SynAck, svc("https")),
            udp_closed("198.18.0.1", 161),
        ];
        // pass: every mapped check ran (a cap is declared, UDP was probed),
        // none failed.
        let e = eval(&group("max_open_ports = 3\n"), &web);
        let r = cis_req(&e, "4.8");
        assert_eq!(
            (r.status, r.reason.as_deref()),
            (RequirementStatus::Pass, None)
        );
        assert_eq!(r.coverage.hosts_in_scope, 1);
        assert!(r.coverage.checks.iter().all(|c| c.ran && c.hosts == 1));
        // partial: no cap, so port-cap could not run; says which and why.
        let e = eval(&group(""), &web);
        let r = cis_req(&e, "4.8");
        assert_eq!(r.status, RequirementStatus::Partial);
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "no findings, but some checks could not run: port-cap (no group in scope declares max_open_ports)"
            )
        );
        let msg = r.reason_msg.as_ref().unwrap();
        assert_eq!(msg.key, "msg.req.some_not_run");
        assert_eq!(
            r.coverage.summary(),
            "not-allowed: ran on 1 host(s); high-risk-exposed: ran on 1 host(s); port-cap: not run (no group in scope declares max_open_ports); amplification-vector: ran on 1 host(s)"
        );
        // not-assessed: an internal-only scope cannot judge 12.2.
        let r = cis_req(&e, "12.2");
        assert_eq!(r.status, RequirementStatus::NotAssessed);
        // fail: a port that is not allowed, whatever else could not run.
        let mut more = web.to_vec();
        more.push(obs("198.18.0.1", 6379, Reason::SynAck, None));
        let e = eval(&group(""), &more);
        let r = cis_req(&e, "4.8");
        assert_eq!(r.status, RequirementStatus::Fail);
        assert_eq!(r.findings.len(), 2);
        // partial evidence: identification says authentication is required,
        // yet "default accounts are managed" (4.7) is never a pass.
        let mut ident = svc("https").unwrap();
        ident.auth = AuthStatus::Required;
        let e = eval(
            &group("max_open_ports = 3\n"),
            &[
                obs("198.18.0.1", 443, Reason::SynAck, Some(ident)),
                udp_closed("198.18.0.1", 161),
            ],
        );
        let r = cis_req(&e, "4.7");
        assert_eq!(r.status, RequirementStatus::Partial);
        assert_eq!(r.evidence, EvidenceLevel::Partial);
        assert_eq!(
            r.reason_msg.as_ref().unwrap().key,
            "msg.req.partial_evidence"
        );
        // Without identification (an nmap import without -sV) 4.7 is not
        // assessed: unauth-service had no data.
        let e = eval(
            &group("max_open_ports = 3\n"),
            &[obs("198.18.0.1", 443, Reason::SynAck, None)],
        );
        let r = cis_req(&e, "4.7");
        assert_eq!(r.status, RequirementStatus::NotAssessed);
        assert!(
            r.reason
                .as_deref()
                .unwrap()
                .contains("no service was identified"),
            "{:?}",
            r.reason
        );
    }

    #[test]
    fn score_counts_only_confirmed_pass_and_fail() {
        let profiles = Profiles::embedded().unwrap();
        // 3.10 (cleartext-admin, tls-cert) is unconfirmed (†): its failure is
        // shown but not scored; 4.8 passes and is the only scored requirement.
        let policy = Policy::parse(
            "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nvantage = \"internet\"\nprofiles = [\"cis-v8\"]\nmax_open_ports = 3\n[[group.allow]]\nport = 23\njustification = \"legacy\"\napprover = \"lead\"\nreview_by = 2027-01-31\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let o = [
            obs("198.18.0.1", 23, Reason::SynAck, svc("telnet")),
            udp_closed("198.18.0.1", 161),
        ];
        let e = evaluate(&policy, &profiles, &catalogue(), &o, at("2026-11-24"));
        let cis = e.profiles.iter().find(|p| p.profile == "cis-v8").unwrap();
        assert_eq!(cis_req(&e, "3.10").status, RequirementStatus::Fail);
        assert!(!cis_req(&e, "3.10").confirmed);
        assert_eq!(cis_req(&e, "4.8").status, RequirementStatus::Pass);
        assert_eq!(cis_req(&e, "12.2").status, RequirementStatus::Fail);
        // Scored: 4.8 pass, 4.4 pass, 12.2 fail, 13.4 fail → 2 / 4.
        assert_eq!(cis_req(&e, "4.4").status, RequirementStatus::Pass);
        assert_eq!(cis_req(&e, "13.4").status, RequirementStatus::Fail);
        assert_eq!((cis.passed, cis.failed), (2, 3));
        assert_eq!(cis.score, Some(0.5));
    }

    #[test]
    fn identification_never_lowers_risk() {
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(
            "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nprofiles = [\"cis-v8\"]\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let cat = crate::rules::Catalogue::embedded();
        let o = vec![
            // Elasticsearch answers HTTP: "http" must not replace it.
            obs("198.18.0.1", 9200, Reason::SynAck, svc("http")),
            // nmap -sV says tcpwrapped on redis's port.
            obs("198.18.0.1", 6379, Reason::SynAck, svc("tcpwrapped")),
            // A specific but milder service on a critical port keeps the
            // port's risk (max of both).
            obs("198.18.0.1", 2375, Reason::SynAck, svc("ssh")),
            // A specific, riskier service on a mild port raises it.
            obs("198.18.0.1", 8022, Reason::SynAck, svc("telnet")),
        ];
        let e = evaluate(&policy, &profiles, &cat, &o, at("2026-11-24"));
        let pv = |port: u16| e.ports.iter().find(|p| p.port == port).unwrap();
        let es = pv(9200);
        assert_eq!(es.service.as_deref(), Some("elasticsearch"));
        assert_eq!(es.identified_service.as_deref(), Some("http"));
        assert_eq!(es.effective_risk, es.catalogue_risk);
        assert_eq!(es.effective_risk, Some(Severity::Critical));
        assert!(es.checks_fired.contains(&"high-risk-exposed".to_string()));
        let redis = pv(6379);
        assert_eq!(redis.service.as_deref(), Some("redis"));
        assert_eq!(redis.effective_risk, Some(Severity::Critical));
        let docker = pv(2375);
        assert_eq!(docker.service.as_deref(), Some("ssh"));
        assert_eq!(docker.identified_risk, Some(Severity::High));
        assert_eq!(docker.effective_risk, Some(Severity::Critical));
        let telnet = pv(8022);
        assert!(telnet.effective_risk >= Some(Severity::High));
        assert!(telnet.effective_risk >= telnet.catalogue_risk);
        for p in &e.ports {
            assert!(p.effective_risk >= p.catalogue_risk, "{p:?}");
            assert!(p.effective_risk >= p.identified_risk, "{p:?}");
        }
        let not_allowed = find(&e, "198.18.0.1", Some(9200), "not-allowed");
        assert_eq!(not_allowed.severity, Severity::Critical);
        assert_eq!(not_allowed.service.as_deref(), Some("elasticsearch"));
    }

    #[test]
    fn segmentation_test_groups() {
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(
            "[[group]]\nname = \"cde\"\ntargets = [\"198.18.0.0/28\"]\ntags = [\"cardholder\"]\nexpect = \"unreachable\"\nprofiles = [\"pci-dss-4.0\", \"nist-800-53r5\"]\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let pci = |e: &Evaluation, id: &str| {
            e.profiles[0]
                .requirements
                .iter()
                .find(|r| r.id == id)
                .unwrap()
                .clone()
        };
        // All filtered: a segmentation pass, with the probes as evidence.
        let quiet: Vec<Observation> = [22, 443, 3306]
            .into_iter()
            .flat_map(|p| {
                [
                    obs("198.18.0.1", p, Reason::NoResponse, None),
                    obs("198.18.0.2", p, Reason::AdminProhibited, None),
                ]
            })
            .collect();
        let e = evaluate(&policy, &profiles, &catalogue(), &quiet, at("2026-11-24"));
        assert!(e.findings.is_empty());
        let r = pci(&e, "11.4.5");
        assert_eq!(r.status, RequirementStatus::Pass);
        assert_eq!(r.coverage.hosts_in_scope, 2);
        assert_eq!(r.coverage.checks[0].probes, 6);
        assert_eq!(r.coverage.checks[0].hosts, 2);
        let g = &e.coverage[0];
        assert_eq!((g.group.as_deref(), g.hosts, g.probes), (Some("cde"), 2, 6));
        // One open and one closed port: two breaches, mapped as the issue says.
        let mut leaky = quiet.clone();
        leaky.push(obs("198.18.0.1", 8080, Reason::SynAck, None));
        leaky.push(obs("198.18.0.2", 25, Reason::ConnRefused, None));
        let e = evaluate(&policy, &profiles, &catalogue(), &leaky, at("2026-11-24"));
        let breaches: Vec<String> = e
            .findings
            .iter()
            .filter(|f| f.check == "segmentation-breach")
            .map(brief)
            .collect();
        assert_eq!(
            breaches,
            [
                "198.18.0.1 8080 segmentation-breach fail high",
                "198.18.0.2 25 segmentation-breach fail high"
            ]
        );
        let f = find(&e, "198.18.0.2", Some(25), "segmentation-breach");
        assert_eq!(
            f.controls,
            [
                "pci-dss-4.0:1.3.1",
                "pci-dss-4.0:11.4.5",
                "nist-800-53r5:SC-7"
            ]
        );
        assert_eq!(
            f.message,
            "25/tcp on 198.18.0.2 answered (closed, conn-refused) though group 'cde' must be unreachable from this vantage"
        );
        assert_eq!(f.msg.key, "msg.segmentation_breach");
        assert_eq!(pci(&e, "11.4.5").status, RequirementStatus::Fail);
    }

    #[test]
    fn baseline_profiles_judge_hosts_in_no_group() {
        let profiles = Profiles::embedded().unwrap();
        let o = [obs("198.18.9.1", 6379, Reason::SynAck, None)];
        // Default: the general frameworks, not PCI DSS nor 等保.
        let policy = Policy::parse("", "p.toml", &profiles).unwrap();
        let e = evaluate(&policy, &profiles, &catalogue(), &o, at("2026-11-24"));
        let f = find(&e, "198.18.9.1", Some(6379), "high-risk-exposed");
        assert!(
            f.controls
                .iter()
                .all(|c| !c.starts_with("pci-dss") && !c.starts_with("mlps"))
        );
        assert!(f.controls.iter().any(|c| c.starts_with("cis-v8")));
        assert_eq!(e.profiles[0].passed + e.profiles[0].failed, 0);
        // Declared: only those.
        let policy = Policy::parse(
            "baseline_profiles = [\"pci-dss-4.0\"]\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let e = evaluate(&policy, &profiles, &catalogue(), &o, at("2026-11-24"));
        let f = find(&e, "198.18.9.1", Some(6379), "high-risk-exposed");
        assert_eq!(f.controls, ["pci-dss-4.0:1.2.6", "pci-dss-4.0:2.2.5"]);
        let err =
            Policy::parse("baseline_profiles = [\"pci\"]\n", "p.toml", &profiles).unwrap_err();
        assert!(err.to_string().contains("pci"), "{err}");
    }

    #[test]
    fn review_dates_within_six_months() {
        let profiles = Profiles::embedded().unwrap();
        let text = |review: &str| {
            format!(
                "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nprofiles = [\"pci-dss-4.0\"]\n[[group.allow]]\nport = 443\njustification = \"web\"\napprover = \"lead\"\n{review}"
            )
        };
        let o = [obs("198.18.0.1", 443, Reason::SynAck, None)];
        let run = |t: &str| {
            let policy = Policy::parse(t, "p.toml", &profiles).unwrap();
            evaluate(&policy, &profiles, &catalogue(), &o, at("2026-11-24"))
        };
        let e = run(&text(""));
        let f = find(&e, "198.18.0.1", Some(443), "allowed-review-missing");
        assert_eq!(f.controls, ["pci-dss-4.0:1.2.7"]);
        assert_eq!(f.msg.key, "msg.allowed_review_missing.none");
        let e = run(&text("review_by = 2027-06-01\n"));
        assert_eq!(
            find(&e, "198.18.0.1", Some(443), "allowed-review-missing").message,
            "the allowance of 443/tcp (https) (policy line 5) is next reviewed on 2027-06-01, more than six months ahead"
        );
        let e = run(&text("review_by = 2027-05-24\n"));
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        let r = e.profiles[0]
            .requirements
            .iter()
            .find(|r| r.id == "1.2.7")
            .unwrap();
        assert_eq!(r.status, RequirementStatus::Pass);
    }

    #[test]
    fn port_verdicts_record_the_decision() {
        let e = run("2026-11-24");
        let v = e
            .ports
            .iter()
            .find(|p| p.ip.to_string() == "198.18.0.2" && p.port == 22)
            .unwrap();
        assert_eq!(v.group.as_deref(), Some("cardholder"));
        assert_eq!(v.allowed_by.as_ref().unwrap().to_string(), "policy.toml:16");
        assert_eq!(
            v.checks_fired,
            ["allowed-review-overdue", "allowed-unjustified"]
        );
        let v = e
            .ports
            .iter()
            .find(|p| p.ip.to_string() == "198.18.0.2" && p.port == 3389)
            .unwrap();
        assert_eq!(v.allowed_by, None);
        assert_eq!(v.exception.as_deref(), Some("RISK-2"));
        // One verdict per open port, closed ports none.
        let open = observations()
            .iter()
            .filter(|o| o.state == PortState::Open)
            .count();
        assert_eq!(e.ports.len(), open);
    }

    #[test]
    fn every_message_key_has_english_and_chinese_text() {
        let en: toml::Value =
            toml::from_str(include_str!("../../report-templates/i18n/en.toml")).unwrap();
        let zh: toml::Value =
            toml::from_str(include_str!("../../report-templates/i18n/zh-CN.toml")).unwrap();
        let lookup = |v: &toml::Value, key: &str| {
            key.split('.')
                .try_fold(v, |v, k| v.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let e = run("2026-11-24");
        let mut keys: BTreeSet<String> = e.findings.iter().map(|f| f.msg.key.clone()).collect();
        for p in &e.profiles {
            for r in &p.requirements {
                keys.extend(r.reason_msg.iter().map(|m| m.key.clone()));
                for c in &r.coverage.checks {
                    keys.extend(c.reason_msg.iter().map(|m| m.key.clone()));
                }
            }
        }
        assert!(keys.len() > 15, "{keys:?}");
        for k in &keys {
            let text = lookup(&en, k).unwrap_or_else(|| panic!("en.toml lacks {k}"));
            assert!(lookup(&zh, k).is_some(), "zh-CN.toml lacks {k}");
            // Every parameter the text names is given by some finding.
            let _ = text;
        }
        // The finding's parameters fill its English text exactly.
        let f = find(&e, "198.18.0.2", Some(3389), "exception-expired");
        let mut text = lookup(&en, &f.msg.key).unwrap();
        for (k, v) in f.msg.args.iter() {
            text = text.replace(&format!("{{{k}}}"), v);
        }
        assert_eq!(text, f.message);
    }

    /// nmap -sV results: `http` on 9200 and `tcpwrapped` on 6379 keep the
    /// catalogue's service and risk; table guesses (no -sV) are not
    /// identification, so the unauth/TLS checks did not run.
    #[test]
    fn nmap_imports_never_lower_risk_nor_pass_on_guesses() {
        let xml = r#"<?xml version="1.0"?>
<nmaprun scanner="nmap" args="nmap -sV 198.18.0.1" start="1764000000" version="7.94">
<host><status state="up"/><address addr="198.18.0.1" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="9200"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="http" product="Elasticsearch REST API" method="probed" conf="10"/></port>
<port protocol="tcp" portid="6379"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="tcpwrapped" method="probed" conf="8"/></port>
</ports></host>
<host><status state="up"/><address addr="198.18.0.2" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="443"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="https" method="table" conf="3"/></port>
</ports></host>
</nmaprun>"#;
        let run = crate::import::nmap::parse(xml, "scan.xml").unwrap();
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(
            "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.2\"]\nvantage = \"internet\"\nprofiles = [\"cis-v8\"]\n[[group.allow]]\nport = 443\njustification = \"web\"\napprover = \"lead\"\nreview_by = 2027-01-31\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let cat = crate::rules::Catalogue::embedded();
        let e = evaluate(
            &policy,
            &profiles,
            &cat,
            &run.observations,
            at("2026-11-24"),
        );
        let got: Vec<String> = e
            .findings
            .iter()
            .filter(|f| f.port.is_some())
            .map(|f| format!("{} {}", brief(f), f.service.as_deref().unwrap_or("-")))
            .collect();
        assert_eq!(
            got,
            [
                "198.18.0.1 6379 high-risk-exposed fail critical redis",
                "198.18.0.1 9200 high-risk-exposed fail critical elasticsearch",
            ]
        );
        // 198.18.0.2 has only a table guess: tls-cert (CIS 3.10) did not run.
        let r = cis_req(&e, "3.10");
        assert_eq!(r.status, RequirementStatus::Partial);
        assert!(
            r.reason
                .as_deref()
                .unwrap()
                .contains("no service was identified"),
            "{:?}",
            r.reason
        );
        // unauth-service ran on the -sV host only (one host, not two).
        let r = cis_req(&e, "4.7");
        assert_eq!(r.status, RequirementStatus::Partial);
        assert_eq!(r.coverage.checks[0].hosts, 1);
    }
}
