//! Report layer: the report model — everything a report shows, computed
//! once from an audit's observations, evaluation and policy, so that the
//! HTML page, the CSV files and `report.json` cannot disagree.
//!
//! The model is built for any scale: one row per open host:port (all its
//! checks on that row), control lists interned once, remediation computed
//! once per fix group rather than per port, and only bounded summaries
//! (charts, top findings) for the page's static part. Every string that came
//! from the network or the user is kept as plain text: escaping is the
//! renderers' job, each for its own format.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::evidence::{self, RulesInfo};
use super::i18n::{Labels, Lang};
use super::remediation::{FixGroup as Fix, RemediationCatalog};
use super::{ReportError, display_safe};

mod charts;
mod compliance;
mod first;
mod input;
mod limits;
mod tables;

use charts::build_charts;
use compliance::build_compliance;
use tables::{build_exceptions, build_inventory};

use crate::model::{
    Finding, FindingStatus, Observation, PortState, Proto, RequirementStatus, ScanKind, Severity,
};
use crate::policy::{Evaluation, Policy, Profiles};
use crate::rules::Catalogue;
pub use first::FirstScreen;
pub use input::{
    InputFile, ProtocolCoverage, ReportInput, RunFacts, ScanCoverage, StateCounts, Trend,
};
pub use limits::Limits;

/// Version of the `report.json` layout; bumped when a field changes meaning.
/// 2: one row per host:port (`ports`), fix groups, interned control sets.
/// 3: `first` (verdict, trend, fix first), `scope.limits`, requirement
/// evidence, ports and hosts counted apart in the summary.
pub const SCHEMA_VERSION: u32 = 5;

/// Longest banner excerpt kept, in characters.
const BANNER_EXCERPT: usize = 120;

/// Rows the page shows without scripts (and prints): the most severe ones.
pub const TOP_ROWS: usize = 50;

/// Hosts named per fix group on the page (all of them are in report.json).
pub const FIX_HOSTS_SHOWN: usize = 24;

/// Hosts in the heat map, the most exposed first.
pub const HEAT_HOSTS: usize = 25;

/// Services in the "top exposed services" chart.
pub const TOP_SERVICES: usize = 10;

