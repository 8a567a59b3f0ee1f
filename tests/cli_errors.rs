//! Bad input fails before any packet: exit code 2, one line on stderr that
//! names the offending value, nothing on stdout, never a panic.
//!
//! The binary runs in a bare network namespace (only `lo`, no routes), so
//! even if a bad spec were accepted by mistake the scan could reach nothing;
//! a watchdog kills it if it runs instead of failing.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Lab, Netns};

struct Failure {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(ns: &Netns, args: &[&str]) -> Failure {
    let mut cmd: Command = ns.command(Lab::bin());
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portwarden");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("portwarden {args:?} ran instead of rejecting its input");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    Failure {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Runs `args`, checks the usage-error contract and returns the message.
fn usage_error(args: &[&str]) -> String {
    let ns = Netns::new();
    let f = run(&ns, args);
    assert!(
        !f.stderr.contains("panicked"),
        "{args:?} panicked:\n{}",
        f.stderr
    );
    assert_eq!(
        f.code,
        Some(2),
        "{args:?}: exit code; stderr:\n{}",
        f.stderr
    );
    assert!(
        f.stdout.is_empty(),
        "{args:?} wrote to stdout: {}",
        f.stdout
    );
    let msg = f.stderr.trim_end();
    assert!(!msg.is_empty(), "{args:?}: no error message");
    assert_eq!(
        msg.lines().count(),
        1,
        "{args:?}: error is not one line:\n{msg}"
    );
    msg.to_string()
}

fn assert_mentions(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "error lacks `{n}`: {msg}");
    }
}

#[test]
fn malformed_cidr_names_the_prefix() {
    let msg = usage_error(&["scan", "198.18.0.0/33", "-p", "80"]);
    assert_mentions(&msg, &["198.18.0.0/33"]);
}

#[test]
fn whole_internet_needs_allow_large() {
    let msg = usage_error(&["scan", "0.0.0.0/0", "-p", "80"]);
    assert_mentions(&msg, &["--allow-large"]);
    // 2^32 minus network and broadcast, written either way.
    assert!(
        msg.contains("4,294,967,294") || msg.contains("4294967294"),
        "error lacks the address count: {msg}"
    );
}

#[test]
fn reversed_range_is_refused() {
    let msg = usage_error(&["scan", "198.18.0.20-198.18.0.10", "-p", "80"]);
    assert_mentions(&msg, &["198.18.0.20-198.18.0.10", "reversed"]);
}

#[test]
fn unknown_port_name_suggests_the_close_one() {
    let msg = usage_error(&["scan", "127.0.0.1", "-p", "shh"]);
    assert_mentions(&msg, &["shh", "ssh"]);
}

#[test]
fn port_out_of_range_is_named() {
    let msg = usage_error(&["scan", "127.0.0.1", "-p", "70000"]);
    assert_mentions(&msg, &["70000"]);
}

#[test]
fn missing_target_file_is_named() {
    let msg = usage_error(&["scan", "@/nonexistent/file", "-p", "80"]);
    assert_mentions(&msg, &["/nonexistent/file"]);
}

