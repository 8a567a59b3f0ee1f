//! Import benchmark: peak RSS and time of reading a large nmap XML file.
//!
//! Not a test (it writes a 100 MB file and takes a while); run on demand:
//!
//! ```text
//! cargo bench --bench import                  # 100 MB, the issue's goal: ≤ 512 MB peak RSS
//! PW_IMPORT_MB=20 cargo bench --bench import  # another size
//! PW_IMPORT_MB=5 cargo bench --bench import -- --audit   # also the whole audit
//! ```
//!
//! The whole audit is opt-in: its report grows with findings × remediation
//! platforms (a 5 MB file of 1,722 hosts with six risky services each
//! makes a 315 MB report directory), so at 100 MB it needs far more memory
//! than the import does.
//!
//! The file is generated (streamed, so the generator itself stays small)
//! in `target/tmp/`: hosts in 198.18.0.0/15 as `nmap -sS -sV -p-` writes
//! them — 16 listed ports a host (open with a `<service>`, closed,
//! filtered) and the other 65,519 folded into `<extraports>` with nmap
//! 7.9x's `ports="…"` list — until the size is reached. Each measurement
//! runs in a child process reaped with `wait4`, so the peak RSS is that
//! run's alone:
//!
//! - `import::load`: the library's streaming import, nothing else;
//! - with `--audit`, `portwarden audit --from-nmap FILE --no-store`: the
//!   whole audit (evaluation and the report directory included).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVICES: [(u16, &str, &str, &str); 6] = [
    (22, "ssh", "OpenSSH", "9.6p1 Debian 4"),
    (80, "http", "nginx", "1.22.1"),
    (443, "https", "nginx", "1.22.1"),
    (3306, "mysql", "MySQL", "8.0.36"),
    (6379, "redis", "Redis key-value store", "7.0.15"),
    (8080, "http-proxy", "Apache Tomcat", "10.1"),
];

/// Writes an nmap-like XML file of about `mb` megabytes; returns (hosts, listed ports).
fn generate(path: &Path, mb: u64) -> std::io::Result<(u64, u64)> {
    let f = std::fs::File::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let target = mb * 1_000_000;
    let mut written = 0u64;
    let put = |w: &mut BufWriter<std::fs::File>, written: &mut u64, s: &str| {
        *written += s.len() as u64;
        w.write_all(s.as_bytes())
    };
    put(
        &mut w,
        &mut written,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n<nmaprun scanner=\"nmap\" args=\"nmap -sS -sV -p- -oX bench.xml 198.18.0.0/15\" start=\"1764000000\" version=\"7.94\" xmloutputversion=\"1.05\">\n<scaninfo type=\"syn\" protocol=\"tcp\" numservices=\"65535\" services=\"1-65535\"/>\n",
    )?;
    let mut hosts = 0u64;
    let mut listed = 0u64;
    while written < target && hosts < 131_072 {
        let (a, b) = (hosts / 256, hosts % 256);
        let mut h = format!(
            "<host starttime=\"1764000000\" endtime=\"1764000100\"><status state=\"up\" reason=\"syn-ack\" reason_ttl=\"63\"/>\n<address addr=\"198.{}.{}.{}\" addrtype=\"ipv4\"/>\n<hostnames>\n<hostname name=\"h{hosts}.lab.example\" type=\"PTR\"/>\n</hostnames>\n<ports>",
            18 + a / 256,
            a % 256,
            b
        );
        // 16 listed ports: the six services open, ten closed or filtered.
        let mut ports: Vec<u16> = SERVICES.iter().map(|s| s.0).collect();
        ports.extend((0..10).map(|i| 10_000 + i * 7 + (hosts % 5) as u16));
        ports.sort_unstable();
        let mut folded = String::new();
        let mut lo = 1u32;
        for &p in &ports {
            if (p as u32) > lo {
                folded.push_str(&format!("{lo}-{},", p - 1));
            }
            lo = p as u32 + 1;
        }
        folded.push_str(&format!("{lo}-65535"));
        h.push_str(&format!(
            "<extraports state=\"closed\" count=\"65519\">\n<extrareasons reason=\"resets\" count=\"65519\" proto=\"tcp\" ports=\"{folded}\"/>\n</extraports>\n"
        ));
        for &p in &ports {
            match SERVICES.iter().find(|s| s.0 == p) {
                Some((_, name, product, version)) => h.push_str(&format!(
                    "<port protocol=\"tcp\" portid=\"{p}\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"63\"/><service name=\"{name}\" product=\"{product}\" version=\"{version}\" method=\"probed\" conf=\"10\"><cpe>cpe:/a:{name}</cpe></service></port>\n"
                )),
                None if p % 2 == 0 => h.push_str(&format!(
                    "<port protocol=\"tcp\" portid=\"{p}\"><state state=\"filtered\" reason=\"no-response\" reason_ttl=\"0\"/></port>\n"
                )),
                None => h.push_str(&format!(
                    "<port protocol=\"tcp\" portid=\"{p}\"><state state=\"closed\" reason=\"reset\" reason_ttl=\"63\"/></port>\n"
                )),
            }
        }
        h.push_str("</ports>\n<times srtt=\"212\" rttvar=\"104\" to=\"100000\"/>\n</host>\n");
        put(&mut w, &mut written, &h)?;
        hosts += 1;
        listed += ports.len() as u64;
    }
    put(
        &mut w,
        &mut written,
        &format!(
            "<runstats><finished time=\"1764003600\" timestr=\"x\" elapsed=\"3600\" exit=\"success\"/><hosts up=\"{hosts}\" down=\"0\" total=\"{hosts}\"/>\n</runstats>\n</nmaprun>\n"
        ),
    )?;
    w.flush()?;
    Ok((hosts, listed))
}

