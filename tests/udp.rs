//! UDP scanning end to end with real packets and REAL UDP services: the
//! target namespace of a /24 lab runs dnsmasq, snmpd (`rocommunity
//! public`), chronyd serving time, memcached with UDP on, and a small SSDP
//! responder; nftables drops some UDP pairs silently, rejects others with
//! ICMP admin-prohibited, drops every packet to down hosts, and limits
//! each address's ICMP errors to 1/s after a burst of 6 (a real host's
//! limiter, emulated per address). The binary must report the exact open
//! set and the exact closed / filtered / open|filtered split.
//!
//! Needs root, nftables and the Debian packages dnsmasq-base, snmpd,
//! chrony and memcached (tests/setup.sh). A missing daemon skips the test
//! with a message, except under `CI=true`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Output;
use std::time::Instant;

use serde_json::Value;

use crate::lab::Lab;
use crate::lab::udp::{DNS, MEMCACHED, NTP, PORTS, SNMP, SSDP, UdpLab, Want, need, udp_lab, v4};

type Rows = BTreeMap<(IpAddr, u16), Value>;

fn rows(out: &Output) -> Rows {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "portwarden failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
    {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["proto"], "udp", "{line}");
        let ip: IpAddr = v["ip"].as_str().unwrap().parse().unwrap();
        let port = v["port"].as_u64().unwrap() as u16;
        assert!(m.insert((ip, port), v).is_none(), "{ip}:{port} twice");
    }
    m
}

