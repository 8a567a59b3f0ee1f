//! CLI layer: parses arguments, builds the library's validated configs, runs
//! the app and turns its events into output, a progress bar and notices.
//! The only place that prints; `main` maps the outcome to an exit code.

pub mod args;
mod bundle;
mod history;
mod manuals;
mod nmap;
mod output;
mod policy_cmd;
mod profiles_cmd;
mod scan_cmd;

use std::io::{self, BufWriter, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use portwarden::app::{self, AuditRequest, Cancel, Cancelled, ScanChoice, Scope};
use portwarden::identify::IdentifyConfig;
use portwarden::model::ScanEvent;
use portwarden::rules::Rules;
use portwarden::scan::{ScanConfig, ScanSummary, TimeoutConfig};
use portwarden::target::PortSet;

use args::{
    AuditCmd, Cli, Command, EngineArgs, KeygenCmd, PortsCmd, ScanType, ScopeArgs, VerifyCmd,
};
use output::Output;

/// Process exit codes.
pub mod exit {
    /// Finished; nothing at or above the gate.
    pub const OK: u8 = 0;
    /// Finished; findings at or above the gate severity.
    pub const FINDINGS: u8 = 1;
    /// Bad input or a runtime error.
    pub const ERROR: u8 = 2;
    /// Stopped by Ctrl-C / SIGTERM (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

/// Longest per-probe time-out accepted (ms): a minute per probe is already
/// hours per host; larger values are typos (seconds taken for ms).
const MAX_TIMEOUT_MS: u64 = 60_000;

pub async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Scan(cmd) => scan_cmd::scan(*cmd).await,
        Command::Audit(cmd) => audit(*cmd).await,
        Command::Ports(cmd) => ports(cmd),
        Command::Profiles(cmd) => profiles_cmd::profiles(cmd),
        Command::Policy(cmd) => policy_cmd::policy_cmd(cmd),
        Command::Verify(cmd) => verify(cmd),
        // A bare `history` lists the runs.
        Command::History(h) => history::history(h.command.unwrap_or(args::HistoryCmd::List {
            store: h.list.store,
            scope: h.list.scope,
            format: h.list.format,
        })),
        Command::Diff(cmd) => history::diff(cmd),
        Command::Keygen(cmd) => keygen(cmd),
        Command::Fix(cmd) => fix(cmd),
        Command::Completions(cmd) => manuals::completions(cmd),
        Command::Man(cmd) => manuals::man(cmd),
    }
}

fn scope(args: &ScopeArgs, engine: &EngineArgs, default_ports: &str) -> Result<Scope> {
    let mut excludes = args.exclude.clone();
    excludes.extend(
        args.exclude_file
            .iter()
            .map(|f| format!("@{}", f.display())),
    );
    let types = nmap::ScanTypes::from_letters(&engine.nmap_scan).map_err(anyhow::Error::msg)?;
    let mut ports = types
        .ports(args.ports.as_deref(), args.top_ports)
        .unwrap_or_else(|| default_ports.to_string());
    if let Some(n) = args.top_udp {
        // The port-spec parser checks N against the list's length.
        ports = format!("{ports},top-udp:{n}");
    }
    let mut targets = args.targets.clone();
    targets.extend(
        args.targets_file
            .iter()
            .map(|f| format!("@{}", f.display())),
    );
    Ok(Scope {
        targets,
        excludes,
        allow_large: args.allow_large,
        ports,
        rules_dir: args.rules.clone(),
    })
}

/// One of nmap's -T presets. Flags given explicitly win over it.
struct Timing {
    rate: Option<u64>,
    concurrency: Option<usize>,
    retries: u8,
    /// Initial, minimum and maximum probe time-outs, ms.
    timeouts: (u64, u64, u64),
}

