//! The report for its three readers (issue 23): the headline counts of an
//! nmap /24 import against a golden file (with and without a policy), the
//! first screen's verdict sentence and "fix first" list read in a real
//! browser (with screenshots: en, zh-CN, 420 px, dark), and the printed
//! report (cover, contents with page numbers that are right, "page x / y"
//! footers, A4 for zh-CN, no half-empty page inside a section) printed
//! from a relative `--out`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{Driver, EXE, Scratch, chromium, shot_path, synth, text};

/// Imports the synthetic nmap /24 (`-T5 --min-rate 50000 --max-retries 2`,
/// nmap's service names); with `policy`, judged by its three groups.
fn nmap_audit(dir: &Path, lang: &str, policy: bool, extra: &[&str]) -> PathBuf {
    let open = synth::generate_nmap(dir);
    assert!(open > 250, "{open}");
    let out = dir.join(format!("report-{lang}-{policy}"));
    let mut cmd = Command::new(EXE);
    cmd.args([
        "audit",
        "--no-store",
        "--as-of",
        "2026-11-24",
        "--lang",
        lang,
    ])
    .arg("--from-nmap")
    .arg(dir.join("scan.xml"))
    .arg("--out")
    .arg(&out)
    .args(extra);
    if policy {
        cmd.arg("--policy").arg(dir.join("policy.toml"));
    }
    let run = cmd.output().unwrap();
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "{}",
        text(&run.stderr)
    );
    out
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The headline of a report: what the first screen counts.
fn headline(report: &Value) -> Value {
    let s = &report["summary"];
    let l = &report["scope"]["limits"];
    let services: Vec<Value> = report["charts"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["service"], c["failing"], c["open"]]))
        .collect();
    json!({
        "hosts_in_scope": s["hosts_in_scope"],
        "hosts_with_open_ports": s["hosts_with_open_ports"],
        "open_ports": s["open_ports"],
        "failing_ports": s["failing_ports"],
        "failing_host_level": s["failing_host_level"],
        "failing_hosts": s["failing_hosts"],
        "failing_findings": s["failing"],
        "ports_by_severity": s["by_severity"].as_array().unwrap().iter().map(|c| json!([c["severity"], c["count"], c["hosts"]])).collect::<Vec<_>>(),
        "services": services,
        "scope": l["scope_lines"],
        "states": l["states"],
        "protocols": l["protocols"],
        "warnings": l["warnings"].as_array().map_or(0, |w| w.len()),
        "identification": l["identification"],
        "fix_groups": report["fix_groups"].as_array().unwrap().len(),
        "fix_first": report["first"]["fix_first"].as_array().unwrap().iter().map(|a| {
            report["fix_groups"].as_array().unwrap().iter().find(|g| g["anchor"] == *a).unwrap()["name"].clone()
        }).collect::<Vec<_>>(),
        "verdict": report["first"]["verdict"],
    })
}

/// Failing findings of findings.jsonl: distinct (ip, port) with a port,
/// distinct ips without one.
fn failing_from_jsonl(dir: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(dir.join("findings.jsonl")).unwrap();
    let mut ports = std::collections::BTreeSet::new();
    let mut hosts = std::collections::BTreeSet::new();
    for line in text.lines() {
        let f: Value = serde_json::from_str(line).unwrap();
        if !matches!(f["status"].as_str(), Some("fail" | "expired-waiver")) {
            continue;
        }
        match f["port"].as_u64() {
            Some(p) => ports.insert((f["ip"].to_string(), p)),
            None => hosts.insert(f["ip"].to_string()),
        };
    }
    (ports.len(), hosts.len())
}