/// The whole report; `report.json` is this, serialised. Individual findings
/// (with their messages) are in `findings.jsonl` / `findings.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportModel {
    pub schema_version: u32,
    pub lang: Lang,
    pub scope: ScopeInfo,
    pub summary: Summary,
    pub charts: Charts,
    pub compliance: Vec<FrameworkReport>,
    /// The distinct control lists rows refer to (`PortRow::controls`).
    pub control_sets: Vec<Vec<String>>,
    /// One row per host:port with findings (and one per host for
    /// host-level findings), most severe first. Not in report.json since
    /// schema 5: findings.jsonl lists every finding.
    #[serde(skip_serializing, default)]
    pub ports: Vec<PortRow>,
    pub fix_groups: Vec<FixGroup>,
    /// The verdict sentence, the trend and the fixes to do first.
    #[serde(default)]
    pub first: FirstScreen,
    pub exceptions: Vec<ExceptionRow>,
    /// Every open port with its allowance (PCI DSS 1.2.5.a). Not in
    /// report.json since schema 5: inventory.csv lists them.
    #[serde(skip_serializing, default)]
    pub inventory: Vec<InventoryRow>,
    /// The page's section of results per asset (测评对象, the 等保
    /// profiles, bounded): built from `Evaluation.assets`, which is not
    /// copied (all of it is in assets.csv; report.json has none since
    /// schema 5).
    #[serde(skip)]
    pub assets_view: serde_json::Value,
    /// The labels of check ids, severities and statuses in the report's language.
    pub labels: BTreeMap<String, String>,
    /// Every label of the report's language, for the renderers.
    #[serde(skip)]
    pub text: Labels,
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
    /// The measured vantage in words: the operator's `--vantage`, the
    /// source addresses, and whether they prove an internet vantage.
    #[serde(default)]
    pub vantage_measured: String,
    /// Where the probes came from (segmentation evidence); empty for imports.
    pub source_addresses: Vec<IpAddr>,
    /// The interface of each source address, in the same order (`null`
    /// when none holds it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_interfaces: Vec<Option<String>>,
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
    /// Input files of an import audit, with their SHA-256.
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// What the scan could not decide, in words (local errors, undecided
    /// UDP pairs); empty when it decided every pair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
    /// The counts behind `gaps`.
    #[serde(default)]
    pub local_errors: u64,
    #[serde(default)]
    pub udp_undecided: u64,
    /// The scope and limitations box: what was and was not tested.
    #[serde(default)]
    pub limits: Limits,
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
    /// The scope's size: the targets of a scan; for an import, the
    /// networks covering its addresses (see [`Limits::scope_lines`]).
    pub hosts_in_scope: u64,
    pub hosts_with_open_ports: usize,
    pub open_ports: usize,
    /// Host:port rows with at least one finding (host-level rows included).
    pub rows: usize,
    /// Rows with at least one failing finding (ports and hosts).
    pub failing_rows: usize,
    /// Host:port rows with at least one failing finding.
    #[serde(default)]
    pub failing_ports: usize,
    /// Hosts with a failing host-level finding (no port: unmanaged host,
    /// port cap), counted as hosts, never as ports.
    #[serde(default)]
    pub failing_host_level: usize,
    /// Distinct hosts with at least one failing finding.
    #[serde(default)]
    pub failing_hosts: usize,
    pub findings: usize,
    pub failing: usize,
    pub waived: usize,
    /// Failing rows and findings per severity, most severe first.
    pub by_severity: Vec<SeverityCount>,
    pub gate_tripped: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityCount {
    pub severity: Severity,
    pub label: String,
    /// Failing host:port rows whose highest severity is this one (ports
    /// only: host-level rows are in `hosts`).
    pub count: usize,
    /// Failing host-level rows (no port) whose highest severity is this one.
    #[serde(default)]
    pub hosts: usize,
    /// Failing findings of this severity.
    pub findings: usize,
}

/// The data behind the summary charts, bounded whatever the audit's size.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Charts {
    /// Failing rows by highest severity, per asset group (`None`: no group).
    pub groups: Vec<GroupSeverity>,
    /// The services with the most open ports.
    pub services: Vec<ServiceCount>,
    /// The most exposed hosts and their failing findings per severity.
    pub heat: Vec<HostHeat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSeverity {
    pub group: Option<String>,
    /// Failing rows per severity, indexed like `Severity::ALL` (info first).
    pub counts: [usize; 5],
    pub rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceCount {
    pub service: String,
    pub open: usize,
    pub failing: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostHeat {
    pub ip: IpAddr,
    /// Failing findings per severity, indexed like `Severity::ALL`.
    pub counts: [usize; 5],
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
    /// The evaluator's counts (`ProfileVerdict`): confirmed mappings only.
    pub passed: usize,
    pub failed: usize,
    #[serde(default)]
    pub partial: usize,
    pub not_assessed: usize,
    #[serde(default)]
    pub accepted: usize,
    /// Mappings awaiting confirmation, shown apart and in no other count.
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
    /// How many findings fail it (their list: `#req=` on the page, or the
    /// `controls` of findings.jsonl).
    pub finding_count: usize,
    /// Which of its checks ran over how many hosts, and why others did not,
    /// in the report's language.
    #[serde(default)]
    pub coverage: String,
    /// The first findings behind a failing or partial requirement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceItem>,
    /// How many more findings than `evidence` lists.
    #[serde(default)]
    pub evidence_more: usize,
}

/// One finding behind a requirement, as a row shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// `198.18.0.5:3389/tcp`, or the address for a host-level finding.
    pub target: String,
    pub check: String,
    pub check_label: String,
    pub severity: Severity,
}

/// Evidence items listed per requirement row.
pub const EVIDENCE_SHOWN: usize = 10;

/// One check that fired on a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckChip {
    /// The finding's stable id.
    pub finding: String,
    pub check: String,
    pub severity: Severity,
    pub status: FindingStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}