/// Runs `cmd` and reaps it with `wait4`: (wall, peak RSS in KiB, status).
// The child is reaped by `wait4`, which std's `Child::wait` cannot replace
// (it discards the rusage).
#[allow(clippy::zombie_processes)]
fn measure(mut cmd: Command) -> (Duration, i64, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let (mut out, mut err) = (child.stdout, child.stderr);
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        let mut e = String::new();
        if let Some(o) = out.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        if let Some(x) = err.as_mut() {
            let _ = std::io::Read::read_to_string(x, &mut e);
        }
        (s, e)
    });
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter for wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; status and ru are valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let wall = start.elapsed();
    let (stdout, stderr) = drain.join().unwrap_or_default();
    let st = if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else {
        format!("signal {}", libc::WTERMSIG(status))
    };
    let detail = if stdout.trim().is_empty() {
        stderr.lines().last().unwrap_or("").to_string()
    } else {
        stdout.trim().to_string()
    };
    (wall, ru.ru_maxrss, st, detail)
}

/// The child side: import the file with the library and print what it got.
fn child_load(path: &Path) {
    use portwarden::import::{LoadOptions, Source, load};
    let im = load(
        &[Source::NmapXml(path.to_path_buf())],
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = im.summary();
    println!(
        "{} observations, {} folded ranges; {} pairs: {} open, {} closed, {} filtered",
        im.observations.len(),
        im.folded.len(),
        s.probed,
        s.open,
        s.closed,
        s.filtered
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-load") {
        child_load(Path::new(&args[i + 1]));
        return;
    }
    let mb: u64 = std::env::var("PW_IMPORT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
    std::fs::create_dir_all(&dir).expect("target/tmp");
    let file = dir.join(format!("pw-import-bench-{mb}mb.xml"));
    let t = Instant::now();
    let (hosts, listed) = generate(&file, mb).expect("generate");
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "generated {} ({:.1} MB, {hosts} hosts, {listed} listed ports, {} folded) in {:.1} s",
        file.display(),
        size as f64 / 1e6,
        hosts * 65_519,
        t.elapsed().as_secs_f64()
    );
    println!("| run | wall s | peak RSS MB | status | result |");
    println!("|---|---|---|---|---|");
    let mut c = Command::new(std::env::current_exe().expect("own path"));
    c.arg("--child-load").arg(&file);
    let (wall, rss, st, detail) = measure(c);
    println!(
        "| import::load | {:.2} | {:.1} | {st} | {detail} |",
        wall.as_secs_f64(),
        rss as f64 / 1024.0
    );
    if args.iter().any(|a| a == "--audit") {
        let bin = std::env::var_os("PORTWARDEN_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_portwarden")));
        let out = dir.join(format!("pw-import-bench-{mb}mb-report"));
        let mut c = Command::new(bin);
        c.args(["audit", "--from-nmap"])
            .arg(&file)
            .args(["--no-store", "--fail-on", "critical", "--out"])
            .arg(&out)
            .env_remove("PORTWARDEN_STORE");
        let (wall, rss, st, _) = measure(c);
        let report = std::fs::read_dir(&out)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .unwrap_or(0);
        println!(
            "| portwarden audit --from-nmap (report {:.0} MB) | {:.2} | {:.1} | {st} | |",
            report as f64 / 1e6,
            wall.as_secs_f64(),
            rss as f64 / 1024.0
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_file(&file);
}
