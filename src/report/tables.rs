//! Report layer: the machine outputs of a report — `findings.csv`
//! (controls `;`-joined: the control mapping, written once), `findings.jsonl` (one
//! finding per line, for SIEMs), `inventory.csv` (the port inventory PCI
//! DSS 1.2.5.a asks for) and `compliance.csv`. They are written row by row
//! from the evaluation, so their size never sits in memory twice.
//!
//! Machine columns (`check`, `status`, `severity`) stay stable identifiers
//! in every language; `*_label` columns beside them carry the report's
//! language. With a BOM (`--csv-bom`, or always for zh-CN) Excel opens the
//! UTF-8 correctly. Every cell goes through [`csv_inert`], so a banner or
//! host name that starts like a formula stays text in a spreadsheet.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::i18n::Labels;
use super::model::{ExceptionRow, ReportModel, finding_message, status_key};
use super::{ReportError, csv_inert, display_safe};
use crate::model::{Finding, FindingStatus, Proto, Severity};

/// The UTF-8 byte-order mark Excel needs to read UTF-8 CSV.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A CSV file being written row by row.
pub(super) struct Sheet {
    path: std::path::PathBuf,
    w: csv::Writer<BufWriter<File>>,
}

impl Sheet {
    pub(super) fn create(path: &Path, bom: bool, header: &[&str]) -> Result<Sheet, ReportError> {
        let io = |source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = BufWriter::new(File::create(path).map_err(io)?);
        if bom {
            file.write_all(BOM).map_err(io)?;
        }
        let mut s = Sheet {
            path: path.to_path_buf(),
            w: csv::Writer::from_writer(file),
        };
        s.w.write_record(header)
            .map_err(|source| ReportError::Csv {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(s)
    }

    pub(super) fn row<I, S>(&mut self, cells: I) -> Result<(), ReportError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.w
            .write_record(cells.into_iter().map(|c| cell(c.as_ref())))
            .map_err(|source| ReportError::Csv {
                path: self.path.clone(),
                source,
            })
    }

    pub(super) fn finish(mut self) -> Result<(), ReportError> {
        self.w.flush().map_err(|source| ReportError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// One cell: control characters replaced, formulas neutralised.
fn cell(s: &str) -> String {
    // CR and tab are replaced by display_safe, so neutralise first: a cell
    // that began with one still gets its apostrophe.
    display_safe(&csv_inert(s))
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// What the finding outputs need beside the findings themselves.
pub(super) struct FindingContext<'a> {
    pub labels: &'a Labels,
    pub exceptions: &'a [ExceptionRow],
    pub hostnames: &'a HashMap<IpAddr, Vec<String>>,
    /// Finding id → the anchor of the fix group that closes it.
    pub fix_of: HashMap<&'a str, &'a str>,
}

impl<'a> FindingContext<'a> {
    pub fn new(
        model: &'a ReportModel,
        labels: &'a Labels,
        hostnames: &'a HashMap<IpAddr, Vec<String>>,
    ) -> FindingContext<'a> {
        let mut fix_of = HashMap::new();
        for g in &model.fix_groups {
            for id in &g.fix.finding_ids {
                fix_of.insert(id.as_str(), g.anchor.as_str());
            }
        }
        FindingContext {
            labels,
            exceptions: &model.exceptions,
            hostnames,
            fix_of,
        }
    }

    fn fix(&self, f: &Finding) -> Option<&'a str> {
        self.fix_of.get(f.id.as_str()).copied()
    }

    /// The finding's message in the report's language (English when its key has no label).
    pub fn message(&self, f: &Finding) -> String {
        finding_message(self.labels, self.exceptions, f)
    }

    fn hostnames(&self, ip: IpAddr) -> &[String] {
        self.hostnames.get(&ip).map(Vec::as_slice).unwrap_or(&[])
    }
}

pub(super) const FINDINGS_HEADER: &[&str] = &[
    "id",
    "severity",
    "severity_label",
    "status",
    "status_label",
    "check",
    "check_label",
    "ip",
    "hostnames",
    "port",
    "proto",
    "service",
    "group",
    "controls",
    "exception",
    "fix_group",
    "message",
];

/// `findings.csv` (controls `;`-joined: ids contain spaces). The control
/// mapping is written once per format: this column, and `controls` in
/// findings.jsonl (report schema 5 dropped `finding_controls.csv`).
pub(super) fn write_findings(
    dir: &Path,
    findings: &[Finding],
    cx: &FindingContext<'_>,
    bom: bool,
) -> Result<(), ReportError> {
    let t = cx.labels;
    let mut sheet = Sheet::create(&dir.join("findings.csv"), bom, FINDINGS_HEADER)?;
    for f in findings {
        sheet.row([
            f.id.clone(),
            f.severity.to_string(),
            t.get(&format!("severity.{}", f.severity)),
            f.status.to_string(),
            t.get(&status_key(f.status)),
            f.check.clone(),
            t.get(&format!("check.{}", f.check)),
            f.ip.to_string(),
            cx.hostnames(f.ip).join(" "),
            opt(&f.port),
            opt(&f.proto),
            opt(&f.service),
            opt(&f.group),
            f.controls.join(";"),
            opt(&f.exception),
            cx.fix(f).unwrap_or_default().to_string(),
            cx.message(f),
        ])?;
    }
    sheet.finish()
}

/// One line of `findings.jsonl`.
#[derive(Serialize)]
struct FindingLine<'a> {
    id: &'a str,
    check: &'a str,
    check_label: String,
    severity: Severity,
    severity_label: String,
    status: FindingStatus,
    status_label: String,
    ip: IpAddr,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    hostnames: &'a [String],
    port: Option<u16>,
    proto: Option<Proto>,
    service: Option<&'a str>,
    group: Option<&'a str>,
    controls: &'a [String],
    frameworks: Vec<&'a str>,
    exception: Option<&'a str>,
    fix_group: Option<&'a str>,
    message: String,
    observed: Option<DateTime<Utc>>,
}

/// `findings.jsonl`: one JSON object per finding and line.
pub(super) fn write_findings_jsonl(
    path: &Path,
    findings: &[Finding],
    cx: &FindingContext<'_>,
) -> Result<(), ReportError> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let t = cx.labels;
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    for f in findings {
        let mut frameworks: Vec<&str> = f
            .controls
            .iter()
            .filter_map(|c| c.split_once(':').map(|(p, _)| p))
            .collect();
        frameworks.dedup();
        let line = FindingLine {
            id: &f.id,
            check: &f.check,
            check_label: t.get(&format!("check.{}", f.check)),
            severity: f.severity,
            severity_label: t.get(&format!("severity.{}", f.severity)),
            status: f.status,
            status_label: t.get(&status_key(f.status)),
            ip: f.ip,
            hostnames: cx.hostnames(f.ip),
            port: f.port,
            proto: f.proto,
            service: f.service.as_deref(),
            group: f.group.as_deref(),
            controls: &f.controls,
            frameworks,
            exception: f.exception.as_deref(),
            fix_group: cx.fix(f),
            message: cx.message(f),
            observed: f.evidence.as_ref().map(|e| e.time),
        };
        serde_json::to_writer(&mut w, &line).map_err(ReportError::Json)?;
        w.write_all(b"\n").map_err(io)?;
    }
    w.flush().map_err(io)
}

