//! Scan layer, packet I/O seam of the SYN engine.
//!
//! The engine talks to the network only through [`PacketIo`], so the same
//! schedule, retry and rate logic runs over raw sockets ([`super::raw`])
//! and, in unit tests, over [`FakeNet`] (an in-memory network answering
//! from a ground-truth table) wrapped in [`Faulty`] (seeded loss,
//! duplication, reordering and delay). Time is part of the seam: the engine
//! reads the clock through `now()` and waits only inside `recv()`, so the
//! fake can run on a virtual clock and tests are exact and instant instead
//! of depending on timing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use super::packet::{self, Answer, Reply};

/// One outgoing packet: a complete IP datagram and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct OutPacket<'a> {
    pub dst: IpAddr,
    pub bytes: &'a [u8],
}

/// A parsed reply and when it was received (on the I/O's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received {
    pub reply: Reply,
    pub at: Duration,
}

pub trait PacketIo {
    /// Time since the I/O was opened (monotonic).
    fn now(&self) -> Duration;
    /// The local address packets to `target` leave from; `None` when there
    /// is no route.
    fn local_addr(&mut self, target: IpAddr) -> Option<IpAddr>;
    /// Sends the packets in order; returns how many leading packets were
    /// accepted (the rest should be offered again later).
    fn send(&mut self, batch: &[OutPacket<'_>]) -> io::Result<usize>;
    /// Appends replies to `out`, waiting up to `timeout` when none is ready.
    fn recv(&mut self, timeout: Duration, out: &mut Vec<Received>) -> io::Result<()>;
    /// Appends the replies that are ready, without waiting (and, on a
    /// virtual clock, without letting time pass).
    fn poll(&mut self, out: &mut Vec<Received>) -> io::Result<()> {
        self.recv(Duration::ZERO, out)
    }
}

/// A small seeded generator (SplitMix64) for fault injection and tests.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Ground truth of the fake network: how a target answers a SYN to a port
/// (`None`: silently dropped).
pub type Truth = Box<dyn Fn(IpAddr, u16) -> Option<Answer> + Send>;

/// Packets on their way back on a fake network, delivered in arrival
/// order (ties in sending order).
#[derive(Debug, Default)]
pub struct Arrivals {
    heap: BinaryHeap<Reverse<(Duration, u64, Vec<u8>)>>,
    sent: u64,
}

impl Arrivals {
    /// Queues `bytes` to arrive at `at`.
    pub fn push(&mut self, at: Duration, bytes: Vec<u8>) {
        self.sent += 1;
        self.heap.push(Reverse((at, self.sent, bytes)));
    }

    /// When the next packet arrives, if one is on its way.
    pub fn next_at(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next packet that has arrived by `now`, with its arrival time.
    pub fn pop_due(&mut self, now: Duration) -> Option<(Duration, Vec<u8>)> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((t, _, bytes))| (t, bytes))
    }
}

/// An in-memory network on a virtual clock. Each SYN is answered after
/// `latency` according to the truth table; an optional SYN rate limiter
/// (token bucket) models a firewall that drops SYNs above a rate.
pub struct FakeNet {
    now: Duration,
    local4: IpAddr,
    local6: IpAddr,
    truth: Truth,
    latency: Duration,
    queue: Arrivals,
    limiter: Option<Limiter>,
    /// SYNs received per (target, port), retries included.
    pub syns: HashMap<(IpAddr, u16), u32>,
    /// RSTs the scanner sent (answers to SYN-ACKs).
    pub rsts: u64,
    /// Half-open connections (target, port, source port) → sequence, kept
    /// like a Linux target does after sending a SYN-ACK until a RST comes.
    half_open: Option<HashMap<(IpAddr, u16, u16), u32>>,
}

struct Limiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl FakeNet {
    pub fn new(truth: Truth) -> FakeNet {
        FakeNet {
            now: Duration::ZERO,
            local4: "198.18.0.1".parse().expect("literal"),
            local6: "2001:2::1".parse().expect("literal"),
            truth,
            latency: Duration::from_micros(500),
            queue: Arrivals::default(),
            limiter: None,
            syns: HashMap::new(),
            rsts: 0,
            half_open: None,
        }
    }

