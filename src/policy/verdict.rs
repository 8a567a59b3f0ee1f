//! Policy layer: requirement verdicts from the findings and the evidence.
//!
//! A requirement passes only when every check mapped to it ran over every
//! host it applies to, with the data the check needs, over the port scope
//! its profile asks for, from the right vantage. Otherwise it is `partial`
//! (something ran, with the gaps in words) or `not-assessed` (nothing ran).
//! A requirement whose failures are all covered by exceptions is
//! `accepted`, never `pass`.

use std::collections::BTreeMap;

use super::config::{DEFAULT_BASELINE_PROFILES, Policy};
use super::eval::{HostCtx, NotRun, not_run};
use super::evidence::ScopeTable;
use crate::model::{
    CheckCoverage, Coverage, EvidenceLevel, Finding, FindingStatus, GroupCoverage, Message,
    PortCoverage, ProfileVerdict, RequirementStatus, RequirementVerdict,
};
use crate::rules::profiles::{
    Assessment, CheckCondition, CheckKind, CheckRef, Profile, Requirement,
};

/// Checks about the policy text itself, or the audit calendar: they need no
/// port scope.
pub(super) fn policy_only(k: CheckKind) -> bool {
    matches!(
        k,
        CheckKind::AllowanceIncomplete
            | CheckKind::ExceptionOverlong
            | CheckKind::ExceptionExpired
            | CheckKind::ScanCadence
            | CheckKind::RescanAfterChange
            | CheckKind::SegmentationCadence
    )
}

/// Checks whose evidence is the reachability from the internet.
fn needs_internet(r: &CheckRef) -> bool {
    matches!(
        r.check,
        CheckKind::RemoteAdminInternet | CheckKind::DatabaseInternet
    ) || r.when == CheckCondition::Vantage("internet".into())
}