pub(super) const INVENTORY_HEADER: &[&str] = &[
    "host",
    "hostnames",
    "group",
    "port",
    "proto",
    "service",
    "product",
    "allowed",
    "allowed_label",
    "justification",
    "approver",
    "ticket",
    "review_by",
    "review_overdue",
    "banner",
];

pub(super) fn write_inventory(
    path: &Path,
    m: &ReportModel,
    labels: &Labels,
    bom: bool,
) -> Result<(), ReportError> {
    let mut sheet = Sheet::create(path, bom, INVENTORY_HEADER)?;
    for r in &m.inventory {
        let (allowed, label) = match r.allowed {
            Some(true) => ("yes", labels.get("label.yes")),
            Some(false) => ("no", labels.get("label.no")),
            None => ("unmanaged", labels.get("label.unmanaged")),
        };
        sheet.row([
            r.ip.to_string(),
            r.hostnames.join(" "),
            opt(&r.group),
            r.port.to_string(),
            r.proto.to_string(),
            opt(&r.service),
            opt(&r.product),
            allowed.to_string(),
            label,
            opt(&r.justification),
            opt(&r.approver),
            opt(&r.ticket),
            opt(&r.review_by),
            if r.review_overdue { "yes" } else { "no" }.to_string(),
            opt(&r.banner),
        ])?;
    }
    sheet.finish()
}

pub(super) const COMPLIANCE_HEADER: &[&str] = &[
    "framework",
    "framework_name",
    "framework_score",
    "requirement",
    "control",
    "title",
    "status",
    "status_label",
    "confirmed",
    "reason",
    "finding_count",
    "coverage",
];

