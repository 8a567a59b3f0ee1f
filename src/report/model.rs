//! Report layer: the report model — everything a report shows, computed
//! once from an audit's observations, evaluation and policy, so that the
//! HTML page, the CSV files and `report.json` cannot disagree.
//!
//! The model is already in the report's language (labels, severities,
//! requirement titles), and every string that came from the network or the
//! user is kept as plain text: escaping is the renderers' job, each for its
//! own format.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::evidence::{self, RulesInfo};
use super::i18n::{Labels, Lang};
use super::remediation::{FixGroup, RemediationCatalog, fix_groups};
use super::{ReportError, display_safe};
use crate::model::{
    Coverage, EvidenceLevel, Finding, FindingStatus, Observation, PortState, PortVerdict, Proto,
    RequirementStatus, ScanKind, Severity,
};
use crate::policy::{Evaluation, ExceptionState, Policy, Profiles};
use crate::rules::Catalogue;

/// A finding's place: host, and port/protocol (`None` for host-level checks).
type PortKey = (IpAddr, Option<u16>, Option<Proto>);

/// Version of the `report.json` layout; bumped when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// Longest banner excerpt shown on a host card, in characters.
const BANNER_EXCERPT: usize = 120;

/// What the app knows about the run itself (not derivable from results).
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
    /// The port spec as written (`common`, `1-1024`).
    pub ports: String,
    pub port_count: usize,
    pub host_count: u64,
    /// `None` when the audit judged imported scan results.
    pub scan_type: Option<ScanKind>,
    pub rate: Option<u64>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub operator: String,
    pub command_line: Vec<String>,
    pub as_of: NaiveDate,
    pub fail_on: Severity,
    pub gate_tripped: bool,
    /// The rules directory that overrode the embedded rules, if any.
    pub rules_dir: Option<PathBuf>,
    /// The policy file, if one was given (hashed into the evidence).
    pub policy_path: Option<PathBuf>,
    /// The scanner's source address(es) toward the targets: segmentation
    /// evidence must say from where. Empty for imported results.
    pub source_addresses: Vec<IpAddr>,
    /// The SHA-256 of every rule file in effect, as `rules::Rules` recorded
    /// them when it read them (`None`: hash the files named by `rules_dir`).
    pub rule_files: Option<BTreeMap<String, String>>,
    /// An import that accepted a file cut short (`--allow-partial-import`).
    pub partial_import: bool,
    /// The run's place in the history, recorded in the manifest.
    pub history: Option<crate::model::HistoryAnchor>,
}

/// Everything a report is built from.
pub struct ReportInput<'a> {
    pub lang: Lang,
    pub facts: RunFacts,
    pub observations: &'a [Observation],
    pub evaluation: &'a Evaluation,
    pub policy: &'a Policy,
    pub profiles: &'a Profiles,
    pub catalogue: &'a Catalogue,
    pub remediation: &'a RemediationCatalog,
}

/// The whole report; `report.json` is this, serialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportModel {
    pub schema_version: u32,
    pub lang: Lang,
    pub scope: ScopeInfo,
    pub summary: Summary,
    pub compliance: Vec<FrameworkReport>,
    pub findings: Vec<FindingRow>,
    pub hosts: Vec<HostCard>,
    pub remediation: Vec<RemediationBlock>,
    pub exceptions: Vec<ExceptionRow>,
    /// Every open port with its allowance (PCI DSS 1.2.5.a).
    pub inventory: Vec<InventoryRow>,
}

/// Scope and method: what was scanned, how, by whom, with which rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeInfo {
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
    pub ports: String,
    pub port_count: usize,
    pub host_count: u64,
    pub scan_type: Option<ScanKind>,
    pub scan_type_label: String,
    pub rate: Option<u64>,
    pub vantages: Vec<String>,
    pub vantage_labels: Vec<String>,
    /// Where the probes came from (the scanner's source addresses).
    #[serde(default)]
    pub source_addresses: Vec<IpAddr>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub tool_version: String,
    pub rules: RulesInfo,
    pub policy: PolicyInfo,
    pub operator: String,
    pub command_line: Vec<String>,
    pub as_of: NaiveDate,
    pub fail_on: Severity,
    pub fail_on_label: String,
}

