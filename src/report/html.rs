//! Report layer: `index.html`, one self-contained page (inline CSS, JS and
//! SVG, no network fetches) that reads well with JavaScript off and gains
//! filtering, sorting and copy buttons with it on.
//!
//! The page is a handlebars template (`report-templates/index.hbs`) rendered
//! with HTML escaping on, so every string from the network or the policy
//! file is text, never markup. Only our own embedded CSS and JS are inserted
//! raw; a Content-Security-Policy that allows exactly their hashes and
//! nothing else backs that up: an injected script or a fetch would not run.

use std::collections::BTreeSet;

use handlebars::Handlebars;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::ReportError;
use super::i18n::Labels;
use super::model::ReportModel;

const INDEX: &str = include_str!("../../report-templates/index.hbs");
const CSS: &str = include_str!("../../report-templates/report.css");
const JS: &str = include_str!("../../report-templates/report.js");

/// How times are shown (report.json keeps RFC 3339).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

/// Renders `index.html` for a model.
pub fn render(model: &ReportModel) -> Result<String, ReportError> {
    let labels = Labels::embedded(model.lang)?;
    let mut hb = Handlebars::new();
    hb.set_strict_mode(false);
    hb.register_template_string("index", INDEX)
        .map_err(|e| ReportError::Template {
            file: "report-templates/index.hbs".into(),
            message: e.to_string(),
        })?;
    let data = context(model, &labels)?;
    hb.render("index", &data).map_err(|e| ReportError::Render {
        file: "index.html".into(),
        message: e.to_string(),
    })
}

fn csp_hash(text: &str) -> String {
    use base64_lite::encode;
    format!("'sha256-{}'", encode(&Sha256::digest(text.as_bytes())))
}

