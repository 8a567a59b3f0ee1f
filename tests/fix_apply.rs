//! Remediation proven by running it: the real binary audits a lab host,
//! `portwarden fix` prints the fixes, and the generated ufw, iptables,
//! ip6tables and nftables commands are applied inside the target namespace.
//! A re-scan from the scanner namespace must then see the port filtered —
//! and, for a restrict-source fix, still open from an admin source (a
//! second scanner address) —, and after the undo open again.
//!
//! Lines that arm the timed rollback (`systemd-run`, backups under
//! /var/backups) cannot run in a namespace test: they are checked to be
//! present and skipped. `sudo` is a no-op function (we run as root).

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::lab::{FAST_CONNECT, Lab, SCANNER_V4, SCANNER_V6};

const HOST4: &str = "198.19.1.2";
const HOST6: &str = "2001:2:0:1::2";
const ADMIN4: &str = "198.18.5.10";
const ADMIN6: &str = "2001:2:5::10";

const POLICY: &str = r#"
[[group]]
name = "dmz"
targets = ["198.19.1.0/28", "2001:2:0:1::/124"]
vantage = "internet"
admin_sources = ["198.18.5.0/24", "2001:2:5::/64"]

[[group.allow]]
port = 22
service = "ssh"
justification = "administration"
approver = "ciso"
review_by = 2099-12-31
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("pw-fix-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Removes the test's temp dir on every exit path.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn need(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{program} is missing (tests/setup.sh installs it)"
        );
        eprintln!("skipping: {program} is not installed");
    }
    found
}