#[test]
fn bad_line_in_target_file_has_file_and_line() {
    let path = temp_file(
        "targets.txt",
        "198.18.0.1\n# a comment\n\n198.18.0.300\n198.18.0.2\n",
    );
    let p = path.to_str().unwrap();
    let msg = usage_error(&["scan", &format!("@{p}"), "-p", "80"]);
    assert_mentions(&msg, &[&format!("{p}:4"), "198.18.0.300"]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn unknown_format_is_refused() {
    let msg = usage_error(&["scan", "127.0.0.1", "-p", "80", "--format", "xml"]);
    assert_mentions(&msg, &["xml"]);
}

#[test]
fn audit_checks_its_input_too() {
    let msg = usage_error(&[
        "audit",
        "198.18.0.0/33",
        "-p",
        "80",
        "--out",
        "/nonexistent/x",
    ]);
    assert_mentions(&msg, &["198.18.0.0/33"]);
}

#[test]
fn reversed_port_range_is_refused() {
    let msg = usage_error(&["scan", "127.0.0.1", "-p", "80-70"]);
    assert_mentions(&msg, &["80-70"]);
}

#[test]
fn wide_ipv6_prefix_needs_allow_large() {
    let msg = usage_error(&["scan", "2001:2::/32", "-p", "80"]);
    assert_mentions(&msg, &["2001:2::/32", "--allow-large"]);
}

#[test]
fn timeout_bounds_must_be_ordered() {
    let msg = usage_error(&[
        "scan",
        "127.0.0.1",
        "-p",
        "80",
        "--timeout-min",
        "500",
        "--timeout-max",
        "100",
    ]);
    assert_mentions(&msg, &["--timeout-min", "500", "100"]);
}

#[test]
fn zero_rate_is_refused() {
    let msg = usage_error(&["scan", "127.0.0.1", "-p", "80", "--rate", "0"]);
    assert_mentions(&msg, &["--rate"]);
}

#[test]
fn missing_exclude_file_is_named() {
    let msg = usage_error(&[
        "scan",
        "127.0.0.1",
        "-p",
        "80",
        "--exclude-file",
        "/nonexistent/excludes",
    ]);
    assert_mentions(&msg, &["/nonexistent/excludes"]);
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("pw-cli-{}-{n}-{name}", std::process::id()));
    std::fs::write(&p, text).expect("temp file");
    p
}

#[test]
fn policy_platform_typo_is_named_with_file_and_line() {
    let policy = temp_file(
        "platforms.toml",
        "[[group]]\nname = \"web\"\ntargets = [\"127.0.0.1\"]\nprofiles = [\"pci-dss-4.0\"]\nplatforms = [\"windows\", \"ufx\"]\n",
    );
    let p = policy.to_str().unwrap();
    let want = [
        &format!("{p}:1: group 'web'")[..],
        "unknown remediation platform 'ufx'",
        "did you mean 'ufw'",
    ];
    assert_mentions(&usage_error(&["policy", "check", p]), &want);
    assert_mentions(&usage_error(&["audit", "--policy", p, "--no-store"]), &want);
    let _ = std::fs::remove_file(&policy);
}

#[test]
fn audit_refuses_resume() {
    let msg = usage_error(&["audit", "127.0.0.1", "--resume", "x.json", "--no-store"]);
    assert_mentions(&msg, &["--resume finishes a `scan`"]);
}

#[test]
fn probe_timeouts_above_a_minute_are_refused() {
    for flag in ["--timeout-initial", "--timeout-max"] {
        let msg = usage_error(&["scan", "127.0.0.1", "-p", "80", flag, "60001"]);
        assert_mentions(&msg, &[flag, "60001", "60000 ms"]);
    }
}

/// Text from files reaches the terminal only through the report's
/// escaping: no ESC or BEL from a target list, a masscan file or a policy
/// can retitle or repaint the terminal.
#[test]
fn file_contents_never_reach_the_terminal_raw() {
    let raw = |s: &str| s.contains('\u{1b}') || s.contains('\u{7}');
    let targets = temp_file(
        "esc-targets.txt",
        "198.18.0.1\n198.18.0.300\u{1b}]0;pwned\u{7}\n",
    );
    let msg = usage_error(&["scan", &format!("@{}", targets.display()), "-p", "80"]);
    assert!(!raw(&msg), "{msg:?}");
    assert_mentions(&msg, &["198.18.0.300\u{FFFD}]0;pwned\u{FFFD}"]);
    let masscan = temp_file(
        "esc-masscan.json",
        "[\n{\"ip\": \"198.18.0.1\u{1b}[2J\", \"timestamp\": \"1\", \"ports\": [{\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\"}]}\n]\n",
    );
    let msg = usage_error(&[
        "audit",
        "--from-masscan",
        masscan.to_str().unwrap(),
        "--no-store",
        "--out",
        "/nonexistent/x",
    ]);
    assert!(!raw(&msg), "{msg:?}");
    let policy = temp_file(
        "esc-policy.toml",
        "[[group]]\nname = \"web\\u001b]0;pwned\\u0007\"\ntargets = [\"198.18.0.1\"]\n",
    );
    let ns = Netns::new();
    let f = run(&ns, &["policy", "check", policy.to_str().unwrap()]);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(
        f.stdout.contains("group web\u{FFFD}]0;pwned\u{FFFD}"),
        "{}",
        f.stdout
    );
    assert!(!raw(&f.stdout) && !raw(&f.stderr), "{:?}", f.stdout);
    for p in [targets, masscan, policy] {
        let _ = std::fs::remove_file(p);
    }
}

/// An import audits what its files recorded: targets or `-p` beside
/// `--from-*` would be written into the scope without having been scanned.
#[test]
fn targets_or_ports_with_an_import_are_refused() {
    let dir = std::env::temp_dir().join(format!("pw-import-scope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obs = dir.join("o.jsonl");
    std::fs::write(
        &obs,
        "{\"ip\":\"198.18.0.5\",\"port\":22,\"proto\":\"tcp\",\"state\":\"open\",\"reason\":\"connected\",\"rtt_ms\":0.1,\"time\":\"2026-11-20T10:00:00Z\"}\n",
    )
    .unwrap();
    let obs = obs.to_str().unwrap();
    let out = dir.join("r");
    let out = out.to_str().unwrap();
    for args in [
        &[
            "audit",
            "198.18.0.0/24",
            "--from-jsonl",
            obs,
            "--no-store",
            "--out",
            out,
        ][..],
        &[
            "audit",
            "-p",
            "22",
            "--from-jsonl",
            obs,
            "--no-store",
            "--out",
            out,
        ][..],
    ] {
        let msg = usage_error(args);
        assert_mentions(&msg, &["--from-", "positional targets and -p"]);
        assert!(
            !std::path::Path::new(out).exists(),
            "{args:?} wrote a report"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_label_file_in_rules_is_named_before_scanning() {
    let dir = std::env::temp_dir().join(format!("pw-cli-i18n-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("i18n")).unwrap();
    let file = dir.join("i18n/zh-CN.toml");
    std::fs::write(&file, "[heading\n").unwrap();
    let out = dir.join("report");
    let msg = usage_error(&[
        "audit",
        "127.0.0.1",
        "-p",
        "1",
        "--no-store",
        "--rules",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_mentions(&msg, &[&format!("{}:", file.display())[..]]);
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn top_udp_counts_and_host_timeouts_are_checked() {
    let msg = usage_error(&["scan", "198.18.0.1", "--top-udp", "1001"]);
    assert_mentions(&msg, &["top-udp:1001", "1000 ports"]);
    let msg = usage_error(&["scan", "198.18.0.1", "-p", "top-udp:0"]);
    assert_mentions(&msg, &["top-udp:0", "select 1 to 1000"]);
    let msg = usage_error(&["scan", "198.18.0.1", "-p", "U:53", "--host-timeout", "5x"]);
    assert_mentions(&msg, &["5x", "unknown unit"]);
    let msg = usage_error(&[
        "scan",
        "198.18.0.1",
        "-p",
        "U:53",
        "--host-timeout",
        "500ms",
    ]);
    assert_mentions(&msg, &["500ms", "1 s minimum"]);
}
