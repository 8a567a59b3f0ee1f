//! Engine tests over the in-memory network (virtual clock: exact, instant).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::engine::{
    self, EngineConfig, EngineOutcome, RateMode, ResumeState, ScheduleConfig, Space,
};
use super::io::{FakeNet, Faulty, PacketIo, Truth};
use super::packet::{Answer, Reply};
use crate::model::{Observation, Reason, ScanEvent};
use crate::scan::raw::schedule::Shard;

fn v4(i: u32) -> IpAddr {
    IpAddr::V4((0xc612_0100u32 + i).into()) // 198.18.1.x
}

/// Even hosts are up: port p is open when (host * 7 + p) % 37 == 0, else
/// closed; host 2 rejects port 25 with ICMP admin-prohibited; odd hosts are
/// down (silent).
fn lab_truth(hosts: u32) -> (Truth, HashMap<(IpAddr, u16), Reason>) {
    let table = move |a: IpAddr, p: u16| -> Option<Answer> {
        let IpAddr::V4(v) = a else { return None };
        let i = u32::from(v).wrapping_sub(0xc612_0100);
        if i >= hosts || i % 2 == 1 {
            return None;
        }
        if i == 2 && p == 25 {
            return Some(Answer::Unreachable(13));
        }
        if (i * 7 + p as u32).is_multiple_of(37) {
            Some(Answer::SynAck)
        } else {
            Some(Answer::Reset)
        }
    };
    let mut expect = HashMap::new();
    for i in 0..hosts {
        for p in 1..=300u16 {
            let r = match table(v4(i), p) {
                None => Reason::NoResponse,
                Some(Answer::SynAck) => Reason::SynAck,
                Some(Answer::Reset) => Reason::Reset,
                Some(Answer::Unreachable(_)) => Reason::AdminProhibited,
            };
            expect.insert((v4(i), p), r);
        }
    }
    (Box::new(table), expect)
}

struct Run {
    obs: Vec<Observation>,
    notices: Vec<String>,
    last_progress: Option<crate::model::Progress>,
    out: EngineOutcome,
}

fn scan(
    io: &mut dyn PacketIo<Reply = Reply>,
    addrs: &[IpAddr],
    ports: &[u16],
    cfg: &EngineConfig,
) -> Run {
    scan_until(io, addrs, ports, cfg, usize::MAX)
}

/// Like `scan`, but raises the stop flag after `stop_after` observations.
fn scan_until(
    io: &mut dyn PacketIo<Reply = Reply>,
    addrs: &[IpAddr],
    ports: &[u16],
    cfg: &EngineConfig,
    stop_after: usize,
) -> Run {
    let addr_at = |i: u64| addrs.get(i as usize).copied();
    let space = Space {
        n_addrs: addrs.len() as u64,
        addr_at: &addr_at,
        ports,
    };
    let mut obs = Vec::new();
    let mut notices = Vec::new();
    let mut last_progress = None;
    let stop = cfg.schedule.stop.clone();
    let mut emit = |e: ScanEvent| match e {
        ScanEvent::Observation(o) => {
            obs.push(o);
            if obs.len() >= stop_after
                && let Some(s) = &stop
            {
                s.store(true, Ordering::Relaxed);
            }
        }
        ScanEvent::Notice(n) => notices.push(n),
        ScanEvent::Progress(p) => last_progress = Some(p),
    };
    let out = engine::run(io, &space, cfg, &mut emit).expect("engine runs");
    Run {
        obs,
        notices,
        last_progress,
        out,
    }
}

fn by_pair(obs: &[Observation]) -> HashMap<(IpAddr, u16), Reason> {
    let mut m = HashMap::new();
    for o in obs {
        assert!(
            m.insert((o.ip, o.port), o.reason).is_none(),
            "{}:{} concluded twice",
            o.ip,
            o.port
        );
    }
    m
}

fn ports() -> Vec<u16> {
    (1..=300).collect()
}

