//! Report layer: the print layout of `report.pdf` — its own template
//! (`report-templates/print.hbs`), not the page printed: a cover with the
//! scope, dates, tool version and report hash; a contents page with page
//! numbers; a one-page executive summary; the sections; a sign-off block;
//! appendices. No interactive text, no code broken inside a token, and
//! "page x / y" in every footer. [`super::pdf`] prints it twice: the
//! first pass finds on which page each section starts.

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::{Value, json};

use super::ReportError;
use super::html;
use super::i18n::Lang;
use super::model::ReportModel;

const PRINT: &str = include_str!("../../report-templates/print.hbs");
const PRINT_CSS: &str = include_str!("../../report-templates/print.css");

/// Fix groups whose commands the printed report shows (in "fix first"
/// order); the others are listed by name.
pub const PRINT_FIXES: usize = 10;

/// The paper the PDF is printed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paper {
    A4,
    Letter,
}

impl Paper {
    /// The paper of a report in `lang` when none was asked for: A4 for
    /// zh-CN (GB/T 148), Letter otherwise.
    pub fn default_for(lang: Lang) -> Paper {
        match lang {
            Lang::ZhCn => Paper::A4,
            Lang::En => Paper::Letter,
        }
    }

    fn css(self) -> &'static str {
        match self {
            Paper::A4 => "A4",
            Paper::Letter => "letter",
        }
    }
}

impl FromStr for Paper {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "a4" => Ok(Paper::A4),
            "letter" | "us-letter" => Ok(Paper::Letter),
            _ => Err(format!("unknown paper '{s}' (expected a4 or letter)")),
        }
    }
}

/// The sections listed in the contents, in order: (element id, label key).
pub const SECTIONS: [(&str, &str); 9] = [
    ("p-summary", "print.executive"),
    ("p-limits", "limits.heading"),
    ("p-findings", "heading.findings"),
    ("p-remediation", "heading.remediation"),
    ("p-compliance", "heading.compliance"),
    ("p-exceptions", "heading.exceptions"),
    ("p-signoff", "print.signoff"),
    ("p-appendix-a", "print.appendix_requirements"),
    ("p-appendix-b", "print.appendix_method"),
];

/// Renders the print page. `pages` gives the page each section starts on
/// (empty on the first pass); `report_hash` is report.json's SHA-256.
pub fn render(
    model: &ReportModel,
    paper: Paper,
    report_hash: &str,
    pages: &HashMap<String, usize>,
) -> Result<String, ReportError> {
    let labels = &model.text;
    let mut hb = html::registry("print", PRINT)?;
    hb.set_strict_mode(false);
    let mut data = html::context(model, labels)?;
    let toc: Vec<Value> = SECTIONS
        .iter()
        .map(|(id, key)| {
            json!({
                "id": id,
                "title": labels.get(key),
                "page": pages.get(*id).map(|p| p.to_string()).unwrap_or_default(),
            })
        })
        .collect();
    let order: HashMap<&str, usize> = model
        .first
        .fix_first
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    let mut fixes: Vec<Value> = data["fixes"].as_array().cloned().unwrap_or_default();
    fixes.sort_by_key(|f| {
        f["key"]
            .as_str()
            .and_then(|k| order.get(k).copied())
            .unwrap_or(usize::MAX)
    });
    let rest = fixes.split_off(fixes.len().min(PRINT_FIXES));
    for f in &mut fixes {
        // One platform per fix: the one the card opens on.
        if let Some(p) = f["platforms"].as_array_mut() {
            p.truncate(1);
        }
        // The page's "more hosts" points at a button; print names the files.
        let shown = f["hosts"].as_array().map_or(0, Vec::len);
        let total = f["hosts_total"].as_u64().unwrap_or(0) as usize;
        f["more"] = Value::String(if total > shown {
            labels.fmt("print.more_hosts", &[("n", &(total - shown).to_string())])
        } else {
            String::new()
        });
    }
    if let Some(frameworks) = data["frameworks"].as_array_mut() {
        for f in frameworks {
            if let Some(open) = f["open"].as_array_mut() {
                for r in open {
                    let n = r["evidence_more"].as_u64().unwrap_or(0);
                    r["evidence_more_print"] =
                        Value::String(labels.fmt("print.evidence_more", &[("n", &n.to_string())]));
                }
            }
        }
    }
    let page_label = labels.get("print.page");
    let footer = css_string(&page_label)
        .replace("{page}", "\" counter(page) \"")
        .replace("{pages}", "\" counter(pages) \"");
    let page_css = format!(
        "@page{{size:{};margin:16mm 15mm 18mm;@bottom-center{{content:{footer};font-size:8.5pt;color:#444}}}}@page:first{{@bottom-center{{content:none}}}}",
        paper.css()
    );
    let top_n = model.ports.len().min(super::model::TOP_ROWS);
    let extra = json!({
        "toc": toc,
        "report_hash": report_hash,
        "print_fixes": fixes,
        "rest_fixes": rest,
        "top_hint_print": labels.fmt("print.top_hint", &[("n", &top_n.to_string()), ("total", &model.ports.len().to_string())]),
        "fixes_hint_print": labels.fmt("print.fixes_hint", &[("n", &model.fix_groups.len().min(PRINT_FIXES).to_string()), ("total", &model.fix_groups.len().to_string())]),
        "css": PRINT_CSS,
        "page_css": page_css,
        "csp": format!(
            "default-src 'none'; style-src {}; script-src 'none'; img-src data:; base-uri 'none'; form-action 'none'",
            html::csp_hash(&format!("{page_css}{PRINT_CSS}"))
        ),
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    hb.render("print", &data).map_err(|e| ReportError::Render {
        file: "report.pdf (print.hbs)".into(),
        message: e.to_string(),
    })
}

/// A CSS string literal of `s`.
fn css_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::fixture;

    #[test]
    fn print_page_has_cover_contents_signoff_and_no_interactive_text() {
        for lang in [Lang::En, Lang::ZhCn] {
            let m = fixture::model(lang);
            let mut pages = HashMap::new();
            pages.insert("p-limits".to_string(), 4);
            let html = render(
                &m,
                Paper::default_for(lang),
                "ab".repeat(32).as_str(),
                &pages,
            )
            .unwrap();
            let labels = &m.text;
            for key in [
                "print.contents",
                "print.signoff",
                "print.prepared_by",
                "print.signature",
            ] {
                assert!(html.contains(&html::esc(&labels.get(key))), "{lang}: {key}");
            }
            assert!(html.contains(&"ab".repeat(32)));
            assert!(html.contains("<span class=\"toc-page\">4</span>"));
            for interactive in [
                "ui.show_findings",
                "ui.back_to_summary",
                "ui.show_hosts",
                "label.copy",
            ] {
                assert!(
                    !html.contains(&html::esc(&labels.get(interactive))),
                    "{lang}: {interactive}"
                );
            }
            assert!(!html.contains("<script"));
            let size = if lang == Lang::ZhCn {
                "size:A4"
            } else {
                "size:letter"
            };
            assert!(html.contains(size), "{lang}");
            assert!(html.contains("counter(pages)"));
        }
        assert_eq!("A4".parse::<Paper>(), Ok(Paper::A4));
        assert!("legal".parse::<Paper>().is_err());
    }
}
