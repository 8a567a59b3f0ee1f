//! Scan layer, raw packets: an in-memory network on a virtual clock, for
//! the engines' tests.
//!
//! [`FakeNet`] is the protocol-neutral part (the clock, the local
//! addresses, the latency and the queue of answers on their way back); a
//! [`Responder`] plays the targets of one protocol: it reads each probe the
//! scanner sent and says what comes back, from a ground-truth table and
//! with the rate limiters real targets and firewalls have
//! ([`TokenBucket`]). Wrapped in [`super::faulty::Faulty`] it also loses,
//! duplicates, delays and refuses packets, for every engine alike.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::io::{FromWire, OutPacket, PacketIo, Received};
pub use super::pacing::TokenBucket;

/// The targets of a fake network, for one protocol.
pub trait Responder {
    type Reply: FromWire;
    /// Takes one packet the scanner sent at `now`; returns the packet
    /// that comes back (from its IP header on), if any.
    fn answer(&mut self, now: Duration, pkt: &[u8]) -> Option<Vec<u8>>;
}

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

/// An in-memory network on a virtual clock: each probe is answered by the
/// responder `targets` after `latency`. Dereferences to the responder, so
/// its counters read as the network's.
pub struct FakeNet<T> {
    now: Duration,
    local4: IpAddr,
    local6: IpAddr,
    latency: Duration,
    queue: Arrivals,
    pub targets: T,
}

impl<T: Responder> FakeNet<T> {
    pub fn with_targets(targets: T) -> FakeNet<T> {
        FakeNet {
            now: Duration::ZERO,
            local4: "198.18.0.1".parse().expect("literal"),
            local6: "2001:2::1".parse().expect("literal"),
            latency: Duration::from_micros(500),
            queue: Arrivals::default(),
            targets,
        }
    }

    pub fn with_latency(mut self, latency: Duration) -> FakeNet<T> {
        self.latency = latency;
        self
    }

    fn deliver(&mut self, out: &mut Vec<Received<T::Reply>>) {
        while let Some((t, bytes)) = self.queue.pop_due(self.now) {
            if let Some(reply) = T::Reply::parse(&bytes) {
                out.push(Received { reply, at: t });
            }
        }
    }
}

impl<T> Deref for FakeNet<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.targets
    }
}

impl<T> DerefMut for FakeNet<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.targets
    }
}

impl<T: Responder> PacketIo for FakeNet<T> {
    type Reply = T::Reply;

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
            if let Some(answer) = self.targets.answer(self.now, p.bytes) {
                self.queue.push(self.now + self.latency, answer);
            }
        }
        Ok(batch.len())
    }

    fn poll(&mut self, out: &mut Vec<Received<T::Reply>>) -> io::Result<()> {
        self.deliver(out);
        Ok(())
    }

    fn recv(&mut self, timeout: Duration, out: &mut Vec<Received<T::Reply>>) -> io::Result<()> {
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