/// One open host:port and every check that fired on it; or, with no port,
/// the host-level checks (port cap, unmanaged host) of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortRow {
    pub ip: IpAddr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<Proto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The highest severity among its failing checks (among all when all are waived).
    pub severity: Severity,
    /// True when at least one check fails.
    pub failing: bool,
    pub checks: Vec<CheckChip>,
    /// Index into `ReportModel::control_sets`: every control its checks map to.
    pub controls: usize,
    /// Key of its fix group, when a failing check has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// One fix (see `remediation::fix_groups`: once per remediation key,
/// port/protocol, service and platform set) with every host and finding it
/// closes, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixGroup {
    /// Unique within the report (`fx1`, … most severe first), for anchors
    /// and links.
    pub anchor: String,
    /// The remediation layer's group: stable id, remediation key, title,
    /// hosts, finding ids and per-platform commands, undo and verification.
    #[serde(flatten)]
    pub fix: Fix,
    /// The checks behind the findings it closes.
    pub checks: Vec<String>,
    pub severity_label: String,
    /// The fix in words: "Close the port 3389/tcp (rdp) on 16 hosts in dmz".
    #[serde(default)]
    pub name: String,
    /// The asset groups of the hosts it fixes ("(no group)" for hosts in none).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Some of its hosts are audited from an internet vantage.
    #[serde(default)]
    pub internet: bool,
    /// The policy lines its findings come from, in words.
    #[serde(default)]
    pub policy_lines: Vec<String>,
    /// The platforms (indexes into its page fixes) the card opens on: the
    /// groups' own platforms, else one guessed from the service.
    #[serde(default)]
    pub inline: Vec<usize>,
    /// Why those platforms, in words.
    #[serde(default)]
    pub platform_basis: String,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub port: u16,
    pub proto: Proto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Product and version as identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The first characters of the banner, control characters replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// `Some(true)` allowed by a rule, `Some(false)` not allowed, `None` for
    /// a host no group manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_by: Option<NaiveDate>,
    /// The allowance's review date is before the audit day (PCI DSS 1.2.7).
    #[serde(default)]
    pub review_overdue: bool,
}

pub fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

/// The label key of a finding status (`status.expired_waiver`).
pub fn status_key(s: FindingStatus) -> String {
    format!("status.{}", s.as_str().replace('-', "_"))
}

/// The label key of a requirement status (`req_status.not_assessed`).
pub fn requirement_status_key(s: RequirementStatus) -> String {
    format!("req_status.{}", s.as_str().replace('-', "_"))
}

/// Host names per address, from the observations (the first list seen).
pub fn hostname_index(observations: &[Observation]) -> HashMap<IpAddr, Vec<String>> {
    let mut names: HashMap<IpAddr, Vec<String>> = HashMap::new();
    for o in observations {
        if !o.hostnames.is_empty() {
            names.entry(o.ip).or_insert_with(|| o.hostnames.clone());
        }
    }
    names
}

/// Interns control lists: rows share a handful of distinct lists.
#[derive(Default)]
struct Interner {
    sets: Vec<Vec<String>>,
    index: HashMap<Vec<String>, usize>,
}

impl Interner {
    fn intern(&mut self, set: Vec<String>) -> usize {
        if let Some(&i) = self.index.get(&set) {
            return i;
        }
        let i = self.sets.len();
        self.sets.push(set.clone());
        self.index.insert(set, i);
        i
    }
}

