//! Tests of the profile loader and of the built-in mappings.

use super::*;

fn embedded() -> Profiles {
    Profiles::embedded().expect("embedded profiles parse")
}

fn req<'a>(p: &'a Profiles, profile: &str, id: &str) -> &'a Requirement {
    p.get(profile)
        .unwrap()
        .requirements
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("{profile}:{id} missing"))
}

#[test]
fn embedded_profiles_load_in_order() {
    let p = embedded();
    assert_eq!(p.ids(), BUILTIN_PROFILES.to_vec());
    assert_eq!(p.checks().len(), CheckKind::ALL.len());
    assert_eq!(p.check(CheckKind::TlsCert).kind, CheckKind::TlsCert);
    assert_eq!(
        p.check(CheckKind::UnauthService).severity,
        Severity::Critical
    );
}

#[test]
fn ids_are_as_the_standards_number_them() {
    let p = embedded();
    let ids: Vec<&str> = p
        .get("mlps2-level3")
        .unwrap()
        .requirements
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert!(ids.contains(&"8.1.4.4 b)"));
    assert!(ids.contains(&"8.1.3.2 a)"));
    let r = req(&p, "pci-dss-4.0", "1.2.5");
    assert!(r.confirmed);
    assert_eq!(
        r.assessment,
        Assessment::Checks(vec![
            "not-allowed".parse().unwrap(),
            "allowed-unjustified".parse().unwrap(),
            "allowance-incomplete".parse().unwrap(),
            "unexpected-service".parse().unwrap(),
            "exception-expired".parse().unwrap(),
        ])
    );
}

#[test]
fn dagger_entries_are_unconfirmed() {
    let p = embedded();
    for (profile, id) in [
        ("pci-dss-4.0", "4.2.1"),
        ("pci-dss-4.0", "11.3.1.3"),
        ("iso27001-2022", "A.8.24"),
        ("mlps2-level3", "8.1.10.2 a)"),
        ("cis-v8", "3.10"),
        ("nist-800-53r5", "SC-17"),
    ] {
        assert!(!req(&p, profile, id).confirmed, "{profile}:{id}");
    }
    assert!(req(&p, "nist-800-53r5", "SC-7(5)").confirmed);
}

