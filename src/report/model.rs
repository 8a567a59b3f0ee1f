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
use crate::model::{
    Finding, FindingStatus, Observation, PortState, Proto, RequirementStatus, ScanKind, Severity,
};
use crate::policy::{Evaluation, ExceptionState, Policy, Profiles};
use crate::rules::Catalogue;

/// Version of the `report.json` layout; bumped when a field changes meaning.
/// 2: one row per host:port (`ports`), fix groups, interned control sets.
pub const SCHEMA_VERSION: u32 = 2;

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

/// An input file of an imported scan, its SHA-256, and what it says about
/// the scan that made it (provenance: scanner, version, command line,
/// start and end, port lists — each field present only when the file
/// records it, bounded and inert as the importer kept it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    pub sha256: String,
    /// `nmap-xml`, `masscan-json` or `jsonl`.
    pub kind: String,
    #[serde(flatten)]
    pub provenance: crate::import::Provenance,
}

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
    /// The files an import audit read (empty for a scan).
    pub inputs: Vec<InputFile>,
    /// The scanner's source address(es) toward the targets: segmentation
    /// evidence must say from where. Empty for imported results.
    pub source_addresses: Vec<IpAddr>,
    /// The interface holding each source address, in the same order
    /// (`None` when none was found).
    pub source_interfaces: Vec<Option<String>>,
    /// The measured vantage (`--vantage`, sources), which the scope
    /// puts in words.
    pub vantage: crate::model::AuditVantage,
    /// The SHA-256 of every rule file in effect, as `rules::Rules` recorded
    /// them when it read them.
    pub rule_files: BTreeMap<String, String>,
    /// An import that accepted a file cut short (`--allow-partial-import`).
    pub partial_import: bool,
    /// Pairs of a live scan that were never probed: this machine refused
    /// to send them (reason `local-error`).
    pub local_errors: u64,
    /// UDP pairs of a live scan left open|filtered before their retries
    /// were spent: their hosts' ICMP rate limits outlasted the host time-out.
    pub udp_undecided: u64,
    /// The run's place in the history, recorded in the manifest.
    pub history: Option<crate::model::HistoryAnchor>,
}

/// Everything a report is built from.
pub struct ReportInput<'a> {
    /// The report's language and its labels, from the rulebook
    /// ([`Labels::from_rules`]).
    pub labels: &'a Labels,
    pub facts: RunFacts,
    pub observations: &'a [Observation],
    pub evaluation: &'a Evaluation,
    pub policy: &'a Policy,
    pub profiles: &'a Profiles,
    pub catalogue: &'a Catalogue,
    pub remediation: &'a RemediationCatalog,
}

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
    /// host-level findings), most severe first.
    pub ports: Vec<PortRow>,
    pub fix_groups: Vec<FixGroup>,
    pub exceptions: Vec<ExceptionRow>,
    /// Every open port with its allowance (PCI DSS 1.2.5.a).
    pub inventory: Vec<InventoryRow>,
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
    /// Host:port rows with at least one finding (host-level rows included).
    pub rows: usize,
    /// Rows with at least one failing finding.
    pub failing_rows: usize,
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
    /// Failing host:port rows whose highest severity is this one.
    pub count: usize,
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
    pub passed: usize,
    pub failed: usize,
    #[serde(default)]
    pub partial: usize,
    pub not_assessed: usize,
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
}

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
        let scope = build_scope(input, labels)?;
        let names = hostname_index(input.observations);
        let mut interner = Interner::default();
        let ports = build_rows(input, &names, &mut interner);
        let (fix_groups, fix_of) = fix_groups(input, labels);
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
        let summary = build_summary(input, &ports, labels);
        let charts = build_charts(input, &ports);
        let compliance = build_compliance(input, labels);
        let exceptions = build_exceptions(input, labels);
        let inventory = build_inventory(input, &names);
        let mut label_map = BTreeMap::new();
        for prefix in ["check.", "severity.", "status.", "req_status."] {
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
            exceptions,
            inventory,
            labels: label_map,
            text: labels.clone(),
        })
    }

    /// The first `n` rows (the most severe), for the static table.
    pub fn top_rows(&self, n: usize) -> &[PortRow] {
        &self.ports[..self.ports.len().min(n)]
    }
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
        vantage_measured: measured_vantage(&facts.vantage, labels),
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
    Summary {
        hosts_in_scope: input.facts.host_count,
        hosts_with_open_ports: hosts.len(),
        open_ports: open,
        rows: rows.len(),
        failing_rows: rows.iter().filter(|r| r.failing).count(),
        findings: findings.len(),
        failing,
        waived: findings.len() - failing,
        by_severity: Severity::ALL
            .iter()
            .rev()
            .map(|&s| SeverityCount {
                severity: s,
                label: labels.get(&format!("severity.{s}")),
                count: rows.iter().filter(|r| r.failing && r.severity == s).count(),
                findings: findings
                    .iter()
                    .filter(|f| f.status.is_failing() && f.severity == s)
                    .count(),
            })
            .collect(),
        gate_tripped: input.facts.gate_tripped,
    }
}

