//! App layer: the audit pipeline (targets → scan → identify → evaluate →
//! report) put together from the layers below. It validates nothing the
//! layers validate themselves, owns the order of the steps and the files an
//! audit leaves behind. The CLI calls it; it never prints.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

mod cadence;
mod cancel;
mod imports;
pub mod paths;
mod recording;
pub use cancel::{Cancel, Cancelled, off_thread};
pub use imports::vantages;
pub use recording::MetricsUnwritten;
use recording::{interrupted, previous_run};

use chrono::{DateTime, NaiveDate, Utc};

use crate::identify::{Identifier, IdentifyConfig, ProbeSet};
use crate::model::{Observation, Proto, ScanEvent, ScanKind, Severity};
use crate::policy::{self, Evaluation, Policy, Profiles};
use crate::report;
use crate::rules::{Catalogue, Rules};
use crate::scan::{self, ScanConfig, ScanSummary};
use crate::store::{self, Drift, Store};
use crate::target::{PortSet, TargetOptions, Targets};
use imports::{imported_ports, imported_targets};

/// Ports an audit scans when none are given.
pub const DEFAULT_AUDIT_PORTS: &str = "common,high-risk-udp";
/// The `scan` command's default ports (TCP only: a plain scan stays quick).
pub const DEFAULT_SCAN_PORTS: &str = "common";

/// What to scan, as the operator wrote it.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub targets: Vec<String>,
    /// Excluded specs (same forms as targets, `@file` included).
    pub excludes: Vec<String>,
    pub allow_large: bool,
    pub ports: String,
    /// A directory whose rule files replace the embedded ones.
    pub rules_dir: Option<PathBuf>,
}

/// Which probe engine the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanChoice {
    /// SYN when raw sockets are available, else connect (with a notice).
    #[default]
    Auto,
    Connect,
    Syn,
}

/// A scope resolved into concrete sets, plus the rules it was resolved with.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub targets: Targets,
    pub ports: PortSet,
    pub catalogue: Catalogue,
    /// Identification probes (`rules/probes.toml`).
    pub probes: ProbeSet,
    /// UDP payloads (`rules/udp-payloads.toml`) and the ports whose silent
    /// pairs the UDP engine retries hardest (catalogue risk high or above).
    pub udp: scan::udp::UdpOptions,
}

/// Loads the rules and resolves targets and ports.
pub async fn prepare(scope: &Scope) -> Result<Prepared> {
    let rules = Rules::load(scope.rules_dir.as_deref())?;
    prepare_with(scope, &rules).await
}

/// Resolves targets and ports with rules loaded once by the caller.
pub async fn prepare_with(scope: &Scope, rules: &Rules) -> Result<Prepared> {
    let catalogue = rules.ports.clone();
    let probes = ProbeSet::parse(&rules.probes.text, &rules.probes.origin)?;
    let ports = PortSet::parse(&scope.ports, &catalogue)?;
    let opts = TargetOptions {
        allow_large: scope.allow_large,
    };
    let targets = Targets::resolve(&scope.targets, &scope.excludes, &opts).await?;
    let udp = scan::udp::UdpOptions {
        payloads: scan::udp::payloads::Payloads::parse(
            &rules.udp_payloads.text,
            &rules.udp_payloads.origin,
        )?,
        priority: catalogue
            .entries()
            .iter()
            .filter(|e| e.proto == Proto::Udp && e.risk >= Severity::High)
            .map(|e| e.port)
            .collect(),
    };
    Ok(Prepared {
        targets,
        ports,
        catalogue,
        probes,
        udp,
    })
}

/// A connect scan cannot send UDP probes. UDP ports that came only from
/// the default spec are left out, with a notice saying so; ports the
/// operator named are kept, and the scan refuses them with the reason.
pub async fn settle_udp(
    prepared: &mut Prepared,
    kind: ScanKind,
    spec: &str,
    events: &mpsc::Sender<ScanEvent>,
) -> usize {
    let mut dropped = 0;
    if kind == ScanKind::Connect && !prepared.ports.udp().is_empty() && spec == DEFAULT_AUDIT_PORTS
    {
        let n = prepared.ports.udp().len();
        dropped = n;
        prepared.ports = prepared.ports.tcp_only();
        let _ = events
            .send(ScanEvent::Notice(format!(
                "a connect scan cannot probe UDP: the {n} default UDP ports (high-risk-udp) were NOT scanned; run as root (or grant CAP_NET_RAW) to include them"
            )))
            .await;
    }
    dropped
}

/// Turns the operator's engine choice into a concrete one. A silent
/// downgrade would surprise, so the fallback is announced.
pub async fn choose_engine(
    choice: ScanChoice,
    events: &mpsc::Sender<ScanEvent>,
) -> Result<ScanKind> {
    Ok(match choice {
        ScanChoice::Connect => ScanKind::Connect,
        ScanChoice::Syn => {
            if !scan::syn::raw_sockets_available() {
                let exe = std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "portwarden".into());
                return Err(scan::ScanError::NoRawSocketPrivilege(exe).into());
            }
            ScanKind::Syn
        }
        ScanChoice::Auto if scan::syn::raw_sockets_available() => ScanKind::Syn,
        ScanChoice::Auto => {
            let _ = events
                .send(ScanEvent::Notice(
                    "no raw-socket privilege: using a connect scan (run as root or grant CAP_NET_RAW for a SYN scan)"
                        .into(),
                ))
                .await;
            ScanKind::Connect
        }
    })
}