#[test]
fn mapping_corrections() {
    let p = embedded();
    let ids = |profile: &str| -> Vec<String> {
        p.get(profile)
            .unwrap()
            .requirements
            .iter()
            .map(|r| r.id.clone())
            .collect()
    };
    let checks = |profile: &str, id: &str| -> Vec<String> {
        match &req(&p, profile, id).assessment {
            Assessment::Checks(c) => c
                .iter()
                .map(|c| match &c.when {
                    CheckCondition::Always => c.check.to_string(),
                    CheckCondition::Tag(t) => format!("{}@tag:{t}", c.check),
                    CheckCondition::Vantage(v) => format!("{}@vantage:{v}", c.check),
                    CheckCondition::Unapproved => format!("{}@unapproved", c.check),
                })
                .collect(),
            Assessment::NotAssessed { .. } => vec!["not-assessed".into()],
        }
    };
    // CIS 13.9 is 802.1X on switch ports, not TCP/UDP ports.
    assert!(!ids("cis-v8").contains(&"13.9".to_string()));
    // NIST writes CM-7b.; CM-7 is judged once.
    assert!(ids("nist-800-53r5").contains(&"CM-7b.".to_string()));
    assert!(!ids("nist-800-53r5").contains(&"CM-7".to_string()));
    assert!(!ids("nist-800-53r5").contains(&"CM-7 b".to_string()));
    // 等保 8.1.10.6 carries its item letter.
    assert!(ids("mlps2-level3").contains(&"8.1.10.6 g)".to_string()));
    assert!(!ids("mlps2-level3").contains(&"8.1.10.6".to_string()));
    // Cardholder-only and internet-only requirements.
    assert_eq!(
        checks("pci-dss-4.0", "1.3.1"),
        [
            "not-allowed@tag:cardholder",
            "database-internet@tag:cardholder",
            "segmentation-breach@tag:cardholder"
        ]
    );
    assert_eq!(
        checks("pci-dss-4.0", "1.4.4"),
        ["database-internet@tag:cardholder"]
    );
    // Not failed by a port the policy allows and approves (1.2.5 judges
    // the allowance itself).
    assert_eq!(
        checks("pci-dss-4.0", "1.4.1"),
        ["remote-admin-internet@unapproved"]
    );
    assert_eq!(
        checks("pci-dss-4.0", "1.4.2"),
        [
            "not-allowed@vantage:internet",
            "remote-admin-internet@unapproved"
        ]
    );
    assert_eq!(
        checks("nist-800-53r5", "CM-3"),
        ["exception-expired", "unapproved-change"]
    );
    assert!(checks("cis-v8", "13.4").contains(&"segmentation-breach".to_string()));
    // Scans after changes and the quarterly calendar: from the history.
    assert_eq!(checks("pci-dss-4.0", "11.3.1.3"), ["rescan-after-change"]);
    assert_eq!(checks("pci-dss-4.0", "11.3.1"), ["scan-cadence"]);
    assert_eq!(
        checks("pci-dss-4.0", "11.3.2"),
        ["scan-cadence@vantage:internet"]
    );
    for (p_, id) in [
        ("pci-dss-4.0", "1.2.7"),
        ("mlps2-level3", "8.1.3.2 b)"),
        ("iso27001-2022", "A.8.20"),
        ("cis-v8", "4.4"),
    ] {
        let c = checks(p_, id);
        assert!(c.contains(&"allowance-unused".to_string()), "{p_} {id}");
        assert!(c.contains(&"allowance-incomplete".to_string()), "{p_} {id}");
    }
    for (p_, id) in [
        ("pci-dss-4.0", "1.2.6"),
        ("pci-dss-4.0", "2.2.5"),
        ("pci-dss-4.0", "2.2.7"),
        ("mlps2-level3", "8.1.4.1 c)"),
    ] {
        assert_eq!(
            req(&p, p_, id).evidence,
            EvidenceLevel::Partial,
            "{p_} {id}"
        );
    }
    assert_eq!(
        checks("mlps2-level3", "8.1.4.4 c)"),
        ["remote-admin-internet@vantage:internet"]
    );
    assert_eq!(
        checks("cis-v8", "12.2"),
        [
            "remote-admin-internet@vantage:internet",
            "database-internet@vantage:internet"
        ]
    );
    // 1.2.7: allowances without a review date within six months fail it.
    assert!(checks("pci-dss-4.0", "1.2.7").contains(&"allowed-review-missing".to_string()));
    // A data-flow diagram is not something a scan sees.
    assert_eq!(checks("pci-dss-4.0", "1.2.4"), ["not-assessed"]);
    // New requirements a scan bears on.
    assert_eq!(
        checks("pci-dss-4.0", "11.4.5"),
        ["segmentation-breach", "segmentation-cadence"]
    );
    assert_eq!(
        checks("pci-dss-4.0", "11.4.6"),
        [
            "segmentation-breach@tag:service-provider",
            "segmentation-cadence@tag:service-provider"
        ]
    );
    assert_eq!(
        checks("pci-dss-4.0", "11.3.2.1"),
        ["rescan-after-change@vantage:internet"]
    );
    assert_eq!(checks("mlps2-level3", "8.1.3.1 b)"), ["unmanaged-host"]);
    assert_eq!(checks("nist-800-53r5", "CM-8(3)"), ["unmanaged-host"]);
    // Segmentation evidence maps where the issue says.
    for (profile, id) in [
        ("pci-dss-4.0", "11.4.5"),
        ("mlps2-level3", "8.1.3.1 a)"),
        ("iso27001-2022", "A.8.22"),
        ("nist-800-53r5", "SC-7"),
    ] {
        assert!(
            checks(profile, id).contains(&"segmentation-breach".to_string()),
            "{profile}:{id}"
        );
    }
    // What a scan can only partly evidence is declared so.
    for (profile, id) in [
        ("pci-dss-4.0", "8.2.1"),
        ("pci-dss-4.0", "2.2.2"),
        ("pci-dss-4.0", "4.2.1"),
        ("mlps2-level3", "8.1.4.1 a)"),
        ("iso27001-2022", "A.8.5"),
    ] {
        assert_eq!(
            req(&p, profile, id).evidence,
            EvidenceLevel::Partial,
            "{profile}:{id}"
        );
    }
    assert_eq!(
        req(&p, "pci-dss-4.0", "1.2.5").evidence,
        EvidenceLevel::Full
    );
}

