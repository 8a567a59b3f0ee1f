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

use handlebars::Handlebars;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::i18n::Labels;
use super::model::{
    FIX_HOSTS_SHOWN, PortRow, ReportModel, TOP_ROWS, finding_message, severity_rank, status_key,
};
use super::remediation::PAGE_HOSTS;
use super::{ReportError, charts};
use crate::model::{FindingStatus, Severity};
use crate::policy::Evaluation;

const INDEX: &str = include_str!("../../report-templates/index.hbs");
const CSS: &str = include_str!("../../report-templates/report.css");
const JS: &str = include_str!("../../report-templates/report.js");
const FIXES: &str = include_str!("../../report-templates/fixes.hbs");
/// Partials of the page (and of the print layout).
pub(crate) const PARTIALS: [(&str, &str); 3] = [
    ("limits", include_str!("../../report-templates/limits.hbs")),
    ("live", include_str!("../../report-templates/live.hbs")),
    ("req", include_str!("../../report-templates/req.hbs")),
];

/// How times are shown (report.json keeps RFC 3339).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

/// Up to this many findings, the table data carries each finding's message.
pub const MESSAGES_UP_TO: usize = 5_000;

/// Renders `index.html` for a model. `evaluation`, when given, supplies the
/// finding messages for small audits. The table holds the rows that fit
/// in [`TABLE_BYTES`]; the findings pages are written only by
/// [`render_parts`] with a folder.
#[cfg(test)]
pub fn render(model: &ReportModel, evaluation: Option<&Evaluation>) -> Result<String, ReportError> {
    let (page, table) = render_parts(model, evaluation, None, TABLE_BYTES)?;
    Ok(page.replacen(TABLE_SLOT, &table, 1))
}

/// Stands in the template's data for the table's JSON, which goes into the
/// page only when it is written: at a /16 it is tens of MB, and handlebars
/// copies its data and renders into a string of its own. A control
/// character cannot come from the data (they are stripped or replaced), so
/// the slot is found only where the template put it.
pub(crate) const TABLE_SLOT: &str = "\u{1}portwarden-table-json\u{1}";

/// The page with [`TABLE_SLOT`] where the table's JSON goes, and that JSON.
/// With `dir`, when the rows do not all fit in the page, every row is
/// also written to the findings pages under `dir` ([`pages`]), which the
/// page links. `budget`: the bytes of table JSON a page holds
/// ([`TABLE_BYTES`]).
pub(crate) fn render_parts(
    model: &ReportModel,
    evaluation: Option<&Evaluation>,
    dir: Option<&std::path::Path>,
    budget: usize,
) -> Result<(String, String), ReportError> {
    let labels = &model.text;
    let rows: Vec<&PortRow> = model.ports.iter().collect();
    let (table, shown) = table_json(model, evaluation, &rows, "", budget);
    drop(rows);
    let hb = registry("index", INDEX)?;
    let mut data = context(model, labels)?;
    if let Some(dir) = dir.filter(|_| shown < model.ports.len()) {
        let written = pages::write_pages_into(dir, model, evaluation, budget)?;
        data["finding_pages"] = pages::index_view(model, &written, shown);
    }
    let page = hb.render("index", &data).map_err(|e| ReportError::Render {
        file: "index.html".into(),
        message: e.to_string(),
    })?;
    Ok((page, table))
}

