//! Report layer: the CSV files of a report — findings, the port inventory
//! PCI DSS 1.2.5.a asks for, and the compliance verdicts. Every cell goes
//! through [`csv_inert`], so a banner or host name that starts like a
//! formula stays text in a spreadsheet.

use std::path::Path;

use super::model::ReportModel;
use super::{ReportError, csv_inert, display_safe};

fn write_rows(path: &Path, header: &[&str], rows: Vec<Vec<String>>) -> Result<(), ReportError> {
    let err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record(header).map_err(err)?;
    for row in rows {
        w.write_record(row.iter().map(|c| cell(c))).map_err(err)?;
    }
    w.flush().map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
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

pub(super) fn findings_rows(m: &ReportModel) -> Vec<Vec<String>> {
    m.findings
        .iter()
        .map(|f| {
            vec![
                f.id.clone(),
                f.severity.to_string(),
                f.status.to_string(),
                f.check.clone(),
                f.ip.to_string(),
                f.hostnames.join(" "),
                opt(&f.port),
                opt(&f.proto),
                opt(&f.service),
                opt(&f.group),
                f.controls.join(" "),
                opt(&f.exception),
                f.message.clone(),
            ]
        })
        .collect()
}

pub(super) fn write_findings(path: &Path, m: &ReportModel) -> Result<(), ReportError> {
    write_rows(
        path,
        &[
            "id",
            "severity",
            "status",
            "check",
            "ip",
            "hostnames",
            "port",
            "proto",
            "service",
            "group",
            "controls",
            "exception",
            "message",
        ],
        findings_rows(m),
    )
}

pub(super) fn inventory_rows(m: &ReportModel) -> Vec<Vec<String>> {
    m.inventory
        .iter()
        .map(|r| {
            vec![
                r.ip.to_string(),
                r.hostnames.join(" "),
                opt(&r.group),
                r.port.to_string(),
                r.proto.to_string(),
                opt(&r.service),
                match r.allowed {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "unmanaged".into(),
                },
                opt(&r.justification),
                opt(&r.approver),
                opt(&r.ticket),
                opt(&r.review_by),
            ]
        })
        .collect()
}

pub(super) fn write_inventory(path: &Path, m: &ReportModel) -> Result<(), ReportError> {
    write_rows(
        path,
        &[
            "host",
            "hostnames",
            "group",
            "port",
            "proto",
            "service",
            "allowed",
            "justification",
            "approver",
            "ticket",
            "review_by",
        ],
        inventory_rows(m),
    )
}

pub(super) fn compliance_rows(m: &ReportModel) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for fw in &m.compliance {
        for r in &fw.requirements {
            rows.push(vec![
                fw.id.clone(),
                r.id.clone(),
                r.title.clone(),
                r.status.to_string(),
                r.findings.len().to_string(),
                r.reason.clone().unwrap_or_default(),
                r.confirmed.to_string(),
                r.coverage.summary(),
            ]);
        }
    }
    rows
}

pub(super) fn write_compliance(path: &Path, m: &ReportModel) -> Result<(), ReportError> {
    write_rows(
        path,
        &[
            "framework",
            "requirement",
            "title",
            "status",
            "finding_count",
            "reason",
            "confirmed",
            "coverage",
        ],
        compliance_rows(m),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::i18n::Lang;
    use crate::report::model::fixture::{self, CMD, FORMULA, SCRIPT};

    fn parse(path: &Path) -> Vec<Vec<String>> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(path)
            .unwrap();
        r.records()
            .map(|rec| rec.unwrap().iter().map(String::from).collect())
            .collect()
    }

    #[test]
    fn every_cell_is_inert() {
        let m = fixture::model(Lang::En);
        let dir = std::env::temp_dir().join(format!("pw-tables-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_findings(&dir.join("f.csv"), &m).unwrap();
        write_inventory(&dir.join("i.csv"), &m).unwrap();
        write_compliance(&dir.join("c.csv"), &m).unwrap();
        let f = parse(&dir.join("f.csv"));
        let i = parse(&dir.join("i.csv"));
        let c = parse(&dir.join("c.csv"));
        std::fs::remove_dir_all(&dir).unwrap();

        for row in f.iter().chain(&i).chain(&c) {
            for cell in row {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "live cell {cell:?}"
                );
                assert!(!cell.contains('\x1b'), "control character in {cell:?}");
            }
        }
        assert_eq!(
            i[0],
            [
                "host",
                "hostnames",
                "group",
                "port",
                "proto",
                "service",
                "allowed",
                "justification",
                "approver",
                "ticket",
                "review_by"
            ]
        );
        let allowed = i.iter().find(|r| r[3] == "443").unwrap();
        assert_eq!(allowed[0], "198.18.0.5");
        assert_eq!(allowed[1], format!("{SCRIPT}{FORMULA}"));
        assert_eq!(allowed[6], "yes");
        assert_eq!(allowed[7], format!("'{FORMULA}"));
        assert_eq!(allowed[8], format!("'{CMD}"));
        assert_eq!(allowed[9], "'@SUM(A1)");
        let redis = i.iter().find(|r| r[3] == "6379").unwrap();
        assert_eq!(redis[5], SCRIPT);
        assert_eq!(redis[6], "no");
        assert_eq!(f[0][0], "id");
        assert_eq!(f.len(), m.findings.len() + 1);
        assert_eq!(
            c[0],
            [
                "framework",
                "requirement",
                "title",
                "status",
                "finding_count",
                "reason",
                "confirmed",
                "coverage"
            ]
        );
        let r125 = c
            .iter()
            .find(|r| r[0] == "pci-dss-4.0" && r[1] == "1.2.5")
            .unwrap();
        assert_eq!(r125[3], "fail");
        assert_eq!(r125[6], "true");
        assert!(r125[7].starts_with("not-allowed: ran on "), "{}", r125[7]);
        // Every status but pass and fail says why.
        for r in &c[1..] {
            if r[3] == "partial" || r[3] == "not-assessed" {
                assert!(!r[5].is_empty(), "{r:?}");
            }
        }
        let r128 = c
            .iter()
            .find(|r| r[0] == "pci-dss-4.0" && r[1] == "1.2.8")
            .unwrap();
        assert_eq!((r128[3].as_str(), r128[7].as_str()), ("not-assessed", ""));
    }

    #[test]
    fn a_cell_starting_with_cr_or_tab_keeps_its_apostrophe() {
        assert_eq!(cell("\r=1"), "'\u{FFFD}=1");
        assert_eq!(cell("\t@x"), "'\u{FFFD}@x");
        assert_eq!(cell("-5"), "'-5");
        assert_eq!(cell("ok"), "ok");
    }
}