/// The headline counts of the nmap /24 import are true and consistent
/// (ports and hosts never mixed; nmap's service names counted as the
/// catalogue's; the scope is the /24), and match the golden file.
/// `PORTWARDEN_UPDATE_GOLDEN=1` rewrites it.
#[test]
fn nmap_slash24_headline_counts_match_the_golden_file() {
    let scratch = Scratch::new("headline");
    let mut got = serde_json::Map::new();
    for policy in [false, true] {
        let out = nmap_audit(&scratch.0, "en", policy, &[]);
        let report = json_file(&out.join("report.json"));
        let s = &report["summary"];
        let (ports, hosts) = failing_from_jsonl(&out);
        assert_eq!(s["failing_ports"].as_u64().unwrap() as usize, ports);
        assert_eq!(s["failing_host_level"].as_u64().unwrap() as usize, hosts);
        assert!(s["failing_ports"].as_u64() <= s["open_ports"].as_u64());
        let by_sev: u64 = s["by_severity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_u64().unwrap())
            .sum();
        assert_eq!(by_sev, s["failing_ports"].as_u64().unwrap());
        assert_eq!(s["hosts_in_scope"], 256);
        let services = report["charts"]["services"].as_array().unwrap();
        assert!(!services.iter().any(|c| c["service"] == "ms-wbt-server"
            || c["service"] == "microsoft-ds"
            || c["service"] == "mongod"));
        let rdp = services.iter().find(|c| c["service"] == "rdp").unwrap();
        assert!(rdp["failing"].as_u64().unwrap() > 0, "{rdp}");
        let l = &report["scope"]["limits"];
        assert!(l["states"]["closed"].as_u64().unwrap() > 1000, "{l}");
        assert_eq!(l["scope_lines"], json!(["198.18.0.0/24"]));
        assert_eq!(l["warnings"].as_array().unwrap().len(), 3, "{l}");
        assert_eq!(l["protocols"][1]["probed"], false);
        // RDP and SMB fixes open on Windows when no group names a platform.
        for port in [3389, 445] {
            let g = report["fix_groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["port"] == port && g["key"] == "close-port")
                .unwrap();
            let first = g["inline"][0].as_u64().unwrap() as usize;
            let platform = g["platforms"][first].as_str().unwrap();
            assert!(platform.starts_with("windows"), "{port}: {platform}");
            assert!(!g["policy_lines"].as_array().unwrap().is_empty());
        }
        got.insert(format!("policy={policy}"), headline(&report));
    }
    let got = Value::Object(got);
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report-headline-nmap24.json");
    if std::env::var_os("PORTWARDEN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want = json_file(&golden);
    assert_eq!(got, want, "headline differs from {}", golden.display());
}

/// The first screen in Chromium: the verdict sentence and the "fix first"
/// list are what report.json says, named in words; screenshots of the
/// first screen (en, zh-CN), at 420 px, and in the dark theme.
#[test]
fn first_screen_reads_the_verdict_and_fix_first_in_chromium() {
    let Some(driver) = Driver::start(true) else {
        return;
    };
    let scratch = Scratch::new("first-screen");
    for lang in ["en", "zh-CN"] {
        let out = nmap_audit(&scratch.0, lang, true, &[]);
        let report = json_file(&out.join("report.json"));
        driver.resize(1300, 1000);
        driver.go(&format!("file://{}", out.join("index.html").display()));
        let verdict = driver.js("return document.getElementById('verdict').textContent");
        assert_eq!(verdict, report["first"]["verdict"]);
        let verdict = verdict.as_str().unwrap();
        if lang == "en" {
            assert!(verdict.contains("critical exposures on"), "{verdict}");
            assert!(verdict.contains("PCI DSS"), "{verdict}");
        } else {
            assert!(
                verdict.contains("严重暴露") && verdict.ends_with('。'),
                "{verdict}"
            );
        }
        // In view without scrolling.
        let top =
            driver.js("return document.getElementById('verdict').getBoundingClientRect().bottom");
        assert!(top.as_f64().unwrap() < 1000.0, "{top}");
        let items = driver.js(
            "return Array.prototype.map.call(document.querySelectorAll('ol.fix-first li a'), function (a) { return [a.textContent, a.getAttribute('href')]; })",
        );
        let items = items.as_array().unwrap();
        let first = report["first"]["fix_first"].as_array().unwrap();
        assert_eq!(items.len(), first.len());
        assert!(!items.is_empty());
        for (item, anchor) in items.iter().zip(first) {
            let g = report["fix_groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["anchor"] == *anchor)
                .unwrap();
            assert_eq!(item[0], g["name"]);
            assert_eq!(
                item[1].as_str().unwrap(),
                format!("#{}", anchor.as_str().unwrap())
            );
            let name = item[0].as_str().unwrap();
            assert!(!name.contains("fx"), "{name}");
            assert!(name.contains('/') || !g["port"].is_number(), "{name}");
        }
        // The first internet-facing group is first.
        let g0 = report["fix_groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["anchor"] == first[0])
            .unwrap();
        assert_eq!(g0["internet"], true, "{g0}");
        driver.viewport_shot(&shot_path(&format!("report-first-screen-{lang}.png")));
        if lang == "en" {
            driver.resize(420, 900);
            driver.go(&format!(
                "file://{}#summary",
                out.join("index.html").display()
            ));
            let overflow =
                driver.js("return document.documentElement.scrollWidth <= window.innerWidth + 1");
            assert_eq!(overflow, true);
            driver.viewport_shot(&shot_path("report-first-screen-420px.png"));
            driver.resize(1300, 1000);
            driver.cmd(
                "POST",
                "/goog/cdp/execute",
                Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}})),
            );
            driver.go(&format!("file://{}", out.join("index.html").display()));
            let bg = driver.js("return getComputedStyle(document.body).backgroundColor");
            assert_eq!(bg, "rgb(15, 23, 34)");
            driver.viewport_shot(&shot_path("report-first-screen-dark.png"));
            driver.cmd(
                "POST",
                "/goog/cdp/execute",
                Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": []}})),
            );
        }
    }
}

/// Page size in points from pdfinfo.
fn page_size(pdf: &Path) -> (f64, f64, usize) {
    let info = text(&Command::new("pdfinfo").arg(pdf).output().unwrap().stdout);
    let size = info
        .lines()
        .find_map(|l| l.strip_prefix("Page size:"))
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .collect::<Vec<_>>();
    let pages = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    (size[0], size[1], pages)
}

/// For each page, the lowest text baseline above the footer (points from
/// the top), from `pdftotext -bbox`.
fn lowest_text(pdf: &Path, height: f64) -> Vec<f64> {
    let out = Command::new("pdftotext")
        .arg("-bbox")
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap();
    let xml = text(&out.stdout);
    let mut pages = Vec::new();
    for page in xml.split("<page ").skip(1) {
        let mut low: f64 = 0.0;
        for w in page.split("<word ").skip(1) {
            let y = w
                .split("yMax=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            // The footer sits in the bottom margin (18 mm ≈ 51 pt).
            if y < height - 45.0 {
                low = low.max(y);
            }
        }
        pages.push(low);
    }
    pages
}

/// `audit --pdf --lang zh-CN` with a relative `--out` (issue 26.4): A4, a
/// cover with the report hash, a contents page whose page numbers are where
/// each section starts, "第 x 页 / 共 y 页" footers, no interactive text,
/// and no page less than half full except the last of a section.
#[test]
fn printed_report_has_contents_page_numbers_and_a4_for_zh_cn() {
    if chromium().is_none() {
        crate::prereq::missing("the print test needs chromium (tests/setup.sh)");
        return;
    }
    let scratch = Scratch::new("print-zh");
    synth::generate_nmap(&scratch.0);
    let run = Command::new(EXE)
        .current_dir(&scratch.0)
        .args([
            "audit",
            "--no-store",
            "--as-of",
            "2026-11-24",
            "--lang",
            "zh-CN",
            "--from-nmap",
            "scan.xml",
            "--policy",
            "policy.toml",
            "--pdf",
            "--out",
            "rel-report",
        ])
        .output()
        .unwrap();
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "{}",
        text(&run.stderr)
    );
    let out = scratch.0.join("rel-report");
    let pdf = out.join("report.pdf");
    assert!(pdf.is_file(), "{}", text(&run.stderr));
    let (w, h, pages) = page_size(&pdf);
    assert!(
        (w - 595.0).abs() < 2.0 && (h - 842.0).abs() < 2.0,
        "not A4: {w} x {h}"
    );
    let all = text(
        &Command::new("pdftotext")
            .arg("-layout")
            .arg(&pdf)
            .arg("-")
            .output()
            .unwrap()
            .stdout,
    );
    let page_texts: Vec<&str> = all.split('\u{c}').collect();
    assert!(page_texts[1].contains("目录"), "{}", page_texts[1]);
    // Footers: every page but the cover.
    for (i, t) in page_texts.iter().enumerate().take(pages).skip(1) {
        let footer = format!("第 {} 页 / 共 {pages} 页", i + 1);
        assert!(t.contains(&footer), "page {}: no footer {footer}", i + 1);
    }
    // Contents: each entry's page number is the page its heading is on.
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(out.join("report.json")).unwrap(),
        ))
    };
    assert!(page_texts[0].contains(&hash[..16]), "{}", page_texts[0]);
    let mut starts = Vec::new();
    for line in page_texts[1].lines() {
        let line = line.trim();
        let Some((title, page)) = line.rsplit_once(char::is_whitespace) else {
            continue;
        };
        let Ok(page) = page.trim().parse::<usize>() else {
            continue;
        };
        let title = title
            .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
            .trim();
        if title.is_empty() || title.starts_with('第') {
            continue;
        }
        assert!(page >= 3 && page <= pages, "{line}");
        assert!(
            page_texts[page - 1].contains(title),
            "contents says {title} is on page {page}: {}",
            page_texts[page - 1]
        );
        starts.push(page);
    }
    assert_eq!(starts.len(), 9, "{}", page_texts[1]);
    assert!(all.contains("签字确认") && all.contains("复核人") && all.contains("签名"));
    // No address broken inside: every host the first fix names is whole.
    let report = json_file(&out.join("report.json"));
    let first = &report["first"]["fix_first"][0];
    let g = report["fix_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["anchor"] == *first)
        .unwrap();
    for h in g["hosts"].as_array().unwrap().iter().take(24) {
        assert!(all.contains(h.as_str().unwrap()), "{h} broken or missing");
    }
    std::fs::copy(&pdf, shot_path("report-print-zh-CN.pdf")).unwrap();
    for interactive in ["查看相关发现", "返回概要", "显示主机", "复制"] {
        assert!(!all.contains(interactive), "{interactive}");
    }
    // No page less than half full inside a section.
    let lows = lowest_text(&pdf, h);
    for p in 3..=pages {
        let last_of_section = p == pages || starts.contains(&(p + 1));
        if !last_of_section {
            assert!(
                lows[p - 1] > h / 2.0,
                "page {p} is more than half empty ({} of {h} pt)",
                lows[p - 1]
            );
        }
    }
    for (page, name) in [(1, "report-pdf-cover"), (starts[3], "report-pdf-fix-page")] {
        let conv = Command::new("pdftoppm")
            .args([
                "-png",
                "-r",
                "70",
                "-f",
                &page.to_string(),
                "-l",
                &page.to_string(),
                "-singlefile",
            ])
            .arg(&pdf)
            .arg(shot_path(name))
            .output()
            .unwrap();
        assert!(conv.status.success(), "{}", text(&conv.stderr));
    }
    eprintln!("printed zh-CN /24 report: {pages} pages, sections start on {starts:?}");
    std::fs::copy(&pdf, shot_path("report-print-zh-CN.pdf")).unwrap();
}

