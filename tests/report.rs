//! Report integration tests: a real audit of loopback listeners writes a
//! complete report directory, `portwarden verify` accepts it and names
//! every tampered file, and the page works in a real browser (headless
//! Chromium driven over WebDriver): clicking a requirement filters the
//! findings table. Screenshots land in `target/tmp/report-*.png`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const EXE: &str = env!("CARGO_BIN_EXE_portwarden");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pw-report-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback listener that accepts and answers with a hostile banner, on a
/// port the kernel picks (other tests share loopback).
fn listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ =
                c.write_all(b"<script>alert(1)</script>\x1b[31m=HYPERLINK(\"http://x\")\xff\r\n");
        }
    });
    port
}

const FILES: &[&str] = &[
    "observations.jsonl",
    "findings.json",
    "index.html",
    "report.json",
    "findings.csv",
    "inventory.csv",
    "compliance.csv",
    "manifest.json",
];

/// Runs an audit of two loopback listeners: one allowed without a
/// justification, one not allowed and covered by an expired exception.
/// The locale says zh_CN; `lang` (`en`, `zh-CN`, or empty for none) is
/// passed as `--lang`.
fn audit(dir: &Path, lang: &str) -> (PathBuf, Output) {
    let allowed = listener();
    let other = listener();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"name = "report-test"

[[group]]
name = "loopback"
targets = ["127.0.0.1"]
profiles = ["pci-dss-4.0", "iso27001-2022", "mlps2-level3", "cis-v8", "nist-800-53r5"]
platforms = ["windows"]

[[group.allow]]
port = {allowed}
approver = "+cmd|'/C calc'!A0"
ticket = "=HYPERLINK(\"http://x\")"

[[exception]]
target = "127.0.0.1"
port = {other}
reason = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>"
approver = "@evil"
ticket = "EXC-1"
expires = 2026-01-31
"#
        ),
    )
    .unwrap();
    let out = dir.join("report");
    let output = Command::new(EXE)
        .args(["audit", "127.0.0.1", "--no-store", "-p"])
        .arg(format!("{allowed},{other}"))
        .args([
            "--scan",
            "connect",
            "--as-of",
            "2026-06-01",
            "--fail-on",
            "low",
        ])
        .args(if lang.is_empty() {
            vec![]
        } else {
            vec!["--lang", lang]
        })
        .args(["--operator", "<b>auditor</b>"])
        .arg("--policy")
        .arg(&policy)
        .arg("--out")
        .arg(&out)
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "zh_CN.UTF-8")
        .output()
        .unwrap();
    (out, output)
}

fn verify(dir: &Path) -> Output {
    Command::new(EXE).arg("verify").arg(dir).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn audit_writes_a_verifiable_bundle_and_verify_names_tampering() {
    let scratch = Scratch::new("bundle");
    let (out, run) = audit(&scratch.0, "en");
    // Findings at or above the gate (low) exist: exit 1, not 2.
    assert_eq!(run.status.code(), Some(1), "stderr: {}", text(&run.stderr));
    for f in FILES {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["scope"]["operator"], "<b>auditor</b>");
    assert_eq!(report["scope"]["tool_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["summary"]["open_ports"], 2);
    assert_eq!(report["compliance"].as_array().unwrap().len(), 5);
    let expired = &report["exceptions"][0];
    assert_eq!(expired["expired"], true);

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["files"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| *f != "manifest.json")
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(manifest["operator"], "<b>auditor</b>");
    assert!(manifest["policy_sha256"].as_str().unwrap().len() == 64);
    assert!(
        manifest["command_line"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--out")
    );

    // Identification grabbed the hostile banner; it reaches the page as text.
    let banner = report["hosts"][0]["ports"][0]["banner"].as_str().unwrap();
    assert!(banner.starts_with("<script>alert(1)</script>"), "{banner}");
    // Hostile banner and policy text is escaped in HTML and inert in CSV.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("<b>auditor"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(html.matches("<script").count(), 1);
    let inventory = std::fs::read_to_string(out.join("inventory.csv")).unwrap();
    assert!(inventory.contains(",'+cmd|'/C calc'!A0,"), "{inventory}");
    assert!(inventory.contains("'=HYPERLINK"), "{inventory}");
    assert!(!inventory.contains(",=HYPERLINK"), "{inventory}");

    let ok = verify(&out);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );

    // One altered file: named, exit 1.
    let csv = out.join("findings.csv");
    let mut body = std::fs::read(&csv).unwrap();
    body.extend_from_slice(b"forged,row\n");
    std::fs::write(&csv, body).unwrap();
    let bad = verify(&out);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        text(&bad.stdout).lines().next(),
        Some("ALTERED  findings.csv")
    );

    // A removed and an added file are named too.
    std::fs::remove_file(out.join("compliance.csv")).unwrap();
    std::fs::write(out.join("notes.txt"), "x").unwrap();
    let worse = verify(&out);
    assert_eq!(worse.status.code(), Some(1));
    let lines: Vec<String> = text(&worse.stdout).lines().map(String::from).collect();
    assert_eq!(
        lines[..3],
        [
            "ALTERED  findings.csv",
            "MISSING  compliance.csv",
            "EXTRA    notes.txt"
        ]
    );

    // Not a report directory: an error (exit 2) that says what is wrong.
    let none = verify(&scratch.0);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        text(&none.stderr).contains("manifest.json"),
        "{}",
        text(&none.stderr)
    );
}

#[test]
fn report_language_defaults_to_the_locale() {
    let scratch = Scratch::new("locale");
    // LANG=zh_CN.UTF-8 and no --lang.
    let (out, run) = audit(&scratch.0, "");
    assert_eq!(run.status.code(), Some(1), "stderr: {}", text(&run.stderr));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<html lang=\"zh-CN\">"));
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["lang"], "zh-CN");
}