#[test]
fn udp_slash24_exact_open_set_and_state_split_with_real_services() {
    let Some(ul) = udp_lab() else { return };
    let started = Instant::now();
    let out = ul.lab.run(&[
        "scan",
        "198.19.1.0/24",
        "-p",
        "high-risk-udp",
        "--scan",
        "syn",
        "--seed",
        "7",
        "--format",
        "jsonl",
    ]);
    let took = started.elapsed();
    let got = rows(&out);
    // Exactly the scanned pairs (a /24 leaves out .0 and .255).
    let expected: BTreeMap<(IpAddr, u16), (&str, &str)> =
        ul.truth.iter().map(|(k, w)| (*k, w.view())).collect();
    assert_eq!(got.len(), expected.len());
    let mut wrong = Vec::new();
    for (k, want) in &expected {
        let v = &got[k];
        let have = (v["state"].as_str().unwrap(), v["reason"].as_str().unwrap());
        if have != *want {
            wrong.push(format!("{}:{} {have:?} want {want:?}", k.0, k.1));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The open set, named from the answers.
    let open: BTreeSet<(IpAddr, u16)> = got
        .iter()
        .filter(|(_, v)| v["state"] == "open")
        .map(|(k, _)| *k)
        .collect();
    let want_open: BTreeSet<(IpAddr, u16)> = [
        (v4(DNS), 53),
        (v4(SNMP), 161),
        (v4(NTP), 123),
        (v4(MEMCACHED), 11211),
        (v4(SSDP), 1900),
    ]
    .into();
    assert_eq!(open, want_open);
    let svc = |k: (IpAddr, u16)| got[&k]["service"].clone();
    let snmp = svc((v4(SNMP), 161));
    assert_eq!(snmp["name"], "snmp");
    assert_eq!(snmp["product"], "portwarden lab snmpd");
    assert_eq!(snmp["extra"]["community"], "public");
    assert_eq!(svc((v4(DNS), 53))["extra"]["recursion"], "available");
    assert_eq!(svc((v4(NTP), 123))["version"], "NTPv4");
    assert_eq!(svc((v4(NTP), 123))["extra"]["stratum"], "8");
    assert!(
        svc((v4(MEMCACHED), 11211))["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))
    );
    assert_eq!(
        svc((v4(SSDP), 1900))["product"],
        "Linux/6.1 UPnP/1.0 portwarden-lab/1.0"
    );
    eprintln!("udp /24 × 12 ports: {:.2} s", took.as_secs_f64());

    // Every output carries the protocol: nmap XML and CSV.
    let one = |format: &str| {
        let out = ul.lab.run(&[
            "scan",
            &v4(SNMP).to_string(),
            "-p",
            "T:22,U:161",
            "--scan",
            "syn",
            "--format",
            format,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let xml = one("nmap-xml");
    assert!(
        xml.contains(
            r#"<port protocol="udp" portid="161"><state state="open" reason="udp-response""#
        ),
        "{xml}"
    );
    assert!(xml.contains(r#"protocol="tcp" portid="22""#), "{xml}");
    let csv = one("csv");
    assert!(
        csv.lines()
            .any(|l| l.contains(",161,udp,open,udp-response")),
        "{csv}"
    );

    // The audit turns the answers into the UDP checks.
    let out_dir = ul._dir.0.join("report");
    let out = ul.lab.run(&[
        "audit",
        "198.19.1.11-17",
        "-p",
        "U:53,161,11211,1900",
        "--scan",
        "syn",
        "--seed",
        "7",
        "--as-of",
        "2026-11-24",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("findings.json")).unwrap())
            .unwrap();
    let findings = match &doc {
        Value::Array(a) => a.clone(),
        v => v["findings"].as_array().unwrap().clone(),
    };
    let udp: BTreeSet<String> = findings
        .iter()
        .filter(|f| {
            matches!(
                f["check"].as_str(),
                Some("amplification-vector" | "snmp-default-community")
            )
        })
        .map(|f| {
            assert_eq!(f["proto"], "udp");
            format!(
                "{} {} {} {}",
                f["ip"].as_str().unwrap(),
                f["port"],
                f["check"].as_str().unwrap(),
                f["severity"].as_str().unwrap()
            )
        })
        .collect();
    let want: BTreeSet<String> = [
        format!("{} 161 snmp-default-community critical", v4(SNMP)),
        format!("{} 11211 amplification-vector high", v4(MEMCACHED)),
        format!("{} 1900 amplification-vector high", v4(SSDP)),
    ]
    .into();
    // dnsmasq here has no upstream and refuses recursion: not an open resolver.
    assert_eq!(udp, want);
}

#[test]
fn connect_scan_refuses_udp_ports_clearly() {
    let ns = crate::lab::Netns::new();
    let out = ns
        .command(Lab::bin())
        .args(["scan", "198.18.0.1", "-p", "U:53", "--scan", "connect"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("UDP ports need the raw-socket UDP engine"),
        "{err}"
    );
}

/// A scan of TCP and UDP ports together ends every pair of both, and is
/// not cut short when one engine finishes before the other (each engine
/// raises its own stop flag when it ends).
#[test]
fn mixed_tcp_and_udp_scan_covers_every_pair_once() {
    let ns = crate::lab::Netns::new();
    let out = ns
        .command(Lab::bin())
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            "1-600,U:1-8",
            "--scan",
            "syn",
            "--format",
            "jsonl",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let mut pairs = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let pair = (
            v["port"].as_u64().unwrap(),
            v["proto"].as_str().unwrap().to_string(),
        );
        assert_eq!(v["state"], "closed", "{line}");
        assert!(pairs.insert(pair), "twice: {line}");
    }
    assert_eq!(pairs.len(), 608, "{err}");
    assert_eq!(pairs.iter().filter(|(_, p)| p == "udp").count(), 8);
    assert!(!err.contains("interrupted"), "{err}");
}

/// One tool's result on the UDP lab, judged against the truth.
struct Score {
    tool: String,
    secs: f64,
    found: usize,
    false_open: usize,
    right: usize,
    total: usize,
}

fn score(tool: &str, secs: f64, got: &BTreeMap<(IpAddr, u16), Want>, ul: &UdpLab) -> Score {
    let mut s = Score {
        tool: tool.into(),
        secs,
        found: 0,
        false_open: 0,
        right: 0,
        total: ul.truth.len(),
    };
    for (k, want) in &ul.truth {
        // A pair a tool does not list is one it left unjudged: wrong.
        let Some(have) = got.get(k) else { continue };
        if *have == Want::Open && *want == Want::Open {
            s.found += 1;
        }
        if *have == Want::Open && *want != Want::Open {
            s.false_open += 1;
        }
        s.right += usize::from(have == want);
    }
    s
}

/// Side-by-side figures against `nmap -sU` on the same /24 × high-risk-udp
/// lab (ICMP limited per address to 1/s after 6). On demand:
/// `cargo test --test tests udp::perf_vs_nmap -- --ignored --nocapture`.
#[test]
#[ignore]
fn perf_vs_nmap() {
    let Some(ul) = udp_lab() else { return };
    let Some(nmap) = need("/usr/bin/nmap", "nmap") else {
        return;
    };
    let mut table = Vec::new();
    let t = Instant::now();
    let out = ul.lab.run(&[
        "scan",
        "198.19.1.0/24",
        "-p",
        "high-risk-udp",
        "--format",
        "jsonl",
    ]);
    let secs = t.elapsed().as_secs_f64();
    let got: BTreeMap<(IpAddr, u16), Want> = rows(&out)
        .into_iter()
        .map(|(k, v)| {
            let w = match v["state"].as_str().unwrap() {
                "open" => Want::Open,
                "closed" => Want::Closed,
                "filtered" => Want::Prohibited,
                _ => Want::Silent,
            };
            (k, w)
        })
        .collect();
    table.push(score("portwarden (defaults)", secs, &got, &ul));
    let ports = PORTS.map(|p| p.to_string()).join(",");
    for (name, extra) in [
        ("nmap -sU -T4", vec!["-T4"]),
        (
            "nmap -sU -T4 --min-rate 5000",
            vec!["-T4", "--min-rate", "5000"],
        ),
    ] {
        let xml = ul._dir.0.join("nmap.xml");
        let mut args = vec!["-sU", "-n", "-Pn", "--reason", "-p", &ports];
        args.extend(extra);
        let xml_s = xml.display().to_string();
        args.extend(["-oX", &xml_s, "198.19.1.0/24"]);
        let t = Instant::now();
        let out = ul.lab.run_program(&nmap, &args);
        let secs = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run =
            portwarden::import::nmap::parse(&std::fs::read_to_string(&xml).unwrap(), "nmap.xml")
                .unwrap();
        let got: BTreeMap<(IpAddr, u16), Want> = run
            .observations
            .iter()
            .map(|o| {
                use portwarden::model::{PortState, Reason};
                let w = match (o.state, o.reason) {
                    (PortState::Open, _) => Want::Open,
                    (PortState::Closed, _) => Want::Closed,
                    (_, Reason::AdminProhibited) => Want::Prohibited,
                    _ => Want::Silent,
                };
                ((o.ip, o.port), w)
            })
            .collect();
        table.push(score(name, secs, &got, &ul));
    }
    eprintln!("| tool | wall s | open found/5 | false open | split right |");
    eprintln!("|---|---|---|---|---|");
    for s in &table {
        eprintln!(
            "| {} | {:.2} | {}/5 | {} | {}/{} ({:.1} %) |",
            s.tool,
            s.secs,
            s.found,
            s.false_open,
            s.right,
            s.total,
            100.0 * s.right as f64 / s.total as f64
        );
    }
    assert_eq!((table[0].found, table[0].false_open), (5, 0));
}

/// A mixed TCP+UDP scan stopped by SIGINT saves both engines' states in
/// one resume file, and `--resume` finishes both: together the two outputs
/// hold every (address, port, protocol) once, the UDP pairs in their exact
/// states.
#[test]
fn mixed_scan_sigint_then_resume_covers_every_pair_once() {
    use std::process::Stdio;
    let Some(ul) = udp_lab() else { return };
    let dir = ul._dir.0.join("resume");
    std::fs::create_dir_all(&dir).unwrap();
    let resume = dir.join("resume.json");
    // 100 TCP ports at 1,500 probes/s keep the TCP engine busy for ~17 s,
    // so the signal at 3 s stops both engines.
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "scan",
            "198.19.1.0/24",
            "-p",
            "1000-1099,high-risk-udp",
            "--scan",
            "syn",
            "--seed",
            "11",
            "--rate",
            "1500",
            "--timeout-max",
            "300",
            "--format",
            "jsonl",
            "-o",
            out.to_str().unwrap(),
            "--resume-file",
            resume.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let first_out = dir.join("first.jsonl");
    let child = ul
        .lab
        .command(Lab::bin())
        .args(args(&first_out))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portwarden");
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: signalling our own child (`ip netns exec` execs portwarden).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&resume).unwrap()).unwrap();
    assert_eq!(state["version"], 2, "{state}");
    assert!(
        state["tcp"].is_object() && state["udp"].is_object(),
        "{state}"
    );
    let parts = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .ends_with(".part")
        })
        .count();
    assert_eq!(parts, 0, "the engines' parts are joined and removed");

    let second_out = dir.join("second.jsonl");
    let mut second = args(&second_out);
    second.extend(["--resume".to_string(), resume.display().to_string()]);
    let out2 = ul.lab.run(&second);
    let err2 = String::from_utf8_lossy(&out2.stderr);
    assert_eq!(out2.status.code(), Some(0), "{err2}");

    let mut all: BTreeMap<(IpAddr, u16, String), Value> = BTreeMap::new();
    for (run, f) in [&first_out, &second_out].into_iter().enumerate() {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            v["run"] = run.into();
            if v["type"] == "summary" {
                continue;
            }
            let key = (
                v["ip"].as_str().unwrap().parse().unwrap(),
                v["port"].as_u64().unwrap() as u16,
                v["proto"].as_str().unwrap().to_string(),
            );
            assert!(all.insert(key.clone(), v).is_none(), "{key:?} in both runs");
        }
    }
    let tcp = all.keys().filter(|k| k.2 == "tcp").count();
    assert_eq!(tcp, 254 * 100);
    let mut wrong = Vec::new();
    for (k, want) in &ul.truth {
        let v = &all[&(k.0, k.1, "udp".to_string())];
        let have = (v["state"].as_str().unwrap(), v["reason"].as_str().unwrap());
        if have != want.view() {
            wrong.push(format!(
                "{}:{} {have:?} want {:?} {v}",
                k.0,
                k.1,
                want.view()
            ));
        }
    }
    assert_eq!(all.len(), tcp + ul.truth.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// More ports than a limiter's burst on each host: 2 live hosts × the
/// first 40 ports of the top-udp list, closed ports answered at 1/s per
/// address after 6. Every closed port must still come out closed (the
/// engine keeps pacing each host at its learned rate until its silent
/// ports had their tries), in about 40 s, with nothing left undecided.
#[test]
fn udp_many_ports_per_host_all_closed_ports_found_closed() {
    use crate::lab::udp::{UdpLabSpec, udp_lab_with};
    let ports = portwarden::rules::Rules::embedded().ports.top_udp()[..40].to_vec();
    let Some(ul) = udp_lab_with(&UdpLabSpec {
        live: [DNS, SNMP].into(),
        scanned: DNS..=SNMP,
        ports,
        max_dropped: 0,
        max_rejected: 0,
    }) else {
        return;
    };
    let started = Instant::now();
    let out = ul.lab.run(&[
        "scan",
        &format!("{}-{}", v4(DNS), SNMP),
        "-p",
        "top-udp:40",
        "--scan",
        "syn",
        "--seed",
        "3",
        "--format",
        "jsonl",
    ]);
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let got = rows(&out);
    assert_eq!(got.len(), 80);
    let mut wrong = Vec::new();
    for (k, want) in &ul.truth {
        let v = &got[k];
        let have = (v["state"].as_str().unwrap(), v["reason"].as_str().unwrap());
        if have != want.view() {
            wrong.push(format!("{}:{} {have:?} want {:?}", k.0, k.1, want.view()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        ul.truth.values().filter(|w| **w == Want::Closed).count(),
        78
    );
    assert!(!err.contains("undecided"), "{err}");
    assert!(took.as_secs() < 60, "took {took:?}");
    eprintln!("udp 2 hosts × 40 ports: {:.2} s", took.as_secs_f64());
}

/// UDP over IPv6 on real packets: an echo service in the target namespace
/// answers (open, named), the host's ICMPv6 port unreachable closes two
/// ports, an nftables reject with ICMPv6 admin-prohibited is filtered, and
/// a silent drop is open|filtered, each exactly once. A port unreachable
/// that comes from another address (a router's) is filtered, not closed.
#[test]
fn udp_over_ipv6_states_are_exact() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let host: IpAddr = "2001:2:0:1::72".parse().unwrap();
    let lab = Lab::builder()
        .v6_prefix("2001:2:0:1::70/124")
        .ports(&[1])
        .build();
    let dropped: BTreeSet<(IpAddr, u16)> = [(host, 69)].into();
    let rejected: BTreeSet<(IpAddr, u16)> = [(host, 37)].into();
    lab.load_target_rules(&crate::lab::udp_ruleset(&dropped, &rejected, None));
    // An echo service on [host]:7, bound inside the target namespace.
    let sock = lab.in_target(|| std::net::UdpSocket::bind((host, 7)).expect("bind echo"));
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        })
    };
    let scan = || {
        let out = lab.run(&[
            "scan",
            &host.to_string(),
            "-p",
            "U:7,9,13,37,69",
            "--scan",
            "syn",
            "--format",
            "jsonl",
        ]);
        let got = rows(&out);
        let states: Vec<(u16, String, String)> = got
            .iter()
            .map(|((_, p), v)| {
                (
                    *p,
                    v["state"].as_str().unwrap().to_owned(),
                    v["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (states, got)
    };
    let want = |closed: (&str, &str)| -> Vec<(u16, String, String)> {
        [
            (7, ("open", "udp-response")),
            (9, closed),
            (13, closed),
            (37, ("filtered", "admin-prohibited")),
            (69, ("open|filtered", "no-response")),
        ]
        .into_iter()
        .map(|(p, (s, r))| (p, s.to_owned(), r.to_owned()))
        .collect()
    };
    // The lab answers for its prefix through a local route, so Linux sends
    // the ICMPv6 errors from the namespace's own address, as a router
    // would: the closed ports must come out filtered, never closed.
    let (states, _) = scan();
    assert_eq!(states, want(("filtered", "icmp-unreach")));
    // A real host owns its address: given it on lo, its port unreachables
    // come from the probed address, and those ports are closed.
    let st = std::process::Command::new("ip")
        .args(["netns", "exec", lab.target_ns(), "ip", "-6", "addr", "add"])
        .arg(format!("{host}/128"))
        .args(["dev", "lo", "nodad"])
        .status()
        .unwrap();
    assert!(st.success());
    let (states, got) = scan();
    stop.store(true, Ordering::Relaxed);
    echo.join().unwrap();
    assert_eq!(states, want(("closed", "port-unreach")));
    assert_eq!(
        got[&(host, 7)]["service"]["name"],
        "echo",
        "{}",
        got[&(host, 7)]
    );
}
