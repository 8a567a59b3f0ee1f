//! Report layer: turns findings into what people act on — the renderers of
//! the report formats, the evidence bundle, and the per-platform commands
//! that close an exposed port. It reads the model and the rules data and
//! never touches the network; nothing here prints.
//!
//! * `model`: [`ReportModel`], built once, rendered by everything else
//! * `html`: the self-contained `index.html`, bounded at any scale, and
//!   the findings pages by group and severity beyond what it holds
//! * `tables`: `findings.csv`, `findings.jsonl`, `inventory.csv`,
//!   `compliance.csv`, written row by row (the control mapping once per
//!   format, in their `controls` fields)
//! * `compress`: `--compress`, the data files as zstd, read back by
//!   `verify` and `fix`
//! * `assets`: `assets.csv` and the HTML section of the results per asset
//!   (测评对象)
//! * [`evidence`]: `manifest.json` and [`verify`]
//! * [`Labels`] / [`Lang`]: the labels of each language (typed by the rules layer)
//! * [`remediation`]: the commands that close a port, per platform

mod assets;
mod charts;
pub mod compress;
pub mod evidence;
mod folder;
pub(crate) mod html;
use crate::rules::i18n;
pub(crate) mod model;
pub mod pdf;
mod pdf_pages;
pub mod print;
pub mod remediation;
mod tables;

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use crate::rules::i18n::{Labels, Lang};
pub use evidence::{MANIFEST, Manifest, VerifyReport, verify};
pub use folder::{AuditFiles, NotAReport, OutDir, check_out_dir, write_audit_files, write_jsonl};
pub use model::{
    InputFile, ProtocolCoverage, ReportInput, ReportModel, RunFacts, ScanCoverage, StateCounts,
    Trend,
};
pub use remediation::{
    FirewalldServices, Fix, FixContext, FixGroup, Platform, PlatformFix, RemediationCatalog,
    RemediationError, fix_for, fix_groups, read_fixes,
};

/// The files a report directory holds besides `observations.jsonl` and
/// `findings.json` (written by the app) and the manifest.
pub const REPORT_FILES: &[&str] = &[
    "index.html",
    "report.json",
    "findings.csv",
    "findings.jsonl",
    "fixes.jsonl",
    "inventory.csv",
    "compliance.csv",
    "assets.csv",
];

/// How the report files are written, beyond what the model holds.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// Start CSV files with a UTF-8 BOM (Excel on Windows needs it for
    /// non-ASCII text). Always on for zh-CN.
    pub csv_bom: bool,
    /// Print `report.pdf` with this Chromium (see [`pdf`]).
    pub pdf_with: Option<PathBuf>,
    /// The PDF's paper; `None`: A4 for zh-CN, Letter otherwise.
    pub paper: Option<print::Paper>,
    /// `--compress`: the data files as zstd (see [`compress`]).
    pub compress: bool,
}

/// Building or checking a report failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read or write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("cannot serialise the report: {0}")]
    Json(#[source] serde_json::Error),
    /// A report template is malformed.
    #[error("{file}: {message}")]
    Template { file: String, message: String },
    #[error(transparent)]
    Labels(#[from] crate::rules::i18n::LabelError),
    #[error("cannot render {file}: {message}")]
    Render { file: String, message: String },
    #[error(
        "{} is not a portwarden manifest ({message}); was the directory written by `portwarden audit --out`?",
        path.display()
    )]
    BadManifest { path: PathBuf, message: String },
    #[error("cannot print report.pdf with {}: {message}", chromium.display())]
    Pdf { chromium: PathBuf, message: String },
    #[error(transparent)]
    Remediation(#[from] RemediationError),
}

