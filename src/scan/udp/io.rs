//! Scan layer, packet I/O seam of the UDP engine.
//!
//! Like the SYN engine, the UDP engine reaches the network only through a
//! small trait, [`UdpIo`], with the clock inside it: [`RawUdpIo`] sends
//! header-included datagrams and reads replies from the SYN engine's
//! packet sockets, and [`FakeUdpNet`] is an in-memory network on a virtual
//! clock that answers from a ground-truth table, loses packets on a seeded
//! coin and, like a Linux host, rate-limits its ICMP errors per target
//! address with a token bucket. The fake is what makes the pacing logic
//! testable exactly and instantly.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use super::packet::{self, FakeAnswer, UdpReply};
use crate::scan::syn::io::{Arrivals, OutPacket, PacketIo, SplitMix};
use crate::scan::syn::raw::RawIo;

/// A parsed reply and when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpReceived {
    pub reply: UdpReply,
    pub at: Duration,
}

pub trait UdpIo {
    /// Time since the I/O was opened (monotonic).
    fn now(&self) -> Duration;
    /// The local address packets to `target` leave from; `None`: no route.
    fn local_addr(&mut self, target: IpAddr) -> Option<IpAddr>;
    /// Sends the packets in order; returns how many leading ones went out.
    fn send(&mut self, batch: &[OutPacket<'_>]) -> io::Result<usize>;
    /// Appends replies to `out`, waiting up to `timeout` when none is ready.
    fn recv(&mut self, timeout: Duration, out: &mut Vec<UdpReceived>) -> io::Result<()>;
}

/// Raw sockets: the SYN engine's sender and packet sockets, with UDP and
/// ICMP replies parsed by [`packet::parse_udp_reply`].
pub struct RawUdpIo {
    raw: RawIo,
}

impl RawUdpIo {
    pub fn open() -> io::Result<RawUdpIo> {
        // UDP rates are bounded by the targets' ICMP limiters, not by the
        // kernel's send path: one sending thread is plenty.
        Ok(RawUdpIo {
            raw: RawIo::open(false)?,
        })
    }

    fn drain(&mut self, out: &mut Vec<UdpReceived>) -> io::Result<usize> {
        self.raw.drain_bytes(&mut |bytes, at| {
            if let Some(reply) = packet::parse_udp_reply(bytes) {
                out.push(UdpReceived { reply, at });
            }
        })
    }
}

impl UdpIo for RawUdpIo {
    fn now(&self) -> Duration {
        self.raw.now()
    }

    fn local_addr(&mut self, target: IpAddr) -> Option<IpAddr> {
        self.raw.local_addr(target)
    }

    fn send(&mut self, batch: &[OutPacket<'_>]) -> io::Result<usize> {
        self.raw.send(batch)
    }

    fn recv(&mut self, timeout: Duration, out: &mut Vec<UdpReceived>) -> io::Result<()> {
        if self.drain(out)? > 0 || timeout.is_zero() {
            return Ok(());
        }
        self.raw.wait_readable(timeout)?;
        self.drain(out)?;
        Ok(())
    }
}

/// Ground truth of the fake network: how a target answers a UDP probe to a
/// port with a payload (`None`: silently dropped).
pub type UdpTruth = Box<dyn Fn(IpAddr, u16, &[u8]) -> Option<FakeAnswer> + Send>;

/// A token bucket: `rate` per second, at most `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl Bucket {
    fn take(&mut self, now: Duration) -> bool {
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An in-memory network on a virtual clock.
pub struct FakeUdpNet {
    now: Duration,
    local4: IpAddr,
    local6: IpAddr,
    truth: UdpTruth,
    latency: Duration,
    queue: Arrivals,
    /// Per-target ICMP error limiter (rate/s, burst), as Linux's
    /// `icmp_ratelimit`; `None`: unlimited.
    icmp_limit: Option<(f64, f64)>,
    buckets: HashMap<IpAddr, Bucket>,
    loss: f64,
    rng: SplitMix,
    /// Probes received per (target, port), retries included.
    pub probes: HashMap<(IpAddr, u16), u32>,
    /// ICMP errors the limiter suppressed.
    pub suppressed: u64,
}

impl FakeUdpNet {
    pub fn new(truth: UdpTruth) -> FakeUdpNet {
        FakeUdpNet {
            now: Duration::ZERO,
            local4: "198.18.0.1".parse().expect("literal"),
            local6: "2001:2::1".parse().expect("literal"),
            truth,
            latency: Duration::from_micros(500),
            queue: Arrivals::default(),
            icmp_limit: None,
            buckets: HashMap::new(),
            loss: 0.0,
            rng: SplitMix::new(1),
            probes: HashMap::new(),
            suppressed: 0,
        }
    }

    pub fn with_latency(mut self, latency: Duration) -> FakeUdpNet {
        self.latency = latency;
        self
    }

    /// Every target answers at most `rate` ICMP errors per second after a
    /// burst of `burst`, each address with its own bucket.
    pub fn with_icmp_limit(mut self, rate: f64, burst: f64) -> FakeUdpNet {
        self.icmp_limit = Some((rate, burst));
        self
    }

    /// Drops each probe and each answer with probability `p` (seeded).
    pub fn with_loss(mut self, p: f64, seed: u64) -> FakeUdpNet {
        self.loss = p;
        self.rng = SplitMix::new(seed);
        self
    }

    fn deliver(&mut self, out: &mut Vec<UdpReceived>) {
        while let Some((t, bytes)) = self.queue.pop_due(self.now) {
            if let Some(reply) = packet::parse_udp_reply(&bytes) {
                out.push(UdpReceived { reply, at: t });
            }
        }
    }
}

impl UdpIo for FakeUdpNet {
    fn now(&self) -> Duration {
        self.now
    }

    fn local_addr(&mut self, target: IpAddr) -> Option<IpAddr> {
        Some(if target.is_ipv4() {
            self.local4
        } else {
            self.local6
        })
    }

    fn send(&mut self, batch: &[OutPacket<'_>]) -> io::Result<usize> {
        for p in batch {
            let Some((dst, dport, payload)) = probe_fields(p.bytes) else {
                continue;
            };
            *self.probes.entry((dst, dport)).or_default() += 1;
            if self.rng.chance(self.loss) {
                continue;
            }
            let Some(answer) = (self.truth)(dst, dport, &payload) else {
                continue;
            };
            if let (FakeAnswer::Icmp(_), Some((rate, burst))) = (&answer, self.icmp_limit) {
                let now = self.now;
                let b = self.buckets.entry(dst).or_insert(Bucket {
                    rate,
                    burst,
                    tokens: burst,
                    last: now,
                });
                if !b.take(now) {
                    self.suppressed += 1;
                    continue;
                }
            }
            if self.rng.chance(self.loss) {
                continue;
            }
            let mut buf = Vec::new();
            if packet::build_answer(&mut buf, p.bytes, &answer).is_some() {
                self.queue.push(self.now + self.latency, buf);
            }
        }
        Ok(batch.len())
    }

    fn recv(&mut self, timeout: Duration, out: &mut Vec<UdpReceived>) -> io::Result<()> {
        self.deliver(out);
        if !out.is_empty() || timeout.is_zero() {
            return Ok(());
        }
        let next = self.queue.next_at();
        self.now = match next {
            Some(t) if t <= self.now + timeout => t,
            _ => self.now + timeout,
        };
        self.deliver(out);
        Ok(())
    }
}

/// (destination, destination port, payload) of a probe the fake received.
fn probe_fields(pkt: &[u8]) -> Option<(IpAddr, u16, Vec<u8>)> {
    let ip = crate::scan::syn::packet::parse_ip(pkt, false)?;
    if ip.proto != 17 || ip.payload.len() < packet::UDP_LEN {
        return None;
    }
    let u = ip.payload;
    let dport = u16::from_be_bytes([u[2], u[3]]);
    Some((ip.dst, dport, u[packet::UDP_LEN..].to_vec()))
}
