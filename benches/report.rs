//! Report benchmark: audit size and cost at scale, on synthetic imports.
//!
//! Not part of CI; run on demand (no root, no network: the audits import
//! generated JSONL files, nothing is scanned):
//!
//! ```text
//! cargo bench --bench report                    # /24, /18 and /16
//! cargo bench --bench report -- --only 24       # one scale (24, 18 or 16)
//! cargo bench --bench report -- --bin target/release/portwarden
//! cargo bench --bench report -- --big 120k      # also 120,000 hosts × 10 open ports
//! cargo bench --bench report -- --big 400k      # also 400,000 hosts × 10 (or --big all)
//! cargo bench --bench report -- --only 16 --compress --store
//! ```
//!
//! `--big` scales (issue 21) are opt-in: their input is 170 MB and 560 MB.
//! `--store` records each run in a fresh history database (`--store
//! DIR/history.db`) instead of `--no-store`; `--compress` passes
//! `--compress`. Each run also prints the report folder's size, its
//! biggest files and (with `--store`) the database's size.
//!
//! For each scale it generates `observations.jsonl` (open ports only, a
//! fixed pseudo-random spread of well-known and high-risk ports over about
//! 60 % of the addresses of 198.18.0.0/N) and a three-group policy (a PCI
//! cardholder segment, an internet-facing DMZ, an office; the rest of the
//! range unmanaged), runs `portwarden audit --from-jsonl … --no-store`
//! under `/usr/bin/time -f %M`, and prints the open ports, findings,
//! index.html and report.json sizes, wall time and peak RSS. Goals
//! (issue 13): index.html ≤ 1 MB for a /24 and ≤ 20 MB for a /16 with about
//! 100,000 open ports; report.json ≤ 60 MB and audit ≤ 30 s and peak RSS
//! ≤ 512 MB for the /16.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "../tests/report_synth.rs"]
mod synth;

use synth::{BIG, SCALES, generate, generate_big};

fn size_mb(p: &Path) -> f64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
}

/// Every file under `dir`, with its size, biggest first.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = p.metadata() {
                let name = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.push((name, m.len()));
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.1));
    out
}

struct Opts {
    bin: PathBuf,
    store: bool,
    compress: bool,
}

/// Audits the input in `dir`, prints one line of figures and the folder's files.
fn run(o: &Opts, dir: &Path, label: &str, open: usize) {
    let out = dir.join("report");
    let rss = dir.join("rss.txt");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"]).arg(&rss).arg(&o.bin).args([
        "audit",
        "--lang",
        "en",
        "--as-of",
        "2026-11-24",
    ]);
    if o.store {
        cmd.arg("--store").arg(dir.join("history.db"));
    } else {
        cmd.arg("--no-store");
    }
    if o.compress {
        cmd.arg("--compress");
    }
    cmd.arg("--from-jsonl")
        .arg(dir.join("observations.jsonl"))
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .arg("--out")
        .arg(&out);
    let t0 = Instant::now();
    let res = cmd.output().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        matches!(res.status.code(), Some(0 | 1)),
        "audit failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let kb: f64 = std::fs::read_to_string(&rss)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let all = files(&out);
    let folder: u64 = all.iter().map(|f| f.1).sum();
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>14.2} {:>14.2} {:>10.1} {:>9.2} {:>12.1}",
        label,
        open,
        report["summary"]["rows"].to_string(),
        report["summary"]["findings"].to_string(),
        size_mb(&out.join("index.html")),
        size_mb(&out.join("report.json")),
        folder as f64 / 1e6,
        secs,
        kb / 1024.0
    );
    let top: Vec<String> = all
        .iter()
        .take(8)
        .map(|(n, b)| format!("{n} {:.1}", *b as f64 / 1e6))
        .collect();
    println!("       files (MB): {}", top.join(", "));
    if o.store {
        println!(
            "       history.db {:.1} MB",
            size_mb(&dir.join("history.db"))
        );
    }
    if std::env::var_os("PW_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        println!("  kept {}", out.display());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let flag = |f: &str| args.iter().any(|a| a == f);
    let bin = arg("--bin")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("PORTWARDEN_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_portwarden")));
    let only: Option<u8> = arg("--only").and_then(|v| v.parse().ok());
    let big = arg("--big");
    assert!(
        Path::new("/usr/bin/time").exists(),
        "/usr/bin/time is needed for peak RSS (Debian package `time`)"
    );
    let o = Opts {
        bin,
        store: flag("--store"),
        compress: flag("--compress"),
    };
    let root = std::env::temp_dir().join(format!("pw-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    println!("binary: {}", o.bin.display());
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>14} {:>14} {:>10} {:>9} {:>12}",
        "scale",
        "open",
        "rows",
        "findings",
        "index.html MB",
        "report.json MB",
        "folder MB",
        "audit s",
        "peak RSS MB"
    );
    // With --big alone, only the big scales.
    let small = big.is_none() || only.is_some();
    for s in SCALES
        .iter()
        .filter(|s| small && only.is_none_or(|o| o == s.prefix))
    {
        let dir = root.join(format!("s{}", s.prefix));
        std::fs::create_dir_all(&dir).unwrap();
        let open = generate(&dir, s);
        run(&o, &dir, &format!("/{}", s.prefix), open);
    }
    for b in BIG
        .iter()
        .filter(|b| big.as_deref().is_some_and(|v| v == "all" || v == b.name))
    {
        let dir = root.join(b.name);
        std::fs::create_dir_all(&dir).unwrap();
        let open = generate_big(&dir, b);
        run(&o, &dir, b.name, open);
    }
    let _ = std::fs::remove_dir(&root);
}
