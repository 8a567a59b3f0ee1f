//! Tests of the evaluator (`policy::eval`): exact findings and statuses.
use super::*;
use crate::model::{
    AuthStatus, EvidenceLevel, FindingStatus, Reason, RequirementStatus, RequirementVerdict,
};
use crate::testkit::*;

/// Three groups (a cardholder segment, a DMZ seen from the internet, an OT
/// cell) and three exceptions: expired, valid, and one in a monthly window.
/// Its line numbers are in the messages the tests compare.
#[rustfmt::skip]
fn policy_text() -> String {
    PolicyToml::default()
        .line("")
        .group("cardholder", "198.18.0.0/28")
        .tags(&["cardholder"])
        .profiles(&["pci-dss-4.0", "mlps2-level3"])
        .line("max_open_ports = 3")
        .allowances(&[
            (443, "https", "payment API", "ciso", "2027-01-31"),
            (22, "", "admin from the jump host", "", "2026-06-30"),
            (5432, "postgresql", "card vault", "ciso", ""),
        ])
        .line("")
        .group("dmz", "198.18.0.16/28")
        .line("vantage = \"internet\"")
        .profiles(&["pci-dss-4.0", "iso27001-2022", "cis-v8", "nist-800-53r5"])
        .allowances(&[
            (443, "https", "web site", "lead", ""),
            (22, "ssh", "admin", "lead", ""),
            (80, "", "redirect to HTTPS", "lead", ""),
        ])
        .line("")
        .group("ot", "198.18.0.32/28")
        .profiles(&["mlps2-level3"])
        .line("max_open_ports = 2")
        .allowances(&[(502, "", "SCADA polling", "ot-sec", "")])
        .exceptions(&[
            ("RISK-1", "198.18.0.33", 23, "legacy PLC", "ot-sec", "2027-06-30"),
            ("RISK-2", "198.18.0.2", 3389, "vendor support", "ciso", "2026-10-31"),
        ])
        .line("")
        .exception(Some("RISK-3"), "dmz", 6379, &[
            "check = \"database-internet\"",
            "reason = \"month-end batch\"",
            "approver = \"ciso\"",
            "expires = 2027-12-31",
            "window = { every = \"month\", days = \"25-31\" }",
        ])
        .toml()
        .to_string()
}

/// The three groups of [`policy_text`] as `policy.toml`.
fn three_groups() -> Audit {
    Audit::named(&policy_text(), "policy.toml")
}

fn observations() -> Vec<Observation> {
    use Reason::{ConnRefused, Connected, NoResponse};
    vec![
        obs("198.18.0.2", 443).service("https").tls(false),
        obs("198.18.0.2", 22).service("ssh"),
        obs("198.18.0.2", 3389),
        obs("198.18.0.2", 5432).service("postgresql"),
        closed("198.18.0.2", 80),
        obs("198.18.0.3", 443).service("ssh"),
        obs("198.18.0.17", 22).reason(Connected).service("ssh"),
        obs("198.18.0.17", 80).reason(Connected).service("http"),
        obs("198.18.0.17", 443)
            .reason(Connected)
            .service("https")
            .tls(true),
        closed("198.18.0.17", 443).at("2026-11-01T00:00:00Z"),
        obs("198.18.0.17", 6379)
            .reason(Connected)
            .service("redis")
            .auth(AuthStatus::None),
        obs("198.18.0.33", 502),
        obs("198.18.0.33", 23).service("telnet"),
        obs("198.18.0.33", 2323).service("telnet"),
        obs("198.18.0.99", 445),
        obs("198.18.0.99", 80).reason(ConnRefused),
        obs("198.18.0.200", 22).reason(NoResponse),
    ]
}