/// -T0 … -T5 (the README's table).
const TIMING: [Timing; 6] = [
    Timing {
        rate: Some(1),
        concurrency: Some(1),
        retries: 2,
        timeouts: (5000, 1000, 10_000),
    },
    Timing {
        rate: Some(5),
        concurrency: Some(1),
        retries: 2,
        timeouts: (3000, 500, 10_000),
    },
    Timing {
        rate: Some(50),
        concurrency: None,
        retries: 2,
        timeouts: (1000, 100, 10_000),
    },
    Timing {
        rate: None,
        concurrency: None,
        retries: 1,
        timeouts: (1000, 100, 3000),
    },
    Timing {
        rate: None,
        concurrency: None,
        retries: 1,
        timeouts: (500, 100, 1250),
    },
    Timing {
        rate: None,
        concurrency: None,
        retries: 0,
        timeouts: (250, 50, 300),
    },
];

/// Second stage of configuration: flags → a validated [`ScanConfig`].
fn scan_config(e: &EngineArgs) -> Result<(ScanChoice, ScanConfig)> {
    let preset = &TIMING[usize::from(e.timing.unwrap_or(3))];
    let (p_initial, p_min, p_max) = preset.timeouts;
    let rate = e.rate.or(preset.rate);
    let concurrency = e.concurrency.or(preset.concurrency);
    let (initial, min, max) = (
        e.timeout_initial.unwrap_or(p_initial),
        e.timeout_min.unwrap_or(p_min),
        e.timeout_max.unwrap_or(p_max),
    );
    if rate == Some(0) || e.max_rate == Some(0) {
        bail!("--rate and --max-rate must be at least 1 probe per second");
    }
    if concurrency == Some(0) {
        bail!("--concurrency must be at least 1");
    }
    for (flag, v) in [
        ("--timeout-initial", initial),
        ("--timeout-min", min),
        ("--timeout-max", max),
    ] {
        if v > MAX_TIMEOUT_MS {
            bail!(
                "{flag} {v} is above the {MAX_TIMEOUT_MS} ms (60 s) limit per probe; time-outs are in milliseconds"
            );
        }
    }
    if min == 0 || min > max {
        bail!("--timeout-min ({min} ms) must be at least 1 and at most --timeout-max ({max} ms)");
    }
    let types = nmap::ScanTypes::from_letters(&e.nmap_scan).map_err(anyhow::Error::msg)?;
    let scan = match types.engine {
        Some(t) if e.scan != ScanType::Auto && e.scan != t => bail!(
            "-sS/-sT ask for the {t:?} engine but --scan says {:?}: give one",
            e.scan
        ),
        Some(t) => t,
        None => e.scan,
    };
    let choice = match scan {
        ScanType::Auto => ScanChoice::Auto,
        ScanType::Connect => ScanChoice::Connect,
        ScanType::Syn => ScanChoice::Syn,
    };
    let cfg = ScanConfig {
        rate,
        retries: e.retries.unwrap_or(preset.retries),
        timeout: TimeoutConfig {
            initial: Duration::from_millis(initial),
            min: Duration::from_millis(min),
            max: Duration::from_millis(max),
        },
        concurrency,
        seed: e.seed.unwrap_or_else(rand::random),
        max_rate: e.max_rate,
        shard: e
            .shard
            .as_deref()
            .map(portwarden::scan::syn::parse_shard)
            .transpose()?,
        resume_from: e.resume.clone(),
        resume_out: Some(e.resume_file.clone()),
        host_timeout: e.host_timeout,
        ..ScanConfig::default()
    };
    if cfg.shard.is_some() && e.seed.is_none() && e.resume.is_none() {
        bail!("--shard needs --seed: every shard must walk the same probe order");
    }
    if e.nmap_pn {
        eprintln!(
            "portwarden: note: -Pn is what portwarden always does: it never pings first, every target is probed"
        );
    }
    Ok((choice, cfg))
}

fn identify_config(on: bool, concurrency: usize) -> Result<Option<IdentifyConfig>> {
    if !on {
        return Ok(None);
    }
    if concurrency == 0 {
        bail!("--identify-concurrency must be at least 1");
    }
    Ok(Some(IdentifyConfig {
        concurrency,
        ..IdentifyConfig::default()
    }))
}

