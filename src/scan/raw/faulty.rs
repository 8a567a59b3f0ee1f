//! Scan layer, raw packets: the seeded fault injector every engine's
//! tests wrap their network in ([`Faulty`]), and its generator.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use super::io::{OutPacket, PacketIo, Received};

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

/// Fault-injecting wrapper: seeded loss on the way out and back,
/// duplication, and delay (which also reorders); and local refusals, as
/// the kernel gives them: destinations without a route (`local_addr` says
/// none), destinations every send to which fails with `refuse_errno`
/// (EPERM from a local firewall, ENETUNREACH, EADDRNOTAVAIL…), and
/// transient ENOBUFS in the middle of a batch.
pub struct Faulty<I: PacketIo> {
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
    held: Vec<Received<I::Reply>>,
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

    /// The network faults of the property tests: `loss` each way, 20% of
    /// the answers duplicated, 20% delayed (reordered).
    pub fn lossy(inner: I, seed: u64, loss: f64) -> Faulty<I> {
        Faulty {
            loss_out: loss,
            loss_in: loss,
            dup: 0.2,
            delay: 0.2,
            ..Faulty::new(inner, seed)
        }
    }

    /// The local refusals of the property tests: no route to 15% of the
    /// destinations, every packet to 20% refused with `errno`, 2% ENOBUFS
    /// mid-batch; 10% of the answers duplicated, 10% delayed.
    pub fn refusing(inner: I, seed: u64, errno: i32) -> Faulty<I> {
        Faulty {
            dup: 0.1,
            delay: 0.1,
            no_route: 0.15,
            refuse_dst: 0.2,
            refuse_errno: errno,
            send_nobufs: 0.02,
            ..Faulty::new(inner, seed)
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

impl<I: PacketIo> PacketIo for Faulty<I>
where
    I::Reply: Clone,
{
    type Reply = I::Reply;

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

    fn poll(&mut self, out: &mut Vec<Received<I::Reply>>) -> io::Result<()> {
        let mut fresh = Vec::new();
        self.inner.poll(&mut fresh)?;
        self.pass(fresh, out);
        Ok(())
    }

    fn recv(&mut self, timeout: Duration, out: &mut Vec<Received<I::Reply>>) -> io::Result<()> {
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

impl<I: PacketIo> Faulty<I>
where
    I::Reply: Clone,
{
    /// Applies loss, duplication and delay to fresh replies and releases
    /// the held ones that are due.
    fn pass(&mut self, fresh: Vec<Received<I::Reply>>, out: &mut Vec<Received<I::Reply>>) {
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
                        reply: r.reply.clone(),
                        at: now + d,
                    });
                } else {
                    out.push(r.clone());
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
