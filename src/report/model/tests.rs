use super::fixture::*;
use super::*;
use crate::testkit::{Audit, ObsExt, obs, profiles};

#[test]
fn model_has_one_row_per_port_in_the_chosen_language() {
    let m = model(Lang::En);
    assert_eq!(m.schema_version, SCHEMA_VERSION);
    assert_eq!(m.summary.open_ports, 3);
    assert_eq!(m.summary.hosts_with_open_ports, 1);
    assert_eq!(m.scope.vantages, vec!["internal"]);
    assert_eq!(m.scope.scan_type_label, "TCP SYN (half-open)");
    // Each host:port once, however many checks fired on it.
    let keys: Vec<(Option<u16>, usize)> =
        m.ports.iter().map(|r| (r.port, r.checks.len())).collect();
    let mut ports: Vec<Option<u16>> = keys.iter().map(|k| k.0).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), m.ports.len(), "{keys:?}");
    assert_eq!(
        m.ports.iter().map(|r| r.checks.len()).sum::<usize>(),
        m.summary.findings
    );
    // Severity of a row is the highest of its failing checks.
    for r in &m.ports {
        let worst = r
            .checks
            .iter()
            .filter(|c| !r.failing || c.status.is_failing())
            .map(|c| c.severity)
            .max()
            .unwrap();
        assert_eq!(r.severity, worst);
    }
    assert!(
        m.ports
            .windows(2)
            .all(|w| (w[0].failing, w[0].severity) >= (w[1].failing, w[1].severity))
    );
    assert_eq!(
        m.summary
            .by_severity
            .iter()
            .map(|s| s.findings)
            .sum::<usize>(),
        m.summary.failing
    );
    assert_eq!(
        m.summary.by_severity.iter().map(|s| s.count).sum::<usize>(),
        m.summary.failing_rows
    );
    assert_eq!(m.exceptions.len(), 1);
    assert!(m.exceptions[0].expired);
    assert_eq!(m.exceptions[0].state_label, "EXPIRED");
    let allowed: Vec<(u16, Option<bool>)> =
        m.inventory.iter().map(|r| (r.port, r.allowed)).collect();
    assert_eq!(
        allowed,
        vec![(23, Some(false)), (443, Some(true)), (6379, Some(false))]
    );
    assert_eq!(m.inventory[1].approver.as_deref(), Some(CMD));
    let banner = m.inventory[0].banner.as_deref().unwrap();
    assert!(!banner.contains('\x1b'));
    assert!(banner.starts_with(SCRIPT));
    // Every failing port links to a fix group that lists it and one of
    // its failing findings.
    for r in m.ports.iter().filter(|r| r.failing && r.port.is_some()) {
        let key = r.fix.as_deref().expect("failing port has a fix group");
        let g = m.fix_groups.iter().find(|g| g.anchor == key).unwrap();
        assert!(g.fix.hosts.contains(&r.ip));
        assert!(
            r.checks
                .iter()
                .any(|c| g.fix.finding_ids.contains(&c.finding))
        );
    }
    assert_eq!(m.fix_groups[0].anchor, "fx1");
    // Every failing finding is closed by some group.
    let grouped: BTreeSet<&str> = m
        .fix_groups
        .iter()
        .flat_map(|g| g.fix.finding_ids.iter().map(String::as_str))
        .collect();
    for r in &m.ports {
        for c in r.checks.iter().filter(|c| c.status.is_failing()) {
            assert!(grouped.contains(c.finding.as_str()), "{}", c.check);
        }
    }
    let pci = m.compliance.iter().find(|f| f.id == "pci-dss-4.0").unwrap();
    let r125 = pci.requirements.iter().find(|r| r.id == "1.2.5").unwrap();
    assert_eq!(r125.control, "pci-dss-4.0:1.2.5");
    assert_eq!(r125.status, RequirementStatus::Fail);
    assert!(r125.finding_count > 0);
    // Rows point at the control sets their checks map to.
    let with_125 = m
        .ports
        .iter()
        .filter(|r| {
            m.control_sets[r.controls]
                .iter()
                .any(|c| c == "pci-dss-4.0:1.2.5")
        })
        .count();
    assert!(with_125 > 0);
    assert_eq!(m.labels["severity.critical"], "Critical");
    assert!(!m.charts.heat.is_empty());
    assert_eq!(m.charts.services.iter().map(|s| s.open).sum::<usize>(), 3);
}

#[test]
fn zh_cn_model_uses_chinese_titles_and_mlps_clause_names() {
    let m = model(Lang::ZhCn);
    let mlps = m
        .compliance
        .iter()
        .find(|f| f.id == "mlps2-level3")
        .unwrap();
    assert_eq!(mlps.name, "网络安全等级保护2.0 第三级 (GB/T 22239-2019)");
    let req = |id: &str| mlps.requirements.iter().find(|r| r.id == id).unwrap();
    let r = req("8.1.3.2 a)");
    assert_eq!(r.category.as_deref(), Some("安全区域边界 / 访问控制"));
    assert!(r.title.starts_with("应在网络边界或区域之间"));
    let r = req("8.1.4.4 b)");
    assert_eq!(r.category.as_deref(), Some("安全计算环境 / 入侵防范"));
    assert_eq!(r.status_label, "不符合");
    assert_eq!(m.summary.by_severity[0].label, "严重");
    assert_eq!(m.scope.fail_on_label, "高危");
    assert_eq!(m.labels["check.not-allowed"], "端口开放但未获批准");
    // One word per concept: a failing finding is 不符合, like a failing requirement.
    assert_eq!(m.labels["status.fail"], "不符合");
}

#[test]
fn every_check_kind_has_a_label_in_both_languages() {
    let profiles = profiles();
    for lang in [Lang::En, Lang::ZhCn] {
        let labels = Labels::embedded(lang).unwrap();
        for c in profiles.checks() {
            let key = format!("check.{}", c.kind.as_str());
            assert!(labels.find(&key).is_some(), "{lang}: no label {key}");
        }
    }
}

#[test]
fn windows_family_names_its_platforms() {
    let a = Audit::new(
        "[[group]]\nname = \"w\"\ntargets = [\"198.18.0.1\"]\nplatforms = [\"windows\", \"aws\"]\n",
    );
    let time = "2026-06-01T12:00:00Z";
    let o = obs("198.18.0.1", 445).at(time);
    let ev = a.eval_at(&Catalogue::embedded(), &[o], time.parse().unwrap());
    let groups = a.fixes(&ev.findings);
    let close = groups.iter().find(|g| g.key == "close-port").unwrap();
    let ids: Vec<&str> = close
        .platforms
        .iter()
        .map(|p| p.platform.as_str())
        .collect();
    assert_eq!(
        ids[..4],
        ["windows-powershell", "windows-netsh", "windows-dsc", "aws"]
    );
}
