//! Lab benchmark: portwarden against nmap on the same namespace lab.
//!
//! Not part of CI (it takes minutes); run on demand as root:
//!
//! ```text
//! cargo bench --bench lab                 # connect scan, plus nmap -sT when nmap is installed
//! cargo bench --bench lab -- --syn        # also the SYN cases: /24 (plain, 2 % loss each way,
//!                                         # a 5,000/s SYN limiter), 16 × 65,535, nmap -sS
//! cargo bench --bench lab -- --syn --udp  # every TCP case, then the UDP one, in one run
//! cargo bench --bench lab -- --syn --no-connect   # SYN cases only
//! cargo bench --bench lab -- --quick      # a /26 × 100 ports sanity run
//! cargo bench --bench lab -- --udp        # UDP: /24 × high-risk-udp with real daemons, vs nmap -sU
//! cargo bench --bench lab -- --udp-top    # UDP: 16 hosts × top-udp (1,000 ports), vs nmap -sU (~1 h)
//! cargo bench --bench lab -- --udp-top --only portwarden   # one tool: portwarden | nmap | nmap-min-rate | nmap-t3
//! cargo bench --bench lab -- --no-nmap --bin target/release/portwarden
//! cargo bench --bench lab -- --syn --no-connect --no-nmap --case full --vs /tmp/old/portwarden --repeat 3
//!                                         # A/B: each portwarden case run with --bin and every --vs
//!                                         # binary in turn, 3 times (cases: connect, syn, lossy,
//!                                         # limiter, full; --case is repeatable, default all)
//! ```
//!
//! The lab is 198.19.1.0/24 (hosts .1–.254, 60 % up) scanned over the
//! `common` port set (1,006 ports) with 440 open pairs on well-known ports.
//! Every run first measures the link's limit with trafgen (SYNs from a
//! `PACKET_TX_RING`, both cores) and each table gives the packets per
//! second each tool sent (counted on the scanner's link) against it, with
//! the 1-minute load average when the run started (the machine may be
//! shared). For each tool it prints wall time, peak RSS (from `wait4` rusage, so no
//! `/usr/bin/time` is needed), CPU time, and recall / false positives against
//! the lab's ground truth. Environment knobs: `PW_BENCH_TIMEOUT` (seconds per
//! run, default 900), `PW_BENCH_SYN_LOSS` (per-mille SYN loss in the target,
//! default 0), `PORTWARDEN_BIN`.

#[path = "../tests/lab/mod.rs"]
mod lab;
#[path = "../tests/prereq.rs"]
mod prereq;
#[path = "lab/tcp.rs"]
mod tcp;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab::Lab;

/// Ports open pairs are drawn from: well-known services that any "common"
/// set contains. Intersected at run time with `portwarden ports common`.
const WELL_KNOWN: [u16; 40] = [
    21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 389, 443, 445, 465, 587, 636, 993, 995, 1433,
    1521, 1723, 2049, 3306, 3389, 5432, 5900, 6379, 8000, 8080, 8443, 8888, 9000, 9090, 9200,
    10000, 11211, 27017, 5000, 3000,
];

struct Opts {
    syn: bool,
    /// The connect scan (and nmap -sT): by default, or with `--connect`.
    connect: bool,
    udp: bool,
    /// `--udp` or `--udp-top` without `--syn` / `--connect`: UDP cases only.
    udp_only: bool,
    udp_top: bool,
    /// `--only TOOL` (repeatable): run only these of portwarden, nmap,
    /// nmap-min-rate (UDP modes).
    only: Vec<String>,
    nmap: bool,
    quick: bool,
    bin: PathBuf,
    /// `--vs BIN` (repeatable): more binaries each portwarden case runs
    /// with, in turn with `bin` (A/B comparisons in one run, same load).
    vs: Vec<PathBuf>,
    /// `--repeat N`: runs of each portwarden case per binary.
    repeat: usize,
    /// `--case NAME` (repeatable): only these TCP cases (connect, syn,
    /// lossy, limiter, full).
    cases: Vec<String>,
    timeout: Duration,
    syn_loss: u32,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let bin = args
        .iter()
        .position(|a| a == "--bin")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(Lab::bin);
    let env_u64 = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    Opts {
        syn: has("--syn") || std::env::var_os("PW_BENCH_SYN").is_some(),
        connect: !has("--no-connect"),
        udp: has("--udp"),
        udp_only: (has("--udp") || has("--udp-top")) && !has("--syn") && !has("--connect"),
        udp_top: has("--udp-top"),
        only: args
            .windows(2)
            .filter(|w| w[0] == "--only")
            .map(|w| w[1].clone())
            .collect(),
        nmap: !has("--no-nmap") && which("nmap").is_some(),
        quick: has("--quick"),
        bin,
        vs: args
            .windows(2)
            .filter(|w| w[0] == "--vs")
            .map(|w| PathBuf::from(&w[1]))
            .collect(),
        repeat: args
            .iter()
            .position(|a| a == "--repeat")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(1usize)
            .max(1),
        cases: args
            .windows(2)
            .filter(|w| w[0] == "--case")
            .map(|w| w[1].clone())
            .collect(),
        timeout: Duration::from_secs(env_u64("PW_BENCH_TIMEOUT", 900)),
        syn_loss: env_u64("PW_BENCH_SYN_LOSS", 0) as u32,
    }
}