/// The same scope audited twice into one history: the second report's
/// first screen states the trend (new, resolved, still open) against the
/// first run.
#[test]
fn second_run_of_a_scope_states_the_trend() {
    let scratch = Scratch::new("trend");
    synth::generate_nmap(&scratch.0);
    let store = scratch.0.join("history.db");
    let mut reports = Vec::new();
    for n in 0..2 {
        let out = scratch.0.join(format!("run{n}"));
        let run = Command::new(EXE)
            .args([
                "audit",
                "--as-of",
                "2026-11-24",
                "--lang",
                "en",
                "--from-nmap",
            ])
            .arg(scratch.0.join("scan.xml"))
            .arg("--policy")
            .arg(scratch.0.join("policy.toml"))
            .arg("--store")
            .arg(&store)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            matches!(run.status.code(), Some(0 | 1)),
            "{}",
            text(&run.stderr)
        );
        reports.push(json_file(&out.join("report.json")));
    }
    assert!(reports[0]["first"]["trend"].is_null());
    let t = &reports[1]["first"]["trend"];
    let failing = reports[1]["summary"]["failing"].as_u64().unwrap();
    assert_eq!(t["new"], 0, "{t}");
    assert_eq!(t["resolved"], 0, "{t}");
    assert_eq!(t["still_open"].as_u64().unwrap(), failing);
    let sentence = reports[1]["first"]["trend_text"].as_str().unwrap();
    assert!(
        sentence.contains(&format!("0 new, 0 resolved, {failing} still open")),
        "{sentence}"
    );
    let html = std::fs::read_to_string(scratch.0.join("run1/index.html")).unwrap();
    assert!(html.contains(sentence));
}