/// Listens for Ctrl-C / SIGTERM on a task of its own, so a signal is heard
/// while the app works synchronously: the first one cancels the run.
fn cancel_on_signal(cancel: Cancel) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if cancel.cancel() {
                eprintln!("portwarden: interrupted: stopping (nothing is written or recorded)");
            } else {
                eprintln!("portwarden: interrupted: the run is already being recorded; finishing");
            }
        }
    });
}

/// The test setting `PORTWARDEN_TEST_VANTAGE=lab`: the lab's benchmarking
/// range 198.18.0.0/15 counts as a public source. Any other value is an
/// error, so a typo never silently changes what counts as the internet.
fn lab_vantage() -> Result<bool> {
    match std::env::var("PORTWARDEN_TEST_VANTAGE") {
        Err(_) => Ok(false),
        Ok(v) if v == "lab" => Ok(true),
        Ok(v) => bail!(
            "PORTWARDEN_TEST_VANTAGE={v:?} is not a test setting; the only value is \"lab\" (the lab range 198.18.0.0/15 counts as internet)"
        ),
    }
}

/// The audit the command line asks for, checked before anything runs.
fn audit_request(cmd: &AuditCmd) -> Result<AuditRequest> {
    let (choice, mut cfg) = scan_config(&cmd.engine)?;
    // An interrupted audit writes no report, so it leaves no resume state,
    // and a report judged on half a scan would mislead.
    if cmd.engine.resume.is_some() {
        bail!(
            "--resume finishes a `scan`; an audit always scans its whole scope (audit the merged results with --from-jsonl)"
        );
    }
    cfg.resume_out = None;
    // An import audits what the files recorded: targets or ports given
    // beside them would be written into the scope without being what was
    // scanned.
    let importing =
        !(cmd.from_nmap.is_empty() && cmd.from_masscan.is_empty() && cmd.from_jsonl.is_empty());
    if importing
        && (!cmd.scope.targets.is_empty()
            || !cmd.scope.targets_file.is_empty()
            || cmd.scope.ports.is_some()
            || cmd.scope.top_ports.is_some()
            || cmd.scope.top_udp.is_some())
    {
        bail!(
            "--from-nmap/--from-masscan/--from-jsonl audit what the files recorded: positional targets and -p (or --top-udp) cannot be given with them (the scope is taken from the files; give --policy to judge the imported hosts by asset group)"
        );
    }
    let pdf_with = if cmd.pdf {
        Some(portwarden::report::pdf::find_chromium().ok_or_else(|| {
            anyhow::anyhow!(
                "--pdf needs Chromium: none found (set PORTWARDEN_CHROMIUM, or install chromium); nothing was scanned"
            )
        })?)
    } else {
        None
    };
    Ok(AuditRequest {
        pdf_with,
        paper: cmd.paper,
        scope: scope(&cmd.scope, &cmd.engine, app::DEFAULT_AUDIT_PORTS)?,
        engine: choice,
        scan: cfg,
        out: cmd.out.clone(),
        identify: identify_config(!cmd.no_identify, cmd.identify_concurrency)?,
        policy: cmd.policy.clone(),
        fail_on: cmd.fail_on,
        as_of: cmd.as_of,
        lang: cmd.lang.unwrap_or_else(locale_lang),
        operator: cmd.operator.clone().unwrap_or_else(user_name),
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        store: history::audit_store(&cmd.store, cmd.no_store)?,
        import: history::import_sources(cmd),
        allow_partial_import: cmd.allow_partial_import,
        history_key: history::history_key(&cmd.store)?,
        metrics: cmd.metrics.clone(),
        sign_key: cmd.sign_key.clone(),
        cancel: Cancel::new(),
        csv_bom: cmd.csv_bom,
        compress: cmd.compress,
        vantage: cmd.vantage.clone(),
        udp_monlist: cmd.udp_monlist,
        lab_vantage: lab_vantage()?,
    })
}

