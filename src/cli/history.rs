//! CLI layer: the history commands (`history list`, `history verify`,
//! `diff`) and the audit's history flags. Renders what `portwarden::store`
//! returns; decides nothing itself.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use portwarden::app::AuditOutcome;
use portwarden::import::Source;
use portwarden::store::{self, Store, drift};

use super::args::{AuditCmd, DiffCmd, DiffFormat, HistoryCmd, StoreArgs};
use super::exit;
use super::output::terminal_safe;
use portwarden::report::csv_inert;

fn store_path(args: &StoreArgs) -> Result<PathBuf> {
    match args.store.clone().or_else(store::default_path) {
        Some(p) => Ok(p),
        None => bail!(
            "no place for the audit history: neither XDG_DATA_HOME nor HOME is set; give --store PATH"
        ),
    }
}

/// The history key: `--history-key-file FILE` or `PORTWARDEN_HISTORY_KEY`
/// (not both: one key, one place).
pub fn history_key(args: &StoreArgs) -> Result<Option<store::HistoryKey>> {
    let env = std::env::var_os("PORTWARDEN_HISTORY_KEY").filter(|v| !v.is_empty());
    match (&args.history_key_file, env) {
        (Some(_), Some(_)) => bail!(
            "the history key is given twice (--history-key-file and PORTWARDEN_HISTORY_KEY): give it once"
        ),
        (Some(path), None) => Ok(Some(store::HistoryKey::from_file(path)?)),
        (None, Some(v)) => {
            use std::os::unix::ffi::OsStrExt;
            Ok(Some(
                store::HistoryKey::new(v.as_bytes()).context("PORTWARDEN_HISTORY_KEY")?,
            ))
        }
        (None, None) => Ok(None),
    }
}

/// The history an audit records into (`None` with `--no-store`).
pub fn audit_store(args: &StoreArgs, no_store: bool) -> Result<Option<PathBuf>> {
    if no_store {
        return Ok(None);
    }
    store_path(args).map(Some)
}

/// The files an audit imports instead of scanning.
pub fn import_sources(cmd: &AuditCmd) -> Vec<Source> {
    let mut v: Vec<Source> = cmd.from_nmap.iter().cloned().map(Source::NmapXml).collect();
    v.extend(cmd.from_masscan.iter().cloned().map(Source::Masscan));
    v.extend(cmd.from_jsonl.iter().cloned().map(Source::Jsonl));
    v
}

/// The audit's summary line when it judged imported results.
pub fn import_line(o: &AuditOutcome, files: usize) -> String {
    let s = &o.summary;
    format!(
        "audited {} results imported from {files} file{} ({} hosts): {} open, {} closed, {} filtered{}",
        s.probed,
        if files == 1 { "" } else { "s" },
        o.hosts,
        s.open,
        s.closed,
        s.filtered,
        if o.partial_import {
            "\npartial import: a file was cut short and only what it holds was audited (--allow-partial-import)"
        } else {
            ""
        }
    )
}