/// A connect scan with the default ports drops UDP (issue 26.5): the
/// report's scope box and report.json say UDP was not probed, and why.
#[test]
fn connect_scan_report_says_udp_was_not_probed_and_why() {
    let scratch = Scratch::new("no-udp");
    let out = scratch.0.join("report");
    let run = Command::new(EXE)
        .args([
            "audit",
            "127.0.0.1",
            "--scan",
            "connect",
            "--no-store",
            "--no-identify",
            "--lang",
            "en",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "{}",
        text(&run.stderr)
    );
    let report = json_file(&out.join("report.json"));
    let protocols = &report["scope"]["limits"]["protocols"];
    assert_eq!(protocols[0]["proto"], "tcp");
    assert_eq!(protocols[0]["probed"], true);
    assert_eq!(protocols[1]["proto"], "udp");
    assert_eq!(protocols[1]["probed"], false);
    assert_eq!(protocols[1]["why"], "connect-scan");
    assert!(protocols[1]["ports"].as_u64().unwrap() > 0, "{protocols}");
    let why = protocols[1]["why_text"].as_str().unwrap();
    assert!(why.contains("cannot probe UDP"), "{why}");
    let states = &report["scope"]["limits"]["states"];
    assert!(states["closed"].as_u64().unwrap() > 0, "{states}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains(&format!("UDP: not probed ({why})")),
        "UDP line missing"
    );
    assert_eq!(report["scope"]["limits"]["identification"], false);
}