/// Copies a tool's output into `PW_BENCH_KEEP` (a directory), when set:
/// the lab's scratch directory goes with the lab.
fn keep(file: &Path) {
    if let Some(dir) = std::env::var_os("PW_BENCH_KEEP") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        if let Some(name) = file.file_name() {
            let _ = std::fs::copy(file, dir.join(name));
        }
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// The ports `spec` expands to, per the binary itself.
fn expand_ports(bin: &Path, spec: &str) -> Option<Vec<u16>> {
    let out = Command::new(bin)
        .args(["ports", spec])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let ports: Vec<u16> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(['/', ' ', '\t']).next()?.parse().ok())
        .collect();
    (!ports.is_empty()).then_some(ports)
}

struct Measured {
    tool: String,
    /// Packets the scanner's link sent during the run.
    packets: u64,
    /// 1-minute load average when the run started.
    load: f64,
    wall: Duration,
    max_rss_kb: i64,
    cpu: Duration,
    /// The part of `cpu` spent in the kernel.
    sys: Duration,
    status: String,
    found: BTreeSet<(IpAddr, u16)>,
}

/// Runs `cmd` (already wrapped in `ip netns exec`, which execs in place, so
/// the child's rusage is the tool's) and waits with `wait4` for its rusage.
fn measure(tool: &str, cmd: Command, limit: Duration) -> (Duration, i64, Duration, String) {
    let (wall, rss, (cpu, _), status, _) = measure_full(tool, cmd, limit);
    (wall, rss, cpu, status)
}

/// [`measure`], also returning the tool's stderr.
// The child is reaped by `wait4`, which std's `Child::wait` cannot replace
// (it discards the rusage).
#[allow(clippy::zombie_processes)]
fn measure_full(
    tool: &str,
    mut cmd: Command,
    limit: Duration,
) -> (Duration, i64, (Duration, Duration), String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {tool}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr;
    // Drain stderr on a thread so a chatty progress bar cannot block the tool.
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter for wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: pid is our own child; status and ru are valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 {
            panic!("wait4 {tool}: {}", std::io::Error::last_os_error());
        }
        if !killed && start.elapsed() > limit {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed();
    let err = drain.join().unwrap_or_default();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
    let st = if killed {
        format!("killed after {}s", limit.as_secs())
    } else if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => "ok".to_string(),
            c => format!(
                "exit {c}: {}",
                err.lines()
                    .last()
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect::<String>()
            ),
        }
    } else {
        "killed by signal".to_string()
    };
    (wall, ru.ru_maxrss, (cpu, tv(ru.ru_stime)), st, err)
}

