//! Report integration tests: a real audit of loopback listeners writes a
//! complete report directory, `portwarden verify` accepts it and names
//! every tampered file, and the page works in a real browser (headless
//! Chromium driven over WebDriver): from a framework bar to a requirement,
//! to its findings, to their fix group and back; filters, sorting, the
//! mobile layout and the printed PDF. A zh-CN report of a lab audit shows
//! no English outside identifiers. Screenshots land in
//! `target/tmp/report-*.png`. Under `CI=true` a missing Chromium fails the
//! browser tests instead of skipping them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "report_synth.rs"]
mod synth;

#[path = "report_first.rs"]
mod first;

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
    "findings.jsonl",
    "fixes.jsonl",
    "inventory.csv",
    "compliance.csv",
    "assets.csv",
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

    let report: Value = report_with_rows(&out);
    // 5: no per-row lists (`ports`, `inventory`, `assets`: findings.jsonl,
    // inventory.csv and assets.csv hold them; issue 21).
    assert_eq!(report["schema_version"], 5);
    let raw: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for k in ["ports", "inventory", "assets"] {
        assert!(raw.get(k).is_none(), "report.json still has {k}");
    }
    for k in ["summary", "compliance", "fix_groups", "charts", "first"] {
        assert!(raw.get(k).is_some(), "report.json lost {k}");
    }
    assert!(!out.join("finding_controls.csv").exists());
    assert_eq!(report["scope"]["operator"], "<b>auditor</b>");
    assert_eq!(report["scope"]["tool_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["summary"]["open_ports"], 2);
    // A loopback scan comes from 127.0.0.1, which `lo` holds.
    assert_eq!(report["scope"]["source_addresses"], json!(["127.0.0.1"]));
    assert_eq!(report["scope"]["source_interfaces"], json!(["lo"]));
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
    // Besides the fixed files, one page per platform the fix groups name.
    let mut pages: Vec<String> = report["fix_groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["platforms"].as_array().unwrap().iter())
        .map(|p| format!("fixes/{}.html", p.as_str().unwrap()))
        .collect();
    pages.sort();
    pages.dedup();
    assert!(pages.contains(&"fixes/windows-powershell.html".to_string()));
    let mut expected: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| *f != "manifest.json")
        .chain(pages.iter().map(String::as_str))
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
    let banner = report["inventory"][0]["banner"].as_str().unwrap();
    assert!(banner.starts_with("<script>alert(1)</script>"), "{banner}");
    // Hostile banner and policy text is escaped in HTML and inert in CSV.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("<b>auditor"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // Our script and the table's JSON data block, nothing else.
    assert_eq!(html.matches("<script").count(), 2);
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
    /// `None` when Chromium or chromedriver is not installed (see
    /// tests/setup.sh); under `CI=true` that is a failure, not a skip.
    fn start(scripts: bool) -> Option<Driver> {
        let found = chromium().zip(
            ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
                .into_iter()
                .find(|p| Path::new(p).exists()),
        );
        let Some((chromium, driver)) = found else {
            crate::prereq::missing(
                "the browser test needs chromium and chromium-driver (tests/setup.sh)",
            );
            return None;
        };
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

impl Driver {
    /// A screenshot of what the window shows now.
    fn viewport_shot(&self, path: &Path) {
        let png = self.cmd("GET", "/screenshot", None);
        std::fs::write(path, base64_decode(png.as_str().unwrap())).unwrap();
    }

    /// A screenshot of one element.
    fn element_shot(&self, css: &str, path: &Path) {
        let el = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = el["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_string();
        let png = self.cmd("GET", &format!("/element/{id}/screenshot"), None);
        std::fs::write(path, base64_decode(png.as_str().unwrap())).unwrap();
    }

    fn resize(&self, width: u64, height: u64) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn hash(&self) -> String {
        self.js("return decodeURIComponent(location.hash)")
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// The Chromium binary, found as `audit --pdf` finds it.
fn chromium() -> Option<String> {
    portwarden::report::pdf::find_chromium().map(|p| p.display().to_string())
}

fn shot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Audits the synthetic /24 (about 150 live hosts, 320 open ports, three
/// groups) from its JSONL, offline; returns the report directory.
fn synthetic_audit(dir: &Path, lang: &str) -> PathBuf {
    synthetic_audit_with(dir, lang, &[])
}

/// [`synthetic_audit`] with more audit arguments.
fn synthetic_audit_with(dir: &Path, lang: &str, extra: &[&str]) -> PathBuf {
    let open = synth::generate(dir, &synth::SCALES[0]);
    assert!(open > 250, "{open}");
    let out = dir.join("report");
    let run = audit_generated(dir, &out, lang, extra);
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "{}",
        text(&run.stderr)
    );
    out
}

/// The audit of the observations and policy generated in `dir`, into `out`.
fn audit_generated(dir: &Path, out: &Path, lang: &str, extra: &[&str]) -> std::process::Output {
    Command::new(EXE)
        .args([
            "audit",
            "--no-store",
            "--as-of",
            "2026-11-24",
            "--lang",
            lang,
        ])
        .arg("--from-jsonl")
        .arg(dir.join("observations.jsonl"))
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

const VISIBLE_ROWS: &str = "return document.querySelectorAll('#findings-table tbody tr').length";
const FILTER_COUNT: &str = "return document.getElementById('f-count').textContent";

/// report.json with the lists schema 5 leaves to other files put back for
/// the checks below: `ports` from the page's table JSON (each check's
/// exception from findings.jsonl), `inventory` from inventory.csv.
fn report_with_rows(out: &Path) -> Value {
    let mut report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let tag = "id=\"table-data\">";
    let start = html.find(tag).unwrap() + tag.len();
    let end = start + html[start..].find("</script>").unwrap();
    let t: Value = serde_json::from_str(&html[start..end]).unwrap();
    let mut exceptions = std::collections::HashMap::new();
    for l in std::fs::read_to_string(out.join("findings.jsonl"))
        .unwrap()
        .lines()
    {
        let f: Value = serde_json::from_str(l).unwrap();
        exceptions.insert(
            f["id"].as_str().unwrap().to_string(),
            f["exception"].clone(),
        );
    }
    let at = |dict: &str, i: &Value| match i.as_i64() {
        Some(i) if i >= 0 => t[dict][i as usize].clone(),
        _ => Value::Null,
    };
    let rows: Vec<Value> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let checks: Vec<Value> = r[8]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| json!({"check": t["ck"][c[0].as_u64().unwrap() as usize][0], "exception": exceptions[c[3].as_str().unwrap()]}))
                .collect();
            let severity = ["info", "low", "medium", "high", "critical"][r[6].as_u64().unwrap() as usize];
            json!({"ip": r[0], "service": r[4], "group": at("gr", &r[5]), "severity": severity, "controls": r[9], "fix": at("fx", &r[10]), "checks": checks})
        })
        .collect();
    report["ports"] = Value::Array(rows);
    let mut inv = csv::Reader::from_path(out.join("inventory.csv")).unwrap();
    let header: Vec<String> = inv
        .headers()
        .unwrap()
        .iter()
        .map(|h| h.replace("host", "ip"))
        .collect();
    let inventory: Vec<Value> = inv
        .records()
        .map(|r| {
            let r = r.unwrap();
            Value::Object(
                header
                    .iter()
                    .cloned()
                    .zip(r.iter().map(|c| json!(c)))
                    .collect(),
            )
        })
        .collect();
    report["inventory"] = Value::Array(inventory);
    report
}

/// Rows (host:port) of report.json whose checks map to `control`.
fn rows_with_control(report: &Value, control: &str) -> Vec<Value> {
    let sets = report["control_sets"].as_array().unwrap();
    report["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            sets[r["controls"].as_u64().unwrap() as usize]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == control)
        })
        .cloned()
        .collect()
}

/// The click path of the issue: framework bar → requirement → its
/// findings → the fix group → back; then filters, sorting and search.
fn browser_check(lang: &str) {
    let Some(driver) = Driver::start(true) else {
        return;
    };
    let scratch = Scratch::new(&format!("browser-{lang}"));
    let out = synthetic_audit(&scratch.0, lang);
    let report: Value = report_with_rows(&out);
    let rows = report["ports"].as_array().unwrap();
    let total = rows.len();
    assert!(total > 100, "{total}");

    let url = format!("file://{}", out.join("index.html").display());
    let t0 = Instant::now();
    driver.go(&url);
    let load_ms = t0.elapsed().as_millis();
    let nav = driver.js(
        "var t = performance.getEntriesByType('navigation')[0]; return [t.domContentLoadedEventEnd, t.loadEventEnd]",
    );
    eprintln!(
        "report-{lang}: first screen {load_ms} ms over WebDriver (navigation: DOMContentLoaded {:.0} ms, load {:.0} ms) for {total} rows",
        nav[0].as_f64().unwrap_or(0.0),
        nav[1].as_f64().unwrap_or(0.0)
    );
    assert_eq!(
        driver.js("return document.querySelectorAll('#compliance article.framework').length"),
        json!(5)
    );
    // One page of 100 rows out of all of them; nothing injected ran.
    assert_eq!(driver.js(VISIBLE_ROWS), json!(total.min(100)));
    assert!(
        driver
            .js(FILTER_COUNT)
            .as_str()
            .unwrap()
            .ends_with(&format!(" {total} / {total}"))
    );
    assert_eq!(
        driver.js("return document.getElementById('static-findings').hidden"),
        json!(true)
    );
    driver.viewport_shot(&shot_path(&format!("report-{lang}-summary.png")));
    driver.screenshot(&shot_path(&format!("report-{lang}.png")));

    // Framework bar → the framework's requirements.
    driver.click("a.fwbar[data-fw=\"pci-dss-4.0\"]");
    assert_eq!(driver.hash(), "#fw-pci-dss-4.0");
    // A failing PCI requirement → its findings.
    let control = report["compliance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "pci-dss-4.0")
        .unwrap()["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["finding_count"].as_u64().unwrap() > 0)
        .map(|r| r["control"].as_str().unwrap().to_string())
        .find(|c| {
            let n = rows_with_control(&report, c).len();
            n > 0 && n < total
        })
        .expect("a PCI requirement that some rows fail");
    let expected = rows_with_control(&report, &control);
    driver.click(&format!("#fw-pci-dss-4\\.0 a.req[data-req=\"{control}\"]"));
    assert_eq!(driver.hash(), format!("#req={control}"));
    assert_eq!(driver.js(VISIBLE_ROWS), json!(expected.len().min(100)));
    assert!(
        driver
            .js(FILTER_COUNT)
            .as_str()
            .unwrap()
            .ends_with(&format!(" {} / {total}", expected.len()))
    );
    // The first row's fix group, which lists the row's host.
    let first_ip = driver
        .js("return document.querySelector('#findings-table tbody tr td:nth-child(2)').firstChild.textContent")
        .as_str()
        .unwrap()
        .to_string();
    let fix = driver
        .js("var a = document.querySelector('#findings-table tbody tr a.fixlink'); return a ? a.getAttribute('href').slice(1) : null")
        .as_str()
        .expect("the most severe row has a fix group")
        .to_string();
    driver.click("#findings-table tbody tr a.fixlink");
    assert_eq!(driver.hash(), format!("#{fix}"));
    let group = report["fix_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["anchor"] == fix.as_str())
        .unwrap();
    assert!(
        group["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == first_ip.as_str()),
        "{first_ip} not in {fix}"
    );
    // From the fix group to all its hosts in the table.
    driver.click(&format!("#{fix} a.showhosts"));
    assert_eq!(driver.hash(), format!("#fix={fix}"));
    // Every row whose fix is this group (a host may have several ports in
    // it).
    let in_group = report["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fix"] == fix.as_str())
        .count();
    assert!(in_group >= group["hosts"].as_array().unwrap().len());
    // The page filters on `hashchange`, which the browser may deliver a
    // moment after the click on a loaded machine: give it up to 5 s, then
    // the count must be exact.
    let want = json!(in_group.min(100));
    for _ in 0..100 {
        if driver.js(VISIBLE_ROWS) == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(driver.js(VISIBLE_ROWS), want);
    // And back: the browser's back button returns to the fix group, then to the requirement's findings.
    driver.cmd("POST", "/back", Some(json!({})));
    assert_eq!(driver.hash(), format!("#{fix}"));
    driver.cmd("POST", "/back", Some(json!({})));
    assert_eq!(driver.hash(), format!("#req={control}"));
    assert_eq!(driver.js(VISIBLE_ROWS), json!(expected.len().min(100)));
    driver.click("#f-chip-clear");
    assert_eq!(driver.js(VISIBLE_ROWS), json!(total.min(100)));

    // A filter, timed in the page.
    let sev_rank = 4;
    let same = rows.iter().filter(|r| r["severity"] == "critical").count();
    let ms = driver.js(&format!(
        "var s = document.getElementById('f-sev'); var t = performance.now(); s.value = '{sev_rank}'; s.dispatchEvent(new Event('change')); document.body.offsetHeight; return performance.now() - t"
    ));
    eprintln!(
        "report-{lang}: severity filter applied in {:.1} ms",
        ms.as_f64().unwrap()
    );
    assert_eq!(driver.js(VISIBLE_ROWS), json!(same.min(100)));
    driver.js("var s = document.getElementById('f-sev'); s.value = ''; s.dispatchEvent(new Event('change')); return 0");

    // Sorting by port: ascending, then descending.
    let ports = "return Array.from(document.querySelectorAll('#findings-table tbody tr td:nth-child(3)')).map(td => parseInt(td.textContent) || -1)";
    driver.click("th[data-sort=\"port\"]");
    let asc: Vec<i64> = serde_json::from_value(driver.js(ports)).unwrap();
    assert!(asc.windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    driver.click("th[data-sort=\"port\"]");
    let desc: Vec<i64> = serde_json::from_value(driver.js(ports)).unwrap();
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    // Free-text search: one host.
    let ip = rows[0]["ip"].as_str().unwrap();
    let of_ip = rows.iter().filter(|r| r["ip"] == ip).count();
    driver.js(&format!(
        "var q = document.getElementById('f-q'); q.value = '{ip}'; q.dispatchEvent(new Event('input')); return 0"
    ));
    std::thread::sleep(Duration::from_millis(400));
    // A prefix search may match longer addresses (198.18.0.1 and 198.18.0.10…).
    let shown = driver.js(VISIBLE_ROWS).as_u64().unwrap() as usize;
    assert!(shown >= of_ip, "{shown} < {of_ip}");
    // Paging.
    driver.js("var q = document.getElementById('f-q'); q.value = ''; q.dispatchEvent(new Event('input')); return 0");
    std::thread::sleep(Duration::from_millis(400));
    if total > 100 {
        driver.click("#p-next");
        assert_eq!(driver.js(VISIBLE_ROWS), json!((total - 100).min(100)));
    }

    // The segment view: one group alone, from the summary's group chart.
    driver.go(&format!("{url}#grp=cardholder"));
    let cde = rows.iter().filter(|r| r["group"] == "cardholder").count();
    assert_eq!(driver.js(VISIBLE_ROWS), json!(cde.min(100)));
    driver.viewport_shot(&shot_path(&format!("report-{lang}-segment.png")));
    driver.go(&url);
    driver.element_shot(
        "figure.chart.wide",
        &shot_path(&format!("report-{lang}-heatmap.png")),
    );

    // Mobile: nothing overflows sideways at 420 px; tables are cards.
    driver.resize(420, 900);
    std::thread::sleep(Duration::from_millis(300));
    let widths = driver
        .js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]");
    assert!(
        widths[0].as_u64().unwrap() <= widths[1].as_u64().unwrap(),
        "horizontal overflow at 420 px: {widths}"
    );
    driver.viewport_shot(&shot_path(&format!("report-{lang}-mobile.png")));
    driver.js("document.getElementById('findings').scrollIntoView(); return 0");
    driver.viewport_shot(&shot_path(&format!("report-{lang}-mobile-table.png")));
}

#[test]
fn report_page_click_path_filters_and_mobile_in_chromium_en() {
    browser_check("en");
}

#[test]
fn report_page_click_path_filters_and_mobile_in_chromium_zh_cn() {
    browser_check("zh-CN");
}

/// With scripts off the page shows its summary, compliance, the most
/// severe ports, the pointer to the full lists and CSS-only tabs, and its
/// fix groups link to the per-platform pages and back.
#[test]
fn report_page_reads_with_javascript_off_in_chromium() {
    let Some(driver) = Driver::start(false) else {
        return;
    };
    let scratch = Scratch::new("browser-nojs");
    let (out, _) = audit(&scratch.0, "en");
    let report: Value = report_with_rows(&out);
    let total = report["ports"].as_array().unwrap().len();
    driver.go(&format!("file://{}", out.join("index.html").display()));
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
    let rows = displayed("#top-table tbody tr");
    assert_eq!(rows.len(), total.min(50));
    assert!(rows.iter().all(|d| *d), "every static row visible");
    assert_eq!(displayed("#live"), vec![false]);
    assert!(displayed("button.copy").iter().all(|d| !d));
    assert_eq!(displayed("svg.chart").len(), 5);
    // CSS-only tabs: exactly one panel per fix group is shown.
    let groups = report["fix_groups"].as_array().unwrap().len();
    let panels = displayed(".tabs > .panel");
    assert_eq!(panels.iter().filter(|d| **d).count(), groups);
    // The first group with at least three platforms: its third tab.
    let fx = report["fix_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["platforms"].as_array().unwrap().len() >= 3)
        .expect("a fix group with three platforms")["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    driver.viewport_shot(&shot_path("report-nojs.png"));
    // Every platform is a link to its own page (all fix groups' commands
    // for that platform), which reads without scripts and links back.
    let platform = report["fix_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["anchor"] == fx.as_str())
        .unwrap()["platforms"][2]
        .as_str()
        .unwrap()
        .to_string();
    driver.click(&format!(
        "#{fx} .platforms a[href=\"fixes/{platform}.html#{fx}\"]"
    ));
    let url = driver.cmd("GET", "/url", None);
    assert!(
        url.as_str()
            .unwrap()
            .ends_with(&format!("/fixes/{platform}.html#{fx}")),
        "{url}"
    );
    assert_eq!(displayed(&format!("#{fx} pre")), vec![true, true, true]);
    driver.viewport_shot(&shot_path("report-platform-page.png"));
    driver.click(&format!("#{fx} a[href=\"../index.html#{fx}\"]"));
    let url = driver.cmd("GET", "/url", None);
    assert!(
        url.as_str()
            .unwrap()
            .ends_with(&format!("/index.html#{fx}")),
        "{url}"
    );
}

/// `audit --pdf` prints the synthetic /24 with Chromium's own PDF printer:
/// an executive report of at most 40 pages, listed in the manifest, with no
/// Chromium profile left behind; its first page is saved as PNG. Without a
/// Chromium, `--pdf` stops the audit before anything is scanned or written.
#[test]
fn printed_report_of_a_slash24_fits_in_40_pages() {
    if chromium().is_none() {
        crate::prereq::missing("the print test needs chromium (tests/setup.sh)");
        return;
    }
    let scratch = Scratch::new("print");
    let out = synthetic_audit_with(&scratch.0, "en", &["--pdf"]);
    let pdf = out.join("report.pdf");
    assert!(pdf.is_file(), "no report.pdf");
    assert!(!out.join(".chromium-profile").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest["files"]["report.pdf"].is_string());
    assert!(
        !manifest["files"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with(".chromium"))
    );
    assert_eq!(verify(&out).status.code(), Some(0));

    let missing = Scratch::new("print-missing");
    let run = Command::new(EXE)
        .args([
            "audit",
            "127.0.0.1",
            "-p",
            "1",
            "--no-store",
            "--pdf",
            "--out",
        ])
        .arg(missing.0.join("report"))
        .env("PORTWARDEN_CHROMIUM", missing.0.join("no-such-chromium"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        text(&run.stderr).contains("--pdf needs Chromium: none found"),
        "{}",
        text(&run.stderr)
    );
    assert!(!missing.0.join("report").exists());
    let info = Command::new("pdfinfo").arg(&pdf).output();
    let Ok(info) = info else {
        crate::prereq::missing("the print test needs pdfinfo (poppler-utils, tests/setup.sh)");
        return;
    };
    let pages: u32 = text(&info.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo names the page count");
    eprintln!("printed /24 report: {pages} pages");
    assert!(pages <= 40, "{pages} pages");
    let png = shot_path("report-print-page1");
    let conv = Command::new("pdftoppm")
        .args(["-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&pdf)
        .arg(&png)
        .output()
        .unwrap();
    assert!(conv.status.success(), "{}", text(&conv.stderr));
}

/// Text a reader sees in `html`: without scripts, styles, code, tags and
/// entities.
fn visible_text(html: &str) -> String {
    let mut s = html.to_string();
    for (open, close) in [
        ("<script", "</script>"),
        ("<style", "</style>"),
        ("<pre", "</pre>"),
        ("<code", "</code>"),
        ("<title", "</title>"),
    ] {
        while let Some(i) = s.find(open) {
            let j = s[i..]
                .find(close)
                .map(|j| i + j + close.len())
                .unwrap_or(s.len());
            s.replace_range(i..j, " ");
        }
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&#x3D;", "=")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Words of Latin letters in `text` that are not identifiers of the audit
/// (`allowed`) nor of the standards and formats.
fn english_words(text: &str, allowed: &std::collections::BTreeSet<String>) -> Vec<String> {
    const FIXED: &[&str] = &[
        // Product, platform and protocol names, and placeholders or
        // identifiers that the commands and the policy use as they are.
        "OpenStack",
        "openstack",
        "DSC",
        "NetworkingDsc",
        "Server",
        "SNMP",
        "ADMIN_SOURCE_CIDR",
        "ADMIN_SOURCES",
        "admin_sources",
        "high-risk-udp",
        "PCI",
        "DSS",
        "ISO",
        "IEC",
        "CIS",
        "Controls",
        "NIST",
        "SP",
        "GB",
        "T",
        "UTC",
        "SHA",
        "TCP",
        "SYN",
        "UDP",
        "IP",
        "portwarden",
        "csv",
        "jsonl",
        "json",
        "findings",
        "report",
        "inventory",
        "index",
        "html",
        "JavaScript",
        "TLS",
        "ID",
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "g",
        "n",
        "r",
        "v",
        "max_open_ports",
        "review_by",
        "expect",
        "unreachable",
        "internet",
        "vantage",
        "nmap",
        "sV",
        "change",
        "tcp",
        "udp",
        "fx",
        "CHG",
        "ssh",
        "https",
        "http",
        "v4.0",
        "v8",
        "r5",
        "SHA-256",
        "findings.csv",
        "findings.jsonl",
        "inventory.csv",
        "report.json",
        "index.html",
        "1.2.5.a",
        "ASV",
        // Group tags the profiles' conditions name (CIS 4.5, PCI DSS 11.4.6).
        "end-user",
        "service-provider",
        // Platforms and tools the fixes are written for (product names and commands).
        "AWS",
        "Azure",
        "PowerShell",
        "Kubernetes",
        "NetworkPolicy",
        "Debian",
        "Ubuntu",
        "CentOS",
        "RHEL",
        "Fedora",
        "SUSE",
        "Windows",
        "firewalld",
        "iptables",
        "ip6tables",
        "nftables",
        "ufw",
        "netsh",
        "systemd",
        "Terraform",
        "Ansible",
        "Google",
        "Cloud",
        "VPC",
        "ACL",
        "CLI",
        "aliyun",
        "gcloud",
        "NACL",
        "NSG",
        "GCP",
        "Alibaba",
        "ECS",
        "Security",
        "Group",
    ];
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |w: &mut String, out: &mut Vec<String>| {
        let t = w.trim_matches(|c: char| c == '.' || c == '-' || c == '_');
        if !t.is_empty()
            && t.chars().any(|c| c.is_ascii_alphabetic())
            && !FIXED.contains(&t)
            && !allowed.contains(t)
            && !t.starts_with("fx")
            && !t.starts_with(|c: char| c.is_ascii_digit())
            && !t.chars().all(|c| c.is_ascii_hexdigit())
        {
            out.push(t.to_string());
        }
        w.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out.sort();
    out.dedup();
    out
}

/// Identifiers of an audit that may stay as written in any language:
/// addresses, services, products, groups, host names, policy values, ids.
fn identifiers(report: &Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut add = |v: &Value| {
        if let Some(s) = v.as_str() {
            for w in s
                .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
            {
                out.insert(
                    w.trim_matches(|c: char| c == '.' || c == '-' || c == '_')
                        .to_string(),
                );
            }
        }
    };
    for r in report["inventory"].as_array().unwrap() {
        for k in [
            "ip",
            "service",
            "group",
            "justification",
            "approver",
            "ticket",
            "product",
        ] {
            add(&r[k]);
        }
    }
    for r in report["ports"].as_array().unwrap() {
        add(&r["ip"]);
        add(&r["service"]);
        add(&r["group"]);
        for c in r["checks"].as_array().unwrap() {
            add(&c["check"]);
            add(&c["exception"]);
        }
    }
    for s in report["charts"]["services"].as_array().unwrap() {
        add(&s["service"]);
    }
    for e in report["exceptions"].as_array().unwrap() {
        for k in [
            "id", "target", "ports", "reason", "approver", "ticket", "check",
        ] {
            add(&e[k]);
        }
    }
    let scope = &report["scope"];
    for k in ["ports", "operator"] {
        add(&scope[k]);
    }
    for k in ["file", "name", "owner"] {
        add(&scope["policy"][k]);
    }
    add(&scope["rules"]["version"]);
    for k in ["targets", "excludes", "command_line"] {
        for v in scope[k].as_array().unwrap() {
            add(v);
        }
    }
    // Interface names (`eth0`) beside the source addresses.
    for v in scope["source_interfaces"].as_array().into_iter().flatten() {
        add(v);
    }
    // What imported files say about their scan.
    for i in scope["inputs"].as_array().into_iter().flatten() {
        for k in ["path", "kind", "scanner", "scanner_version", "args"] {
            add(&i[k]);
        }
        for l in i["ports"].as_array().into_iter().flatten() {
            for k in ["protocol", "scan_type", "ports"] {
                add(&l[k]);
            }
        }
    }
    for f in report["compliance"].as_array().unwrap() {
        add(&f["id"]);
        for r in f["requirements"].as_array().unwrap() {
            add(&r["id"]);
            add(&r["control"]);
        }
    }
    out
}

/// A zh-CN report of a real lab audit (three groups, an expired exception,
/// a windowed one) shows no English words outside identifiers.
#[test]
fn zh_cn_lab_report_has_no_english_outside_identifiers() {
    use crate::lab::{FAST_CONNECT, Lab};
    let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
    let ports = [22u16, 23, 80, 443, 445, 3389, 6379, 8080];
    let mut b = Lab::builder().v4_prefix("198.19.1.0/24").ports(&ports);
    for (a, p) in [
        ("198.19.1.2", 22),
        ("198.19.1.2", 443),
        ("198.19.1.2", 3389),
        ("198.19.1.17", 22),
        ("198.19.1.17", 80),
        ("198.19.1.17", 6379),
        ("198.19.1.33", 23),
        ("198.19.1.33", 8080),
        ("198.19.1.50", 445),
    ] {
        b = b.open(ip(a), p);
    }
    let lab = b.build();
    let scratch = Scratch::new("zh-lab");
    let policy = scratch.0.join("policy.toml");
    std::fs::write(
        &policy,
        r#"name = "lab"

[[group]]
name = "cardholder"
targets = ["198.19.1.0/28"]
tags = ["cardholder"]
profiles = ["pci-dss-4.0", "mlps2-level3"]
max_open_ports = 2

[[group.allow]]
port = 443
justification = "payment API"
approver = "ciso"
review_by = 2099-12-31

[[group.allow]]
port = 22
review_by = 2026-01-31

[[group]]
name = "dmz"
targets = ["198.19.1.16/28"]
vantage = "internet"
profiles = ["pci-dss-4.0", "iso27001-2022", "cis-v8", "nist-800-53r5"]

[[group.allow]]
port = 80
justification = "redirect"
approver = "web-lead"
review_by = 2099-12-31

[[exception]]
id = "RISK-77"
target = "198.19.1.33"
port = 23
reason = "legacy PLC"
approver = "ot-security"
expires = 2099-12-31
window = { every = "quarter", last_days = 14 }

[[exception]]
id = "RISK-12"
target = "198.19.1.2"
port = 3389
reason = "vendor support"
approver = "ciso"
expires = 2020-01-31
"#,
    )
    .unwrap();
    let out = scratch.0.join("report");
    let ports_arg = ports.map(|p| p.to_string()).join(",");
    let mut args = vec![
        "audit",
        "198.19.1.0/24",
        "-p",
        &ports_arg,
        "--policy",
        policy.to_str().unwrap(),
        "--as-of",
        "2026-11-24",
        "--lang",
        "zh-CN",
        "--no-store",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(FAST_CONNECT);
    let run = lab.run(&args);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    // The terminal summary is in Chinese too.
    let stdout = text(&run.stdout);
    assert!(stdout.starts_with("严重程度"), "{stdout}");
    assert!(stdout.contains("报告："), "{stdout}");
    let report: Value = report_with_rows(&out);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let allowed = identifiers(&report);
    let words = english_words(&visible_text(&html), &allowed);
    assert!(words.is_empty(), "English in the zh-CN page: {words:?}");
    // And on every platform's page (the commands are code, not prose).
    let mut pages = 0;
    for e in std::fs::read_dir(out.join("fixes")).unwrap() {
        let path = e.unwrap().path();
        let page = std::fs::read_to_string(&path).unwrap();
        let words = english_words(&visible_text(&page), &allowed);
        assert!(words.is_empty(), "English in {}: {words:?}", path.display());
        pages += 1;
    }
    assert!(pages >= 10, "{pages} platform pages");
    // What the page's script shows from its data block: labels and messages.
    let start = html.find("id=\"table-data\">").unwrap() + "id=\"table-data\">".len();
    let data: Value =
        serde_json::from_str(&html[start..start + html[start..].find("</script>").unwrap()])
            .unwrap();
    let mut shown = String::new();
    for key in ["ck", "st", "sv"] {
        for pair in data[key].as_array().unwrap() {
            shown.push_str(pair[1].as_str().unwrap());
            shown.push(' ');
        }
    }
    for row in data["rows"].as_array().unwrap() {
        for chip in row[8].as_array().unwrap() {
            if let Some(m) = chip.get(4).and_then(Value::as_str) {
                shown.push_str(m);
                shown.push(' ');
            }
        }
    }
    assert!(shown.contains("端口开放但未获批准"), "{shown}");
    let words = english_words(&shown, &allowed);
    assert!(
        words.is_empty(),
        "English in the zh-CN table data: {words:?}"
    );
    // The CSV has a BOM and Chinese labels beside the stable ids.
    let csv = std::fs::read(out.join("findings.csv")).unwrap();
    assert!(csv.starts_with(b"\xEF\xBB\xBF"));
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.contains(",fail,不符合,"), "{csv}");
}

/// Browser figures for a big report (not an assertion: timings depend on
/// the machine). Make one with
/// `PW_BENCH_KEEP=1 cargo bench --bench report -- --only 16`, then
/// `PW_REPORT_DIR=<kept dir> cargo test --release --test tests report::page_perf -- --ignored --nocapture`.
#[test]
#[ignore]
fn page_perf_on_a_large_report() {
    let dir = PathBuf::from(std::env::var("PW_REPORT_DIR").expect("PW_REPORT_DIR"));
    let Some(driver) = Driver::start(true) else {
        return;
    };
    let url = format!("file://{}", dir.join("index.html").display());
    let t0 = Instant::now();
    driver.go(&url);
    let load_ms = t0.elapsed().as_millis();
    let nav = driver.js(
        "var t = performance.getEntriesByType('navigation')[0]; return [t.domContentLoadedEventEnd, t.loadEventEnd]",
    );
    let rows = driver
        .js("return JSON.parse(document.getElementById('table-data').textContent).rows.length");
    let filter = driver.js(
        "var s = document.getElementById('f-sev'); var t = performance.now(); s.value = '4'; s.dispatchEvent(new Event('change')); document.body.offsetHeight; return performance.now() - t",
    );
    let search = driver.js(
        "var s = document.getElementById('f-sev'); s.value = ''; var q = document.getElementById('f-q'); q.value = '198.18.7.'; var t = performance.now(); s.dispatchEvent(new Event('change')); document.body.offsetHeight; return performance.now() - t",
    );
    eprintln!(
        "{rows} rows: first screen {load_ms} ms over WebDriver (DOMContentLoaded {:.0} ms, load {:.0} ms); severity filter {:.0} ms; text search {:.0} ms",
        nav[0].as_f64().unwrap_or(0.0),
        nav[1].as_f64().unwrap_or(0.0),
        filter.as_f64().unwrap_or(0.0),
        search.as_f64().unwrap_or(0.0)
    );
}

/// `--compress`: every data file is `NAME.zst` and decodes to the bytes the
/// plain audit writes; the manifest lists and `verify` checks the files as
/// written; `portwarden fix` reads the compressed fixes; a flipped byte
/// fails `verify`, even with the manifest re-hashed to match (the frame's
/// checksum). report.json is schema 5 without per-row lists.
#[test]
fn compressed_report_verifies_reads_back_and_names_tampering() {
    let scratch = Scratch::new("packed");
    let a = synthetic_audit(&scratch.0, "en");
    // The same input, policy and day (messages name the policy file).
    let b = scratch.0.join("packed");
    let run = audit_generated(&scratch.0, &b, "en", &["--compress"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(b.join("manifest.json")).unwrap()).unwrap();
    let mut data = 0;
    for e in std::fs::read_dir(&a).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !(name.ends_with(".csv") || name.ends_with(".jsonl") || name == "findings.json") {
            assert!(b.join(&name).exists(), "{name} missing");
            continue;
        }
        data += 1;
        let zst = format!("{name}.zst");
        assert!(!b.join(&name).exists(), "{name} left plain");
        assert!(
            manifest["files"][&zst].is_string(),
            "{zst} not in the manifest"
        );
        let back = zstd::decode_all(std::fs::File::open(b.join(&zst)).unwrap()).unwrap();
        let want = std::fs::read(a.join(&name)).unwrap();
        assert!(back == want, "{name} differs once decompressed");
    }
    assert!(data >= 7, "{data}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(b.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 5);
    assert!(report.get("ports").is_none() && report.get("inventory").is_none());
    let verify = |dir: &Path| Command::new(EXE).arg("verify").arg(dir).output().unwrap();
    let ok = verify(&b);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    // `portwarden fix` reads fixes.jsonl.zst.
    let id = report["fix_groups"][0]["finding_ids"][0].as_str().unwrap();
    let fix = Command::new(EXE)
        .args(["fix", "--report"])
        .arg(&b)
        .arg(id)
        .output()
        .unwrap();
    assert_eq!(fix.status.code(), Some(0), "{}", text(&fix.stderr));
    assert!(!fix.stdout.is_empty());
    // Tamper inside the frame, then re-hash the manifest to match.
    let path = b.join("findings.jsonl.zst");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let bad = verify(&b);
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        text(&bad.stdout).contains("findings.jsonl.zst"),
        "{}",
        text(&bad.stdout)
    );
    let mut m = manifest.clone();
    m["files"]["findings.jsonl.zst"] = json!(portwarden::report::evidence::sha256_hex(&bytes));
    m["sizes"]["findings.jsonl.zst"] = json!(bytes.len());
    std::fs::write(
        b.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    let rehashed = verify(&b);
    assert_ne!(
        rehashed.status.code(),
        Some(0),
        "{}",
        text(&rehashed.stdout)
    );
    assert!(
        text(&rehashed.stdout).contains("ALTERED  findings.jsonl.zst"),
        "{}",
        text(&rehashed.stdout)
    );
}
