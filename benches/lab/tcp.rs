//! The TCP cases of the lab benchmark: the connect and SYN scans of a /24
//! × the `common` ports (plain, 2 % loss each way, a 5,000/s SYN limiter),
//! 16 hosts × 65,535 ports, nmap side by side, and the link's own limit
//! measured with trafgen in the same run.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use super::lab::{Faults, Lab, LabBuilder, Layout};
use super::{
    Measured, Opts, WELL_KNOWN, expand_ports, load1, pps_cell, run_nmap, run_portwarden,
    tx_packets, which,
};

/// One row of the TCP table.
struct Row {
    case: String,
    m: Measured,
    expected: BTreeSet<(IpAddr, u16)>,
}

/// Packets trafgen sends to measure the link's limit.
const TRAFGEN_PACKETS: u64 = 1_000_000;

/// The link's limit: trafgen (a `PACKET_TX_RING` generator that bypasses
/// the qdisc) sending SYNs from the scanner namespace to a closed port of
/// a live lab host on both cores, each answered with a RST by the target
/// kernel. Returns (packets per second, load average when it started).
fn trafgen_limit(lab: &Lab, dst: IpAddr, tmp: &Path) -> Option<(f64, f64)> {
    let trafgen = which("trafgen")?;
    let conf = tmp.join("syn.trafgen");
    let src = super::lab::SCANNER_V4;
    std::fs::write(
        &conf,
        format!(
            "{{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa={src}, da={dst}, ttl=64), \
             tcp(sp=dinc(40000, 60000), dp=9, seq=drnd(), syn, win=1024) }}\n"
        ),
    )
    .ok()?;
    let mut cmd = lab.command(trafgen);
    cmd.args(["-o", lab.scanner_ns(), "-i"]).arg(&conf).args([
        "-n",
        &TRAFGEN_PACKETS.to_string(),
        "-P",
        "2",
    ]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    println!("  $ trafgen {}", super::args_of(&cmd));
    let (load, tx) = (load1(), tx_packets(lab));
    let start = Instant::now();
    let ok = cmd.status().ok()?.success();
    let wall = start.elapsed();
    let sent = tx_packets(lab).saturating_sub(tx);
    (ok && sent > 0).then(|| (sent as f64 / wall.as_secs_f64(), load))
}

fn layout_24(port_list: &[u16], open_ports: Vec<u16>, quick: bool) -> Layout {
    if quick {
        Layout {
            prefix: "198.19.1.0/26".into(),
            hosts: 1..=62,
            ports: port_list.to_vec(),
            open_ports,
            down: 25,
            open: 60,
            dropped: 20,
            rejected: 20,
            seed: 0xbe7c_0001,
        }
    } else {
        Layout {
            prefix: "198.19.1.0/24".into(),
            hosts: 1..=254,
            ports: port_list.to_vec(),
            open_ports,
            down: 102,
            open: 440,
            dropped: 200,
            rejected: 200,
            seed: 0xbe7c_0002,
        }
    }
}

/// The port list of the /24 cases: `common` (or a quick 100), and the
/// `-p` spelling of it for portwarden and for nmap.
fn port_sets(o: &Opts) -> (String, Vec<u16>, String) {
    let common = expand_ports(&o.bin, "common");
    let (spec, port_list): (String, Vec<u16>) = if o.quick {
        let v: Vec<u16> = match &common {
            Some(c) => c.iter().copied().take(100).collect(),
            None => (1..=100).chain(WELL_KNOWN).collect(),
        };
        let v: Vec<u16> = v.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        let s = v.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        (s, v)
    } else {
        match &common {
            Some(c) => ("common".into(), c.clone()),
            None => {
                eprintln!(
                    "`{} ports common` failed; scanning 1-1006 instead",
                    o.bin.display()
                );
                ("1-1006".into(), (1..=1006).collect())
            }
        }
    };
    let explicit = port_list
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    (spec, port_list, explicit)
}

const NMAP_TUNED: [&str; 11] = [
    "-T4",
    "--max-retries",
    "1",
    "--min-rate",
    "5000",
    "--min-hostgroup",
    "256",
    "--initial-rtt-timeout",
    "100ms",
    "--max-rtt-timeout",
    "300ms",
];

/// Runs the TCP cases and prints their table; returns the trafgen limit
/// (packets per second) for the UDP table.
pub fn run_tcp(o: &Opts) -> Option<f64> {
    let (spec, port_list, explicit) = port_sets(o);
    let in_set: BTreeSet<u16> = port_list.iter().copied().collect();
    let open_ports: Vec<u16> = WELL_KNOWN
        .iter()
        .copied()
        .filter(|p| in_set.contains(p))
        .collect();
    assert!(!open_ports.is_empty(), "no well-known port in the port set");
    let layout = layout_24(&port_list, open_ports, o.quick);
    let built = Instant::now();
    let plain = Faults {
        syn_loss_permille: o.syn_loss,
        ..Faults::default()
    };
    let mut lab = Lab::generated(LabBuilder::new(), &layout)
        .faults(plain)
        .build();
    let expected = lab.open_pairs();
    println!(
        "lab {}: {} live hosts, {} down, {} ports ({}), {} open pairs, {} dropped, {} rejected, SYN loss {}‰ (built in {:.1}s)",
        layout.prefix,
        lab.live_hosts().len(),
        layout.down,
        port_list.len(),
        if spec.len() > 40 {
            "explicit list"
        } else {
            spec.as_str()
        },
        expected.len(),
        lab.dropped_pairs().len(),
        lab.rejected_pairs().len(),
        o.syn_loss,
        built.elapsed().as_secs_f64()
    );

    let tmp = std::env::temp_dir().join(format!("pw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let case24 = format!("{} × {}", layout.prefix, port_list.len());
    let target = lab.v4_prefix().unwrap();
    let mut rows = Vec::new();
    let mut push = |case: &str, m: Measured, expected: &BTreeSet<(IpAddr, u16)>| {
        rows.push(Row {
            case: case.to_string(),
            m,
            expected: expected.clone(),
        })
    };
    let live = *lab.live_hosts().iter().next().expect("a live host");
    let limit = trafgen_limit(&lab, live, &tmp);
    if o.connect && case(o, "connect") {
        for m in run_each(&lab, o, "connect", (&target, &spec), &tmp) {
            push(&case24, m, &expected);
        }
    }
    if o.syn && case(o, "syn") {
        for m in run_each(&lab, o, "syn", (&target, &spec), &tmp) {
            push(&case24, m, &expected);
        }
    }
    if o.nmap {
        if o.connect {
            let m = run_nmap(
                &lab,
                o,
                "nmap -sT -T4 --max-retries 1",
                &["-sT", "-T4", "--max-retries", "1"],
                &explicit,
                &tmp,
            );
            push(&case24, m, &expected);
            let args: Vec<&str> = ["-sT"].into_iter().chain(NMAP_TUNED).collect();
            let m = run_nmap(&lab, o, "nmap -sT tuned", &args, &explicit, &tmp);
            push(&case24, m, &expected);
        }
        if o.syn {
            let args: Vec<&str> = ["-sS"].into_iter().chain(NMAP_TUNED).collect();
            let m = run_nmap(&lab, o, "nmap -sS tuned", &args, &explicit, &tmp);
            push(&case24, m, &expected);
        }
    }
    if o.syn && !o.quick {
        let faulty = [
            (
                "lossy",
                "lossy 2 % each way",
                Faults {
                    syn_loss_permille: 20,
                    reply_loss_permille: 20,
                    ..Faults::default()
                },
            ),
            (
                "limiter",
                "5,000/s SYN limiter",
                Faults {
                    syn_rate_limit: Some(5000),
                    ..Faults::default()
                },
            ),
        ];
        for (name, what, faults) in faulty {
            if !case(o, name) {
                continue;
            }
            lab.set_faults(faults);
            for m in run_each(&lab, o, "syn", (&target, &spec), &tmp) {
                push(&format!("{case24}, {what}"), m, &expected);
            }
        }
        drop(lab);
        if case(o, "full") {
            let (lab16, ms) = full_range(o, &tmp);
            for m in ms {
                push("16 × 65535", m, &lab16.open_pairs());
            }
        }
    }
    if std::env::var_os("PW_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        println!("outputs kept in {}", tmp.display());
    }
    print_table(&rows, limit);
    limit.map(|(pps, _)| pps)
}

/// 16 live hosts × every port (200 open, 100 dropped, 100 rejected pairs)
/// scanned with the SYN engine.
fn full_range(o: &Opts, tmp: &Path) -> (Lab, Vec<Measured>) {
    let ports: Vec<u16> = (1..=65535).collect();
    let layout = Layout {
        prefix: "198.19.2.0/27".into(),
        hosts: 1..=16,
        ports: ports.clone(),
        open_ports: WELL_KNOWN.to_vec(),
        down: 0,
        open: 200,
        dropped: 100,
        rejected: 100,
        seed: 0xbe7c_0003,
    };
    let lab = Lab::generated(LabBuilder::new(), &layout).build();
    let m = run_each(&lab, o, "syn", ("198.19.2.1-16", "1-65535"), tmp);
    (lab, m)
}

/// Whether the TCP case `name` runs (`--case`, default every case).
fn case(o: &Opts, name: &str) -> bool {
    o.cases.is_empty() || o.cases.iter().any(|c| c == name)
}

/// One case with `--bin` and every `--vs` binary in turn, `--repeat`
/// times: A B A B…, so each sees the same load.
fn run_each(lab: &Lab, o: &Opts, kind: &str, args: (&str, &str), tmp: &Path) -> Vec<Measured> {
    let bins: Vec<&Path> = std::iter::once(o.bin.as_path())
        .chain(o.vs.iter().map(|b| b.as_path()))
        .collect();
    let mut out = Vec::new();
    for _ in 0..o.repeat {
        for bin in &bins {
            out.push(run_portwarden(lab, (o, bin), kind, args, tmp));
        }
    }
    out
}

fn print_table(rows: &[Row], limit: Option<(f64, f64)>) {
    println!();
    match limit {
        Some((pps, load)) => println!(
            "limit (trafgen, {TRAFGEN_PACKETS} SYNs on 2 cores, load {load:.1}): {pps:.0} packets/s"
        ),
        None => println!("limit: trafgen unavailable (apt-get install netsniff-ng)"),
    }
    println!(
        "| case | tool | load | wall s | pps (of limit) | max RSS MB | cpu s (sys) | found/expected | FP | status |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let m = &r.m;
        let hit = m.found.intersection(&r.expected).count();
        let fp = m.found.difference(&r.expected).count();
        println!(
            "| {} | {} | {:.1} | {:.2} | {} | {:.1} | {:.2} ({:.2}) | {hit}/{} | {fp} | {} |",
            r.case,
            m.tool,
            m.load,
            m.wall.as_secs_f64(),
            pps_cell(m.packets, m.wall, limit.map(|l| l.0)),
            m.max_rss_kb as f64 / 1024.0,
            m.cpu.as_secs_f64(),
            m.sys.as_secs_f64(),
            r.expected.len(),
            m.status
        );
    }
}
