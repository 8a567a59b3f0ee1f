//! Report layer: `index.html`, one self-contained page (inline CSS, JS and
//! SVG, no network fetches) whose size stays bounded at any scale.
//!
//! The static part — scope, summary charts, compliance, the most severe
//! ports, fix groups, exceptions — is a handlebars template
//! (`report-templates/index.hbs`) rendered with HTML escaping on, and reads
//! and prints without JavaScript. The full table (one row per host:port) is
//! one compact JSON array in a `<script type="application/json">` block that
//! the page's own script pages, filters and sorts; without scripts the page
//! says the full list is in findings.csv and findings.jsonl.
//!
//! Every string from the network or the policy file is text, never markup:
//! handlebars escapes the template's values, the charts escape their own
//! labels ([`esc`]), and the JSON block cannot close its element (`<` is
//! written `\u003c`). A Content-Security-Policy that allows exactly our
//! script and style hashes backs that up.

use std::collections::HashMap;
use std::fmt::Write as _;

use handlebars::Handlebars;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::ReportError;
use super::i18n::Labels;
use super::model::{
    FIX_HOSTS_SHOWN, PortRow, ReportModel, TOP_ROWS, finding_message, severity_rank, status_key,
};
use super::remediation::PAGE_HOSTS;
use crate::model::{FindingStatus, Severity};
use crate::policy::Evaluation;

const INDEX: &str = include_str!("../../report-templates/index.hbs");
const CSS: &str = include_str!("../../report-templates/report.css");
const JS: &str = include_str!("../../report-templates/report.js");
const FIXES: &str = include_str!("../../report-templates/fixes.hbs");

/// How times are shown (report.json keeps RFC 3339).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

/// Up to this many findings, the table data carries each finding's message.
pub const MESSAGES_UP_TO: usize = 5_000;

/// Renders `index.html` for a model. `evaluation`, when given, supplies the
/// finding messages for small audits.
pub fn render(model: &ReportModel, evaluation: Option<&Evaluation>) -> Result<String, ReportError> {
    let (page, table) = render_parts(model, evaluation)?;
    Ok(page.replacen(TABLE_SLOT, &table, 1))
}

/// Stands in the template's data for the table's JSON, which goes into the
/// page only when it is written: at a /16 it is tens of MB, and handlebars
/// copies its data and renders into a string of its own. A control
/// character cannot come from the data (they are stripped or replaced), so
/// the slot is found only where the template put it.
pub(crate) const TABLE_SLOT: &str = "\u{1}portwarden-table-json\u{1}";

/// The page with [`TABLE_SLOT`] where the table's JSON goes, and that JSON.
pub(crate) fn render_parts(
    model: &ReportModel,
    evaluation: Option<&Evaluation>,
) -> Result<(String, String), ReportError> {
    let labels = &model.text;
    let hb = registry("index", INDEX)?;
    let data = context(model, labels)?;
    let page = hb.render("index", &data).map_err(|e| ReportError::Render {
        file: "index.html".into(),
        message: e.to_string(),
    })?;
    Ok((page, table_json(model, labels, evaluation)))
}

/// A handlebars registry that escapes as [`esc`] does: `& < > " '` (every
/// attribute we write is double-quoted), so commands stay readable in the
/// source and do not grow by `&#x3D;` for every `=`; it holds
/// `report-templates/NAME.hbs` (`text`) as `name`.
fn registry(name: &str, text: &str) -> Result<Handlebars<'static>, ReportError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(false);
    hb.register_escape_fn(esc);
    hb.register_template_string(name, text)
        .map_err(|e| ReportError::Template {
            file: format!("report-templates/{name}.hbs"),
            message: e.to_string(),
        })?;
    Ok(hb)
}

/// Where one platform's page is, relative to `index.html`, and the group's
/// anchor on it. Platform ids are checked at load (lower-case letters,
/// digits, '-'), so they are safe file names.
pub fn platform_href(platform: &str, anchor: &str) -> String {
    format!("{PLATFORM_DIR}/{platform}.html#{anchor}")
}

/// The directory, inside a report, of the per-platform fix pages.
pub const PLATFORM_DIR: &str = "fixes";

