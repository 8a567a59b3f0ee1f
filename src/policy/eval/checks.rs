//! The checks of one host: each open port against its allowance, how the
//! service is exposed, segmentation, changes since the previous run, and
//! the host-level cap and unmanaged-host checks. They produce drafts;
//! [`super::settle`] applies the exceptions and records findings.

use chrono::{Months, NaiveDate};

use super::super::catalogue::{PortCatalogue, PortFacts};
use super::super::config::{AllowRule, ChangeState};
use super::Evaluator;
use super::host::HostCtx;
use crate::model::{AuthStatus, Evidence, Message, Observation, PortState, Proto, Severity};
use crate::rules::profiles::{CheckKind, CheckParams};

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
    pub(super) facts: Option<PortFacts>,
    /// Identification named a service with confidence.
    pub(super) identified: bool,
    pub(super) tls: bool,
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

pub(super) fn is_identified(o: &Observation) -> bool {
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

/// A check that fired on a port, before the port's fields are added.
type Item = (CheckKind, Severity, String, Message);

pub(super) struct Draft {
    pub(super) check: CheckKind,
    pub(super) severity: Severity,
    pub(super) port: Option<u16>,
    pub(super) proto: Option<Proto>,
    pub(super) service: Option<String>,
    pub(super) evidence: Evidence,
    pub(super) message: String,
    pub(super) msg: Message,
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

impl Evaluator<'_> {
    /// The checks of one open port.
    pub(super) fn port_checks(&self, ctx: &HostCtx, o: &Observation, out: &mut Vec<Draft>) {
        let v = view(self.cat, o);
        let label = port_label(o, &v);
        let mut items = Vec::new();
        self.allowance_checks(ctx, o, &v, &label, &mut items);
        self.exposure_checks(ctx, &v, &label, &mut items);
        self.tls_checks(o, &label, &mut items);
        let profiles = self.profiles;
        let mut push = |check: CheckKind, severity: Severity, message: String, msg: Message| {
            items.push((check, severity, message, msg))
        };
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
        for (check, message, msg) in super::super::udp::udp_checks(o, &label) {
            push(check, profiles.check(check).severity, message, msg);
        }
        for (check, severity, message, msg) in items {
            out.push(Draft {
                check,
                severity,
                port: Some(o.port),
                proto: Some(o.proto),
                service: v.name.clone(),
                evidence: evidence(o),
                message,
                msg: msg.arg("port", &label),
            });
        }
    }

    /// The checks that depend on the port's allowance: none (not allowed,
    /// high-risk exposed), or one that lacks a justification, a review or the
    /// service it names.
    fn allowance_checks(
        &self,
        ctx: &HostCtx,
        o: &Observation,
        v: &PortView,
        label: &str,
        items: &mut Vec<Item>,
    ) {
        let Evaluator {
            profiles, today, ..
        } = *self;
        let mut push = |check: CheckKind, severity: Severity, message: String, msg: Message| {
            items.push((check, severity, message, msg))
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
                        format!(
                            "high-risk port {label} (risk {r}) is exposed without an allowance"
                        ),
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
                        (false, true) => {
                            ("a justification", "msg.allowed_unjustified.justification")
                        }
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
    }

    /// How the service is exposed: in cleartext, or to the internet (asserted
    /// only from a measured internet vantage).
    fn exposure_checks(&self, ctx: &HostCtx, v: &PortView, label: &str, items: &mut Vec<Item>) {
        let profiles = self.profiles;
        let mut push = |check: CheckKind, severity: Severity, message: String, msg: Message| {
            items.push((check, severity, message, msg))
        };
        let p = profiles.check(CheckKind::CleartextAdmin);
        if !v.tls && selects(p, v) {
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
            if selects(p, v) {
                push(
                    CheckKind::RemoteAdminInternet,
                    p.severity,
                    format!("remote administration {label} is reachable from the internet"),
                    Message::new("msg.remote_admin_internet"),
                );
            }
            let p = profiles.check(CheckKind::DatabaseInternet);
            if selects(p, v) {
                push(
                    CheckKind::DatabaseInternet,
                    p.severity,
                    format!("database/cache {label} is reachable from the internet"),
                    Message::new("msg.database_internet"),
                );
            }
        }
    }

    /// The certificate of a TLS service, judged from every vantage.
    fn tls_checks(&self, o: &Observation, label: &str, items: &mut Vec<Item>) {
        let Evaluator { profiles, now, .. } = *self;
        let mut push = |check: CheckKind, severity: Severity, message: String, msg: Message| {
            items.push((check, severity, message, msg))
        };
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
    }

    /// `segmentation-breach`: a port of a host that must be unreachable from
    /// this vantage answered (open or closed: either way a packet got through).
    pub(super) fn segmentation_check(&self, ctx: &HostCtx, o: &Observation, out: &mut Vec<Draft>) {
        let Evaluator { profiles, cat, .. } = *self;
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

    /// Host-level checks: the group's cap, and a host in no group.
    pub(super) fn host_checks(
        &self,
        ctx: &HostCtx,
        open: &[&Observation],
        drafts: &mut Vec<Draft>,
    ) {
        let Evaluator {
            policy, profiles, ..
        } = *self;
        let ip = ctx.ip;
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

    /// `unapproved-change`: a port opened since the previous run that no active
    /// change record (nor a justified allowance) covers, and a port a temporary
    /// change opened that is still open after the change's window.
    pub(super) fn change_checks(&self, ctx: &HostCtx, o: &Observation, out: &mut Vec<Draft>) {
        let Evaluator {
            policy,
            profiles,
            cat,
            today,
            baseline,
            ..
        } = *self;
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
}