fn run(day: &str) -> Evaluation {
    three_groups().eval_in(&observations(), &lab_internet(day))
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

#[test]
fn every_check_kind_with_exact_statuses() {
    let e = run(DAY);
    let got: Vec<String> = e.findings.iter().map(brief).collect();
    assert_eq!(
        got,
        [
            "198.18.0.2 - port-cap fail medium",
            "198.18.0.2 22 allowance-incomplete fail low",
            "198.18.0.2 22 allowed-review-overdue fail low",
            "198.18.0.2 22 allowed-unjustified fail low",
            "198.18.0.2 22 remote-admin-internet fail high",
            "198.18.0.2 3389 exception-expired fail medium",
            "198.18.0.2 3389 high-risk-exposed expired-waiver high",
            "198.18.0.2 3389 not-allowed expired-waiver high",
            "198.18.0.2 3389 remote-admin-internet expired-waiver high",
            "198.18.0.2 5432 allowance-incomplete fail low",
            "198.18.0.2 5432 allowed-review-missing fail low",
            "198.18.0.2 5432 database-internet fail critical",
            "198.18.0.3 443 remote-admin-internet fail high",
            "198.18.0.3 443 unexpected-service fail medium",
            "198.18.0.17 22 allowance-incomplete fail low",
            "198.18.0.17 22 allowed-review-missing fail low",
            "198.18.0.17 22 remote-admin-internet fail high",
            "198.18.0.17 80 allowance-incomplete fail low",
            "198.18.0.17 80 allowed-review-missing fail low",
            "198.18.0.17 443 allowance-incomplete fail low",
            "198.18.0.17 443 allowed-review-missing fail low",
            "198.18.0.17 443 tls-cert fail medium",
            "198.18.0.17 6379 database-internet fail critical",
            "198.18.0.17 6379 high-risk-exposed fail high",
            "198.18.0.17 6379 not-allowed fail high",
            "198.18.0.17 6379 unauth-service fail critical",
            "198.18.0.33 - port-cap fail medium",
            "198.18.0.33 23 cleartext-admin waived high",
            "198.18.0.33 23 exception-overlong fail medium",
            "198.18.0.33 23 high-risk-exposed waived high",
            "198.18.0.33 23 not-allowed waived high",
            "198.18.0.33 23 remote-admin-internet waived high",
            "198.18.0.33 502 allowance-incomplete fail low",
            "198.18.0.33 502 allowed-review-missing fail low",
            "198.18.0.33 2323 cleartext-admin fail high",
            "198.18.0.33 2323 high-risk-exposed fail high",
            "198.18.0.33 2323 not-allowed fail high",
            "198.18.0.33 2323 remote-admin-internet fail high",
            "198.18.0.99 - unmanaged-host fail medium",
            "198.18.0.99 445 high-risk-exposed fail critical",
        ]
    );
    let kinds: BTreeSet<&str> = e.findings.iter().map(|f| f.check.as_str()).collect();
    // All but `unapproved-change`, which needs a baseline (see below),
    // `segmentation-breach`, which needs an unreachable group, the two UDP
    // checks (tested in policy::udp) and the three calendar checks, which
    // need the audit history (tested in policy::cadence_tests).
    assert_eq!(kinds.len(), CheckKind::ALL.len() - 8);
}

#[test]
fn unapproved_change_needs_a_baseline_and_no_change_record() {
    let text = PolicyToml::default()
        .line("")
        .group("web", "198.18.0.0/28")
        .profiles(&["pci-dss-4.0", "mlps2-level3", "iso27001-2022"])
        .allowances(&[(443, "", "web", "ciso", "")])
        .changes(&[
            ("CHG-1", "cab", "2026-11-20", "198.18.0.5", "[8443]"),
            ("CHG-2", "cab", "2026-11-01", "web", "[\"9000-9001\"]"),
        ])
        .line("window = { from = 2026-11-02, until = 2026-11-10 }")
        .changes(&[("CHG-3", "cab", "2026-12-01", "198.18.0.5", "[7000]")]);
    let a = Audit::new(text.toml());
    let o: Vec<Observation> = [443, 8443, 9000, 7000, 8080]
        .into_iter()
        .map(|p| obs("198.18.0.5", p).reason(Reason::Connected))
        .collect();
    let changes = |e: &Evaluation| {
        e.findings
            .iter()
            .filter(|f| f.check == "unapproved-change")
            .map(|f| format!("{} {}", f.port.unwrap(), f.message))
            .collect::<Vec<_>>()
    };
    let req = |e: &Evaluation, p: &str, id: &str| {
        let r = req(e, p, id);
        (r.status, r.reason.clone())
    };
    let since = |b: &Baseline, o: &[Observation]| {
        a.eval_in(
            o,
            &EvalContext {
                baseline: Some(b),
                ..lab_internet(DAY)
            },
        )
    };
    // No history: only the temporary change past its window counts, and
    // requirements judged by drift alone are not assessed.
    let e = a.eval(&o);
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
    let e = since(&b, &o);
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
            "mlps2-level3:8.1.10.6 g)",
            "mlps2-level3:8.1.10.6 j)",
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
    let e = since(&b, &o2);
    assert!(changes(&e).is_empty());
    // Nothing drifted: the drift check ran and found nothing; what keeps
    // 1.2.2 from a pass is only the scan's coverage (a /28 group of which
    // one host was probed, on a few ports).
    let (status, why) = req(&e, "pci-dss-4.0", "1.2.2");
    assert_eq!(status, RequirementStatus::Partial);
    let why = why.unwrap();
    assert!(!why.contains("unapproved-change ("), "{why}");
    assert!(
        why.contains("13 of 14 addresses of group 'web' were not probed"),
        "{why}"
    );
}

#[test]
fn control_refs_are_exact() {
    let e = run(DAY);
    assert_eq!(
        find(&e, "198.18.0.2", Some(3389), "not-allowed").controls,
        [
            "pci-dss-4.0:1.2.5",
            "pci-dss-4.0:1.3.1",
            // Seen from the (lab) internet vantage: a boundary failure too.
            "pci-dss-4.0:1.4.2",
            "pci-dss-4.0:2.2.4",
            "mlps2-level3:8.1.3.2 a)",
            "mlps2-level3:8.1.4.4 b)",
            "mlps2-level3:8.1.10.6 j)",
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
            "nist-800-53r5:CM-2",
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
            // SSH is allowed and approved for the DMZ: the boundary
            // requirements 1.4.1/1.4.2 are not failed by it (1.2.5 judges
            // the allowance).
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
            "cis-v8:1.2",
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
            "nist-800-53r5:CM-6",
            "nist-800-53r5:IA-2",
        ]
    );
}

#[test]
fn messages_evidence_and_remediation() {
    let e = run(DAY);
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
    // (address, port, check, message) of one finding each.
    #[rustfmt::skip]
    let messages = [
        ("198.18.0.2", Some(3389), "exception-expired", "exception RISK-2 (policy line 69) expired on 2026-10-31: renew it with a fresh approval, or fix the exposure and remove it"),
        ("198.18.0.17", Some(6379), "database-internet", "database/cache 6379/tcp (redis) is reachable from the internet — exception RISK-3 applies only in its window (days 25-31 of each month); 2026-11-24 is outside it"),
        ("198.18.0.2", None, "port-cap", "4 open ports, above the cap of 3 for group 'cardholder': 22/tcp, 443/tcp, 3389/tcp, 5432/tcp"),
        ("198.18.0.3", Some(443), "unexpected-service", "443/tcp is allowed for 'https' but 'ssh' answers"),
        ("198.18.0.17", Some(443), "tls-cert", "the certificate of 443/tcp (https) is self-signed"),
        ("198.18.0.2", Some(22), "allowed-review-overdue", "the allowance of 22/tcp (ssh) (policy line 16) was due for review on 2026-06-30"),
    ];
    for (ip, port, check, message) in messages {
        assert_eq!(
            find(&e, ip, port, check).message,
            message,
            "{check} on {ip}"
        );
    }
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
    let a = run(DAY);
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
    let e = run(DAY);
    let pci = &e.profiles[0];
    assert_eq!(pci.profile, "pci-dss-4.0");
    let req = |id: &str| req(&e, "pci-dss-4.0", id);
    assert_eq!(req("1.2.8").status, RequirementStatus::NotAssessed);
    // Never a pass from a scan (evidence = "partial"), and the scope is
    // not covered anyway.
    assert_eq!(req("2.2.7").status, RequirementStatus::Partial);
    // 1.3.1 concerns cardholder groups only: the DMZ's redis is not in it.
    let r = req("1.3.1");
    assert_eq!(r.status, RequirementStatus::Fail);
    assert_eq!(
        r.findings,
        [
            find(&e, "198.18.0.2", Some(3389), "not-allowed").id.clone(),
            find(&e, "198.18.0.2", Some(5432), "database-internet")
                .id
                .clone()
        ]
    );
    assert!(!req("4.2.1").confirmed);
    assert_eq!(req("4.2.1").status, RequirementStatus::Fail);
    assert_eq!(
        (
            pci.passed,
            pci.failed,
            pci.partial,
            pci.accepted,
            pci.not_assessed
        ),
        // 11.4.6 (service providers) joined the profile: not assessed here.
        (0, 9, 1, 0, 11)
    );
    // The 5 unconfirmed mappings (3 failing, 2 not assessed) are counted
    // apart, in no status.
    assert_eq!(pci.unconfirmed, 5);
    // No percentage while anything is partial or not assessed.
    assert_eq!(pci.score, None);
    // From the (lab) internet vantage the cardholder database answers:
    // 1.4.4 fails on evidence.
    assert_eq!(req("1.4.4").status, RequirementStatus::Fail);
    // The same audit with no measured vantage: the DMZ's declared
    // "internet" is a label, not evidence, and the internal cardholder
    // group has no internet exposure to judge.
    let bare = three_groups().eval(&observations());
    let breq = |id: &str| crate::testkit::req(&bare, "pci-dss-4.0", id);
    assert_eq!(breq("1.4.1").status, RequirementStatus::NotAssessed);
    assert_eq!(
        breq("1.4.1").reason.as_deref(),
        Some(
            "none of its checks could run: remote-admin-internet@unapproved (declared internet, but the audit was not run with --vantage internet (scanned from no source address recorded))"
        )
    );
    assert_eq!(breq("1.4.4").status, RequirementStatus::NotAssessed);
    assert_eq!(
        breq("1.4.4").reason_msg.as_ref().unwrap().key,
        "msg.req.nothing_ran"
    );
    assert!(
        !bare.findings.iter().any(|f| f.check.ends_with("-internet")),
        "no internet finding without an internet vantage"
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
    let a = Audit::new(group("a", "198.18.0.0/28").profiles(&["cis-v8"]).toml());
    let e = a.eval(&[closed("198.18.0.1", 443)]);
    assert!(e.findings.is_empty());
    let pci = &e.profiles[0];
    assert_eq!(pci.passed + pci.failed, 0);
    assert_eq!(pci.score, None);
    assert_eq!(
        pci.requirements[4].reason.as_deref(),
        Some("no audited host is in a group that declares this profile")
    );
    // Nothing open, no cap, no allowances, no identification, internal
    // only, one address of a /28 probed on one port: nothing passes (it
    // used to be 8 passes out of 8, then 1).
    let cis = &e.profiles[3];
    assert_eq!(
        statuses(cis),
        [
            "1.1 not-assessed † — none of its checks could run: unmanaged-host (every host of this scope is in a group (hosts outside every group are judged by the baseline profiles))",
            "1.2 not-assessed — none of its checks could run: unmanaged-host (every host of this scope is in a group (hosts outside every group are judged by the baseline profiles))",
            "3.10 partial † — no findings, but the evidence is incomplete: 13 of 14 addresses of group 'a' were not probed; scanned 1 of 9 TCP ports of the profile's scope (tcp common, udp high-risk-udp) on the least-covered host; 1 of 1 host(s) short; no UDP probe of the profile's UDP scope (tcp common, udp high-risk-udp) on at least one host",
            "4.4 partial — no findings, but the evidence is incomplete: 13 of 14 addresses of group 'a' were not probed; scanned 1 of 9 TCP ports of the profile's scope (tcp common, udp high-risk-udp) on the least-covered host; 1 of 1 host(s) short; no UDP probe of the profile's UDP scope (tcp common, udp high-risk-udp) on at least one host",
            "4.5 not-assessed † — none of its checks could run: not-allowed@tag:end-user (no audited host in scope is in a group tagged 'end-user')",
            "4.7 not-assessed † — none of its checks could run: unauth-service (no open port to identify on the hosts in scope); snmp-default-community (no UDP port was probed on the hosts in scope (add UDP ports, e.g. high-risk-udp))",
            "4.8 partial — no findings, but the evidence is incomplete: port-cap (no group in scope declares max_open_ports); amplification-vector (no UDP port was probed on the hosts in scope (add UDP ports, e.g. high-risk-udp)); 13 of 14 addresses of group 'a' were not probed; scanned 1 of 9 TCP ports of the profile's scope (tcp common, udp high-risk-udp) on the least-covered host; 1 of 1 host(s) short; no UDP probe of the profile's UDP scope (tcp common, udp high-risk-udp) on at least one host",
            "7.5 not-assessed — none of its checks could run: scan-cadence (the audit ran without its history (--no-store, or no --store): the audit calendar cannot be judged)",
            "7.6 not-assessed — Evidence of a schedule comes from the audit history; one audit is not a schedule, and a port audit is not a vulnerability scan.",
            "12.2 not-assessed — none of its checks could run: remote-admin-internet@vantage:internet (no audited host in scope is audited from an internet vantage); database-internet@vantage:internet (no audited host in scope is audited from an internet vantage)",
            "13.4 not-assessed — none of its checks could run: remote-admin-internet@vantage:internet (no audited host in scope is audited from an internet vantage); database-internet@vantage:internet (no audited host in scope is audited from an internet vantage); segmentation-breach (no group in scope declares expect = \"unreachable\" (no segmentation test))",
        ]
    );
    // 1.1, 3.10, 4.5 and 4.7 are unconfirmed (†): counted apart, in no
    // status (3.10 is partial but not counted as partial).
    assert_eq!(
        (cis.passed, cis.failed, cis.partial, cis.unconfirmed),
        (0, 0, 2, 4)
    );
    assert_eq!(cis.score, None);
}

#[test]
fn gate_ignores_waived_findings() {
    let e = run(DAY);
    assert!(gate(&e.findings, Severity::Critical));
    let waived: Vec<Finding> = e
        .findings
        .iter()
        .filter(|f| f.status == FindingStatus::Waived)
        .cloned()
        .collect();
    // 23/tcp on .33: cleartext, high-risk, not allowed, remote admin.
    assert_eq!(waived.len(), 4);
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
    let a = Audit::new(
        group("web", "198.18.0.0/28")
            .profiles(&["cis-v8"])
            .allow(80, "web")
            .allow(2323, "odd")
            .allow(8022, "odd")
            .toml(),
    );
    let e = a.eval_real(&[
        obs("198.18.0.1", 80).service("http"),
        obs("198.18.0.1", 8022).service("telnet"),
        obs("198.18.0.1", 2323).service("ssh"),
    ]);
    let got: Vec<String> = e.findings.iter().map(brief).collect();
    assert_eq!(got, ["198.18.0.1 8022 cleartext-admin fail high"]);
    assert_eq!(e.findings[0].controls, ["cis-v8:3.10"]);
}

#[test]
fn guesses_from_identification_are_not_identifications() {
    let a = Audit::new(
        group("a", "198.18.0.0/28")
            .allow_with(443, &["service = \"https\""], "web")
            .toml(),
    );
    let e = a.eval(&[
        obs("198.18.0.1", 443).guess("unknown", 0.0),
        obs("198.18.0.1", 6379).guess("unknown", 0.2),
        obs("198.18.0.2", 443).guess("http", 0.9),
    ]);
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
    req(e, "cis-v8", id)
}

/// One requirement (CIS 4.8: not-allowed, high-risk-exposed, port-cap)
/// through every status, on a fixed clock.
#[test]
fn status_transitions_follow_the_evidence() {
    let policy = |cap: &[&str]| {
        let g = group("a", "198.18.0.1").profiles(&["cis-v8"]);
        let g = cap.iter().fold(g, |g, l| g.line(l));
        Audit::new(g.allow_with(443, &["service = \"https\""], "web").toml())
    };
    let (capped, uncapped) = (policy(&["max_open_ports = 3"]), policy(&[]));
    let eval = |a: &Audit, o: &[Observation]| a.eval_in(&covered("198.18.0.1", o), &scanned(DAY));
    let web = [obs("198.18.0.1", 443).service("https")];
    // pass: every mapped check ran (a cap is declared, UDP was probed),
    // none failed.
    let e = eval(&capped, &web);
    let r = cis_req(&e, "4.8");
    assert_eq!(
        (r.status, r.reason.as_deref()),
        (RequirementStatus::Pass, None)
    );
    assert_eq!(r.coverage.hosts_in_scope, 1);
    assert!(r.coverage.checks.iter().all(|c| c.ran && c.hosts == 1));
    // partial: no cap, so port-cap could not run; says which and why.
    let e = eval(&uncapped, &web);
    let r = cis_req(&e, "4.8");
    assert_eq!(r.status, RequirementStatus::Partial);
    assert_eq!(
        r.reason.as_deref(),
        Some(
            "no findings, but the evidence is incomplete: port-cap (no group in scope declares max_open_ports)"
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
    more.push(obs("198.18.0.1", 6379));
    let e = eval(&uncapped, &more);
    let r = cis_req(&e, "4.8");
    assert_eq!(r.status, RequirementStatus::Fail);
    assert_eq!(r.findings.len(), 2);
    // partial evidence: identification says authentication is required,
    // yet "default accounts are managed" (4.7) is never a pass.
    let e = eval(
        &capped,
        &[obs("198.18.0.1", 443)
            .service("https")
            .auth(AuthStatus::Required)],
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
    let e = eval(&capped, &[obs("198.18.0.1", 443)]);
    // The SNMP check ran (our payload went to 161/udp); unauth-service
    // had no data: partial, saying so.
    let r = cis_req(&e, "4.7");
    assert_eq!(r.status, RequirementStatus::Partial);
    assert_reason(r, "no service was identified");
    // The same clean host with only part of the scope probed: partial,
    // saying how much.
    let e = capped.eval_in(&web, &scanned(DAY));
    let r = cis_req(&e, "4.8");
    assert_eq!(r.status, RequirementStatus::Partial);
    let ports = r.coverage.ports.as_ref().unwrap();
    assert_eq!(
        (
            ports.tcp_required,
            ports.tcp_probed_min,
            ports.udp_required,
            ports.udp_probed_min
        ),
        (9, 1, 4, 0)
    );
    assert_reason(
        r,
        "scanned 1 of 9 TCP ports of the profile's scope (tcp common, udp high-risk-udp) on the least-covered host",
    );
}

#[test]
fn score_counts_only_confirmed_pass_and_fail() {
    // A profile of two requirements, both assessable: R2 is unconfirmed
    // (†), so its failure is shown but not scored.
    let mini = r#"
id = "mini"
name = "Mini"
[[requirement]]
id = "R1"
title_en = "Only allowed ports"
title_zh = "仅允许的端口"
checks = ["not-allowed"]
[[requirement]]
id = "R2"
title_en = "No cleartext"
title_zh = "无明文"
checks = ["cleartext-admin"]
confirmed = false
"#;
    let profiles = Profiles::with_files(
        profiles(),
        &[(
            std::path::PathBuf::from("profiles/mini.toml"),
            mini.to_string(),
        )],
    )
    .unwrap();
    let a = Audit::with(
        profiles,
        group("a", "198.18.0.1")
            .profiles(&["mini", "cis-v8"])
            .allow(23, "legacy")
            .toml(),
        "p.toml",
    );
    let e = a.eval_in(&[obs("198.18.0.1", 23).service("telnet")], &scanned(DAY));
    let mini = e.profiles.iter().find(|p| p.profile == "mini").unwrap();
    // R2 fails, but its mapping is unconfirmed: it is in no status count
    // (the framework badges show these counts), only in `unconfirmed`.
    assert_eq!(
        (
            mini.passed,
            mini.failed,
            mini.partial,
            mini.accepted,
            mini.not_assessed,
            mini.unconfirmed
        ),
        (1, 0, 0, 0, 0, 1)
    );
    assert_eq!(mini.requirements[1].status, RequirementStatus::Fail);
    assert_eq!(mini.score, Some(1.0));
    // CIS has requirements a scan cannot judge (7.6) and others only
    // partly evidenced: no percentage at all, only counts.
    let cis = e.profiles.iter().find(|p| p.profile == "cis-v8").unwrap();
    assert!(cis.not_assessed > 0);
    assert_eq!(cis.score, None);
}

#[test]
fn identification_never_lowers_risk() {
    let a = Audit::new(group("a", "198.18.0.0/28").profiles(&["cis-v8"]).toml());
    let e = a.eval_real(&[
        // Elasticsearch answers HTTP: "http" must not replace it.
        obs("198.18.0.1", 9200).service("http"),
        // nmap -sV says tcpwrapped on redis's port.
        obs("198.18.0.1", 6379).service("tcpwrapped"),
        // A specific but milder service on a critical port keeps the
        // port's risk (max of both).
        obs("198.18.0.1", 2375).service("ssh"),
        // A specific, riskier service on a mild port raises it.
        obs("198.18.0.1", 8022).service("telnet"),
    ]);
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
    let cde = group("cde", "198.18.0.1-2")
        .tags(&["cardholder"])
        .line("expect = \"unreachable\"")
        .profiles(&["pci-dss-4.0", "nist-800-53r5"])
        .port_scope(
            "22,443,3306",
            "",
            "the CDE listens on these only (firewall export FW-7)",
        );
    let a = Audit::new(cde.toml());
    let pci = |e: &Evaluation, id: &str| req(e, "pci-dss-4.0", id).clone();
    // All filtered, and a control host outside the segment answered from
    // the same vantage: a segmentation pass, with the probes as evidence.
    let mut quiet: Vec<Observation> = [22, 443, 3306]
        .into_iter()
        .flat_map(|p| {
            [
                obs("198.18.0.1", p).reason(Reason::NoResponse),
                obs("198.18.0.2", p).reason(Reason::AdminProhibited),
            ]
        })
        .collect();
    quiet.push(closed("198.18.0.99", 80));
    // Without the history (--no-store) the segmentation checks judge this
    // audit alone; the calendar is unknown.
    let eval = |o: &[Observation]| a.eval_in(o, &scanned(DAY));
    // Audited every quarter over the last year (85 to 91 days apart).
    let year = crate::policy::AuditHistory {
        earlier: ["2025-12-10", "2026-03-05", "2026-05-30", "2026-08-25"]
            .into_iter()
            .map(at)
            .collect(),
    };
    let e = a.eval_in(
        &quiet,
        &EvalContext {
            audits: Some(&year),
            ..scanned(DAY)
        },
    );
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    let r = pci(&e, "11.4.5");
    assert_eq!(r.status, RequirementStatus::Pass, "{:?}", r.reason);
    // Without the history the calendar is unknown: partial, and it says why.
    let r = pci(&eval(&quiet), "11.4.5");
    assert_eq!(r.status, RequirementStatus::Partial);
    assert_eq!(
        r.reason.as_deref(),
        Some(
            "no findings, but the evidence is incomplete: segmentation-cadence (the audit ran without its history (--no-store, or no --store): the audit calendar cannot be judged)"
        )
    );
    let r = pci(&e, "11.4.5");
    assert_eq!(r.coverage.hosts_in_scope, 2);
    assert_eq!(r.coverage.checks[0].probes, 6);
    assert_eq!(r.coverage.checks[0].hosts, 2);
    assert_eq!(
        r.coverage.ports.as_ref().unwrap().narrowed_by.as_deref(),
        Some("cde: the CDE listens on these only (firewall export FW-7)")
    );
    let g = &e.coverage[0];
    assert_eq!((g.group.as_deref(), g.hosts, g.probes), (Some("cde"), 2, 6));
    // Without the control host nothing shows the path works: not assessed.
    let e = eval(&quiet[..6]);
    let r = pci(&e, "11.4.5");
    assert_eq!(r.status, RequirementStatus::NotAssessed);
    assert_reason(&r, "the path to the segment is unproven");
    // Probes never sent prove nothing (an empty namespace with no route).
    let local: Vec<Observation> = quiet[..6]
        .iter()
        .map(|o| Observation {
            reason: Reason::LocalError,
            state: PortState::Filtered,
            ..o.clone()
        })
        .collect();
    let r = pci(&eval(&local), "11.4.5");
    assert_eq!(r.status, RequirementStatus::NotAssessed);
    assert_reason(&r, "3 never sent (local errors)");
    // UDP silence is no isolation: open|filtered proves nothing.
    let udp: Vec<Observation> = ["198.18.0.1", "198.18.0.2"]
        .into_iter()
        .map(|ip| Observation {
            state: PortState::OpenFiltered,
            reason: Reason::NoResponse,
            ..udp_closed(ip, 161)
        })
        .chain([closed("198.18.0.99", 80)])
        .collect();
    let r = pci(&eval(&udp), "11.4.5");
    assert_eq!(r.status, RequirementStatus::NotAssessed, "{:?}", r.reason);
    // One address of the segment probed: partial, naming what was not.
    let r = pci(
        &eval(&[
            quiet[0].clone(),
            quiet[2].clone(),
            quiet[4].clone(),
            quiet[6].clone(),
        ]),
        "11.4.5",
    );
    assert_eq!(r.status, RequirementStatus::Partial);
    assert_reason(&r, "1 of 2 addresses of group 'cde' were not probed");
    // One open and one closed port: two breaches, mapped as the issue says.
    let mut leaky = quiet.clone();
    leaky.push(obs("198.18.0.1", 8080));
    leaky.push(closed("198.18.0.2", 25));
    let e = eval(&leaky);
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
            "nist-800-53r5:CA-8",
            "nist-800-53r5:SC-7"
        ]
    );
    assert_eq!(
        f.message,
        "25/tcp on 198.18.0.2 answered (closed, conn-refused) though group 'cde' must be unreachable from this vantage"
    );
    assert_eq!(f.msg.key, "msg.segmentation_breach");
    assert_eq!(pci(&e, "11.4.5").status, RequirementStatus::Fail);
    // A breach is never waived, even by an exception that names it.
    let waiving = group("cde", "198.18.0.1-2")
        .line("expect = \"unreachable\"")
        .profiles(&["pci-dss-4.0"])
        .exception(
            None,
            "cde",
            25,
            &["reason = \"r\"", "approver = \"a\"", "expires = 2026-12-24"],
        );
    let waiving = Audit::new(waiving.toml());
    let e = waiving.eval_in(&leaky, &scanned(DAY));
    assert_eq!(
        find(&e, "198.18.0.2", Some(25), "segmentation-breach").status,
        FindingStatus::Fail
    );
}

#[test]
fn baseline_profiles_judge_hosts_in_no_group() {
    let o = [obs("198.18.9.1", 6379)];
    // Default: the general frameworks, not PCI DSS nor 等保.
    let e = Audit::new("").eval(&o);
    let f = find(&e, "198.18.9.1", Some(6379), "high-risk-exposed");
    assert!(
        f.controls
            .iter()
            .all(|c| !c.starts_with("pci-dss") && !c.starts_with("mlps"))
    );
    assert!(f.controls.iter().any(|c| c.starts_with("cis-v8")));
    assert_eq!(e.profiles[0].passed + e.profiles[0].failed, 0);
    // Declared: only those.
    let e = Audit::new("baseline_profiles = [\"pci-dss-4.0\"]\n").eval(&o);
    let f = find(&e, "198.18.9.1", Some(6379), "high-risk-exposed");
    assert_eq!(f.controls, ["pci-dss-4.0:1.2.6", "pci-dss-4.0:2.2.5"]);
    let err = Policy::parse("baseline_profiles = [\"pci\"]\n", "p.toml", &profiles()).unwrap_err();
    assert!(err.to_string().contains("pci"), "{err}");
}

#[test]
fn review_dates_within_six_months() {
    let text = |review: &str| {
        let t = group("a", "198.18.0.1")
            .profiles(&["pci-dss-4.0"])
            .port_scope("common", "high-risk-udp", "test")
            .allow_only(443, &["justification = \"web\"", "approver = \"lead\""]);
        let t = if review.is_empty() { t } else { t.line(review) };
        t.toml().to_string()
    };
    let o = covered("198.18.0.1", &[obs("198.18.0.1", 443)]);
    let run = |t: &str| Audit::new(t).eval_in(&o, &scanned(DAY));
    let e = run(&text(""));
    let f = find(&e, "198.18.0.1", Some(443), "allowed-review-missing");
    assert_eq!(f.controls, ["pci-dss-4.0:1.2.7"]);
    assert_eq!(
        find(&e, "198.18.0.1", Some(443), "allowance-incomplete").message,
        "group 'a' allows 443/tcp (p.toml:6) without review_by: every rule needs a business need, an approver and a review date"
    );
    assert_eq!(f.msg.key, "msg.allowed_review_missing.none");
    let e = run(&text("review_by = 2027-06-01"));
    assert_eq!(
        find(&e, "198.18.0.1", Some(443), "allowed-review-missing").message,
        "the allowance of 443/tcp (https) (policy line 6) is next reviewed on 2027-06-01, more than six months ahead"
    );
    let e = run(&text("review_by = 2027-05-24"));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    // A group that narrows the scope says so; the pass stands on it.
    let r = e.profiles[0]
        .requirements
        .iter()
        .find(|r| r.id == "1.2.7")
        .unwrap();
    assert_eq!(r.status, RequirementStatus::Pass, "{:?}", r.reason);
    assert_eq!(
        r.coverage.ports.as_ref().unwrap().narrowed_by.as_deref(),
        Some("a: test")
    );
}

#[test]
fn port_verdicts_record_the_decision() {
    let e = run(DAY);
    let v = e
        .ports
        .iter()
        .find(|p| p.ip.to_string() == "198.18.0.2" && p.port == 22)
        .unwrap();
    assert_eq!(v.group.as_deref(), Some("cardholder"));
    assert_eq!(v.allowed_by.as_ref().unwrap().to_string(), "policy.toml:16");
    // Decided once, here: the report and the fixes read these.
    assert!(v.review_overdue);
    assert_eq!(
        find(&e, "198.18.0.2", Some(22), "allowed-unjustified")
            .allowed_by
            .as_ref()
            .unwrap()
            .to_string(),
        "policy.toml:16"
    );
    assert_eq!(e.exceptions.len(), 3);
    assert!(e.policy_given);
    assert_eq!(
        v.checks_fired,
        [
            "allowance-incomplete",
            "allowed-review-overdue",
            "allowed-unjustified",
            "remote-admin-internet"
        ]
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
    let e = run(DAY);
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
    let a = Audit::new(
        group("a", "198.18.0.2")
            .line("vantage = \"internet\"")
            .profiles(&["cis-v8"])
            .allow(443, "web")
            .toml(),
    );
    let e = a.eval_real(&run.observations);
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
    assert_reason(r, "no service was identified");
    // unauth-service ran on the -sV host only (one host, not two).
    let r = cis_req(&e, "4.7");
    assert_eq!(r.status, RequirementStatus::Partial);
    assert_eq!(r.coverage.checks[0].hosts, 1);
}
