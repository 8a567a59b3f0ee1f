//! Report benchmark: audit size and cost at scale, on synthetic imports.
//!
//! Not part of CI; run on demand (no root, no network: the audits import
//! generated JSONL files, nothing is scanned):
//!
//! ```text
//! cargo bench --bench report                    # /24, /18 and /16
//! cargo bench --bench report -- --only 24       # one scale (24, 18 or 16)
//! cargo bench --bench report -- --bin target/release/portwarden
//! ```
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

use synth::{SCALES, generate};

fn size_mb(p: &Path) -> f64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let bin = arg("--bin")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("PORTWARDEN_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_portwarden")));
    let only: Option<u8> = arg("--only").and_then(|v| v.parse().ok());
    assert!(
        Path::new("/usr/bin/time").exists(),
        "/usr/bin/time is needed for peak RSS (Debian package `time`)"
    );
    let root = std::env::temp_dir().join(format!("pw-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    println!("binary: {}", bin.display());
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>14} {:>14} {:>9} {:>12}",
        "scale",
        "open",
        "rows",
        "findings",
        "index.html MB",
        "report.json MB",
        "audit s",
        "peak RSS MB"
    );
    for s in SCALES.iter().filter(|s| only.is_none_or(|o| o == s.prefix)) {
        let dir = root.join(format!("s{}", s.prefix));
        std::fs::create_dir_all(&dir).unwrap();
        let open = generate(&dir, s);
        let out = dir.join("report");
        let rss = dir.join("rss.txt");
        let t0 = Instant::now();
        let o = Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&rss)
            .arg(&bin)
            .args([
                "audit",
                "--no-store",
                "--lang",
                "en",
                "--as-of",
                "2026-11-24",
            ])
            .arg("--from-jsonl")
            .arg(dir.join("observations.jsonl"))
            .arg("--policy")
            .arg(dir.join("policy.toml"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "audit failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let kb: f64 = std::fs::read_to_string(&rss)
            .unwrap()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0.0);
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        println!(
            "/{:<5} {:>10} {:>10} {:>10} {:>14.2} {:>14.2} {:>9.2} {:>12.1}",
            s.prefix,
            open,
            report["summary"]["rows"].to_string(),
            report["summary"]["findings"].to_string(),
            size_mb(&out.join("index.html")),
            size_mb(&out.join("report.json")),
            secs,
            kb / 1024.0
        );
        if std::env::var_os("PW_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            println!("  kept {}", out.display());
        }
    }
    let _ = std::fs::remove_dir(&root);
}
