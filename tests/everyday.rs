//! Issue 26, everyday use: nmap's spellings, a resumed scan that keeps its
//! results, output paths checked before any probe, manual pages and
//! completions, and the small things a new user meets. The binary runs in a
//! bare namespace of its own (only `lo`) or in the lab.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::lab::{Lab, Netns};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pw-everyday-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn names(d: &Path) -> BTreeSet<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A bare namespace with a listener on 127.0.0.1:40101, held until drop.
struct Loopback {
    ns: Netns,
    stop: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    fn new() -> Loopback {
        let ns = Netns::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let name = ns.name().to_string();
        let holder = std::thread::spawn(move || {
            crate::lab::enter_netns(&name).expect("enter the namespace");
            let l = std::net::TcpListener::bind("127.0.0.1:40101").expect("bind 40101");
            tx.send(()).unwrap();
            let _ = stop_rx.recv();
            drop(l);
        });
        rx.recv().unwrap();
        Loopback {
            ns,
            stop: Some(stop_tx),
            holder: Some(holder),
        }
    }

    /// portwarden with `args`, run in `dir` inside the namespace.
    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.ns
            .command(Lab::bin())
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("spawn portwarden")
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.holder.take() {
            let _ = h.join();
        }
    }
}

/// Starts `cmd` (portwarden under `ip netns exec`, which execs it), sends
/// it SIGINT after `ms` milliseconds, and returns what it wrote and its
/// exit.
fn interrupted(cmd: &mut Command, ms: u64) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portwarden");
    std::thread::sleep(std::time::Duration::from_millis(ms));
    // SAFETY: a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    child.wait_with_output().unwrap()
}

/// (ip, port, proto) → state of a JSONL text's observation lines.
fn rows(jsonl: &str) -> BTreeMap<(IpAddr, u16, String), String> {
    let mut m = BTreeMap::new();
    for line in jsonl.lines().filter(|l| l.contains("\"ip\"")) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let key = (
            v["ip"].as_str().unwrap().parse().unwrap(),
            v["port"].as_u64().unwrap() as u16,
            v["proto"].as_str().unwrap().to_string(),
        );
        let state = v["state"].as_str().unwrap().to_string();
        assert!(m.insert(key.clone(), state).is_none(), "{key:?} twice");
    }
    m
}

