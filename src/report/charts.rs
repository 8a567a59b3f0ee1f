//! Report layer: the summary charts of `index.html`, inline SVG built
//! from the model's bounded chart data. Every label is escaped ([`esc`]).

use std::fmt::Write as _;

use super::html::esc;
use super::i18n::Labels;
use super::model::ReportModel;

pub(crate) const SEV_CLASS: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// Stacked bars per framework: pass, partial, fail, not assessed. Each bar
/// links to its framework's requirements.
pub(crate) fn frameworks_svg(model: &ReportModel, labels: &Labels) -> String {
    let colon = esc(&model.text.get("first.colon"));
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
                r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="22" class="seg {class}"><title>{}{colon}{n}</title></rect>"#,
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
        // Columns, not characters: a CJK character is two columns wide.
        lx += 30.0 + 6.5 * unicode_width::UnicodeWidthStr::width(label.as_str()) as f64;
    }
    s.push_str("</svg>");
    s
}

/// Failing ports by their highest severity.
pub(crate) fn severity_svg(model: &ReportModel) -> String {
    let colon = esc(&model.text.get("first.colon"));
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
            r#"<text x="{}" y="{}" text-anchor="end" class="axis">{}</text><rect x="{LEFT}" y="{y}" width="{w:.1}" height="20" rx="3" class="bar sev-{}"><title>{}{colon}{}</title></rect><text x="{:.1}" y="{}" class="count">{}</text>"#,
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
pub(crate) fn groups_svg(model: &ReportModel, labels: &Labels) -> String {
    let colon = esc(&model.text.get("first.colon"));
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
                r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="20" class="bar sev-{}"><title>{}{colon}{n}</title></rect>"#,
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
pub(crate) fn services_svg(model: &ReportModel) -> String {
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

/// Hosts × severity: a cell's shade is its severity's weight, its text the
/// count. Each host links to the table filtered to it.
pub(crate) fn heat_svg(model: &ReportModel, labels: &Labels) -> String {
    let colon = esc(&model.text.get("first.colon"));
    const LEFT: f64 = 170.0;
    const CELL: f64 = 64.0;
    const ROW: f64 = 20.0;
    let heat = &model.charts.heat;
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
            // The shade is the severity's weight, never the count: one
            // critical reads darker than three highs (the count is the text).
            let level = if n == 0 { 0 } else { rank + 1 };
            let x = LEFT + CELL * col as f64;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y}" width="{}" height="{}" class="cell sev-{} l{level}"><title>{}{colon}{n}</title></rect>"#,
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
pub(crate) fn shorten(s: &str, max: usize) -> String {
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
pub(crate) fn url_component(s: &str) -> String {
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