#[test]
fn clean_network_every_pair_exactly_right() {
    let (truth, expect) = lab_truth(16);
    let mut net = FakeNet::new(truth);
    let addrs: Vec<IpAddr> = (0..16).map(v4).collect();
    // Slow enough (2.4 s of virtual time) for the silent-host rule to act.
    let cfg = EngineConfig {
        rate: RateMode::Fixed(2000),
        ..EngineConfig::default()
    };
    let r = scan(&mut net, &addrs, &ports(), &cfg);
    assert_eq!(by_pair(&r.obs), expect);
    let open = expect.values().filter(|r| **r == Reason::SynAck).count() as u64;
    assert_eq!(r.out.summary.open, open);
    assert_eq!(r.out.summary.probed, 16 * 300);
    // Answered pairs were probed once; silent ones twice (retries = 1)
    // until their host had 32 silent pairs, then once. Every SYN-ACK got a RST.
    let mut twice: HashMap<IpAddr, u32> = HashMap::new();
    for ((a, p), reason) in &expect {
        let n = net.syns[&(*a, *p)];
        if *reason == Reason::NoResponse {
            assert!(n == 1 || n == 2, "{a}:{p} probed {n} times");
            *twice.entry(*a).or_default() += n - 1;
        } else {
            assert_eq!(n, 1, "{a}:{p}");
        }
    }
    assert_eq!(twice.len(), 8);
    assert!(twice.values().all(|n| (32..100).contains(n)), "{twice:?}");
    assert_eq!(
        r.out.summary.sent,
        net.syns.values().map(|n| *n as u64).sum::<u64>()
    );
    assert_eq!(net.rsts, open);
    assert_eq!(r.out.invalid, 0);
    // The open ones answered on the first try with the fake's latency.
    let o = r.obs.iter().find(|o| o.reason == Reason::SynAck).unwrap();
    assert_eq!((o.tries, o.rtt_ms), (1, Some(0.5)));
    assert_eq!(r.notices.len(), 1, "{:?}", r.notices);
    assert!(
        r.notices[0].contains("did not answer any of 32 ports"),
        "{}",
        r.notices[0]
    );
}

#[test]
fn loss_duplicates_and_reordering_do_not_change_the_result() {
    let (truth, expect) = lab_truth(16);
    let mut io = Faulty::lossy(FakeNet::new(truth), 7, 0.05);
    let cfg = EngineConfig {
        schedule: ScheduleConfig {
            retries: 3,
            ..ScheduleConfig::default()
        },
        ..EngineConfig::default()
    };
    let addrs: Vec<IpAddr> = (0..16).map(v4).collect();
    let r = scan(&mut io, &addrs, &ports(), &cfg);
    assert_eq!(by_pair(&r.obs), expect);
    assert!(
        r.out.duplicates > 100,
        "duplicates seen: {}",
        r.out.duplicates
    );
    assert!(
        r.obs
            .iter()
            .any(|o| o.reason == Reason::SynAck && o.tries > 1)
    );
}

#[test]
fn adapts_to_a_firewall_that_drops_syns_above_5000_per_second() {
    // 8 hosts, all up: 2,400 pairs behind a 5,000 SYN/s limiter.
    let truth: Truth = Box::new(|_, p| {
        Some(if p % 10 == 0 {
            Answer::SynAck
        } else {
            Answer::Reset
        })
    });
    let mut net = FakeNet::new(truth).with_syn_limit(5000.0, 5.0);
    let addrs: Vec<IpAddr> = (0..8).map(v4).collect();
    let ports: Vec<u16> = (1..=1000).collect();
    let r = scan(&mut net, &addrs, &ports, &EngineConfig::default());
    let found = r.obs.iter().filter(|o| o.reason == Reason::SynAck).count();
    assert_eq!(found, 8 * 100, "recall behind the limiter");
    assert!(
        r.notices.iter().any(|n| n.contains("slowing down")),
        "{:?}",
        r.notices
    );
    assert!(
        r.out.final_rate < 10_000.0,
        "settled at {}",
        r.out.final_rate
    );
}

