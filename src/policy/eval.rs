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

use super::cadence::CadenceGate;
use super::catalogue::{PortCatalogue, PortFacts};
use super::config::{
    AllowRule, ChangeState, DEFAULT_BASELINE_PROFILES, Exception, ExceptionState, ExceptionTarget,
    Expect, Group, Policy, Vantage,
};
use super::evidence::{EvalContext, HostEvidence, ScopeTable};
use super::verdict;
use crate::model::{
    AuthStatus, Controls, Evidence, ExceptionVerdict, Finding, FindingStatus, GroupCoverage,
    Message, Observation, PortState, PortVerdict, ProfileVerdict, Proto, RuleRef, Severity,
};
use crate::rules::profiles::{Assessment, CheckCondition, CheckKind, CheckParams, Profiles};

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
    /// Every exception of the policy, with its state as of the audit day.
    pub exceptions: Vec<ExceptionVerdict>,
    /// A policy file was given (else every host is judged by the baseline).
    pub policy_given: bool,
    /// Per reported profile: each asset × each requirement (测评对象).
    #[serde(default)]
    pub assets: Vec<crate::model::ProfileAssets>,
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
pub(super) struct NotRun {
    pub(super) msg: Message,
    pub(super) text: String,
    /// Nothing of the check's kind exists (no exception, no allowance):
    /// not missing data, so it does not keep a requirement from passing.
    pub(super) nothing_to_judge: bool,
}

