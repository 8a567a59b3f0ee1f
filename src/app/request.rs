//! What the operator asks an audit to do ([`AuditRequest`]) and what it
//! produced ([`AuditOutcome`]).

use std::path::PathBuf;

use chrono::NaiveDate;

use super::{Cancel, ScanChoice, Scope};
use crate::identify::IdentifyConfig;
use crate::model::{Observation, Severity};
use crate::policy::Evaluation;
use crate::report;
use crate::scan::{ScanConfig, ScanSummary};
use crate::store::Drift;

/// What the operator asked an audit to do.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    /// Targets may be empty when a policy is given: its groups are scanned.
    pub scope: Scope,
    pub engine: ScanChoice,
    pub scan: ScanConfig,
    pub out: PathBuf,
    /// Service identification of open ports (`None`: off).
    pub identify: Option<IdentifyConfig>,
    /// The declared port policy; without one every host is unmanaged and
    /// judged against the built-in baseline.
    pub policy: Option<PathBuf>,
    /// Gate: non-waived findings at or above this make the audit fail.
    pub fail_on: Severity,
    /// Judge expiries, windows and review dates as of this day (default: today).
    pub as_of: Option<NaiveDate>,
    /// Language of the report.
    pub lang: report::Lang,
    /// Who ran the audit (recorded in the evidence manifest).
    pub operator: String,
    /// The command line as typed (recorded in the evidence manifest).
    pub command_line: Vec<String>,
    /// The audit history database (`None`: the run is not recorded and no
    /// drift is judged).
    pub store: Option<PathBuf>,
    /// Audit these existing scan results instead of scanning.
    pub import: Vec<crate::import::Source>,
    /// The history key (`PORTWARDEN_HISTORY_KEY` / `--history-key-file`):
    /// runs are recorded in an HMAC-SHA256 chain.
    pub history_key: Option<crate::store::HistoryKey>,
    /// Accept an import file that was cut short (`--allow-partial-import`);
    /// the run's source then says `"partial": true`.
    pub allow_partial_import: bool,
    /// Write Prometheus textfile-collector metrics here.
    pub metrics: Option<PathBuf>,
    /// Sign the report's manifest with this Ed25519 secret key (PKCS#8 PEM,
    /// as `keygen` writes it): `manifest.sig` beside `manifest.json`.
    pub sign_key: Option<PathBuf>,
    /// Cancels the audit (the CLI's Ctrl-C / SIGTERM): nothing is written
    /// nor recorded once it is raised, unless the run already committed.
    pub cancel: Cancel,
    /// Start the report's CSV files with a UTF-8 BOM (always for zh-CN).
    pub csv_bom: bool,
    /// `--compress`: the report's data files as zstd.
    pub compress: bool,
    /// Also print `report.pdf` with this Chromium.
    pub pdf_with: Option<PathBuf>,
    /// The PDF's paper (`None`: A4 for zh-CN, Letter otherwise).
    pub paper: Option<report::print::Paper>,
    /// Where the operator says the audit runs from (`--vantage NAME`):
    /// `internet` groups are judged only when it is `internet` and every
    /// source address is public.
    pub vantage: Option<String>,
    /// Send the NTP monlist request (`--udp-monlist`): without it an NTP
    /// amplifier cannot be seen, and the requirements say so.
    pub udp_monlist: bool,
    /// Test setting (`PORTWARDEN_TEST_VANTAGE=lab`): the lab range
    /// 198.18.0.0/15 counts as a public source; the report names it.
    pub lab_vantage: bool,
}

/// What an audit produced.
#[derive(Debug)]
pub struct AuditOutcome {
    pub evaluation: Evaluation,
    /// True when a non-waived finding is at or above the gate severity.
    pub gate_tripped: bool,
    pub summary: ScanSummary,
    /// Addresses and ports in scope.
    pub hosts: u64,
    pub ports: usize,
    pub out: PathBuf,
    pub observations: Vec<Observation>,
    /// SHA-256 of the report's `manifest.json`, to record elsewhere.
    pub manifest_sha256: String,
    /// The run's id in the history (`None` without a store).
    pub run_id: Option<i64>,
    /// What changed since the previous run of the same scope.
    pub drift: Option<Drift>,
    /// The report's labels (the rulebook's), for the terminal summary.
    pub labels: report::Labels,
    /// An import that accepted a file cut short (`--allow-partial-import`).
    pub partial_import: bool,
    /// The previous run of the scope could not be read back: why (the
    /// audit ran without it).
    pub previous_unreadable: Option<String>,
}