async fn audit(cmd: AuditCmd) -> Result<u8> {
    let req = std::sync::Arc::new(audit_request(&cmd)?);
    // Whether a report of ours is in --out now, for the interrupted message.
    let before = app::check_out_dir(&req.out).ok();
    cancel_on_signal(req.cancel.clone());
    let (tx, rx) = mpsc::channel(4096);
    // The total is unknown until targets resolve; the bar learns it from progress events.
    let consumer = tokio::spawn(consume(rx, progress_bar(0), Vec::new()));
    // The app checks the flag between steps; this also stops the steps that
    // do not (resolving names, opening the history) the moment it is raised.
    let outcome = tokio::select! {
        r = app::audit(std::sync::Arc::clone(&req), tx) => r,
        () = req.cancel.cancelled() => Err(Cancelled.into()),
    };
    if let Err(e) = &outcome
        && e.is::<Cancelled>()
    {
        // Tasks of a dropped scan may still hold the event channel a moment.
        let _ = tokio::time::timeout(Duration::from_millis(500), consumer).await;
        let out = output::terminal_safe(&cmd.out.display().to_string());
        let kept = match before {
            Some(app::OutDir::Report) => format!("the previous report in {out} is untouched"),
            Some(app::OutDir::Empty) => format!("{out} is left empty"),
            _ => format!("{out} was not created"),
        };
        eprintln!(
            "portwarden: interrupted: no report written ({kept}), nothing recorded in the history"
        );
        return Ok(exit::INTERRUPTED);
    }
    consumer.await.context("output task failed")??;
    if let Err(e) = &outcome
        && let Some(m) = e.downcast_ref::<app::MetricsUnwritten>()
        && m.interrupted
    {
        eprintln!("portwarden: {}", output::terminal_safe(&m.to_string()));
        return Ok(exit::INTERRUPTED);
    }
    let outcome = outcome?;
    {
        let index = outcome.out.join("index.html");
        let mut w = BufWriter::new(io::stdout());
        output::write_audit_summary(
            &mut w,
            &outcome.evaluation,
            &output::SummaryStyle {
                labels: &outcome.labels,
                color: output::use_color(),
                index: &index,
            },
        )?;
        w.flush()?;
    }
    let labels = &outcome.labels;
    output::print_audit_history(&outcome, labels, req.store.as_deref());
    let first = if req.import.is_empty() {
        summary_line(
            &outcome.summary,
            outcome.hosts,
            outcome.ports,
            req.scan.shard,
            labels,
        )
    } else {
        history::import_line(&outcome, req.import.len())
    };
    let path = output::terminal_safe(&outcome.out.display().to_string());
    eprintln!(
        "{first}\n{}",
        labels.fmt(
            "term.written",
            &[("path", &path), ("sha", &outcome.manifest_sha256)]
        )
    );
    if let Some(key) = &cmd.sign_key {
        eprintln!(
            "manifest.json signed with {} into manifest.sig (`portwarden verify {} --pubkey PUBLIC_KEY` checks it)",
            key.display(),
            outcome.out.display()
        );
    }
    if outcome.gate_tripped {
        eprintln!(
            "{}",
            labels.fmt(
                "term.failed",
                &[(
                    "severity",
                    &labels.get(&format!("severity.{}", cmd.fail_on))
                )]
            )
        );
        return Ok(exit::FINDINGS);
    }
    Ok(exit::OK)
}

/// The report language the locale asks for (LC_ALL, LC_MESSAGES, then LANG,
/// the first that is set and not empty).
fn locale_lang() -> portwarden::report::Lang {
    let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty());
    portwarden::report::Lang::from_locale(locale.as_deref())
}