pub(super) fn not_run(key: &str, text: &str) -> NotRun {
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
pub(super) struct HostCtx<'a> {
    pub(super) ip: IpAddr,
    pub(super) groups: Vec<&'a Group>,
    /// The declared vantage of its groups.
    pub(super) vantage: Vantage,
    /// For a group declared `internet`: the measured vantage that proves
    /// it, or why it does not (English and translatable).
    pub(super) internet: Option<Result<String, (String, Message)>>,
    cap: Option<usize>,
    pub(super) profiles: Vec<&'a str>,
    tags: Vec<&'a str>,
    /// In a group that must be unreachable from this vantage.
    pub(super) unreachable: bool,
    /// Some probe of this audit reached a live host from this vantage: the
    /// control a segmentation test needs.
    pub(super) control: bool,
    /// Open ports, and those identification named with confidence.
    open: usize,
    identified: usize,
    /// Probes concluded on the host (any state).
    pub(super) probes: u64,
    /// Exceptions of the policy that cover the host.
    exceptions: usize,
    /// What the probes show beyond the open ports.
    pub(super) ev: HostEvidence,
    /// The port scope each of its profiles asks for (index in the audit's
    /// [`ScopeTable`]).
    pub(super) scopes: Vec<(&'a str, usize)>,
    /// What the audit history lets the calendar checks judge.
    pub(super) cadence: CadenceGate,
}

impl<'a> HostCtx<'a> {
    fn new(
        policy: &'a Policy,
        profiles: &'a Profiles,
        ip: IpAddr,
        table: &ScopeTable,
        audit_internet: &Result<String, (String, Message)>,
    ) -> HostCtx<'a> {
        let groups = policy.groups_of(ip);
        let mut ctx = HostCtx {
            ip,
            groups: Vec::new(),
            vantage: Vantage::Internal,
            internet: None,
            cap: None,
            profiles: Vec::new(),
            tags: Vec::new(),
            unreachable: false,
            control: false,
            open: 0,
            identified: 0,
            probes: 0,
            exceptions: 0,
            ev: HostEvidence::default(),
            scopes: Vec::new(),
            cadence: CadenceGate::default(),
        };
        if groups.is_empty() {
            let baseline: Vec<&str> = match &policy.baseline_profiles {
                Some(list) => list.iter().map(String::as_str).collect(),
                None => DEFAULT_BASELINE_PROFILES.to_vec(),
            };
            ctx.profiles = profiles
                .ids()
                .into_iter()
                .filter(|p| baseline.contains(p))
                .collect();
        } else {
            // Overlapping groups were checked to agree on vantage and cap.
            ctx.vantage = groups[0].vantage;
            ctx.cap = groups.iter().find_map(|g| g.max_open_ports);
            let declared: BTreeSet<&str> = groups
                .iter()
                .flat_map(|g| g.profiles.iter().map(String::as_str))
                .collect();
            ctx.profiles = profiles
                .ids()
                .into_iter()
                .filter(|p| declared.contains(p))
                .collect();
            ctx.tags = groups
                .iter()
                .flat_map(|g| g.tags.iter().map(String::as_str))
                .collect();
            ctx.unreachable = groups.iter().any(|g| g.expect == Expect::Unreachable);
            ctx.groups = groups;
        }
        // From a proven internet vantage every host that answers is
        // reachable from the internet, whatever its group declares; else a
        // group declared internet lacks the evidence, and the others have
        // no internet exposure to judge.
        ctx.internet = match (audit_internet, ctx.vantage) {
            (Ok(t), _) => Some(Ok(t.clone())),
            (Err(e), Vantage::Internet) => Some(Err(e.clone())),
            _ => None,
        };
        ctx.scopes = ctx
            .profiles
            .iter()
            .filter_map(|p| table.of(p, &ctx.groups).map(|i| (*p, i)))
            .collect();
        ctx
    }

    /// The vantage is proven to be the internet.
    fn seen_from_internet(&self) -> bool {
        matches!(self.internet, Some(Ok(_)))
    }

    pub(super) fn managed(&self) -> bool {
        !self.groups.is_empty()
    }

    /// The host answered, or its silence is the evidence (segmentation).
    pub(super) fn in_scope(&self) -> bool {
        self.ev.answered || self.unreachable
    }

    pub(super) fn group_name(&self) -> Option<String> {
        self.groups.first().map(|g| g.name.clone())
    }

    /// The first allowance, over every group of the host, that admits the port.
    pub(super) fn allowance(&self, port: u16, proto: Proto) -> Option<&'a AllowRule> {
        self.groups
            .iter()
            .flat_map(|g| g.allow.iter())
            .find(|a| a.matches(port, proto))
    }

    fn allowances(&self) -> usize {
        self.groups.iter().map(|g| g.allow.len()).sum()
    }

    /// Whether a mapping's condition holds for the host (`@unapproved` is
    /// judged per finding, so it holds for every host).
    pub(super) fn satisfies(&self, cond: &CheckCondition) -> bool {
        match cond {
            CheckCondition::Always | CheckCondition::Unapproved => true,
            CheckCondition::Tag(t) => self.tags.iter().any(|x| x.eq_ignore_ascii_case(t)),
            CheckCondition::Vantage(v) if v == "internet" => self.seen_from_internet(),
            CheckCondition::Vantage(v) => self.vantage.as_str() == v,
        }
    }

    /// Whether `check` ran on this host with the data it needs.
    pub(super) fn ran(&self, check: CheckKind, history: bool) -> Result<(), NotRun> {
        let identified = || {
            if self.open == 0 {
                // Nothing open: nothing for these checks to judge, which is
                // no gap in the evidence.
                Err(nothing_to_judge(
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
        let internet = || match &self.internet {
            Some(Ok(_)) => Ok(()),
            Some(Err((why, msg))) => Err(NotRun {
                msg: msg.clone(),
                text: why.clone(),
                nothing_to_judge: false,
            }),
            None => Err(nothing_to_judge(
                "msg.cov.no_internet_vantage",
                "no host in scope is internet-facing by declaration (vantage = \"internet\") and the audit did not run from a proven internet vantage",
            )),
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
        let exceptions = || {
            if self.exceptions > 0 {
                Ok(())
            } else {
                Err(nothing_to_judge(
                    "msg.cov.no_exceptions",
                    "no exception of the policy covers the hosts in scope",
                ))
            }
        };
        match check {
            CheckKind::HighRiskExposed | CheckKind::CleartextAdmin => Ok(()),
            CheckKind::ExceptionExpired | CheckKind::ExceptionOverlong => exceptions(),
            CheckKind::NotAllowed => managed(),
            CheckKind::RemoteAdminInternet | CheckKind::DatabaseInternet => internet(),
            CheckKind::TlsCert => identified(),
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
            | CheckKind::AllowedReviewMissing
            | CheckKind::AllowanceUnused
            | CheckKind::AllowanceIncomplete => allowances(),
            CheckKind::UnexpectedService => {
                managed()?;
                identified()
            }
            CheckKind::UnauthService => identified(),
            CheckKind::AmplificationVector => self.udp_ran(self.ev.udp_judged > 0),
            CheckKind::SnmpDefaultCommunity => self.udp_ran(self.ev.snmp_judged),
            CheckKind::UnmanagedHost => {
                if self.managed() {
                    Err(nothing_to_judge(
                        "msg.cov.all_managed",
                        "every host of this scope is in a group (hosts outside every group are judged by the baseline profiles)",
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
            CheckKind::SegmentationBreach => self.segmentation_ran(),
            CheckKind::ScanCadence
            | CheckKind::RescanAfterChange
            | CheckKind::SegmentationCadence => super::cadence::ran(check, &self.cadence, self),
        }
    }

    fn udp_ran(&self, judged: bool) -> Result<(), NotRun> {
        if judged {
            Ok(())
        } else if self.ev.udp_sent > 0 {
            Err(not_run(
                "msg.cov.udp_no_evidence",
                "the UDP probes carried no service request and name no service (a bare import): their answers cannot show an amplifier",
            ))
        } else {
            Err(not_run(
                "msg.cov.no_udp",
                "no UDP port was probed on the hosts in scope (add UDP ports, e.g. high-risk-udp)",
            ))
        }
    }

    /// A segmentation test needs conclusive probes (a reject, or TCP
    /// silence after the retries) and a control probe that reached a live
    /// host from the same vantage; a probe never sent proves nothing.
    fn segmentation_ran(&self) -> Result<(), NotRun> {
        if !self.unreachable {
            return Err(not_run(
                "msg.cov.no_segmentation_test",
                "no group in scope declares expect = \"unreachable\" (no segmentation test)",
            ));
        }
        if self.ev.seg_conclusive == 0 {
            let text = format!(
                "no conclusive probe: {} never sent (local errors), {} UDP probes open|filtered (silence does not prove isolation for UDP)",
                self.ev.local_errors,
                self.ev.sent.saturating_sub(self.ev.seg_conclusive)
            );
            return Err(NotRun {
                msg: Message::new("msg.cov.seg_inconclusive")
                    .arg("local", self.ev.local_errors)
                    .arg(
                        "silent",
                        self.ev.sent.saturating_sub(self.ev.seg_conclusive),
                    ),
                text,
                nothing_to_judge: false,
            });
        }
        if !self.control {
            return Err(not_run(
                "msg.cov.seg_no_control",
                "no probe of this audit reached a live host (open or closed): the path to the segment is unproven (scan a control host that answers)",
            ));
        }
        Ok(())
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
pub(super) struct PortView {
    /// The service judged.
    pub(super) name: Option<String>,
    /// Its facts, with `risk` the effective risk.
    facts: Option<PortFacts>,
    /// Identification named a service with confidence.
    identified: bool,
    tls: bool,
    pub(super) catalogue: Option<PortFacts>,
    pub(super) identified_name: Option<String>,
    pub(super) identified_risk: Option<Severity>,
}

impl PortView {
    pub(super) fn risk(&self) -> Option<Severity> {
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
pub(super) fn view(cat: &dyn PortCatalogue, o: &Observation) -> PortView {
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
            if let Some(due) = rule.review_by.filter(|_| rule.review_overdue(today)) {
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
    // Reachability from the internet is asserted only from a measured
    // internet vantage, never from the group's declaration alone.
    if ctx.seen_from_internet() {
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
    }
    // Certificates matter inside too: judged from every vantage.
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
    // A path into a segment that must be unreachable is never waived.
    let waivable = d.check != CheckKind::SegmentationBreach;
    target && port && check && waivable
}

/// The requirements a finding of `check` counts against on this host;
/// `approved`: the finding's port has a justified, approved allowance
/// (mappings marked `@unapproved` then leave it out).
pub(super) fn controls(
    profiles: &Profiles,
    ctx: &HostCtx,
    check: CheckKind,
    approved: bool,
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
                        && ctx.satisfies(&c.when)
                        && !(approved && c.when == CheckCondition::Unapproved)
                })
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

/// Evaluates observations against the policy and the profiles, with no
/// evidence beyond the observations (no vantage, no history, no UDP
/// payloads): see [`evaluate_in`].
pub fn evaluate(
    policy: &Policy,
    profiles: &Profiles,
    catalogue: &dyn PortCatalogue,
    observations: &[Observation],
    now: DateTime<Utc>,
) -> Evaluation {
    evaluate_in(
        policy,
        profiles,
        catalogue,
        observations,
        &EvalContext::bare(now),
    )
}

/// Evaluates observations against the policy and the profiles, with what
/// the audit measured besides them (`cx`: vantage, previous run, UDP
/// payloads). Only the newest observation of each (address, port,
/// protocol) counts. Without a baseline, `unapproved-change` has not run,
/// and the requirements it maps to say so.
pub fn evaluate_in(
    policy: &Policy,
    profiles: &Profiles,
    catalogue: &dyn PortCatalogue,
    observations: &[Observation],
    cx: &EvalContext,
) -> Evaluation {
    let now = cx.now;
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
    // an unreachable group, whose silence is the evidence. The others are
    // counted as applicable hosts that did not answer.
    let mut probed: BTreeMap<IpAddr, Vec<&Observation>> = BTreeMap::new();
    for o in latest.values() {
        probed.entry(o.ip).or_default().push(o);
    }
    let control = latest
        .values()
        .any(|o| matches!(o.state, PortState::Open | PortState::Closed));
    let table = ScopeTable::new(policy, profiles, catalogue);
    let audit_internet = cx.vantage.internet().map_err(|why| {
        let msg = cx
            .vantage
            .internet_gap()
            .unwrap_or_else(|| Message::new("msg.cov.no_internet_vantage"));
        (why, msg)
    });

    let mut findings = Vec::new();
    // One copy of each distinct control list, shared by its findings.
    let mut shared_controls: HashSet<Controls> = HashSet::new();
    let mut ctxs = Vec::new();
    let cadence = CadenceGate::new(cx.audits, policy, now);
    for (&ip, all) in &probed {
        let mut ctx = HostCtx::new(policy, profiles, ip, &table, &audit_internet);
        let scopes: Vec<usize> = ctx.scopes.iter().map(|(_, i)| *i).collect();
        ctx.ev = HostEvidence::of(all, &cx.udp, &table, &scopes, ctx.unreachable);
        ctx.control = control;
        ctx.cadence = cadence;
        ctx.probes = all.len() as u64;
        if !ctx.in_scope() {
            ctxs.push(ctx);
            continue;
        }
        let open: Vec<&Observation> = all
            .iter()
            .copied()
            .filter(|o| o.state == PortState::Open)
            .collect();
        ctx.open = open.len();
        ctx.identified = open.iter().filter(|o| is_identified(o)).count();
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
                cx.baseline,
                &mut drafts,
            );
        }
        host_checks(policy, profiles, &ctx, ip, &open, &mut drafts);
        let first = findings.len();
        for d in drafts {
            settle(policy, profiles, &ctx, d, today, &mut findings);
        }
        for f in &mut findings[first..] {
            match shared_controls.get(&f.controls) {
                Some(c) => f.controls = c.clone(),
                None => {
                    shared_controls.insert(f.controls.clone());
                }
            }
        }
        ctxs.push(ctx);
    }
    super::review::allowance_checks(policy, profiles, &ctxs, &latest, &mut findings);
    super::cadence::cadence_checks(policy, profiles, &ctxs, cx.audits, now, &mut findings);

    findings.sort_by(|a, b| {
        (a.ip, a.port, a.proto, a.check.as_str()).cmp(&(b.ip, b.port, b.proto, b.check.as_str()))
    });
    findings.dedup_by(|a, b| a.id == b.id);
    let ports = super::ports::port_verdicts(policy, catalogue, &ctxs, &latest, &findings, today);
    let history = cx.baseline.is_some();
    let coverage = verdict::group_coverage(policy, &ctxs, history);
    let verdicts = verdict::verdicts(policy, profiles, &table, &ctxs, &findings, history);
    let assets =
        super::assets::asset_results(profiles, &verdicts, &table, &ctxs, &findings, history);
    Evaluation {
        findings,
        profiles: verdicts,
        ports,
        coverage,
        exceptions: exception_verdicts(policy, today),
        policy_given: policy.given,
        assets,
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
            // Without a policy file there are no groups at all: a message of
            // its own, so no renderer has to recognise a placeholder name.
            msg: if policy.given {
                Message::new("msg.unmanaged_host").arg("policy", &policy.file)
            } else {
                Message::new("msg.unmanaged_host_no_policy")
            }
            .arg("ip", ip)
            .arg("count", open.len())
            .arg("ports", &ports),
        });
    }
}

/// Applies the exceptions to a draft and records the finding (plus an
/// `exception-expired` finding when a lapsed exception was all that covered it).
fn settle(
    policy: &Policy,
    profiles: &Profiles,
    ctx: &HostCtx,
    d: Draft,
    today: NaiveDate,
    out: &mut Vec<Finding>,
) {
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
            controls: controls(profiles, ctx, check, approved),
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
        controls: controls(profiles, ctx, d.check, approved),
        remediation: profiles.check(d.check).remediation.clone(),
        message,
        msg,
        allowed_by,
    });
}

/// Every exception with its state as of `today`.
fn exception_verdicts(policy: &Policy, today: NaiveDate) -> Vec<ExceptionVerdict> {
    policy
        .exceptions
        .iter()
        .map(|e| ExceptionVerdict {
            id: e.id.clone(),
            line: e.line,
            target: e.target_spec.clone(),
            ports: e
                .ports
                .map(|p| format!("{p}/{}", e.proto))
                .unwrap_or_else(|| "all".into()),
            check: e.check.map(|c| c.as_str().to_string()),
            state: e.state(today).as_str().to_string(),
            expires: e.expires,
            days_left: (e.expires - today).num_days(),
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

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
