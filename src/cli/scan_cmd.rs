//! `portwarden scan`: where its results go (standard output, `-o FILE`,
//! nmap's `-oX`/`-oN`/`-oG`/`-oA`), every path checked before a probe is
//! sent, and a `--resume`d scan that continues its own earlier output.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;

use portwarden::app;
use portwarden::safe_fs::OutFile;
use portwarden::scan::ScanSummary;

use super::args::{Format, ScanCmd};
use super::output::Output;
use super::{exit, interruptible, progress_bar, scan_config, scope, summary_line};

/// One output of the scan: a format and a file (`None`: standard output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub format: Format,
    pub path: Option<PathBuf>,
}

/// The format a file name asks for, by its extension.
pub fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "csv" => Format::Csv,
        "json" => Format::Json,
        "jsonl" | "ndjson" => Format::Jsonl,
        "xml" => Format::NmapXml,
        "gnmap" => Format::Grepable,
        "nmap" | "txt" => Format::Table,
        _ => return None,
    })
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Table => "table",
        Format::Json => "json",
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
        Format::NmapXml => "nmap-xml",
        Format::Grepable => "grepable",
    }
}

/// Every output the command line asks for, checked for conflicts: `-o`
/// (format from --format, else from the extension, else table on a
/// terminal and JSONL otherwise) and nmap's outputs. A --format that the
/// extension contradicts is refused.
pub fn plan(cmd: &ScanCmd, terminal: bool) -> Result<Vec<Target>> {
    let default = if terminal {
        Format::Table
    } else {
        Format::Jsonl
    };
    let primary_format = match (&cmd.output, cmd.format) {
        (Some(path), Some(asked)) => {
            if let Some(ext) = format_of(path)
                && ext != asked
            {
                bail!(
                    "-o {} asks for {} by its extension but --format is {}: drop --format, or name the file for its format",
                    path.display(),
                    format_name(ext),
                    format_name(asked)
                );
            }
            asked
        }
        (Some(path), None) => format_of(path).unwrap_or(default),
        (None, f) => f.unwrap_or(default),
    };
    let mut extra = Vec::new();
    for spec in &cmd.nmap_output {
        let (kind, file) = spec
            .split_once('=')
            .with_context(|| format!("--nmap-output {spec}: expected FORMAT=FILE"))?;
        let path = (file != "-").then(|| PathBuf::from(file));
        let formats: &[(Format, &str)] = match kind {
            "xml" => &[(Format::NmapXml, "")],
            "normal" => &[(Format::Table, "")],
            "grepable" => &[(Format::Grepable, "")],
            "all" => &[
                (Format::NmapXml, "xml"),
                (Format::Table, "nmap"),
                (Format::Grepable, "gnmap"),
            ],
            _ => bail!("--nmap-output {spec}: unknown format {kind}"),
        };
        for (format, ext) in formats {
            let path = match (&path, ext.is_empty()) {
                (None, false) => bail!("-oA needs a base name, not -"),
                (Some(p), false) => Some(PathBuf::from(format!("{}.{ext}", p.display()))),
                (p, true) => p.clone(),
            };
            extra.push(Target {
                format: *format,
                path,
            });
        }
    }
    let mut all = Vec::new();
    // nmap's `-oX -` takes standard output's place.
    if cmd.output.is_some() || !extra.iter().any(|t| t.path.is_none()) {
        all.push(Target {
            format: primary_format,
            path: cmd.output.clone(),
        });
    }
    all.extend(extra);
    let mut seen = std::collections::BTreeSet::new();
    for t in &all {
        if !seen.insert(t.path.clone()) {
            match &t.path {
                Some(p) => bail!(
                    "{} is named as two outputs: give each its own file",
                    p.display()
                ),
                None => bail!("two outputs ask for standard output (-): give one of them a file"),
            }
        }
    }
    Ok(all)
}

/// What a resumed scan continues: the part of the interrupted scan's
/// output before its closing "incomplete" record.
struct Continued {
    head: Vec<u8>,
}

/// `--resume` with `-o FILE` that exists: FILE must be the interrupted
/// scan's output in a format that can be continued (JSONL or CSV, ending
/// in the record that says it is incomplete); anything else is refused,
/// naming FILE, so that no earlier result is replaced.
fn continued(path: &Path, format: Format) -> Result<Option<Continued>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !meta.is_file() {
        return Ok(None);
    }
    let refuse = |why: &str| -> anyhow::Error {
        anyhow::anyhow!(
            "--resume with -o {}: {why}; nothing was scanned (give -o the interrupted scan's own output to continue it, or a new file for the remaining pairs)",
            path.display()
        )
    };
    if !matches!(format, Format::Jsonl | Format::Csv) {
        return Err(refuse(&format!(
            "a {} output cannot be continued (only JSONL and CSV can), and it would be replaced",
            format_name(format)
        )));
    }
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let (head, last) = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => (&body[..=i], &body[i + 1..]),
        None => (&body[..0], body),
    };
    let incomplete = match format {
        Format::Jsonl => serde_json::from_slice::<serde_json::Value>(last).is_ok_and(|v| {
            v["type"] == "summary" && v["interrupted"] == true && v["complete"] == false
        }),
        _ => last.starts_with(b"# INCOMPLETE:"),
    };
    if !incomplete {
        return Err(refuse(
            "it does not end with the record of an interrupted scan (it is complete, or not a portwarden output), and it would be replaced",
        ));
    }
    Ok(Some(Continued {
        head: head.to_vec(),
    }))
}

/// An output being written: the file (when not standard output) and the writer.
struct Opened {
    file: Option<OutFile>,
    output: Output,
}