/// The operator's user name: $USER, $LOGNAME, else the password entry of
/// the effective uid, else the uid itself.
fn user_name() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return v;
        }
    }
    // SAFETY: getpwuid returns NULL or a pointer to a static entry that
    // stays valid until the next getpw* call; we copy the name out at once.
    let uid = unsafe { libc::geteuid() };
    let name = unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() || (*pw).pw_name.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*pw).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    name.unwrap_or_else(|| format!("uid {uid}"))
}

/// `portwarden fix`: one finding's fix from a report directory.
fn fix(cmd: args::FixCmd) -> Result<u8> {
    use portwarden::report::remediation::platform_matches;
    let fixes = portwarden::report::read_fixes(&cmd.report)?;
    let safe = |s: &str| output::terminal_safe(s);
    let Some(g) = portwarden::report::fix_for(&fixes, &cmd.finding) else {
        bail!(
            "{}: no fix for finding '{}' (no such finding, or it is waived); findings with a fix: {}",
            cmd.report.display(),
            safe(&cmd.finding),
            fixes.iter().map(|g| g.finding_ids.len()).sum::<usize>()
        );
    };
    let platforms: Vec<_> = g
        .platforms
        .iter()
        .filter(|p| {
            cmd.platform
                .as_deref()
                .is_none_or(|want| platform_matches(&p.platform, want))
        })
        .collect();
    if platforms.is_empty() {
        let known: Vec<&str> = g.platforms.iter().map(|p| p.platform.as_str()).collect();
        bail!(
            "fix {} has no platform '{}'; it has: {}",
            g.id,
            safe(cmd.platform.as_deref().unwrap_or_default()),
            known.join(", ")
        );
    }
    if cmd.format == args::FixFormat::Json {
        // Every part of every platform; serde_json escapes control characters.
        let doc = serde_json::json!({
            "fix": g.id,
            "key": g.key,
            "title": g.title,
            "hosts": g.hosts,
            "finding_ids": g.finding_ids,
            "platforms": platforms,
        });
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(exit::OK);
    }
    // One part only, so that `portwarden fix … | sh` never runs the undo
    // too. Commands keep their lines; every line loses its control characters.
    let part = if cmd.undo {
        "undo"
    } else if cmd.verify {
        "verify"
    } else {
        "commands"
    };
    let block = |text: &str| -> String { text.lines().map(safe).collect::<Vec<_>>().join("\n") };
    let mut out = io::stdout().lock();
    writeln!(out, "# fix {} ({}): {}", g.id, safe(&g.key), safe(&g.title))?;
    writeln!(out, "# {}", safe(&g.about))?;
    let hosts: Vec<String> = g.hosts.iter().map(|h| h.to_string()).collect();
    writeln!(out, "# hosts: {}", hosts.join(" "))?;
    writeln!(out, "# findings: {}", block(&g.finding_ids.join(" ")))?;
    for p in platforms {
        writeln!(
            out,
            "\n# {} [{}]: {part}",
            safe(&p.title),
            safe(&p.platform)
        )?;
        let text = match part {
            "undo" => &p.undo,
            "verify" => &p.verify,
            _ => {
                if let Some(w) = &p.warning {
                    // A comment, so that the printed block stays pasteable.
                    for line in w.lines() {
                        writeln!(out, "# {}", safe(line))?;
                    }
                }
                &p.commands
            }
        };
        writeln!(out, "{}", block(text))?;
    }
    Ok(exit::OK)
}

