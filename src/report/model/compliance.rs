//! Report layer: the compliance section of the model — each framework's
//! requirements as the evaluator judged them, with their reasons and
//! coverage in the report's language and the findings behind them.

use super::first::Index;
use super::{
    EVIDENCE_SHOWN, EvidenceItem, FrameworkReport, Labels, Lang, ReportInput, RequirementRow,
    requirement_status_key,
};

/// The 等保 clause names of a GB/T 22239 requirement id (`8.1.3.2 a)` →
/// `安全区域边界 / 访问控制`), from the `mlps` labels.
fn mlps_category(id: &str, labels: &Labels) -> Option<String> {
    let clause = id.split_whitespace().next()?;
    let parts: Vec<&str> = clause.split('.').collect();
    let mut names = Vec::new();
    for n in 3..=parts.len().min(4) {
        if let Some(name) = labels.find(&format!("mlps.{}", parts[..n].join("."))) {
            names.push(name.to_string());
        }
    }
    (!names.is_empty()).then(|| names.join(" / "))
}

pub(super) fn build_compliance(
    input: &ReportInput<'_>,
    labels: &Labels,
    index: &Index<'_>,
) -> Vec<FrameworkReport> {
    input
        .evaluation
        .profiles
        .iter()
        .map(|pv| {
            let profile = input.profiles.get(&pv.profile);
            let name = match (input.labels.lang(), profile) {
                (Lang::ZhCn, Some(p)) if !p.name_zh.is_empty() => p.name_zh.clone(),
                _ => pv.name.clone(),
            };
            let requirements: Vec<RequirementRow> = pv
                .requirements
                .iter()
                .map(|r| requirement_row(&pv.profile, r, labels, index))
                .collect();
            FrameworkReport {
                id: pv.profile.clone(),
                name,
                score: pv.score,
                score_pct: pv
                    .score
                    .map(|s| (s * 100.0).round().clamp(0.0, 100.0) as u32),
                passed: pv.passed,
                failed: pv.failed,
                partial: pv.partial,
                not_assessed: pv.not_assessed,
                accepted: pv.accepted,
                unconfirmed: pv.unconfirmed,
                requirements,
            }
        })
        .collect()
}

/// One requirement as the evaluator judged it, with the first findings
/// behind it. A failing row shows its evidence, not a reason (the reasons
/// say why nothing could be judged); its coverage leaves out "did not run"
/// for a check whose findings are right there.
fn requirement_row(
    profile: &str,
    r: &crate::model::RequirementVerdict,
    labels: &Labels,
    index: &Index<'_>,
) -> RequirementRow {
    let control = format!("{profile}:{}", r.id);
    let failing = r.status.as_str() == "fail";
    let evidence: Vec<EvidenceItem> = r
        .findings
        .iter()
        .filter_map(|id| index.finding(id))
        .take(EVIDENCE_SHOWN)
        .map(|f| EvidenceItem {
            target: match (f.port, f.proto) {
                (Some(p), Some(proto)) => format!("{}:{p}/{proto}", f.ip),
                _ => f.ip.to_string(),
            },
            check: f.check.clone(),
            check_label: labels.get(&format!("check.{}", f.check)),
            severity: f.severity,
        })
        .collect();
    let fired: std::collections::BTreeSet<&str> = r
        .findings
        .iter()
        .filter_map(|id| index.finding(id))
        .map(|f| f.check.as_str())
        .collect();
    RequirementRow {
        id: r.id.clone(),
        title: match labels.lang() {
            Lang::ZhCn if !r.title_zh.is_empty() => r.title_zh.clone(),
            _ => r.title_en.clone(),
        },
        category: if profile.starts_with("mlps") {
            mlps_category(&r.id, labels)
        } else {
            None
        },
        status: r.status,
        // A framework's own word for a status where it has one (PCI DSS "in
        // place with compensating control" for accepted), else ours.
        status_label: labels
            .find(&format!(
                "req_status_framework.{profile}.{}",
                r.status.as_str().replace('-', "_")
            ))
            .map(str::to_string)
            .unwrap_or_else(|| labels.get(&requirement_status_key(r.status))),
        confirmed: r.confirmed,
        reason: if failing {
            None
        } else {
            requirement_reason(&control, r, labels)
        },
        finding_count: r.findings.len(),
        coverage: coverage_text(r, labels, &fired),
        evidence_more: r.findings.len().saturating_sub(evidence.len()),
        evidence,
        control,
    }
}

/// Why a requirement is partial or not assessed, in the report's language:
/// the evaluator's message, with the checks that could not run (and why)
/// named in the same language.
fn requirement_reason(
    control: &str,
    r: &crate::model::RequirementVerdict,
    labels: &Labels,
) -> Option<String> {
    let english = r.reason.clone();
    let Some(msg) = &r.reason_msg else {
        return english;
    };
    // What a scan cannot judge: the profile's reason, translated per control.
    if msg.key == "msg.req.scan_cannot_judge"
        && let Some(text) = labels.find(&format!("req_reason.{control}"))
    {
        return Some(text.to_string());
    }
    let mut msg = msg.clone();
    if msg.args.contains_key("checks") {
        let sep = labels.get("ui.list_separator");
        let checks: Vec<String> = r
            .coverage
            .checks
            .iter()
            .filter(|c| !c.ran)
            .map(|c| check_not_run(c, labels))
            .collect();
        msg.args.insert("checks".into(), checks.join(&sep));
    }
    labels.message(&msg).or(english)
}

/// A covered check's name in the report's language (`kind@scope` → kind).
fn check_label(c: &crate::model::CheckCoverage, labels: &Labels) -> String {
    let kind = c.check.split('@').next().unwrap_or(&c.check);
    labels.get(&format!("check.{kind}"))
}

/// "CHECK did not run: WHY", the reason in the report's language when it
/// has a message key, else as the evaluator recorded it.
fn check_not_run(c: &crate::model::CheckCoverage, labels: &Labels) -> String {
    let why = c
        .reason_msg
        .as_ref()
        .and_then(|m| labels.message(m))
        .or_else(|| c.reason.clone())
        .unwrap_or_default();
    labels.fmt(
        "ui.check_not_run",
        &[("check", &check_label(c, labels)), ("why", &why)],
    )
}

/// A requirement's coverage in words: each mapped check, the hosts it ran
/// over, or why it did not run.
fn coverage_text(
    r: &crate::model::RequirementVerdict,
    labels: &Labels,
    fired: &std::collections::BTreeSet<&str>,
) -> String {
    r.coverage
        .checks
        .iter()
        .filter(|c| c.ran || !fired.contains(c.check.split('@').next().unwrap_or(&c.check)))
        .map(|c| {
            if c.ran {
                super::first::plural(
                    labels,
                    "ui.check_ran",
                    c.hosts,
                    &[
                        ("check", &check_label(c, labels)),
                        ("n", &c.hosts.to_string()),
                    ],
                )
            } else {
                check_not_run(c, labels)
            }
        })
        .collect::<Vec<_>>()
        .join(&labels.get("ui.list_separator"))
}