/// The policy a report judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// The file name, or a note that the built-in baseline was used.
    pub file: String,
    pub sha256: Option<String>,
    pub name: Option<String>,
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub hosts_in_scope: u64,
    pub hosts_with_open_ports: usize,
    pub open_ports: usize,
    pub findings: usize,
    pub failing: usize,
    pub waived: usize,
    /// Failing findings per severity, most severe first.
    pub by_severity: Vec<SeverityCount>,
    pub gate_tripped: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityCount {
    pub severity: Severity,
    pub label: String,
    pub count: usize,
}

/// One framework (profile) and its requirements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkReport {
    pub id: String,
    pub name: String,
    /// passed / (passed + failed), 0–1; `None` when nothing was assessed.
    pub score: Option<f64>,
    /// The score as a whole percentage, for display.
    pub score_pct: Option<u32>,
    pub passed: usize,
    pub failed: usize,
    pub not_assessed: usize,
    #[serde(default)]
    pub partial: usize,
    /// Requirements whose mapping awaits confirmation (never scored).
    #[serde(default)]
    pub unconfirmed: usize,
    pub requirements: Vec<RequirementRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequirementRow {
    pub id: String,
    /// `profile:requirement`, the form findings carry in `controls`.
    pub control: String,
    pub title: String,
    /// The standard's clause names above the requirement (等保: 安全区域边界 / 访问控制).
    pub category: Option<String>,
    pub status: RequirementStatus,
    pub status_label: String,
    pub confirmed: bool,
    pub reason: Option<String>,
    /// Ids of the findings that fail it.
    pub findings: Vec<String>,
    pub finding_count: usize,
    /// `partial`: a scan can never show it met.
    #[serde(default)]
    pub evidence: EvidenceLevel,
    /// Which mapped checks ran, over which hosts; why others did not.
    #[serde(default)]
    pub coverage: Coverage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRow {
    pub id: String,
    pub check: String,
    /// The check in words, in the report's language.
    pub check_label: String,
    pub severity: Severity,
    pub severity_label: String,
    /// 0 (info) – 4 (critical), for sorting.
    pub severity_rank: u8,
    pub status: FindingStatus,
    pub status_label: String,
    pub failing: bool,
    pub ip: IpAddr,
    pub hostnames: Vec<String>,
    pub port: Option<u16>,
    pub proto: Option<Proto>,
    /// `22/tcp`, or `-` for a host-level finding.
    pub port_label: String,
    pub service: Option<String>,
    pub group: Option<String>,
    pub controls: Vec<String>,
    /// Profile ids of `controls`, deduplicated.
    pub frameworks: Vec<String>,
    pub message: String,
    pub exception: Option<String>,
    pub observed: Option<DateTime<Utc>>,
    /// Id of the fix (`remediation[].id`) that closes it; `None` when
    /// waived or without a fix.
    #[serde(default)]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCard {
    pub ip: IpAddr,
    pub hostnames: Vec<String>,
    pub groups: Vec<String>,
    pub ports: Vec<PortRow>,
    /// Findings about the host as a whole (port cap, unmanaged host).
    pub host_findings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortRow {
    pub port: u16,
    pub proto: Proto,
    pub service: Option<String>,
    pub product: Option<String>,
    /// The first characters of the banner, control characters replaced.
    pub banner: Option<String>,
    /// `finding`, `waived`, `allowed`, `unmanaged` or `no-finding`.
    pub verdict: String,
    pub verdict_label: String,
    /// The worst failing severity on the port.
    pub severity: Option<Severity>,
    pub findings: Vec<String>,
}

/// One fix (see [`FixGroup`]: the hosts and findings it closes, and the
/// commands, undo and verification per platform), with its severity in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationBlock {
    #[serde(flatten)]
    pub fix: FixGroup,
    pub severity_label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionRow {
    pub id: String,
    pub target: String,
    pub ports: String,
    pub check: Option<String>,
    pub reason: String,
    pub approver: String,
    pub ticket: Option<String>,
    pub expires: NaiveDate,
    pub days_left: i64,
    /// `active`, `outside-window` or `expired`.
    pub state: String,
    pub state_label: String,
    pub expired: bool,
    pub window: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryRow {
    pub ip: IpAddr,
    pub hostnames: Vec<String>,
    pub group: Option<String>,
    pub port: u16,
    pub proto: Proto,
    pub service: Option<String>,
    /// `Some(true)` allowed by a rule, `Some(false)` not allowed, `None` for
    /// a host no group manages.
    pub allowed: Option<bool>,
    pub justification: Option<String>,
    pub approver: Option<String>,
    pub ticket: Option<String>,
    pub review_by: Option<NaiveDate>,
}

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

fn status_key(s: FindingStatus) -> &'static str {
    match s {
        FindingStatus::Fail => "status.fail",
        FindingStatus::Waived => "status.waived",
        FindingStatus::ExpiredWaiver => "status.expired_waiver",
    }
}

fn requirement_status_key(s: RequirementStatus) -> &'static str {
    match s {
        RequirementStatus::Pass => "req_status.pass",
        RequirementStatus::Fail => "req_status.fail",
        RequirementStatus::Partial => "req_status.partial",
        RequirementStatus::NotAssessed => "req_status.not_assessed",
    }
}

fn exception_state_name(s: ExceptionState) -> &'static str {
    match s {
        ExceptionState::Active => "active",
        ExceptionState::OutsideWindow => "outside-window",
        ExceptionState::Expired => "expired",
    }
}

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