#[test]
fn fixed_rate_is_paced() {
    let truth: Truth = Box::new(|_, _| Some(Answer::Reset));
    let mut net = FakeNet::new(truth);
    let addrs: Vec<IpAddr> = (0..10).map(v4).collect();
    let ports: Vec<u16> = (1..=500).collect();
    let cfg = EngineConfig {
        rate: RateMode::Fixed(10_000),
        ..EngineConfig::default()
    };
    let r = scan(&mut net, &addrs, &ports, &cfg);
    assert_eq!(r.out.summary.sent, 5000);
    // 5,000 probes at 10,000/s: half a second of (virtual) time.
    let ms = r.out.summary.elapsed.as_millis();
    assert!((495..=510).contains(&ms), "elapsed {ms} ms");
}

#[test]
fn syn_proxy_hosts_are_held_for_confirmation() {
    // Host 0 answers SYN-ACK everywhere; host 1 has 3 open ports.
    let truth: Truth = Box::new(|a, p| {
        if a == v4(0) || [22, 80, 443].contains(&p) {
            Some(Answer::SynAck)
        } else {
            Some(Answer::Reset)
        }
    });
    let mut net = FakeNet::new(truth);
    let ports: Vec<u16> = (1..=150).chain([443]).collect();
    let r = scan(&mut net, &[v4(0), v4(1)], &ports, &EngineConfig::default());
    assert_eq!(r.notices.len(), 1, "{:?}", r.notices);
    assert!(
        r.notices[0].starts_with("198.18.1.0: answered SYN-ACK on 100 of 100 ports"),
        "{}",
        r.notices[0]
    );
    assert_eq!(r.out.suspect.len(), 151);
    assert!(r.out.suspect.iter().all(|o| o.ip == v4(0)));
    let emitted_open: Vec<_> = r
        .obs
        .iter()
        .filter(|o| o.reason == Reason::SynAck)
        .map(|o| (o.ip, o.port))
        .collect();
    assert_eq!(emitted_open.len(), 3);
    assert!(emitted_open.iter().all(|(ip, _)| *ip == v4(1)));
}

#[test]
fn shards_split_the_space_without_overlap() {
    let (truth, expect) = lab_truth(8);
    let addrs: Vec<IpAddr> = (0..8).map(v4).collect();
    let mut all = HashMap::new();
    for index in 0..3 {
        let mut net = FakeNet::new(Box::new(lab_truth(8).0));
        let cfg = EngineConfig {
            schedule: ScheduleConfig {
                shard: Shard { index, count: 3 },
                seed: 99,
                ..ScheduleConfig::default()
            },
            ..EngineConfig::default()
        };
        let r = scan(&mut net, &addrs, &ports(), &cfg);
        let n = r.obs.len() as u64;
        assert!((799..=801).contains(&n), "shard {index}: {n}");
        for (k, v) in by_pair(&r.obs) {
            assert!(all.insert(k, v).is_none(), "{k:?} in two shards");
        }
    }
    drop(truth);
    assert_eq!(all, expect);
}

#[test]
fn interrupted_scan_resumes_with_nothing_lost_or_repeated() {
    let (truth, expect) = lab_truth(16);
    let addrs: Vec<IpAddr> = (0..16).map(v4).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = EngineConfig {
        schedule: ScheduleConfig {
            stop: Some(stop.clone()),
            seed: 5,
            ..ScheduleConfig::default()
        },
        ..EngineConfig::default()
    };
    let mut net = FakeNet::new(truth);
    let first = scan_until(&mut net, &addrs, &ports(), &cfg, 1000);
    let state: ResumeState = first.out.resume.clone().expect("a resume state");
    assert!(first.out.summary.interrupted);
    assert!(!state.outstanding.is_empty());
    let done1 = by_pair(&first.obs);
    assert!(done1.len() >= 1000 && done1.len() < 4800, "{}", done1.len());
    // The state survives a file round trip.
    let json = serde_json::to_string(&state).unwrap();
    let state: ResumeState = serde_json::from_str(&json).unwrap();

    let mut net2 = FakeNet::new(Box::new(lab_truth(16).0));
    let cfg2 = EngineConfig {
        schedule: ScheduleConfig {
            resume: Some(state),
            seed: 12345,
            ..ScheduleConfig::default()
        },
        ..EngineConfig::default()
    };
    let second = scan(&mut net2, &addrs, &ports(), &cfg2);
    assert!(second.out.resume.is_none());
    let done2 = by_pair(&second.obs);
    // Progress of the resumed run counts what the first run concluded.
    let p = second.last_progress.expect("progress");
    assert_eq!((p.done, p.total), (16 * 300, 16 * 300));
    // Nothing concluded in the first run is probed again.
    for k in done1.keys() {
        assert!(!net2.syns.contains_key(k), "{k:?} probed again");
        assert!(!done2.contains_key(k), "{k:?} concluded twice");
    }
    let mut all = done1;
    all.extend(done2);
    assert_eq!(all, expect);
}

