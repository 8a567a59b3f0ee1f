//! Never destroy or lose data (issue 10): `--out` refuses what is not a
//! report of ours, `-o` and `--metrics` never replace a device or leave half
//! a file, Ctrl-C stops every phase with exit 130 and leaves nothing behind
//! (no report, no temporary directory, no history row), and signed reports
//! catch a rehashed manifest.
//!
//! Audits here import JSONL files (no packet is sent); scans run in a bare
//! namespace against 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use portwarden::model::{Observation, Proto, Reason};

use crate::lab::{Lab, Netns};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pw-safety-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `n` observations on 198.18.x.y (lab addresses; nothing is sent to them).
fn jsonl(path: &Path, n: usize) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let ip = std::net::Ipv4Addr::new(198, 18, (i / 250 / 40) as u8, (i / 40 % 250) as u8 + 1);
        let port = [22, 23, 80, 443, 3389, 6379, 8080, 9000][i % 8] + (i % 40 / 8) as u16;
        let reason = if i % 3 == 0 {
            Reason::SynAck
        } else {
            Reason::Reset
        };
        let o = Observation::new(ip.into(), port, Proto::Tcp, reason, Some(0.5));
        serde_json::to_writer(&mut w, &o).unwrap();
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();
}

fn portwarden(args: &[&str]) -> Command {
    let mut c = Command::new(Lab::bin());
    c.args(args)
        .env_remove("PORTWARDEN_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(args: &[&str]) -> Output {
    portwarden(args).output().expect("spawn portwarden")
}

fn audit_args<'a>(obs: &'a str, out: &'a str, store: &'a str) -> Vec<&'a str> {
    vec![
        "audit",
        "--from-jsonl",
        obs,
        "--out",
        out,
        "--store",
        store,
        "--as-of",
        "2026-11-24",
    ]
}

#[test]
fn out_refuses_a_directory_or_file_that_is_not_a_report() {
    let s = Scratch::new("out");
    let obs = s.path("obs.jsonl");
    jsonl(&obs, 20);
    let store = s.path("h.db");
    let thesis = s.path("d");
    std::fs::create_dir(&thesis).unwrap();
    std::fs::write(thesis.join("thesis.txt"), "years of work").unwrap();
    let file = s.path("file");
    std::fs::write(&file, "keep me").unwrap();
    for out in [&thesis, &file] {
        let o = run(&audit_args(
            obs.to_str().unwrap(),
            out.to_str().unwrap(),
            store.to_str().unwrap(),
        ));
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "{} exists and is not a portwarden report: choose another --out or remove it",
                out.display()
            )),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(thesis.join("thesis.txt")).unwrap(),
        "years of work"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // Refused before anything else: no history, no temporary directory.
    assert_eq!(names(&s.0), vec!["d", "file", "obs.jsonl"]);

    // A report of ours is replaced; `--metrics /dev/null` stays a device.
    let out = s.path("report");
    for _ in 0..2 {
        let mut args = audit_args(
            obs.to_str().unwrap(),
            out.to_str().unwrap(),
            store.to_str().unwrap(),
        );
        args.extend(["--metrics", "/dev/null"]);
        let o = run(&args);
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            text(&o.stderr)
        );
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(out.join("manifest.json").is_file());
    assert_eq!(
        names(&s.0),
        vec!["d", "file", "h.db", "obs.jsonl", "report"],
        "no temporary directory left"
    );
}

/// Sends SIGINT to `child` and returns its exit code and the time from the
/// signal to its exit (a figure, never asserted).
fn interrupt(child: &mut Child) -> (Option<i32>, Duration) {
    signal(child, libc::SIGINT)
}

/// [`interrupt`] with another signal.
fn signal(child: &mut Child, sig: libc::c_int) -> (Option<i32>, Duration) {
    let sent = Instant::now();
    // SAFETY: kill(2) on the pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code(), sent.elapsed());
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("portwarden did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn runs_in(store: &Path) -> i64 {
    if !store.exists() {
        return 0;
    }
    portwarden::store::Store::open(store)
        .unwrap()
        .count()
        .unwrap()
}

/// The audit's temporary report directories in `dir`.
fn temps(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".report.tmp-"))
        .collect()
}