/// Runs the scan and forwards its events, with host names filled in and
/// unresolved names announced first. With `identify`, every open port is
/// identified as soon as it is found (while the scan goes on) before its
/// observation is forwarded.
pub async fn scan(
    prepared: &Prepared,
    cfg: &ScanConfig,
    identify: Option<&IdentifyConfig>,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary> {
    for u in prepared.targets.unresolved() {
        let _ = events
            .send(ScanEvent::Notice(format!(
                "host name '{}' did not resolve ({}); scanning the rest",
                u.name, u.error
            )))
            .await;
    }
    let identifier = match identify {
        Some(c) => Some(std::sync::Arc::new(Identifier::new(
            c.clone(),
            prepared.probes.clone(),
        )?)),
        None => None,
    };
    let (tx, mut rx) = mpsc::channel(4096);
    let (to_identify, identify_rx) = mpsc::channel::<Observation>(4096);
    let (identified_tx, mut identified_rx) = mpsc::channel::<Observation>(4096);
    let targets = &prepared.targets;
    let forward = {
        let events = events.clone();
        let identifying = identifier.is_some();
        async move {
            while let Some(ev) = rx.recv().await {
                let ev = match ev {
                    ScanEvent::Observation(mut o) => {
                        o.hostnames = targets.hostnames(o.ip);
                        if identifying {
                            if to_identify.send(o).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        ScanEvent::Observation(o)
                    }
                    other => other,
                };
                if events.send(ev).await.is_err() {
                    break;
                }
            }
            // Dropping `to_identify` here lets identification finish.
        }
    };
    let catalogue = &prepared.catalogue;
    let registered = |port: u16| catalogue.entry(port, Proto::Tcp).map(|e| e.service.clone());
    let identify_all = async {
        if let Some(idf) = &identifier {
            idf.run_stream(identify_rx, identified_tx, registered).await;
        }
    };
    let pass_on = async {
        while let Some(o) = identified_rx.recv().await {
            if events.send(ScanEvent::Observation(o)).await.is_err() {
                break;
            }
        }
    };
    let mut cfg = cfg.clone();
    cfg.udp = prepared.udp.clone();
    let run = scan::run(&prepared.targets, &prepared.ports, &cfg, tx);
    let (summary, (), (), ()) = tokio::join!(run, forward, identify_all, pass_on);
    Ok(summary?)
}

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

/// The evaluation clock: noon UTC of `as_of`, else now.
pub fn clock(as_of: Option<NaiveDate>) -> DateTime<Utc> {
    match as_of.and_then(|d| d.and_hms_opt(12, 0, 0)) {
        Some(t) => t.and_utc(),
        None => Utc::now(),
    }
}

/// Loads the compliance profiles (embedded, or overridden from a rules dir).
pub fn load_profiles(rules_dir: Option<&Path>) -> Result<Profiles> {
    Ok(Rules::load(rules_dir)?.profiles)
}

/// Loads the remediation templates (embedded, or overridden from a rules dir).
pub fn load_remediation(rules_dir: Option<&Path>) -> Result<report::RemediationCatalog> {
    Ok(report::RemediationCatalog::from_rules(&Rules::load(
        rules_dir,
    )?)?)
}

/// Every group's `platforms` must name remediation platforms (or families
/// such as `windows`): a typo would silently reorder nothing.
pub fn check_platforms(policy: &Policy, remediation: &report::RemediationCatalog) -> Result<()> {
    for g in &policy.groups {
        remediation
            .check_platforms(&g.platforms)
            .with_context(|| format!("{}:{}: group '{}'", policy.file, g.line, g.name))?;
    }
    Ok(())
}

/// Loads the declared policy, or the empty one (every host unmanaged).
pub fn load_policy(path: Option<&Path>, profiles: &Profiles) -> Result<Policy> {
    Ok(match path {
        Some(p) => Policy::load(p, profiles)?,
        None => Policy::none(),
    })
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

/// Runs a whole audit and writes its report directory. Events (progress,
/// notices, observations) are forwarded to `events` as they happen.
pub async fn audit(req: &AuditRequest, events: mpsc::Sender<ScanEvent>) -> Result<AuditOutcome> {
    let started = Utc::now();
    let cancel = &req.cancel;
    // The report directory, the key, rules, policy and history first: a
    // typo there must not cost a scan.
    // Every output path (report, metrics, history) can be written.
    paths::check_audit_outputs(req)?;
    let sign_key = req
        .sign_key
        .as_deref()
        .map(report::evidence::load_signing_key)
        .transpose()?;
    // Every rule file is read and hashed once, here.
    let rules = Rules::load(req.scope.rules_dir.as_deref())?;
    let profiles = rules.profiles.clone();
    let remediation = report::RemediationCatalog::from_rules(&rules)?;
    // The report's labels, checked before anything is scanned.
    let labels = report::Labels::from_rules(req.lang, &rules.i18n)?;
    let policy = load_policy(req.policy.as_deref(), &profiles)?;
    check_platforms(&policy, &remediation)?;
    policy.check_port_scopes(&rules.ports)?;
    let rulebook = Rulebook {
        policy,
        profiles,
        remediation,
        labels,
        rules,
    };
    let policy = &rulebook.policy;
    let history = match req.store.as_deref() {
        Some(path) => {
            let mut s = Store::open_interruptible(path, cancel.flag()).map_err(interrupted)?;
            s.set_key(req.history_key.clone());
            Some(s)
        }
        None => None,
    };
    // Without targets, the scope is the policy's groups (an import without
    // either takes the addresses in its files).
    let mut scope = req.scope.clone();
    if scope.targets.is_empty() {
        scope.targets = policy
            .groups
            .iter()
            .flat_map(|g| g.targets.iter().cloned())
            .collect();
    }
    if !req.import.is_empty() {
        let (mut imported, bundles) = {
            let req = req.clone();
            let rules = rulebook.rules.clone();
            let trusted = imports::trusted(policy);
            off_thread(cancel, move || {
                let bundles = imports::check(&req, &trusted)?;
                Ok((import_audit(&req, &rules)?, bundles))
            })
            .await?
        };
        // The scope of an import is what its files recorded: the addresses
        // (unless the policy's groups name the scope) and the (port, proto)
        // pairs they probed.
        if scope.targets.is_empty() {
            scope.targets = imported_targets(&imported.observations);
        }
        scope.ports = imported_ports(&imported.observations);
        imports::apply(&bundles, req, &mut scope, &mut imported);
        return finish_off_thread(req, scope, rulebook, history, imported, started, sign_key).await;
    }
    if scope.targets.is_empty() {
        anyhow::bail!("no targets: name some, or give a --policy whose groups list targets");
    }
    let mut prepared = prepare_with(&scope, &rulebook.rules).await?;
    let mut cfg = req.scan.clone();
    cfg.kind = choose_engine(req.engine, &events).await?;
    let udp_dropped = settle_udp(&mut prepared, cfg.kind, &scope.ports, &events).await;
    let protocols = probed_protocols(&prepared, udp_dropped);
    if req.udp_monlist {
        prepared.udp.payloads.enable("ntp-monlist");
    }
    // The UDP engine sends these ports a service request: its answers (or
    // silence) there are evidence the UDP checks can judge.
    let udp_payload_ports = if prepared.ports.udp().is_empty() {
        Vec::new()
    } else {
        prepared.udp.payloads.payload_ports()
    };

    let (tx, mut rx) = mpsc::channel(4096);
    let collect = async {
        let mut observations = Vec::new();
        while let Some(ev) = rx.recv().await {
            if let ScanEvent::Observation(o) = &ev {
                observations.push(o.clone());
            }
            let _ = events.send(ev).await;
        }
        observations
    };
    // A cancelled scan is dropped (its probes stop) and nothing is judged.
    let (summary, mut observations) = tokio::select! {
        r = async { tokio::join!(scan(&prepared, &cfg, req.identify.as_ref(), tx), collect) } => r,
        () = cancel.cancelled() => return Err(Cancelled.into()),
    };
    let summary = summary?;
    observations.sort_by_key(|o| (o.ip, o.port, o.proto));
    let collected = Collected {
        catalogue: prepared.catalogue,
        engine: Some(cfg.kind),
        rate: cfg.rate,
        summary,
        hosts: prepared.targets.len(),
        ports: prepared.ports.len(),
        observations,
        udp_payload_ports,
        source: serde_json::json!({
            "kind": "scan",
            "engine": cfg.kind,
            "rate": cfg.rate,
            "retries": cfg.retries,
            "seed": cfg.seed,
            "identify": req.identify.is_some(),
        }),
        inputs: Vec::new(),
        protocols,
        identification: Some(req.identify.is_some()),
        vantage: None,
    };
    finish_off_thread(req, scope, rulebook, history, collected, started, sign_key).await
}

/// [`finish_audit`] on a worker thread, so a cancel returns at once.
async fn finish_off_thread(
    req: &AuditRequest,
    scope: Scope,
    rulebook: Rulebook,
    mut history: Option<Store>,
    collected: Collected,
    started: DateTime<Utc>,
    sign_key: Option<ed25519_dalek::SigningKey>,
) -> Result<AuditOutcome> {
    let req = req.clone();
    off_thread(&req.cancel.clone(), move || {
        finish_audit(
            &req,
            &scope,
            &rulebook,
            history.as_mut(),
            collected,
            started,
            sign_key.as_ref(),
        )
    })
    .await
}

/// Observations gathered by a scan or an import, and what to say about them.
struct Collected {
    catalogue: Catalogue,
    /// The probe engine and rate cap, when the results come from a scan.
    engine: Option<ScanKind>,
    rate: Option<u64>,
    summary: ScanSummary,
    hosts: u64,
    ports: usize,
    observations: Vec<Observation>,
    /// Ports our UDP engine sent a service payload to (empty for imports).
    udp_payload_ports: Vec<u16>,
    /// How they were gathered (recorded with the run).
    source: serde_json::Value,
    /// The imported files, their hashes (of the bytes read) and what each
    /// says about its scan, in the order of `AuditRequest::import` (empty
    /// for a scan).
    inputs: Vec<report::InputFile>,
    /// The protocols a scan probed (empty for an import).
    protocols: Vec<report::ProtocolCoverage>,
    /// Whether a scan identified services (`None` for an import).
    identification: Option<bool>,
    /// The vantage signed bundles recorded, when they all share one and
    /// were all verified against the policy's scanners.
    vantage: Option<crate::model::AuditVantage>,
}

/// Reads the scan results an import audit judges.
fn import_audit(req: &AuditRequest, rules: &Rules) -> Result<Collected> {
    let catalogue = rules.ports.clone();
    let opts = crate::import::LoadOptions {
        allow_partial: req.allow_partial_import,
    };
    let imported = crate::import::load(&req.import, opts)?;
    let summary = imported.summary();
    let (hosts, ports) = imported.hosts_and_ports();
    let source = imported.source_json();
    let inputs = input_files(&req.import, &imported.files);
    Ok(Collected {
        catalogue,
        engine: None,
        rate: None,
        summary,
        hosts,
        ports,
        observations: imported.observations,
        udp_payload_ports: Vec::new(),
        source,
        inputs,
        protocols: Vec::new(),
        identification: None,
        vantage: None,
    })
}

/// What the report says the scan covered.
fn scan_coverage(
    summary: &ScanSummary,
    protocols: &[report::ProtocolCoverage],
    identification: Option<bool>,
) -> report::ScanCoverage {
    report::ScanCoverage {
        states: report::StateCounts {
            probed: summary.probed,
            open: summary.open,
            closed: summary.closed,
            filtered: summary.filtered,
            open_filtered: summary.open_filtered,
        },
        protocols: protocols.to_vec(),
        identification,
    }
}

/// The failing findings against the previous run of the scope.
fn trend(d: &Drift, findings: &[crate::model::Finding]) -> report::Trend {
    let failing = findings.iter().filter(|f| f.status.is_failing()).count();
    report::Trend {
        previous_run: d.from.id,
        previous_started: d.from.started,
        new: d.findings_new.len(),
        resolved: d.findings_resolved.len(),
        still_open: failing.saturating_sub(d.findings_new.len()),
    }
}

/// The protocols a scan probes, and UDP's reason when it probes none:
/// dropped by a connect scan, or not asked for.
fn probed_protocols(prepared: &Prepared, udp_dropped: usize) -> Vec<report::ProtocolCoverage> {
    let (tcp, udp) = (prepared.ports.tcp().len(), prepared.ports.udp().len());
    let entry = |proto, n: usize, why: &str| report::ProtocolCoverage {
        proto,
        probed: n > 0,
        ports: if n > 0 { n } else { udp_dropped },
        why: (n == 0).then(|| why.to_string()),
        why_text: None,
    };
    vec![
        entry(Proto::Tcp, tcp, "not-asked"),
        entry(
            Proto::Udp,
            udp,
            if udp_dropped > 0 {
                "connect-scan"
            } else {
                "not-asked"
            },
        ),
    ]
}

/// What an audit judges by, loaded before anything is scanned.
struct Rulebook {
    policy: Policy,
    profiles: Profiles,
    remediation: report::RemediationCatalog,
    /// The report's labels, from the rulebook's i18n files.
    labels: report::Labels,
    /// Every rule file, read and hashed once (the evidence hashes).
    rules: Rules,
}

/// Evaluates against the policy and the previous run of the same scope,
/// writes the report (with `drift.json` when there is a previous run),
/// records the run and writes the metrics.
fn finish_audit(
    req: &AuditRequest,
    scope: &Scope,
    rulebook: &Rulebook,
    history: Option<&mut Store>,
    collected: Collected,
    started: DateTime<Utc>,
    sign_key: Option<&ed25519_dalek::SigningKey>,
) -> Result<AuditOutcome> {
    let cancel = &req.cancel;
    cancel.check()?;
    let Rulebook {
        policy,
        profiles,
        remediation,
        labels,
        rules,
    } = rulebook;
    let Collected {
        catalogue,
        engine,
        rate,
        summary,
        hosts,
        ports,
        observations,
        udp_payload_ports,
        source,
        inputs,
        protocols,
        identification,
        vantage: bundle_vantage,
    } = collected;
    let partial_import = source["partial"] == serde_json::Value::Bool(true);
    let mut record = store::audit_record(store::AuditFacts {
        started,
        scope_targets: &scope.targets,
        scope_excludes: &scope.excludes,
        ports: &scope.ports,
        policy,
        policy_path: req.policy.as_deref(),
        params: serde_json::json!({
            "source": source,
            "fail_on": req.fail_on,
            "as_of": req.as_of,
        }),
        observations: &observations,
    });
    // The run record keeps the open ports for the history's drift; with no
    // history nothing reads them, and a /16 import has ~100,000.
    if history.is_none() {
        record.observations = Vec::new();
    }
    let (previous, previous_unreadable) = match history.as_deref() {
        Some(h) => previous_run(h, &record.scope.key)?,
        None => (None, None),
    };
    let baseline = previous.as_ref().map(store::baseline);
    let audits = cadence::audit_history(history.as_deref(), &record.scope.key)?;
    // One clock for the whole evaluation and its records.
    let now = clock(req.as_of);
    let sources = match engine {
        Some(_) => source_addresses(observations.iter().map(|o| o.ip)),
        None => Vec::new(),
    };
    let vantage = match bundle_vantage {
        Some(v) => crate::model::AuditVantage {
            lab: req.lab_vantage,
            ..v
        },
        None => crate::model::AuditVantage {
            name: req.vantage.clone(),
            interfaces: interfaces_of(&sources),
            sources,
            lab: req.lab_vantage,
        },
    };
    let evaluation = policy::evaluate_in(
        policy,
        profiles,
        &catalogue,
        &observations,
        &policy::EvalContext {
            now,
            baseline: baseline.as_ref(),
            vantage: vantage.clone(),
            udp: policy::UdpEvidence {
                payload_ports: udp_payload_ports,
                monlist: req.udp_monlist && engine.is_some(),
            },
            audits: audits.as_ref(),
        },
    );
    cancel.check()?;
    // The history's copy of the findings is needed only when there is a
    // history (a /16 audit has ~150,000 findings).
    if history.is_some() {
        record.findings = evaluation.findings.clone();
    }
    let drift = previous
        .as_ref()
        .map(|p| store::drift((&p.record, Some(p.id)), (&record, None)));
    let gate_tripped = policy::gate(&evaluation.findings, req.fail_on);
    // Serialised straight to the file: a JSON tree of every finding would
    // cost several times the file's size in memory.
    #[derive(serde::Serialize)]
    struct FindingsDoc<'a> {
        schema_version: u32,
        policy: &'a str,
        as_of: NaiveDate,
        fail_on: Severity,
        findings: &'a [crate::model::Finding],
        profiles: &'a [crate::model::ProfileVerdict],
        ports: &'a [crate::model::PortVerdict],
        coverage: &'a [crate::model::GroupCoverage],
    }
    let findings_doc = FindingsDoc {
        schema_version: 1,
        policy: &policy.file,
        as_of: now.date_naive(),
        fail_on: req.fail_on,
        findings: &evaluation.findings,
        profiles: &evaluation.profiles,
        ports: &evaluation.ports,
        coverage: &evaluation.coverage,
    };
    // The run's place in the history is fixed (and the write lock taken)
    // before the report is written, so its manifest can carry the anchor.
    let pending_run = match history {
        Some(h) => Some(h.begin_record().map_err(interrupted)?),
        None => None,
    };
    let anchor = pending_run.as_ref().map(|p| p.anchor().clone());
    let pending = write_report_dir(&req.out, cancel, |dir| {
        write_jsonl(&dir.join("observations.jsonl"), &observations)?;
        if let Some(d) = &drift {
            let path = dir.join("drift.json");
            fs::write(&path, serde_json::to_vec_pretty(d)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let path = dir.join("findings.json");
        let file =
            fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &findings_doc)
            .and_then(|()| w.flush().map_err(serde_json::Error::io))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let facts = report::RunFacts {
            targets: scope.targets.clone(),
            excludes: scope.excludes.clone(),
            ports: scope.ports.clone(),
            port_count: ports,
            host_count: hosts,
            scan_type: engine,
            rate,
            started,
            finished: Utc::now(),
            operator: req.operator.clone(),
            command_line: req.command_line.clone(),
            as_of: now.date_naive(),
            fail_on: req.fail_on,
            gate_tripped,
            rules_dir: req.scope.rules_dir.clone(),
            policy_path: req.policy.clone(),
            rule_files: rules.files.clone(),
            source_interfaces: vantage.interfaces.clone(),
            source_addresses: vantage.sources.clone(),
            vantage: vantage.clone(),
            partial_import,
            local_errors: summary.local_errors,
            udp_undecided: summary.udp_undecided,
            history: anchor.clone(),
            inputs: inputs.clone(),
            coverage: scan_coverage(&summary, &protocols, identification),
            trend: drift.as_ref().map(|d| trend(d, &evaluation.findings)),
        };
        report::write_bundle_with(
            dir,
            &report::ReportInput {
                labels,
                facts,
                observations: &observations,
                evaluation: &evaluation,
                policy,
                profiles,
                catalogue: &catalogue,
                remediation,
            },
            report::BundleOptions {
                csv_bom: req.csv_bom,
                pdf_with: req.pdf_with.clone(),
                paper: req.paper,
            },
        )?;
        Ok(())
    })?;
    if let Some(key) = sign_key {
        report::evidence::sign_manifest(pending.path(), key)?;
    }
    // Behind the commit gate: the report goes in place and the run is
    // recorded together, or neither when a cancel comes first.
    let (manifest_sha256, run_id) = pending.commit(|| {
        let manifest_sha256 = report::evidence::manifest_sha256(&req.out)?;
        record.finished = Utc::now();
        record.manifest_hash = Some(manifest_sha256.clone());
        let run_id = match pending_run {
            Some(p) => Some(p.commit(&record).with_context(|| {
                format!(
                    "the report is in {} but the run was not recorded in the history",
                    req.out.display()
                )
            })?),
            None => None,
        };
        Ok((manifest_sha256, run_id))
    })?;
    if let Some(path) = &req.metrics {
        store::metrics::write(
            path,
            &store::metrics::Metrics {
                scope: &record.scope.key,
                observations: &observations,
                evaluation: &evaluation,
                duration: (record.finished - started).to_std().unwrap_or_default(),
                finished: record.finished,
            },
            &|| cancel.signalled(),
        )
        .map_err(|e| MetricsUnwritten {
            interrupted: matches!(e, crate::safe_fs::SafeFsError::Interrupted(_)),
            why: e.to_string(),
            out: req.out.clone(),
            run_id,
        })?;
    }
    Ok(AuditOutcome {
        evaluation,
        gate_tripped,
        summary,
        hosts,
        ports,
        out: req.out.clone(),
        observations,
        manifest_sha256,
        run_id,
        drift,
        labels: labels.clone(),
        partial_import,
        previous_unreadable,
    })
}

/// Most destinations asked for a source address: routing picks few
/// distinct sources, so a bounded sample of the probed hosts finds them all
/// in practice without a syscall pair per address of a huge scope.
const SOURCE_LOOKUPS: usize = 65_536;

/// The local address(es) the kernel picks to reach `targets` — the audit's
/// vantage, which segmentation evidence must name. A UDP socket that is only
/// connected (never sent on) asks the routing table; no packet leaves.
pub fn source_addresses(
    targets: impl IntoIterator<Item = std::net::IpAddr>,
) -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    let mut seen = std::collections::BTreeSet::new();
    let mut out = std::collections::BTreeSet::new();
    for ip in targets {
        if seen.len() >= SOURCE_LOOKUPS {
            break;
        }
        if !seen.insert(ip) {
            continue;
        }
        let any: IpAddr = match ip {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let Ok(sock) = UdpSocket::bind(SocketAddr::new(any, 0)) else {
            continue;
        };
        if sock.connect(SocketAddr::new(ip, 9)).is_ok()
            && let Ok(local) = sock.local_addr()
        {
            out.insert(local.ip());
        }
    }
    out.into_iter().collect()
}

/// The network interface holding each address (`None` where none does any
/// more), from getifaddrs(3): the scope names the interface beside each
/// source address.
pub fn interfaces_of(addrs: &[std::net::IpAddr]) -> Vec<Option<String>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut found: Vec<Option<String>> = vec![None; addrs.len()];
    if addrs.is_empty() {
        return found;
    }
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we own until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return found;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says its
        // layout; the name is a NUL-terminated string of the same list.
        let ip: IpAddr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)).into()
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    Ipv6Addr::from(sa.sin6_addr.s6_addr).into()
                }
                _ => continue,
            }
        };
        for (i, a) in addrs.iter().enumerate() {
            if *a == ip && found[i].is_none() {
                // SAFETY: see above.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                found[i] = Some(crate::import::inert(
                    &name.to_string_lossy(),
                    crate::import::MAX_NAME,
                ));
            }
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// The files an import audit read, with the SHA-256 of the bytes the
/// import parsed (hashed while reading: a pipe, a FIFO or a file replaced
/// since is recorded as what was audited) and what each says about its scan.
fn input_files(
    sources: &[crate::import::Source],
    files: &[crate::import::FileImport],
) -> Vec<report::InputFile> {
    sources
        .iter()
        .zip(files)
        .map(|(s, f)| {
            let kind = match s {
                crate::import::Source::NmapXml(_) => "nmap-xml",
                crate::import::Source::Masscan(_) => "masscan-json",
                crate::import::Source::Jsonl(_) => "jsonl",
            };
            report::InputFile {
                path: s.path().display().to_string(),
                sha256: f.sha256.clone(),
                kind: kind.to_string(),
                provenance: f.provenance.clone(),
            }
        })
        .collect()
}

