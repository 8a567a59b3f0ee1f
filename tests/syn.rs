//! SYN engine against real packets.

use std::net::IpAddr;
use std::time::Instant;

use portwarden::model::{Reason, ScanEvent};
use portwarden::scan::syn::engine::{self, EngineConfig, Space};
use portwarden::scan::syn::raw::RawIo;

/// Manual benchmark, run inside a scanner namespace:
/// `PW_BENCH="198.18.1.0 256 1 1006" ip netns exec NS target/release/deps/tests-… syn::bench --ignored`
#[test]
#[ignore]
fn bench() {
    let spec = std::env::var("PW_BENCH").expect("PW_BENCH=base count lo hi");
    let f: Vec<&str> = spec.split_whitespace().collect();
    let base: IpAddr = f[0].parse().unwrap();
    let count: u64 = f[1].parse().unwrap();
    let lo: u16 = f[2].parse().unwrap();
    let hi: u16 = f[3].parse().unwrap();
    let ports: Vec<u16> = (lo..=hi).collect();
    let addr_at = |i: u64| {
        (i < count).then(|| match base {
            IpAddr::V4(b) => IpAddr::V4((u32::from(b) + i as u32).into()),
            IpAddr::V6(b) => IpAddr::V6((u128::from(b) + i as u128).into()),
        })
    };
    let space = Space { n_addrs: count, addr_at: &addr_at, ports: &ports };
    let mut io = RawIo::open(std::env::var("PW_ONE").is_err()).unwrap();
    let mut open = Vec::new();
    let mut notices = Vec::new();
    let t0 = Instant::now();
    let out = engine::run(&mut io, &space, &EngineConfig::default(), &mut |e| match e {
        ScanEvent::Observation(o) if o.reason == Reason::SynAck => open.push((o.ip, o.port)),
        ScanEvent::Notice(n) => notices.push(n),
        ScanEvent::Progress(p) => println!("PROGRESS {:?} {p:?}", t0.elapsed()),
        _ => {}
    })
    .unwrap();
    let el = t0.elapsed();
    open.sort();
    for (ip, p) in &open {
        println!("OPEN {ip} {p}");
    }
    for n in &notices {
        println!("NOTICE {n}");
    }
    println!(
        "elapsed {:?} sent {} open {} closed {} filtered {} rate {:.0} final_rate {:.0} invalid {} dup {}",
        el, out.summary.sent, out.summary.open, out.summary.closed, out.summary.filtered, out.summary.rate, out.final_rate, out.invalid, out.duplicates
    );
}