/// SIGINT in the import phase, then in the report-writing phase (caught by
/// watching for the temporary directory): exit 130, no report, no
/// temporary directory, no history row. `--nocapture` shows the times.
#[test]
fn sigint_in_import_and_in_report_writing_leaves_nothing() {
    let s = Scratch::new("sigint");
    let obs = s.path("obs.jsonl");
    jsonl(&obs, 200_000);
    let out = s.path("report");
    let store = s.path("h.db");
    let args = audit_args(
        obs.to_str().unwrap(),
        out.to_str().unwrap(),
        store.to_str().unwrap(),
    );

    // Import: the 200,000-line file takes longer than this to read. SIGTERM
    // (a service manager's stop) does the same as Ctrl-C.
    let mut child = portwarden(&args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(temps(&s.0).is_empty(), "still importing");
    let (code, took) = signal(&mut child, libc::SIGTERM);
    let err = text(&child.wait_with_output().unwrap().stderr);
    eprintln!(
        "SIGINT → exit in the import phase: {:.3} s",
        took.as_secs_f64()
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("no report written"), "{err}");
    assert!(!out.exists());
    assert!(temps(&s.0).is_empty());
    assert_eq!(runs_in(&store), 0);

    // Report writing: signalled as soon as the temporary directory appears.
    let mut child = portwarden(&args).spawn().unwrap();
    let start = Instant::now();
    while temps(&s.0).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the audit ended before writing its report"
        );
        assert!(start.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(1));
    }
    let (code, took) = interrupt(&mut child);
    let err = text(&child.wait_with_output().unwrap().stderr);
    eprintln!(
        "SIGINT → exit in the report-writing phase: {:.3} s (reached after {:.1} s)",
        took.as_secs_f64(),
        (start.elapsed() - took).as_secs_f64()
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(!out.exists(), "no report in place");
    assert!(temps(&s.0).is_empty(), "temporary directory removed");
    assert_eq!(runs_in(&store), 0, "nothing recorded");
    assert_eq!(names(&s.0), vec!["h.db", "obs.jsonl"]);
}

/// `scan -o FILE`: FILE keeps its old content until the scan ends; a
/// stopped scan (one SIGINT) exits 130 and its last JSONL record says it
/// is incomplete; an aborted one (two) leaves FILE as it was.
#[test]
fn scan_output_file_is_replaced_only_when_the_scan_ends() {
    let s = Scratch::new("scan-o");
    let ns = Netns::new();
    let file = s.path("out.jsonl");
    std::fs::write(&file, "old\n").unwrap();
    let mut child = {
        ns.command(Lab::bin())
            .args([
                "scan",
                "127.0.0.1",
                "-p",
                "1-65535",
                "--scan",
                "connect",
                "--rate",
                "500",
                "--format",
                "jsonl",
                "-o",
                file.to_str().unwrap(),
            ])
            .env_remove("PORTWARDEN_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
    assert_eq!(names(&s.0).len(), 2, "a temporary file beside FILE");
    let (code, took) = interrupt(&mut child);
    let err = text(&child.wait_with_output().unwrap().stderr);
    eprintln!(
        "SIGINT → exit in the scan phase: {:.3} s",
        took.as_secs_f64()
    );
    assert_eq!(code, Some(130), "{err}");
    let written = std::fs::read_to_string(&file).unwrap();
    let last: serde_json::Value = serde_json::from_str(written.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(last["complete"], false);
    let rows = written.lines().count() - 1;
    assert!(rows > 0 && rows < 65535, "{rows} observations");
    assert_eq!(last["probed"], rows as u64);
    assert_eq!(names(&s.0), vec!["out.jsonl"]);

    // Two signals: the scan is aborted and FILE keeps what it held. SYNs
    // to lo are dropped so the first signal has answers to wait for.
    let nft = Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"table inet t {\n chain i {\n  type filter hook input priority 0;\n  tcp flags & (syn | ack) == syn drop\n }\n}\n")?;
            c.wait()
        })
        .expect("nft");
    assert!(nft.success());
    let mut child = ns
        .command(Lab::bin())
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            "1-65535",
            "--scan",
            "connect",
            "--retries",
            "0",
            "--timeout-initial",
            "5000",
            "--timeout-max",
            "5000",
            "--format",
            "jsonl",
            "-o",
            file.to_str().unwrap(),
        ])
        .env_remove("PORTWARDEN_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: signals to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(300));
    let (code, _) = interrupt(&mut child);
    let err = text(&child.wait_with_output().unwrap().stderr);
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("aborted"), "{err}");
    assert!(
        std::fs::read_to_string(&file).unwrap() == written,
        "FILE changed by an aborted scan"
    );
    assert_eq!(names(&s.0), vec!["out.jsonl"], "no temporary file left");
}