/// One page per platform: every fix group's commands for that platform,
/// naming every host, most severe group first. Calls `write` with the
/// platform id and the page, one page at a time (at a /16 a page is a few
/// MB; all of them together are tens).
pub fn render_platform_pages(
    model: &ReportModel,
    mut write: impl FnMut(&str, &str) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let labels = &model.text;
    let hb = registry("fixes", FIXES)?;
    // Platforms in first-seen order over the groups.
    let mut platforms: Vec<(&str, &str)> = Vec::new();
    for g in &model.fix_groups {
        for p in &g.fix.platforms {
            if !platforms.iter().any(|(id, _)| *id == p.platform) {
                platforms.push((&p.platform, &p.title));
            }
        }
    }
    let csp = format!(
        "default-src 'none'; style-src {}; script-src 'none'; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(CSS)
    );
    for &(id, title) in &platforms {
        let fixes: Vec<Value> = model
            .fix_groups
            .iter()
            .filter_map(|g| {
                let p = g.fix.platforms.iter().find(|p| p.platform == id)?;
                let more = g.fix.hosts.len().saturating_sub(FIX_HOSTS_SHOWN);
                Some(json!({
                    "key": g.anchor,
                    "title": g.fix.title,
                    "port": g.fix.port,
                    "proto": g.fix.proto,
                    "service": g.fix.service,
                    "severity": g.fix.severity,
                    "severity_label": g.severity_label,
                    "hosts": g.fix.hosts.iter().take(FIX_HOSTS_SHOWN).map(|h| h.to_string()).collect::<Vec<_>>(),
                    "hosts_label": hosts_label(labels, g.fix.hosts.len()),
                    "more": if more > 0 { labels.fmt("ui.and_more_hosts_here", &[("n", &more.to_string())]) } else { String::new() },
                    "panel": to(p),
                }))
            })
            .collect();
        let others: Vec<Value> = platforms
            .iter()
            .filter(|(o, _)| *o != id)
            .map(|(o, t)| json!({"href": format!("{o}.html"), "title": t}))
            .collect();
        let mut data = json!({
            "lang": model.lang.as_str(),
            "t": labels.tree(),
            "platform": title,
            "intro": labels.fmt("ui.platform_page_intro", &[("platform", title)]),
            "fixes": fixes,
            "others": others,
            "tool_version": model.scope.tool_version,
            "started": model.scope.started.format(TIME_FORMAT).to_string(),
        });
        strip_controls(&mut data);
        data["css"] = Value::String(CSS.to_owned());
        data["csp"] = Value::String(csp.clone());
        let page = hb.render("fixes", &data).map_err(|e| ReportError::Render {
            file: format!("{PLATFORM_DIR}/{id}.html"),
            message: e.to_string(),
        })?;
        write(id, &page)?;
    }
    Ok(())
}

/// "1 host", "25 hosts" (one form in Chinese: the file gives the same text).
fn hosts_label(labels: &Labels, n: usize) -> String {
    let key = if n == 1 {
        "ui.hosts_count_one"
    } else {
        "ui.hosts_count"
    };
    labels.fmt(key, &[("n", &n.to_string())])
}

fn csp_hash(text: &str) -> String {
    use base64_lite::encode;
    format!("'sha256-{}'", encode(&Sha256::digest(text.as_bytes())))
}