fn build_charts(input: &ReportInput<'_>, rows: &[PortRow]) -> Charts {
    let mut groups: BTreeMap<Option<String>, GroupSeverity> = BTreeMap::new();
    let mut heat: HashMap<IpAddr, [usize; 5]> = HashMap::new();
    let mut failing_by_service: HashMap<&str, usize> = HashMap::new();
    for r in rows {
        let g = groups
            .entry(r.group.clone())
            .or_insert_with(|| GroupSeverity {
                group: r.group.clone(),
                counts: [0; 5],
                rows: 0,
            });
        g.rows += 1;
        if r.failing {
            g.counts[severity_rank(r.severity) as usize] += 1;
            if r.port.is_some() {
                *failing_by_service
                    .entry(r.service.as_deref().unwrap_or("?"))
                    .or_default() += 1;
            }
        }
        let h = heat.entry(r.ip).or_insert([0; 5]);
        for c in r.checks.iter().filter(|c| c.status.is_failing()) {
            h[severity_rank(c.severity) as usize] += 1;
        }
    }
    let mut open_by_service: HashMap<String, usize> = HashMap::new();
    for o in input.observations {
        if o.state == PortState::Open {
            let name = o
                .service
                .as_ref()
                .map(|s| s.name.clone())
                .or_else(|| {
                    input
                        .catalogue
                        .entry(o.port, o.proto)
                        .map(|e| e.service.clone())
                })
                .unwrap_or_else(|| format!("{}/{}", o.port, o.proto));
            *open_by_service.entry(name).or_default() += 1;
        }
    }
    let mut services: Vec<ServiceCount> = open_by_service
        .into_iter()
        .map(|(service, open)| ServiceCount {
            failing: failing_by_service
                .get(service.as_str())
                .copied()
                .unwrap_or(0),
            service: display_safe(&service),
            open,
        })
        .collect();
    services.sort_by(|a, b| b.open.cmp(&a.open).then(a.service.cmp(&b.service)));
    services.truncate(TOP_SERVICES);
    // Most exposed: weighted by severity (a critical outweighs ten lows).
    let weight = |c: &[usize; 5]| -> u64 {
        c.iter()
            .enumerate()
            .map(|(i, n)| *n as u64 * 10u64.pow(i as u32))
            .sum()
    };
    let mut heat: Vec<HostHeat> = heat
        .into_iter()
        .filter(|(_, c)| c.iter().any(|n| *n > 0))
        .map(|(ip, counts)| HostHeat { ip, counts })
        .collect();
    heat.sort_by(|a, b| {
        weight(&b.counts)
            .cmp(&weight(&a.counts))
            .then(a.ip.cmp(&b.ip))
    });
    heat.truncate(HEAT_HOSTS);
    let mut groups: Vec<GroupSeverity> = groups.into_values().collect();
    groups.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.group.cmp(&b.group)));
    Charts {
        groups,
        services,
        heat,
    }
}

fn build_compliance(input: &ReportInput<'_>, labels: &Labels) -> Vec<FrameworkReport> {
    let t = |k: &str| labels.get(k);
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
                .map(|r| RequirementRow {
                    id: r.id.clone(),
                    control: format!("{}:{}", pv.profile, r.id),
                    title: match input.labels.lang() {
                        Lang::ZhCn if !r.title_zh.is_empty() => r.title_zh.clone(),
                        _ => r.title_en.clone(),
                    },
                    category: if pv.profile.starts_with("mlps") {
                        mlps_category(&r.id, labels)
                    } else {
                        None
                    },
                    status: r.status,
                    status_label: t(&requirement_status_key(r.status)),
                    confirmed: r.confirmed,
                    reason: requirement_reason(&format!("{}:{}", pv.profile, r.id), r, labels),
                    finding_count: r.findings.len(),
                    coverage: coverage_text(r, labels),
                })
                .collect();
            let partial = pv.partial;
            FrameworkReport {
                id: pv.profile.clone(),
                name,
                score: pv.score,
                score_pct: pv
                    .score
                    .map(|s| (s * 100.0).round().clamp(0.0, 100.0) as u32),
                passed: pv.passed,
                failed: pv.failed,
                partial,
                not_assessed: pv.not_assessed,
                requirements,
            }
        })
        .collect()
}