fn open(t: &Target, cmd: &ScanCmd, engine: portwarden::model::ScanKind) -> Result<Opened> {
    let resumed = cmd.engine.resume.is_some();
    let mut head = None;
    if resumed && let Some(path) = &t.path {
        head = continued(path, t.format)?;
        if head.is_none() && path.exists() && t.path != cmd.output {
            bail!(
                "--resume with {}: nmap outputs cannot be continued and it would be replaced; give a new file",
                path.display()
            );
        }
    }
    // A regular file is written beside FILE and renamed over it only when
    // the output is finished: an abort or an error leaves the old FILE.
    let file = t.path.as_deref().map(OutFile::create).transpose()?;
    let mut sink: Box<dyn Write + Send> = match &file {
        Some(f) => Box::new(BufWriter::new(f.handle()?)),
        None => Box::new(BufWriter::new(io::stdout())),
    };
    let continuing = head.is_some();
    if let Some(c) = head {
        sink.write_all(&c.head)?;
    }
    let output = Output::new(t.format, sink, cmd.open)
        .with_engine(engine)
        .continuing(continuing);
    Ok(Opened { file, output })
}

pub async fn scan(cmd: ScanCmd) -> Result<u8> {
    if cmd.scope.targets.is_empty() && cmd.scope.targets_file.is_empty() {
        bail!("no targets given (e.g. `portwarden scan 198.18.0.0/24 -p common`)");
    }
    let (choice, mut cfg) = scan_config(&cmd.engine)?;
    let identify = super::identify_config(cmd.identify, cmd.identify_concurrency)?;
    let targets = plan(&cmd, io::stdout().is_terminal())?;
    // Every output path is checked (missing folders created) before a name
    // is resolved or a probe sent.
    for t in &targets {
        if let Some(p) = &t.path {
            app::paths::check_output_file(p, app::paths::Parents::Create)?;
        }
    }
    let scope = scope(&cmd.scope, &cmd.engine, app::DEFAULT_SCAN_PORTS)?;
    // A signed bundle (`--vantage`) frames the one -o FILE.
    let bundle = super::bundle::plan(&cmd)?;
    if bundle.is_some() && targets.len() != 1 {
        bail!("--vantage writes one bundle: give a single -o FILE and no nmap outputs");
    }
    let prepared = app::prepare(&scope).await?;
    // The engine is settled before the output file is created, so a refused
    // `--scan syn` leaves no empty file behind.
    let (tx, rx) = mpsc::channel(4096);
    cfg.kind = app::choose_engine(choice, &tx).await?;
    let mut files = Vec::new();
    let mut outputs = Vec::new();
    for t in &targets {
        let mut o = open(t, &cmd, cfg.kind)?;
        if let Some(plan) = &bundle {
            o.output = o.output.into_bundle(plan.writer()?);
        }
        files.push(o.file);
        outputs.push(o.output);
    }
    let total = prepared.targets.len() * prepared.ports.len() as u64;
    let consumer = tokio::spawn(super::consume(rx, progress_bar(total), outputs));
    // The first Ctrl-C / SIGTERM stops sending and lets late answers and the
    // output (and a SYN scan's resume file) come in; a second one aborts.
    let stop = Arc::new(AtomicBool::new(false));
    cfg.stop = Some(stop.clone());
    let outcome = interruptible(
        app::scan(&prepared, &cfg, identify.as_ref(), tx),
        Some(stop),
    )
    .await;
    let outputs = consumer.await.context("output task failed")??;
    let (summary, aborted) = match outcome {
        Some(r) => (r?, false),
        None => (
            ScanSummary {
                interrupted: true,
                ..Default::default()
            },
            true,
        ),
    };
    for out in outputs {
        match &bundle {
            Some(plan) if !aborted => {
                let digest = out.finish_bundle(|body| plan.frame(body, &scope, &cfg, &summary))?;
                plan.sign(&digest)?;
            }
            Some(_) => {}
            None => out.finish(&summary, &prepared.catalogue)?,
        }
    }
    // An aborted scan (second signal) lost answers in flight: its files are
    // dropped and each FILE keeps what it held. A stopped scan's output says
    // it is incomplete and goes in place, with the resume file beside it.
    if !aborted {
        for f in files.into_iter().flatten() {
            f.commit()?;
        }
    }
    eprintln!(
        "{}",
        summary_line(
            &summary,
            prepared.targets.len(),
            prepared.ports.len(),
            cfg.shard,
            &portwarden::report::Labels::embedded(portwarden::report::Lang::En)?
        )
    );
    finish_resume(&cmd, &cfg, &summary, aborted);
    if summary.interrupted {
        eprintln!("portwarden: interrupted: the output is incomplete");
        return Ok(exit::INTERRUPTED);
    }
    Ok(exit::OK)
}

/// After the scan: a stopped scan names its resume file; a resumed scan
/// that completed removes the resume file it finished.
fn finish_resume(
    cmd: &ScanCmd,
    cfg: &portwarden::scan::ScanConfig,
    summary: &ScanSummary,
    aborted: bool,
) {
    if summary.interrupted {
        if cfg.kind == portwarden::model::ScanKind::Syn
            && let Some(path) = cfg.resume_out.as_ref().filter(|p| p.exists())
        {
            let out = cmd
                .output
                .as_ref()
                .map(|o| format!(" (the same -o {} is continued)", o.display()))
                .unwrap_or_default();
            eprintln!(
                "resume state saved: finish the scan with the same command plus `--resume {}`{out}",
                path.display()
            );
        }
        return;
    }
    if aborted {
        return;
    }
    if let Some(done) = &cmd.engine.resume {
        match std::fs::remove_file(done) {
            Ok(()) => eprintln!(
                "the scan is complete: its resume file {} was removed",
                done.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "portwarden: note: the scan is complete but its resume file {} could not be removed: {e}",
                done.display()
            ),
        }
    }
}
