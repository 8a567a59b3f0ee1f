//! Steps 2 and 3: resolve the scope, then gather the observations, by
//! scanning (with identification as ports open) or by importing scan
//! results (signed bundles checked against the policy's scanners).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;

use super::DEFAULT_AUDIT_PORTS;
use super::imports::{self, imported_ports, imported_targets};
use super::rulebook::Rulebook;
use super::{AuditRequest, Cancelled, off_thread};
use crate::identify::{Identifier, IdentifyConfig};
use crate::model::{Observation, Proto, ScanEvent, ScanKind, Severity};
use crate::policy::Policy;
use crate::report;
use crate::rules::ProbeSet;
use crate::rules::{Catalogue, Rules};
use crate::scan::{self, ScanConfig, ScanSummary};
use crate::target::{PortSet, TargetOptions, Targets};

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
    let probes = rules.probes.clone();
    let ports = PortSet::parse(&scope.ports, &catalogue)?;
    let opts = TargetOptions {
        allow_large: scope.allow_large,
    };
    let targets = Targets::resolve(&scope.targets, &scope.excludes, &opts).await?;
    let udp = scan::udp::UdpOptions {
        payloads: rules.udp_payloads.clone(),
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

/// Observations gathered by a scan or an import, and what to say about them.
pub(super) struct Collected {
    pub(super) catalogue: Catalogue,
    /// The probe engine and rate cap, when the results come from a scan.
    pub(super) engine: Option<ScanKind>,
    pub(super) rate: Option<u64>,
    pub(super) summary: ScanSummary,
    pub(super) hosts: u64,
    pub(super) ports: usize,
    pub(super) observations: Vec<Observation>,
    /// Ports our UDP engine sent a service payload to (empty for imports).
    pub(super) udp_payload_ports: Vec<u16>,
    /// How they were gathered (recorded with the run).
    pub(super) source: serde_json::Value,
    /// The imported files, their hashes (of the bytes read) and what each
    /// says about its scan, in the order of `AuditRequest::import` (empty
    /// for a scan).
    pub(super) inputs: Vec<report::InputFile>,
    /// The protocols a scan probed (empty for an import).
    pub(super) protocols: Vec<report::ProtocolCoverage>,
    /// Whether a scan identified services (`None` for an import).
    pub(super) identification: Option<bool>,
    /// The vantage signed bundles recorded, when they all share one and
    /// were all verified against the policy's scanners.
    pub(super) vantage: Option<crate::model::AuditVantage>,
    /// Bundles of several vantages: what each probed and saw open.
    pub(super) scans: Vec<crate::policy::VantageScan>,
}

/// The scope as asked; without targets, the policy's groups (an import
/// without either takes the addresses in its files).
pub(super) fn resolve_scope(req: &AuditRequest, policy: &Policy) -> Scope {
    let mut scope = req.scope.clone();
    if scope.targets.is_empty() {
        scope.targets = policy
            .groups
            .iter()
            .flat_map(|g| g.targets.iter().cloned())
            .collect();
    }
    scope
}

/// Imports the files of the request (off the async threads). The scope of
/// an import is what its files recorded: the addresses (unless the
/// policy's groups name the scope) and the (port, proto) pairs they probed.
pub(super) async fn import_step(
    req: &Arc<AuditRequest>,
    mut scope: Scope,
    rulebook: &Rulebook,
) -> Result<(Scope, Collected)> {
    let (mut imported, bundles) = {
        let req = Arc::clone(req);
        let rules = rulebook.rules.clone();
        let trusted = imports::trusted(&rulebook.policy);
        let segments = crate::policy::Segments::of(&rulebook.policy);
        off_thread(&req.cancel.clone(), move || {
            let bundles = imports::check(&req, &trusted)?;
            let mut collected = import_audit(&req, &rules)?;
            imports::by_vantage(&bundles, &req, &segments, &mut collected)?;
            Ok((collected, bundles))
        })
        .await?
    };
    if scope.targets.is_empty() {
        scope.targets = imported_targets(&imported.observations);
    }
    scope.ports = imported_ports(&imported.observations);
    imports::apply(&bundles, req, &mut scope, &mut imported);
    Ok((scope, imported))
}

/// Scans the scope, forwarding every event to `events`; a cancelled scan is
/// dropped (its probes stop) and nothing is judged.
pub(super) async fn scan_step(
    req: &AuditRequest,
    scope: Scope,
    rulebook: &Rulebook,
    events: &mpsc::Sender<ScanEvent>,
) -> Result<(Scope, Collected)> {
    if scope.targets.is_empty() {
        anyhow::bail!("no targets: name some, or give a --policy whose groups list targets");
    }
    let mut prepared = prepare_with(&scope, &rulebook.rules).await?;
    let mut cfg = req.scan.clone();
    cfg.kind = choose_engine(req.engine, events).await?;
    let udp_dropped = settle_udp(&mut prepared, cfg.kind, &scope.ports, events).await;
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
    let (summary, mut observations) = tokio::select! {
        r = async { tokio::join!(scan(&prepared, &cfg, req.identify.as_ref(), tx), collect) } => r,
        () = req.cancel.cancelled() => return Err(Cancelled.into()),
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
        scans: Vec::new(),
    };
    Ok((scope, collected))
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
        scans: Vec::new(),
    })
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