#[test]
fn unknown_evidence_is_an_error() {
    let text = "id = \"x\"\nname = \"X\"\n\n[[requirement]]\nid = \"1\"\ntitle_en = \"a\"\ntitle_zh = \"b\"\nchecks = [\"port-cap\"]\nevidence = \"some\"\n";
    let e = Profile::parse(text, "x.toml").unwrap_err().to_string();
    assert!(
        e.starts_with("x.toml:4:1: requirement '1': unknown evidence 'some'"),
        "{e}"
    );
}

#[test]
fn not_assessed_keeps_its_reason() {
    let p = embedded();
    match &req(&p, "pci-dss-4.0", "1.2.8").assessment {
        Assessment::NotAssessed { reason } => assert!(reason.contains("configuration files")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn conditions_parse() {
    let c: CheckRef = "not-allowed@tag:cardholder".parse().unwrap();
    assert_eq!(c.when, CheckCondition::Tag("cardholder".into()));
    let c: CheckRef = "not-allowed@vantage:internet".parse().unwrap();
    assert_eq!(c.when, CheckCondition::Vantage("internet".into()));
    assert!("not-allowed@zone:x".parse::<CheckRef>().is_err());
    assert!("not-alowed".parse::<CheckRef>().is_err());
}

#[test]
fn bad_profile_names_line() {
    let text = "id = \"x\"\nname = \"X\"\n\n[[requirement]]\nid = \"1\"\ntitle_en = \"a\"\ntitle_zh = \"b\"\nchecks = [\"nope\"]\n";
    let e = Profile::parse(text, "x.toml").unwrap_err().to_string();
    assert!(
        e.starts_with("x.toml:4:1: requirement '1': unknown check 'nope'"),
        "{e}"
    );
    let text = "id = \"x\"\nname = \"X\"\ncolour = 1\nrequirement = []\n";
    let e = Profile::parse(text, "x.toml").unwrap_err().to_string();
    assert!(e.starts_with("x.toml:3:1: unknown field `colour`"), "{e}");
}

#[test]
fn load_dir_overrides_one_profile() {
    let dir = std::env::temp_dir().join(format!("pw-profiles-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("profiles")).unwrap();
    std::fs::write(
        dir.join("profiles/cis-v8.toml"),
        "id = \"cis-v8\"\nname = \"CIS mini\"\n[[requirement]]\nid = \"4.8\"\ntitle_en = \"a\"\ntitle_zh = \"b\"\nchecks = [\"port-cap\"]\n",
    )
    .unwrap();
    let p = crate::rules::Rules::load(Some(&dir)).unwrap().profiles;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(p.get("cis-v8").unwrap().name, "CIS mini");
    assert_eq!(p.get("cis-v8").unwrap().requirements.len(), 1);
    assert_eq!(p.ids(), BUILTIN_PROFILES.to_vec());
}

#[test]
fn new_frameworks_load_with_exact_ids() {
    let p = embedded();
    let ids = |profile: &str| -> Vec<String> {
        p.get(profile)
            .unwrap()
            .requirements
            .iter()
            .map(|r| r.id.clone())
            .collect()
    };
    assert_eq!(
        ids("soc2-2017"),
        ["CC6.1", "CC6.6", "CC6.7", "CC7.1", "CC8.1", "CC7.2"]
    );
    // SOC 2 tests operation over a period: one audit is partial evidence.
    assert!(
        p.get("soc2-2017")
            .unwrap()
            .requirements
            .iter()
            .all(|r| r.evidence == EvidenceLevel::Partial)
    );
    assert!(ids("hipaa-security-rule").contains(&"164.312(e)(1)".to_string()));
    assert!(ids("hipaa-security-rule").contains(&"164.308(a)(8)".to_string()));
    assert!(ids("iec62443-3-3").contains(&"SR 5.2 RE 1".to_string()));
    assert!(ids("mlps2-level2").iter().all(|i| i.starts_with("7.1.")));
    assert!(ids("mlps2-level4").iter().all(|i| i.starts_with("9.1.")));
    // Level 4 letters are not yet checked against the standard's text.
    assert!(
        p.get("mlps2-level4")
            .unwrap()
            .requirements
            .iter()
            .all(|r| !r.confirmed)
    );
    for id in [
        "8.1.2.1 c)",
        "8.1.2.1 d)",
        "8.1.10.5 a)",
        "8.1.10.5 b)",
        "8.1.10.6 j)",
    ] {
        assert!(ids("mlps2-level3").contains(&id.to_string()), "{id}");
    }
    for id in ["RA-5", "CA-2", "CA-8", "CM-2", "CM-6"] {
        assert!(ids("nist-800-53r5").contains(&id.to_string()), "{id}");
    }
    for id in ["1.2", "4.5", "7.5"] {
        assert!(ids("cis-v8").contains(&id.to_string()), "{id}");
    }
    // Extensions: clauses under each level, each naming its level.
    let cloud = p.get("mlps2-cloud").unwrap();
    assert_eq!(
        cloud.extends,
        ["mlps2-level2", "mlps2-level3", "mlps2-level4"]
    );
    assert_eq!(
        req(&p, "mlps2-cloud", "8.2.3.1 a)").level.as_deref(),
        Some("mlps2-level3")
    );
    assert_eq!(
        req(&p, "mlps2-ics", "7.5.3.1 a)").level.as_deref(),
        Some("mlps2-level2")
    );
    assert!(cloud.when_declared);
    assert!(!p.get("pci-dss-4.0").unwrap().when_declared);
    assert_eq!(p.get("pci-dss-4.0").unwrap().version, "4.0");
}

#[test]
fn an_extension_needs_its_level_beside_it() {
    let p = embedded();
    let err = crate::policy::Policy::parse(
        "[[group]]\nname = \"vpc\"\ntargets = [\"198.18.0.0/24\"]\nprofiles = [\"mlps2-cloud\"]\n",
        "p.toml",
        &p,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("p.toml:4:13: profile 'mlps2-cloud' is an extension: declare it beside one of mlps2-level2, mlps2-level3, mlps2-level4"),
        "{err}"
    );
    assert!(
        err.contains("profiles = [\"mlps2-level3\", \"mlps2-cloud\"]"),
        "{err}"
    );
    assert!(
        crate::policy::Policy::parse(
            "[[group]]\nname = \"vpc\"\ntargets = [\"198.18.0.0/24\"]\nprofiles = [\"mlps2-level2\", \"mlps2-cloud\"]\n",
            "p.toml",
            &p,
        )
        .is_ok()
    );
    // A level outside the profile's extends is refused at load.
    let text = "id = \"x\"\nname = \"X\"\nextends = [\"mlps2-level3\"]\n\n[[requirement]]\nid = \"1\"\nlevel = \"mlps2-level9\"\ntitle_en = \"a\"\ntitle_zh = \"b\"\nchecks = [\"port-cap\"]\n";
    let e = Profile::parse(text, "x.toml").unwrap_err().to_string();
    assert!(
        e.starts_with("x.toml:5:1: requirement '1': level 'mlps2-level9' is not in this profile's extends (mlps2-level3)"),
        "{e}"
    );
}

#[test]
fn an_unknown_baseline_profile_suggests_the_closest() {
    let p = embedded();
    let err = crate::policy::Policy::parse("baseline_profiles = [\"mlps2-level\"]\n", "p.toml", &p)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("p.toml:1:22: unknown profile 'mlps2-level'"),
        "{err}"
    );
    assert!(err.contains("did you mean 'mlps2-level"), "{err}");
}
