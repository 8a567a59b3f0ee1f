//! Tests of the calendar checks (`policy::cadence`) over history fixtures:
//! exact findings and requirement statuses.

use super::*;
use crate::model::{Observation, Proto, Reason, RequirementStatus, Severity};
use crate::policy::evidence::EvalContext;
use crate::policy::{StaticCatalogue, evaluate_in};
use crate::testkit::{Audit, ObsExt, PolicyToml, at, obs, req};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

const TODAY: &str = "2026-11-24";

/// A web group, a cardholder segment and a service provider's segment
/// (both tested from outside), and a change to the first segment. Its line
/// numbers are in the messages the tests compare.
fn policy_text() -> String {
    let segment = |t: PolicyToml, name: &str, target: &str, tags: &[&str]| {
        t.line("")
            .group(name, target)
            .tags(tags)
            .line("expect = \"unreachable\"")
            .profiles(&["pci-dss-4.0"])
            .port_scope("443", "", "the segment's firewall passes 443 only")
    };
    let t = PolicyToml::default()
        .line("")
        .group("web", "198.18.0.1")
        .profiles(&["nist-800-53r5", "mlps2-level3"])
        .allowances(&[(443, "", "web site", "ciso", "2027-01-31")]);
    let t = segment(t, "cde", "198.18.0.2", &["cardholder"]);
    let t = segment(
        t,
        "sp-cde",
        "198.18.0.3",
        &["cardholder", "service-provider"],
    );
    t.changes(&[("CHG-9", "ciso", "2026-10-01", "cde", "[443]")])
        .toml()
        .to_string()
}

/// Today's audit: the web port open, both segments silent.
fn observations() -> Vec<Observation> {
    let noon = &at(TODAY).to_rfc3339();
    vec![
        obs("198.18.0.1", 443).at(noon),
        obs("198.18.0.2", 443).reason(Reason::NoResponse).at(noon),
        obs("198.18.0.3", 443).reason(Reason::NoResponse).at(noon),
    ]
}

fn history(days: &[&str]) -> AuditHistory {
    AuditHistory {
        earlier: days.iter().map(|x| at(x)).collect(),
    }
}

/// The evaluation of today's audit with this history (`None`: --no-store).
fn run(h: Option<&AuditHistory>) -> crate::policy::Evaluation {
    let a = Audit::new(&policy_text());
    let cat = StaticCatalogue::new().with(443, Proto::Tcp, "https", Severity::Low, &[]);
    evaluate_in(
        &a.policy,
        &a.profiles,
        &cat,
        &observations(),
        &EvalContext {
            audits: h,
            ..EvalContext::bare(at(TODAY))
        },
    )
}

/// The status and reason of requirement `id` of `profile`.
fn status(e: &crate::policy::Evaluation, profile: &str, id: &str) -> (RequirementStatus, String) {
    let r = req(e, profile, id);
    (r.status, r.reason.clone().unwrap_or_default())
}

fn messages(e: &crate::policy::Evaluation, check: &str) -> Vec<String> {
    e.findings
        .iter()
        .filter(|f| f.check == check)
        .map(|f| format!("{} {}", f.ip, f.message))
        .collect()
}

/// Every 80 days back over a year: 2025-12-09, 2026-02-27, 2026-05-18,
/// 2026-08-06, and today.
fn every_80_days() -> Vec<String> {
    (1..=4)
        .rev()
        .map(|i| (d(TODAY) - Duration::days(80 * i)).to_string())
        .collect()
}

#[test]
fn audits_80_days_apart_keep_the_calendar() {
    let days = every_80_days();
    let h = history(&days.iter().map(String::as_str).collect::<Vec<_>>());
    let e = run(Some(&h));
    assert!(messages(&e, "scan-cadence").is_empty());
    assert!(messages(&e, "segmentation-cadence").is_empty());
    // Ran and found nothing; a port audit is not a vulnerability scan, so
    // 11.3.1 is at best partial, never pass.
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1"),
        (
            RequirementStatus::Partial,
            "no findings (partial evidence): a scan can show this requirement failing, never that it is met".into()
        )
    );
    // The segment tests of the year, and the segments stayed silent.
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.4.5").0,
        RequirementStatus::Pass
    );
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.4.6").0,
        RequirementStatus::Pass
    );
}

#[test]
fn audits_100_days_apart_fail_with_the_dates() {
    let h = history(&["2025-12-20", "2026-03-20", "2026-06-10", "2026-08-16"]);
    let e = run(Some(&h));
    let text = "audits of this scope more than 92 days apart in the last 12 months: 2026-08-16 → 2026-11-24 (100 days); audits: 2025-12-20, 2026-03-20, 2026-06-10, 2026-08-16, 2026-11-24";
    // One finding per group with an audited host, on its lowest address.
    assert_eq!(
        messages(&e, "scan-cadence"),
        [
            format!("198.18.0.1 {text}"),
            format!("198.18.0.2 {text}"),
            format!("198.18.0.3 {text}"),
        ]
    );
    let f = e
        .findings
        .iter()
        .find(|f| f.check == "scan-cadence")
        .unwrap();
    assert_eq!(f.remediation, "schedule-audit");
    assert_eq!(
        f.controls,
        [
            "mlps2-level3:8.1.10.5 b)",
            "nist-800-53r5:CA-2",
            "nist-800-53r5:RA-5",
        ]
    );
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1").0,
        RequirementStatus::Fail
    );
    assert_eq!(
        status(&e, "nist-800-53r5", "RA-5").0,
        RequirementStatus::Fail
    );
    assert_eq!(
        status(&e, "mlps2-level3", "8.1.10.5 b)").0,
        RequirementStatus::Fail
    );
    // Six-monthly segmentation for the service provider's segment: 100
    // days is within; within 12 months for the other one as well.
    assert!(messages(&e, "segmentation-cadence").is_empty());
}