/// HTML/XML text and attribute escaping for markup we build ourselves.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn context(model: &ReportModel, labels: &Labels) -> Result<Value, ReportError> {
    let total_rows = model.ports.len();
    let top: Vec<Value> = model
        .top_rows(TOP_ROWS)
        .iter()
        .map(|r| row_view(r, model, labels))
        .collect();
    let fixes: Vec<Value> = model
        .fix_groups
        .iter()
        .map(|g| {
            let shown: Vec<String> = g
                .fix
                .hosts
                .iter()
                .take(FIX_HOSTS_SHOWN)
                .map(|h| h.to_string())
                .collect();
            let more = g.fix.hosts.len().saturating_sub(FIX_HOSTS_SHOWN);
            // Inline: the platforms the hosts' groups declare, else the
            // first; every platform's page is a link away.
            let page = g.fix.page_fixes();
            let inline = g.fix.preferred.clamp(1, page.len().max(1)).min(page.len());
            let links: Vec<Value> = g
                .fix
                .platforms
                .iter()
                .map(|p| json!({"href": platform_href(&p.platform, &g.anchor), "title": p.title}))
                .collect();
            let cut = if g.fix.page_is_cut() {
                labels.fmt(
                    "ui.page_hosts_cut",
                    &[
                        ("shown", &PAGE_HOSTS.to_string()),
                        ("n", &g.fix.hosts.len().to_string()),
                    ],
                )
            } else {
                String::new()
            };
            json!({
                "key": g.anchor,
                "id": g.fix.id,
                "title": g.fix.title,
                "about": g.fix.about,
                "port": g.fix.port,
                "proto": g.fix.proto,
                "service": g.fix.service,
                "severity": g.fix.severity,
                "severity_label": g.severity_label,
                "checks": g.checks.iter().map(|c| labels.get(&format!("check.{c}"))).collect::<Vec<_>>(),
                "hosts": shown,
                "hosts_label": hosts_label(labels, g.fix.hosts.len()),
                "more": if more > 0 { labels.fmt("ui.and_more_hosts", &[("n", &more.to_string())]) } else { String::new() },
                "platforms": to(&page[..inline]),
                "links": links,
                "cut": cut,
            })
        })
        .collect();
    let overdue = model.inventory.iter().filter(|r| r.review_overdue).count();
    let allowed = model
        .inventory
        .iter()
        .filter(|r| r.allowed == Some(true))
        .count();
    let not_allowed = model
        .inventory
        .iter()
        .filter(|r| r.allowed == Some(false))
        .count();
    let unmanaged = model
        .inventory
        .iter()
        .filter(|r| r.allowed.is_none())
        .count();
    let mut data = json!({
        "m": {
            "scope": to(&model.scope),
            "summary": to(&model.summary),
            "compliance": to(&model.compliance),
            "exceptions": to(&model.exceptions),
        },
        "top": top,
        "top_hint": labels.fmt("ui.top_hint", &[("n", &top_len(model).to_string()), ("total", &total_rows.to_string())]),
        "fixes": fixes,
        "inventory_counts": labels.fmt("ui.inventory_counts", &[
            ("open", &model.inventory.len().to_string()),
            ("allowed", &allowed.to_string()),
            ("not_allowed", &not_allowed.to_string()),
            ("unmanaged", &unmanaged.to_string()),
            ("overdue", &overdue.to_string()),
        ]),
        "t": labels.tree(),
        "lang": model.lang.as_str(),
        "input_provenance": model.scope.inputs.iter().any(|i| !i.provenance.is_empty()),
    });
    // The import's own times, shown as the report's are (the datetime
    // attribute keeps RFC 3339).
    if let Some(inputs) = data["m"]["scope"]["inputs"].as_array_mut() {
        for (v, i) in inputs.iter_mut().zip(&model.scope.inputs) {
            let p = &i.provenance;
            for (key, t) in [("started_text", p.started), ("finished_text", p.finished)] {
                if let Some(t) = t {
                    v[key] = Value::String(t.format(TIME_FORMAT).to_string());
                }
            }
        }
    }
    strip_controls(&mut data);
    let extra = json!({
        "css": CSS,
        "js": JS,
        "csp": format!(
            "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
            csp_hash(CSS),
            csp_hash(JS)
        ),
        "charts": {
            "frameworks": frameworks_svg(model, labels),
            "severity": severity_svg(model),
            "groups": groups_svg(model, labels),
            "services": services_svg(model),
            "heat": heat_svg(model, labels),
        },
        "table_json": TABLE_SLOT,
        "started": model.scope.started.format(TIME_FORMAT).to_string(),
        "finished": model.scope.finished.format(TIME_FORMAT).to_string(),
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    Ok(data)
}

fn top_len(model: &ReportModel) -> usize {
    model.ports.len().min(TOP_ROWS)
}

/// Serialises a small part of the model for the template.
fn to<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A row of the static table, with its labels.
fn row_view(r: &PortRow, model: &ReportModel, labels: &Labels) -> Value {
    json!({
        "ip": r.ip,
        "hostnames": r.hostnames,
        "port": match (r.port, r.proto) { (Some(p), Some(proto)) => format!("{p}/{proto}"), _ => "-".into() },
        "service": r.service,
        "group": r.group,
        "severity": r.severity,
        "severity_label": labels.get(&format!("severity.{}", r.severity)),
        "failing": r.failing,
        "fix": r.fix,
        "frameworks": frameworks_of(&model.control_sets[r.controls]),
        "checks": r.checks.iter().map(|c| json!({
            "id": c.finding,
            "check": c.check,
            "label": labels.get(&format!("check.{}", c.check)),
            "status": c.status,
            "status_label": labels.get(&status_key(c.status)),
            "severity": c.severity,
        })).collect::<Vec<_>>(),
    })
}

fn frameworks_of(controls: &[String]) -> Vec<String> {
    let mut out: Vec<String> = controls
        .iter()
        .filter_map(|c| c.split_once(':').map(|(p, _)| p.to_string()))
        .collect();
    out.dedup();
    out
}

/// The whole table as one compact JSON document: dictionaries (checks,
/// statuses, groups, control sets, fix keys) and one array per row.
fn table_json(model: &ReportModel, labels: &Labels, evaluation: Option<&Evaluation>) -> String {
    let mut checks: Vec<&str> = Vec::new();
    let mut check_ix: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<&str> = Vec::new();
    let mut group_ix: HashMap<&str, usize> = HashMap::new();
    let fixes: HashMap<&str, usize> = model
        .fix_groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.anchor.as_str(), i))
        .collect();
    let messages: Option<HashMap<&str, String>> = evaluation
        .filter(|e| e.findings.len() <= MESSAGES_UP_TO)
        .map(|e| {
            e.findings
                .iter()
                .map(|f| {
                    let text = finding_message(labels, &model.exceptions, f);
                    (f.id.as_str(), text)
                })
                .collect()
        });
    let statuses = [
        FindingStatus::Fail,
        FindingStatus::Waived,
        FindingStatus::ExpiredWaiver,
    ];
    /// One row, serialised without building a JSON tree.
    #[derive(serde::Serialize)]
    struct Row<'a>(
        std::net::IpAddr,
        Option<String>,
        Option<u16>,
        Option<crate::model::Proto>,
        Option<String>,
        i64,
        u8,
        u8,
        Vec<Chip<'a>>,
        usize,
        i64,
    );
    #[derive(serde::Serialize)]
    struct Chip<'a>(
        usize,
        usize,
        u8,
        &'a str,
        #[serde(skip_serializing_if = "Option::is_none")] Option<String>,
    );
    let mut rows: Vec<Row<'_>> = Vec::with_capacity(model.ports.len());
    for r in &model.ports {
        let g = match &r.group {
            Some(name) => *group_ix.entry(name.as_str()).or_insert_with(|| {
                groups.push(name.as_str());
                groups.len() - 1
            }) as i64,
            None => -1,
        };
        let chips: Vec<Chip<'_>> = r
            .checks
            .iter()
            .map(|c| {
                let ci = *check_ix.entry(c.check.as_str()).or_insert_with(|| {
                    checks.push(c.check.as_str());
                    checks.len() - 1
                });
                let si = statuses.iter().position(|s| *s == c.status).unwrap_or(0);
                let msg = messages
                    .as_ref()
                    .and_then(|m| m.get(c.finding.as_str()))
                    .map(|m| super::display_safe(m));
                Chip(ci, si, severity_rank(c.severity), c.finding.as_str(), msg)
            })
            .collect();
        rows.push(Row(
            r.ip,
            r.hostnames.first().map(|h| super::display_safe(h)),
            r.port,
            r.proto,
            r.service.as_deref().map(super::display_safe),
            g,
            severity_rank(r.severity),
            u8::from(r.failing),
            chips,
            r.controls,
            r.fix
                .as_deref()
                .and_then(|k| fixes.get(k))
                .map(|i| *i as i64)
                .unwrap_or(-1),
        ));
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        ck: Vec<(&'a str, String)>,
        st: Vec<(&'a str, String)>,
        sv: Vec<(&'a str, String)>,
        gr: Vec<String>,
        cs: &'a [Vec<String>],
        fx: Vec<&'a str>,
        fw: Vec<(&'a str, &'a str)>,
        rows: Vec<Row<'a>>,
    }
    let doc = Doc {
        ck: checks
            .iter()
            .map(|c| (*c, labels.get(&format!("check.{c}"))))
            .collect(),
        st: statuses
            .iter()
            .map(|s| (s.as_str(), labels.get(&status_key(*s))))
            .collect(),
        sv: Severity::ALL
            .iter()
            .map(|s| (s.as_str(), labels.get(&format!("severity.{s}"))))
            .collect(),
        gr: groups.iter().map(|g| super::display_safe(g)).collect(),
        cs: &model.control_sets,
        fx: model.fix_groups.iter().map(|g| g.anchor.as_str()).collect(),
        fw: model
            .compliance
            .iter()
            .map(|f| (f.id.as_str(), f.name.as_str()))
            .collect(),
        rows,
    };
    script_safe(&serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into()))
}

/// JSON that cannot end its `<script>` element or open a comment. One
/// pass: the table's JSON is tens of MB at a /16, and a chain of
/// `replace` holds every intermediate copy until the statement ends.
fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

/// Replaces control characters other than newline and tab in every string
/// of the model: escaping makes markup inert, this keeps terminal escapes
/// and stray CRs out of the page too.
fn strip_controls(v: &mut Value) {
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    match v {
        Value::String(s) if s.chars().any(bad) => {
            *s = s
                .chars()
                .map(|c| if bad(c) { '\u{FFFD}' } else { c })
                .collect();
        }
        Value::Array(items) => items.iter_mut().for_each(strip_controls),
        Value::Object(map) => map.values_mut().for_each(strip_controls),
        _ => {}
    }
}

const SEV_CLASS: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// Stacked bars per framework: pass, partial, fail, not assessed. Each bar
/// links to its framework's requirements.
fn frameworks_svg(model: &ReportModel, labels: &Labels) -> String {
    const LEFT: f64 = 250.0;
    const W: f64 = 380.0;
    const ROW: f64 = 34.0;
    let h = ROW * model.compliance.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {h}" width="{}" height="{h}" role="img" aria-label="{}">"#,
        LEFT + W + 20.0,
        LEFT + W + 20.0,
        esc(&labels.get("ui.frameworks_chart"))
    );
    for (i, f) in model.compliance.iter().enumerate() {
        let y = i as f64 * ROW + 4.0;
        let total = (f.passed + f.partial + f.failed + f.not_assessed).max(1) as f64;
        let _ = write!(
            s,
            r##"<a href="#fw-{id}" class="fwbar" data-fw="{id}"><text x="{tx}" y="{ty}" text-anchor="end" class="axis">{name}</text>"##,
            id = esc(&f.id),
            tx = LEFT - 8.0,
            ty = y + 16.0,
            name = esc(&shorten(&f.name, 34)),
        );
        let mut x = LEFT;
        for (n, class, key) in [
            (f.passed, "pass", "req_status.pass"),
            (f.partial, "partial", "ui.partial"),
            (f.failed, "fail", "req_status.fail"),
            (f.not_assessed, "not-assessed", "req_status.not_assessed"),
        ] {
            if n == 0 {
                continue;
            }
            let w = n as f64 / total * W;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="22" class="seg {class}"><title>{}: {n}</title></rect>"#,
                esc(&labels.get(key))
            );
            if w >= 18.0 {
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle" class="seglabel">{n}</text>"#,
                    x + w / 2.0,
                    y + 16.0
                );
            }
            x += w;
        }
        s.push_str("</a>");
    }
    // Legend.
    let ly = ROW * model.compliance.len() as f64 + 12.0;
    let mut lx = LEFT;
    for (class, key) in [
        ("pass", "req_status.pass"),
        ("partial", "ui.partial"),
        ("fail", "req_status.fail"),
        ("not-assessed", "req_status.not_assessed"),
    ] {
        let label = labels.get(key);
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{ly}" width="12" height="12" class="seg {class}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            lx + 16.0,
            ly + 11.0,
            esc(&label)
        );
        lx += 30.0 + 8.0 * label.chars().count() as f64;
    }
    s.push_str("</svg>");
    s
}

