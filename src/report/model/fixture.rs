//! A small audit with hostile text everywhere the network or the policy
//! can put it, for the renderers' tests.

use super::*;
use crate::testkit::{Audit, ObsExt, PolicyToml, obs};

pub const SCRIPT: &str = "<script>alert(1)</script>";
pub const IMG: &str = "\"><img src=x onerror=alert(1)>";
pub const FORMULA: &str = "=HYPERLINK(\"http://x\")";
pub const CMD: &str = "+cmd|'/C calc'!A0";

pub fn model(lang: Lang) -> ReportModel {
    parts(lang).0
}

/// The model with the evaluation and observations it was built from.
pub fn parts(lang: Lang) -> (ReportModel, Evaluation, Vec<Observation>) {
    parts_with(lang, |_| {})
}

/// [`parts`] with the run's facts edited first.
pub fn parts_with(
    lang: Lang,
    edit: impl FnOnce(&mut RunFacts),
) -> (ReportModel, Evaluation, Vec<Observation>) {
    let policy_text = PolicyToml::default()
        .line(&format!("name = '{IMG}'"))
        .group("lab", "198.18.0.0/28")
        .profiles(&["pci-dss-4.0", "mlps2-level3"])
        .line("")
        .allow_only(
            443,
            &[
                &format!("justification = '{FORMULA}'"),
                &format!("approver = \"{CMD}\""),
                "ticket = \"@SUM(A1)\"",
            ],
        )
        .line("")
        .exception(
            None,
            "198.18.0.5",
            23,
            &[
                &format!("reason = \"{SCRIPT}\""),
                "approver = \"-2+3\"",
                "expires = 2026-01-31",
            ],
        );
    let a = Audit::named(policy_text.toml(), "hostile.toml");
    let catalogue = Catalogue::embedded();
    let seen = "2026-06-01T12:00:00Z";
    let time: DateTime<Utc> = seen.parse().unwrap();
    let mut observations = Vec::new();
    for (port, name) in [(23, "telnet"), (443, "https"), (6379, SCRIPT)] {
        let mut o = obs("198.18.0.5", port).at(seen).service(name);
        o.hostnames = vec![format!("{SCRIPT}{FORMULA}")];
        let s = o.service.as_mut().unwrap();
        s.product = Some(IMG.to_string());
        s.banner = Some(format!("{SCRIPT}{IMG}\x1b[31m{FORMULA}\u{FFFD}"));
        observations.push(o);
    }
    let evaluation = a.eval_at(&catalogue, &observations, time);
    let mut facts = RunFacts {
        targets: vec![format!("{CMD}")],
        excludes: vec![],
        ports: "common".into(),
        port_count: 3,
        host_count: 1,
        scan_type: Some(ScanKind::Syn),
        rate: Some(100),
        started: time,
        finished: time,
        operator: SCRIPT.into(),
        command_line: vec!["portwarden".into(), IMG.into()],
        as_of: time.date_naive(),
        fail_on: Severity::High,
        gate_tripped: true,
        rules_dir: None,
        policy_path: None,
        inputs: Vec::new(),
        source_addresses: vec!["198.18.0.1".parse().unwrap()],
        source_interfaces: vec![Some("eth0".into())],
        vantage: Default::default(),
        rule_files: crate::rules::Rules::embedded().files,
        partial_import: false,
        local_errors: 0,
        udp_undecided: 0,
        history: None,
        coverage: ScanCoverage {
            states: StateCounts {
                probed: 3,
                open: 3,
                ..StateCounts::default()
            },
            protocols: vec![ProtocolCoverage {
                proto: Proto::Tcp,
                probed: true,
                ports: 3,
                why: None,
                why_text: None,
            }],
            identification: Some(true),
        },
        trend: None,
    };
    edit(&mut facts);
    let labels = Labels::embedded(lang).unwrap();
    let m = ReportModel::build(&ReportInput {
        labels: &labels,
        facts,
        observations: &observations,
        evaluation: &evaluation,
        policy: &a.policy,
        profiles: &a.profiles,
        catalogue: &catalogue,
        remediation: &RemediationCatalog::embedded(),
    })
    .unwrap();
    (m, evaluation, observations)
}