    /// Behaves like a Linux target with a half-open connection: a second
    /// SYN on the same 4-tuple with another sequence is silently ignored.
    pub fn with_half_open_state(mut self) -> FakeNet {
        self.half_open = Some(HashMap::new());
        self
    }

    pub fn with_latency(mut self, latency: Duration) -> FakeNet {
        self.latency = latency;
        self
    }

    /// Drops SYNs beyond `rate` per second (bucket of `burst`), like an
    /// nftables `limit rate over` rule.
    pub fn with_syn_limit(mut self, rate: f64, burst: f64) -> FakeNet {
        self.limiter = Some(Limiter {
            rate,
            burst,
            tokens: burst,
            last: Duration::ZERO,
        });
        self
    }

    fn admit(&mut self) -> bool {
        let now = self.now;
        match &mut self.limiter {
            None => true,
            Some(l) => {
                l.tokens = (l.tokens + (now - l.last).as_secs_f64() * l.rate).min(l.burst);
                l.last = now;
                if l.tokens >= 1.0 {
                    l.tokens -= 1.0;
                    true
                } else {
                    false
                }
            }
        }
    }

    fn deliver(&mut self, out: &mut Vec<Received>) {
        while let Some((t, bytes)) = self.queue.pop_due(self.now) {
            if let Some(reply) = packet::parse_reply(&bytes) {
                out.push(Received { reply, at: t });
            }
        }
    }
}

impl PacketIo for FakeNet {
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
            let Some(syn) = packet::parse_syn(p.bytes) else {
                self.rsts += 1;
                if let (Some(h), Some(r)) = (&mut self.half_open, packet::parse_rst(p.bytes)) {
                    h.remove(&(r.src, r.sport, r.dport));
                }
                continue;
            };
            *self.syns.entry((syn.dst, syn.dport)).or_default() += 1;
            if !self.admit() {
                continue;
            }
            let answer = (self.truth)(syn.dst, syn.dport);
            if let (Some(h), Some(Answer::SynAck)) = (&mut self.half_open, answer) {
                match h.get(&(syn.dst, syn.dport, syn.sport)) {
                    Some(seq) if *seq != syn.seq => continue,
                    _ => {
                        h.insert((syn.dst, syn.dport, syn.sport), syn.seq);
                    }
                }
            }
            if let Some(answer) = answer {
                let mut buf = [0u8; 256];
                if let Some(n) = packet::build_answer(&mut buf, p.bytes, answer) {
                    self.queue.push(self.now + self.latency, buf[..n].to_vec());
                }
            }
        }
        Ok(batch.len())
    }

    fn poll(&mut self, out: &mut Vec<Received>) -> io::Result<()> {
        self.deliver(out);
        Ok(())
    }

    fn recv(&mut self, timeout: Duration, out: &mut Vec<Received>) -> io::Result<()> {
        let before = out.len();
        self.deliver(out);
        if out.len() == before {
            // Nothing ready: jump the virtual clock to the next arrival or
            // the time-out, whichever is first (at least 1 µs so a caller
            // polling with a zero time-out still sees time pass).
            let mut target = self.now + timeout.max(Duration::from_micros(1));
            if let Some(t) = self.queue.next_at() {
                target = target.min(t).max(self.now);
            }
            self.now = target;
            self.deliver(out);
        }
        Ok(())
    }
}

/// Fault-injecting wrapper: seeded loss on the way out and back,
/// duplication, and delay (which also reorders); and local refusals, as
/// the kernel gives them: destinations without a route (`local_addr` says
/// none), destinations every send to which fails with `refuse_errno`
/// (EPERM from a local firewall, ENETUNREACH, EADDRNOTAVAIL…), and
/// transient ENOBUFS in the middle of a batch.
pub struct Faulty<I> {
    pub inner: I,
    rng: SplitMix,
    seed: u64,
    pub loss_out: f64,
    pub loss_in: f64,
    pub dup: f64,
    pub delay: f64,
    pub max_delay: Duration,
    /// Share of destinations with no local route.
    pub no_route: f64,
    /// Share of destinations whose packets the kernel refuses.
    pub refuse_dst: f64,
    pub refuse_errno: i32,
    /// Chance, per packet, that the send stops there with ENOBUFS.
    pub send_nobufs: f64,
    held: Vec<Received>,
}

