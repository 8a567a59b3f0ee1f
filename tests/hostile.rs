//! Hostile inputs against imports, the history, evidence and signals, with
//! the real binary (no packets: imports, history and verify only). Each
//! case is one of issue 27's findings and fails without its fix.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::lab::Lab;

fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("pw-hostile-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn pw() -> Command {
    let mut c = Command::new(Lab::bin());
    c.env_remove("PORTWARDEN_STORE")
        .env_remove("PORTWARDEN_HISTORY_KEY");
    c
}

fn run(args: &[&str]) -> Output {
    pw().args(args).output().expect("run portwarden")
}

/// One open port as `scan --format jsonl` writes it.
fn jsonl_line(ip: &str, port: u16, extra: &str) -> String {
    format!(
        r#"{{"ip":"{ip}","port":{port},"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.2,"time":"2026-01-02T03:04:05Z"{extra}}}"#
    )
}

/// `audit --from-jsonl FILE --store STORE --out OUT`.
fn stored<'a>(file: &'a Path, store: &'a Path, out: &'a Path) -> [&'a str; 7] {
    [
        "audit",
        "--from-jsonl",
        file.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
}

/// Runs [`stored`].
fn import_audit(file: &Path, store: &Path, out: &Path) -> Output {
    run(&stored(file, store, out))
}

/// Asserts that the run's stderr contains `what`.
fn stderr_says(o: &Output, what: &str) {
    assert!(text(&o.stderr).contains(what), "{}", text(&o.stderr));
}

fn runs_in(store: &Path) -> i64 {
    rusqlite::Connection::open(store)
        .unwrap()
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap()
}

/// Issue 27 item 1: numbers the history cannot read back are refused at
/// import (file:line), and a run that cannot be read back (recorded by an
/// older version) is named by `history verify` and never blocks later
/// audits of its scope.
#[test]
fn non_finite_numbers_are_refused_and_an_unreadable_run_blocks_nothing() {
    let dir = tempdir("nan");
    let store = dir.join("h.db");
    // JSONL: 1e39 reads as an f32 infinity.
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{}\n",
            jsonl_line("198.18.0.5", 22, ""),
            jsonl_line(
                "198.18.0.5",
                80,
                r#","service":{"name":"http","confidence":1e39}"#
            )
        ),
    )
    .unwrap();
    let o = import_audit(&bad, &store, &dir.join("r-bad"));
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    stderr_says(
        &o,
        &format!(
            "{}:2:1: service confidence inf is not a number from 0 to 1",
            bad.display()
        ),
    );
    // nmap: conf="NaN".
    let xml = dir.join("nan.xml");
    std::fs::write(
        &xml,
        "<nmaprun start=\"1764000000\">\n<host><address addr=\"198.18.0.5\" addrtype=\"ipv4\"/><ports>\n<port protocol=\"tcp\" portid=\"80\"><state state=\"open\" reason=\"syn-ack\"/>\n<service name=\"http\" method=\"probed\" conf=\"NaN\"/></port></ports></host>\n<runstats><finished time=\"1764000001\"/></runstats></nmaprun>\n",
    )
    .unwrap();
    let o = run(&no_store("--from-nmap", &xml, &dir.join("r-nan")));
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    stderr_says(
        &o,
        &format!(
            "{}:4:1: <service conf=\"NaN\">: not a number from 0 to 10",
            xml.display()
        ),
    );
    assert!(!store.exists() || runs_in(&store) == 0);

    // A history holding a run that reads back as null (as older versions
    // stored such a confidence): its chain is intact, its content is not
    // readable.
    let good = two_ports(&dir);
    let o = import_audit(&good, &store, &dir.join("r1"));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    {
        let mut s = portwarden::store::Store::open(&store).unwrap();
        let mut r = s.load(1).unwrap().record;
        let svc = portwarden::model::ServiceInfo {
            name: "http".into(),
            confidence: f32::NAN,
            ..Default::default()
        };
        r.observations[1].service = Some(svc);
        // Written as schema 2 did (JSON rows): schema 3 keeps no confidence.
        assert_eq!(s.record_as_schema_2(&r).unwrap(), 2);
    }
    let o = run(&["history", "verify", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(
            "run 2: run 2 cannot be read back: its stored observations: invalid type: null, expected f32"
        ),
        "{}",
        text(&o.stdout)
    );
    stderr_says(&o, "the chain holds, but 1 run(s) cannot be read back");
    // The next audit of the scope runs, says which run it could not read,
    // and is recorded; the one after compares with it again.
    let o = import_audit(&good, &store, &dir.join("r3"));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    for says in [
        "warning: history ",
        "run 2 has unreadable observations",
        "judged without a previous run",
        "recorded as run 3",
    ] {
        stderr_says(&o, says);
    }
    assert!(dir.join("r3/index.html").is_file());
    assert!(!dir.join("r3/drift.json").exists());
    // Its observations.jsonl imports again.
    let o = import_audit(&dir.join("r3/observations.jsonl"), &store, &dir.join("r4"));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    stderr_says(&o, "drift since run 3");
    assert!(!text(&o.stderr).contains("warning:"));
    assert_eq!(runs_in(&store), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `audit --from-jsonl FILE --store STORE --out OUT`, started.
fn spawn_import_audit(file: &Path, store: &Path, out: &Path) -> std::process::Child {
    pw().args(stored(file, store, out))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run portwarden")
}

fn two_ports(dir: &Path) -> PathBuf {
    let f = dir.join("two.jsonl");
    std::fs::write(
        &f,
        format!(
            "{}\n{}\n",
            jsonl_line("198.18.0.5", 22, ""),
            jsonl_line("198.18.0.5", 80, "")
        ),
    )
    .unwrap();
    f
}

/// Issue 27 item 2: twenty audits started at once on a brand-new store all
/// land, and the chain holds.
#[test]
fn twenty_concurrent_first_audits_all_land() {
    let dir = tempdir("first");
    let input = two_ports(&dir);
    let store = dir.join("new/h.db");
    let children: Vec<_> = (0..20)
        .map(|i| spawn_import_audit(&input, &store, &dir.join(format!("r{i}"))))
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(matches!(code(&o), 0 | 1), "audit {i}: {}", text(&o.stderr));
        assert!(dir.join(format!("r{i}/manifest.json")).is_file());
    }
    assert_eq!(runs_in(&store), 20);
    let o = run(&["history", "verify", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains(": 20 runs, hash chain intact"),
        "{}",
        text(&o.stdout)
    );
    let mut left: Vec<String> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("h.db"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// True once process `pid` has `file` open.
fn has_open(pid: u32, file: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == file))
}

/// Issue 27 item 12: SIGTERM while another process holds the history's
/// write lock ends the audit at once with 130, nothing written or recorded.
#[test]
fn sigterm_while_waiting_for_the_history_lock_exits_130() {
    let dir = tempdir("lock");
    let input = two_ports(&dir);
    let store = dir.join("h.db");
    let o = import_audit(&input, &store, &dir.join("r1"));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    // Another writer holds the lock for the whole test.
    let holder = rusqlite::Connection::open(&store).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let child = spawn_import_audit(&input, &store, &dir.join("r2"));
    let pid = child.id();
    while !has_open(pid, &store.canonicalize().unwrap()) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Let it reach the wait (a signal before it would exit 130 as well).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::time::Instant::now();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    assert_eq!(code(&o), 130, "{}", text(&o.stderr));
    stderr_says(&o, "interrupted: no report written");
    eprintln!("item 12: exit 130 {took:?} after SIGTERM");
    assert!(!dir.join("r2").exists());
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(runs_in(&store), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Issue 27 item 11: `--metrics FIFO` with no reader never hangs. SIGTERM
/// while waiting for a reader exits 130 at once, the run recorded and the
/// report in place; without a signal the wait is bounded.
#[test]
fn metrics_fifo_without_reader_honours_sigterm_and_is_bounded() {
    let dir = tempdir("fifo");
    let input = two_ports(&dir);
    let store = dir.join("h.db");
    let fifo = dir.join("metrics.prom");
    mkfifo(&fifo);
    let out = dir.join("r1");
    let child = pw()
        .args(stored(&input, &store, &out))
        .args(["--metrics", fifo.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The metrics come after the report and the run: wait for both.
    while !(out.join("manifest.json").is_file() && store.exists() && runs_in(&store) == 1) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = std::time::Instant::now();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    assert_eq!(code(&o), 130, "{}", text(&o.stderr));
    stderr_says(
        &o,
        &format!(
            "{}: interrupted before it was written; the report is in {} and the run is recorded as run 1, but the metrics were not written",
            fifo.display(),
            out.display()
        ),
    );
    eprintln!("item 11: exit 130 {took:?} after SIGTERM");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // No signal: the wait for a reader ends by itself.
    let started = std::time::Instant::now();
    let out2 = dir.join("r2");
    let mut args = stored(&input, &store, &out2).to_vec();
    args.extend(["--metrics", fifo.to_str().unwrap()]);
    let o = run(&args);
    eprintln!(
        "item 11: no reader, no signal: exit {} after {:?}",
        code(&o),
        started.elapsed()
    );
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    stderr_says(
        &o,
        &format!(
            "{} did not take the data within 10 s (a FIFO that no program reads?); the report is in {} and the run is recorded as run 2, but the metrics were not written",
            fifo.display(),
            dir.join("r2").display()
        ),
    );
    assert_eq!(runs_in(&store), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `audit FLAG FILE --no-store --out OUT`.
fn no_store<'a>(flag: &'a str, file: &'a Path, out: &'a Path) -> [&'a str; 6] {
    [
        "audit",
        flag,
        file.to_str().unwrap(),
        "--no-store",
        "--out",
        out.to_str().unwrap(),
    ]
}

/// Peak RSS (KiB) and output of `portwarden ARGS`, by GNU time.
fn peak_rss(args: &[&str]) -> (u64, Output) {
    let o = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("maxrss=%M")
        .arg(Lab::bin())
        .args(args)
        .env_remove("PORTWARDEN_STORE")
        .output()
        .expect("GNU time (tests/setup.sh installs it)");
    let err = text(&o.stderr);
    let kib = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("maxrss="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {err}"));
    (kib, o)
}

fn inputs_of(report: &Path) -> Vec<Value> {
    json(&report.join("manifest.json"))["inputs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Issue 27 item 3: the manifest's input hash is taken from the bytes the
/// import parsed, in the same pass: standard input, a FIFO whose writer
/// then offers a decoy, and a large file of comments read without holding it.
#[test]
fn input_hashes_come_from_the_bytes_audited() {
    use portwarden::report::evidence::sha256_hex;
    let dir = tempdir("hash");
    let body = format!(
        "{}\n{}\n",
        jsonl_line("198.18.0.5", 22, ""),
        jsonl_line("198.18.0.5", 80, "")
    );
    // Standard input.
    let out = dir.join("r-stdin");
    let mut child = pw()
        .args(no_store("--from-jsonl", Path::new("/dev/stdin"), &out))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    let inputs = inputs_of(&out);
    assert_eq!(inputs[0]["path"], "/dev/stdin");
    assert_eq!(inputs[0]["sha256"], sha256_hex(body.as_bytes()));
    // A FIFO whose writer, once the audit has read it to the end, offers a
    // decoy to whoever opens it next (a second read for hashing would).
    let fifo = dir.join("in.jsonl");
    mkfifo(&fifo);
    let out = dir.join("r-fifo");
    let child = pw()
        .args(no_store("--from-jsonl", &fifo, &out))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&fifo, &body).unwrap();
    let real = fifo.canonicalize().unwrap();
    while has_open(child.id(), &real) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let decoy = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, "decoy\n").unwrap())
    };
    let o = child.wait_with_output().unwrap();
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    assert_eq!(inputs_of(&out)[0]["sha256"], sha256_hex(body.as_bytes()));
    // Nobody read the decoy: take it, so the writer ends.
    assert_eq!(std::fs::read_to_string(&fifo).unwrap(), "decoy\n");
    decoy.join().unwrap();
    // 200 MB of comments around one host: hashed while parsed, never held.
    let big = dir.join("comments.xml");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        writeln!(f, "<nmaprun start=\"1764000000\">").unwrap();
        let comment = format!("<!-- {} -->\n", "x".repeat(1 << 20));
        for _ in 0..100 {
            f.write_all(comment.as_bytes()).unwrap();
        }
        writeln!(f, "<host><address addr=\"198.18.0.5\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\"/></port></ports></host>").unwrap();
        for _ in 0..100 {
            f.write_all(comment.as_bytes()).unwrap();
        }
        writeln!(
            f,
            "<runstats><finished time=\"1764000001\"/></runstats></nmaprun>"
        )
        .unwrap();
    }
    let size = std::fs::metadata(&big).unwrap().len();
    let out = dir.join("r-big");
    let (kib, o) = peak_rss(&no_store("--from-nmap", &big, &out));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    eprintln!(
        "item 3: {} MB of comments imported in {} MB peak RSS",
        size >> 20,
        kib >> 10
    );
    assert!(
        kib < 120 << 10,
        "{} MB file, {} MB peak RSS: the file was held in memory",
        size >> 20,
        kib >> 10
    );
    let want = {
        use sha2::Digest;
        use std::io::Read;
        let mut h = sha2::Sha256::new();
        let mut f = std::fs::File::open(&big).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        hex::encode(h.finalize())
    };
    assert_eq!(inputs_of(&out)[0]["sha256"], want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 27 items 6 and 7: an nmap element with 100,000 attributes is
/// refused at once (the duplicate check was quadratic); a masscan file
/// repeating one huge banner, a JSONL file of huge banners and a million
/// duplicate JSONL lines import in bounded memory, banners cut to size.
#[test]
fn import_time_and_memory_stay_bounded() {
    let dir = tempdir("bounded");
    // 100,000 attributes in one element.
    let attrs: String = (0..100_000).map(|i| format!(" a{i}=\"x\"")).collect();
    let xml = dir.join("attrs.xml");
    std::fs::write(
        &xml,
        format!("<nmaprun start=\"1\">\n<host{attrs}/>\n</nmaprun>\n"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let o = run(&no_store("--from-nmap", &xml, &dir.join("r-attrs")));
    eprintln!(
        "item 6: 100,000 attributes refused in {:?}",
        started.elapsed()
    );
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    stderr_says(
        &o,
        &format!(
            "{}:2:1: more than 256 attributes in one <host> element",
            xml.display()
        ),
    );
    // masscan: 400 records of a 900 KB banner for the same open port.
    let banner = "A".repeat(900_000);
    let m = dir.join("m.json");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&m).unwrap());
        writeln!(f, "[").unwrap();
        writeln!(f, "{{\"ip\": \"198.18.0.5\", \"timestamp\": \"1764000000\", \"ports\": [{{\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\"}}]}},").unwrap();
        for _ in 0..400 {
            writeln!(f, "{{\"ip\": \"198.18.0.5\", \"timestamp\": \"1764000001\", \"ports\": [{{\"port\": 80, \"proto\": \"tcp\", \"service\": {{\"name\": \"http\", \"banner\": \"{banner}\"}}}}]}},").unwrap();
        }
        writeln!(f, "]").unwrap();
    }
    let out = dir.join("r-masscan");
    let (kib, o) = peak_rss(&no_store("--from-masscan", &m, &out));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    eprintln!(
        "item 7: masscan, 400 banners of 900 KB: {} MB peak RSS",
        kib >> 10
    );
    assert!(kib < 100 << 10, "{} MB peak RSS", kib >> 10);
    let rows = std::fs::read_to_string(out.join("observations.jsonl")).unwrap();
    assert!(rows.len() < 4096, "banner cut: {} bytes", rows.len());
    // JSONL: 300 lines each carrying a 900 KB banner, and a million
    // repeats of one line.
    let j = dir.join("big.jsonl");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&j).unwrap());
        for port in 1..=300u16 {
            let svc =
                format!(r#","service":{{"name":"http","confidence":1.0,"banner":"{banner}"}}"#);
            writeln!(f, "{}", jsonl_line("198.18.0.5", port, &svc)).unwrap();
        }
        let dup = jsonl_line("198.18.0.6", 22, "");
        for _ in 0..1_000_000 {
            writeln!(f, "{dup}").unwrap();
        }
    }
    let out = dir.join("r-jsonl");
    let (kib, o) = peak_rss(&no_store("--from-jsonl", &j, &out));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    eprintln!(
        "item 7: JSONL, {} MB (300 banners of 900 KB, 1,000,000 duplicate lines): {} MB peak RSS",
        std::fs::metadata(&j).unwrap().len() >> 20,
        kib >> 10
    );
    assert!(kib < 150 << 10, "{} MB peak RSS", kib >> 10);
    let rows = std::fs::read_to_string(out.join("observations.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 301);
    assert!(rows.lines().all(|l| l.len() < 4096), "banners cut");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 27 items 5 and 8: `history verify --against` reads a manifest only
/// as a bounded regular file, and `verify` compares sizes before hashing.
#[test]
fn verify_reads_are_bounded() {
    let dir = tempdir("verify");
    let input = two_ports(&dir);
    let store = dir.join("h.db");
    let out = dir.join("r1");
    let o = import_audit(&input, &store, &out);
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    // The manifest records each file's size.
    let m = json(&out.join("manifest.json"));
    let report_len = std::fs::metadata(out.join("report.json")).unwrap().len();
    assert_eq!(m["sizes"]["report.json"], report_len);
    // A 10 GB sparse file in place of a listed one is named without
    // reading it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(out.join("report.json"))
        .unwrap();
    f.set_len(10 << 30).unwrap();
    drop(f);
    let started = std::time::Instant::now();
    let o = run(&["verify", out.to_str().unwrap()]);
    eprintln!("item 8: 10 GB sparse file named in {:?}", started.elapsed());
    assert_eq!(code(&o), 1, "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("report.json"),
        "{}",
        text(&o.stdout)
    );
    // --against: a manifest that is a link, a FIFO or a huge sparse file is
    // refused without following, waiting or reading.
    let against = |name: &str, make: &dyn Fn(&Path)| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        make(&d.join("manifest.json"));
        run(&[
            "history",
            "verify",
            "--store",
            store.to_str().unwrap(),
            "--against",
            d.to_str().unwrap(),
        ])
    };
    let o = against("link", &|p| {
        std::os::unix::fs::symlink("/dev/zero", p).unwrap()
    });
    assert_eq!(code(&o), 2);
    stderr_says(&o, "is a symbolic link: not followed");
    let o = against("fifo", &|p| mkfifo(p));
    assert_eq!(code(&o), 2);
    stderr_says(&o, "is a FIFO, not a regular file");
    let (kib, o) = {
        let d = dir.join("sparse");
        std::fs::create_dir_all(&d).unwrap();
        let f = std::fs::File::create(d.join("manifest.json")).unwrap();
        f.set_len(3 << 30).unwrap();
        peak_rss(&[
            "history",
            "verify",
            "--store",
            store.to_str().unwrap(),
            "--against",
            d.to_str().unwrap(),
        ])
    };
    eprintln!(
        "item 5: 3 GB sparse manifest refused in {} MB peak RSS",
        kib >> 10
    );
    assert_eq!(code(&o), 2);
    stderr_says(&o, "is larger than 16777216 bytes");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 27 item 9: loading a policy is linear in its groups. 100,000
/// disjoint groups check; a conflict between the last two is still found.
#[test]
fn a_hundred_thousand_groups_load() {
    let dir = tempdir("groups");
    let mut policy = String::new();
    for i in 0..100_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        policy.push_str(&format!(
            "[[group]]\nname = \"g{i}\"\ntargets = [\"{ip}\"]\n"
        ));
    }
    let ok = dir.join("ok.toml");
    std::fs::write(&ok, &policy).unwrap();
    let started = std::time::Instant::now();
    let o = run(&["policy", "check", ok.to_str().unwrap()]);
    eprintln!(
        "item 9: policy check of 100,000 groups: {:?}",
        started.elapsed()
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    policy.push_str(
        "[[group]]\nname = \"late\"\ntargets = [\"10.1.134.159\"]\nvantage = \"internet\"\n",
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, &policy).unwrap();
    let o = run(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    stderr_says(
        &o,
        &format!(
            "{}:300003:12: group 'late' target '10.1.134.159' overlaps group 'g99999' (10.1.134.159 is in both) and their vantage differs",
            bad.display()
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 27, small items: `--history-key-file /dev/stdin` is read once
/// (it was read twice, the second time empty), and `history list --format
/// json` writes C1 and bidirectional controls from the database escaped.
#[test]
fn key_from_stdin_and_inert_history_json() {
    let dir = tempdir("small");
    let input = two_ports(&dir);
    let store = dir.join("h.db");
    let key = "0123456789abcdef0123456789abcdef\n";
    let with_key = |args: &[&str]| {
        use std::io::Write;
        let mut c = pw()
            .args(args)
            .args(["--history-key-file", "/dev/stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let o = with_key(&stored(&input, &store, &dir.join("r1")));
    assert!(matches!(code(&o), 0 | 1), "{}", text(&o.stderr));
    let o = with_key(&["history", "verify", "--store", store.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains(": 1 runs, HMAC chain (keyed) intact"),
        "{}",
        text(&o.stdout)
    );
    // A scope row holding U+009B (CSI) and U+202E.
    rusqlite::Connection::open(&store)
        .unwrap()
        .execute(
            "UPDATE runs SET scope = replace(scope, '198.18.0.5', '198.18.0.5\u{9b}2J\u{202e}')",
            [],
        )
        .unwrap();
    let o = run(&[
        "history",
        "list",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        !out.contains('\u{9b}') && !out.contains('\u{202e}'),
        "{out}"
    );
    assert!(out.contains("198.18.0.5\\u009b2J\\u202e"), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["targets"][0], "198.18.0.5\u{9b}2J\u{202e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn json(path: &Path) -> Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap()
}