/// Neutralises text a spreadsheet would evaluate: cells starting with
/// `= + - @`, tab or CR get a leading apostrophe. Quoting is the csv crate's.
pub fn csv_inert(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

/// Replaces control characters (ESC, CR, BEL, the C1 range, …) and the
/// bidirectional controls (U+202E right-to-left override and its kin,
/// which reorder what a terminal shows) with U+FFFD, so network-supplied
/// text cannot drive a terminal, disguise itself or break a layout.
pub fn display_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if crate::lines::unsafe_to_show(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Writes the report files into `dir` (index.html, report.json, the CSV
/// and JSONL files), then the manifest over everything in `dir`. Returns
/// the model and the manifest.
pub fn write_bundle(
    dir: &Path,
    input: &ReportInput<'_>,
) -> Result<(ReportModel, Manifest), ReportError> {
    write_bundle_with(dir, input, BundleOptions::default())
}

/// [`write_bundle`] with options.
pub fn write_bundle_with(
    dir: &Path,
    input: &ReportInput<'_>,
    options: BundleOptions,
) -> Result<(ReportModel, Manifest), ReportError> {
    let model = ReportModel::build(input)?;
    let labels = input.labels;
    let bom = options.csv_bom || labels.lang() == Lang::ZhCn;
    write_html(&dir.join("index.html"), &model, input.evaluation)?;
    write_json(&dir.join("report.json"), &model)?;
    write_fixes(dir, &model)?;
    let names = model::hostname_index(input.observations);
    let cx = tables::FindingContext::new(&model, labels, &names);
    tables::write_findings(dir, &input.evaluation.findings, &cx, bom)?;
    tables::write_findings_jsonl(&dir.join("findings.jsonl"), &input.evaluation.findings, &cx)?;
    tables::write_inventory(&dir.join("inventory.csv"), &model, labels, bom)?;
    tables::write_compliance(&dir.join("compliance.csv"), &model, bom)?;
    assets::write_assets(
        &dir.join("assets.csv"),
        labels,
        &input.evaluation.assets,
        bom,
    )?;
    if let Some(chromium) = &options.pdf_with {
        let paper = options
            .paper
            .unwrap_or_else(|| print::Paper::default_for(labels.lang()));
        pdf::print(chromium, dir, &model, paper)?;
    }
    if options.compress {
        compress::compress_folder(dir)?;
    }
    let s = &model.scope;
    let manifest = evidence::write_manifest(
        dir,
        Manifest {
            manifest_version: evidence::MANIFEST_VERSION,
            tool: "portwarden".into(),
            tool_version: s.tool_version.clone(),
            rules: s.rules.clone(),
            policy_file: s.policy.file.clone(),
            policy_sha256: s.policy.sha256.clone(),
            command_line: s.command_line.clone(),
            operator: s.operator.clone(),
            started: s.started,
            finished: s.finished,
            as_of: s.as_of,
            inputs: s.inputs.clone(),
            files: Default::default(),
            sizes: Default::default(),
            history: input.facts.history.clone(),
        },
    )?;
    Ok((model, manifest))
}

/// `index.html`: the page, with the table's JSON written into its slot
/// rather than copied into the page string.
fn write_html(
    path: &Path,
    model: &ReportModel,
    evaluation: &crate::policy::Evaluation,
) -> Result<(), ReportError> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let (page, table) = html::render_parts(model, Some(evaluation), Some(dir), html::TABLE_BYTES)?;
    let (head, tail) = page.split_once(html::TABLE_SLOT).unwrap_or((&page, ""));
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    w.write_all(head.as_bytes()).map_err(io)?;
    if head.len() < page.len() {
        w.write_all(table.as_bytes()).map_err(io)?;
    }
    w.write_all(tail.as_bytes()).map_err(io)?;
    w.flush().map_err(io)
}

/// `fixes.jsonl` (every fix's full texts, which report.json leaves out)
/// and one page per platform under `fixes/`.
fn write_fixes(dir: &Path, model: &ReportModel) -> Result<(), ReportError> {
    let path = dir.join(remediation::FIXES_JSONL);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    let mut w = BufWriter::new(File::create(&path).map_err(io(&path))?);
    remediation::write_fixes_jsonl(&mut w, model.fix_groups.iter().map(|g| &g.fix))
        .map_err(io(&path))?;
    w.flush().map_err(io(&path))?;
    if model.fix_groups.is_empty() {
        return Ok(());
    }
    let pages = dir.join(html::PLATFORM_DIR);
    std::fs::create_dir(&pages).map_err(io(&pages))?;
    html::render_platform_pages(model, |id, page| {
        let path = pages.join(format!("{id}.html"));
        std::fs::write(&path, page).map_err(io(&path))
    })
}

/// `report.json`, streamed compactly (a /16 audit's model is tens of MB).
fn write_json(path: &Path, model: &ReportModel) -> Result<(), ReportError> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    serde_json::to_writer(&mut w, model).map_err(ReportError::Json)?;
    w.write_all(b"\n").map_err(io)?;
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_inert() {
        assert_eq!(csv_inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_inert("+cmd|'/C calc'!A0"), "'+cmd|'/C calc'!A0");
        assert_eq!(csv_inert("-1"), "'-1");
        assert_eq!(csv_inert("@x"), "'@x");
        assert_eq!(csv_inert("\tx"), "'\tx");
        assert_eq!(csv_inert("\rx"), "'\rx");
        assert_eq!(csv_inert("plain"), "plain");
        assert_eq!(csv_inert(""), "");
    }

    #[test]
    fn display_text_loses_control_characters() {
        assert_eq!(
            display_safe("a\x1b[2Jb\r\n\u{9b}"),
            "a\u{FFFD}[2Jb\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        // Bidirectional controls reorder what a terminal shows.
        assert_eq!(
            display_safe("evil\u{202E}txt.exe \u{2066}x\u{2069} \u{200F}é"),
            "evil\u{FFFD}txt.exe \u{FFFD}x\u{FFFD} \u{FFFD}é"
        );
    }
}