/// Writes one observation per line.
pub fn write_jsonl(path: &Path, observations: &[Observation]) -> Result<()> {
    let file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    for o in observations {
        serde_json::to_writer(&mut w, o)?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `--out` names something that is not ours to replace.
#[derive(Debug, thiserror::Error)]
#[error("{} exists and is not a portwarden report: choose another --out or remove it ({why})", dir.display())]
pub struct NotAReport {
    pub dir: PathBuf,
    pub why: String,
}

/// What `--out` names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutDir {
    /// Nothing: the report is renamed into place.
    Absent,
    /// An empty directory: replaced by the report.
    Empty,
    /// A previous portwarden report holding only its own files: replaced.
    Report,
}

/// Decides whether `out` may be replaced by a report: only when it does
/// not exist, is an empty directory, or is a previous portwarden report
/// with nothing in it that its manifest does not list. A regular file, a
/// symbolic link, a device or any other directory is refused untouched.
pub fn check_out_dir(out: &Path) -> std::result::Result<OutDir, NotAReport> {
    let refuse = |why: String| NotAReport {
        dir: out.to_path_buf(),
        why,
    };
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OutDir::Absent),
        Err(e) => return Err(refuse(e.to_string())),
    };
    let t = meta.file_type();
    if t.is_symlink() {
        return Err(refuse("it is a symbolic link".into()));
    }
    if !t.is_dir() {
        return Err(refuse(if t.is_file() {
            "it is a file".into()
        } else {
            "it is not a directory".into()
        }));
    }
    let mut entries = fs::read_dir(out).map_err(|e| refuse(e.to_string()))?;
    if entries.next().is_none() {
        return Ok(OutDir::Empty);
    }
    report::evidence::is_own_report(out).map_err(refuse)?;
    Ok(OutDir::Report)
}