/// A handlebars registry that escapes as [`esc`] does: `& < > " '` (every
/// attribute we write is double-quoted), so commands stay readable in the
/// source and do not grow by `&#x3D;` for every `=`; it holds
/// `report-templates/NAME.hbs` (`text`) as `name`.
pub(crate) fn registry(name: &str, text: &str) -> Result<Handlebars<'static>, ReportError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(false);
    hb.register_escape_fn(esc);
    hb.register_template_string(name, text)
        .map_err(|e| ReportError::Template {
            file: format!("report-templates/{name}.hbs"),
            message: e.to_string(),
        })?;
    for (partial, text) in PARTIALS {
        hb.register_partial(partial, text)
            .map_err(|e| ReportError::Template {
                file: format!("report-templates/{partial}.hbs"),
                message: e.to_string(),
            })?;
    }
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
/// naming its first [`PAGE_HOSTS`] hosts as index.html does (the full
/// texts are in fixes.jsonl, once), most severe group first. Calls `write` with the
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
                // Cut to PAGE_HOSTS hosts like the cards: the full texts
                // are written once, in fixes.jsonl (`portwarden fix`).
                let p = g.fix.page_fixes().iter().find(|p| p.platform == id)?;
                let more = g.fix.hosts.len().saturating_sub(FIX_HOSTS_SHOWN);
                let cut = g.fix.page_is_cut().then(|| {
                    labels.fmt(
                        "ui.page_hosts_cut",
                        &[
                            ("shown", &PAGE_HOSTS.to_string()),
                            ("n", &g.fix.hosts.len().to_string()),
                        ],
                    )
                });
                Some(json!({
                    "key": g.anchor,
                    "name": g.name,
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
                    "cut": cut,
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

pub(crate) fn csp_hash(text: &str) -> String {
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

pub(crate) fn context(model: &ReportModel, labels: &Labels) -> Result<Value, ReportError> {
    let total_rows = model.ports.len();
    let top: Vec<Value> = model
        .top_rows(TOP_ROWS)
        .iter()
        .map(|r| row_view(r, model, labels))
        .collect();
    let fixes: Vec<Value> = model
        .fix_groups
        .iter()
        .map(|g| fix_card(g, labels))
        .collect();
    let by_anchor: HashMap<&str, &super::model::FixGroup> = model
        .fix_groups
        .iter()
        .map(|g| (g.anchor.as_str(), g))
        .collect();
    let fix_first: Vec<Value> = model
        .first
        .fix_first
        .iter()
        .filter_map(|a| by_anchor.get(a.as_str()))
        .map(|g| {
            json!({
                "key": g.anchor,
                "name": g.name,
                "severity": g.fix.severity,
                "severity_label": g.severity_label,
                "internet": g.internet,
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
        "first": to(&model.first),
        "fix_first": fix_first,
        "limits": to(&model.scope.limits),
        "limits_view": limits_view(model, labels),
        "gate_text": labels.fmt("first.gate_tile", &[
            ("gate", &labels.get("label.gate")),
            ("severity", &model.scope.fail_on_label),
            ("state", &labels.get(if model.summary.gate_tripped { "label.gate_tripped" } else { "label.gate_ok" })),
        ]),
        "scope_view": {
            // The app's English notes for "no policy file" and "embedded
            // rules", in the report's language.
            "policy": if model.scope.policy.sha256.is_none() {
                labels.get("first.policy_none")
            } else {
                model.scope.policy.file.clone()
            },
            "rules": if model.scope.rules.version == format!("embedded (portwarden {})", model.scope.tool_version) {
                labels.fmt("first.rules_embedded", &[("version", &model.scope.tool_version)])
            } else {
                model.scope.rules.version.clone()
            },
        },
        "frameworks": frameworks_view(model),
        "assets_view": model.assets_view.clone(),
        "fix_names": model.fix_groups.iter().map(|g| (g.anchor.clone(), g.name.clone())).collect::<HashMap<_, _>>(),
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
            "frameworks": charts::frameworks_svg(model, labels),
            "severity": charts::severity_svg(model),
            "groups": charts::groups_svg(model, labels),
            "services": charts::services_svg(model),
            "heat": charts::heat_svg(model, labels),
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

/// One fix card: named in words, with its asset groups, exposure, policy
/// lines, and the platforms it opens on inline (every platform's page is a
/// link away).
fn fix_card(g: &super::model::FixGroup, labels: &Labels) -> Value {
    let shown: Vec<String> = g
        .fix
        .hosts
        .iter()
        .take(FIX_HOSTS_SHOWN)
        .map(|h| h.to_string())
        .collect();
    let more = g.fix.hosts.len().saturating_sub(FIX_HOSTS_SHOWN);
    let page = g.fix.page_fixes();
    let inline: Vec<&super::remediation::PlatformFix> =
        g.inline.iter().filter_map(|&i| page.get(i)).collect();
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
        "name": g.name,
        "title": g.fix.title,
        "about": g.fix.about,
        "port": g.fix.port,
        "proto": g.fix.proto,
        "service": g.fix.service,
        "severity": g.fix.severity,
        "severity_label": g.severity_label,
        "groups": g.groups,
        "internet": g.internet,
        "policy_lines": g.policy_lines,
        "platform_basis": g.platform_basis,
        "checks": g.checks.iter().map(|c| labels.get(&format!("check.{c}"))).collect::<Vec<_>>(),
        "hosts": shown,
        "hosts_total": g.fix.hosts.len(),
        "hosts_label": hosts_label(labels, g.fix.hosts.len()),
        "more": if more > 0 { labels.fmt("ui.and_more_hosts", &[("n", &more.to_string())]) } else { String::new() },
        "platforms": to(&inline),
        "links": links,
        "cut": cut,
    })
}

fn top_len(model: &ReportModel) -> usize {
    model.ports.len().min(TOP_ROWS)
}

/// Serialises a small part of the model for the template.
fn to<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The scope box's texts that need the labels.
fn limits_view(model: &ReportModel, labels: &Labels) -> Value {
    let l = &model.scope.limits;
    let protocols: Vec<String> = l
        .protocols
        .iter()
        .map(|p| {
            let proto = p.proto.to_string().to_uppercase();
            if p.probed {
                labels.fmt(
                    "limits.probed",
                    &[("proto", &proto), ("n", &p.ports.to_string())],
                )
            } else {
                labels.fmt(
                    "limits.not_probed",
                    &[
                        ("proto", &proto),
                        ("why", p.why_text.as_deref().unwrap_or("")),
                    ],
                )
            }
        })
        .collect();
    json!({
        "scope_more": labels.fmt("limits.scope_more", &[("n", &l.scope_more.to_string())]),
        "scope_hosts": labels.fmt("first.scope_hosts", &[("n", &l.scope_hosts.to_string())]),
        "reconstructed": labels.fmt("limits.scope_reconstructed", &[("n", &l.addresses_seen.to_string())]),
        "protocols": protocols,
    })
}

/// Each framework with its requirements split: the failing and partial
/// ones (with their evidence) shown, the rest folded away.
fn frameworks_view(model: &ReportModel) -> Vec<Value> {
    model
        .compliance
        .iter()
        .map(|f| {
            let (open, folded): (Vec<_>, Vec<_>) = f
                .requirements
                .iter()
                .partition(|r| !matches!(r.status.as_str(), "pass" | "not-assessed"));
            let labels = &model.text;
            let rows = |list: &[&super::model::RequirementRow]| -> Value {
                Value::Array(
                    list.iter()
                        .map(|r| {
                            let mut v = to(r);
                            v["evidence_more_label"] = Value::String(labels.fmt(
                                "first.evidence_more",
                                &[("n", &r.evidence_more.to_string())],
                            ));
                            v
                        })
                        .collect(),
                )
            };
            let mut v = to(f);
            v["open"] = rows(&open);
            v["folded"] = rows(&folded);
            v["folded_label"] =
                Value::String(labels.fmt("first.folded", &[("n", &folded.len().to_string())]));
            v
        })
        .collect()
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
        "fix_name": r.fix.as_ref().and_then(|k| model.fix_groups.iter().find(|g| &g.anchor == k)).map(|g| g.name.clone()),
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

/// Bytes of table JSON one page holds (index.html or a findings page):
/// with the rest of the page, which is bounded on its own, index.html
/// stays under 20 MB at any scale. Rows beyond go to the findings pages
/// ([`pages`]).
pub const TABLE_BYTES: usize = 12_000_000;

/// The table of `rows` as one compact JSON document: dictionaries (checks,
/// statuses, groups, control sets, fix keys) and one array per row. Takes
/// rows in order while their JSON fits in `budget` bytes (at least one);
/// returns the document and how many rows it took. `base` is where fix
/// anchors are (`""`: this page; `../index.html` from a findings page).
pub(crate) fn table_json(
    model: &ReportModel,
    evaluation: Option<&Evaluation>,
    rows: &[&PortRow],
    base: &str,
    budget: usize,
) -> (String, usize) {
    let labels = &model.text;
    let mut dict = TableDict::default();
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
    let mut body = String::new();
    let mut taken = 0;
    for r in rows {
        let json = dict.row_json(r, &fixes, messages.as_ref());
        if taken > 0 && body.len() + json.len() + 1 > budget {
            break;
        }
        if taken > 0 {
            body.push(',');
        }
        body.push_str(&json);
        taken += 1;
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        ck: Vec<(&'a str, String)>,
        st: Vec<(&'a str, String)>,
        sv: Vec<(&'a str, String)>,
        gr: Vec<String>,
        cs: &'a [Vec<String>],
        fx: Vec<&'a str>,
        #[serde(rename = "fn")]
        fn_: Vec<String>,
        fw: Vec<(&'a str, &'a str)>,
        #[serde(skip_serializing_if = "str::is_empty")]
        base: &'a str,
        rows: [(); 0],
    }
    let doc = Doc {
        ck: dict
            .checks
            .iter()
            .map(|c| (c.as_str(), labels.get(&format!("check.{c}"))))
            .collect(),
        st: STATUSES
            .iter()
            .map(|s| (s.as_str(), labels.get(&status_key(*s))))
            .collect(),
        sv: Severity::ALL
            .iter()
            .map(|s| (s.as_str(), labels.get(&format!("severity.{s}"))))
            .collect(),
        gr: dict.groups.iter().map(|g| super::display_safe(g)).collect(),
        cs: &model.control_sets,
        fx: model.fix_groups.iter().map(|g| g.anchor.as_str()).collect(),
        fn_: model
            .fix_groups
            .iter()
            .map(|g| super::display_safe(&g.name))
            .collect(),
        fw: model
            .compliance
            .iter()
            .map(|f| (f.id.as_str(), f.name.as_str()))
            .collect(),
        base,
        rows: [],
    };
    let head = serde_json::to_string(&doc).unwrap_or_else(|_| "{\"rows\":[]}".into());
    // `rows` is the last field: its `[]}` takes the rows written above.
    let head = head.strip_suffix("[]}").unwrap_or(&head);
    let mut out = String::with_capacity(head.len() + body.len() + 2);
    out.push_str(head);
    out.push('[');
    out.push_str(&body);
    out.push_str("]}");
    (script_safe(&out), taken)
}

/// The statuses a chip indexes into (`st`).
const STATUSES: [FindingStatus; 3] = [
    FindingStatus::Fail,
    FindingStatus::Waived,
    FindingStatus::ExpiredWaiver,
];

/// The check and group dictionaries of a table, filled as rows are written.
#[derive(Default)]
struct TableDict {
    checks: Vec<String>,
    check_ix: HashMap<String, usize>,
    groups: Vec<String>,
    group_ix: HashMap<String, usize>,
}

impl TableDict {
    fn check(&mut self, c: &str) -> usize {
        if let Some(i) = self.check_ix.get(c) {
            return *i;
        }
        self.checks.push(c.to_string());
        self.check_ix.insert(c.to_string(), self.checks.len() - 1);
        self.checks.len() - 1
    }

    fn group(&mut self, g: &str) -> usize {
        if let Some(i) = self.group_ix.get(g) {
            return *i;
        }
        self.groups.push(g.to_string());
        self.group_ix.insert(g.to_string(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// One row, serialised without building a JSON tree.
    fn row_json(
        &mut self,
        r: &PortRow,
        fixes: &HashMap<&str, usize>,
        messages: Option<&HashMap<&str, String>>,
    ) -> String {
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
        let g = r
            .group
            .as_deref()
            .map_or(-1, |name| self.group(name) as i64);
        let chips: Vec<Chip<'_>> = r
            .checks
            .iter()
            .map(|c| {
                let ci = self.check(&c.check);
                let si = STATUSES.iter().position(|s| *s == c.status).unwrap_or(0);
                let msg = messages
                    .and_then(|m| m.get(c.finding.as_str()))
                    .map(|m| super::display_safe(m));
                Chip(ci, si, severity_rank(c.severity), c.finding.as_str(), msg)
            })
            .collect();
        let row = Row(
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
        );
        serde_json::to_string(&row).unwrap_or_else(|_| "null".into())
    }
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

pub mod pages;

#[cfg(test)]
mod tests;