/// keygen → audit --sign-key → verify --pubkey; an edited file with a
/// rehashed manifest fails with SIGNATURE; a FIFO in the directory is
/// named, not waited on.
#[test]
fn signed_reports_catch_a_rehashed_manifest() {
    let s = Scratch::new("sign");
    let keys = s.path("keys");
    let o = run(&["keygen", "--out", keys.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let secret = keys.join("portwarden-signing.key");
    let public = keys.join("portwarden-signing.pub");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = run(&["keygen", "--out", keys.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("never overwrites"));

    let obs = s.path("obs.jsonl");
    jsonl(&obs, 30);
    let out = s.path("report");
    let store = s.path("h.db");
    let mut args = audit_args(
        obs.to_str().unwrap(),
        out.to_str().unwrap(),
        store.to_str().unwrap(),
    );
    args.extend(["--sign-key", secret.to_str().unwrap()]);
    let o = run(&args);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        text(&o.stderr)
    );
    assert!(out.join("manifest.sig").is_file());
    let verify = |extra: &[&str]| {
        let mut a = vec!["verify", out.to_str().unwrap()];
        a.extend(extra);
        run(&a)
    };
    let ok = verify(&["--pubkey", public.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("SIGNED"), "{}", text(&ok.stdout));

    // The signature is plain Ed25519 over manifest.json: OpenSSL agrees.
    if Path::new("/usr/bin/openssl").exists() {
        let sig: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.sig")).unwrap()).unwrap();
        let raw = s.path("sig.bin");
        std::fs::write(
            &raw,
            hex::decode(sig["signature"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        let o = Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(&public)
            .arg("-in")
            .arg(out.join("manifest.json"))
            .arg("-sigfile")
            .arg(&raw)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stdout));
    } else {
        crate::prereq::missing("openssl (Debian package 'openssl') to cross-check the signature");
    }

    // Edit findings.csv and rehash it in the manifest: the hashes agree,
    // the signature does not.
    let csv = out.join("findings.csv");
    let mut body = std::fs::read(&csv).unwrap();
    body.extend_from_slice(b"forged,row\n");
    std::fs::write(&csv, &body).unwrap();
    let mpath = out.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["files"]["findings.csv"] = portwarden::report::evidence::sha256_hex(&body).into();
    m["sizes"]["findings.csv"] = body.len().into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let unsigned = verify(&[]);
    assert_eq!(
        unsigned.status.code(),
        Some(0),
        "without a key the rehash passes (why signatures exist)"
    );
    let bad = verify(&["--pubkey", public.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    let stdout = text(&bad.stdout);
    assert!(
        stdout.contains("SIGNATURE manifest.json does not match its signature"),
        "{stdout}"
    );

    // A FIFO (and a link to /dev/zero) inside: named, never read.
    let fifo = std::ffi::CString::new(out.join("pipe").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", out.join("zero")).unwrap();
    let mut child = portwarden(&["verify", out.to_str().unwrap()])
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("verify hangs on a FIFO or /dev/zero");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stdout = text(&o.stdout);
    assert!(stdout.contains("REFUSED  pipe (FIFO"), "{stdout}");
    assert!(stdout.contains("REFUSED  zero (symbolic link"), "{stdout}");
}

/// The audit's worker threads (`portwarden-work`): one imports, the next
/// evaluates and writes the report.
fn workers(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "portwarden-work")
        })
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

/// Figures, not a pass/fail test: SIGINT → exit per phase of a 200,000-line
/// import audit, three times each. The phase is known from the process
/// itself: the first worker thread imports, a second one evaluates, and
/// the report's temporary directory marks report writing.
/// `cargo test --test tests safety::perf_sigint_per_phase -- --ignored --nocapture`
#[test]
#[ignore]
fn perf_sigint_per_phase() {
    let s = Scratch::new("perf-sigint");
    let obs = s.path("obs.jsonl");
    jsonl(&obs, 200_000);
    let out = s.path("report");
    let store = s.path("h.db");
    let args = audit_args(
        obs.to_str().unwrap(),
        out.to_str().unwrap(),
        store.to_str().unwrap(),
    );
    for phase in ["import", "evaluation", "report writing"] {
        for _ in 0..3 {
            let mut child = portwarden(&args).spawn().unwrap();
            let start = Instant::now();
            let mut first = None;
            loop {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "finished before {phase}"
                );
                let w = workers(child.id());
                let writing = !temps(&s.0).is_empty();
                if first.is_none() {
                    first = w.first().copied();
                }
                let reached = match phase {
                    "import" => {
                        w.first() == first.as_ref() && start.elapsed() > Duration::from_millis(300)
                    }
                    "evaluation" => {
                        first.is_some() && w.first().is_some_and(|t| Some(*t) != first) && !writing
                    }
                    _ => writing,
                };
                if first.is_some() && reached {
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            let at = start.elapsed();
            let (code, took) = interrupt(&mut child);
            assert_eq!(code, Some(130));
            assert!(!out.exists() && temps(&s.0).is_empty());
            assert_eq!(runs_in(&store), 0);
            eprintln!(
                "{phase:<15} signalled at {:>5.2} s: exit after {:.3} s",
                at.as_secs_f64(),
                took.as_secs_f64()
            );
        }
    }
}
