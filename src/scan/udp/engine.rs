//! Scan layer, schedule and control loop of the UDP engine.
//!
//! The UDP layer on the raw core ([`crate::scan::raw::engine`], which
//! walks the seeded permutation and paces, sends and retries): each pair
//! gets its protocol payload from a source port the keyed hash chose, and
//! is concluded exactly once: a UDP answer is open, the target's ICMP port
//! unreachable closed, any other unreachable filtered, and silence after
//! every try open|filtered.
//!
//! What makes UDP slow elsewhere is the targets' ICMP error limiter
//! (Linux: about one per second per peer after a burst of six): a closed
//! port whose "port unreachable" the limiter ate looks exactly like an
//! open|filtered one. So retries to a host that has shown it answers with
//! ICMP are paced by a model of that host's limiter (a token bucket that
//! starts at Linux's defaults and is raised when the host proves faster),
//! spaced a little beyond its refill, priority (high-risk) ports first and
//! with one try more; hosts that never sent an ICMP error get plain
//! time-out retries. Pacing is per host, so the global rate stays high
//! while many hosts are scanned at once.
//!
//! A host's paced retries go on for as long as its silent ports need them
//! (a Linux host answers about one closed port a second, so 1,000 ports
//! take about 17 minutes, on every host at once), bounded by the host
//! time-out. Two things end them early: the time-out, and a host whose
//! paced tries go unanswered many times in a row (it drops, rather than
//! limits). Pairs concluded open|filtered that way, before their tries were
//! spent, are counted as undecided in the summary rather than passed off as
//! verified silence.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use super::packet::{self, MAX_PROBE_LEN, UdpProbe, UdpReply, UdpReplyKind};
use crate::model::{Observation, Proto, Reason, ScanEvent, ServiceInfo};
use crate::scan::raw::cookie::MAX_TRIES;
use crate::scan::raw::engine::{self as core_engine, Core, Pacing, ProbeArgs, Protocol, Space};
use crate::scan::raw::io::{PacketIo, Received};
use crate::scan::raw::pacing::TokenBucket;
use crate::scan::raw::schedule::{Key, ResumeState, ScheduleConfig};
use crate::scan::{ScanError, ScanSummary};

/// UDP engine settings (built from [`crate::scan::ScanConfig`]).
#[derive(Debug, Clone)]
pub struct UdpEngineConfig {
    pub schedule: ScheduleConfig,
    /// Global cap, probes per second.
    pub rate: u64,
    /// The ICMP limiter assumed for a host until it proves faster:
    /// refill per second and burst (Linux: 1/s, 6).
    pub icmp_rate: f64,
    pub icmp_burst: f64,
    /// Share of the assumed refill rate that paced retries use (< 1 spaces
    /// them beyond the refill).
    pub pacing_margin: f64,
    /// Paced retries to one host stop this long after its first probe;
    /// what is still silent then is open|filtered and counted undecided.
    pub host_timeout: Duration,
    /// A host whose paced tries went unanswered this many times in a row
    /// drops rather than limits: its remaining silent pairs are concluded
    /// (open|filtered, undecided) instead of being paced further.
    pub give_up_after: u32,
    /// Ports (sorted) whose silent pairs get one paced try more and are
    /// retried first: the high-risk ones.
    pub priority: Vec<u16>,
}

impl Default for UdpEngineConfig {
    fn default() -> Self {
        UdpEngineConfig {
            schedule: ScheduleConfig::default(),
            rate: 20_000,
            icmp_rate: 1.0,
            icmp_burst: 6.0,
            pacing_margin: 0.9,
            host_timeout: DEFAULT_HOST_TIMEOUT,
            give_up_after: 12,
            priority: Vec::new(),
        }
    }
}

/// Default bound on one host's paced retries: enough for 1,000 ports
/// behind Linux's limiter (about 17 minutes), with room to spare.
pub const DEFAULT_HOST_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The (address × port) space and the payload each port gets.
pub struct UdpSpace<'a> {
    pub pairs: Space<'a>,
    pub payload: &'a dyn Fn(u16) -> &'a [u8],
    /// Turns an answer into what identification can say about it.
    pub describe: &'a dyn Fn(u16, &[u8]) -> Option<ServiceInfo>,
}

/// What the engine hands back besides its events.
#[derive(Debug, Default)]
pub struct UdpOutcome {
    pub summary: ScanSummary,
    pub resume: Option<ResumeState>,
    /// Replies that matched no probe of ours.
    pub invalid: u64,
    /// Valid replies for pairs already concluded.
    pub duplicates: u64,
    /// Retries released by a host's limiter model.
    pub paced_retries: u64,
    /// Hosts whose paced retries were ended early: by the host time-out,
    /// or because they stopped answering paced tries.
    pub hosts_cut_short: u64,
}