fn context(model: &ReportModel, labels: &Labels) -> Result<Value, ReportError> {
    let hosts: BTreeSet<String> = model.findings.iter().map(|f| f.ip.to_string()).collect();
    let frameworks: Vec<Value> = model
        .compliance
        .iter()
        .map(|f| json!({"id": f.id, "name": f.name}))
        .collect();
    let mut m = serde_json::to_value(model).map_err(ReportError::Json)?;
    strip_controls(&mut m);
    Ok(json!({
        "m": m,
        "t": labels.tree(),
        "lang": model.lang.as_str(),
        "css": CSS,
        "js": JS,
        "csp": format!(
            "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
            csp_hash(CSS),
            csp_hash(JS)
        ),
        "chart": chart(model),
        "filter_hosts": hosts,
        "filter_frameworks": frameworks,
        "finding_total": model.findings.len(),
        "started": model.scope.started.format(TIME_FORMAT).to_string(),
        "finished": model.scope.finished.format(TIME_FORMAT).to_string(),
    }))
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

/// Geometry of the bar chart of failing findings by severity.
fn chart(model: &ReportModel) -> Value {
    const BAR_AREA: f64 = 360.0;
    const ROW: f64 = 30.0;
    const LEFT: f64 = 110.0;
    let max = model
        .summary
        .by_severity
        .iter()
        .map(|s| s.count)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars: Vec<Value> = model
        .summary
        .by_severity
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let w = (s.count as f64 / max as f64 * BAR_AREA).round();
            let y = i as f64 * ROW + 6.0;
            json!({
                "severity": s.severity,
                "label": s.label,
                "count": s.count,
                "x": LEFT,
                "y": y,
                "w": if s.count > 0 { w.max(2.0) } else { 0.0 },
                "h": ROW - 10.0,
                "ty": y + 15.0,
                "cx": LEFT + w + 8.0,
            })
        })
        .collect();
    json!({
        "width": LEFT + BAR_AREA + 60.0,
        "height": ROW * model.summary.by_severity.len() as f64 + 6.0,
        "bars": bars,
    })
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
    use crate::report::model::fixture::{self, CMD, FORMULA, SCRIPT};

    #[test]
    fn hostile_text_is_escaped_and_the_page_is_self_contained() {
        let html = render(&fixture::model(Lang::En)).unwrap();
        // Our one script element, and no other.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(!html.contains(SCRIPT));
        assert!(!html.contains("<img"));
        assert!(!html.contains("onerror=alert"));
        assert!(!html.contains('\x1b'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&gt;&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;"));
        assert!(html.contains(&FORMULA.replace('"', "&quot;").replace('=', "&#x3D;")));
        assert!(html.contains(&CMD.replace('\'', "&#x27;")));
        // No network: no external URL in any src/href, nothing fetched.
        assert!(!html.contains("src=\"http"));
        assert!(!html.contains("href=\"http"));
        assert!(!html.contains("<link"));
        assert!(html.contains("default-src &#x27;none&#x27;"));
    }

    #[test]
    fn control_characters_never_reach_the_page() {
        let mut m = fixture::model(Lang::En);
        m.findings[0].message = "a\x1b[2J\rb\u{9b}c".into();
        m.hosts[0].hostnames = vec!["h\x07\x00".into()];
        let html = render(&m).unwrap();
        assert!(html.contains("a\u{FFFD}[2J\u{FFFD}b\u{FFFD}c"));
        assert!(html.contains("h\u{FFFD}\u{FFFD}"));
        assert!(
            !html
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
        // Commands keep their lines.
        assert!(html.contains(
            &format!("{}\n", m.remediation[0].fix.platforms[0].commands.lines().next().unwrap())
        ));
    }

    #[test]
    fn csp_allows_exactly_our_script_and_style() {
        let html = render(&fixture::model(Lang::En)).unwrap();
        // Escaped as attribute text; the browser reads it unescaped.
        let esc = |s: String| s.replace('\'', "&#x27;").replace('=', "&#x3D;");
        let js_hash = esc(csp_hash(JS));
        let css_hash = esc(csp_hash(CSS));
        assert!(html.contains(&format!("script-src {js_hash}")));
        assert!(html.contains(&format!("style-src {css_hash}")));
        assert!(html.contains(&format!("<script>{JS}</script>")));
        assert!(html.contains(&format!("<style>{CSS}</style>")));
    }

    #[test]
    fn page_has_every_section_the_chart_and_filters() {
        let m = fixture::model(Lang::En);
        let html = render(&m).unwrap();
        for id in [
            "scope",
            "summary",
            "compliance",
            "findings",
            "hosts",
            "remediation",
            "exceptions",
        ] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(html.contains("<svg"));
        assert_eq!(html.matches("<rect ").count(), 5);
        assert!(html.contains("data-req=\"pci-dss-4.0:1.2.5\""));
        assert_eq!(html.matches("<tr id=\"f-").count(), m.findings.len());
        // Tabs work without JS: one radio group per block, first one checked.
        assert_eq!(
            html.matches(&format!(
                "type=\"radio\" name=\"fix-{}\"",
                m.remediation[0].fix.id
            ))
            .count(),
            m.remediation[0].fix.platforms.len()
        );
        assert!(html.contains(&format!("id=\"fix-{}-0\" checked", m.remediation[0].fix.id)));
        assert!(html.contains("<tr class=\"expired\">"));
        // Every fix panel has its undo beside the commands.
        let panels: usize = m.remediation.iter().map(|r| r.fix.platforms.len()).sum();
        assert_eq!(html.matches("<h4>Undo</h4>").count(), panels);
        assert!(html.contains("<h2>Compliance</h2>"));
    }

    #[test]
    fn zh_cn_page_is_in_chinese() {
        let html = render(&fixture::model(Lang::ZhCn)).unwrap();
        assert!(html.contains("<html lang=\"zh-CN\">"));
        assert!(html.contains("<h2>合规评估</h2>"));
        assert!(html.contains("<h2>整改措施</h2>"));
        assert!(html.contains("安全区域边界 / 访问控制"));
        assert!(html.contains(">已过期<"));
        assert!(!html.contains("<h2>Findings</h2>"));
    }
}