/// Builds a report directory next to `out`, to be renamed into place by
/// [`PendingReport::commit`], so an interrupted or failed run never leaves a
/// half-written report nor destroys the previous one, and never replaces
/// what is not a report of ours ([`check_out_dir`]). The temporary directory
/// is new (random name), removed on every error path and at once on a
/// cancel.
pub fn write_report_dir(
    out: &Path,
    cancel: &Cancel,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PendingReport> {
    check_out_dir(out)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .with_context(|| format!("report directory '{}' has no name", out.display()))?
        .to_string_lossy()
        .into_owned();
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    remove_stale_temps(&parent, &name);
    let tmp = cancel.temp_dir(&parent, &format!(".{name}.tmp-"))?;
    fill(tmp.path())?;
    cancel.check()?;
    Ok(PendingReport {
        out: out.to_path_buf(),
        tmp,
        cancel: cancel.clone(),
    })
}

/// A report written in its temporary directory, not yet in place. Dropped
/// without a commit, it is removed.
#[derive(Debug)]
pub struct PendingReport {
    out: PathBuf,
    tmp: crate::safe_fs::TempPath,
    cancel: Cancel,
}

impl PendingReport {
    /// The temporary directory (to add files signed over the others).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Puts the report in place and runs `then` (recording the run) behind
    /// the cancellation gate: both happen, or neither when a cancel came
    /// first.
    pub fn commit<T>(self, then: impl FnOnce() -> Result<T>) -> Result<T> {
        let PendingReport { out, tmp, cancel } = self;
        cancel.commit(|| {
            // Checked again: something may have appeared at `out` meanwhile.
            match check_out_dir(&out)? {
                OutDir::Absent | OutDir::Empty => {
                    fs::rename(tmp.path(), &out).with_context(|| {
                        format!("cannot move the report into {}", out.display())
                    })?;
                    tmp.keep();
                }
                OutDir::Report => {
                    // Swap in one step; the previous report is then where the
                    // temporary directory was, and goes with its guard.
                    exchange(tmp.path(), &out).with_context(|| {
                        format!("cannot replace the previous report {}", out.display())
                    })?;
                    drop(tmp);
                }
            }
            then()
        })
    }
}

/// Removes what a killed run (SIGKILL, power loss) left: directories named
/// exactly as ours (`.NAME.tmp-PID-` and 12 hex digits, from a random
/// source) whose process is gone. Anything else is left alone; a live or
/// reused PID keeps its directory.
fn remove_stale_temps(parent: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, random)) = rest.split_once('-') else {
            continue;
        };
        let ours = pid.parse::<u32>().is_ok_and(|p| p > 0)
            && random.len() == 12
            && random.bytes().all(|b| b.is_ascii_hexdigit());
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if ours && is_dir && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; the call only renames.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fill that writes `files` and a manifest listing them, as a report would.
    fn report_with<'a>(files: &'a [(&'a str, &'a str)]) -> impl FnOnce(&Path) -> Result<()> + 'a {
        move |d: &Path| {
            let mut listed = serde_json::Map::new();
            for (name, text) in files {
                fs::write(d.join(name), text)?;
                listed.insert(
                    (*name).into(),
                    report::evidence::sha256_hex(text.as_bytes()).into(),
                );
            }
            let manifest = serde_json::json!({
                "manifest_version": 1, "tool": "portwarden", "tool_version": "0.1.0",
                "rules": {"version": "embedded", "sha256": "00", "files": {}},
                "policy_file": "p.toml", "policy_sha256": null, "command_line": [],
                "operator": "t", "started": "2026-01-01T00:00:00Z",
                "finished": "2026-01-01T00:00:00Z", "as_of": "2026-01-01", "files": listed,
            });
            fs::write(d.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
            Ok(())
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!("pw-app-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        base
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Writes and commits a report directory.
    fn write_report_dir<T>(
        out: &Path,
        cancel: &Cancel,
        fill: impl FnOnce(&Path) -> Result<()>,
        then: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        super::write_report_dir(out, cancel, fill)?.commit(then)
    }

    #[test]
    fn an_import_scope_is_what_its_files_probed() {
        use crate::model::Reason;
        let o = |ip: &str, port: u16, proto: Proto| {
            Observation::new(ip.parse().unwrap(), port, proto, Reason::ConnRefused, None)
        };
        let obs = [
            o("198.18.0.1", 22, Proto::Tcp),
            o("198.18.0.2", 22, Proto::Tcp),
            o("198.18.0.3", 23, Proto::Tcp),
            o("198.18.0.3", 24, Proto::Tcp),
            o("198.18.0.9", 80, Proto::Tcp),
            o("198.18.0.9", 161, Proto::Udp),
            o("2001:2::5", 53, Proto::Udp),
        ];
        assert_eq!(
            imported_targets(&obs),
            ["198.18.0.1", "198.18.0.2/31", "198.18.0.9", "2001:2::5"]
        );
        assert_eq!(imported_ports(&obs), "22-24,80,U:53,161");
        assert_eq!(imported_ports(&obs[5..]), "U:53,161");
        assert_eq!(imported_ports(&obs[..2]), "22");
    }

    #[test]
    fn source_address_toward_loopback_is_loopback() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(source_addresses([lo, lo]), [lo]);
        assert!(source_addresses([]).is_empty());
        // An address no interface holds has no name.
        let none: std::net::IpAddr = "198.51.100.254".parse().unwrap();
        assert_eq!(interfaces_of(&[lo, none]), [Some("lo".to_string()), None]);
    }

    #[test]
    fn report_dir_replaces_atomically_and_survives_failures() {
        let base = scratch("replace");
        let out = base.join("report");
        let c = Cancel::new();
        let ok = || Ok(());
        write_report_dir(&out, &c, report_with(&[("a", "1")]), ok).unwrap();
        assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "1");
        // A failing fill leaves the previous report untouched.
        let err = write_report_dir(
            &out,
            &c,
            |d| {
                fs::write(d.join("a"), "2")?;
                anyhow::bail!("boom")
            },
            ok,
        );
        assert!(err.is_err());
        assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "1");
        write_report_dir(&out, &c, report_with(&[("b", "3")]), ok).unwrap();
        assert!(!out.join("a").exists());
        assert_eq!(fs::read_to_string(out.join("b")).unwrap(), "3");
        assert_eq!(
            names(&base),
            vec!["report"],
            "no temporary directories left behind"
        );
        // An empty directory is fine too.
        let empty = base.join("empty");
        fs::create_dir(&empty).unwrap();
        write_report_dir(&empty, &c, report_with(&[("x", "1")]), ok).unwrap();
        assert_eq!(names(&empty), vec!["manifest.json", "x"]);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn foreign_data_at_out_is_never_touched() {
        let base = scratch("foreign");
        let c = Cancel::new();
        let ok = || Ok(());
        let refused = |out: &Path| {
            let e = write_report_dir(out, &c, report_with(&[("a", "1")]), ok).unwrap_err();
            let msg = format!("{e:#}");
            assert!(
                msg.contains(
                    "exists and is not a portwarden report: choose another --out or remove it"
                ),
                "{msg}"
            );
            msg
        };
        // A directory of someone's work.
        let thesis = base.join("d");
        fs::create_dir(&thesis).unwrap();
        fs::write(thesis.join("thesis.txt"), "x").unwrap();
        refused(&thesis);
        assert_eq!(names(&thesis), vec!["thesis.txt"]);
        // A regular file.
        let file = base.join("file");
        fs::write(&file, "keep").unwrap();
        assert!(refused(&file).contains("it is a file"));
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
        // A previous report to which someone added a file of their own.
        let rep = base.join("rep");
        write_report_dir(&rep, &c, report_with(&[("a", "1")]), ok).unwrap();
        fs::write(rep.join("notes.txt"), "mine").unwrap();
        assert!(refused(&rep).contains("notes.txt"));
        assert_eq!(fs::read_to_string(rep.join("notes.txt")).unwrap(), "mine");
        fs::remove_file(rep.join("notes.txt")).unwrap();
        // A manifest that is a symbolic link, or not ours.
        let link = base.join("link");
        fs::create_dir(&link).unwrap();
        std::os::unix::fs::symlink(rep.join("manifest.json"), link.join("manifest.json")).unwrap();
        assert!(refused(&link).contains("symbolic link"));
        let other = base.join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("manifest.json"), r#"{"tool":"other"}"#).unwrap();
        refused(&other);
        assert_eq!(names(&other), vec!["manifest.json"]);
        // A symbolic link as --out.
        let outlink = base.join("outlink");
        std::os::unix::fs::symlink(&rep, &outlink).unwrap();
        assert!(refused(&outlink).contains("symbolic link"));
        assert_eq!(
            names(&base),
            vec!["d", "file", "link", "other", "outlink", "rep"],
            "nothing created, nothing left"
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn leftovers_of_a_killed_run_go_nothing_else_does() {
        let base = scratch("stale");
        let out = base.join("report");
        // PID 0x7fffffff is above pid_max: never alive.
        let dead = base.join(".report.tmp-2147483647-0123456789ab");
        let live = base.join(format!(".report.tmp-{}-0123456789ab", std::process::id()));
        let odd = base.join(".report.tmp-2147483647-notrandom");
        for d in [&dead, &live, &odd] {
            fs::create_dir(d).unwrap();
            fs::write(d.join("big"), "x").unwrap();
        }
        write_report_dir(&out, &Cancel::new(), report_with(&[("a", "1")]), || Ok(())).unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && odd.exists());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_cancel_before_the_commit_leaves_nothing() {
        let base = scratch("cancel");
        let out = base.join("report");
        let c = Cancel::new();
        let r = write_report_dir(
            &out,
            &c,
            |d| {
                fs::write(d.join("a"), "1")?;
                c.cancel();
                Ok(())
            },
            || -> Result<()> { panic!("must not commit") },
        );
        assert!(r.unwrap_err().is::<Cancelled>());
        assert!(names(&base).is_empty(), "{:?}", names(&base));
        fs::remove_dir_all(&base).unwrap();
    }
}