fn build_exceptions(input: &ReportInput<'_>, labels: &Labels) -> Vec<ExceptionRow> {
    let today = input.facts.as_of;
    input
        .policy
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
                    .unwrap_or_else(|| labels.get("label.all")),
                check: e.check.map(|c| c.as_str().to_string()),
                reason: e.reason.clone(),
                approver: e.approver.clone(),
                ticket: e.ticket.clone(),
                expires: e.expires,
                days_left: (e.expires - today).num_days(),
                state: exception_state_name(state).to_string(),
                state_label: labels.get(&format!(
                    "exception_state.{}",
                    exception_state_name(state).replace('-', "_")
                )),
                expired: state == ExceptionState::Expired,
                window: e.window.map(|w| window_text(&w, labels)),
            }
        })
        .collect()
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
fn coverage_text(r: &crate::model::RequirementVerdict, labels: &Labels) -> String {
    r.coverage
        .checks
        .iter()
        .map(|c| {
            if c.ran {
                labels.fmt(
                    "ui.check_ran",
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

/// An exception's recurring window in words, in the report's language.
fn window_text(w: &crate::policy::Window, labels: &Labels) -> String {
    use crate::policy::window::{Every, Span};
    let every = labels.get(&format!(
        "window.every_{}",
        match w.every {
            Every::Week => "week",
            Every::Month => "month",
            Every::Quarter => "quarter",
            Every::Year => "year",
        }
    ));
    let day = |n: u32| labels.get(&format!("window.weekday_{n}"));
    match w.span {
        Span::First(n) => labels.fmt("window.first", &[("n", &n.to_string()), ("every", &every)]),
        Span::Last(n) => labels.fmt("window.last", &[("n", &n.to_string()), ("every", &every)]),
        Span::Days(a, b) if w.every == Every::Week => {
            if a == b {
                labels.fmt("window.weekday", &[("day", &day(a))])
            } else {
                labels.fmt("window.weekdays", &[("from", &day(a)), ("to", &day(b))])
            }
        }
        Span::Days(a, b) => labels.fmt(
            "window.days",
            &[
                ("from", &a.to_string()),
                ("to", &b.to_string()),
                ("every", &every),
            ],
        ),
    }
}

/// Every open port with the allowance that covers it, as the evaluator
/// decided it (its port verdicts); product and banner from the observation.
fn build_inventory(
    input: &ReportInput<'_>,
    names: &HashMap<IpAddr, Vec<String>>,
) -> Vec<InventoryRow> {
    let today = input.facts.as_of;
    let observed: HashMap<(IpAddr, u16, Proto), &Observation> = input
        .observations
        .iter()
        .filter(|o| o.state == PortState::Open)
        .map(|o| ((o.ip, o.port, o.proto), o))
        .collect();
    input
        .evaluation
        .ports
        .iter()
        .map(|v| {
            let info = observed
                .get(&(v.ip, v.port, v.proto))
                .and_then(|o| o.service.as_ref());
            InventoryRow {
                ip: v.ip,
                hostnames: names.get(&v.ip).cloned().unwrap_or_default(),
                group: v.group.clone(),
                port: v.port,
                proto: v.proto,
                service: v.service.clone(),
                product: info.and_then(|s| {
                    let text = [s.product.as_deref(), s.version.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    (!text.is_empty()).then(|| excerpt(&text, BANNER_EXCERPT))
                }),
                banner: info
                    .and_then(|s| s.banner.as_deref())
                    .map(|b| excerpt(b, BANNER_EXCERPT)),
                allowed: v.group.as_ref().map(|_| v.allowed_by.is_some()),
                justification: v.justification.clone(),
                approver: v.approver.clone(),
                ticket: v.ticket.clone(),
                review_by: v.review_by,
                review_overdue: v.review_by.is_some_and(|d| d < today),
            }
        })
        .collect()
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
        };
        edit(&mut facts);
        let labels = Labels::embedded(lang).unwrap();
        let m = ReportModel::build(&ReportInput {
            labels: &labels,
            facts,
            observations: &observations,
            evaluation: &evaluation,
            policy: &policy,
            profiles: &profiles,
            catalogue: &catalogue,
            remediation: &RemediationCatalog::embedded(),
        })
        .unwrap();
        (m, evaluation, observations)
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

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
        assert_eq!(m.labels["check.not-allowed"], "端口开放但未获批准");
        // One word per concept: a failing finding is 不符合, like a failing requirement.
        assert_eq!(m.labels["status.fail"], "不符合");
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
        let groups = super::super::remediation::fix_groups(
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
}