#[test]
fn resume_refuses_other_targets() {
    let state = ResumeState {
        version: 1,
        seed: 1,
        shard: Shard::default(),
        total: 7,
        next: 0,
        outstanding: vec![],
    };
    let cfg = EngineConfig {
        schedule: ScheduleConfig {
            resume: Some(state),
            ..ScheduleConfig::default()
        },
        ..EngineConfig::default()
    };
    let mut net = FakeNet::new(Box::new(|_, _| None));
    let addrs = [v4(0)];
    let addr_at = |i: u64| addrs.get(i as usize).copied();
    let ports = [1u16, 2];
    let space = Space {
        n_addrs: 1,
        addr_at: &addr_at,
        ports: &ports,
    };
    let err = engine::run(&mut net, &space, &cfg, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("describes 7 (address, port) pairs but these targets and ports make 2"),
        "{err}"
    );
}

#[test]
fn ipv6_targets_scan_like_ipv4() {
    let a: IpAddr = "2001:2::10".parse().unwrap();
    let b: IpAddr = "2001:2::11".parse().unwrap();
    let truth: Truth = Box::new(move |t, p| {
        if t == a && p == 22 {
            Some(Answer::SynAck)
        } else if t == a {
            Some(Answer::Reset)
        } else if p == 80 {
            Some(Answer::Unreachable(4))
        } else {
            None
        }
    });
    let mut net = FakeNet::new(truth).with_latency(Duration::from_millis(3));
    let r = scan(&mut net, &[a, b], &[22, 80, 443], &EngineConfig::default());
    let m = by_pair(&r.obs);
    assert_eq!(m[&(a, 22)], Reason::SynAck);
    assert_eq!(m[&(a, 443)], Reason::Reset);
    assert_eq!(m[&(b, 80)], Reason::PortUnreach);
    assert_eq!(m[&(b, 22)], Reason::NoResponse);
    assert_eq!(m.len(), 6);
    let set: HashSet<_> = r.obs.iter().map(|o| o.ip).collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn settles_near_a_capacity_limit_instead_of_collapsing() {
    // Every probe is answered, but the path only carries 25,000 SYNs/s.
    let truth: Truth = Box::new(|_, p| {
        Some(if p % 1000 == 0 {
            Answer::SynAck
        } else {
            Answer::Reset
        })
    });
    let mut net = FakeNet::new(truth).with_syn_limit(25_000.0, 125.0);
    let addrs: Vec<IpAddr> = (0..16).map(v4).collect();
    let ports: Vec<u16> = (1..=5_000).collect();
    let r = scan(&mut net, &addrs, &ports, &EngineConfig::default());
    let found = r.obs.iter().filter(|o| o.reason == Reason::SynAck).count();
    assert_eq!(found, 16 * 5);
    let cuts = r
        .notices
        .iter()
        .filter(|n| n.contains("slowing down"))
        .count();
    let secs = r.out.summary.elapsed.as_secs_f64();
    // 80,000 probes at 25,000/s is 3.2 s at best.
    assert!(
        secs < 5.0,
        "{secs} s at a 25k/s limit; {cuts} cuts; final rate {}",
        r.out.final_rate
    );
}

#[test]
fn retries_reach_targets_that_hold_the_lost_handshake_half_open() {
    // A third of the SYN-ACKs are lost on the way back; the target keeps
    // those connections half-open and ignores a new-sequence SYN on the
    // same 4-tuple, so a retry must come from a fresh source port.
    let truth: Truth = Box::new(|_, _| Some(Answer::SynAck));
    let mut io = Faulty::new(FakeNet::new(truth).with_half_open_state(), 3);
    io.loss_in = 0.3;
    let cfg = EngineConfig {
        schedule: ScheduleConfig {
            retries: 4,
            ..ScheduleConfig::default()
        },
        proxy_min_ports: 0,
        ..EngineConfig::default()
    };
    let ports: Vec<u16> = (1..=50).collect();
    let r = scan(&mut io, &[v4(0), v4(1)], &ports, &cfg);
    let open = r.obs.iter().filter(|o| o.reason == Reason::SynAck).count();
    assert_eq!(open, 100);
    assert!(r.obs.iter().filter(|o| o.tries > 1).count() > 10);
}

#[test]
fn empty_space_and_corrupt_resume_state() {
    let mut net = FakeNet::new(Box::new(|_, _| None));
    let r = scan(&mut net, &[], &[22], &EngineConfig::default());
    assert!(r.obs.is_empty());
    assert_eq!(r.out.summary.sent, 0);
    let state = ResumeState {
        version: 1,
        seed: 1,
        shard: Shard::default(),
        total: 2,
        next: 3,
        outstanding: vec![],
    };
    let cfg = EngineConfig {
        schedule: ScheduleConfig {
            resume: Some(state),
            ..ScheduleConfig::default()
        },
        ..EngineConfig::default()
    };
    let addrs = [v4(0)];
    let addr_at = |i: u64| addrs.get(i as usize).copied();
    let ports = [1u16, 2];
    let space = Space {
        n_addrs: 1,
        addr_at: &addr_at,
        ports: &ports,
    };
    let err = engine::run(&mut net, &space, &cfg, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("step 3 of a shard that has only 2"),
        "{err}"
    );
}

/// Property: whatever the local system refuses — no route to some
/// destinations, every packet to others (EPERM from a local firewall,
/// ENETUNREACH, EADDRNOTAVAIL), transient ENOBUFS mid-batch — every
/// (address, port) ends in exactly one observation: the refused ones as
/// `local-error` naming the errno, the rest exactly as the network says.
#[test]
fn injected_local_send_errors_still_cover_the_scope_exactly_once() {
    let addrs: Vec<IpAddr> = (0..16).map(v4).collect();
    let ports: Vec<u16> = (1..=120).collect();
    let errnos = [libc::EPERM, libc::ENETUNREACH, libc::EADDRNOTAVAIL];
    for seed in 0..9u64 {
        let (truth, expect) = lab_truth(16);
        let mut io = Faulty::refusing(FakeNet::new(truth), seed, errnos[seed as usize % 3]);
        let cfg = EngineConfig {
            schedule: ScheduleConfig {
                retries: 2,
                seed,
                ..ScheduleConfig::default()
            },
            ..EngineConfig::default()
        };
        let r = scan(&mut io, &addrs, &ports, &cfg);
        let got = by_pair(&r.obs);
        assert_eq!(got.len(), addrs.len() * ports.len(), "seed {seed}");
        let mut local = 0u64;
        for o in &r.obs {
            let k = (o.ip, o.port);
            if io.unroutable(o.ip) {
                assert_eq!(o.reason, Reason::LocalError, "seed {seed} {k:?}");
                assert!(o.error.as_deref().unwrap().starts_with("ENETUNREACH"));
            } else if io.refuses(o.ip) {
                assert_eq!(o.reason, Reason::LocalError, "seed {seed} {k:?}");
                let e = o.error.as_deref().unwrap();
                let name = crate::scan::connect::errno_name(&std::io::Error::from_raw_os_error(
                    io.refuse_errno,
                ));
                assert_eq!(e, name, "seed {seed}");
            } else {
                assert_eq!(o.reason, expect[&k], "seed {seed} {k:?}");
            }
            if o.reason == Reason::LocalError {
                local += 1;
                assert_eq!(o.state, crate::model::PortState::Filtered);
                assert_eq!(o.tries, 0);
            }
        }
        assert!(local > 0, "seed {seed}: the faults hit nothing");
        assert_eq!(r.out.summary.local_errors, local, "seed {seed}");
        assert_eq!(r.out.summary.probed, got.len() as u64);
    }
}
