//! UDP engine on the fake network: exact conclusions, ICMP limiting, loss,
//! validation, sharding and resume, all on a virtual clock.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::engine::{self, UdpEngineConfig, UdpOutcome, UdpSpace};
use super::io::{FakeUdpNet, UdpIo};
use super::packet::FakeAnswer;
use super::packet::UdpReply;
use crate::model::{Observation, PortState, Reason, ScanEvent, ServiceInfo};
use crate::scan::raw::engine::Space;
use crate::scan::raw::schedule::{ScheduleConfig, Shard};

fn host(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + i))
}

/// What the fake network holds for one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Open,
    Closed,
    Prohibited,
    Dropped,
}

/// `n` hosts × `ports`: a deterministic mix; hosts with `i % 7 == 3` are down.
fn truth(i: u32, port: u16) -> Option<T> {
    if i % 7 == 3 {
        return None;
    }
    Some(match (i as u64 * 31 + port as u64 * 17) % 10 {
        0 | 1 => T::Open,
        2 => T::Dropped,
        3 => T::Prohibited,
        _ => T::Closed,
    })
}

fn answer(t: Option<T>) -> Option<FakeAnswer> {
    match t? {
        T::Open => Some(FakeAnswer::Data(b"pong".to_vec())),
        T::Closed => Some(FakeAnswer::Icmp(3)),
        T::Prohibited => Some(FakeAnswer::Icmp(13)),
        T::Dropped => None,
    }
}

fn expected(t: Option<T>) -> (PortState, Reason) {
    match t {
        Some(T::Open) => (PortState::Open, Reason::UdpResponse),
        Some(T::Closed) => (PortState::Closed, Reason::PortUnreach),
        Some(T::Prohibited) => (PortState::Filtered, Reason::AdminProhibited),
        Some(T::Dropped) | None => (PortState::OpenFiltered, Reason::NoResponse),
    }
}

const PORTS: [u16; 12] = [19, 53, 69, 123, 137, 138, 161, 389, 623, 1434, 1900, 11211];

fn fake(hosts: u32) -> FakeUdpNet {
    FakeUdpNet::new(Box::new(move |ip, port, payload| {
        // Only the port's own payload draws an answer, like real services.
        if payload != payload_for(port) {
            return None;
        }
        let IpAddr::V4(a) = ip else { return None };
        let i = u32::from(a) - u32::from(Ipv4Addr::new(198, 18, 1, 0));
        if i >= hosts {
            return None;
        }
        answer(truth(i, port))
    }))
}

fn payload_for(port: u16) -> &'static [u8] {
    match port {
        53 => b"dns?",
        161 => b"snmp?",
        _ => b"",
    }
}

struct Run {
    obs: BTreeMap<(IpAddr, u16), Observation>,
    outcome: UdpOutcome,
}

fn run(net: &mut FakeUdpNet, hosts: u32, ports: &[u16], cfg: &UdpEngineConfig) -> Run {
    run_at(net, &host, hosts, ports, cfg)
}

/// `run` over any I/O, host `i` at `addr(i)`.
fn run_at(
    net: &mut dyn UdpIo<Reply = UdpReply>,
    addr: &dyn Fn(u32) -> IpAddr,
    hosts: u32,
    ports: &[u16],
    cfg: &UdpEngineConfig,
) -> Run {
    let addr_at = |i: u64| (i < hosts as u64).then(|| addr(i as u32));
    let payload = |p: u16| payload_for(p);
    let describe = |_: u16, b: &[u8]| {
        Some(ServiceInfo {
            name: String::from_utf8_lossy(b).into_owned(),
            ..ServiceInfo::default()
        })
    };
    let space = UdpSpace {
        pairs: Space {
            n_addrs: hosts as u64,
            addr_at: &addr_at,
            ports,
        },
        payload: &payload,
        describe: &describe,
    };
    let mut obs = BTreeMap::new();
    let mut emit = |ev: ScanEvent| {
        if let ScanEvent::Observation(o) = ev {
            assert!(
                obs.insert((o.ip, o.port), o.clone()).is_none(),
                "{}:{} concluded twice",
                o.ip,
                o.port
            );
        }
    };
    let outcome = engine::run(net, &space, cfg, &mut emit).unwrap();
    Run { obs, outcome }
}

