//! Scan layer, the SYN engine's targets on the fake network.
//!
//! The I/O seam, the fault injector and the fake network are the raw
//! core's ([`crate::scan::raw`]); this is the TCP part of the fake: targets
//! that answer each SYN from a ground-truth table, an optional SYN rate
//! limiter (a firewall's `limit rate over`), and Linux's half-open
//! connection state that ignores a second SYN on the same 4-tuple.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::packet::{self, Answer, Reply};
pub use crate::scan::raw::fake::{Responder, TokenBucket};
pub use crate::scan::raw::faulty::Faulty;
pub use crate::scan::raw::io::PacketIo;

/// Ground truth of the fake network: how a target answers a SYN to a port
/// (`None`: silently dropped).
pub type Truth = Box<dyn Fn(IpAddr, u16) -> Option<Answer> + Send>;

/// The fake network with TCP targets.
pub type FakeNet = crate::scan::raw::fake::FakeNet<TcpTargets>;

/// Targets answering SYNs.
pub struct TcpTargets {
    truth: Truth,
    limiter: Option<TokenBucket>,
    /// SYNs received per (target, port), retries included.
    pub syns: HashMap<(IpAddr, u16), u32>,
    /// RSTs the scanner sent (answers to SYN-ACKs).
    pub rsts: u64,
    /// Half-open connections (target, port, source port) → sequence, kept
    /// like a Linux target does after sending a SYN-ACK until a RST comes.
    half_open: Option<HashMap<(IpAddr, u16, u16), u32>>,
}

impl FakeNet {
    pub fn new(truth: Truth) -> FakeNet {
        FakeNet::with_targets(TcpTargets {
            truth,
            limiter: None,
            syns: HashMap::new(),
            rsts: 0,
            half_open: None,
        })
    }

    /// Behaves like a Linux target with a half-open connection: a second
    /// SYN on the same 4-tuple with another sequence is silently ignored.
    pub fn with_half_open_state(mut self) -> FakeNet {
        self.targets.half_open = Some(HashMap::new());
        self
    }

    /// Drops SYNs beyond `rate` per second (bucket of `burst`), like an
    /// nftables `limit rate over` rule.
    pub fn with_syn_limit(mut self, rate: f64, burst: f64) -> FakeNet {
        self.targets.limiter = Some(TokenBucket::new(rate, burst, Duration::ZERO));
        self
    }
}

impl Responder for TcpTargets {
    type Reply = Reply;

    fn answer(&mut self, now: Duration, pkt: &[u8]) -> Option<Vec<u8>> {
        let Some(syn) = packet::parse_syn(pkt) else {
            self.rsts += 1;
            if let (Some(h), Some(r)) = (&mut self.half_open, packet::parse_rst(pkt)) {
                h.remove(&(r.src, r.sport, r.dport));
            }
            return None;
        };
        *self.syns.entry((syn.dst, syn.dport)).or_default() += 1;
        if let Some(l) = &mut self.limiter
            && !l.take(now)
        {
            return None;
        }
        let answer = (self.truth)(syn.dst, syn.dport)?;
        if let (Some(h), Answer::SynAck) = (&mut self.half_open, answer) {
            match h.get(&(syn.dst, syn.dport, syn.sport)) {
                Some(seq) if *seq != syn.seq => return None,
                _ => {
                    h.insert((syn.dst, syn.dport, syn.sport), syn.seq);
                }
            }
        }
        let mut buf = [0u8; 256];
        let n = packet::build_answer(&mut buf, pkt, answer)?;
        Some(buf[..n].to_vec())
    }
}