#[test]
fn a_change_without_a_later_audit_fails() {
    // CHG-9 started 2026-10-01; the audit before it was 2026-09-20 and
    // the next one is today, 54 days later.
    let h = history(&["2025-12-20", "2026-03-10", "2026-06-01", "2026-09-20"]);
    let e = run(Some(&h));
    assert_eq!(
        messages(&e, "rescan-after-change"),
        [
            "198.18.0.2 no audit of this scope within 30 days after approved change(s): CHG-9 (p.toml:29, 2026-10-01; next audit 2026-11-24)"
        ]
    );
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1.3").0,
        RequirementStatus::Fail
    );
    // An audit 10 days after the change: followed.
    let h = history(&[
        "2025-12-20",
        "2026-03-10",
        "2026-06-01",
        "2026-09-20",
        "2026-10-11",
    ]);
    let e = run(Some(&h));
    assert!(messages(&e, "rescan-after-change").is_empty());
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1.3").0,
        RequirementStatus::Partial
    );
}

#[test]
fn an_empty_history_is_never_a_pass() {
    let e = run(Some(&AuditHistory::default()));
    assert!(e.findings.iter().all(|f| !f.check.contains("cadence")));
    let first = "none of its checks could run: scan-cadence (no earlier audit of this scope in the history)";
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1"),
        (RequirementStatus::NotAssessed, first.into())
    );
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1.3"),
        (
            RequirementStatus::NotAssessed,
            "none of its checks could run: rescan-after-change (no earlier audit of this scope in the history)".into()
        )
    );
    // The segments stayed silent, but the calendar is unknown: partial.
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.4.5"),
        (
            RequirementStatus::Partial,
            "no findings, but the evidence is incomplete: segmentation-cadence (no earlier audit of this scope in the history)".into()
        )
    );
    // Without a store at all, the reason says so.
    let e = run(None);
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1"),
        (
            RequirementStatus::NotAssessed,
            "none of its checks could run: scan-cadence (the audit ran without its history (--no-store, or no --store): the audit calendar cannot be judged)".into()
        )
    );
}

#[test]
fn a_short_history_cannot_judge_the_year() {
    // One earlier audit, 80 days ago: no gap, but 12 months are not covered.
    let h = history(&["2026-09-05"]);
    let e = run(Some(&h));
    assert!(messages(&e, "scan-cadence").is_empty());
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.3.1"),
        (
            RequirementStatus::NotAssessed,
            "none of its checks could run: scan-cadence (the history of this scope reaches back 80 days; judging the last 12 months needs 273)".into()
        )
    );
    // A 12-month segmentation test needs no reach: the last test was 80
    // days ago. The service provider's 6-month one needs 182 days.
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.4.5").0,
        RequirementStatus::Partial
    );
}

#[test]
fn a_service_provider_segment_is_tested_every_six_months() {
    // 200 days since the last test: over 6 months, under 12.
    let h = history(&["2025-12-01", "2026-05-08"]);
    let e = run(Some(&h));
    assert_eq!(
        messages(&e, "segmentation-cadence"),
        [
            "198.18.0.3 segment group 'sp-cde' was not tested for more than 183 days: 2026-05-08 → 2026-11-24 (200 days); tests: 2025-12-01, 2026-05-08, 2026-11-24"
        ]
    );
    assert_eq!(
        status(&e, "pci-dss-4.0", "11.4.6").0,
        RequirementStatus::Fail
    );
}

#[test]
fn gaps_over_the_limit_in_the_window() {
    let today = d("2026-12-07");
    let days: Vec<NaiveDate> = (0..5)
        .rev()
        .map(|i| today - Duration::days(80 * i))
        .collect();
    assert!(gaps(&days, today, SCAN_INTERVAL_DAYS).is_empty());
    let days = [d("2026-06-10"), d("2026-08-29"), d("2026-12-07")];
    assert_eq!(
        gaps(&days, today, SCAN_INTERVAL_DAYS),
        [(d("2026-08-29"), d("2026-12-07"))]
    );
    // A gap that ended before the window does not count.
    let days = [d("2025-01-01"), d("2025-11-01"), d("2026-01-20"), today];
    assert_eq!(
        gaps(&days, today, SCAN_INTERVAL_DAYS),
        [(d("2026-01-20"), today)]
    );
}