/// What the engine knows about one target.
struct Host {
    first: Duration,
    /// ICMP errors and UDP answers received.
    icmp: u32,
    data: u32,
    first_icmp: Option<Duration>,
    /// The model of the host's ICMP limiter.
    model: TokenBucket,
    /// Silent pairs waiting for a token of the model.
    waiting: VecDeque<Key>,
    slot_scheduled: bool,
    inflight: u32,
    /// Paced tries unanswered in a row, and answered in all.
    misses: u32,
    paced_answered: u32,
    /// Paced retries ended (time-out or `give_up_after`).
    cut_short: bool,
}

/// Upper bound of a host's modelled ICMP refill (per second).
const MAX_ICMP_RATE: f64 = 10_000.0;
/// Factor a host's modelled refill grows by per answered paced try.
const PACED_CLIMB: f64 = 1.02;

/// Every token sent at once, batches of up to 32; no bound on pairs in
/// flight (silent pairs wait for their host's limiter).
const PACING: Pacing = Pacing {
    batch_max: 32,
    full_batches: false,
    min_wait: Duration::from_micros(5),
    max_inflight: usize::MAX,
    max_requeue: usize::MAX,
};

/// The UDP layer: payloads, per-host limiter models and paced retries.
struct Udp<'c, 's> {
    cfg: &'c UdpEngineConfig,
    space: &'c UdpSpace<'s>,
    slots: BinaryHeap<Reverse<(Duration, IpAddr)>>,
    /// Plain retries held back until a limiter refill has surely passed.
    held: BinaryHeap<Reverse<(Duration, Key)>>,
    hosts: HashMap<IpAddr, Host>,
    paced: u64,
    cut_short: u64,
}

/// Runs a UDP scan over `io` and emits one observation per concluded pair.
pub fn run(
    io: &mut dyn PacketIo<Reply = UdpReply>,
    space: &UdpSpace<'_>,
    cfg: &UdpEngineConfig,
    emit: &mut dyn FnMut(ScanEvent),
) -> Result<UdpOutcome, ScanError> {
    let rate = (cfg.rate.max(1) as f64, PACING);
    let mut core = Core::new(
        io,
        &space.pairs,
        &cfg.schedule,
        emit,
        "UDP ports",
        rate,
        MAX_PROBE_LEN,
    )?;
    let mut udp = Udp {
        cfg,
        space,
        slots: BinaryHeap::new(),
        held: BinaryHeap::new(),
        hosts: HashMap::new(),
        paced: 0,
        cut_short: 0,
    };
    let end = core_engine::run(&mut core, &mut udp)?;
    Ok(UdpOutcome {
        summary: end.summary,
        resume: end.resume,
        invalid: core.invalid,
        duplicates: core.duplicates,
        paced_retries: udp.paced,
        hosts_cut_short: udp.cut_short,
    })
}

impl Protocol for Udp<'_, '_> {
    type Reply = UdpReply;
    const PROTO: Proto = Proto::Udp;
    const MAX_PROBE: usize = MAX_PROBE_LEN;

    fn build(&mut self, p: &ProbeArgs, buf: &mut [u8]) -> Option<usize> {
        let probe = UdpProbe {
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            ip_id: p.ip_id,
            payload: (self.space.payload)(p.dport),
        };
        packet::build_udp(buf, &probe)
    }

    fn on_start(&mut self, key: Key, now: Duration) {
        let cfg = self.cfg;
        let h = self.hosts.entry(key.0).or_insert_with(|| Host {
            first: now,
            icmp: 0,
            data: 0,
            first_icmp: None,
            model: TokenBucket::new(cfg.icmp_rate.max(0.01), cfg.icmp_burst.max(1.0), now),
            waiting: VecDeque::new(),
            slot_scheduled: false,
            inflight: 0,
            misses: 0,
            paced_answered: 0,
            cut_short: false,
        });
        h.inflight += 1;
    }