/// Runs a portwarden scan with `bin` and measures it; prints the lines of
/// its summary and notices.
fn run_portwarden(
    lab: &Lab,
    (o, bin): (&Opts, &Path),
    kind: &str,
    (target, ports): (&str, &str),
    tmp: &Path,
) -> Measured {
    let out = tmp.join(format!("portwarden-{kind}.jsonl"));
    let mut cmd = lab.command(bin);
    cmd.env("PORTWARDEN_SCAN_STATS", "1");
    cmd.args([
        "scan", target, "-p", ports, "--scan", kind, "--open", "--format", "jsonl", "--seed", "1",
        "-o",
    ])
    .arg(&out);
    println!("  $ {} {}", bin.display(), args_of(&cmd));
    let mut tool = format!("portwarden --scan {kind}");
    if !o.vs.is_empty() {
        let name = bin.file_name().unwrap_or_default().to_string_lossy();
        tool = format!("{tool} [{name}]");
    }
    let (load, tx, backlog) = (load1(), tx_packets(lab), backlog_drops());
    let (wall, rss, (cpu, sys), status, err) = measure_full(&tool, cmd, o.timeout);
    let packets = tx_packets(lab).saturating_sub(tx);
    let backlog = backlog_drops().saturating_sub(backlog);
    if backlog > 0 {
        // Packets the kernel dropped on a full per-CPU backlog (the veth
        // pair's receive queue): a loaded machine, not the scanner.
        println!("    kernel backlog drops during the run: {backlog}");
    }
    // The summary and the engine's figures, and the first notes.
    let key = |l: &&str| l.contains("scanned ") || l.contains("note: engine:");
    let notes: Vec<&str> = err
        .lines()
        .filter(|l| (l.contains("note:") || l.contains("warning")) && !key(l))
        .collect();
    for line in notes
        .iter()
        .take(4)
        .chain(err.lines().filter(key).collect::<Vec<_>>().iter())
    {
        println!("    {}", line.chars().take(240).collect::<String>());
    }
    if notes.len() > 4 {
        println!("    … {} more notes", notes.len() - 4);
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let found = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["state"] == "open")
        .filter_map(|v| Some((v["ip"].as_str()?.parse().ok()?, v["port"].as_u64()? as u16)))
        .collect();
    Measured {
        tool,
        packets,
        load,
        wall,
        max_rss_kb: rss,
        cpu,
        sys,
        status,
        found,
    }
}

fn run_nmap(lab: &Lab, o: &Opts, label: &str, extra: &[&str], ports: &str, tmp: &Path) -> Measured {
    let out = tmp.join(format!("nmap-{}.xml", label.replace([' ', '/'], "_")));
    let target = lab.v4_prefix().unwrap();
    let mut cmd = lab.command("nmap");
    cmd.args(extra)
        .args(["-p", ports, "-n", "-Pn", &target, "-oX"])
        .arg(&out);
    println!("  $ nmap {}", args_of(&cmd));
    let (load, tx) = (load1(), tx_packets(lab));
    let (wall, rss, (cpu, sys), status, _) = measure_full(label, cmd, o.timeout);
    let packets = tx_packets(lab).saturating_sub(tx);
    let xml = std::fs::read_to_string(&out).unwrap_or_default();
    Measured {
        tool: label.to_string(),
        packets,
        load,
        wall,
        max_rss_kb: rss,
        cpu,
        sys,
        status,
        found: nmap_open(&xml),
    }
}