fn cfg() -> UdpEngineConfig {
    UdpEngineConfig {
        priority: PORTS.to_vec(),
        ..UdpEngineConfig::default()
    }
}

#[test]
fn every_pair_once_with_the_exact_state_without_limits() {
    let hosts = 40;
    let mut net = fake(hosts);
    let r = run(&mut net, hosts, &PORTS, &cfg());
    assert_eq!(r.obs.len(), hosts as usize * PORTS.len());
    for (&(ip, port), o) in &r.obs {
        let IpAddr::V4(a) = ip else { unreachable!() };
        let i = u32::from(a) - u32::from(Ipv4Addr::new(198, 18, 1, 0));
        assert_eq!((o.state, o.reason), expected(truth(i, port)), "{ip}:{port}");
        assert_eq!(o.proto, crate::model::Proto::Udp);
        if o.state == PortState::Open {
            assert_eq!(o.service.as_ref().unwrap().name, "pong");
            assert!(o.rtt_ms.is_some());
        }
    }
    let s = &r.outcome.summary;
    assert_eq!(s.open + s.closed + s.filtered + s.open_filtered, s.probed);
    assert_eq!(r.outcome.invalid, 0);
}

#[test]
fn an_icmp_limiter_per_host_does_not_turn_closed_into_open_filtered() {
    // Linux's defaults: one ICMP error per second per peer after 6.
    let hosts = 60;
    let mut net = fake(hosts).with_icmp_limit(1.0, 6.0);
    let r = run(&mut net, hosts, &PORTS, &cfg());
    assert!(net.suppressed > 0, "the limiter must have bitten");
    let mut wrong = Vec::new();
    for (&(ip, port), o) in &r.obs {
        let IpAddr::V4(a) = ip else { unreachable!() };
        let i = u32::from(a) - u32::from(Ipv4Addr::new(198, 18, 1, 0));
        if (o.state, o.reason) != expected(truth(i, port)) {
            wrong.push((ip, port, o.state));
        }
    }
    assert!(wrong.is_empty(), "misjudged: {wrong:?}");
    // Hosts are paced side by side: the whole scan takes about as long as
    // one host's limiter needs, not the sum over hosts.
    let secs = r.outcome.summary.elapsed.as_secs_f64();
    assert!(secs < 15.0, "took {secs:.1} s of virtual time");
    assert!(r.outcome.paced_retries > 0);
}

#[test]
fn loss_and_limiting_together_keep_every_open_port() {
    let hosts = 60;
    let mut net = fake(hosts).with_icmp_limit(1.0, 6.0).with_loss(0.03, 11);
    let r = run(&mut net, hosts, &PORTS, &cfg());
    let (mut right, mut total) = (0, 0);
    for (&(ip, port), o) in &r.obs {
        let IpAddr::V4(a) = ip else { unreachable!() };
        let i = u32::from(a) - u32::from(Ipv4Addr::new(198, 18, 1, 0));
        let want = expected(truth(i, port));
        if want.0 == PortState::Open {
            assert_eq!(o.state, PortState::Open, "{ip}:{port} lost");
        }
        // Never a false open.
        if o.state == PortState::Open {
            assert_eq!(want.0, PortState::Open, "{ip}:{port} falsely open");
        }
        total += 1;
        right += usize::from((o.state, o.reason) == want);
    }
    assert!(right * 100 >= total * 95, "{right}/{total} right");
}