/// The README's nmap habits, one command line each: what it writes, and
/// that a flag we cannot honour is refused (exit 2, the reason, no file).
#[test]
fn common_nmap_command_lines_do_what_the_readme_says() {
    let lo = Loopback::new();
    let d = scratch("nmap");
    // -oX out.xml is nmap XML in out.xml, never a table in a file `X`.
    let o = lo.run(
        &d,
        &[
            "scan",
            "-sT",
            "-Pn",
            "-T4",
            "-p",
            "40101,40102",
            "127.0.0.1",
            "-oX",
            "out.xml",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    let xml = std::fs::read_to_string(d.join("out.xml")).unwrap();
    assert!(
        xml.contains("<nmaprun") && xml.contains("portid=\"40101\""),
        "{xml}"
    );
    assert!(xml.contains("<state state=\"open\""), "{xml}");
    assert!(
        text(&o.stderr).contains("-Pn is what portwarden always does"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(names(&d), BTreeSet::from(["out.xml".to_string()]));

    // -iL, --top-ports and -oG: the first 5 ports of the ranked TCP list.
    std::fs::write(d.join("hosts.txt"), "# lab\n127.0.0.1\n").unwrap();
    let o = lo.run(
        &d,
        &[
            "scan",
            "-iL",
            "hosts.txt",
            "--top-ports",
            "5",
            "-sT",
            "-oG",
            "out.gnmap",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    let g = std::fs::read_to_string(d.join("out.gnmap")).unwrap();
    let host = g
        .lines()
        .find(|l| l.starts_with("Host: 127.0.0.1 ()\tPorts: "))
        .unwrap_or_else(|| panic!("{g}"));
    for p in [
        "23/closed/tcp//telnet///",
        "445/closed/tcp//",
        "2375/closed/tcp//",
        "2379/closed/tcp//",
        "3389/closed/tcp//",
    ] {
        assert!(host.contains(p), "{p}: {host}");
    }
    assert_eq!(host.matches("/tcp/").count(), 5, "{host}");

    // -oA: the three files; -oN is our table.
    let o = lo.run(
        &d,
        &["scan", "-sT", "-p", "40101", "127.0.0.1", "-oA", "base"],
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    let table = std::fs::read_to_string(d.join("base.nmap")).unwrap();
    assert!(
        table.contains("40101/tcp") && table.contains("open"),
        "{table}"
    );
    assert!(
        std::fs::read_to_string(d.join("base.xml"))
            .unwrap()
            .contains("<nmaprun")
    );
    assert!(
        std::fs::read_to_string(d.join("base.gnmap"))
            .unwrap()
            .contains("40101/open/tcp")
    );
    // -oX - takes standard output's place.
    let o = lo.run(&d, &["scan", "-sT", "-p", "40101", "127.0.0.1", "-oX", "-"]);
    assert!(text(&o.stdout).starts_with("<?xml"), "{}", text(&o.stdout));

    // -sS -sU -p: both protocols; -F: 100 TCP ports; -T names and numbers.
    let o = lo.run(
        &d,
        &[
            "scan",
            "-sS",
            "-sU",
            "-p",
            "40101",
            "127.0.0.1",
            "--format",
            "jsonl",
            "-Tinsane",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    let got = rows(&text(&o.stdout));
    let lo4: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        got.get(&(lo4, 40101, "tcp".into())).map(String::as_str),
        Some("open")
    );
    assert_eq!(
        got.get(&(lo4, 40101, "udp".into())).map(String::as_str),
        Some("closed")
    );
    assert_eq!(got.len(), 2);
    let o = lo.run(
        &d,
        &["scan", "-F", "-sT", "127.0.0.1", "--format", "jsonl", "-T5"],
    );
    assert_eq!(rows(&text(&o.stdout)).len(), 100, "{}", text(&o.stderr));

    // Refused, with the reason, and nothing written.
    let before = names(&d);
    for (args, says) in [
        (vec!["scan", "-oXout2.xml", "127.0.0.1"], "ambiguous"),
        (vec!["scan", "-O", "127.0.0.1"], "cannot be honoured"),
        (vec!["scan", "-sn", "127.0.0.1"], "always scans ports"),
        (vec!["scan", "-v", "127.0.0.1"], "no verbosity levels"),
        (vec!["scan", "-sA", "127.0.0.1"], "not a scan type"),
        (vec!["scan", "-sS", "-sT", "127.0.0.1"], "two TCP engines"),
        (vec!["scan", "-T9", "127.0.0.1"], "not a timing preset"),
        (vec!["audit", "-oX", "a.xml", "127.0.0.1"], "--out DIR"),
        (
            vec!["scan", "-p", "22", "--top-ports", "5", "127.0.0.1"],
            "cannot be used with",
        ),
    ] {
        let o = lo.run(&d, &args);
        assert_eq!(code(&o), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o.stderr)
        );
        assert!(!text(&o.stderr).contains("scanned"), "{args:?}");
    }
    assert_eq!(names(&d), before);
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 26 item 2: the resume instructions, followed to the letter with
/// the same `-o`, end in one file holding every pair exactly once; the
/// resume file is removed when the scan completes; a complete output
/// given to --resume is refused, named, and left as it was.
#[test]
fn resumed_scan_continues_its_own_output() {
    let lab = Lab::standard();
    let v4 = lab.v4_prefix().expect("v4 prefix");
    let ports = lab.ports_arg();
    let d = scratch("resume");
    let out = d.join("int.jsonl");
    let resume = d.join("resume.json");
    let args: Vec<String> = [
        "scan",
        &v4,
        "-p",
        &ports,
        "--scan",
        "syn",
        "--seed",
        "5",
        "--rate",
        "1500",
        "--timeout-max",
        "300",
        "-o",
        out.to_str().unwrap(),
        "--resume-file",
        resume.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = interrupted(lab.command(Lab::bin()).args(&args), 1500);
    let err = text(&o.stderr);
    assert_eq!(code(&o), Some(130), "{err}");
    assert!(
        err.contains(&format!("(the same -o {} is continued)", out.display())),
        "{err}"
    );
    let first = rows(&std::fs::read_to_string(&out).unwrap());
    assert!(!first.is_empty());

    let mut again = args.clone();
    again.extend(["--resume".to_string(), resume.display().to_string()]);
    let o = lab.run(&again);
    let err = text(&o.stderr);
    assert_eq!(code(&o), Some(0), "{err}");
    assert!(
        err.contains("resume file") && err.contains("was removed"),
        "{err}"
    );
    assert!(!resume.exists(), "the resume file stayed behind");
    let all_text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !all_text.contains("\"type\":\"summary\""),
        "the incomplete record stayed"
    );
    let all = rows(&all_text);
    assert!(all.len() > first.len());
    for (k, v) in &first {
        assert_eq!(all.get(k), Some(v), "{k:?} lost");
    }
    // The same scan, uninterrupted, names the pairs of the scope.
    let whole = d.join("whole.jsonl");
    let mut once = args.clone();
    let at = once.iter().position(|a| a == "-o").unwrap() + 1;
    once[at] = whole.display().to_string();
    let o = lab.run(&once);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    let want: BTreeSet<(IpAddr, u16)> = rows(&std::fs::read_to_string(&whole).unwrap())
        .keys()
        .map(|(a, p, _)| (*a, *p))
        .collect();
    let got: BTreeSet<(IpAddr, u16)> = all.keys().map(|(a, p, _)| (*a, *p)).collect();
    assert_eq!(got.len(), all.len());
    assert!(
        got == want,
        "not every pair exactly once: {} of {}",
        got.len(),
        want.len()
    );
    let open: BTreeSet<(IpAddr, u16)> = all
        .iter()
        .filter(|(_, s)| *s == "open")
        .map(|((a, p, _), _)| (*a, *p))
        .collect();
    let lab_open: BTreeSet<(IpAddr, u16)> = lab
        .open_pairs()
        .into_iter()
        .filter(|(a, _)| a.is_ipv4())
        .collect();
    assert_eq!(open, lab_open);

    // The output is complete now: resuming into it again is refused.
    std::fs::write(&resume, "{}").unwrap();
    let o = lab.run(&again);
    let err = text(&o.stderr);
    assert_eq!(code(&o), Some(2), "{err}");
    assert!(
        err.contains(&format!("-o {}", out.display())) && err.contains("does not end with"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), all_text);
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 26 item 3: an output path that cannot be written fails at once
/// (exit 2, nothing scanned, nothing written or recorded); a missing folder
/// for `-o` and `--out` is created.
#[test]
fn output_paths_are_checked_before_any_probe() {
    let lo = Loopback::new();
    let d = scratch("paths");
    std::fs::write(d.join("file"), "x").unwrap();
    let store = d.join("h.db");
    let store_arg = store.to_str().unwrap();
    for (args, says) in [
        (
            vec![
                "audit",
                "127.0.0.1",
                "-p",
                "40101",
                "--out",
                "r1",
                "--store",
                store_arg,
                "--metrics",
                "no/such/dir/pw.prom",
            ],
            "the folder no/such/dir does not exist",
        ),
        (
            vec![
                "audit",
                "127.0.0.1",
                "-p",
                "40101",
                "--out",
                "file/r2",
                "--store",
                store_arg,
            ],
            "Not a directory",
        ),
        (
            vec![
                "audit",
                "127.0.0.1",
                "-p",
                "40101",
                "--out",
                "r3",
                "--store",
                "file/h.db",
            ],
            "is not a folder",
        ),
        (
            vec!["scan", "127.0.0.1", "-p", "40101", "-o", "file/out.jsonl"],
            "is not a folder",
        ),
        (
            vec!["scan", "127.0.0.1", "-p", "40101", "-oX", "file/x/out.xml"],
            "cannot create the folder",
        ),
    ] {
        let o = lo.run(&d, &args);
        let err = text(&o.stderr);
        assert_eq!(code(&o), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("scanned"), "{args:?}: {err}");
    }
    assert_eq!(names(&d), BTreeSet::from(["file".to_string()]));
    // Missing folders for -o and --out are created.
    let o = lo.run(
        &d,
        &[
            "scan",
            "127.0.0.1",
            "-p",
            "40101",
            "-o",
            "new/deeper/out.csv",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(d.join("new/deeper/out.csv")).unwrap();
    assert!(csv.starts_with("ip,port,proto,state"), "{csv}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `portwarden man` and `completions`: every page renders with `man -l`,
/// bash loads the completion, the other shells get a script, and the
/// systemd unit verifies once the pages are installed.
#[test]
fn manuals_render_and_completions_load() {
    let d = scratch("man");
    let man1 = d.join("man1");
    let o = Command::new(Lab::bin())
        .args(["man", "--out"])
        .arg(&man1)
        .output()
        .unwrap();
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    let pages = names(&man1);
    for want in [
        "portwarden.1",
        "portwarden-scan.1",
        "portwarden-audit.1",
        "portwarden-policy-check.1",
        "portwarden-history-list.1",
        "portwarden-completions.1",
    ] {
        assert!(pages.contains(want), "{want}: {pages:?}");
    }
    for page in &pages {
        let o = Command::new("man")
            .arg("-l")
            .arg(man1.join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man (tests/setup.sh installs man-db)");
        assert_eq!(code(&o), Some(0), "{page}: {}", text(&o.stderr));
        let shown = text(&o.stdout);
        assert!(shown.contains("portwarden"), "{page}: {shown}");
    }
    let scan_page = Command::new("man")
        .arg("-l")
        .arg(man1.join("portwarden-scan.1"))
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    assert!(text(&scan_page.stdout).contains("--top-ports"), "scan page");

    let bash = format!(
        "source <({} completions bash) && complete -p portwarden",
        Lab::bin().display()
    );
    let o = Command::new("bash").args(["-c", &bash]).output().unwrap();
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("portwarden"),
        "{}",
        text(&o.stdout)
    );
    for (shell, marker) in [
        ("zsh", "#compdef portwarden"),
        ("fish", "complete -c portwarden"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let o = Command::new(Lab::bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(code(&o), Some(0));
        assert!(text(&o.stdout).contains(marker), "{shell}");
    }

    // The unit's Documentation= points at pages that now exist.
    let unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/portwarden-audit.service");
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=yes"])
        .arg(&unit)
        .env("MANPATH", &d)
        .output()
        .expect("systemd-analyze (tests/setup.sh installs systemd)");
    let err = text(&o.stderr);
    assert!(!err.contains("man"), "{err}");
    assert_eq!(code(&o), Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The small things: format from -o's extension (or a refused mismatch),
/// a bare `history`, a policy typo's suggestion, a shard's own count, the
/// zh-CN status lines, and the drift line naming the store and scope.
#[test]
fn small_things_a_new_user_meets() {
    let lo = Loopback::new();
    let d = scratch("small");
    let o = lo.run(
        &d,
        &[
            "scan",
            "127.0.0.1",
            "-p",
            "40101",
            "-o",
            "out.csv",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(code(&o), Some(2));
    assert!(
        text(&o.stderr).contains("-o out.csv asks for csv by its extension but --format is jsonl"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.join("out.csv").exists());

    let o = lo.run(
        &d,
        &[
            "scan",
            "127.0.0.1",
            "-p",
            "1-10",
            "--shard",
            "0/2",
            "--seed",
            "3",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert_eq!(rows(&text(&o.stdout)).len(), 5);
    assert!(
        text(&o.stderr).contains("scanned shard 0/2: 5 pairs of 1 host × 10 ports"),
        "{}",
        text(&o.stderr)
    );

    // A bare `history` lists the runs (exit 2 when there is no history).
    let store = d.join("h.db");
    let s = store.to_str().unwrap();
    let o = lo.run(&d, &["history", "--store", s]);
    assert_eq!(code(&o), Some(2), "{}", text(&o.stderr));
    for lang in ["en", "zh-CN"] {
        let o = lo.run(
            &d,
            &[
                "audit",
                "127.0.0.1",
                "-p",
                "40101",
                "--store",
                s,
                "--lang",
                lang,
                "--out",
                "rep",
            ],
        );
        assert!(
            code(&o) == Some(0) || code(&o) == Some(1),
            "{}",
            text(&o.stderr)
        );
    }
    let err = text(
        &lo.run(
            &d,
            &[
                "audit",
                "127.0.0.1",
                "-p",
                "40101",
                "--store",
                s,
                "--lang",
                "zh-CN",
                "--out",
                "rep",
            ],
        )
        .stderr,
    );
    assert!(
        err.contains("已扫描 1 台主机 × 1 个端口") && err.contains("报告已写入 rep/"),
        "{err}"
    );
    assert!(err.contains(&format!("历史库 {s}")), "{err}");
    let err = text(
        &lo.run(
            &d,
            &[
                "audit",
                "127.0.0.1",
                "-p",
                "40101",
                "--store",
                s,
                "--out",
                "rep",
            ],
        )
        .stderr,
    );
    assert!(
        err.contains("drift since run 3 (")
            && err.contains(&format!(" in the history {s}: "))
            && err.contains("of scope "),
        "{err}"
    );
    let o = lo.run(&d, &["history", "--store", s]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout)
            .lines()
            .filter(|l| l.contains("127.0.0.1"))
            .count(),
        4,
        "{}",
        text(&o.stdout)
    );

    std::fs::write(
        d.join("p.toml"),
        "[[group]]\nname = \"plc\"\ntargets = [\"127.0.0.1\"]\n[[group.allow]]\nport = 502\nservice = \"modbsu\"\njustification = \"the line's controller\"\napprover = \"ot-lead\"\nticket = \"CHG-1\"\nreview_by = 2027-05-31\n",
    )
    .unwrap();
    let o = lo.run(&d, &["policy", "check", "p.toml"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout)
            .contains("service 'modbsu' is not a service portwarden knows; did you mean 'modbus'?"),
        "{}",
        text(&o.stdout)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 26: an interrupted audit says what became of its `--out`: not
/// created, left empty, or the previous report untouched (never "the
/// previous one" when there was none); each is left exactly as it was.
#[test]
fn an_interrupted_audit_names_what_became_of_its_out() {
    let lo = Loopback::new();
    let d = scratch("interrupt");
    std::fs::create_dir(d.join("empty")).unwrap();
    let o = lo.run(
        &d,
        &[
            "audit",
            "127.0.0.1",
            "-p",
            "40101",
            "--no-store",
            "--out",
            "prev",
        ],
    );
    assert!(matches!(code(&o), Some(0 | 1)), "{}", text(&o.stderr));
    let before = names(&d.join("prev"));
    for (out, says) in [
        ("rint", "(rint was not created)"),
        ("empty", "(empty is left empty)"),
        ("prev", "(the previous report in prev is untouched)"),
    ] {
        // 65,535 ports at 200 a second: still scanning when interrupted.
        let o = interrupted(
            lo.ns
                .command(Lab::bin())
                .args(["audit", "127.0.0.1", "-p", "1-65535", "--scan", "connect"])
                .args(["--rate", "200", "--no-store", "--out", out])
                .current_dir(&d),
            1000,
        );
        let err = text(&o.stderr);
        assert_eq!(code(&o), Some(130), "{out}: {err}");
        assert!(
            err.contains(&format!("no report written {says}, nothing recorded")),
            "{out}: {err}"
        );
    }
    assert_eq!(
        names(&d),
        BTreeSet::from(["empty".to_string(), "prev".to_string()])
    );
    assert!(names(&d.join("empty")).is_empty());
    assert_eq!(names(&d.join("prev")), before);
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 26 item 4: `--pdf` with the default, relative `--out`
/// (portwarden-report) prints portwarden-report/report.pdf.
#[test]
fn pdf_with_a_relative_out_is_printed() {
    if portwarden::report::pdf::find_chromium().is_none() {
        crate::prereq::missing("chromium (tests/setup.sh)");
        return;
    }
    let lo = Loopback::new();
    let d = scratch("pdf");
    let o = lo.run(
        &d,
        &["audit", "127.0.0.1", "-p", "40101", "--no-store", "--pdf"],
    );
    assert!(matches!(code(&o), Some(0 | 1)), "{}", text(&o.stderr));
    let pdf = std::fs::read(d.join("portwarden-report/report.pdf"))
        .expect("portwarden-report/report.pdf");
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let _ = std::fs::remove_dir_all(&d);
}