/// What every section builder reads: the input, the labels, and indexes
/// built once so that large audits (a million closed ports, thousands of
/// findings) build in linear time.
struct Sections<'a, 'b> {
    input: &'a ReportInput<'b>,
    labels: Labels,
    /// Findings, most severe first, then by host and port.
    findings: Vec<&'a Finding>,
    /// Open observations.
    open: Vec<&'a Observation>,
    /// Host names per address (from the target specs).
    names: BTreeMap<IpAddr, Vec<String>>,
}

impl<'a, 'b> Sections<'a, 'b> {
    fn new(input: &'a ReportInput<'b>) -> Result<Self, ReportError> {
        let labels = Labels::embedded(input.lang)?;
        let open = input
            .observations
            .iter()
            .filter(|o| o.state == PortState::Open)
            .collect();
        let mut names: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for o in input.observations {
            if !o.hostnames.is_empty() {
                names.entry(o.ip).or_insert_with(|| o.hostnames.clone());
            }
        }
        let mut findings: Vec<&Finding> = input.evaluation.findings.iter().collect();
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.ip.cmp(&b.ip))
                .then(a.port.cmp(&b.port))
                .then(a.check.cmp(&b.check))
        });
        Ok(Sections {
            input,
            labels,
            findings,
            open,
            names,
        })
    }

    fn hostnames_of(&self, ip: IpAddr) -> Vec<String> {
        self.names.get(&ip).cloned().unwrap_or_default()
    }

    fn failing(&self) -> Vec<&'a Finding> {
        self.findings
            .iter()
            .copied()
            .filter(|f| f.status.is_failing())
            .collect()
    }

    /// Scope and method. The rule and policy hashes were recorded when the
    /// files were read; nothing is read again here.
    fn scope(&self) -> Result<ScopeInfo, ReportError> {
        let cx = self;
        let input = cx.input;
        let t = |k: &str| cx.labels.get(k);
        let facts = &input.facts;
        let policy = input.policy;
        let rules = match &facts.rule_files {
            Some(files) => evidence::rules_info_from(files.clone(), facts.rules_dir.as_deref()),
            None => evidence::rules_info(facts.rules_dir.as_deref())?,
        };
        // Hashed when the policy was read: the file is not read again.
        let policy_sha = policy.sha256.clone();
        let mut vantages: Vec<String> = policy
            .groups
            .iter()
            .map(|g| g.vantage.as_str().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if vantages.is_empty() {
            vantages.push("unspecified".into());
        }
        let scope = ScopeInfo {
            targets: facts.targets.clone(),
            excludes: facts.excludes.clone(),
            ports: facts.ports.clone(),
            port_count: facts.port_count,
            host_count: facts.host_count,
            scan_type: facts.scan_type,
            scan_type_label: match facts.scan_type {
                Some(kind) => t(&format!("scan_type.{kind}")),
                None if facts.partial_import => t("scan_type.imported_partial"),
                None => t("scan_type.imported"),
            },
            rate: facts.rate,
            vantage_labels: vantages
                .iter()
                .map(|v| t(&format!("vantage.{v}")))
                .collect(),
            vantages,
            source_addresses: facts.source_addresses.clone(),
            started: facts.started,
            finished: facts.finished,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            rules,
            policy: PolicyInfo {
                file: policy.file.clone(),
                sha256: policy_sha,
                name: policy.name.clone(),
                owner: policy.owner.clone(),
            },
            operator: facts.operator.clone(),
            command_line: facts.command_line.clone(),
            as_of: facts.as_of,
            fail_on: facts.fail_on,
            fail_on_label: t(&format!("severity.{}", facts.fail_on)),
        };

        Ok(scope)
    }

    fn finding_rows(&self) -> Vec<FindingRow> {
        let cx = self;
        let t = |k: &str| cx.labels.get(k);
        let labels = &cx.labels;
        let findings = &cx.findings;
        let hostnames_of = |ip: IpAddr| cx.hostnames_of(ip);
        findings
            .iter()
            .map(|f| {
                let frameworks: Vec<String> = f
                    .controls
                    .iter()
                    .filter_map(|c| c.split_once(':').map(|(p, _)| p.to_string()))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                FindingRow {
                    id: f.id.clone(),
                    check: f.check.clone(),
                    check_label: labels
                        .find(&format!("check.{}", f.check))
                        .unwrap_or(&f.check)
                        .to_string(),
                    severity: f.severity,
                    severity_label: t(&format!("severity.{}", f.severity)),
                    severity_rank: severity_rank(f.severity),
                    status: f.status,
                    status_label: t(status_key(f.status)),
                    failing: f.status.is_failing(),
                    ip: f.ip,
                    hostnames: hostnames_of(f.ip),
                    port: f.port,
                    proto: f.proto,
                    port_label: match (f.port, f.proto) {
                        (Some(p), Some(proto)) => format!("{p}/{proto}"),
                        _ => "-".into(),
                    },
                    service: f.service.clone(),
                    group: f.group.clone(),
                    controls: f.controls.clone(),
                    frameworks,
                    message: f.message.clone(),
                    exception: f.exception.clone(),
                    observed: f.evidence.as_ref().map(|e| e.time),
                    fix: None,
                }
            })
            .collect()
    }

    fn summary(&self) -> Summary {
        let cx = self;
        let input = cx.input;
        let t = |k: &str| cx.labels.get(k);
        let facts = &input.facts;
        let findings = &cx.findings;
        let open = &cx.open;
        let failing = cx.failing();
        Summary {
            hosts_in_scope: facts.host_count,
            hosts_with_open_ports: open.iter().map(|o| o.ip).collect::<BTreeSet<_>>().len(),
            open_ports: open.len(),
            findings: findings.len(),
            failing: failing.len(),
            waived: findings.len() - failing.len(),
            by_severity: Severity::ALL
                .iter()
                .rev()
                .map(|&s| SeverityCount {
                    severity: s,
                    label: t(&format!("severity.{s}")),
                    count: failing.iter().filter(|f| f.severity == s).count(),
                })
                .collect(),
            gate_tripped: facts.gate_tripped,
        }
    }

    /// Every framework's requirements with the evaluator's statuses.
    fn compliance(&self) -> Vec<FrameworkReport> {
        let cx = self;
        let input = cx.input;
        let t = |k: &str| cx.labels.get(k);
        let labels = &cx.labels;
        input
            .evaluation
            .profiles
            .iter()
            .map(|pv| {
                let profile = input.profiles.get(&pv.profile);
                let name = match (input.lang, profile) {
                    (Lang::ZhCn, Some(p)) if !p.name_zh.is_empty() => p.name_zh.clone(),
                    _ => pv.name.clone(),
                };
                FrameworkReport {
                    id: pv.profile.clone(),
                    name,
                    score: pv.score,
                    score_pct: pv
                        .score
                        .map(|s| (s * 100.0).round().clamp(0.0, 100.0) as u32),
                    passed: pv.passed,
                    failed: pv.failed,
                    not_assessed: pv.not_assessed,
                    partial: pv.partial,
                    unconfirmed: pv.unconfirmed,
                    requirements: pv
                        .requirements
                        .iter()
                        .map(|r| RequirementRow {
                            id: r.id.clone(),
                            control: format!("{}:{}", pv.profile, r.id),
                            title: match input.lang {
                                Lang::ZhCn if !r.title_zh.is_empty() => r.title_zh.clone(),
                                _ => r.title_en.clone(),
                            },
                            category: if pv.profile.starts_with("mlps") {
                                mlps_category(&r.id, labels)
                            } else {
                                None
                            },
                            status: r.status,
                            status_label: t(requirement_status_key(r.status)),
                            confirmed: r.confirmed,
                            reason: r.reason.clone(),
                            findings: r.findings.clone(),
                            finding_count: r.findings.len(),
                            evidence: r.evidence,
                            coverage: r.coverage.clone(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Host cards and the inventory: one row per open port, from the
    /// evaluator's port verdicts (never re-derived here).
    fn hosts_and_inventory(&self) -> (Vec<HostCard>, Vec<InventoryRow>) {
        let cx = self;
        let input = cx.input;
        let t = |k: &str| cx.labels.get(k);
        let policy = input.policy;
        let findings = cx.findings.clone();
        let open = cx.open.clone();
        let hostnames_of = |ip: IpAddr| cx.hostnames_of(ip);
        let verdicts: BTreeMap<(IpAddr, u16, Proto), &PortVerdict> = input
            .evaluation
            .ports
            .iter()
            .map(|v| ((v.ip, v.port, v.proto), v))
            .collect();
        // Host cards and the inventory: one row per open port.
        let mut by_host: BTreeMap<IpAddr, Vec<&Observation>> = BTreeMap::new();
        for o in &open {
            by_host.entry(o.ip).or_default().push(o);
        }
        let mut by_port: BTreeMap<PortKey, Vec<&Finding>> = BTreeMap::new();
        for f in &findings {
            by_port.entry((f.ip, f.port, f.proto)).or_default().push(f);
        }
        let host_level = |ip: IpAddr| -> Vec<String> {
            by_port
                .get(&(ip, None, None))
                .map(|fs| fs.iter().map(|f| f.id.clone()).collect())
                .unwrap_or_default()
        };
        let mut hosts = Vec::new();
        let mut inventory = Vec::new();
        for (ip, obs) in &by_host {
            let groups = policy.groups_of(*ip);
            let mut ports = Vec::new();
            for o in obs {
                let on_port: Vec<&Finding> = by_port
                    .get(&(*ip, Some(o.port), Some(o.proto)))
                    .cloned()
                    .unwrap_or_default();
                // The evaluator's decision about the port: which group and
                // rule allowed it, and the service it was judged as.
                let verdict_of = verdicts.get(&(*ip, o.port, o.proto)).copied();
                let allowed = verdict_of.is_some_and(|v| v.allowed_by.is_some());
                let service = verdict_of
                    .and_then(|v| v.service.clone())
                    .or_else(|| o.service.as_ref().map(|s| s.name.clone()))
                    .or_else(|| {
                        input
                            .catalogue
                            .entry(o.port, o.proto)
                            .map(|e| e.service.clone())
                    });
                let worst = on_port
                    .iter()
                    .filter(|f| f.status.is_failing())
                    .map(|f| f.severity)
                    .max();
                let verdict = if worst.is_some() {
                    "finding"
                } else if !on_port.is_empty() {
                    "waived"
                } else if groups.is_empty() {
                    "unmanaged"
                } else if allowed {
                    "allowed"
                } else {
                    "no_finding"
                };
                ports.push(PortRow {
                    port: o.port,
                    proto: o.proto,
                    service: service.clone(),
                    product: o.service.as_ref().and_then(|s| {
                        let text = [s.product.as_deref(), s.version.as_deref()]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" ");
                        (!text.is_empty()).then_some(text)
                    }),
                    banner: o
                        .service
                        .as_ref()
                        .and_then(|s| s.banner.as_deref())
                        .map(|b| excerpt(b, BANNER_EXCERPT)),
                    verdict: verdict.replace('_', "-"),
                    verdict_label: t(&format!("verdict.{verdict}")),
                    severity: worst,
                    findings: on_port.iter().map(|f| f.id.clone()).collect(),
                });
                inventory.push(InventoryRow {
                    ip: *ip,
                    hostnames: o.hostnames.clone(),
                    group: verdict_of
                        .and_then(|v| v.group.clone())
                        .or_else(|| groups.first().map(|g| g.name.clone())),
                    port: o.port,
                    proto: o.proto,
                    service,
                    allowed: if groups.is_empty() {
                        None
                    } else {
                        Some(allowed)
                    },
                    justification: verdict_of.and_then(|v| v.justification.clone()),
                    approver: verdict_of.and_then(|v| v.approver.clone()),
                    ticket: verdict_of.and_then(|v| v.ticket.clone()),
                    review_by: verdict_of.and_then(|v| v.review_by),
                });
            }
            hosts.push(HostCard {
                ip: *ip,
                hostnames: hostnames_of(*ip),
                groups: groups.iter().map(|g| g.name.clone()).collect(),
                ports,
                host_findings: host_level(*ip),
            });
        }
        // Hosts with only host-level findings (no open port) still get a card.
        let lone: BTreeSet<IpAddr> = findings
            .iter()
            .filter(|f| f.port.is_none() && !by_host.contains_key(&f.ip))
            .map(|f| f.ip)
            .collect();
        for ip in lone {
            hosts.push(HostCard {
                ip,
                hostnames: hostnames_of(ip),
                groups: policy
                    .groups_of(ip)
                    .iter()
                    .map(|g| g.name.clone())
                    .collect(),
                ports: Vec::new(),
                host_findings: host_level(ip),
            });
        }

        (hosts, inventory)
    }

    /// One fix per group of findings it closes (see
    /// `remediation::fix_groups`), the hosts' preferred platforms first.
    fn remediation(&self) -> Vec<RemediationBlock> {
        let cx = self;
        let input = cx.input;
        let t = |k: &str| cx.labels.get(k);
        fix_groups(
            cx.failing(),
            input.policy,
            input.remediation,
            input.catalogue,
            input.lang,
        )
        .into_iter()
        .map(|fix| RemediationBlock {
            severity_label: t(&format!("severity.{}", fix.severity)),
            fix,
        })
        .collect()
    }

    fn exceptions(&self) -> Vec<ExceptionRow> {
        let cx = self;
        let input = cx.input;
        let t = |k: &str| cx.labels.get(k);
        let policy = input.policy;
        let today = input.facts.as_of;
        policy
            .exceptions
            .iter()
            .map(|e| {
                let state = e.state(today);
                ExceptionRow {
                    id: e.id.clone(),
                    target: e.target_spec.clone(),
                    ports: e
                        .ports
                        .map(|p| format!("{p}/{}", e.proto))
                        .unwrap_or_else(|| t("label.all")),
                    check: e.check.map(|c| c.as_str().to_string()),
                    reason: e.reason.clone(),
                    approver: e.approver.clone(),
                    ticket: e.ticket.clone(),
                    expires: e.expires,
                    days_left: (e.expires - today).num_days(),
                    state: exception_state_name(state).to_string(),
                    state_label: t(&format!(
                        "exception_state.{}",
                        exception_state_name(state).replace('-', "_")
                    )),
                    expired: state == ExceptionState::Expired,
                    window: e.window.map(|w| w.to_string()),
                }
            })
            .collect()
    }
}

impl ReportModel {
    /// Builds the report section by section; every decision (statuses,
    /// allowances, risks) comes from the evaluation.
    pub fn build(input: &ReportInput<'_>) -> Result<ReportModel, ReportError> {
        let cx = Sections::new(input)?;
        let (hosts, inventory) = cx.hosts_and_inventory();
        let remediation = cx.remediation();
        let mut findings = cx.finding_rows();
        // From a finding straight to its fix.
        let fix_of: BTreeMap<&str, &str> = remediation
            .iter()
            .flat_map(|r| {
                r.fix
                    .finding_ids
                    .iter()
                    .map(|f| (f.as_str(), r.fix.id.as_str()))
            })
            .collect();
        for row in &mut findings {
            row.fix = fix_of.get(row.id.as_str()).map(|s| s.to_string());
        }
        Ok(ReportModel {
            schema_version: SCHEMA_VERSION,
            lang: input.lang,
            scope: cx.scope()?,
            summary: cx.summary(),
            compliance: cx.compliance(),
            findings,
            hosts,
            remediation,
            exceptions: cx.exceptions(),
            inventory,
        })
    }
}

/// The first `max` characters of `s`, made safe to show (see
/// [`display_safe`]), with an ellipsis when cut.
fn excerpt(s: &str, max: usize) -> String {
    let safe = display_safe(s);
    if safe.chars().count() <= max {
        return safe;
    }
    let mut out: String = safe.chars().take(max).collect();
    out.push('…');
    out
}

/// A small audit with hostile text everywhere the network or the policy
/// can put it, for the renderers' tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::model::{Reason, ServiceInfo};
    use crate::policy::{Profiles, evaluate};

    pub const SCRIPT: &str = "<script>alert(1)</script>";
    pub const IMG: &str = "\"><img src=x onerror=alert(1)>";
    pub const FORMULA: &str = "=HYPERLINK(\"http://x\")";
    pub const CMD: &str = "+cmd|'/C calc'!A0";

    pub fn model(lang: Lang) -> ReportModel {
        let profiles = Profiles::embedded().unwrap();
        let policy_text = format!(
            r#"name = '{IMG}'
[[group]]
name = "lab"
targets = ["198.18.0.0/28"]
profiles = ["pci-dss-4.0", "mlps2-level3"]

[[group.allow]]
port = 443
justification = '{FORMULA}'
approver = "{CMD}"
ticket = "@SUM(A1)"

[[exception]]
target = "198.18.0.5"
port = 23
reason = "{SCRIPT}"
approver = "-2+3"
expires = 2026-01-31
"#
        );
        let policy = Policy::parse(&policy_text, "hostile.toml", &profiles).unwrap();
        let catalogue = Catalogue::embedded();
        let time: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
        let ip: IpAddr = "198.18.0.5".parse().unwrap();
        let mut observations = Vec::new();
        for (port, name) in [(23, "telnet"), (443, "https"), (6379, SCRIPT)] {
            let mut o = Observation::new(ip, port, Proto::Tcp, Reason::SynAck, Some(1.0));
            o.time = time;
            o.hostnames = vec![format!("{SCRIPT}{FORMULA}")];
            o.service = Some(ServiceInfo {
                name: name.to_string(),
                product: Some(IMG.to_string()),
                banner: Some(format!("{SCRIPT}{IMG}\x1b[31m{FORMULA}\u{FFFD}")),
                confidence: 1.0,
                ..ServiceInfo::default()
            });
            observations.push(o);
        }
        let evaluation = evaluate(&policy, &profiles, &catalogue, &observations, time);
        let facts = RunFacts {
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
            source_addresses: vec!["198.18.0.1".parse().unwrap()],
            rule_files: None,
            partial_import: false,
            history: None,
        };
        ReportModel::build(&ReportInput {
            lang,
            facts,
            observations: &observations,
            evaluation: &evaluation,
            policy: &policy,
            profiles: &profiles,
            catalogue: &catalogue,
            remediation: &RemediationCatalog::embedded(),
        })
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

    #[test]
    fn model_holds_the_audit_in_the_chosen_language() {
        let m = model(Lang::En);
        assert_eq!(m.schema_version, SCHEMA_VERSION);
        assert_eq!(m.summary.open_ports, 3);
        assert_eq!(m.summary.hosts_with_open_ports, 1);
        assert_eq!(m.scope.vantages, vec!["internal"]);
        assert_eq!(m.scope.scan_type_label, "TCP SYN (half-open)");
        assert_eq!(
            m.summary
                .by_severity
                .iter()
                .map(|s| s.severity)
                .collect::<Vec<_>>(),
            vec![
                Severity::Critical,
                Severity::High,
                Severity::Medium,
                Severity::Low,
                Severity::Info
            ]
        );
        assert_eq!(
            m.summary.by_severity.iter().map(|s| s.count).sum::<usize>(),
            m.summary.failing
        );
        // Findings sorted most severe first.
        assert!(
            m.findings
                .windows(2)
                .all(|w| w[0].severity >= w[1].severity)
        );
        // The expired exception is flagged.
        assert_eq!(m.exceptions.len(), 1);
        assert!(m.exceptions[0].expired);
        assert_eq!(m.exceptions[0].state_label, "EXPIRED");
        // Inventory: 443 allowed with its approval, the others not.
        let allowed: Vec<(u16, Option<bool>)> =
            m.inventory.iter().map(|r| (r.port, r.allowed)).collect();
        assert_eq!(
            allowed,
            vec![(23, Some(false)), (443, Some(true)), (6379, Some(false))]
        );
        assert_eq!(m.inventory[1].approver.as_deref(), Some(CMD));
        // Banners lose their control characters and are cut.
        let banner = m.hosts[0].ports[0].banner.as_deref().unwrap();
        assert!(!banner.contains('\x1b'));
        assert!(banner.starts_with(SCRIPT));
        // Every failing finding is closed by exactly one fix, each fix has
        // platforms, and the hostile service name never reaches a command.
        assert!(!m.remediation.is_empty());
        for f in m.findings.iter().filter(|f| f.failing) {
            let n = m
                .remediation
                .iter()
                .filter(|r| r.fix.finding_ids.contains(&f.id))
                .count();
            assert_eq!(n, 1, "{} {}", f.check, f.id);
            assert!(f.fix.is_some(), "{} links to its fix", f.id);
        }
        for r in &m.remediation {
            assert!(!r.fix.platforms.is_empty(), "{}", r.fix.key);
            // Policy snippets quote the policy's own text as TOML strings;
            // commands never carry the hostile identified service name.
            for p in r.fix.platforms.iter().filter(|p| p.platform != "policy") {
                assert!(!p.commands.contains("<script>"), "{}", p.platform);
            }
        }
        let pci = m.compliance.iter().find(|f| f.id == "pci-dss-4.0").unwrap();
        let r125 = pci.requirements.iter().find(|r| r.id == "1.2.5").unwrap();
        assert_eq!(r125.control, "pci-dss-4.0:1.2.5");
        assert_eq!(r125.status, RequirementStatus::Fail);
        assert!(!r125.findings.is_empty());
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
        let r = mlps
            .requirements
            .iter()
            .find(|r| r.id == "8.1.3.2 a)")
            .unwrap();
        assert_eq!(r.category.as_deref(), Some("安全区域边界 / 访问控制"));
        assert!(r.title.starts_with("应在网络边界或区域之间"));
        let r = mlps
            .requirements
            .iter()
            .find(|r| r.id == "8.1.4.4 b)")
            .unwrap();
        assert_eq!(r.category.as_deref(), Some("安全计算环境 / 入侵防范"));
        assert_eq!(r.status_label, "不符合");
        assert_eq!(m.summary.by_severity[0].label, "严重");
        assert_eq!(m.scope.fail_on_label, "高危");
        let f = m
            .findings
            .iter()
            .find(|f| f.check == "not-allowed")
            .unwrap();
        assert_eq!(f.check_label, "端口开放但未获批准");
    }

    #[test]
    fn every_check_kind_has_a_label_in_both_languages() {
        let profiles = Profiles::embedded().unwrap();
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
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(
            "[[group]]\nname = \"w\"\ntargets = [\"198.18.0.1\"]\nplatforms = [\"windows\", \"aws\"]\n",
            "p.toml",
            &profiles,
        )
        .unwrap();
        let mut o = Observation::new(
            "198.18.0.1".parse().unwrap(),
            445,
            Proto::Tcp,
            crate::model::Reason::SynAck,
            None,
        );
        o.time = "2026-06-01T12:00:00Z".parse().unwrap();
        let ev = crate::policy::evaluate(
            &policy,
            &profiles,
            &Catalogue::embedded(),
            &[o],
            "2026-06-01T12:00:00Z".parse().unwrap(),
        );
        let groups = fix_groups(
            &ev.findings,
            &policy,
            &RemediationCatalog::embedded(),
            &Catalogue::embedded(),
            Lang::En,
        );
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

    #[test]
    fn inventory_formats_the_port_verdicts() {
        let m = model(Lang::En);
        let row = |port: u16| m.inventory.iter().find(|r| r.port == port).unwrap();
        assert_eq!(row(443).allowed, Some(true));
        assert_eq!(row(443).justification.as_deref(), Some(FORMULA));
        assert_eq!(row(443).group.as_deref(), Some("lab"));
        assert_eq!(row(23).allowed, Some(false));
        assert_eq!(row(23).service.as_deref(), Some("telnet"));
        let card = &m.hosts[0];
        let p443 = card.ports.iter().find(|p| p.port == 443).unwrap();
        assert_eq!(p443.verdict, "finding");
        assert_eq!(
            m.scope.source_addresses,
            ["198.18.0.1".parse::<IpAddr>().unwrap()]
        );
        // Every requirement carries its coverage; partial is its own count.
        let pci = &m.compliance[0];
        assert_eq!(
            pci.passed + pci.failed + pci.partial + pci.not_assessed,
            pci.requirements.len()
        );
    }
}
