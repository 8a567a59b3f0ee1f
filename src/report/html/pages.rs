//! The findings pages: when the table's rows do not fit in index.html
//! ([`super::TABLE_BYTES`]), every row is also written to a page of its asset
//! group and severity, `findings/g{N}-{severity}-{part}.html`, each bounded
//! the same way and carrying its own table JSON, so the filters and the
//! search work on it with no server. index.html keeps the most severe rows
//! and links every page; its summary, charts and requirement tables still
//! describe the whole audit. File names use the group's index, never its
//! name (the policy's text): they are safe on every file system.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{CSS, JS, TIME_FORMAT, csp_hash, registry, strip_controls, table_json};
use crate::model::Severity;
use crate::policy::Evaluation;
use crate::report::ReportError;
use crate::report::model::{PortRow, ReportModel, severity_rank};

/// The directory, inside a report, of the findings pages.
pub const FINDINGS_DIR: &str = "findings";

const PAGE: &str = include_str!("../../../report-templates/findings.hbs");

/// One page written: its bucket and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingPage {
    /// Relative to index.html.
    pub href: String,
    pub group: Option<String>,
    pub severity: Severity,
    pub part: usize,
    pub rows: usize,
}

/// Writes the pages of every row of `model` into `dir/findings/`, by
/// asset group (in first-seen order over the rows, most severe first) and
/// severity (most severe first), splitting a bucket into parts of at most
/// `budget` bytes ([`super::TABLE_BYTES`]) of table JSON. `write` gets each page's path relative
/// to `dir` and its text.
pub fn write_pages(
    model: &ReportModel,
    evaluation: Option<&Evaluation>,
    budget: usize,
    mut write: impl FnMut(&str, &str) -> Result<(), ReportError>,
) -> Result<Vec<FindingPage>, ReportError> {
    let mut groups: Vec<Option<&str>> = Vec::new();
    let mut buckets: BTreeMap<(usize, std::cmp::Reverse<u8>), Vec<&PortRow>> = BTreeMap::new();
    for r in &model.ports {
        let g = r.group.as_deref();
        let gi = match groups.iter().position(|x| *x == g) {
            Some(i) => i,
            None => {
                groups.push(g);
                groups.len() - 1
            }
        };
        buckets
            .entry((gi, std::cmp::Reverse(severity_rank(r.severity))))
            .or_default()
            .push(r);
    }
    let hb = registry("findings", PAGE)?;
    let labels = &model.text;
    let mut pages = Vec::new();
    for ((gi, _), rows) in &buckets {
        let severity = rows[0].severity;
        let group = groups[*gi].map(str::to_string);
        // Cut the bucket into parts first: each part's links name all of them.
        let mut parts: Vec<(usize, usize, String)> = Vec::new();
        let mut at = 0;
        while at < rows.len() {
            let (json, taken) = table_json(model, evaluation, &rows[at..], "../index.html", budget);
            parts.push((at, taken, json));
            at += taken;
        }
        let name = |k: usize| format!("g{gi}-{severity}-{k}.html");
        let title = labels.fmt(
            "ui.pages_title",
            &[
                (
                    "group",
                    group.as_deref().unwrap_or(&labels.get("ui.no_group")),
                ),
                ("severity", &labels.get(&format!("severity.{severity}"))),
            ],
        );
        let n = parts.len();
        for (k, (start, taken, json)) in parts.into_iter().enumerate() {
            let links: Vec<Value> = (0..n)
                .map(|j| json!({"href": name(j + 1), "label": part_label(labels, j + 1, n), "current": j == k}))
                .collect();
            let mut data = json!({
                "lang": model.lang.as_str(),
                "t": labels.tree(),
                "title": format!("{title} ({})", part_label(labels, k + 1, n)),
                "hint": labels.fmt("ui.pages_hint_page", &[("n", &taken.to_string()), ("from", &(start + 1).to_string())]),
                "parts": links,
                "tool_version": model.scope.tool_version,
                "started": model.scope.started.format(TIME_FORMAT).to_string(),
            });
            strip_controls(&mut data);
            data["css"] = Value::String(CSS.to_owned());
            data["js"] = Value::String(JS.to_owned());
            data["csp"] = Value::String(format!(
                "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
                csp_hash(CSS),
                csp_hash(JS)
            ));
            data["table_json"] = Value::String(super::TABLE_SLOT.to_owned());
            let page = hb
                .render("findings", &data)
                .map_err(|e| ReportError::Render {
                    file: format!("{FINDINGS_DIR}/{}", name(k + 1)),
                    message: e.to_string(),
                })?;
            let page = page.replacen(super::TABLE_SLOT, &json, 1);
            let href = format!("{FINDINGS_DIR}/{}", name(k + 1));
            write(&href, &page)?;
            pages.push(FindingPage {
                href,
                group: group.clone(),
                severity,
                part: k + 1,
                rows: taken,
            });
        }
    }
    Ok(pages)
}

fn part_label(labels: &crate::report::Labels, k: usize, n: usize) -> String {
    labels.fmt(
        "ui.pages_part",
        &[("k", &k.to_string()), ("n", &n.to_string())],
    )
}

/// The index's list of pages: one line per bucket with its parts, and the
/// sentences that say what the page holds.
pub fn index_view(model: &ReportModel, pages: &[FindingPage], shown: usize) -> Value {
    let labels = &model.text;
    let mut buckets: Vec<Value> = Vec::new();
    let mut last: Option<(&Option<String>, Severity)> = None;
    for p in pages {
        let part = json!({"href": p.href, "label": p.part.to_string()});
        if last == Some((&p.group, p.severity)) {
            let b = buckets.last_mut().expect("a bucket");
            b["rows"] = json!(b["rows"].as_u64().unwrap_or(0) + p.rows as u64);
            b["parts"].as_array_mut().expect("parts").push(part);
            continue;
        }
        last = Some((&p.group, p.severity));
        buckets.push(json!({
            "group": p.group.clone().unwrap_or_else(|| labels.get("ui.no_group")),
            "severity": p.severity,
            "severity_label": labels.get(&format!("severity.{}", p.severity)),
            "rows": p.rows,
            "parts": [part],
        }));
    }
    let total = model.ports.len().to_string();
    let mut v = json!({
        "buckets": buckets,
        "hint": labels.fmt("ui.pages_hint", &[("n", &shown.to_string()), ("total", &total), ("pages", &pages.len().to_string())]),
        "summary": labels.fmt("ui.pages_summary", &[("pages", &pages.len().to_string()), ("total", &total)]),
    });
    strip_controls(&mut v);
    v
}

/// Writes `dir/findings/` and its pages (see [`write_pages`]).
pub fn write_pages_into(
    dir: &Path,
    model: &ReportModel,
    evaluation: Option<&Evaluation>,
    budget: usize,
) -> Result<Vec<FindingPage>, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    let sub = dir.join(FINDINGS_DIR);
    std::fs::create_dir(&sub).map_err(io(&sub))?;
    write_pages(model, evaluation, budget, |href, page| {
        let path = dir.join(href);
        std::fs::write(&path, page).map_err(io(&path))
    })
}
