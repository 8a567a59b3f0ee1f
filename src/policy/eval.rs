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

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cadence::CadenceGate;
use super::catalogue::PortCatalogue;
use super::config::{ExceptionTarget, Policy};
use super::evidence::{EvalContext, HostEvidence, ScopeTable};
use super::verdict;
use crate::model::{
    Controls, ExceptionVerdict, Finding, GroupCoverage, Observation, PortState, PortVerdict,
    ProfileVerdict, Proto, Severity,
};
use crate::rules::profiles::{CheckKind, Profiles};

mod checks;
mod host;
mod settle;

use crate::model::Message;
use checks::is_identified;
pub(super) use host::{HostCtx, NotRun, not_run};
pub(super) use settle::controls;

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

/// What the audit history knows of the previous run of the same scope:
/// the ports open then. A port open now and not then is a change, which an
/// approved `[[change]]` record (or a justified allowance) must cover.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Baseline {
    /// The previous run's id in the history.
    pub run: i64,
    pub open: BTreeSet<(IpAddr, u16, Proto)>,
}

/// What every check of one audit reads besides the host and the port: the
/// policy, the profiles, the port catalogue, the audit's day and the
/// previous run. One value, so the checks take `&self` and the host.
#[derive(Clone, Copy)]
pub(super) struct Evaluator<'a> {
    pub(super) policy: &'a Policy,
    pub(super) profiles: &'a Profiles,
    pub(super) cat: &'a dyn PortCatalogue,
    pub(super) today: NaiveDate,
    pub(super) now: DateTime<Utc>,
    pub(super) baseline: Option<&'a Baseline>,
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
    let ev = Evaluator {
        policy,
        profiles,
        cat: catalogue,
        today,
        now,
        baseline: cx.baseline,
    };
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
        let audit = (&cx.vantage, &audit_internet);
        let mut ctx = HostCtx::new(policy, profiles, ip, &table, audit, &cx.scans);
        let scopes: Vec<usize> = ctx.scopes.iter().map(|(_, i)| *i).collect();
        ctx.ev = HostEvidence::of(all, &cx.udp, &table, &scopes, ctx.unreachable);
        // The segmentation evidence: the audit's, or its segment's vantages'.
        (ctx.ev.seg_conclusive, ctx.control) =
            ctx.segment.evidence((ctx.ev.seg_conclusive, control));
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
        for o in ctx.segment.answers(all) {
            ev.segmentation_check(&ctx, o, &mut drafts);
        }
        for o in &open {
            ev.port_checks(&ctx, o, &mut drafts);
            ev.change_checks(&ctx, o, &mut drafts);
        }
        ev.host_checks(&ctx, &open, &mut drafts);
        let first = findings.len();
        for d in drafts {
            ev.settle(&ctx, d, &mut findings);
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
    let ports = ev.port_verdicts(&ctxs, &latest, &findings);
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
        exceptions: settle::exception_verdicts(policy, today),
        policy_given: policy.given,
        assets,
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