impl<I: PacketIo> Faulty<I> {
    pub fn new(inner: I, seed: u64) -> Faulty<I> {
        Faulty {
            inner,
            rng: SplitMix::new(seed),
            seed,
            loss_out: 0.0,
            loss_in: 0.0,
            dup: 0.0,
            delay: 0.0,
            max_delay: Duration::from_millis(20),
            no_route: 0.0,
            refuse_dst: 0.0,
            refuse_errno: libc::EPERM,
            send_nobufs: 0.0,
            held: Vec::new(),
        }
    }

    /// Whether `dst` falls in the share `p` for fault `kind`: a property
    /// of the destination (seeded), not of the moment.
    pub fn dst_in(&self, kind: u64, p: f64, dst: IpAddr) -> bool {
        let a = match dst {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => (u128::from(a) as u64) ^ ((u128::from(a) >> 64) as u64),
        };
        let mut r = SplitMix::new(self.seed ^ kind.wrapping_mul(0x9e37_79b9) ^ a);
        r.next_u64();
        r.chance(p)
    }

    pub fn refuses(&self, dst: IpAddr) -> bool {
        self.dst_in(1, self.refuse_dst, dst)
    }

    pub fn unroutable(&self, dst: IpAddr) -> bool {
        self.dst_in(2, self.no_route, dst)
    }
}

impl<I: PacketIo> PacketIo for Faulty<I> {
    fn now(&self) -> Duration {
        self.inner.now()
    }

    fn local_addr(&mut self, target: IpAddr) -> Option<IpAddr> {
        if self.unroutable(target) {
            return None;
        }
        self.inner.local_addr(target)
    }

    fn send(&mut self, batch: &[OutPacket<'_>]) -> io::Result<usize> {
        // Like sendmmsg: the packets before the first refused one go out
        // and are counted; a refusal of the very first is the call's error.
        let mut n = batch.len();
        let mut refusal = None;
        for (i, p) in batch.iter().enumerate() {
            let errno = if self.refuses(p.dst) {
                Some(self.refuse_errno)
            } else if self.rng.chance(self.send_nobufs) {
                Some(libc::ENOBUFS)
            } else {
                None
            };
            if let Some(e) = errno {
                n = i;
                refusal = Some(io::Error::from_raw_os_error(e));
                break;
            }
        }
        if n == 0
            && let Some(e) = refusal
        {
            return Err(e);
        }
        let kept: Vec<OutPacket<'_>> = batch[..n]
            .iter()
            .copied()
            .filter(|_| !self.rng.chance(self.loss_out))
            .collect();
        self.inner.send(&kept)?;
        Ok(n)
    }

    fn poll(&mut self, out: &mut Vec<Received>) -> io::Result<()> {
        let mut fresh = Vec::new();
        self.inner.poll(&mut fresh)?;
        self.pass(fresh, out);
        Ok(())
    }

    fn recv(&mut self, timeout: Duration, out: &mut Vec<Received>) -> io::Result<()> {
        let now = self.inner.now();
        let mut wait = timeout;
        if let Some(first) = self.held.iter().map(|r| r.at).min() {
            wait = wait.min(first.saturating_sub(now));
        }
        let mut fresh = Vec::new();
        self.inner.recv(wait, &mut fresh)?;
        self.pass(fresh, out);
        Ok(())
    }
}

impl<I: PacketIo> Faulty<I> {
    /// Applies loss, duplication and delay to fresh replies and releases
    /// the held ones that are due.
    fn pass(&mut self, fresh: Vec<Received>, out: &mut Vec<Received>) {
        let now = self.inner.now();
        for r in fresh {
            if self.rng.chance(self.loss_in) {
                continue;
            }
            let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
            for _ in 0..copies {
                if self.rng.chance(self.delay) {
                    let d = self
                        .max_delay
                        .mul_f64((self.rng.next_u64() % 1000) as f64 / 1000.0);
                    self.held.push(Received {
                        reply: r.reply,
                        at: now + d,
                    });
                } else {
                    out.push(r);
                }
            }
        }
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].at <= now {
                out.push(self.held.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }
}