/// A lab with ssh and redis open on one v4 and one v6 host, and the admin
/// sources as extra addresses of the scanner namespace (routed back by the target).
fn lab() -> Lab {
    let mut b = Lab::builder()
        .v4_prefix("198.19.1.0/28")
        .v6_prefix("2001:2:0:1::/124")
        .ports(&[22, 6379]);
    for h in [HOST4, HOST6] {
        b = b.open(ip(h), 22).open(ip(h), 6379);
    }
    let lab = b.build();
    let s = lab.scanner_ns().to_owned();
    let t = lab.target_ns().to_owned();
    for args in [
        vec!["-n", &s, "addr", "add", "198.18.5.10/32", "dev", "lo"],
        vec![
            "-n",
            &s,
            "addr",
            "add",
            "2001:2:5::10/128",
            "dev",
            "lo",
            "nodad",
        ],
    ] {
        run_ok(Command::new("ip").args(&args));
    }
    let (v4, v6) = (SCANNER_V4.to_string(), SCANNER_V6.to_string());
    run_ok(Command::new("ip").args(["-n", &t, "route", "add", "198.18.5.0/24", "via", &v4]));
    run_ok(Command::new("ip").args(["-n", &t, "route", "add", "2001:2:5::/64", "via", &v6]));
    lab
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Audits the lab and returns the report directory.
fn audit(lab: &Lab, dir: &Path) -> PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = dir.join("report");
    // From the (lab) internet: the restrict-source cards need the
    // remote-admin-internet findings a proven internet vantage gives.
    let mut args = vec![
        "audit",
        HOST4,
        HOST6,
        "--vantage",
        "internet",
        "-p",
        "22,6379",
        "--no-identify",
        "--no-store",
        "--policy",
        policy.to_str().unwrap(),
        "--as-of",
        "2026-11-24",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(FAST_CONNECT);
    let o = lab
        .command(Lab::bin())
        .args(&args)
        .env("PORTWARDEN_TEST_VANTAGE", "lab")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.code() == Some(1),
        "audit: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The id of the finding `check` on host:port.
fn finding_id(report: &Path, check: &str, host: &str, port: u16) -> String {
    let raw = std::fs::read_to_string(report.join("findings.json")).unwrap();
    let v: Value = serde_json::from_str(&raw).unwrap();
    let list = match &v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o["findings"].as_array().unwrap().clone(),
        _ => panic!("findings.json"),
    };
    list.iter()
        .find(|f| f["check"] == check && f["ip"] == host && f["port"] == port)
        .unwrap_or_else(|| panic!("no {check} finding on {host}:{port} in {raw}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The fix's commands and undo for one platform, from `portwarden fix`.
struct Printed {
    commands: String,
    undo: String,
}

fn fix(lab: &Lab, report: &Path, id: &str, platform: &str) -> Printed {
    let o = lab.run(&[
        "fix",
        "--report",
        report.to_str().unwrap(),
        id,
        "--platform",
        platform,
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "fix: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let body = text
        .split_once(&format!("[{platform}]\n"))
        .unwrap_or_else(|| panic!("no {platform} block in {text}"))
        .1;
    let (commands, rest) = body.split_once("### undo\n").expect("undo");
    let (undo, _) = rest.split_once("### verify\n").expect("verify");
    Printed {
        commands: commands.to_owned(),
        undo: undo.to_owned(),
    }
}

/// Runs shell text in the target namespace, without the rollback lines.
/// `wrap` puts the namespace command inside another one (ufw's private /etc).
fn apply(lab: &Lab, text: &str, ufw_etc: Option<&Path>) {
    let mut script = String::from("sudo() { \"$@\"; }\n");
    for line in text.lines() {
        if line.contains("systemd-run") || line.contains("/var/backups") {
            continue;
        }
        script.push_str(line);
        script.push('\n');
    }
    let mut c = match ufw_etc {
        // ufw keeps its rules in /etc: give it a private copy (a mount
        // namespace), so the test never touches this machine's firewall config.
        Some(etc) => {
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c"]).arg(format!(
                "mount --bind {e}/ufw /etc/ufw && mount --bind {e}/default-ufw /etc/default/ufw && exec ip netns exec {t} sh -s",
                e = etc.display(),
                t = lab.target_ns()
            ));
            c
        }
        None => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", lab.target_ns(), "sh", "-s"]);
            c
        }
    };
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "applied:\n{script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The state portwarden reports for host:port, scanning from the scanner namespace.
fn scan(lab: &Lab, host: &str, port: u16) -> String {
    let p = port.to_string();
    let mut args = vec!["scan", host, "-p", &p, "--format", "jsonl"];
    args.extend(FAST_CONNECT);
    let o = lab.run(&args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["port"] == port {
            return v["state"].as_str().unwrap().to_owned();
        }
    }
    panic!("no observation of {host}:{port}: {text}")
}

/// Whether a TCP connect from `source` (an admin source) reaches host:port.
fn connects_from(lab: &Lab, source: &str, host: &str, port: u16) -> bool {
    let (source, target) = (ip(source), SocketAddr::new(ip(host), port));
    lab.in_scanner(move || {
        let domain = socket2::Domain::for_address(target);
        let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::new(source, 0).into()).unwrap();
        let ok = s
            .connect_timeout(&target.into(), Duration::from_millis(700))
            .is_ok();
        drop(TcpStream::from(s));
        ok
    })
}

/// Applies a close-port fix (redis, not allowed) and a restrict-source fix
/// (ssh, remote administration from the internet) on `platform` for `host`,
/// re-scans, undoes both and re-scans.
fn prove(platform: &str, host: &str, admin: &str, setup: &str, ufw: bool) {
    let dir = TempDir(tempdir(platform));
    let lab = lab();
    let report = audit(&lab, &dir.0);
    let etc = ufw.then(|| {
        let etc = dir.0.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        run_ok(
            Command::new("cp")
                .args(["-a", "/etc/ufw"])
                .arg(etc.join("ufw")),
        );
        run_ok(
            Command::new("cp")
                .arg("/etc/default/ufw")
                .arg(etc.join("default-ufw")),
        );
        etc
    });
    apply(&lab, setup, etc.as_deref());
    assert_eq!(scan(&lab, host, 6379), "open", "{platform}: before the fix");
    assert_eq!(scan(&lab, host, 22), "open", "{platform}: before the fix");

    let close = fix(
        &lab,
        &report,
        &finding_id(&report, "not-allowed", host, 6379),
        platform,
    );
    let restrict = fix(
        &lab,
        &report,
        &finding_id(&report, "remote-admin-internet", host, 22),
        platform,
    );
    // Lock-out safety: the ssh fix arms a timed rollback and keeps the admin sources.
    assert!(
        restrict.commands.contains("systemd-run --on-active=300"),
        "{}",
        restrict.commands
    );
    assert!(restrict.commands.contains(if admin.contains(':') {
        "2001:2:5::/64"
    } else {
        "198.18.5.0/24"
    }));
    assert!(
        !close.commands.contains("systemd-run"),
        "redis is no admin port"
    );

    apply(&lab, &close.commands, etc.as_deref());
    apply(&lab, &restrict.commands, etc.as_deref());
    assert_eq!(
        scan(&lab, host, 6379),
        "filtered",
        "{platform}: close-port applied"
    );
    assert_eq!(
        scan(&lab, host, 22),
        "filtered",
        "{platform}: restrict-source applied"
    );
    assert!(
        connects_from(&lab, admin, host, 22),
        "{platform}: admin source still reaches ssh"
    );
    assert!(
        !connects_from(&lab, admin, host, 6379),
        "{platform}: redis closed for all"
    );
    // The new rules sit after the ESTABLISHED,RELATED accept, never above it.
    let listing = match platform {
        "iptables" => {
            let tool = if host.contains(':') {
                "ip6tables"
            } else {
                "iptables"
            };
            run_ok(Command::new("ip").args(["netns", "exec", lab.target_ns(), tool, "-S", "INPUT"]))
        }
        // ufw's chains are listed with nft (ip6tables-nft cannot list ufw6's).
        "ufw" => {
            let (family, chain) = if host.contains(':') {
                ("ip6", "ufw6-before-input")
            } else {
                ("ip", "ufw-before-input")
            };
            run_ok(Command::new("ip").args([
                "netns",
                "exec",
                lab.target_ns(),
                "nft",
                "list",
                "chain",
                family,
                "filter",
                chain,
            ]))
        }
        _ => run_ok(Command::new("ip").args([
            "netns",
            "exec",
            lab.target_ns(),
            "nft",
            "list",
            "chain",
            "inet",
            "filter",
            "input",
        ])),
    };
    if platform != "ufw" {
        let est = listing
            .find("RELATED,ESTABLISHED")
            .or_else(|| listing.find("established,related"));
        let ours = listing.find("portwarden-tcp-");
        assert!(
            matches!((est, ours), (Some(e), Some(o)) if e < o),
            "{platform}: rules above the established accept:\n{listing}"
        );
    } else {
        // ufw's own chain accepts established connections before the user rules.
        assert!(
            listing.contains("related,established") && listing.contains("accept"),
            "{listing}"
        );
    }

    apply(&lab, &close.undo, etc.as_deref());
    apply(&lab, &restrict.undo, etc.as_deref());
    assert_eq!(
        scan(&lab, host, 6379),
        "open",
        "{platform}: close-port undone"
    );
    assert_eq!(
        scan(&lab, host, 22),
        "open",
        "{platform}: restrict-source undone"
    );
}

#[test]
fn iptables_fix_and_undo_applied_in_the_lab() {
    if need("iptables") {
        prove("iptables", HOST4, ADMIN4, "", false);
    }
}

#[test]
fn ip6tables_fix_and_undo_applied_in_the_lab() {
    if need("ip6tables") {
        prove("iptables", HOST6, ADMIN6, "", false);
    }
}

#[test]
fn nftables_fix_and_undo_applied_in_the_lab() {
    // The commands assume the usual `inet filter` table with an `input` chain.
    let setup = "nft add table inet filter\nnft add chain inet filter input '{ type filter hook input priority 10; policy accept; }'\n";
    if need("nft") {
        prove("nftables", HOST4, ADMIN4, setup, false);
        prove("nftables", HOST6, ADMIN6, setup, false);
    }
}

#[test]
fn ufw_fix_and_undo_applied_in_the_lab() {
    // ufw on, everything allowed in, and the two rules that open the ports.
    let setup =
        "ufw --force enable\nufw default allow incoming\nufw allow 22/tcp\nufw allow 6379/tcp\n";
    if need("ufw") && need("unshare") {
        prove("ufw", HOST4, ADMIN4, setup, true);
        prove("ufw", HOST6, ADMIN6, setup, true);
    }
}

/// The size of report.json for a /24 with 254 live hosts and 333 open
/// pairs (the issue's figure: 6.7 MB, 5.2 MB of it remediation). A figure,
/// not a pass/fail check: run with `--ignored --nocapture`; set
/// PORTWARDEN_BIN to compare another build.
#[test]
#[ignore]
fn report_json_size_for_a_slash24() {
    use crate::lab::Layout;
    let ports = vec![22, 23, 80, 443, 445, 3306, 3389, 5432, 6379, 8080];
    let layout = Layout {
        prefix: "198.19.1.0/24".into(),
        hosts: 1..=254,
        ports: ports.clone(),
        open_ports: ports,
        down: 0,
        open: 333,
        dropped: 0,
        rejected: 0,
        seed: 0x5eed_0012,
    };
    let lab = Lab::generated(Lab::builder(), &layout).build();
    let dir = TempDir(tempdir("size"));
    let out = dir.0.join("report");
    let mut args = vec![
        "audit",
        "198.19.1.0/24",
        "-p",
        "22,23,80,443,445,3306,3389,5432,6379,8080",
        "--no-identify",
        "--no-store",
        "--as-of",
        "2026-11-24",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(FAST_CONNECT);
    let o = lab.run(&args);
    assert!(
        o.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let raw = std::fs::read_to_string(out.join("report.json")).unwrap();
    let v: Value = serde_json::from_str(&raw).unwrap();
    let rem = serde_json::to_string(&v["fix_groups"]).unwrap();
    println!(
        "report.json {} bytes; remediation {} bytes in {} entries; findings {}",
        raw.len(),
        rem.len(),
        v["fix_groups"].as_array().unwrap().len(),
        v["findings"].as_array().unwrap().len()
    );
}

/// `portwarden fix` on a hand-written report.json: the one finding's fix,
/// control characters made inert, and the errors that name what exists.
#[test]
fn fix_command_prints_one_finding_and_names_what_is_missing() {
    let dir = TempDir(tempdir("cli"));
    let report = r#"{"fix_groups":[{"anchor":"fx1","id":"0123456789ab","key":"close-port","title":"Close the port",
        "about":"about","severity":"high","port":22,"proto":"tcp","service":"ssh",
        "hosts":["198.18.0.5"],"finding_ids":["f1","f2"],"severity_label":"High",
        "platforms":[{"platform":"ufw","title":"ufw","language":"sh","verify_language":"sh",
        "warning":"careful\u001b[2J","commands":"sudo ufw deny 22/tcp","undo":"sudo ufw delete deny 22/tcp","verify":"sudo ufw status"},
        {"platform":"windows-netsh","title":"netsh","language":"bat","verify_language":"bat",
        "commands":"netsh x","undo":"netsh y","verify":"netsh z"}]}]}"#;
    std::fs::write(dir.0.join("report.json"), report).unwrap();
    let run = |args: &[&str]| {
        Command::new(Lab::bin())
            .args(["fix", "--report", dir.0.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["f2", "--platform", "ufw"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "# fix 0123456789ab (close-port): Close the port\n# about\n# hosts: 198.18.0.5\n# findings: f1 f2\n\n\
         ## ufw [ufw]\n# careful\u{FFFD}[2J\nsudo ufw deny 22/tcp\n### undo\nsudo ufw delete deny 22/tcp\n### verify\nsudo ufw status\n"
    );
    // A family selects its platforms.
    let o = run(&["f1", "--platform", "windows"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("## netsh [windows-netsh]\nnetsh x\n"));
    let o = run(&["f1", "--platform", "aws"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("has no platform 'aws'; it has: ufw, windows-netsh"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&["nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no fix for finding 'nope'"));
}
