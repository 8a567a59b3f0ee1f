//! Policy layer: the audit calendar, judged from the history of the same
//! scope.
//!
//! PCI DSS asks for scans at least once every three months (11.3.1,
//! 11.3.2) and after every significant change (11.3.1.3, 11.3.2.1), and for
//! segmentation tests every 12 months, or 6 for service providers (11.4.5,
//! 11.4.6); 等保 8.1.10.5 b), NIST RA-5 / CA-2 and CIS 7.5 ask the same in
//! their words. One audit cannot show a calendar: the store records every
//! run of a scope, and the caller passes their dates here as an
//! [`AuditHistory`]. Three checks read it:
//!
//! * `scan-cadence`: over the last 12 months, consecutive audits of the
//!   scope (this one included) are at most 92 days apart; judged only when
//!   the history reaches back far enough to cover the year;
//! * `rescan-after-change`: each approved `[[change]]` of the last 12 months
//!   was followed by an audit of the scope within 30 days;
//! * `segmentation-cadence`: each segment group (`expect = "unreachable"`)
//!   was tested at most 12 months apart (6 when the group is tagged
//!   `service-provider`, the policy's flag for PCI DSS 11.4.6).
//!
//! Without a history (`--no-store`, no `--store`) or with no earlier audit
//! of the scope, the checks have not run: the requirements they map to are
//! `not-assessed` with that reason, never `pass`.
//!
//! Pure: dates in, findings and coverage out.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::config::{ExceptionTarget, Expect, Group, Policy};
use super::eval::{HostCtx, NotRun, controls, finding_id, not_run};
use crate::model::{Finding, FindingStatus, Message};
use crate::rules::profiles::{CheckKind, Profiles};

/// What the history knows of the earlier audits of this audit's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditHistory {
    /// When each earlier audit of the same scope finished, oldest first.
    pub earlier: Vec<DateTime<Utc>>,
}

/// Longest gap between two audits of a scope (PCI DSS: "at least once
/// every three months").
pub const SCAN_INTERVAL_DAYS: i64 = 92;
/// The window the calendar is judged over.
pub const WINDOW_DAYS: i64 = 365;
/// An audit must follow an approved change within this many days.
pub const RESCAN_DAYS: i64 = 30;
/// Longest gap between two segmentation tests of a segment group.
pub const SEGMENT_DAYS: i64 = 365;
/// The same for a service provider (PCI DSS 11.4.6: every six months).
pub const SEGMENT_PROVIDER_DAYS: i64 = 183;
/// The group tag that makes a segment group a service provider's.
pub const SERVICE_PROVIDER_TAG: &str = "service-provider";

/// What every host's cadence checks see, computed once per audit.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CadenceGate {
    /// The audit has a history at all.
    store: bool,
    /// Earlier audits of the scope in it.
    earlier: usize,
    /// Days from the oldest earlier audit to this one.
    reach_days: i64,
    /// Approved changes that started in the last 12 months.
    changes: usize,
}

impl CadenceGate {
    pub(super) fn new(
        history: Option<&AuditHistory>,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> CadenceGate {
        let Some(h) = history else {
            return CadenceGate::default();
        };
        let today = now.date_naive();
        let earlier = earlier_days(h, today);
        CadenceGate {
            store: true,
            earlier: earlier.len(),
            reach_days: earlier.first().map_or(0, |d| (today - *d).num_days()),
            changes: recent_changes(policy, today).count(),
        }
    }
}

/// The group's longest allowed gap between segmentation tests.
fn segment_limit(groups: &[&Group]) -> i64 {
    if groups
        .iter()
        .any(|g| g.tags.iter().any(|t| t == SERVICE_PROVIDER_TAG))
    {
        SEGMENT_PROVIDER_DAYS
    } else {
        SEGMENT_DAYS
    }
}

/// Whether a cadence check could judge this host's scope.
pub(super) fn ran(check: CheckKind, gate: &CadenceGate, host: &HostCtx) -> Result<(), NotRun> {
    if !gate.store {
        return Err(not_run(
            "msg.cov.no_store",
            "the audit ran without its history (--no-store, or no --store): the audit calendar cannot be judged",
        ));
    }
    if gate.earlier == 0 {
        return Err(not_run(
            "msg.cov.first_audit",
            "no earlier audit of this scope in the history",
        ));
    }
    // The history must reach back far enough that the year is covered by
    // gaps of at most the interval.
    let reach = |limit: i64| {
        let need = WINDOW_DAYS - limit;
        if gate.reach_days >= need {
            Ok(())
        } else {
            Err(NotRun {
                msg: Message::new("msg.cov.short_history")
                    .arg("days", gate.reach_days)
                    .arg("need", need),
                text: format!(
                    "the history of this scope reaches back {} days; judging the last 12 months needs {need}",
                    gate.reach_days
                ),
                nothing_to_judge: false,
            })
        }
    };
    match check {
        CheckKind::ScanCadence => reach(SCAN_INTERVAL_DAYS),
        CheckKind::RescanAfterChange if gate.changes == 0 => Err(NotRun {
            nothing_to_judge: true,
            ..not_run(
                "msg.cov.no_changes",
                "no approved change started in the last 12 months",
            )
        }),
        CheckKind::RescanAfterChange => Ok(()),
        CheckKind::SegmentationCadence if !host.unreachable => Err(not_run(
            "msg.cov.no_segmentation_test",
            "no group in scope declares expect = \"unreachable\" (no segmentation test)",
        )),
        CheckKind::SegmentationCadence => reach(segment_limit(&host.groups)),
        _ => Ok(()),
    }
}

/// The days of the earlier audits up to `today`, oldest first (an audit
/// dated after the day this one judges by, with `--as-of`, is left out).
fn earlier_days(history: &AuditHistory, today: NaiveDate) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = history
        .earlier
        .iter()
        .map(|t| t.date_naive())
        .filter(|d| *d <= today)
        .collect();
    days.sort_unstable();
    days
}