impl ReportModel {
    /// Builds the report, section by section. Reads the policy and rule
    /// files to hash them; the rest is computation.
    pub fn build(input: &ReportInput<'_>) -> Result<ReportModel, ReportError> {
        let labels = input.labels;
        let lang = labels.lang();
        let mut scope = build_scope(input, labels)?;
        scope.limits = limits::build_limits(input, labels);
        let names = hostname_index(input.observations);
        let index = first::Index::new(input);
        let mut interner = Interner::default();
        let ports = build_rows(input, &names, &mut interner);
        let (mut fix_groups, fix_of) = fix_groups(input, labels);
        first::describe_fixes(&mut fix_groups, &index, input, labels);
        // A row links to the fix of its most severe failing check.
        let ports: Vec<PortRow> = ports
            .into_iter()
            .map(|mut r| {
                r.fix = r
                    .checks
                    .iter()
                    .filter(|c| c.status.is_failing())
                    .max_by_key(|c| c.severity)
                    .and_then(|c| fix_of.get(&c.finding).cloned());
                r
            })
            .collect();
        let mut summary = build_summary(input, &ports, labels);
        summary.hosts_in_scope = scope.limits.scope_hosts;
        let charts = build_charts(input, &ports);
        let compliance = build_compliance(input, labels, &index);
        let first = first::first_screen(
            input,
            &ports,
            &summary,
            &compliance,
            &fix_groups,
            &index,
            labels,
        );
        let exceptions = build_exceptions(input, labels);
        let inventory = build_inventory(input, &names);
        let assets_view = super::assets::html_view(labels, &compliance, &input.evaluation.assets);
        let mut label_map = BTreeMap::new();
        for prefix in [
            "check.",
            "severity.",
            "status.",
            "req_status.",
            "asset_status.",
        ] {
            for (k, v) in labels.iter().filter(|(k, _)| k.starts_with(prefix)) {
                label_map.insert(k.to_string(), v.to_string());
            }
        }
        Ok(ReportModel {
            schema_version: SCHEMA_VERSION,
            lang,
            scope,
            summary,
            charts,
            compliance,
            control_sets: interner.sets,
            ports,
            fix_groups,
            first,
            exceptions,
            inventory,
            assets_view,
            labels: label_map,
            text: labels.clone(),
        })
    }

    /// The first `n` rows (the most severe), for the static table.
    pub fn top_rows(&self, n: usize) -> &[PortRow] {
        &self.ports[..self.ports.len().min(n)]
    }
}