/// `portwarden verify DIR`: every file named, exit 1 unless all are intact.
fn verify(cmd: VerifyCmd) -> Result<u8> {
    use portwarden::report::evidence::{self, SignatureStatus};
    let key = cmd
        .pubkey
        .as_deref()
        .map(evidence::load_verifying_key)
        .transpose()?;
    let r = evidence::verify_with_key(&cmd.dir, key.as_ref())?;
    let dir = output::terminal_safe(&cmd.dir.display().to_string());
    let safe = |s: &str| output::terminal_safe(s);
    for (f, kind) in &r.refused {
        println!("REFUSED  {} ({kind}: not followed, not read)", safe(f));
    }
    for f in &r.altered {
        println!("ALTERED  {}", safe(f));
    }
    for f in &r.missing {
        println!("MISSING  {}", safe(f));
    }
    for f in &r.extra {
        println!("EXTRA    {}", safe(f));
    }
    match &r.signature {
        SignatureStatus::Unsigned => {}
        SignatureStatus::Unchecked { fingerprint } => println!(
            "manifest.sig by key {} (not checked: give --pubkey FILE)",
            safe(fingerprint)
        ),
        SignatureStatus::Valid { fingerprint } => {
            println!("SIGNED   manifest.json by key {fingerprint} (valid)")
        }
        SignatureStatus::Invalid { reason } => println!("SIGNATURE {}", safe(reason)),
    }
    println!("manifest.json sha256 {}", r.manifest_sha256);
    if r.is_intact() {
        eprintln!(
            "{dir}: intact ({} files match the manifest)",
            r.intact.len()
        );
        Ok(exit::OK)
    } else {
        let bad_sig = matches!(r.signature, SignatureStatus::Invalid { .. });
        eprintln!(
            "{dir}: NOT intact: {} altered, {} missing, {} extra, {} refused{}",
            r.altered.len(),
            r.missing.len(),
            r.extra.len(),
            r.refused.len(),
            if bad_sig { ", SIGNATURE invalid" } else { "" }
        );
        Ok(exit::FINDINGS)
    }
}

/// `portwarden keygen --out DIR`.
fn keygen(cmd: KeygenCmd) -> Result<u8> {
    let (secret, public) = portwarden::report::evidence::generate_keypair(&cmd.out)?;
    let key = portwarden::report::evidence::load_verifying_key(&public)?;
    eprintln!(
        "wrote {} (secret, mode 0600: keep it private) and {} (give it to verifiers)\nkey fingerprint {}\nsign with `portwarden audit … --sign-key {}`, check with `portwarden verify DIR --pubkey {}`",
        output::terminal_safe(&secret.display().to_string()),
        output::terminal_safe(&public.display().to_string()),
        portwarden::report::evidence::fingerprint(&key),
        output::terminal_safe(&secret.display().to_string()),
        output::terminal_safe(&public.display().to_string())
    );
    Ok(exit::OK)
}

fn ports(cmd: PortsCmd) -> Result<u8> {
    let catalogue = Rules::load(cmd.rules.as_deref())?.ports;
    let set = PortSet::parse(&cmd.spec, &catalogue)?;
    let mut w = BufWriter::new(io::stdout());
    for (p, proto) in set.pairs() {
        let service = catalogue
            .entry(p, proto)
            .map(|e| e.service.as_str())
            .unwrap_or("");
        // TCP keeps its historic bare form; UDP ports say so.
        let service = output::terminal_safe(service);
        match proto {
            portwarden::model::Proto::Tcp => writeln!(w, "{p}\t{service}")?,
            portwarden::model::Proto::Udp => writeln!(w, "{p}/udp\t{service}")?,
        }
    }
    w.flush()?;
    eprintln!("{} ports", set.len());
    Ok(exit::OK)
}

/// Runs `fut` until it finishes or the operator presses Ctrl-C / sends
/// SIGTERM. With a `stop` flag the first signal raises it and `fut` is
/// awaited to its (early) end; without one, or on a second signal, the
/// future is dropped, which stops the probes in flight, and `None` says so.
async fn interruptible<T>(
    fut: impl Future<Output = T>,
    stop: Option<Arc<AtomicBool>>,
) -> Option<T> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut signals = async move || {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(s) => { s.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    };
    tokio::pin!(fut);
    tokio::select! {
        v = &mut fut => return Some(v),
        _ = signals() => {}
    }
    let Some(stop) = stop else {
        eprintln!("portwarden: interrupted");
        return None;
    };
    eprintln!("portwarden: stopping: waiting for late answers (press Ctrl-C again to abort)");
    stop.store(true, Ordering::Relaxed);
    tokio::select! {
        v = &mut fut => Some(v),
        _ = signals() => { eprintln!("portwarden: aborted"); None }
    }
}