/// Failing ports by their highest severity.
fn severity_svg(model: &ReportModel) -> String {
    const LEFT: f64 = 110.0;
    const W: f64 = 360.0;
    const ROW: f64 = 28.0;
    let max = model
        .summary
        .by_severity
        .iter()
        .map(|s| s.count)
        .max()
        .unwrap_or(0)
        .max(1);
    let h = ROW * model.summary.by_severity.len() as f64 + 6.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#,
        w = LEFT + W + 70.0
    );
    for (i, c) in model.summary.by_severity.iter().enumerate() {
        let y = i as f64 * ROW + 4.0;
        let w = if c.count > 0 {
            (c.count as f64 / max as f64 * W).max(2.0)
        } else {
            0.0
        };
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" class="axis">{}</text><rect x="{LEFT}" y="{y}" width="{w:.1}" height="20" rx="3" class="bar sev-{}"><title>{}: {}</title></rect><text x="{:.1}" y="{}" class="count">{}</text>"#,
            LEFT - 10.0,
            y + 15.0,
            esc(&c.label),
            c.severity,
            esc(&c.label),
            c.count,
            LEFT + w + 8.0,
            y + 15.0,
            c.count
        );
    }
    s.push_str("</svg>");
    s
}

/// Failing ports per asset group, stacked by severity; each row links to
/// the table filtered to the group (the segment view).
fn groups_svg(model: &ReportModel, labels: &Labels) -> String {
    const LEFT: f64 = 190.0;
    const W: f64 = 420.0;
    const ROW: f64 = 28.0;
    let groups = &model.charts.groups;
    let max = groups
        .iter()
        .map(|g| g.counts.iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
    let h = ROW * groups.len() as f64 + 6.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}">"#,
        esc(&labels.get("ui.groups_chart")),
        w = LEFT + W + 60.0
    );
    for (i, g) in groups.iter().enumerate() {
        let y = i as f64 * ROW + 4.0;
        let name = g.group.clone().unwrap_or_else(|| labels.get("ui.no_group"));
        let href = match &g.group {
            Some(n) => format!("#grp={}", url_component(n)),
            None => "#grp=".into(),
        };
        let _ = write!(
            s,
            r#"<a href="{}" class="grpbar"><text x="{}" y="{}" text-anchor="end" class="axis">{}</text>"#,
            esc(&href),
            LEFT - 10.0,
            y + 15.0,
            esc(&shorten(&name, 26))
        );
        let mut x = LEFT;
        let total: usize = g.counts.iter().sum();
        for rank in (0..5).rev() {
            let n = g.counts[rank];
            if n == 0 {
                continue;
            }
            let w = n as f64 / max as f64 * W;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="20" class="bar sev-{}"><title>{}: {n}</title></rect>"#,
                SEV_CLASS[rank],
                esc(&labels.get(&format!("severity.{}", SEV_CLASS[rank])))
            );
            x += w;
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" class="count">{total}</text></a>"#,
            x + 8.0,
            y + 15.0
        );
    }
    s.push_str("</svg>");
    s
}