/// The measured vantage in the report's language; for signed bundles of
/// several vantages, each one (`;`-separated), as the evaluator judged
/// each host from the vantages that scanned it.
fn measured_vantages(facts: &RunFacts, labels: &Labels) -> String {
    let bundles = facts
        .inputs
        .iter()
        .filter_map(|f| f.provenance.bundle.as_ref())
        .map(|b| &b.vantage);
    let several = crate::model::merge_by_name(bundles);
    if several.len() < 2 {
        return measured_vantage(&facts.vantage, labels);
    }
    several
        .into_iter()
        .map(|v| {
            let v = crate::model::AuditVantage {
                lab: facts.vantage.lab,
                ..v
            };
            measured_vantage(&v, labels)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The measured vantage in the report's language.
fn measured_vantage(v: &crate::model::AuditVantage, labels: &Labels) -> String {
    use crate::model::Message;
    let proof = match v.internet() {
        Ok(t) => Message::new("vantage_measured.proven").arg("text", t),
        Err(_) => Message::new("vantage_measured.not_proven"),
    };
    let what = match &v.name {
        None => Message::new("vantage_measured.unnamed"),
        Some(n) => Message::new("vantage_measured.named").arg("name", n),
    };
    let sources = if v.sources.is_empty() {
        labels.get("vantage_measured.no_sources")
    } else {
        v.sources_text()
    };
    let what = what
        .arg("sources", sources)
        .arg("proof", labels.message(&proof).unwrap_or_default());
    labels.message(&what).unwrap_or_else(|| v.describe())
}

fn build_scope(input: &ReportInput<'_>, labels: &Labels) -> Result<ScopeInfo, ReportError> {
    let t = |k: &str| labels.get(k);
    let facts = &input.facts;
    let policy = input.policy;
    // The rule and policy hashes were recorded when the files were read;
    // nothing is read again here.
    let rules = evidence::rules_info_from(facts.rule_files.clone(), facts.rules_dir.as_deref());
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
    Ok(ScopeInfo {
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
        source_addresses: facts.source_addresses.clone(),
        source_interfaces: facts.source_interfaces.clone(),
        vantage_measured: measured_vantages(facts, labels),
        vantage_labels: vantages
            .iter()
            .map(|v| t(&format!("vantage.{v}")))
            .collect(),
        vantages,
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
        inputs: facts.inputs.clone(),
        gaps: [
            ("ui.gap_local_errors", facts.local_errors),
            ("ui.gap_udp_undecided", facts.udp_undecided),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(key, n)| labels.fmt(key, &[("n", &n.to_string())]))
        .collect(),
        local_errors: facts.local_errors,
        udp_undecided: facts.udp_undecided,
        limits: Limits::default(),
    })
}

/// One row per host:port (and per host for host-level findings), most
/// severe first, then by host and port.
fn build_rows(
    input: &ReportInput<'_>,
    names: &HashMap<IpAddr, Vec<String>>,
    interner: &mut Interner,
) -> Vec<PortRow> {
    type Key = (IpAddr, Option<u16>, Option<Proto>);
    let mut by_key: BTreeMap<Key, Vec<&Finding>> = BTreeMap::new();
    for f in &input.evaluation.findings {
        by_key.entry((f.ip, f.port, f.proto)).or_default().push(f);
    }
    let mut rows: Vec<PortRow> = by_key
        .into_iter()
        .map(|((ip, port, proto), mut fs)| {
            fs.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(&b.check)));
            let failing = fs.iter().any(|f| f.status.is_failing());
            let severity = fs
                .iter()
                .filter(|f| !failing || f.status.is_failing())
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Info);
            let controls: Vec<String> = fs
                .iter()
                .flat_map(|f| f.controls.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            PortRow {
                ip,
                hostnames: names.get(&ip).cloned().unwrap_or_default(),
                port,
                proto,
                service: fs.iter().find_map(|f| f.service.clone()),
                group: fs.iter().find_map(|f| f.group.clone()),
                severity,
                failing,
                controls: interner.intern(controls),
                checks: fs
                    .iter()
                    .map(|f| CheckChip {
                        finding: f.id.clone(),
                        check: f.check.clone(),
                        severity: f.severity,
                        status: f.status,
                        exception: f.exception.clone(),
                    })
                    .collect(),
                fix: None,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.failing
            .cmp(&a.failing)
            .then(b.severity.cmp(&a.severity))
            .then(a.ip.cmp(&b.ip))
            .then(a.port.cmp(&b.port))
    });
    rows
}

/// The fixes for the failing findings, computed once per group by the
/// remediation layer, most severe (then widest) first; and each finding's
/// group anchor.
fn fix_groups(
    input: &ReportInput<'_>,
    labels: &Labels,
) -> (Vec<FixGroup>, HashMap<String, String>) {
    let failing = input
        .evaluation
        .findings
        .iter()
        .filter(|f| f.status.is_failing());
    let check_of: HashMap<&str, &str> = input
        .evaluation
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.check.as_str()))
        .collect();
    let mut out: Vec<FixGroup> = super::remediation::fix_groups(
        failing,
        input.policy,
        input.remediation,
        input.catalogue,
        input.labels.lang(),
    )
    .into_iter()
    .map(|fix| {
        let checks: BTreeSet<String> = fix
            .finding_ids
            .iter()
            .filter_map(|id| check_of.get(id.as_str()).map(|c| c.to_string()))
            .collect();
        FixGroup {
            anchor: String::new(),
            severity_label: labels.get(&format!("severity.{}", fix.severity)),
            checks: checks.into_iter().collect(),
            fix,
            name: String::new(),
            groups: Vec::new(),
            internet: false,
            policy_lines: Vec::new(),
            inline: Vec::new(),
            platform_basis: String::new(),
        }
    })
    .collect();
    out.sort_by(|a, b| {
        b.fix
            .severity
            .cmp(&a.fix.severity)
            .then(b.fix.hosts.len().cmp(&a.fix.hosts.len()))
            .then(a.fix.port.cmp(&b.fix.port))
            .then(a.fix.id.cmp(&b.fix.id))
    });
    let mut of = HashMap::new();
    for (i, g) in out.iter_mut().enumerate() {
        g.anchor = format!("fx{}", i + 1);
        for id in &g.fix.finding_ids {
            of.entry(id.clone()).or_insert_with(|| g.anchor.clone());
        }
    }
    (out, of)
}