/// The audit days: every earlier audit and this one, oldest first.
fn audit_days(history: &AuditHistory, today: NaiveDate) -> Vec<NaiveDate> {
    let mut days = earlier_days(history, today);
    days.push(today);
    days
}

/// Consecutive audits more than `limit` days apart, where the later one
/// falls in the last 12 months.
pub fn gaps(days: &[NaiveDate], today: NaiveDate, limit: i64) -> Vec<(NaiveDate, NaiveDate)> {
    let start = today - Duration::days(WINDOW_DAYS);
    days.windows(2)
        .filter(|w| w[1] > start && (w[1] - w[0]).num_days() > limit)
        .map(|w| (w[0], w[1]))
        .collect()
}

/// The approved changes whose start falls in the last 12 months, with that
/// day.
fn recent_changes(
    policy: &Policy,
    today: NaiveDate,
) -> impl Iterator<Item = (&super::config::Change, NaiveDate)> {
    let start = today - Duration::days(WINDOW_DAYS);
    policy.changes.iter().filter_map(move |c| {
        let day = c.from.unwrap_or(c.approved);
        (day > start && day <= today).then_some((c, day))
    })
}

/// `2026-01-01 → 2026-04-11 (100 days)`.
fn gap_text(gaps: &[(NaiveDate, NaiveDate)]) -> String {
    gaps.iter()
        .map(|(a, b)| format!("{a} → {b} ({} days)", (*b - *a).num_days()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The audit days of the last 12 months (and the one before a gap that
/// starts earlier), as text.
fn days_text(days: &[NaiveDate], today: NaiveDate, gaps: &[(NaiveDate, NaiveDate)]) -> String {
    let start = today - Duration::days(WINDOW_DAYS);
    days.iter()
        .filter(|d| **d > start || gaps.iter().any(|(a, _)| a == *d))
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hosts findings of a group (or of the hosts in no group, `None`) are
/// recorded on: its lowest audited address.
fn anchor<'c, 'a>(ctxs: &'c [HostCtx<'a>], group: Option<&str>) -> Option<&'c HostCtx<'a>> {
    ctxs.iter()
        .filter(|c| c.in_scope())
        .filter(|c| match group {
            Some(n) => c.groups.iter().any(|g| g.name == n),
            None => !c.managed(),
        })
        .min_by_key(|c| c.ip)
}

fn finding(
    profiles: &Profiles,
    at: &HostCtx,
    group: Option<&str>,
    check: CheckKind,
    (message, msg): (String, Message),
) -> Finding {
    let p = profiles.check(check);
    Finding {
        id: finding_id(at.ip, None, None, check),
        check: check.as_str().to_string(),
        severity: p.severity,
        ip: at.ip,
        port: None,
        proto: None,
        service: None,
        group: group.map(str::to_string),
        evidence: None,
        status: FindingStatus::Fail,
        exception: None,
        controls: controls(profiles, at, check, false, None),
        remediation: p.remediation.clone(),
        message,
        msg,
        allowed_by: None,
    }
}

/// The cadence findings of this audit; none without a history or without
/// an earlier audit of the scope (the checks have then not run).
pub(super) fn cadence_checks(
    policy: &Policy,
    profiles: &Profiles,
    ctxs: &[HostCtx],
    history: Option<&AuditHistory>,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let Some(h) = history else {
        return;
    };
    let today = now.date_naive();
    let days = audit_days(h, today);
    if days.len() < 2 {
        return;
    }
    let mut owners: Vec<Option<&str>> = policy.groups.iter().map(|g| Some(&*g.name)).collect();
    owners.push(None);
    let scan = gaps(&days, today, SCAN_INTERVAL_DAYS);
    if !scan.is_empty() {
        let text = (
            format!(
                "audits of this scope more than {SCAN_INTERVAL_DAYS} days apart in the last 12 months: {}; audits: {}",
                gap_text(&scan),
                days_text(&days, today, &scan)
            ),
            Message::new("msg.scan_cadence")
                .arg("limit", SCAN_INTERVAL_DAYS)
                .arg("gaps", gap_text(&scan))
                .arg("dates", days_text(&days, today, &scan)),
        );
        for g in &owners {
            if let Some(at) = anchor(ctxs, *g) {
                out.push(finding(
                    profiles,
                    at,
                    *g,
                    CheckKind::ScanCadence,
                    text.clone(),
                ));
            }
        }
    }
    rescan_checks(policy, profiles, ctxs, &days, today, out);
    for g in policy
        .groups
        .iter()
        .filter(|g| g.expect == Expect::Unreachable)
    {
        let limit = segment_limit(&[g]);
        let seg = gaps(&days, today, limit);
        let Some(at) = anchor(ctxs, Some(&g.name)).filter(|_| !seg.is_empty()) else {
            continue;
        };
        let text = (
            format!(
                "segment group '{}' was not tested for more than {limit} days: {}; tests: {}",
                g.name,
                gap_text(&seg),
                days_text(&days, today, &seg)
            ),
            Message::new("msg.segmentation_cadence")
                .arg("group", &g.name)
                .arg("limit", limit)
                .arg("gaps", gap_text(&seg))
                .arg("dates", days_text(&days, today, &seg)),
        );
        out.push(finding(
            profiles,
            at,
            Some(&g.name),
            CheckKind::SegmentationCadence,
            text,
        ));
    }
}

/// `rescan-after-change`: one finding per group (or host) a change targets,
/// naming every change of it no audit followed within 30 days.
fn rescan_checks(
    policy: &Policy,
    profiles: &Profiles,
    ctxs: &[HostCtx],
    days: &[NaiveDate],
    today: NaiveDate,
    out: &mut Vec<Finding>,
) {
    // (anchor ip, group) → the changes not followed.
    let mut missed: Vec<(&HostCtx, Option<&str>, Vec<String>)> = Vec::new();
    for (c, day) in recent_changes(policy, today) {
        let next = days.iter().find(|d| **d >= day).copied();
        let late = next.is_none_or(|n| (n - day).num_days() > RESCAN_DAYS);
        if !late {
            continue;
        }
        let (at, group) = match &c.target {
            ExceptionTarget::Group(n) => (anchor(ctxs, Some(n)), Some(n.as_str())),
            ExceptionTarget::Addr(r) => (
                ctxs.iter()
                    .filter(|x| x.in_scope() && r.contains(x.ip))
                    .min_by_key(|x| x.ip),
                None,
            ),
        };
        let Some(at) = at else { continue };
        let next = next.map_or("none".to_string(), |n| n.to_string());
        let note = format!(
            "{} ({}:{}, {day}; next audit {next})",
            c.ticket, policy.file, c.line
        );
        match missed.iter_mut().find(|(a, _, _)| a.ip == at.ip) {
            Some(m) => m.2.push(note),
            None => missed.push((at, group, vec![note])),
        }
    }
    for (at, group, notes) in missed {
        let list = notes.join("; ");
        let text = (
            format!(
                "no audit of this scope within {RESCAN_DAYS} days after approved change(s): {list}"
            ),
            Message::new("msg.rescan_after_change")
                .arg("days", RESCAN_DAYS)
                .arg("changes", &list),
        );
        out.push(finding(
            profiles,
            at,
            group.or_else(|| at.groups.first().map(|g| g.name.as_str())),
            CheckKind::RescanAfterChange,
            text,
        ));
    }
}

#[cfg(test)]
#[path = "cadence_tests.rs"]
mod tests;
