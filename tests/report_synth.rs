//! Synthetic scan results for report tests and the report benchmark: open
//! ports spread pseudo-randomly (but the same on every run) over about 60 %
//! of 198.18.0.0/N, and a three-group policy (a PCI cardholder segment, an
//! internet DMZ, an office; the rest unmanaged). Shared by
//! `benches/report.rs` and `tests/report.rs`.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;

/// Ports drawn for open pairs, with weights (how often they appear).
const PORTS: [(u16, u32); 20] = [
    (22, 30),
    (80, 24),
    (443, 24),
    (3389, 6),
    (445, 5),
    (3306, 4),
    (5432, 3),
    (6379, 3),
    (8080, 8),
    (23, 2),
    (21, 3),
    (25, 3),
    (135, 3),
    (139, 2),
    (9200, 2),
    (27017, 2),
    (11211, 1),
    (8443, 5),
    (5900, 2),
    (53, 4),
];

/// A small deterministic generator (xorshift64*), so every run audits the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub struct Scale {
    pub prefix: u8,
    /// Mean open ports per live host, in tenths.
    pub ports_per_host_x10: u64,
}

pub const SCALES: [Scale; 3] = [
    Scale {
        prefix: 24,
        ports_per_host_x10: 21,
    },
    Scale {
        prefix: 18,
        ports_per_host_x10: 29,
    },
    Scale {
        prefix: 16,
        ports_per_host_x10: 29,
    },
];

/// Writes the observations of one scale; returns the open pairs written.
pub fn generate(dir: &Path, s: &Scale) -> usize {
    let hosts: u32 = (1u32 << (32 - s.prefix)) - 2;
    let total_weight: u32 = PORTS.iter().map(|p| p.1).sum();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(s.prefix));
    let mut out = String::new();
    let mut open = 0;
    let base = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0));
    for h in 1..=hosts {
        if rng.below(10) >= 6 {
            continue; // ~60 % of addresses are live
        }
        let ip = std::net::Ipv4Addr::from(base + h);
        // 1..=2×mean-1 ports, mean ports_per_host.
        let n = 1 + rng.below((s.ports_per_host_x10 * 2 - 10) / 10 + 1);
        let mut chosen: Vec<u16> = Vec::new();
        for _ in 0..n {
            let mut w = rng.below(u64::from(total_weight)) as u32;
            let port = PORTS
                .iter()
                .find(|(_, pw)| {
                    if w < *pw {
                        true
                    } else {
                        w -= pw;
                        false
                    }
                })
                .map(|p| p.0)
                .unwrap_or(22);
            if !chosen.contains(&port) {
                chosen.push(port);
            }
        }
        chosen.sort_unstable();
        for port in chosen {
            let _ = writeln!(
                out,
                r#"{{"ip":"{ip}","port":{port},"proto":"tcp","state":"open","reason":"syn-ack","rtt_ms":0.4,"time":"2026-11-24T21:40:00.000Z","tries":1}}"#
            );
            open += 1;
        }
    }
    std::fs::write(dir.join("observations.jsonl"), out).unwrap();
    write_policy(dir, &format!("/{}", s.prefix), base, hosts);
    open
}

/// The three-group policy over `hosts` addresses from `base`: a PCI
/// cardholder segment (the first quarter), an internet DMZ (the second),
/// an office (the third); the rest unmanaged.
fn write_policy(dir: &Path, name: &str, base: u32, hosts: u32) {
    // Groups: a PCI cardholder segment (the first /4 of the range), an
    // internet DMZ (the next /4), an office (the next /4); the rest unmanaged.
    let quarter = |q: u32| {
        let size = (hosts + 2) / 4;
        let lo = std::net::Ipv4Addr::from(base + q * size + 1);
        let hi = std::net::Ipv4Addr::from(base + (q + 1) * size - 2);
        format!("{lo}-{hi}")
    };
    let policy = format!(
        r#"name = "bench {p}"

[[group]]
name = "cardholder"
targets = ["{cde}"]
tags = ["pci-cde"]
profiles = ["pci-dss-4.0", "mlps2-level3"]
max_open_ports = 3

[[group.allow]]
port = 443
justification = "payment API"
approver = "ciso"
ticket = "CHG-1"
review_by = 2026-12-31

[[group.allow]]
port = 22
justification = "administration from the jump host"
approver = "ciso"
review_by = 2026-01-31

[[group]]
name = "dmz"
targets = ["{dmz}"]
vantage = "internet"
profiles = ["pci-dss-4.0", "iso27001-2022", "cis-v8", "nist-800-53r5"]

[[group.allow]]
port = 80

[[group.allow]]
port = 443
justification = "public web"
approver = "web-owner"

[[group]]
name = "office"
targets = ["{office}"]
profiles = ["iso27001-2022", "mlps2-level3"]

[[group.allow]]
port = 22
justification = "ssh"
approver = "it"

[[exception]]
target = "{cde_first}"
port = 3389
reason = "vendor support"
approver = "ciso"
expires = 2026-12-31
"#,
        p = name,
        cde = quarter(0),
        dmz = quarter(1),
        office = quarter(2),
        cde_first = std::net::Ipv4Addr::from(base + 1),
    );
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
}

/// A large scale: `hosts` live hosts from 10.0.0.1 (an import only:
/// nothing is sent to them), each with exactly `ports` open ports of
/// [`PORTS`] (every one, in order, then the first again: at most 20).
pub struct Big {
    pub name: &'static str,
    pub hosts: u32,
    pub ports: usize,
}

