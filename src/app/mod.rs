//! App layer: the audit pipeline (targets → scan → identify → evaluate →
//! report) put together from the layers below. It validates nothing the
//! layers validate themselves, owns the order of the steps and the files an
//! audit leaves behind. The CLI calls it; it never prints.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::identify::{Identifier, IdentifyConfig, ProbeSet};
use crate::model::{Observation, Proto, ScanEvent, ScanKind, Severity};
use crate::policy::{self, Evaluation, Policy, Profiles};
use crate::report;
use crate::rules::{Catalogue, Rules};
use crate::scan::{self, ScanConfig, ScanSummary};
use crate::store::{self, Drift, Store};
use crate::target::{PortSet, TargetOptions, Targets};

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
    let catalogue = Rules::load(scope.rules_dir.as_deref())?.ports;
    let probes = match scope.rules_dir.as_deref().map(|d| d.join("probes.toml")) {
        Some(path) if path.exists() => ProbeSet::load(&path)?,
        _ => ProbeSet::embedded()?,
    };
    let ports = PortSet::parse(&scope.ports, &catalogue)?;
    let opts = TargetOptions {
        allow_large: scope.allow_large,
    };
    let targets = Targets::resolve(&scope.targets, &scope.excludes, &opts).await?;
    let udp = scan::udp::UdpOptions {
        payloads: scan::udp::payloads::Payloads::load_dir(scope.rules_dir.as_deref())?,
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
) {
    if kind == ScanKind::Connect && !prepared.ports.udp().is_empty() && spec == DEFAULT_AUDIT_PORTS
    {
        let n = prepared.ports.udp().len();
        prepared.ports = prepared.ports.tcp_only();
        let _ = events
            .send(ScanEvent::Notice(format!(
                "a connect scan cannot probe UDP: the {n} default UDP ports (high-risk-udp) were NOT scanned; run as root (or grant CAP_NET_RAW) to include them"
            )))
            .await;
    }
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
    /// Write Prometheus textfile-collector metrics here.
    pub metrics: Option<PathBuf>,
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
    Ok(match rules_dir {
        Some(dir) => Profiles::load_dir(dir)?,
        None => Profiles::embedded()?,
    })
}

/// Loads the remediation templates (embedded, or overridden from a rules dir).
pub fn load_remediation(rules_dir: Option<&Path>) -> Result<report::RemediationCatalog> {
    Ok(match rules_dir {
        Some(dir) => report::RemediationCatalog::load_dir(dir)?,
        None => report::RemediationCatalog::embedded(),
    })
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
        None => Policy {
            file: "(no policy: built-in baseline)".into(),
            name: None,
            owner: None,
            groups: Vec::new(),
            exceptions: Vec::new(),
            changes: Vec::new(),
        },
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
}

/// Runs a whole audit and writes its report directory. Events (progress,
/// notices, observations) are forwarded to `events` as they happen.
pub async fn audit(req: &AuditRequest, events: mpsc::Sender<ScanEvent>) -> Result<AuditOutcome> {
    let started = Utc::now();
    // Rules, policy and history first: a typo there must not cost a scan.
    let profiles = load_profiles(req.scope.rules_dir.as_deref())?;
    let remediation = load_remediation(req.scope.rules_dir.as_deref())?;
    let policy = load_policy(req.policy.as_deref(), &profiles)?;
    check_platforms(&policy, &remediation)?;
    let rulebook = Rulebook {
        policy,
        profiles,
        remediation,
    };
    let policy = &rulebook.policy;
    let mut history = req.store.as_deref().map(Store::open).transpose()?;
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
        let imported = import_audit(req)?;
        return finish_audit(req, &scope, &rulebook, history.as_mut(), imported, started);
    }
    if scope.targets.is_empty() {
        anyhow::bail!("no targets: name some, or give a --policy whose groups list targets");
    }
    let mut prepared = prepare(&scope).await?;
    let mut cfg = req.scan.clone();
    cfg.kind = choose_engine(req.engine, &events).await?;
    settle_udp(&mut prepared, cfg.kind, &scope.ports, &events).await;

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
    let (summary, mut observations) =
        tokio::join!(scan(&prepared, &cfg, req.identify.as_ref(), tx), collect);
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
        source: serde_json::json!({
            "kind": "scan",
            "engine": cfg.kind,
            "rate": cfg.rate,
            "retries": cfg.retries,
            "seed": cfg.seed,
            "identify": req.identify.is_some(),
        }),
    };
    finish_audit(req, &scope, &rulebook, history.as_mut(), collected, started)
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
    /// How they were gathered (recorded with the run).
    source: serde_json::Value,
}