pub fn history(cmd: HistoryCmd) -> Result<u8> {
    match cmd {
        HistoryCmd::List {
            store,
            scope,
            format,
        } => {
            let path = store_path(&store)?;
            let s = open_existing(&path, &store)?;
            let runs = s.list(scope.as_deref())?;
            let mut w = BufWriter::new(io::stdout());
            match format {
                DiffFormat::Json => {
                    let text = serde_json::to_string_pretty(&runs)?;
                    writeln!(w, "{}", json_escaped(&text))?;
                }
                DiffFormat::Csv => {
                    let mut c = csv::Writer::from_writer(&mut w);
                    c.write_record([
                        "id", "started", "scope", "targets", "ports", "open", "critical", "high",
                        "medium", "low", "info",
                    ])?;
                    for r in &runs {
                        let n = |s| r.findings.get(&s).copied().unwrap_or(0).to_string();
                        use portwarden::model::Severity::*;
                        let row = [
                            r.id.to_string(),
                            r.started.to_rfc3339(),
                            r.scope_key.clone(),
                            r.targets.join(" "),
                            r.ports.clone(),
                            r.open_ports.to_string(),
                            n(Critical),
                            n(High),
                            n(Medium),
                            n(Low),
                            n(Info),
                        ];
                        c.write_record(row.iter().map(|x| csv_inert(x).into_owned()))?;
                    }
                    c.flush()?;
                }
                DiffFormat::Table => {
                    if runs.is_empty() {
                        writeln!(w, "no runs recorded in {}", path.display())?;
                    } else {
                        writeln!(
                            w,
                            "{:>5}  {:<20}  {:<16}  {:>5}  {:<26}  TARGETS",
                            "RUN", "STARTED (UTC)", "SCOPE", "OPEN", "FINDINGS C/H/M/L/I"
                        )?;
                    }
                    for r in &runs {
                        use portwarden::model::Severity::*;
                        let n = |s| r.findings.get(&s).copied().unwrap_or(0);
                        let targets = r.targets.join(" ");
                        let targets = if targets.len() > 60 {
                            format!("{}…", &targets[..targets.floor_char_boundary(60)])
                        } else {
                            targets
                        };
                        writeln!(
                            w,
                            "{:>5}  {:<20}  {:<16}  {:>5}  {:<26}  {} -p {}",
                            r.id,
                            r.started.format("%Y-%m-%d %H:%M:%S"),
                            terminal_safe(&r.scope_key),
                            r.open_ports,
                            format!(
                                "{}/{}/{}/{}/{}",
                                n(Critical),
                                n(High),
                                n(Medium),
                                n(Low),
                                n(Info)
                            ),
                            terminal_safe(&targets),
                            terminal_safe(&r.ports)
                        )?;
                    }
                }
            }
            w.flush()?;
            Ok(exit::OK)
        }
        HistoryCmd::Verify { store, against } => verify(&store, &against),
    }
}

/// `history verify [--against DIR…]`: the chain, then each report's anchor.
fn verify(args: &StoreArgs, against: &[PathBuf]) -> Result<u8> {
    let path = store_path(args)?;
    let s = open_existing(&path, args)?;
    let v = s.verification()?;
    let mut problems: Vec<String> = v
        .problems
        .iter()
        .map(|p| format!("run {}: {}", p.run, p.problem))
        .collect();
    for dir in against {
        let shown = dir.display();
        // One bounded read of a regular file (never a link, FIFO or
        // device): its anchor and its hash come from the same bytes.
        let (bytes, manifest) = portwarden::report::evidence::read_manifest(dir)
            .with_context(|| format!("{shown} is not a report directory"))?;
        let anchor = manifest.history;
        let Some(anchor) = anchor else {
            problems.push(format!(
                "{shown}: its manifest.json records no history anchor (written by an older portwarden, or with --no-store)"
            ));
            continue;
        };
        let sha = portwarden::report::evidence::sha256_hex(&bytes);
        for p in s.check_anchor(&anchor, &sha)? {
            problems.push(format!("{shown}: {p}"));
        }
    }
    for p in &problems {
        println!("{}", terminal_safe(p));
    }
    for u in &v.unreadable {
        println!("run {}: {}", u.run, terminal_safe(&u.problem));
    }
    if !problems.is_empty() {
        eprintln!(
            "history {} has been tampered with: {} problem(s)",
            path.display(),
            problems.len()
        );
        return Ok(exit::FINDINGS);
    }
    if !v.unreadable.is_empty() {
        eprintln!(
            "history {}: the chain holds, but {} run(s) cannot be read back (audits of their scope run without them; `diff` refuses them)",
            path.display(),
            v.unreadable.len()
        );
        return Ok(exit::FINDINGS);
    }
    if !v.unproven.is_empty() {
        bail!(
            "history {}: {} of {} runs are HMAC-keyed and cannot be checked without the key: give PORTWARDEN_HISTORY_KEY or --history-key-file",
            path.display(),
            v.unproven.len(),
            v.runs
        );
    }
    if v.runs == 0 {
        println!(
            "{}: holds no runs: nothing is proven (if audits were recorded here, they were deleted)",
            path.display()
        );
        return Ok(exit::FINDINGS);
    }
    // The key was read once, when the store was opened (a second read of
    // `--history-key-file /dev/stdin` would find nothing).
    let kind = if s.keyed() {
        "HMAC chain (keyed)"
    } else {
        "hash chain"
    };
    let anchors = if against.is_empty() {
        " (give --against REPORT_DIR… to also detect deleted newest runs or a replaced database)"
            .to_string()
    } else {
        format!("; {} report anchor(s) found in it", against.len())
    };
    println!(
        "{}: {} runs, {kind} intact{anchors}",
        path.display(),
        v.runs
    );
    Ok(exit::OK)
}