fn args_of(cmd: &Command) -> String {
    // Skip `netns exec NAME PROGRAM`.
    cmd.get_args()
        .skip(4)
        .map(|a| a.to_string_lossy().into_owned())
        .map(|a| {
            if a.len() > 60 {
                format!("{}…", &a[..60])
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Open (address, port) pairs from nmap's XML: each `<host>` has one
/// `<address addr=… addrtype="ipv4"/>` and `<port portid=…><state state="open"`.
fn nmap_open(xml: &str) -> BTreeSet<(IpAddr, u16)> {
    let mut found = BTreeSet::new();
    // "<host " with the space: `<hostnames>` and `<hosthint>` are not hosts.
    for host in xml.split("<host ").skip(1) {
        let Some(ip) = attr(host, "<address addr=\"").and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        for port in host.split("<port ").skip(1) {
            let id = attr(port, "portid=\"").and_then(|p| p.parse::<u16>().ok());
            let open = attr(port, "<state state=\"") == Some("open");
            if let (Some(id), true) = (id, open) {
                found.insert((ip, id));
            }
        }
    }
    found
}

fn attr<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let start = s.find(prefix)? + prefix.len();
    let len = s[start..].find('"')?;
    Some(&s[start..start + len])
}

fn main() {
    let o = opts();
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the lab benchmark needs root (network namespaces)"
    );
    let mut limit = None;
    if !o.udp_only {
        limit = tcp::run_tcp(&o);
    }
    if o.udp || o.udp_top {
        run_udp(&o, limit);
    }
}

/// The 1-minute load average now (the machine may be shared).
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Packets dropped on full per-CPU backlog queues so far (every CPU, every
/// namespace: /proc/net/softnet_stat, second column).
fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

/// Packets the scanner namespace's link has sent so far.
fn tx_packets(lab: &Lab) -> u64 {
    let path = format!("/sys/class/net/{}/statistics/tx_packets", lab.scanner_ns());
    lab.command("cat")
        .arg(path)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// `pps (x % of the limit)`, for the tables.
fn pps_cell(packets: u64, wall: Duration, limit: Option<f64>) -> String {
    let pps = packets as f64 / wall.as_secs_f64().max(1e-9);
    match limit {
        Some(l) if l > 0.0 => format!("{:.0} ({:.0} %)", pps, 100.0 * pps / l),
        _ => format!("{pps:.0}"),
    }
}

/// What each UDP pair is (or was found to be).
type UdpTruth = std::collections::BTreeMap<(IpAddr, u16), lab::udp::Want>;
/// (tool, wall, RSS, cpu, status, what it found, (packets sent, load))
type UdpRow = (
    String,
    Duration,
    i64,
    Duration,
    String,
    UdpTruth,
    (u64, f64),
);

/// `--udp`: the UDP lab of tests/udp.rs (198.19.1.0/24, 152 live hosts ×
/// the 12 `high-risk-udp` ports, real dnsmasq / snmpd / chronyd / memcached
/// / SSDP, 30 dropped and 20 rejected pairs, ICMP errors limited per
/// address to 1/s after 6) scanned by portwarden with default settings and
/// by `nmap -sU` with and without `--min-rate`. Judged per pair: open found,
/// false open, and the state split (open / closed / filtered /
/// open|filtered) against the truth.
///
/// `--udp-top`: the 16 hosts 198.19.1.8–23 (all live, the five daemons
/// among them, about 1 % of pairs dropped and 0.5 % rejected) × portwarden's
/// top-1000 UDP list, same judging. Closed ports are answered at about one
/// per second per host, so every tool that classifies them needs ~17 min.
fn run_udp(o: &Opts, limit: Option<f64>) {
    use lab::udp::{Want, udp_lab, udp_lab_16};
    use portwarden::model::{PortState, Reason};
    let run = |tool: &str| o.only.is_empty() || o.only.iter().any(|t| t == tool);
    let (ul, target, spec, ports, timeout) = if o.udp_top {
        let top = expand_ports(&o.bin, "top-udp").expect("`portwarden ports top-udp` works");
        assert_eq!(top.len(), 1000);
        // ~17 min of ICMP pacing per tool; nmap is bounded by --host-timeout.
        let timeout = o.timeout.max(Duration::from_secs(45 * 60));
        (udp_lab_16(&top), "198.19.1.8-23", "top-udp", top, timeout)
    } else {
        let p = lab::udp::PORTS.to_vec();
        (udp_lab(), "198.19.1.0/24", "high-risk-udp", p, o.timeout)
    };
    let Some(ul) = ul else {
        panic!("the UDP lab needs dnsmasq-base, snmpd, chrony and memcached (tests/setup.sh)");
    };
    let tmp = ul._dir.0.clone();
    println!(
        "UDP lab {target}: {} pairs, {} open",
        ul.truth.len(),
        ul.truth.values().filter(|w| **w == Want::Open).count()
    );
    type Got = UdpTruth;
    let mut rows: Vec<UdpRow> = Vec::new();

    let out = tmp.join("portwarden-udp.jsonl");
    let mut cmd = ul.lab.command(&o.bin);
    cmd.args(["scan", target, "-p", spec, "--format", "jsonl", "-o"])
        .arg(&out);
    if run("portwarden") {
        println!("  $ {} {}", o.bin.display(), args_of(&cmd));
        let (load, tx) = (load1(), tx_packets(&ul.lab));
        let (wall, rss, (cpu, _), status, err) = measure_full("portwarden", cmd, timeout);
        let packets = tx_packets(&ul.lab).saturating_sub(tx);
        for line in err
            .lines()
            .filter(|l| l.contains("scanned ") || l.contains("warning: "))
        {
            println!("    portwarden: {line}");
        }
        let got: Got = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let w = match v["state"].as_str()? {
                    "open" => Want::Open,
                    "closed" => Want::Closed,
                    "filtered" => Want::Prohibited,
                    _ => Want::Silent,
                };
                Some((
                    (v["ip"].as_str()?.parse().ok()?, v["port"].as_u64()? as u16),
                    w,
                ))
            })
            .collect();
        let pl = (packets, load);
        rows.push((
            "portwarden (defaults)".into(),
            wall,
            rss,
            cpu,
            status,
            got,
            pl,
        ));
    }

    if o.nmap {
        let ports = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // On the top list nmap without --min-rate follows the limiters too:
        // bound it to 40 min (a host that times out reports nothing, counted
        // as not right).
        let host_timeout = format!("{}s", timeout.as_secs().saturating_sub(300));
        let mut plain = vec!["-T4"];
        let mut t3 = vec![];
        if o.udp_top {
            plain.extend(["--host-timeout", &host_timeout]);
            t3.extend(["--host-timeout", &host_timeout]);
        }
        for (key, label, extra) in [
            ("nmap", "nmap -sU -T4", plain),
            (
                "nmap-min-rate",
                "nmap -sU -T4 --min-rate 5000",
                vec!["-T4", "--min-rate", "5000"],
            ),
            // nmap's own default timing (-T3): only with `--only nmap-t3`.
            ("nmap-t3", "nmap -sU", t3),
        ] {
            let named = o.only.iter().any(|t| t == key);
            if !run(key) || (key == "nmap-t3" && !named) {
                continue;
            }
            let xml = tmp.join(format!("{}.xml", label.replace([' ', '-'], "_")));
            let mut cmd = ul.lab.command("nmap");
            cmd.arg("-sU")
                .args(&extra)
                .args(["-n", "-Pn", "--reason", "-p", &ports, target, "-oX"])
                .arg(&xml);
            println!("  $ nmap {}", args_of(&cmd));
            let (load, tx) = (load1(), tx_packets(&ul.lab));
            let (wall, rss, cpu, status) = measure(label, cmd, timeout);
            let packets = tx_packets(&ul.lab).saturating_sub(tx);
            let text = std::fs::read_to_string(&xml).unwrap_or_default();
            keep(&xml);
            let want = |state: PortState, reason: Reason| match (state, reason) {
                (PortState::Open, _) => Want::Open,
                (PortState::Closed, _) => Want::Closed,
                (_, Reason::AdminProhibited) => Want::Prohibited,
                _ => Want::Silent,
            };
            let mut got = Got::new();
            if let Ok(r) = portwarden::import::nmap::parse(&text, "nmap.xml") {
                for o in &r.observations {
                    got.insert((o.ip, o.port), want(o.state, o.reason));
                }
                // nmap folds runs of one state into <extraports> (most
                // closed ports of a 1,000-port scan): count them too.
                for f in &r.folded {
                    for port in f.ports.iter() {
                        got.insert((f.ip, port), want(f.state, f.reason));
                    }
                }
            }
            rows.push((label.into(), wall, rss, cpu, status, got, (packets, load)));
        }
    }
    print_udp_table(&ul.truth, &rows, &format!("UDP {target} × {spec}"), limit);
}

/// The UDP rows judged per pair against the truth: open found, false open,
/// and the state split.
fn print_udp_table(truth: &UdpTruth, rows: &[UdpRow], case: &str, limit: Option<f64>) {
    use lab::udp::Want;
    let ul_truth = truth;
    println!();
    let want_open = ul_truth.values().filter(|w| **w == Want::Open).count();
    let closed = ul_truth.values().filter(|w| **w == Want::Closed).count();
    let silent = ul_truth.values().filter(|w| **w == Want::Silent).count();
    println!(
        "truth: {} pairs: {want_open} open, {closed} closed, {silent} open|filtered (dropped or down), {} filtered",
        ul_truth.len(),
        ul_truth.len() - want_open - closed - silent
    );
    println!(
        "| case | tool | load | wall s | pps (of limit) | max RSS MB | cpu s | open found | false open | state right | status |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (tool, wall, rss, cpu, status, got, (packets, load)) in rows {
        let (mut found, mut fp, mut right) = (0, 0, 0);
        for (k, want) in ul_truth {
            let Some(have) = got.get(k) else { continue };
            found += usize::from(*have == Want::Open && *want == Want::Open);
            fp += usize::from(*have == Want::Open && *want != Want::Open);
            right += usize::from(have == want);
        }
        println!(
            "| {case} | {tool} | {load:.1} | {:.2} | {} | {:.1} | {:.2} | {found}/{want_open} | {fp} | {right}/{} ({:.1} %) | {status} |",
            wall.as_secs_f64(),
            pps_cell(*packets, *wall, limit),
            *rss as f64 / 1024.0,
            cpu.as_secs_f64(),
            ul_truth.len(),
            100.0 * right as f64 / ul_truth.len() as f64
        );
    }
}