/// Reads the scan results an import audit judges.
fn import_audit(req: &AuditRequest) -> Result<Collected> {
    let catalogue = Rules::load(req.scope.rules_dir.as_deref())?.ports;
    let observations = crate::import::load(&req.import)?;
    let mut summary = ScanSummary::default();
    for o in &observations {
        summary.count(o.state);
    }
    let hosts: std::collections::BTreeSet<_> = observations.iter().map(|o| o.ip).collect();
    let ports: std::collections::BTreeSet<_> = observations.iter().map(|o| o.port).collect();
    Ok(Collected {
        catalogue,
        engine: None,
        rate: None,
        summary,
        hosts: hosts.len() as u64,
        ports: ports.len(),
        observations,
        source: serde_json::json!({
            "kind": "import",
            "files": req.import.iter().map(|s| s.label()).collect::<Vec<_>>(),
        }),
    })
}

/// What an audit judges by, loaded before anything is scanned.
struct Rulebook {
    policy: Policy,
    profiles: Profiles,
    remediation: report::RemediationCatalog,
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
) -> Result<AuditOutcome> {
    let Rulebook {
        policy,
        profiles,
        remediation,
    } = rulebook;
    let Collected {
        catalogue,
        engine,
        rate,
        summary,
        hosts,
        ports,
        observations,
        source,
    } = collected;
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
    let previous = match history.as_deref() {
        Some(h) => h
            .latest_of_scope(&record.scope.key, None)?
            .map(|id| h.load(id))
            .transpose()?,
        None => None,
    };
    let baseline = previous.as_ref().map(store::baseline);
    // One clock for the whole evaluation and its records.
    let now = clock(req.as_of);
    let evaluation = policy::evaluate_with_history(
        policy,
        profiles,
        &catalogue,
        &observations,
        now,
        baseline.as_ref(),
    );
    record.findings = evaluation.findings.clone();
    let drift = previous
        .as_ref()
        .map(|p| store::drift((&p.record, Some(p.id)), (&record, None)));
    let gate_tripped = policy::gate(&evaluation.findings, req.fail_on);
    let findings_doc = serde_json::json!({
        "schema_version": 1,
        "policy": &policy.file,
        "as_of": now.date_naive(),
        "fail_on": req.fail_on,
        "findings": evaluation.findings,
        "profiles": evaluation.profiles,
    });
    write_report_dir(&req.out, |dir| {
        write_jsonl(&dir.join("observations.jsonl"), &observations)?;
        if let Some(d) = &drift {
            let path = dir.join("drift.json");
            fs::write(&path, serde_json::to_vec_pretty(d)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let path = dir.join("findings.json");
        fs::write(&path, serde_json::to_vec_pretty(&findings_doc)?)
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
        };
        report::write_bundle(
            dir,
            &report::ReportInput {
                lang: req.lang,
                facts,
                observations: &observations,
                evaluation: &evaluation,
                policy,
                profiles,
                catalogue: &catalogue,
                remediation,
            },
        )?;
        Ok(())
    })?;
    let manifest_sha256 = report::evidence::manifest_sha256(&req.out)?;
    record.finished = Utc::now();
    record.manifest_hash = Some(manifest_sha256.clone());
    let run_id = match history {
        Some(h) => Some(h.record(&record).with_context(|| {
            format!(
                "the report is in {} but the run was not recorded in the history",
                req.out.display()
            )
        })?),
        None => None,
    };
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
        )
        .with_context(|| format!("cannot write the metrics file {}", path.display()))?;
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
    })
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

/// Builds a report directory next to `out` and renames it into place, so an
/// interrupted run never leaves a half-written report nor destroys the
/// previous one.
pub fn write_report_dir(out: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .with_context(|| format!("report directory '{}' has no name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let pid = std::process::id();
    let tmp = parent.join(format!(".{name}.tmp-{pid}"));
    let old = parent.join(format!(".{name}.old-{pid}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let had_old = out.exists();
    if had_old {
        fs::rename(out, &old)
            .with_context(|| format!("cannot move the previous report {} aside", out.display()))?;
    }
    if let Err(e) = fs::rename(&tmp, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        return Err(e).with_context(|| format!("cannot move the report into {}", out.display()));
    }
    if had_old {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_dir_replaces_atomically_and_survives_failures() {
        let base = std::env::temp_dir().join(format!("pw-app-test-{}", std::process::id()));
        let out = base.join("report");
        fs::create_dir_all(&base).unwrap();
        write_report_dir(&out, |d| Ok(fs::write(d.join("a"), "1")?)).unwrap();
        assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "1");
        // A failing fill leaves the previous report untouched.
        let err = write_report_dir(&out, |d| {
            fs::write(d.join("a"), "2")?;
            anyhow::bail!("boom")
        });
        assert!(err.is_err());
        assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "1");
        write_report_dir(&out, |d| Ok(fs::write(d.join("b"), "3")?)).unwrap();
        assert!(!out.join("a").exists());
        assert_eq!(fs::read_to_string(out.join("b")).unwrap(), "3");
        let leftovers: Vec<_> = fs::read_dir(&base).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary directories left behind");
        fs::remove_dir_all(&base).unwrap();
    }
}