/// Which checks ran per group (and for the hosts in no group).
pub(super) fn group_coverage(
    policy: &Policy,
    ctxs: &[HostCtx],
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
                .filter(|c| c.in_scope() && c.group_name() == name)
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

/// Coverage of one check over `hosts`: the hosts it ran on and the hosts it
/// had to run on, and every distinct reason it could not.
fn check_coverage(
    label: &str,
    hosts: &[&HostCtx],
    ran: impl Fn(&HostCtx) -> Result<(), NotRun>,
    count_probes: bool,
) -> CheckCoverage {
    let mut on = 0;
    let mut of = 0;
    let mut probes = 0;
    let mut reasons: Vec<NotRun> = Vec::new();
    for c in hosts {
        match ran(c) {
            Ok(()) => {
                on += 1;
                of += 1;
                if count_probes {
                    probes += c.ev.seg_conclusive;
                }
            }
            Err(e) => {
                if !e.nothing_to_judge {
                    of += 1;
                }
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
    let why = if on > 0 && on == of {
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
        of,
        nothing_to_judge: nothing,
        probes,
        reason: why.as_ref().map(|w| w.text.clone()),
        reason_msg: why.map(|w| w.msg),
    }
}

/// `check@tag:x` as written in the profile.
fn ref_label(r: &CheckRef) -> String {
    match &r.when {
        CheckCondition::Always => r.check.as_str().to_string(),
        CheckCondition::Tag(t) => format!("{}@tag:{t}", r.check),
        CheckCondition::Vantage(v) => format!("{}@vantage:{v}", r.check),
        CheckCondition::Unapproved => format!("{}@unapproved", r.check),
    }
}

/// Coverage of one mapped check over the hosts in a profile's scope.
fn ref_coverage(r: &CheckRef, scope: &[&HostCtx], history: bool) -> CheckCoverage {
    let hosts: Vec<&HostCtx> = scope
        .iter()
        .copied()
        .filter(|c| c.satisfies(&r.when, None))
        .collect();
    if hosts.is_empty() && !scope.is_empty() {
        let unproven = scope
            .iter()
            .find_map(|c| c.internet.proof.as_ref().and_then(|v| v.as_ref().err()));
        let (key, text) = match (&r.when, unproven) {
            (CheckCondition::Vantage(v), Some((why, msg))) if v == "internet" => {
                (msg.clone(), why.clone())
            }
            (CheckCondition::Tag(t), _) => (
                Message::new("msg.cov.condition_tag").arg("tag", t),
                format!("no audited host in scope is in a group tagged '{t}'"),
            ),
            (CheckCondition::Vantage(v), _) => (
                Message::new("msg.cov.condition_vantage").arg("vantage", v),
                format!("no audited host in scope is audited from an {v} vantage"),
            ),
            _ => (
                Message::new("msg.cov.no_hosts"),
                "no audited host is in scope".into(),
            ),
        };
        return CheckCoverage {
            check: ref_label(r),
            ran: false,
            hosts: 0,
            of: 0,
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

/// One gap in the evidence: English text and its translation.
struct Gap {
    text: String,
    msg: Message,
}

fn gap(key: &str, text: String, args: &[(&str, String)]) -> Gap {
    let mut msg = Message::new(key);
    for (k, v) in args {
        msg = msg.arg(k, v);
    }
    Gap { text, msg }
}

/// How much of the profile's port scope was probed on the in-scope hosts.
fn port_coverage(
    table: &ScopeTable,
    profile: &str,
    hosts: &[&HostCtx],
) -> Option<(PortCoverage, Vec<Gap>)> {
    let mut cov: Option<PortCoverage> = None;
    let mut gaps = Vec::new();
    let mut short = 0usize;
    for c in hosts {
        let Some(&(_, i)) = c.scopes.iter().find(|(p, _)| *p == profile) else {
            continue;
        };
        let s = &table.scopes[i];
        let (t, u) = c.ev.hits(i);
        let pc = cov.get_or_insert_with(|| PortCoverage {
            scope: s.text.clone(),
            narrowed_by: s.narrowed_by.clone(),
            tcp_required: s.tcp.len(),
            udp_required: s.udp.len(),
            tcp_probed_min: u32::MAX,
            udp_probed_min: u32::MAX,
            hosts_complete: 0,
        });
        if pc.narrowed_by.is_none() {
            pc.narrowed_by = s.narrowed_by.clone();
        }
        pc.tcp_probed_min = pc.tcp_probed_min.min(t);
        pc.udp_probed_min = pc.udp_probed_min.min(u);
        if t >= s.tcp.len() && u >= s.udp.len() {
            pc.hosts_complete += 1;
        } else {
            short += 1;
        }
    }
    let pc = cov?;
    let n = |v: u32| format_count(u64::from(v));
    if pc.tcp_probed_min < pc.tcp_required {
        gaps.push(gap(
            "msg.gap.tcp_ports",
            format!(
                "scanned {} of {} TCP ports of the profile's scope ({}) on the least-covered host; {short} of {} host(s) short",
                n(pc.tcp_probed_min),
                n(pc.tcp_required),
                pc.scope,
                hosts.len()
            ),
            &[
                ("probed", n(pc.tcp_probed_min)),
                ("required", n(pc.tcp_required)),
                ("scope", pc.scope.clone()),
            ],
        ));
    }
    if pc.udp_required > 0 && pc.udp_probed_min < pc.udp_required {
        let (key, text) = if pc.udp_probed_min == 0 {
            (
                "msg.gap.no_udp",
                format!(
                    "no UDP probe of the profile's UDP scope ({}) on at least one host",
                    pc.scope
                ),
            )
        } else {
            (
                "msg.gap.udp_ports",
                format!(
                    "scanned {} of {} UDP ports of the profile's scope on the least-covered host",
                    n(pc.udp_probed_min),
                    n(pc.udp_required)
                ),
            )
        };
        gaps.push(gap(
            key,
            text,
            &[
                ("probed", n(pc.udp_probed_min)),
                ("required", n(pc.udp_required)),
                ("scope", pc.scope.clone()),
            ],
        ));
    }
    Some((pc, gaps))
}

/// `65,535`.
pub(super) fn format_count(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// What the audit knows of the groups behind a profile: their addresses
/// and how many of them were probed.
pub(super) struct GroupReach {
    /// Group name → (addresses declared, addresses probed).
    pub(super) groups: BTreeMap<String, (u128, u64)>,
}

impl GroupReach {
    pub(super) fn new(policy: &Policy, ctxs: &[HostCtx]) -> GroupReach {
        let mut groups = BTreeMap::new();
        for g in &policy.groups {
            let size: u128 = g
                .ranges
                .iter()
                .map(|r| r.hosts())
                .fold(0, u128::saturating_add);
            groups.insert(g.name.clone(), (size, 0u64));
        }
        for c in ctxs {
            for g in &c.groups {
                if let Some(e) = groups.get_mut(&g.name) {
                    e.1 += 1;
                }
            }
        }
        GroupReach { groups }
    }
}

/// Host-level gaps: declared hosts that did not answer, group addresses
/// that were never probed.
fn host_gaps(
    profile: &str,
    policy: &Policy,
    reach: &GroupReach,
    applicable: &[&HostCtx],
) -> Vec<Gap> {
    let mut gaps = Vec::new();
    // A group target naming one address declares a host: its silence is a
    // gap. Silent addresses of a declared range may simply be unused.
    let silent: Vec<&HostCtx> = applicable
        .iter()
        .copied()
        .filter(|c| {
            !c.in_scope()
                && c.groups
                    .iter()
                    .any(|g| g.ranges.iter().any(|r| r.size() == 1 && r.contains(c.ip)))
        })
        .collect();
    if !silent.is_empty() {
        let answered = applicable.iter().filter(|c| c.in_scope()).count();
        let total = answered + silent.len();
        let first = silent
            .iter()
            .map(|c| c.ip.to_string())
            .take(3)
            .collect::<Vec<_>>();
        gaps.push(gap(
            "msg.gap.silent_hosts",
            format!(
                "{answered} of {total} declared hosts answered (silent: {}{}): every probe of theirs was filtered or never sent",
                first.join(", "),
                if silent.len() > 3 { ", …" } else { "" }
            ),
            &[
                ("answered", answered.to_string()),
                ("total", total.to_string()),
                ("hosts", first.join(", ")),
            ],
        ));
    }
    for g in policy
        .groups
        .iter()
        .filter(|g| g.profiles.iter().any(|p| p == profile))
    {
        let Some(&(size, probed)) = reach.groups.get(&g.name) else {
            continue;
        };
        if probed == 0 || u128::from(probed) >= size {
            continue;
        }
        let missing = size - u128::from(probed);
        gaps.push(gap(
            "msg.gap.unprobed",
            format!(
                "{missing} of {size} addresses of group '{}' were not probed",
                g.name
            ),
            &[
                ("missing", missing.to_string()),
                ("size", size.to_string()),
                ("group", g.name.clone()),
            ],
        ));
    }
    gaps
}

/// Everything one requirement's verdict is decided from.
pub(super) struct ReqInput<'a> {
    pub(super) profile: &'a Profile,
    pub(super) table: &'a ScopeTable,
    pub(super) policy: &'a Policy,
    pub(super) reach: &'a GroupReach,
    /// Every probed host whose groups declare the profile.
    pub(super) applicable: &'a [&'a HostCtx<'a>],
    pub(super) findings: &'a [Finding],
    pub(super) history: bool,
}

/// The verdict of one requirement from its coverage and the findings that
/// map to it.
fn requirement_verdict(r: &Requirement, x: &ReqInput) -> RequirementVerdict {
    let key = x.profile.control_ref(r);
    let mapped = |f: &&Finding| f.controls.contains(&key);
    let ids: Vec<String> = x
        .findings
        .iter()
        .filter(|f| f.status.is_failing())
        .filter(mapped)
        .map(|f| f.id.clone())
        .collect();
    let waived: Vec<&Finding> = x
        .findings
        .iter()
        .filter(|f| f.status == FindingStatus::Waived)
        .filter(mapped)
        .collect();
    let scope: Vec<&HostCtx> = x
        .applicable
        .iter()
        .copied()
        .filter(|c| c.in_scope())
        .collect();
    let refs: &[CheckRef] = match &r.assessment {
        Assessment::Checks(refs) => refs,
        Assessment::NotAssessed { .. } => &[],
    };
    let mut coverage = Coverage {
        hosts_in_scope: scope.len(),
        hosts_applicable: x.applicable.len(),
        hosts_answered: x.applicable.iter().filter(|c| c.ev.answered).count(),
        checks: refs
            .iter()
            .map(|c| ref_coverage(c, &scope, x.history))
            .collect(),
        ..Coverage::default()
    };
    let mut gaps: Vec<Gap> = Vec::new();
    let hosts_matter = refs.iter().any(|c| !policy_only(c.check));
    if hosts_matter && !refs.is_empty() {
        gaps.extend(host_gaps(&x.profile.id, x.policy, x.reach, x.applicable));
        if let Some((pc, g)) = port_coverage(x.table, &x.profile.id, &scope) {
            coverage.ports = Some(pc);
            gaps.extend(g);
        }
    }
    if refs.iter().any(needs_internet) {
        coverage.vantage = scope
            .iter()
            .find_map(|c| c.internet.proof.clone())
            .map(|v| v.unwrap_or_else(|(e, _)| e));
    }
    if refs
        .iter()
        .any(|c| c.check == CheckKind::AmplificationVector)
        && scope.iter().any(|c| c.ev.ntp_without_monlist)
    {
        gaps.push(gap(
            "msg.gap.no_monlist",
            "NTP was probed without the monlist request: an NTP amplifier cannot be seen (turn it on with --udp-monlist)".into(),
            &[],
        ));
    }
    for c in coverage.checks.iter().filter(|c| c.ran && c.hosts < c.of) {
        gaps.push(gap(
            "msg.gap.check_partly",
            format!(
                "{} ran on {} of {} hosts ({})",
                c.check,
                c.hosts,
                c.of,
                c.reason.as_deref().unwrap_or("no data")
            ),
            &[
                ("check", c.check.clone()),
                ("hosts", c.hosts.to_string()),
                ("of", c.of.to_string()),
                ("why", c.reason.clone().unwrap_or_default()),
            ],
        ));
    }
    let (status, reason, reason_msg) = decide(r, x, &ids, &waived, &scope, &coverage, &gaps);
    coverage.gaps = gaps.into_iter().map(|g| g.msg).collect();
    RequirementVerdict {
        id: r.id.clone(),
        title_en: r.title_en.clone(),
        title_zh: r.title_zh.clone(),
        status,
        confirmed: r.confirmed,
        reason,
        reason_msg,
        findings: if ids.is_empty() {
            waived.iter().map(|f| f.id.clone()).collect()
        } else {
            ids
        },
        evidence: r.evidence,
        coverage,
    }
}

type Decision = (RequirementStatus, Option<String>, Option<Message>);

fn decide(
    r: &Requirement,
    x: &ReqInput,
    ids: &[String],
    waived: &[&Finding],
    scope: &[&HostCtx],
    coverage: &Coverage,
    gaps: &[Gap],
) -> Decision {
    let not_run: Vec<&CheckCoverage> = coverage
        .checks
        .iter()
        .filter(|c| !c.ran && !c.nothing_to_judge)
        .collect();
    let ran = coverage.checks.iter().filter(|c| c.ran).count();
    let list = |cs: &[&CheckCoverage]| {
        cs.iter()
            .map(|c| format!("{} ({})", c.check, c.reason.as_deref().unwrap_or("no data")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let gap_text = gaps
        .iter()
        .map(|g| g.text.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if !ids.is_empty() {
        return (RequirementStatus::Fail, None, None);
    }
    if let Assessment::NotAssessed { reason } = &r.assessment {
        return (
            RequirementStatus::NotAssessed,
            Some(reason.clone()),
            Some(Message::new("msg.req.scan_cannot_judge").arg("text", reason)),
        );
    }
    if !waived.is_empty() {
        let exceptions: Vec<&str> = {
            let mut v: Vec<&str> = waived
                .iter()
                .filter_map(|f| f.exception.as_deref())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let text = format!(
            "{} finding(s) would fail it but are waived by exception(s) {}: the risk is accepted, not met",
            waived.len(),
            exceptions.join(", ")
        );
        return (
            RequirementStatus::Accepted,
            Some(text),
            Some(
                Message::new("msg.req.accepted")
                    .arg("count", waived.len())
                    .arg("exceptions", exceptions.join(", ")),
            ),
        );
    }
    if scope.is_empty() {
        if x.applicable.is_empty() {
            return (
                RequirementStatus::NotAssessed,
                Some("no audited host is in a group that declares this profile".to_string()),
                Some(Message::new("msg.req.out_of_scope")),
            );
        }
        let n = x.applicable.len();
        return (
            RequirementStatus::NotAssessed,
            Some(format!(
                "none of the {n} probed host(s) this profile applies to answered: every probe was filtered or never sent"
            )),
            Some(Message::new("msg.req.none_answered").arg("count", n)),
        );
    }
    if ran == 0 {
        let all: Vec<&CheckCoverage> = coverage.checks.iter().collect();
        let why = list(&all);
        return (
            RequirementStatus::NotAssessed,
            Some(format!("none of its checks could run: {why}")),
            Some(Message::new("msg.req.nothing_ran").arg("checks", why)),
        );
    }
    if !not_run.is_empty() || !gaps.is_empty() {
        let mut why = list(&not_run);
        if !gap_text.is_empty() {
            if !why.is_empty() {
                why.push_str("; ");
            }
            why.push_str(&gap_text);
        }
        return (
            RequirementStatus::Partial,
            Some(format!(
                "no findings, but the evidence is incomplete: {why}"
            )),
            Some(Message::new("msg.req.some_not_run").arg("checks", why)),
        );
    }
    if r.evidence == EvidenceLevel::Partial {
        return (
            RequirementStatus::Partial,
            Some(
                "no findings (partial evidence): a scan can show this requirement failing, never that it is met"
                    .to_string(),
            ),
            Some(Message::new("msg.req.partial_evidence")),
        );
    }
    (RequirementStatus::Pass, None, None)
}

/// The profiles the policy declares: its groups' and the baseline's (the
/// default baseline when it names none).
fn declared(policy: &Policy) -> Vec<Vec<&str>> {
    let mut sets: Vec<Vec<&str>> = policy
        .groups
        .iter()
        .map(|g| g.profiles.iter().map(String::as_str).collect())
        .collect();
    sets.push(match &policy.baseline_profiles {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => DEFAULT_BASELINE_PROFILES.to_vec(),
    });
    sets
}

pub(super) fn verdicts(
    policy: &Policy,
    profiles: &crate::rules::profiles::Profiles,
    table: &ScopeTable,
    ctxs: &[HostCtx],
    findings: &[Finding],
    history: bool,
) -> Vec<ProfileVerdict> {
    let reach = GroupReach::new(policy, ctxs);
    let sets = declared(policy);
    let mut out = Vec::new();
    for p in profiles.profiles() {
        // A profile reported only where declared; an extension's
        // requirement only where its level is declared beside it.
        let beside = |other: &str| {
            sets.iter()
                .any(|s| s.contains(&p.id.as_str()) && s.contains(&other))
        };
        if p.when_declared && !beside(&p.id) {
            continue;
        }
        let applicable: Vec<&HostCtx> = ctxs
            .iter()
            .filter(|c| c.profiles.contains(&p.id.as_str()))
            .collect();
        let mut reqs = Vec::with_capacity(p.requirements.len());
        for r in &p.requirements {
            let level_hosts: Vec<&HostCtx>;
            let hosts: &[&HostCtx] = match &r.level {
                None => &applicable,
                Some(l) if beside(l) => {
                    level_hosts = applicable
                        .iter()
                        .copied()
                        .filter(|c| c.profiles.contains(&l.as_str()))
                        .collect();
                    &level_hosts
                }
                Some(_) => continue,
            };
            let x = ReqInput {
                profile: p,
                table,
                policy,
                reach: &reach,
                applicable: hosts,
                findings,
                history,
            };
            reqs.push(requirement_verdict(r, &x));
        }
        out.push(profile_verdict(p, reqs));
    }
    out
}

fn profile_verdict(p: &Profile, reqs: Vec<RequirementVerdict>) -> ProfileVerdict {
    // Every figure counts only confirmed mappings: an unconfirmed one (†) is
    // shown and marked on its row and counted apart (`unconfirmed`), never
    // in passed, failed or any other status. No percentage while anything
    // is partial, accepted or not assessed: it would read as compliance.
    let count = |s| reqs.iter().filter(|r| r.confirmed && r.status == s).count();
    let (sp, sf) = (
        count(RequirementStatus::Pass),
        count(RequirementStatus::Fail),
    );
    let incomplete = count(RequirementStatus::Partial)
        + count(RequirementStatus::NotAssessed)
        + count(RequirementStatus::Accepted);
    ProfileVerdict {
        profile: p.id.clone(),
        name: p.name.clone(),
        passed: sp,
        failed: sf,
        not_assessed: count(RequirementStatus::NotAssessed),
        partial: count(RequirementStatus::Partial),
        accepted: count(RequirementStatus::Accepted),
        unconfirmed: reqs.iter().filter(|r| !r.confirmed).count(),
        score: (sp + sf > 0 && incomplete == 0).then(|| sp as f64 / (sp + sf) as f64),
        requirements: reqs,
    }
}
