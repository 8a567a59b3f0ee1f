//! What a report is built from: the facts of the run ([`RunFacts`]) and
//! the borrowed inputs ([`ReportInput`]).

use super::*;

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
    /// What the scan (or the imported files) concluded per state, which
    /// protocols it probed, and whether services were identified.
    pub coverage: ScanCoverage,
    /// What changed since the previous run of the same scope, when the
    /// history has one.
    pub trend: Option<Trend>,
}

/// What a scan covered, as the app knows it (see [`RunFacts::coverage`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanCoverage {
    /// Pairs concluded per state.
    pub states: StateCounts,
    /// Per protocol: how many ports were probed, or why none were. Empty
    /// for an import (the report reads the files' own port lists).
    pub protocols: Vec<ProtocolCoverage>,
    /// Whether services were identified; `None` for an import (the report
    /// reads the files' command lines).
    pub identification: Option<bool>,
}

/// (address, port) pairs concluded, per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StateCounts {
    pub probed: u64,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    pub open_filtered: u64,
}

/// One protocol of a scan: probed over `ports` ports, or not (and why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolCoverage {
    pub proto: Proto,
    pub probed: bool,
    /// Ports probed (or asked for and dropped, when not probed).
    pub ports: usize,
    /// Why it was not probed: `connect-scan` (a connect scan cannot probe
    /// UDP) or `not-asked` (no port of it in the port list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// `why` in the report's language (filled by the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_text: Option<String>,
}

/// The findings against the previous run of the same scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The previous run's id in the history.
    pub previous_run: Option<i64>,
    pub previous_started: DateTime<Utc>,
    /// Failing findings now that the previous run did not have.
    pub new: usize,
    /// Failing findings of the previous run that are gone.
    pub resolved: usize,
    /// Failing findings in both runs.
    pub still_open: usize,
}

/// Everything a report is built from.
pub struct ReportInput<'a> {
    /// The report's language and its labels, from the rulebook
    /// (`Rules::labels`).
    pub labels: &'a Labels,
    pub facts: RunFacts,
    pub observations: &'a [Observation],
    pub evaluation: &'a Evaluation,
    pub policy: &'a Policy,
    pub profiles: &'a Profiles,
    pub catalogue: &'a Catalogue,
    pub remediation: &'a RemediationCatalog,
}