/// The issue's scales: 1.2 and 4 million open ports (opt-in in the bench).
pub const BIG: [Big; 2] = [
    Big {
        name: "120k",
        hosts: 120_000,
        ports: 10,
    },
    Big {
        name: "400k",
        hosts: 400_000,
        ports: 10,
    },
];

/// Writes a [`Big`] scale's `observations.jsonl` (streamed: 4 million
/// lines are half a GB) and its policy; returns the open pairs written.
pub fn generate_big(dir: &Path, b: &Big) -> usize {
    use std::io::Write as _;
    let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0));
    let file = std::fs::File::create(dir.join("observations.jsonl")).unwrap();
    let mut w = std::io::BufWriter::new(file);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(b.hosts));
    let mut open = 0;
    for h in 1..=b.hosts {
        let ip = std::net::Ipv4Addr::from(base + h);
        let first = rng.below(PORTS.len() as u64) as usize;
        let mut chosen: Vec<u16> = (0..b.ports.min(PORTS.len()))
            .map(|i| PORTS[(first + i) % PORTS.len()].0)
            .collect();
        chosen.sort_unstable();
        for port in chosen {
            writeln!(
                w,
                r#"{{"ip":"{ip}","port":{port},"proto":"tcp","state":"open","reason":"syn-ack","rtt_ms":0.4,"time":"2026-11-24T21:40:00.000Z","tries":1}}"#
            )
            .unwrap();
            open += 1;
        }
    }
    w.flush().unwrap();
    // The range the hosts span, rounded up to a power of two (with the
    // network and broadcast addresses, as `generate` counts them).
    let span = (b.hosts + 2).next_power_of_two();
    write_policy(dir, b.name, base, span - 2);
    open
}

/// nmap's own service names for the synthetic ports (its `nmap-services`
/// table names, as `-sS` without `-sV` writes them).
const NMAP_NAMES: [(u16, &str); 20] = [
    (22, "ssh"),
    (80, "http"),
    (443, "https"),
    (3389, "ms-wbt-server"),
    (445, "microsoft-ds"),
    (3306, "mysql"),
    (5432, "postgresql"),
    (6379, "redis"),
    (8080, "http-proxy"),
    (23, "telnet"),
    (21, "ftp"),
    (25, "smtp"),
    (135, "msrpc"),
    (139, "netbios-ssn"),
    (9200, "wap-wsp"),
    (27017, "mongod"),
    (11211, "memcache"),
    (8443, "https-alt"),
    (5900, "vnc"),
    (53, "domain"),
];

/// The command line the synthetic nmap file records: aggressive timing
/// that risks missed ports.
pub const NMAP_ARGS: &str = "nmap -sS -n -T5 --min-rate 50000 --max-retries 2 -p 21-23,25,53,80,135,139,443,445,3306,3389,5432,5900,6379,8080,8443,9200,11211,27017 -oX scan.xml 198.18.0.0/24";

/// [`generate`]'s /24 as an nmap XML file (`scan.xml`, nmap's service
/// names, the 20 ports asked for, every other asked port folded as
/// closed), beside the same `policy.toml`. Returns the open pairs.
pub fn generate_nmap(dir: &Path) -> usize {
    let open = generate(dir, &SCALES[0]);
    let jsonl = std::fs::read_to_string(dir.join("observations.jsonl")).unwrap();
    let mut hosts: std::collections::BTreeMap<String, Vec<u16>> = Default::default();
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        hosts
            .entry(v["ip"].as_str().unwrap().to_string())
            .or_default()
            .push(v["port"].as_u64().unwrap() as u16);
    }
    let mut all: Vec<u16> = NMAP_NAMES.iter().map(|p| p.0).collect();
    all.sort_unstable();
    let list = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut x = String::new();
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n<nmaprun scanner=\"nmap\" args=\"{NMAP_ARGS}\" start=\"1795556400\" startstr=\"Tue Nov 24 21:40:00 2026\" version=\"7.93\" xmloutputversion=\"1.05\">\n<scaninfo type=\"syn\" protocol=\"tcp\" numservices=\"20\" services=\"{}\"/>\n",
        list(&all)
    );
    for (ip, ports) in &hosts {
        let closed: Vec<u16> = all.iter().copied().filter(|p| !ports.contains(p)).collect();
        let _ = write!(
            x,
            "<host starttime=\"1795556400\" endtime=\"1795556401\"><status state=\"up\" reason=\"echo-reply\" reason_ttl=\"64\"/>\n<address addr=\"{ip}\" addrtype=\"ipv4\"/>\n<hostnames>\n</hostnames>\n<ports>"
        );
        if !closed.is_empty() {
            let _ = writeln!(
                x,
                "<extraports state=\"closed\" count=\"{n}\"><extrareasons reason=\"reset\" count=\"{n}\" proto=\"tcp\" ports=\"{}\"/></extraports>",
                list(&closed),
                n = closed.len()
            );
        }
        for p in ports {
            let name = NMAP_NAMES
                .iter()
                .find(|n| n.0 == *p)
                .map_or("unknown", |n| n.1);
            let _ = writeln!(
                x,
                "<port protocol=\"tcp\" portid=\"{p}\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"64\"/><service name=\"{name}\" method=\"table\" conf=\"3\"/></port>"
            );
        }
        x.push_str("</ports>\n</host>\n");
    }
    x.push_str("<runstats><finished time=\"1795556490\" timestr=\"Tue Nov 24 21:41:30 2026\" elapsed=\"90\" exit=\"success\"/><hosts up=\"0\" down=\"0\" total=\"256\"/></runstats>\n</nmaprun>\n");
    std::fs::write(dir.join("scan.xml"), x).unwrap();
    open
}
