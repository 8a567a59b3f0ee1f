//! Scan layer, tests of the UDP engine: the UDP targets of the fake
//! network.
//!
//! The seam, the fault injector and the fake network are the raw core's
//! ([`crate::scan::raw`]). The targets here answer from a ground-truth
//! table, lose packets on a seeded coin and, like a Linux host,
//! rate-limit their ICMP errors per target address with a token bucket:
//! what makes the pacing logic testable exactly and instantly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::packet::{self, FakeAnswer, UdpReply};
use crate::scan::raw::fake::{Responder, TokenBucket};
use crate::scan::raw::faulty::SplitMix;
pub use crate::scan::raw::io::{OutPacket, PacketIo as UdpIo};
use crate::scan::raw::wire::{PROTO_UDP, be16, parse_ip};

/// A parsed reply and when it arrived.
pub type UdpReceived = crate::scan::raw::io::Received<UdpReply>;

/// Ground truth of the fake network: how a target answers a UDP probe to a
/// port with a payload (`None`: silently dropped).
pub type UdpTruth = Box<dyn Fn(IpAddr, u16, &[u8]) -> Option<FakeAnswer> + Send>;

/// The fake network with UDP targets.
pub type FakeUdpNet = crate::scan::raw::fake::FakeNet<UdpTargets>;

/// Targets answering UDP probes.
pub struct UdpTargets {
    truth: UdpTruth,
    /// Per-target ICMP error limiter (rate/s, burst), as Linux's
    /// `icmp_ratelimit`; `None`: unlimited.
    icmp_limit: Option<(f64, f64)>,
    buckets: HashMap<IpAddr, TokenBucket>,
    loss: f64,
    rng: SplitMix,
    /// Probes received per (target, port), retries included.
    pub probes: HashMap<(IpAddr, u16), u32>,
    /// ICMP errors the limiter suppressed.
    pub suppressed: u64,
}

impl FakeUdpNet {
    pub fn new(truth: UdpTruth) -> FakeUdpNet {
        FakeUdpNet::with_targets(UdpTargets {
            truth,
            icmp_limit: None,
            buckets: HashMap::new(),
            loss: 0.0,
            rng: SplitMix::new(1),
            probes: HashMap::new(),
            suppressed: 0,
        })
    }

    /// Every target answers at most `rate` ICMP errors per second after a
    /// burst of `burst`, each address with its own bucket.
    pub fn with_icmp_limit(mut self, rate: f64, burst: f64) -> FakeUdpNet {
        self.targets.icmp_limit = Some((rate, burst));
        self
    }

    /// Drops each probe and each answer with probability `p` (seeded).
    pub fn with_loss(mut self, p: f64, seed: u64) -> FakeUdpNet {
        self.targets.loss = p;
        self.targets.rng = SplitMix::new(seed);
        self
    }
}

impl Responder for UdpTargets {
    type Reply = UdpReply;

    fn answer(&mut self, now: Duration, pkt: &[u8]) -> Option<Vec<u8>> {
        let (dst, dport, payload) = probe_fields(pkt)?;
        *self.probes.entry((dst, dport)).or_default() += 1;
        if self.rng.chance(self.loss) {
            return None;
        }
        let answer = (self.truth)(dst, dport, payload)?;
        if let (FakeAnswer::Icmp(_), Some((rate, burst))) = (&answer, self.icmp_limit) {
            let b = self
                .buckets
                .entry(dst)
                .or_insert_with(|| TokenBucket::new(rate, burst, now));
            if !b.take(now) {
                self.suppressed += 1;
                return None;
            }
        }
        if self.rng.chance(self.loss) {
            return None;
        }
        let mut buf = Vec::new();
        packet::build_answer(&mut buf, pkt, &answer)?;
        Some(buf)
    }
}

/// (destination, destination port, payload) of a probe the fake received.
fn probe_fields(pkt: &[u8]) -> Option<(IpAddr, u16, &[u8])> {
    let ip = parse_ip(pkt, false)?;
    if ip.proto != PROTO_UDP || ip.payload.len() < packet::UDP_LEN {
        return None;
    }
    Some((ip.dst, be16(ip.payload, 2)?, &ip.payload[packet::UDP_LEN..]))
}