/// The services with the most open ports; the failing part darker.
fn services_svg(model: &ReportModel) -> String {
    const LEFT: f64 = 150.0;
    const W: f64 = 360.0;
    const ROW: f64 = 24.0;
    let services = &model.charts.services;
    let max = services.iter().map(|s| s.open).max().unwrap_or(0).max(1);
    let h = ROW * services.len() as f64 + 6.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#,
        w = LEFT + W + 90.0
    );
    for (i, c) in services.iter().enumerate() {
        let y = i as f64 * ROW + 4.0;
        let w = (c.open as f64 / max as f64 * W).max(2.0);
        let wf = c.failing.min(c.open) as f64 / max as f64 * W;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" class="axis">{}</text><rect x="{LEFT}" y="{y}" width="{w:.1}" height="16" class="bar svc"/><rect x="{LEFT}" y="{y}" width="{wf:.1}" height="16" class="bar svc-fail"/><text x="{:.1}" y="{}" class="count">{} / {}</text>"#,
            LEFT - 10.0,
            y + 13.0,
            esc(&shorten(&c.service, 20)),
            LEFT + w + 8.0,
            y + 13.0,
            c.failing,
            c.open
        );
    }
    s.push_str("</svg>");
    s
}

/// Hosts × severity: a cell's shade grows with its count. Each host links
/// to the table filtered to it.
fn heat_svg(model: &ReportModel, labels: &Labels) -> String {
    const LEFT: f64 = 170.0;
    const CELL: f64 = 64.0;
    const ROW: f64 = 20.0;
    let heat = &model.charts.heat;
    let max = heat
        .iter()
        .flat_map(|h| h.counts.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let h = ROW * heat.len() as f64 + 30.0;
    let w = LEFT + CELL * 5.0 + 10.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart heat" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}">"#,
        esc(&labels.get("ui.heat_chart"))
    );
    for (col, rank) in (0..5).rev().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="14" text-anchor="middle" class="axis">{}</text>"#,
            LEFT + CELL * col as f64 + CELL / 2.0,
            esc(&labels.get(&format!("severity.{}", SEV_CLASS[rank])))
        );
    }
    for (i, row) in heat.iter().enumerate() {
        let y = 22.0 + i as f64 * ROW;
        let ip = row.ip.to_string();
        let _ = write!(
            s,
            r#"<a href="{}"><text x="{}" y="{}" text-anchor="end" class="axis mono">{}</text></a>"#,
            esc(&format!("#host={ip}")),
            LEFT - 8.0,
            y + 14.0,
            esc(&ip)
        );
        for (col, rank) in (0..5).rev().enumerate() {
            let n = row.counts[rank];
            // Level 0–5: empty, then five shades of the severity's colour.
            let level = if n == 0 {
                0
            } else {
                1 + (n * 4).div_ceil(max).min(4)
            };
            let x = LEFT + CELL * col as f64;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y}" width="{}" height="{}" class="cell sev-{} l{level}"><title>{}: {n}</title></rect>"#,
                CELL - 2.0,
                ROW - 2.0,
                SEV_CLASS[rank],
                esc(&ip)
            );
            if n > 0 {
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle" class="celltext l{level}">{n}</text>"#,
                    x + CELL / 2.0 - 1.0,
                    y + 13.0
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// `s` cut to `max` terminal columns (CJK characters take two), with an
/// ellipsis when cut: chart labels must fit left of their bars.
fn shorten(s: &str, max: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    if unicode_width::UnicodeWidthStr::width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max.saturating_sub(1) {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Percent-encodes everything but unreserved characters, for `#grp=` links.
fn url_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding), for the CSP hashes. Small
/// enough to keep here rather than add a dependency.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    #[test]
    fn encodes_rfc4648_vectors() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::i18n::Lang;
    use crate::report::model::fixture::{self, CMD, FORMULA, IMG, SCRIPT};

    fn page(lang: Lang) -> (String, ReportModel) {
        let (m, ev, _) = fixture::parts(lang);
        (render(&m, Some(&ev)).unwrap(), m)
    }

    /// The JSON of the table block, parsed.
    fn table(html: &str) -> Value {
        let start = html
            .find("<script type=\"application/json\" id=\"table-data\">")
            .unwrap();
        let body = &html[start..];
        let body = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn hostile_text_is_escaped_and_the_page_is_self_contained() {
        let (html, _) = page(Lang::En);
        // Our script and our data block, and no other.
        assert_eq!(html.matches("<script").count(), 2);
        assert!(!html.contains(SCRIPT));
        assert!(!html.contains("<img"));
        // The policy name with markup in it is text: its quote cannot end
        // an attribute nor its `<` open an element.
        assert!(html.contains(&esc(IMG)));
        assert_eq!(
            html.matches("onerror=alert").count(),
            html.matches(&esc(IMG)).count()
        );
        assert!(!html.contains('\x1b'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains(&esc(CMD)));
        // The data block carries the hostile service name, unable to close its element.
        assert!(html.contains("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"));
        let t = table(&html);
        assert!(t["rows"].as_array().unwrap().iter().any(|r| r[4] == SCRIPT));
        assert!(!html.contains("src=\"http"));
        assert!(!html.contains("href=\"http"));
        assert!(!html.contains("<link"));
        assert!(html.contains("default-src &#39;none&#39;"));
        let _ = FORMULA;
    }

    #[test]
    fn control_characters_never_reach_the_page() {
        let (mut m, ev, _) = fixture::parts(Lang::En);
        m.ports[0].hostnames = vec!["h\x07\x00".into()];
        m.exceptions[0].reason = "a\x1b[2J\rb\u{9b}c".into();
        let html = render(&m, Some(&ev)).unwrap();
        assert!(html.contains("a\u{FFFD}[2J\u{FFFD}b\u{FFFD}c"));
        assert!(html.contains("h\u{FFFD}\u{FFFD}"));
        assert!(
            !html
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
        // Commands keep their lines.
        assert!(html.contains(&format!(
            "{}\n",
            esc(m.fix_groups[0].fix.platforms[0].commands.lines().next().unwrap())
        )));
    }

    #[test]
    fn provenance_from_a_hostile_file_is_escaped_and_shown() {
        let nmap = "<nmaprun scanner=\"nmap\" version=\"7.94\" start=\"1764000000\" \
            args=\"nmap &lt;script&gt;alert(1)&lt;/script&gt; \x1b[2J -p 22\">\
            <scaninfo type=\"syn\" protocol=\"tcp\" services=\"22,&lt;b&gt;\"/>\
            <host><address addr=\"198.18.0.5\" addrtype=\"ipv4\"/><ports>\
            <port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\"/></port>\
            </ports></host><runstats><finished time=\"1764000009\"/></runstats></nmaprun>";
        let run = crate::import::nmap::parse(nmap, "hostile.xml").unwrap();
        for lang in [Lang::En, Lang::ZhCn] {
            let (mut m, ev, _) = fixture::parts(lang);
            m.scope.inputs = vec![crate::report::InputFile {
                path: "hostile.xml".into(),
                sha256: "00".repeat(32),
                kind: "nmap-xml".into(),
                provenance: run.provenance.clone(),
            }];
            let html = render(&m, Some(&ev)).unwrap();
            let labels = Labels::embedded(lang).unwrap();
            assert!(html.contains(&format!("{}: nmap 7.94", labels.get("ui.input_scanner"))));
            assert!(
                html.contains(
                    "<code>nmap &lt;script&gt;alert(1)&lt;/script&gt; \u{FFFD}[2J -p 22</code>"
                ),
                "{html}"
            );
            assert!(html.contains("(tcp, syn): <code>22,&lt;b&gt;</code>"));
            assert!(html.contains(
                "<time datetime=\"2025-11-24T16:00:00Z\">2025-11-24 16:00:00 UTC</time> – \
                 <time datetime=\"2025-11-24T16:00:09Z\">2025-11-24 16:00:09 UTC</time>"
            ));
            assert!(!html.contains("<script>alert"));
            assert!(!html.contains('\x1b'));
            // The live scan's interface is named beside its address.
            assert!(html.contains("198.18.0.1 (eth0)"));
        }
    }

    #[test]
    fn csp_allows_exactly_our_script_and_style() {
        let (html, _) = page(Lang::En);
        assert!(html.contains(&format!("script-src {}", esc(&csp_hash(JS)))));
        assert!(html.contains(&format!("style-src {}", esc(&csp_hash(CSS)))));
        assert!(html.contains(&format!("<script>{JS}</script>")));
        assert!(html.contains(&format!("<style>{CSS}</style>")));
    }

    #[test]
    fn page_has_every_section_charts_links_and_one_row_per_port() {
        let (html, m) = page(Lang::En);
        for id in [
            "summary",
            "compliance",
            "findings",
            "remediation",
            "exceptions",
            "inventory",
            "scope",
        ] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        // Summary first.
        assert!(html.find("<section id=\"summary\">") < html.find("<section id=\"scope\">"));
        // Five inline charts: frameworks, severity, groups, services, heat map.
        assert_eq!(html.matches("<svg class=\"chart").count(), 5);
        assert!(html.contains("<a href=\"#fw-pci-dss-4.0\" class=\"fwbar\""));
        // Requirement rows: counts and a deep link, no id lists.
        assert!(html.contains("href=\"#req=pci-dss-4.0:1.2.5\""));
        assert!(!html.contains("class=\"fid\""));
        // The table data: one row per host:port, each check a chip.
        let t = table(&html);
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), m.ports.len());
        let chips: usize = rows.iter().map(|r| r[8].as_array().unwrap().len()).sum();
        assert_eq!(chips, m.summary.findings);
        // Failing ports link to their fix group, which lists the host.
        let fx = &m.fix_groups[0];
        assert!(html.contains(&format!("<article class=\"fix\" id=\"{}\">", fx.anchor)));
        assert!(html.contains(&format!("href=\"#fix={}\"", fx.anchor)));
        assert!(html.contains(&format!("<code>{}</code>", fx.fix.hosts[0])));
        assert_eq!(fx.fix.hosts.len(), 1);
        assert!(html.contains(" · 1 host</h3>") && !html.contains("1 hosts"));
        assert!(rows.iter().any(|r| r[10] == 0));
        // Static top table for readers without scripts, and the pointer to the full lists.
        assert_eq!(
            html.matches("<tr class=\"failing\">").count()
                + html.matches("<tr class=\"waived\">").count(),
            m.ports.len().min(TOP_ROWS)
        );
        assert!(html.contains("findings.csv and findings.jsonl"));
        // Inline, the platforms the hosts' groups declare (else the first),
        // as tabs that work without JS; every platform a link to its page.
        let inline = |g: &super::super::model::FixGroup| g.fix.preferred.max(1);
        assert_eq!(
            html.matches(&format!("type=\"radio\" name=\"{}\"", fx.anchor))
                .count(),
            inline(fx)
        );
        assert!(html.contains(&format!("id=\"{}-0\" checked", fx.anchor)));
        for p in &fx.fix.platforms {
            assert!(html.contains(&format!(
                "<a href=\"fixes/{}.html#{}\">{}</a>",
                p.platform,
                fx.anchor,
                esc(&p.title)
            )));
        }
        // Every inline panel has its undo beside the commands.
        let panels: usize = m.fix_groups.iter().map(inline).sum();
        assert_eq!(html.matches("<h4>Undo</h4>").count(), panels);
        assert!(html.contains("<tr class=\"expired\">"));
        assert!(html.contains("<h2>Compliance</h2>"));
    }

    #[test]
    fn one_page_per_platform_with_every_group_full_commands_and_no_script() {
        let (m, _, _) = fixture::parts(Lang::En);
        let mut pages = Vec::new();
        render_platform_pages(&m, |id, page| {
            pages.push((id.to_owned(), page.to_owned()));
            Ok(())
        })
        .unwrap();
        let mut ids: Vec<&str> = m
            .fix_groups
            .iter()
            .flat_map(|g| g.fix.platforms.iter().map(|p| p.platform.as_str()))
            .collect();
        ids.sort();
        ids.dedup();
        let mut got: Vec<&str> = pages.iter().map(|(id, _)| id.as_str()).collect();
        got.sort();
        assert_eq!(got, ids);
        for (id, page) in &pages {
            assert!(!page.contains("<script"), "{id}");
            assert!(page.contains("script-src &#39;none&#39;"), "{id}");
            assert!(page.contains("<a href=\"../index.html#remediation\">"));
            for g in &m.fix_groups {
                let Some(p) = g.fix.platforms.iter().find(|p| &p.platform == id) else {
                    assert!(!page.contains(&format!("id=\"{}\"", g.anchor)));
                    continue;
                };
                assert!(page.contains(&format!("<article class=\"fix\" id=\"{}\">", g.anchor)));
                assert!(page.contains(&format!("<a href=\"../index.html#{}\">", g.anchor)));
                assert!(page.contains(&esc(&p.commands)), "{id}");
                assert!(page.contains(&esc(&p.undo)), "{id}");
            }
        }
    }

    #[test]
    fn what_the_scan_could_not_decide_is_said_in_the_scope() {
        let (m, ev, _) = fixture::parts(Lang::En);
        assert!(m.scope.gaps.is_empty());
        assert!(!render(&m, Some(&ev)).unwrap().contains("Not decided"));
        for lang in [Lang::En, Lang::ZhCn] {
            let (m, ev, _) = fixture::parts_with(lang, |f| {
                f.local_errors = 2;
                f.udp_undecided = 37;
            });
            assert_eq!((m.scope.local_errors, m.scope.udp_undecided), (2, 37));
            assert_eq!(m.scope.gaps.len(), 2);
            let html = render(&m, Some(&ev)).unwrap();
            let want = match lang {
                Lang::En => ["2 pairs were never probed", "37 UDP pairs are undecided"],
                Lang::ZhCn => ["2 个端口从未探测", "37 个 UDP 端口未能判定"],
            };
            for w in want {
                assert!(html.contains(w), "{w}");
            }
        }
    }

    #[test]
    fn zh_cn_page_is_in_chinese() {
        let (html, _) = page(Lang::ZhCn);
        assert!(html.contains("<html lang=\"zh-CN\">"));
        assert!(html.contains("<h2>合规评估</h2>"));
        assert!(html.contains("<h2>整改措施</h2>"));
        assert!(html.contains("安全区域边界 / 访问控制"));
        assert!(html.contains(">已过期<"));
        assert!(!html.contains("<h2>Findings</h2>"));
        let t = table(&html);
        assert!(t["st"][0] == json!(["fail", "不符合"]));
    }

    #[test]
    fn chart_labels_are_cut_by_width() {
        assert_eq!(shorten("PCI DSS v4.0", 34), "PCI DSS v4.0");
        let zh = shorten("网络安全等级保护2.0 第三级 (GB/T 22239-2019)", 34);
        assert!(
            unicode_width::UnicodeWidthStr::width(zh.as_str()) <= 34,
            "{zh}"
        );
        assert!(zh.starts_with("网络安全等级保护") && zh.ends_with('…'));
    }

    #[test]
    fn svg_text_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"\x1b"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;\u{FFFD}"
        );
        assert_eq!(url_component("cde zone/1"), "cde%20zone%2F1");
    }
}