#[test]
fn zh_cn_report_uses_chinese_labels_and_titles() {
    let scratch = Scratch::new("zh");
    let (out, run) = audit(&scratch.0, "zh-CN");
    assert_eq!(run.status.code(), Some(1), "stderr: {}", text(&run.stderr));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<html lang=\"zh-CN\">"));
    assert!(html.contains("<h2>合规评估</h2>"));
    assert!(html.contains("网络安全等级保护2.0 第三级"));
    assert!(html.contains("安全区域边界 / 访问控制"));
    assert!(html.contains("应在网络边界或区域之间根据访问控制策略设置访问控制规则"));
    assert!(html.contains(">严重<") || html.contains(">高危<"));
    assert!(!html.contains("<h2>Compliance</h2>"));
}

// ---------------------------------------------------------------------------
// Browser: headless Chromium over WebDriver (chromedriver on loopback).
// ---------------------------------------------------------------------------

/// A minimal HTTP/1.1 JSON client: WebDriver needs nothing more.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    try_http(port, method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
}

fn try_http(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    // Read the head, then exactly Content-Length bytes (chromedriver keeps
    // the connection open whatever we ask), or chunks, or up to EOF.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("HTTP response without headers"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut payload = raw[split + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let done = match length {
            Some(len) => payload.len() >= len,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if chunked {
        payload = dechunk(&payload);
    }
    Ok(serde_json::from_slice(&payload).unwrap_or(Value::Null))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 4 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = s.bytes().filter_map(val).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | (d << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

struct Driver {
    child: Child,
    port: u16,
    session: String,
    _profile: Scratch,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = try_http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// `None` when Chromium or chromedriver is not installed (see tests/setup.sh).
    fn start(scripts: bool) -> Option<Driver> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = Scratch::new("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    format!("--user-data-dir={}", profile.0.display()), "--window-size=1300,1000",
                    format!("--blink-settings=scriptEnabled={scripts}"),
                ]
            }
        }}});
        let mut d = Driver {
            child,
            port,
            session: String::new(),
            _profile: profile,
        };
        let r = http(port, "POST", "/session", Some(&caps));
        d.session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Some(d)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        if r["value"].get("error").is_some() {
            panic!("WebDriver {method} {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn click(&self, css: &str) {
        let el = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = el["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {el}"))
            .to_string();
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// A screenshot of the whole page (the window is grown to fit it).
    fn screenshot(&self, path: &Path) {
        let h = self
            .js("return document.documentElement.scrollHeight")
            .as_u64()
            .unwrap_or(2000);
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": 1300, "height": h.min(12000) + 100})),
        );
        let png = self.cmd("GET", "/screenshot", None);
        std::fs::write(path, base64_decode(png.as_str().unwrap())).unwrap();
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": 1300, "height": 1000})),
        );
    }
}

const VISIBLE_ROWS: &str = "return Array.from(document.querySelectorAll('#findings-table tbody tr')).filter(r => !r.hidden && r.offsetParent !== null).length";