/// JSON text with every character a terminal must not see raw (C1
/// controls such as U+009B, bidirectional overrides) written as a `\uXXXX`
/// escape: the same JSON value, inert on a screen. serde_json already
/// escapes C0; these characters are all in the BMP and occur only inside
/// strings.
fn json_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if portwarden::lines::unsafe_to_show(c) && !matches!(c, '\n' | '\t') {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Reading commands never create a history by accident, and refuse a
/// 0-byte file (a truncated history is not an empty one).
fn open_existing(path: &std::path::Path, args: &StoreArgs) -> Result<Store> {
    let mut s = Store::open_existing(path)?;
    s.set_key(history_key(args)?);
    Ok(s)
}

pub fn diff(cmd: DiffCmd) -> Result<u8> {
    let path = store_path(&cmd.store)?;
    let s = open_existing(&path, &cmd.store)?;
    let b = match cmd.run_b {
        Some(b) => b,
        None => s
            .latest()?
            .with_context(|| format!("no runs recorded in {}", path.display()))?,
    };
    // Headers only: the rows are compared one at a time.
    let run_b = s.header(b)?;
    let a = match cmd.run_a {
        Some(a) => a,
        None => s
            .latest_of_scope(&run_b.record.scope.key, Some(b))?
            .with_context(|| {
                format!(
                    "run {b} is the first run of its scope ({}): nothing to compare with; name two runs",
                    run_b.record.scope.key
                )
            })?,
    };
    // The segment compared must hold: an edited or deleted run between
    // the two (or either of them) is refused, naming the run. A port
    // opened in a run between the two was judged in that run.
    s.verify_segment(a, b)?;
    let run_a = s.header(a)?;
    let d = s.diff(a, b)?;
    let mut w = BufWriter::new(io::stdout());
    match cmd.format {
        DiffFormat::Json => {
            serde_json::to_writer_pretty(&mut w, &d)?;
            writeln!(w)?;
        }
        DiffFormat::Csv => {
            let mut c = csv::Writer::from_writer(&mut w);
            c.write_record(["change", "host", "port", "detail"])?;
            for row in drift::rows(&d) {
                c.write_record(row.iter().map(|x| csv_inert(x).into_owned()))?;
            }
            c.flush()?;
        }
        DiffFormat::Table => {
            writeln!(
                w,
                "run {a} ({}) → run {b} ({})",
                run_a.record.started.format("%Y-%m-%d %H:%M"),
                run_b.record.started.format("%Y-%m-%d %H:%M")
            )?;
            if run_a.record.scope.key != run_b.record.scope.key {
                writeln!(
                    w,
                    "note: different scopes ({} vs {}): ports outside either scope show as opened or closed",
                    terminal_safe(&run_a.record.scope.key),
                    terminal_safe(&run_b.record.scope.key)
                )?;
            }
            let rows = drift::rows(&d);
            if rows.is_empty() {
                writeln!(w, "no changes")?;
            }
            for [kind, host, port, detail] in rows {
                writeln!(
                    w,
                    "{kind:<18} {:<40} {:<10} {}",
                    terminal_safe(&host),
                    terminal_safe(&port),
                    terminal_safe(&detail)
                )?;
            }
        }
    }
    w.flush()?;
    Ok(exit::OK)
}