/// Drains engine events: observations to the output, progress to the bar,
/// notices to stderr. Returns the output so the caller can finish it.
async fn consume(
    mut rx: mpsc::Receiver<ScanEvent>,
    bar: Option<ProgressBar>,
    mut outs: Vec<Output>,
) -> Result<Vec<Output>> {
    while let Some(ev) = rx.recv().await {
        match ev {
            ScanEvent::Observation(o) => {
                for out in outs.iter_mut() {
                    out.observation(&o).context("cannot write the output")?;
                }
            }
            ScanEvent::Progress(p) => {
                if let Some(bar) = &bar {
                    bar.set_length(p.total);
                    bar.set_position(p.done);
                    bar.set_message(format!("{:.0} probes/s, {} open", p.rate, p.open));
                }
            }
            ScanEvent::Notice(text) => {
                let line = format!("portwarden: note: {}", output::terminal_safe(&text));
                match &bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(outs)
}

fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {pos}/{len} · {msg} · ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    Some(bar)
}

/// The summary line of a scan or an audit, in the labels' language (the
/// rare warnings after it stay in English).
fn summary_line(
    s: &ScanSummary,
    hosts: u64,
    ports: usize,
    shard: Option<(u64, u64)>,
    labels: &portwarden::report::Labels,
) -> String {
    let hosts_text = output::count(labels, "hosts", hosts as usize);
    // A shard probes its own part of the pairs: it counts those.
    let hosts_text = match shard {
        Some((i, n)) => {
            let pairs = (hosts * ports as u64).saturating_sub(i).div_ceil(n.max(1));
            let pairs = format!("{pairs} pair{}", if pairs == 1 { "" } else { "s" });
            format!("shard {i}/{n}: {pairs} of {hosts_text}")
        }
        None => hosts_text,
    };
    let mut line = labels.fmt(
        "term.scanned",
        &[
            ("hosts", &hosts_text),
            ("ports", &output::count(labels, "ports", ports)),
            ("secs", &format!("{:.2}", s.elapsed.as_secs_f64())),
            ("rate", &format!("{:.0}", s.rate)),
            (
                "interrupted",
                &if s.interrupted {
                    labels.get("term.interrupted")
                } else {
                    String::new()
                },
            ),
            ("open", &s.open.to_string()),
            ("closed", &s.closed.to_string()),
            ("filtered", &s.filtered.to_string()),
        ],
    );
    if s.open_filtered > 0 {
        line.push_str(&format!(", {} open|filtered", s.open_filtered));
    }
    if s.udp_undecided > 0 {
        line.push_str(&format!(
            "\nwarning: {} of the open|filtered UDP pairs are undecided: their hosts' ICMP rate limits needed more time than --host-timeout allowed (or the hosts stopped answering retries), so closed could not be told from open|filtered; raise --host-timeout to decide them",
            s.udp_undecided
        ));
    }
    if s.local_errors > 0 {
        line.push_str(&format!(
            "\nwarning: {} of the filtered were never probed: this machine refused to send them (reason local-error; the observation's \"error\" names the errno)",
            s.local_errors
        ));
    }
    line
}

/// Parses the command line; usage errors become one line (plus a hint), help
/// and version print as usual.
pub fn parse() -> std::result::Result<Cli, (u8, String)> {
    use clap::Parser;
    let args = nmap::translate(std::env::args_os().collect()).map_err(|e| (exit::ERROR, e))?;
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(cli),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                Err((exit::OK, String::new()))
            }
            _ => {
                let text = e.render().to_string();
                let first = text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
                    .to_string();
                Err((exit::ERROR, format!("{first} (see --help)")))
            }
        },
    }
}