fn browser_check(lang: &str) {
    let Some(driver) = Driver::start(true) else {
        crate::prereq::missing(
            "the browser test needs chromium and chromium-driver (tests/setup.sh)",
        );
        return;
    };
    let scratch = Scratch::new(&format!("browser-{lang}"));
    let (out, run) = audit(&scratch.0, lang);
    assert_eq!(run.status.code(), Some(1), "stderr: {}", text(&run.stderr));
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let total = findings.len();
    // A requirement that some findings fail and others do not.
    let (control, expected) = report["compliance"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|fw| fw["requirements"].as_array().unwrap().iter())
        .map(|r| {
            let c = r["control"].as_str().unwrap().to_string();
            let n = findings
                .iter()
                .filter(|f| {
                    f["controls"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x == c.as_str())
                })
                .count();
            (c, n)
        })
        .find(|(_, n)| *n > 0 && *n < total)
        .expect("the scenario has a requirement that filters some findings out");

    let url = format!("file://{}", out.join("index.html").display());
    driver.cmd("POST", "/url", Some(json!({"url": url})));
    let compliance =
        driver.js("return document.querySelectorAll('#compliance article.framework').length");
    assert_eq!(compliance, json!(5));
    let reqs = driver.js("return document.querySelectorAll('#compliance a.req').length");
    assert!(reqs.as_u64().unwrap() > 20, "{reqs}");
    assert_eq!(driver.js(VISIBLE_ROWS), json!(total));
    // Scripts ran (the filter bar is shown) and nothing injected ran.
    assert_eq!(
        driver.js("return document.getElementById('filters').hidden"),
        json!(false)
    );
    assert_eq!(
        driver.js("return document.querySelectorAll('img').length"),
        json!(0)
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{lang}.png"));
    driver.screenshot(&shot);

    driver.click(&format!("a.req[data-req=\"{control}\"]"));
    assert_eq!(
        driver.js(VISIBLE_ROWS),
        json!(expected),
        "filter on {control}"
    );
    let hash = driver.js("return decodeURIComponent(location.hash)");
    assert_eq!(hash, json!(format!("#req={control}")));
    let shot =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{lang}-filtered.png"));
    driver.screenshot(&shot);

    driver.click("#f-req-clear");
    assert_eq!(driver.js(VISIBLE_ROWS), json!(total));

    // Sorting: a numeric column sorts descending first, then ascending.
    let ports = "return Array.from(document.querySelectorAll('#findings-table tbody tr')).map(r => Number(r.cells[3].getAttribute('data-v')))";
    driver.click("th[data-sort=\"port\"]");
    let desc: Vec<u64> = serde_json::from_value(driver.js(ports)).unwrap();
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    driver.click("th[data-sort=\"port\"]");
    let asc: Vec<u64> = serde_json::from_value(driver.js(ports)).unwrap();
    assert!(asc.windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    assert_ne!(desc, asc);

    // Severity filter.
    let sev = findings[0]["severity"].as_str().unwrap().to_string();
    let same = findings
        .iter()
        .filter(|f| f["severity"] == sev.as_str())
        .count();
    driver.js(&format!(
        "var s = document.getElementById('f-sev'); s.value = '{sev}'; s.dispatchEvent(new Event('change')); return 0"
    ));
    assert_eq!(driver.js(VISIBLE_ROWS), json!(same));

    // With JS off every finding is in the page and visible: nothing starts hidden.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(html.matches("<tr id=\"f-").count(), total);
}

/// With scripts off the page still shows every finding, no filter bar, no
/// copy buttons, and the first remediation tab of each block.
#[test]
fn report_page_reads_with_javascript_off_in_chromium() {
    let Some(driver) = Driver::start(false) else {
        crate::prereq::missing(
            "the browser test needs chromium and chromium-driver (tests/setup.sh)",
        );
        return;
    };
    let scratch = Scratch::new("browser-nojs");
    let (out, _) = audit(&scratch.0, "en");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let total = report["findings"].as_array().unwrap().len();
    let url = format!("file://{}", out.join("index.html").display());
    driver.cmd("POST", "/url", Some(json!({"url": url})));
    let displayed = |css: &str| -> Vec<bool> {
        let els = driver.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        els.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let id = e["element-6066-11e4-a52e-4f735466cecf"].as_str().unwrap();
                driver.cmd("GET", &format!("/element/{id}/displayed"), None) == json!(true)
            })
            .collect()
    };
    let rows = displayed("#findings-table tbody tr");
    assert_eq!(rows.len(), total);
    assert!(rows.iter().all(|d| *d), "every finding visible");
    assert_eq!(displayed("#filters"), vec![false]);
    assert!(displayed("button.copy").iter().all(|d| !d));
    // CSS-only tabs: exactly one panel per remediation block is shown.
    let blocks = report["remediation"].as_array().unwrap().len();
    let panels = displayed(".tabs > .panel");
    assert_eq!(panels.iter().filter(|d| **d).count(), blocks);
    // Clicking another tab's label switches panels without scripts.
    let first = report["remediation"][0]["id"].as_str().unwrap();
    driver.click(&format!("label[for=\"fix-{first}-2\"]"));
    let after = displayed(&format!("#fix-{first} .tabs > .panel"));
    assert_eq!(after.iter().position(|d| *d), Some(2));
    let png = driver.cmd("GET", "/screenshot", None);
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-nojs.png");
    std::fs::write(shot, base64_decode(png.as_str().unwrap())).unwrap();
}

#[test]
fn report_page_filters_findings_by_requirement_in_chromium_en() {
    browser_check("en");
}

#[test]
fn report_page_filters_findings_by_requirement_in_chromium_zh_cn() {
    browser_check("zh-CN");
}