pub(super) fn write_compliance(path: &Path, m: &ReportModel, bom: bool) -> Result<(), ReportError> {
    let mut sheet = Sheet::create(path, bom, COMPLIANCE_HEADER)?;
    for fw in &m.compliance {
        let score = fw.score.map(|s| format!("{s:.3}")).unwrap_or_default();
        for r in &fw.requirements {
            sheet.row([
                fw.id.clone(),
                fw.name.clone(),
                score.clone(),
                r.id.clone(),
                r.control.clone(),
                r.title.clone(),
                r.status.to_string(),
                r.status_label.clone(),
                r.confirmed.to_string(),
                opt(&r.reason),
                r.finding_count.to_string(),
                r.coverage.clone(),
            ])?;
        }
    }
    sheet.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::i18n::Lang;
    use crate::report::model::fixture::{self, CMD, FORMULA, SCRIPT};
    use crate::report::model::hostname_index;

    fn parse(path: &Path) -> Vec<Vec<String>> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(path)
            .unwrap();
        r.records()
            .map(|rec| rec.unwrap().iter().map(String::from).collect())
            .collect()
    }

    fn write_all(lang: Lang, bom: bool) -> (std::path::PathBuf, ReportModel) {
        let (m, ev, obs) = fixture::parts(lang);
        let dir =
            std::env::temp_dir().join(format!("pw-tables-{}-{lang}-{bom}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let labels = Labels::embedded(lang).unwrap();
        let names = hostname_index(&obs);
        let cx = FindingContext::new(&m, &labels, &names);
        write_findings(&dir, &ev.findings, &cx, bom).unwrap();
        write_findings_jsonl(&dir.join("findings.jsonl"), &ev.findings, &cx).unwrap();
        write_inventory(&dir.join("inventory.csv"), &m, &labels, bom).unwrap();
        write_compliance(&dir.join("compliance.csv"), &m, bom).unwrap();
        (dir, m)
    }

    #[test]
    fn every_cell_is_inert_and_controls_split() {
        let (dir, m) = write_all(Lang::En, false);
        let f = parse(&dir.join("findings.csv"));
        let i = parse(&dir.join("inventory.csv"));
        let c = parse(&dir.join("compliance.csv"));
        let jsonl = std::fs::read_to_string(dir.join("findings.jsonl")).unwrap();
        let bytes = std::fs::read(dir.join("findings.csv")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!bytes.starts_with(BOM));

        for row in f.iter().chain(&i).chain(&c) {
            for cell in row {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "live cell {cell:?}"
                );
                assert!(!cell.contains('\x1b'), "control character in {cell:?}");
            }
        }
        assert_eq!(i[0], INVENTORY_HEADER);
        let allowed = i.iter().find(|r| r[3] == "443").unwrap();
        assert_eq!(allowed[0], "198.18.0.5");
        assert_eq!(allowed[1], format!("{SCRIPT}{FORMULA}"));
        assert_eq!(allowed[7], "yes");
        assert_eq!(allowed[9], format!("'{FORMULA}"));
        assert_eq!(allowed[10], format!("'{CMD}"));
        assert_eq!(allowed[11], "'@SUM(A1)");
        assert_eq!(allowed[13], "no");
        let redis = i.iter().find(|r| r[3] == "6379").unwrap();
        assert_eq!(redis[5], SCRIPT);
        assert_eq!(redis[7], "no");
        assert_eq!(f[0], FINDINGS_HEADER);
        assert_eq!(f.len(), m.summary.findings + 1);
        // Controls: `;`-joined in findings.csv (no finding_controls.csv).
        let mlps = f
            .iter()
            .find(|r| r[13].contains("mlps2-level3:8.1.4.4 b)"))
            .unwrap();
        assert!(mlps[13].split(';').any(|c| c == "mlps2-level3:8.1.4.4 b)"));
        // Failing ports name their fix group.
        assert!(f.iter().skip(1).any(|r| r[15].starts_with("fx")));
        // JSONL: one finding per line, parseable, same ids as the CSV.
        let lines: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), m.summary.findings);
        assert_eq!(lines[0]["id"], f[1][0].as_str());
        assert!(lines.iter().all(|l| l["controls"].is_array()));
        assert_eq!(c[0], COMPLIANCE_HEADER);
        let r125 = c
            .iter()
            .find(|r| r[0] == "pci-dss-4.0" && r[3] == "1.2.5")
            .unwrap();
        assert_eq!(r125[6], "fail");
        // The label in PCI DSS's own words.
        assert_eq!(r125[7], "Not in place");
        assert!(
            r125[11].contains("Port open but not allowed: ran on 1 host;"),
            "{}",
            r125[11]
        );
    }

    #[test]
    fn zh_cn_csv_has_a_bom_and_chinese_labels_beside_stable_ids() {
        let (dir, _) = write_all(Lang::ZhCn, true);
        let bytes = std::fs::read(dir.join("findings.csv")).unwrap();
        let inv = std::fs::read(dir.join("inventory.csv")).unwrap();
        let f = parse(&dir.join("findings.csv"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(bytes.starts_with(BOM));
        assert!(inv.starts_with(BOM));
        let row = f.iter().find(|r| r[5] == "not-allowed").unwrap();
        assert_eq!(row[6], "端口开放但未获批准");
        assert!(["fail", "waived", "expired-waiver"].contains(&row[3].as_str()));
        assert!(["不符合", "已豁免", "豁免已过期"].contains(&row[4].as_str()));
    }

    #[test]
    fn a_cell_starting_with_cr_or_tab_keeps_its_apostrophe() {
        assert_eq!(cell("\r=1"), "'\u{FFFD}=1");
        assert_eq!(cell("\t@x"), "'\u{FFFD}@x");
        assert_eq!(cell("-5"), "'-5");
        assert_eq!(cell("ok"), "ok");
    }
}