    fn on_reply(&mut self, core: &mut Core<'_, UdpReply>, r: Received<UdpReply>) {
        let key = (r.reply.target, r.reply.target_port);
        let Some((t, p)) = core.accept(r.reply.local, key, r.reply.local_port, None) else {
            return;
        };
        let rtt = core.answered(t, &p, r.at);
        let latest = t + 1 == p.tries;
        if p.paced
            && latest
            && let Some(h) = self.hosts.get_mut(&key.0)
        {
            h.misses = 0;
            h.paced_answered += 1;
        }
        let (reason, service) = match &r.reply.kind {
            UdpReplyKind::Data(bytes) => {
                if let Some(h) = self.hosts.get_mut(&key.0) {
                    h.data += 1;
                }
                (Reason::UdpResponse, (self.space.describe)(key.1, bytes))
            }
            UdpReplyKind::Unreachable(reason) => {
                // Every destination unreachable a host sends, "port" or
                // "prohibited", comes out of the same limiter.
                self.learn_limit(key.0, r.at, !p.paced);
                if p.paced && latest {
                    // The paced try was answered: probe a slightly faster
                    // refill. Slowly, because overshooting costs a try (an
                    // unanswered one halves the rate again).
                    if let Some(h) = self.hosts.get_mut(&key.0) {
                        h.model.rate = (h.model.rate * PACED_CLIMB).min(MAX_ICMP_RATE);
                    }
                }
                (*reason, None)
            }
        };
        if let Some(mut o) = core.finish(key, Proto::Udp, reason, rtt, p.tries) {
            o.service = service;
            self.concluded(core, o);
        }
    }

    fn on_timeout(&mut self, core: &mut Core<'_, UdpReply>, key: Key, now: Duration) {
        let Some(p) = core.inflight.get(&key).copied() else {
            return;
        };
        let allowed = self.allowed_tries(key, core.base_tries());
        let margin = self.cfg.pacing_margin;
        let floor = self.cfg.icmp_rate.max(0.01);
        let Some(h) = self.hosts.get_mut(&key.0) else {
            return;
        };
        if p.paced {
            // A paced try went unanswered: the port may be dropped, or the
            // model ran ahead of the real limiter. Back off. Before any
            // paced try was answered the model's burst is a guess (an
            // earlier scan may have spent the real one): empty it, so the
            // next tries wait for a refill the limiter surely has.
            h.model.rate = (h.model.rate / 2.0).max(floor);
            if h.paced_answered == 0 {
                h.model.refill(now, margin);
                h.model.tokens = h.model.tokens.min(0.0);
            }
            h.misses += 1;
        } else if h.icmp > 0 && f64::from(h.icmp) < h.model.burst {
            // A plain try went unanswered by a host that answers with ICMP
            // errors but has not shown a whole burst: the port may be
            // dropped, or the real bucket is emptier than the model's (a
            // resumed scan, or an earlier scan, spent it). Trust no burst:
            // the next paced tries wait for a refill.
            h.model.refill(now, margin);
            h.model.tokens = h.model.tokens.min(0.0);
        }
        if p.tries >= allowed {
            core_engine::conclude(core, self, key, Reason::NoResponse, None, p.tries);
        } else if h.icmp == 0 {
            // No ICMP error from this host yet: it may drop, or its limiter
            // may be empty (an earlier scan spent it, or a resumed scan's
            // first tries fell in it). Retry once a refill has surely
            // passed, so a closed port can show.
            let at = p.last_sent + Duration::from_secs_f64(1.0 / (floor * margin).max(1e-3));
            if at <= now {
                core.resend.push_back(key);
            } else {
                self.held.push(Reverse((at, key)));
            }
        } else if h.cut_short
            || h.misses >= self.cfg.give_up_after.max(1)
            || now.saturating_sub(h.first) >= self.cfg.host_timeout
        {
            self.conclude_undecided(core, key, p.tries);
            self.cut_host_short(core, key.0);
        } else {
            // The limiter may have eaten the answer: wait for a token.
            if self.cfg.priority.binary_search(&key.1).is_ok() {
                h.waiting.push_front(key);
            } else {
                h.waiting.push_back(key);
            }
            if !h.slot_scheduled {
                h.model.refill(now, margin);
                h.slot_scheduled = true;
                self.slots
                    .push(Reverse((h.model.next_token(now, margin), key.0)));
            }
        }
    }

    fn concluded(&mut self, core: &mut Core<'_, UdpReply>, o: Observation) {
        let many = self.hosts.len() > 65_536;
        if let Some(h) = self.hosts.get_mut(&o.ip) {
            h.inflight = h.inflight.saturating_sub(1);
            // Hosts are kept while they may still get pairs (their ports
            // are spread over the whole permutation) only when few: a big
            // space forgets idle hosts and relearns them.
            if h.inflight == 0 && h.waiting.is_empty() && many {
                self.hosts.remove(&o.ip);
            }
        }
        (core.emit)(ScanEvent::Observation(o));
    }

    fn release(&mut self, core: &mut Core<'_, UdpReply>, now: Duration) {
        self.release_held(core, now);
        self.release_slots(core, now);
    }

    fn has_work(&self) -> bool {
        !self.slots.is_empty() || !self.held.is_empty()
    }