fn build_summary(input: &ReportInput<'_>, rows: &[PortRow], labels: &Labels) -> Summary {
    let findings = &input.evaluation.findings;
    let failing = findings.iter().filter(|f| f.status.is_failing()).count();
    let mut open = 0;
    let mut hosts = BTreeSet::new();
    for o in input.observations {
        if o.state == PortState::Open {
            open += 1;
            hosts.insert(o.ip);
        }
    }
    let failing_port = |r: &&PortRow| r.failing && r.port.is_some();
    let failing_host = |r: &&PortRow| r.failing && r.port.is_none();
    Summary {
        hosts_in_scope: input.facts.host_count,
        hosts_with_open_ports: hosts.len(),
        open_ports: open,
        rows: rows.len(),
        failing_rows: rows.iter().filter(|r| r.failing).count(),
        failing_ports: rows.iter().filter(failing_port).count(),
        failing_host_level: rows
            .iter()
            .filter(failing_host)
            .map(|r| r.ip)
            .collect::<BTreeSet<_>>()
            .len(),
        failing_hosts: rows
            .iter()
            .filter(|r| r.failing)
            .map(|r| r.ip)
            .collect::<BTreeSet<_>>()
            .len(),
        findings: findings.len(),
        failing,
        waived: findings.len() - failing,
        by_severity: Severity::ALL
            .iter()
            .rev()
            .map(|&s| SeverityCount {
                severity: s,
                label: labels.get(&format!("severity.{s}")),
                count: rows
                    .iter()
                    .filter(failing_port)
                    .filter(|r| r.severity == s)
                    .count(),
                hosts: rows
                    .iter()
                    .filter(failing_host)
                    .filter(|r| r.severity == s)
                    .count(),
                findings: findings
                    .iter()
                    .filter(|f| f.status.is_failing() && f.severity == s)
                    .count(),
            })
            .collect(),
        gate_tripped: input.facts.gate_tripped,
    }
}

/// A finding's message in the report's language: its key and parameters
/// through the labels (the exception window in words of that language too),
/// else the English text the evaluator recorded.
pub fn finding_message(labels: &Labels, exceptions: &[ExceptionRow], f: &Finding) -> String {
    let mut msg = std::borrow::Cow::Borrowed(&f.msg);
    if let (Some(id), Some(_)) = (f.msg.args.get("exception"), f.msg.args.get("window"))
        && let Some(w) = exceptions
            .iter()
            .find(|e| &e.id == id)
            .and_then(|e| e.window.clone())
    {
        msg.to_mut().args.insert("window".into(), w);
    }
    labels.message(&msg).unwrap_or_else(|| f.message.clone())
}

/// A small audit with hostile text everywhere the network or the policy
/// can put it, for the renderers' tests.
#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests;
