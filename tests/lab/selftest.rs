//! Self-test of the lab helper: the states it promises are the states the
//! kernel actually produces, checked with plain `std` sockets from inside
//! the scanner namespace, and teardown really removes the namespaces.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::lab::{Faults, Lab, Truth, netns_exists, remove_stale_namespaces};

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What a plain connect() sees: "open", "refused", "timeout", or the errno name.
fn probe(ip: IpAddr, port: u16, timeout_ms: u64) -> String {
    match TcpStream::connect_timeout(
        &SocketAddr::new(ip, port),
        Duration::from_millis(timeout_ms),
    ) {
        Ok(_) => "open".into(),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => "refused".into(),
        Err(e) if e.kind() == ErrorKind::TimedOut => "timeout".into(),
        Err(e) => match e.raw_os_error() {
            Some(libc::EHOSTUNREACH) => "EHOSTUNREACH".into(),
            Some(libc::EACCES) => "EACCES".into(),
            _ => format!("{e}"),
        },
    }
}

fn small_lab() -> Lab {
    Lab::builder()
        .v4_prefix("198.19.7.0/29")
        .v6_prefix("2001:2:0:1::700/125")
        .ports(&[22, 80, 443])
        .open(v4("198.19.7.1"), 80)
        .open_with_banner(v4("198.19.7.1"), 22, b"SSH-2.0-LabSSH_1.0\r\n")
        .drop(v4("198.19.7.1"), 443)
        .reject(v4("198.19.7.2"), 443)
        .down(v4("198.19.7.3"))
        .open("2001:2:0:1::701".parse().unwrap(), 80)
        .reject("2001:2:0:1::701".parse().unwrap(), 443)
        .build()
}

#[test]
fn states_are_what_the_kernel_does() {
    let lab = small_lab();
    let (s, t) = (lab.scanner_ns().to_string(), lab.target_ns().to_string());
    assert!(netns_exists(&s) && netns_exists(&t));
    let got = lab.in_scanner(|| {
        let mut banner = String::new();
        let mut c =
            TcpStream::connect_timeout(&"198.19.7.1:22".parse().unwrap(), Duration::from_secs(2))
                .expect("banner listener");
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.read_to_string(&mut banner).unwrap();
        (
            banner,
            [
                probe(v4("198.19.7.1"), 80, 1000),
                probe(v4("198.19.7.1"), 81, 1000),
                probe(v4("198.19.7.1"), 443, 300),
                probe(v4("198.19.7.2"), 443, 1000),
                probe(v4("198.19.7.3"), 80, 300),
                probe("2001:2:0:1::701".parse().unwrap(), 80, 1000),
                probe("2001:2:0:1::702".parse().unwrap(), 80, 1000),
                // The ICMPv6 error reaches the socket while connect() still
                // holds it (veth is synchronous), so Linux only reports it
                // after the first SYN retransmission, one second later.
                probe("2001:2:0:1::701".parse().unwrap(), 443, 2500),
            ],
        )
    });
    assert_eq!(got.0, "SSH-2.0-LabSSH_1.0\r\n");
    assert_eq!(
        got.1,
        [
            "open",
            "refused",
            "timeout",
            "EHOSTUNREACH",
            "timeout",
            "open",
            "refused",
            "EACCES"
        ]
    );
    drop(lab);
    assert!(!netns_exists(&s), "{s} left behind");
    assert!(!netns_exists(&t), "{t} left behind");
}

#[test]
fn ground_truth_matches_the_layout() {
    let lab = small_lab();
    let exp = lab.expected();
    // 8 v4 + 8 v6 addresses × 3 ports.
    assert_eq!(exp.len(), 48);
    assert_eq!(exp[&(v4("198.19.7.1"), 80)], ("open", "connected"));
    assert_eq!(exp[&(v4("198.19.7.1"), 443)], ("filtered", "no-response"));
    assert_eq!(
        exp[&(v4("198.19.7.2"), 443)],
        ("filtered", "admin-prohibited")
    );
    assert_eq!(exp[&(v4("198.19.7.3"), 22)], ("filtered", "no-response"));
    assert_eq!(exp[&(v4("198.19.7.0"), 22)], ("closed", "conn-refused"));
    assert_eq!(lab.open_pairs().len(), 3);
    assert_eq!(lab.truth(v4("198.19.7.3"), 9), Truth::Down);
    assert_eq!(lab.prefixes(), ["198.19.7.0/29", "2001:2:0:1::700/125"]);
}

#[test]
fn standard_lab_has_the_promised_shape() {
    let lab = Lab::standard();
    let is_v4 = |ip: &IpAddr| ip.is_ipv4();
    let live: Vec<IpAddr> = lab.live_hosts().into_iter().filter(is_v4).collect();
    assert_eq!(live.len(), 154);
    assert!(!live.contains(&v4("198.19.1.0")) && !live.contains(&v4("198.19.1.255")));
    let open: Vec<_> = lab
        .open_pairs()
        .into_iter()
        .filter(|(ip, _)| ip.is_ipv4())
        .collect();
    assert_eq!(open.len(), 130);
    assert_eq!(
        lab.dropped_pairs()
            .iter()
            .filter(|(ip, _)| ip.is_ipv4())
            .count(),
        40
    );
    assert_eq!(
        lab.rejected_pairs()
            .iter()
            .filter(|(ip, _)| ip.is_ipv4())
            .count(),
        40
    );
    let hosts_with_open: std::collections::BTreeSet<_> = open.iter().map(|(ip, _)| *ip).collect();
    assert!(hosts_with_open.len() > 60, "open pairs spread over hosts");
    assert_eq!(lab.open_pairs().len(), 170);
    // Same seed, same lab (the layout alone, without building it).
    let again: Vec<_> = Lab::standard().open_pairs().into_iter().collect();
    assert_eq!(again, lab.open_pairs().into_iter().collect::<Vec<_>>());
    // A sample of the listeners really accepts.
    let first = open[0];
    let r = lab.in_scanner(|| probe(first.0, first.1, 1000));
    assert_eq!(r, "open");
}

#[test]
fn fault_knobs_load() {
    let mut lab = small_lab();
    lab.set_faults(Faults {
        syn_loss_permille: 1000,
        syn_rate_limit: Some(50),
        reply_loss_permille: 0,
    });
    // Every SYN is lost now: the open port goes silent.
    let r = lab.in_scanner(|| probe(v4("198.19.7.1"), 80, 300));
    assert_eq!(r, "timeout");
    lab.set_faults(Faults::default());
    let r = lab.in_scanner(|| probe(v4("198.19.7.1"), 80, 1000));
    assert_eq!(r, "open");
}

#[test]
fn stale_namespaces_of_dead_processes_are_removed() {
    // Above pid_max (4,194,304), so no live process owns it.
    let stale = "pw4194399x7s";
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .expect("ip netns add")
        .success();
    assert!(ok);
    let live = Lab::builder().v4_prefix("198.19.9.0/30").build();
    let removed = remove_stale_namespaces();
    assert!(removed.contains(&stale.to_string()), "{removed:?}");
    assert!(!netns_exists(stale));
    // Our own, live lab is untouched.
    assert!(netns_exists(live.scanner_ns()) && netns_exists(live.target_ns()));
}