    fn wake_at(&self) -> Option<Duration> {
        let held = self.held.peek().map(|Reverse((t, _))| *t);
        let slot = self.slots.peek().map(|Reverse((t, _))| *t);
        match (held, slot) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Udp<'_, '_> {
    /// Tries a pair may get: the configured count; for a host known to
    /// send ICMP errors (whose limiter may have hidden a "closed") paced
    /// tries more (priority ports get theirs first): two while the host's
    /// model is unproven (one may be lost to a model that ran ahead of the
    /// real limiter), one once a paced try of the host was answered (a
    /// paced try unanswered then means a dropped port, and every extra try
    /// of a dropped port costs a refill of the host's limiter).
    fn allowed_tries(&self, key: Key, base: u8) -> u8 {
        match self.hosts.get(&key.0) {
            Some(h) if h.icmp > 0 => {
                let extra = if h.paced_answered > 0 { 1 } else { 2 };
                (base + extra).min(MAX_TRIES)
            }
            _ => base,
        }
    }

    /// Hands held plain retries to the sender when they are due.
    fn release_held(&mut self, core: &mut Core<'_, UdpReply>, now: Duration) {
        while let Some(Reverse((at, key))) = self.held.peek().copied() {
            if at > now {
                break;
            }
            self.held.pop();
            if core.inflight.contains_key(&key) {
                core.resend.push_back(key);
            }
        }
    }

    /// Hands retries to the sender as the hosts' limiter models refill.
    fn release_slots(&mut self, core: &mut Core<'_, UdpReply>, now: Duration) {
        let margin = self.cfg.pacing_margin;
        // Slots due now are taken first, so one rescheduled for "now" waits
        // for the next round instead of spinning here.
        let mut due = Vec::new();
        while let Some(Reverse((at, addr))) = self.slots.peek().copied() {
            if at > now {
                break;
            }
            self.slots.pop();
            due.push(addr);
        }
        for addr in due {
            let Some(h) = self.hosts.get_mut(&addr) else {
                continue;
            };
            h.slot_scheduled = false;
            if now.saturating_sub(h.first) >= self.cfg.host_timeout {
                self.cut_host_short(core, addr);
                continue;
            }
            h.model.refill(now, margin);
            while h.model.tokens >= 1.0 {
                let Some(key) = h.waiting.pop_front() else {
                    break;
                };
                let Some(p) = core.inflight.get_mut(&key) else {
                    continue;
                };
                // Charged now, so the ICMP it draws is not charged again.
                h.model.tokens -= 1.0;
                p.paced = true;
                core.resend.push_back(key);
                self.paced += 1;
            }
            if !h.waiting.is_empty() {
                h.slot_scheduled = true;
                self.slots
                    .push(Reverse((h.model.next_token(now, margin), addr)));
            }
        }
    }

    /// An ICMP error came: the host answers with them. When it sends more
    /// than the model allows, its limiter is looser than assumed: raise
    /// the model to what it showed.
    fn learn_limit(&mut self, addr: IpAddr, at: Duration, charge: bool) {
        let margin = self.cfg.pacing_margin;
        let Some(h) = self.hosts.get_mut(&addr) else {
            return;
        };
        h.icmp += 1;
        let m = &mut h.model;
        if charge {
            // The host spent a token of its real bucket on this answer
            // (suppressed answers spend none, so only what arrives counts).
            m.refill(at, margin);
            m.tokens -= 1.0;
        }
        let first = *h.first_icmp.get_or_insert(at);
        let span = at.saturating_sub(first).as_secs_f64();
        let allowed = m.burst + span * m.rate + 1.0;
        if f64::from(h.icmp) > allowed {
            m.burst = m.burst.max(f64::from(h.icmp));
            m.rate = (m.rate * 2.0).max(f64::from(h.icmp) / span.max(0.05));
            m.tokens = m.tokens.max(1.0);
        }
    }

    /// Ends a host's paced retries: its waiting pairs are concluded
    /// undecided (pairs with a try in flight follow when it times out).
    fn cut_host_short(&mut self, core: &mut Core<'_, UdpReply>, addr: IpAddr) {
        let Some(h) = self.hosts.get_mut(&addr) else {
            return;
        };
        if !h.cut_short {
            h.cut_short = true;
            self.cut_short += 1;
        }
        let waiting = std::mem::take(&mut h.waiting);
        for k in waiting {
            let t = core.inflight.get(&k).map_or(0, |p| p.tries);
            self.conclude_undecided(core, k, t);
        }
    }

    /// Concludes a silent pair whose tries were not spent (its host's
    /// paced retries ended): open|filtered, counted undecided.
    fn conclude_undecided(&mut self, core: &mut Core<'_, UdpReply>, key: Key, tries: u8) {
        if core.inflight.contains_key(&key) {
            core.summary.udp_undecided += 1;
            core_engine::conclude(core, self, key, Reason::NoResponse, None, tries);
        }
    }
}