#[test]
fn a_host_without_a_limiter_is_not_slowed_down() {
    // 1 host × 200 closed ports, no limiter: everything answers at once,
    // nothing is paced.
    let ports: Vec<u16> = (2000..2200).collect();
    let mut net = FakeUdpNet::new(Box::new(|_, _, _| Some(FakeAnswer::Icmp(3))));
    let r = run(&mut net, 1, &ports, &cfg());
    assert!(r.obs.values().all(|o| o.state == PortState::Closed));
    assert_eq!(r.outcome.paced_retries, 0);
    assert!(r.outcome.summary.elapsed < Duration::from_secs(1));
}

#[test]
fn replies_to_other_source_ports_or_from_other_ports_are_refused() {
    use super::io::{OutPacket, UdpIo, UdpReceived};
    use super::packet::{UdpReply, UdpReplyKind};
    /// Answers every probe from the right address but a wrong source port
    /// and to a wrong destination port: nothing may count.
    struct Liar(FakeUdpNet, Vec<UdpReceived>);
    impl UdpIo for Liar {
        type Reply = UdpReply;
        fn now(&self) -> Duration {
            self.0.now()
        }
        fn local_addr(&mut self, t: IpAddr) -> Option<IpAddr> {
            self.0.local_addr(t)
        }
        fn send(&mut self, b: &[OutPacket<'_>]) -> std::io::Result<usize> {
            for p in b {
                let dport = u16::from_be_bytes([p.bytes[22], p.bytes[23]]);
                let sport = u16::from_be_bytes([p.bytes[20], p.bytes[21]]);
                let at = self.0.now();
                self.1.push(UdpReceived {
                    reply: UdpReply {
                        kind: UdpReplyKind::Data(b"x".to_vec()),
                        local: "198.18.0.1".parse().unwrap(),
                        target: p.dst,
                        local_port: sport.wrapping_add(1000),
                        target_port: dport,
                    },
                    at,
                });
                self.1.push(UdpReceived {
                    reply: UdpReply {
                        kind: UdpReplyKind::Data(b"x".to_vec()),
                        local: "198.18.0.1".parse().unwrap(),
                        target: p.dst,
                        local_port: sport,
                        target_port: dport.wrapping_add(1),
                    },
                    at,
                });
            }
            self.0.send(b)
        }
        fn recv(&mut self, t: Duration, out: &mut Vec<UdpReceived>) -> std::io::Result<()> {
            out.append(&mut self.1);
            self.0.recv(t, out)
        }
    }
    let mut net = Liar(FakeUdpNet::new(Box::new(|_, _, _| None)), Vec::new());
    let hosts = 4u32;
    let addr_at = |i: u64| (i < hosts as u64).then(|| host(i as u32));
    let payload = |_: u16| -> &[u8] { b"" };
    let describe = |_: u16, _: &[u8]| None;
    let ports = [7000u16, 7001, 7002];
    let space = UdpSpace {
        pairs: Space {
            n_addrs: hosts as u64,
            addr_at: &addr_at,
            ports: &ports,
        },
        payload: &payload,
        describe: &describe,
    };
    let mut states = Vec::new();
    let mut emit = |ev: ScanEvent| {
        if let ScanEvent::Observation(o) = ev {
            states.push(o.state);
        }
    };
    let out = engine::run(&mut net, &space, &cfg(), &mut emit).unwrap();
    assert_eq!(states.len(), 12);
    assert!(states.iter().all(|s| *s == PortState::OpenFiltered));
    assert!(out.invalid >= 24, "{}", out.invalid);
}

#[test]
fn shards_split_the_space_and_resume_finishes_it() {
    let hosts = 20;
    let mut all = BTreeMap::new();
    for index in 0..3 {
        let mut net = fake(hosts);
        let c = UdpEngineConfig {
            schedule: ScheduleConfig {
                seed: 5,
                shard: Shard { index, count: 3 },
                ..ScheduleConfig::default()
            },
            ..cfg()
        };
        for (k, o) in run(&mut net, hosts, &PORTS, &c).obs {
            assert!(all.insert(k, o).is_none(), "{k:?} in two shards");
        }
    }
    assert_eq!(all.len(), hosts as usize * PORTS.len());

    // Stop half-way (the stop flag is raised by the emitter), then resume.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let c = UdpEngineConfig {
        schedule: ScheduleConfig {
            seed: 9,
            stop: Some(stop.clone()),
            ..ScheduleConfig::default()
        },
        ..cfg()
    };
    let mut net = fake(hosts);
    let addr_at = |i: u64| (i < hosts as u64).then(|| host(i as u32));
    let payload = |p: u16| payload_for(p);
    let describe = |_: u16, _: &[u8]| None;
    let space = UdpSpace {
        pairs: Space {
            n_addrs: hosts as u64,
            addr_at: &addr_at,
            ports: &PORTS,
        },
        payload: &payload,
        describe: &describe,
    };
    let mut first = BTreeMap::new();
    let mut emit = |ev: ScanEvent| {
        if let ScanEvent::Observation(o) = ev {
            first.insert((o.ip, o.port), o);
            if first.len() == 50 {
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    let out = engine::run(&mut net, &space, &c, &mut emit).unwrap();
    let state = out.resume.expect("interrupted scans leave a resume state");
    assert!(out.summary.interrupted);
    let c2 = UdpEngineConfig {
        schedule: ScheduleConfig {
            resume: Some(state),
            ..ScheduleConfig::default()
        },
        ..cfg()
    };
    let mut net = fake(hosts);
    let second = run(&mut net, hosts, &PORTS, &c2).obs;
    for k in second.keys() {
        assert!(
            !first.contains_key(k),
            "{k:?} concluded twice across resume"
        );
    }
    assert_eq!(first.len() + second.len(), hosts as usize * PORTS.len());
}

/// 3 hosts × 400 ports behind Linux's limiter (1/s after 6): most ports
/// closed, every 50th dropped, every 97th open.
fn many_ports_net() -> (FakeUdpNet, Vec<u16>) {
    let ports: Vec<u16> = (2000..2400).collect();
    let net = FakeUdpNet::new(Box::new(|_, port, _| match port {
        p if p % 97 == 0 => Some(FakeAnswer::Data(b"pong".to_vec())),
        p if p % 50 == 7 => None,
        _ => Some(FakeAnswer::Icmp(3)),
    }))
    .with_icmp_limit(1.0, 6.0);
    (net, ports)
}

fn many_ports_truth(port: u16) -> PortState {
    match port {
        p if p % 97 == 0 => PortState::Open,
        p if p % 50 == 7 => PortState::OpenFiltered,
        _ => PortState::Closed,
    }
}

#[test]
fn a_rate_limited_hosts_closed_ports_all_end_closed() {
    // 400 ports need ~400 s of the limiter per host: the engine keeps
    // pacing each host at its learned rate, all hosts side by side, until
    // every silent port had its tries.
    let (mut net, ports) = many_ports_net();
    let r = run(&mut net, 3, &ports, &cfg());
    assert_eq!(r.obs.len(), 1200);
    let wrong: Vec<_> = r
        .obs
        .values()
        .filter(|o| o.state != many_ports_truth(o.port))
        .map(|o| (o.ip, o.port, o.state))
        .collect();
    assert_eq!(wrong, vec![], "misjudged");
    let s = &r.outcome.summary;
    // 4 open, 8 dropped of the 400 ports; per host.
    assert_eq!((s.open, s.open_filtered, s.closed), (12, 24, 1164));
    assert_eq!(s.udp_undecided, 0);
    assert_eq!(r.outcome.hosts_cut_short, 0);
    // Paced at about the limiter's rate, hosts in parallel: ~400 s of
    // virtual time, not 3 × 400.
    let secs = s.elapsed.as_secs_f64();
    assert!((380.0..560.0).contains(&secs), "took {secs:.0} s");
}

#[test]
fn loss_on_top_of_the_limiter_costs_at_most_a_few_closed_ports() {
    // Seeded 1 % loss each way on top: a closed port is misjudged only if
    // both its paced tries are lost; never anything else.
    for seed in [1, 7, 42] {
        let (net, ports) = many_ports_net();
        let mut net = net.with_loss(0.01, seed);
        let r = run(&mut net, 3, &ports, &cfg());
        assert_eq!(r.obs.len(), 1200);
        let wrong: Vec<_> = r
            .obs
            .values()
            .filter(|o| o.state != many_ports_truth(o.port))
            .map(|o| (many_ports_truth(o.port), o.state))
            .collect();
        assert!(wrong.len() <= 3, "seed {seed}: {wrong:?}");
        assert!(
            wrong
                .iter()
                .all(|w| *w == (PortState::Closed, PortState::OpenFiltered)),
            "seed {seed}: {wrong:?}"
        );
        assert_eq!(r.outcome.summary.open, 12, "seed {seed}");
    }
}

#[test]
fn the_host_timeout_bounds_pacing_and_the_rest_is_counted_undecided() {
    let (mut net, ports) = many_ports_net();
    let c = UdpEngineConfig {
        host_timeout: Duration::from_secs(60),
        ..cfg()
    };
    let r = run(&mut net, 3, &ports, &c);
    assert_eq!(r.obs.len(), 1200);
    let s = &r.outcome.summary;
    assert!(s.elapsed.as_secs_f64() < 75.0, "{:?}", s.elapsed);
    assert_eq!(r.outcome.hosts_cut_short, 3);
    // Nothing is judged wrongly but silence: what is not closed yet is
    // open|filtered, and exactly those closed ports are the undecided ones.
    let mut closed_as_silent = 0;
    for o in r.obs.values() {
        let want = many_ports_truth(o.port);
        if o.state != want {
            assert_eq!(
                (want, o.state),
                (PortState::Closed, PortState::OpenFiltered)
            );
            closed_as_silent += 1;
        }
    }
    assert!(closed_as_silent > 900, "{closed_as_silent}");
    // Undecided: the closed ones cut short, plus dropped ones cut short.
    assert!(s.udp_undecided >= closed_as_silent, "{}", s.udp_undecided);
    assert!(
        s.udp_undecided <= closed_as_silent + 24,
        "{}",
        s.udp_undecided
    );
    assert_eq!(s.open, 12);
}

#[test]
fn a_host_that_stops_answering_paced_tries_is_not_paced_for_long() {
    // The first 20 ports are closed, the other 380 dropped (a firewall
    // that rejects a few ports and drops the rest): after 12 unanswered
    // paced tries in a row the host's remaining pairs are concluded
    // (undecided) instead of being paced for 30 minutes.
    let ports: Vec<u16> = (2000..2400).collect();
    let mut net = FakeUdpNet::new(Box::new(|_, port, _| {
        (port < 2020).then_some(FakeAnswer::Icmp(3))
    }))
    .with_icmp_limit(1.0, 6.0);
    let r = run(&mut net, 1, &ports, &cfg());
    assert_eq!(r.obs.len(), 400);
    assert!(r.obs.values().all(|o| o.state != PortState::Open));
    assert_eq!(r.outcome.hosts_cut_short, 1);
    let s = &r.outcome.summary;
    assert!(s.elapsed.as_secs_f64() < 60.0, "{:?}", s.elapsed);
    assert_eq!(s.closed + s.open_filtered, 400);
    assert!(s.udp_undecided > 300, "{}", s.udp_undecided);
}

/// Property (the SYN engine's, on the same fault injector): seeded loss
/// each way, duplicated and delayed (reordered) answers change no state
/// but, rarely, silence a pair whose every try was lost.
#[test]
fn loss_duplicates_and_reordering_do_not_change_the_result() {
    use crate::scan::raw::faulty::Faulty;
    let hosts = 40;
    for seed in [3u64, 7, 11] {
        let mut io = Faulty::lossy(fake(hosts), seed, 0.05);
        // The default retries: more would end hosts' paced retries early,
        // by design (every dropped port's paced tries count as misses).
        let c = UdpEngineConfig {
            schedule: ScheduleConfig {
                seed,
                ..ScheduleConfig::default()
            },
            ..cfg()
        };
        let Run {
            obs: got,
            outcome: out,
        } = run_at(&mut io, &host, hosts, &PORTS, &c);
        assert_eq!(got.len(), hosts as usize * PORTS.len(), "seed {seed}");
        // Loss can only silence a pair whose every try was lost (UDP
        // cannot tell that from a drop); nothing else may change.
        let mut silenced = 0;
        for ((ip, port), o) in &got {
            let IpAddr::V4(a) = ip else { unreachable!() };
            let i = u32::from(*a) - u32::from(Ipv4Addr::new(198, 18, 1, 0));
            let want = expected(truth(i, *port));
            if (o.state, o.reason) != want {
                assert_eq!(
                    (o.state, o.reason),
                    (PortState::OpenFiltered, Reason::NoResponse),
                    "seed {seed} {ip}:{port} should be {want:?}"
                );
                silenced += 1;
            }
        }
        assert!(silenced <= 4, "seed {seed}: {silenced} pairs silenced");
        assert!(out.duplicates > 20, "seed {seed}: {}", out.duplicates);
        assert!(
            got.values()
                .any(|o| o.state == PortState::Open && o.tries > 1)
        );
    }
}

/// Property (the SYN engine's): whatever the local system refuses (no
/// route to some destinations, every packet to others, transient ENOBUFS
/// mid-batch), every pair ends in exactly one observation: the refused
/// ones as `local-error` naming the errno, the rest as the network says.
#[test]
fn injected_local_send_errors_still_cover_the_scope_exactly_once() {
    use crate::scan::raw::faulty::Faulty;
    let hosts = 40;
    let errnos = [libc::EPERM, libc::ENETUNREACH, libc::EADDRNOTAVAIL];
    // One host per /24: routes are looked up (and cached) per /24.
    let spread = |i: u32| IpAddr::V4(Ipv4Addr::new(198, 18, 10 + i as u8, 7));
    let index = |a: Ipv4Addr| u32::from(a.octets()[2]) - 10;
    for seed in 0..6u64 {
        let net = FakeUdpNet::new(Box::new(move |ip, port, payload| {
            let IpAddr::V4(a) = ip else { return None };
            (payload == payload_for(port)).then(|| answer(truth(index(a), port)))?
        }));
        let mut io = Faulty::refusing(net, seed, errnos[seed as usize % 3]);
        let Run { obs, outcome: out } = run_at(&mut io, &spread, hosts, &PORTS, &cfg());
        let mut local = 0u64;
        for o in obs.values() {
            let IpAddr::V4(a) = o.ip else { unreachable!() };
            let i = index(a);
            if io.unroutable(o.ip) {
                assert_eq!(o.reason, Reason::LocalError, "seed {seed} {a}");
                assert!(o.error.as_deref().unwrap().starts_with("ENETUNREACH"));
            } else if io.refuses(o.ip) {
                assert_eq!(o.reason, Reason::LocalError, "seed {seed} {a}");
                let name = crate::scan::connect::errno_name(&std::io::Error::from_raw_os_error(
                    io.refuse_errno,
                ));
                assert_eq!(o.error.as_deref(), Some(name.as_str()), "seed {seed}");
            } else {
                assert_eq!(
                    (o.state, o.reason),
                    expected(truth(i, o.port)),
                    "seed {seed}"
                );
            }
            if o.reason == Reason::LocalError {
                local += 1;
                assert_eq!((o.state, o.tries), (PortState::Filtered, 0));
            }
        }
        assert_eq!(obs.len(), hosts as usize * PORTS.len(), "seed {seed}");
        assert!(local > 0, "seed {seed}: the faults hit nothing");
        assert!((0..hosts).any(|i| io.unroutable(spread(i))), "seed {seed}");
        assert_eq!(out.summary.local_errors, local, "seed {seed}");
    }
}
