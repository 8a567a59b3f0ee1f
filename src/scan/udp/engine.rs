//! Scan layer, schedule and control loop of the UDP engine.
//!
//! It walks the SYN engine's seeded permutation of the (address × port)
//! space (only its shard's positions), sends each pair its protocol
//! payload from a source port the keyed hash chose, and concludes each
//! pair exactly once: a UDP answer is open, the target's ICMP port
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::io::{UdpIo, UdpReceived};
use super::packet::{self, MAX_PROBE_LEN, UdpProbe, UdpReplyKind};
use crate::model::{Observation, Progress, Proto, Reason, ScanEvent, ServiceInfo};
use crate::scan::permute::Permutation;
use crate::scan::syn::cookie::{Cookie, MAX_TRIES};
use crate::scan::syn::engine::{Key, LocalAddrs, ResumeState, Shard, Timer, Walk, is_transient};
use crate::scan::syn::io::OutPacket;
use crate::scan::{ScanError, ScanSummary, TimeoutConfig};

/// UDP engine settings (built from [`crate::scan::ScanConfig`]).
#[derive(Debug, Clone)]
pub struct UdpEngineConfig {
    pub seed: u64,
    pub key: (u64, u64),
    pub sports: (u16, u16),
    /// Extra tries for a silent pair.
    pub retries: u8,
    pub timeout: TimeoutConfig,
    /// Global cap, probes per second.
    pub rate: u64,
    pub shard: Shard,
    pub stop: Option<Arc<AtomicBool>>,
    pub resume: Option<ResumeState>,
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
    pub progress_every: Duration,
}

impl Default for UdpEngineConfig {
    fn default() -> Self {
        UdpEngineConfig {
            seed: 0,
            key: (0x5eed, 0xc0ffee),
            sports: (61000, 65535),
            retries: 1,
            timeout: TimeoutConfig::default(),
            rate: 20_000,
            shard: Shard::default(),
            stop: None,
            resume: None,
            icmp_rate: 1.0,
            icmp_burst: 6.0,
            pacing_margin: 0.9,
            host_timeout: DEFAULT_HOST_TIMEOUT,
            give_up_after: 12,
            priority: Vec::new(),
            progress_every: Duration::from_millis(250),
        }
    }
}

/// Default bound on one host's paced retries: enough for 1,000 ports
/// behind Linux's limiter (about 17 minutes), with room to spare.
pub const DEFAULT_HOST_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The (address × port) space and the payload each port gets.
pub struct UdpSpace<'a> {
    pub n_addrs: u64,
    pub addr_at: &'a dyn Fn(u64) -> Option<IpAddr>,
    pub ports: &'a [u16],
    pub payload: &'a dyn Fn(u16) -> &'a [u8],
    /// Turns an answer into what identification can say about it.
    pub describe: &'a dyn Fn(u16, &[u8]) -> Option<ServiceInfo>,
}

impl UdpSpace<'_> {
    pub fn total(&self) -> u64 {
        self.n_addrs.saturating_mul(self.ports.len() as u64)
    }
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

struct Pending {
    pos: u64,
    tries: u8,
    last_sent: Duration,
    /// The last try was released by the host's limiter model (which
    /// already charged it).
    paced: bool,
}

/// What the engine knows about one target.
struct Host {
    first: Duration,
    /// ICMP errors and UDP answers received.
    icmp: u32,
    data: u32,
    first_icmp: Option<Duration>,
    /// The model of the host's ICMP limiter.
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
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

impl Host {
    fn refill(&mut self, now: Duration, margin: f64) {
        let dt = now.saturating_sub(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate * margin).min(self.burst);
        self.last = now;
    }

    /// When the model will hold a whole token again.
    fn next_token(&self, now: Duration, margin: f64) -> Duration {
        if self.tokens >= 1.0 {
            now
        } else {
            // Never "now" for a fractional token: a zero wait would spin.
            let wait = (1.0 - self.tokens) / (self.rate * margin).max(1e-3);
            now + Duration::from_secs_f64(wait).max(Duration::from_micros(100))
        }
    }
}

struct Engine<'a, 'b> {
    io: &'a mut dyn UdpIo,
    space: &'a UdpSpace<'b>,
    cfg: &'a UdpEngineConfig,
    emit: &'a mut dyn FnMut(ScanEvent),
    cookie: Cookie,
    perm: Permutation,
    nports: u64,
    shard: Shard,
    shard_len: u64,
    next_k: u64,
    requeue: VecDeque<u64>,
    resend: VecDeque<Key>,
    inflight: HashMap<Key, Pending>,
    timers: BinaryHeap<Timer>,
    slots: BinaryHeap<Reverse<(Duration, IpAddr)>>,
    /// Plain retries held back until a limiter refill has surely passed.
    held: BinaryHeap<Reverse<(Duration, Key)>>,
    hosts: HashMap<IpAddr, Host>,
    local: LocalAddrs,
    tokens: f64,
    last_refill: Duration,
    srtt: Option<f64>,
    rttvar: f64,
    ip_id: u32,
    done_before: u64,
    summary: ScanSummary,
    invalid: u64,
    duplicates: u64,
    paced: u64,
    cut_short: u64,
    next_progress: Duration,
    progress_sent: u64,
    progress_at: Duration,
}

const BATCH_MAX: usize = 32;
/// Upper bound of a host's modelled ICMP refill (per second).
const MAX_ICMP_RATE: f64 = 10_000.0;
/// Factor a host's modelled refill grows by per answered paced try.
const PACED_CLIMB: f64 = 1.02;

/// Runs a UDP scan over `io` and emits one observation per concluded pair.
pub fn run(
    io: &mut dyn UdpIo,
    space: &UdpSpace<'_>,
    cfg: &UdpEngineConfig,
    emit: &mut dyn FnMut(ScanEvent),
) -> Result<UdpOutcome, ScanError> {
    let total = space.total();
    let Walk {
        seed,
        shard,
        next_k,
        shard_len,
        requeue,
        done_before,
    } = Walk::plan(total, cfg.seed, cfg.shard, cfg.resume.as_ref(), "UDP ports")?;
    let now = io.now();
    let mut e = Engine {
        io,
        space,
        cfg,
        emit,
        cookie: Cookie::new(cfg.key, cfg.sports),
        perm: Permutation::new(total, seed),
        nports: space.ports.len() as u64,
        shard,
        shard_len,
        next_k,
        done_before,
        requeue,
        resend: VecDeque::new(),
        inflight: HashMap::new(),
        timers: BinaryHeap::new(),
        slots: BinaryHeap::new(),
        held: BinaryHeap::new(),
        hosts: HashMap::new(),
        local: LocalAddrs::default(),
        tokens: 1.0,
        last_refill: now,
        srtt: None,
        rttvar: 0.0,
        ip_id: (cfg.key.1 as u32) ^ 0x7a7a,
        summary: ScanSummary::default(),
        invalid: 0,
        duplicates: 0,
        paced: 0,
        cut_short: 0,
        next_progress: now + cfg.progress_every,
        progress_sent: 0,
        progress_at: now,
    };
    e.run(now, seed)
}

impl Engine<'_, '_> {
    fn run(&mut self, start: Duration, seed: u64) -> Result<UdpOutcome, ScanError> {
        let mut rx: Vec<UdpReceived> = Vec::with_capacity(256);
        let mut stopping: Option<Duration> = None;
        loop {
            rx.clear();
            self.io.recv(Duration::ZERO, &mut rx)?;
            for r in rx.drain(..) {
                self.on_reply(r);
            }
            let now = self.io.now();
            if stopping.is_none()
                && self
                    .cfg
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                stopping = Some(now + self.timeout());
            }
            self.expire(now, stopping.is_some());
            if stopping.is_none() {
                self.release_held(now);
                self.release_slots(now);
                self.send_some(now)?;
            }
            let work_left = self.has_work();
            match stopping {
                Some(end) if self.inflight.is_empty() || now >= end => break,
                None if !work_left && self.inflight.is_empty() => break,
                _ => {}
            }
            let mut until = self.next_progress;
            if let Some(t) = self.timers.peek() {
                until = until.min(t.at);
            }
            if let Some(Reverse((t, _))) = self.held.peek() {
                until = until.min(*t);
            }
            if let Some(Reverse((t, _))) = self.slots.peek() {
                until = until.min(*t);
            }
            if let Some(end) = stopping {
                until = until.min(end);
            } else if !self.resend.is_empty()
                || !self.requeue.is_empty()
                || self.next_k < self.shard_len
            {
                let need = (1.0 - self.tokens).max(0.0);
                // At least a few microseconds: a rounding-zero wait on a
                // virtual clock would never let time (and tokens) advance.
                let dt = Duration::from_secs_f64(need / self.cfg.rate.max(1) as f64);
                until = until.min(now + dt.max(Duration::from_micros(5)));
            }
            let wait = until.saturating_sub(now).min(Duration::from_millis(50));
            rx.clear();
            self.io.recv(wait, &mut rx)?;
            for r in rx.drain(..) {
                self.on_reply(r);
            }
            let now = self.io.now();
            if now >= self.next_progress {
                self.progress(now);
            }
        }
        let end = self.io.now();
        let resume = stopping.map(|_| {
            let mut outstanding: Vec<u64> = self.inflight.values().map(|p| p.pos).collect();
            outstanding.extend(self.requeue.iter().copied());
            outstanding.sort_unstable();
            ResumeState {
                version: 1,
                seed,
                shard: self.shard,
                total: self.space.total(),
                next: self.next_k,
                outstanding,
            }
        });
        self.progress(end);
        let mut summary = std::mem::take(&mut self.summary);
        summary.elapsed = end.saturating_sub(start);
        summary.rate = if summary.elapsed.is_zero() {
            0.0
        } else {
            summary.sent as f64 / summary.elapsed.as_secs_f64()
        };
        summary.interrupted = resume.is_some();
        Ok(UdpOutcome {
            summary,
            resume,
            invalid: self.invalid,
            duplicates: self.duplicates,
            paced_retries: self.paced,
            hosts_cut_short: self.cut_short,
        })
    }

    fn timeout(&self) -> Duration {
        let t = &self.cfg.timeout;
        match self.srtt {
            None => t.initial,
            Some(s) => Duration::from_secs_f64(s + 4.0 * self.rttvar).clamp(t.min, t.max),
        }
    }

    fn has_work(&self) -> bool {
        !self.resend.is_empty()
            || !self.requeue.is_empty()
            || self.next_k < self.shard_len
            || !self.slots.is_empty()
            || !self.held.is_empty()
    }

    fn is_priority(&self, port: u16) -> bool {
        self.cfg.priority.binary_search(&port).is_ok()
    }

    /// Tries a pair may get: the configured count; for a host known to
    /// send ICMP errors (whose limiter may have hidden a "closed") paced
    /// tries more (priority ports get theirs first): two while the host's
    /// model is unproven (one may be lost to a model that ran ahead of the
    /// real limiter), one once a paced try of the host was answered (a
    /// paced try unanswered then means a dropped port, and every extra try
    /// of a dropped port costs a refill of the host's limiter).
    fn allowed_tries(&self, key: Key) -> u8 {
        let base = self.cfg.retries.saturating_add(1).clamp(1, MAX_TRIES);
        match self.hosts.get(&key.0) {
            Some(h) if h.icmp > 0 => {
                let extra = if h.paced_answered > 0 { 1 } else { 2 };
                (base + extra).min(MAX_TRIES)
            }
            _ => base,
        }
    }

    fn expire(&mut self, now: Duration, stopping: bool) {
        while let Some(&Timer { at, key, tries }) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(p) = self.inflight.get(&key) else {
                continue;
            };
            if p.tries != tries || stopping {
                continue;
            }
            let tries = p.tries;
            let allowed = self.allowed_tries(key);
            let margin = self.cfg.pacing_margin;
            let host_timeout = self.cfg.host_timeout;
            let give_up_after = self.cfg.give_up_after.max(1);
            let prio = self.is_priority(key.1);
            let paced = p.paced;
            let p_last = p.last_sent;
            let floor = self.cfg.icmp_rate.max(0.01);
            let Some(h) = self.hosts.get_mut(&key.0) else {
                continue;
            };
            if paced {
                // A paced try went unanswered: the port may be dropped, or
                // the model ran ahead of the real limiter. Back off. Before
                // any paced try was answered the model's burst is a guess
                // (an earlier scan may have spent the real one): empty it,
                // so the next tries wait for a refill the limiter surely has.
                h.rate = (h.rate / 2.0).max(floor);
                if h.paced_answered == 0 {
                    h.refill(now, margin);
                    h.tokens = h.tokens.min(0.0);
                }
                h.misses += 1;
            } else if h.icmp > 0 && f64::from(h.icmp) < h.burst {
                // A plain try went unanswered by a host that answers with
                // ICMP errors but has not shown a whole burst: the port may
                // be dropped, or the real bucket is emptier than the
                // model's (a resumed scan, or an earlier scan, spent it).
                // Trust no burst: the next paced tries wait for a refill.
                h.refill(now, margin);
                h.tokens = h.tokens.min(0.0);
            }
            if tries >= allowed {
                self.conclude(key, Reason::NoResponse, None, tries, None);
            } else if h.icmp == 0 {
                // No ICMP error from this host yet: it may drop, or its
                // limiter may be empty (an earlier scan spent it, or a
                // resumed scan's first tries fell in it). Retry once a
                // refill has surely passed, so a closed port can show.
                let at = p_last + Duration::from_secs_f64(1.0 / (floor * margin).max(1e-3));
                if at <= now {
                    self.resend.push_back(key);
                } else {
                    self.held.push(Reverse((at, key)));
                }
            } else if h.cut_short
                || h.misses >= give_up_after
                || now.saturating_sub(h.first) >= host_timeout
            {
                self.conclude_undecided(key, tries);
                self.cut_host_short(key.0);
            } else {
                // The limiter may have eaten the answer: wait for a token.
                if prio {
                    h.waiting.push_front(key);
                } else {
                    h.waiting.push_back(key);
                }
                if !h.slot_scheduled {
                    h.refill(now, margin);
                    h.slot_scheduled = true;
                    let at = h.next_token(now, margin);
                    self.slots.push(Reverse((at, key.0)));
                }
            }
        }
    }

    /// Hands held plain retries to the sender when they are due.
    fn release_held(&mut self, now: Duration) {
        while let Some(Reverse((at, key))) = self.held.peek().copied() {
            if at > now {
                break;
            }
            self.held.pop();
            if self.inflight.contains_key(&key) {
                self.resend.push_back(key);
            }
        }
    }

    /// Hands retries to the sender as the hosts' limiter models refill.
    fn release_slots(&mut self, now: Duration) {
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
                self.cut_host_short(addr);
                continue;
            }
            h.refill(now, margin);
            while h.tokens >= 1.0 {
                let Some(key) = h.waiting.pop_front() else {
                    break;
                };
                if !self.inflight.contains_key(&key) {
                    continue;
                }
                // Charged now, so the ICMP it draws is not charged again.
                h.tokens -= 1.0;
                if let Some(p) = self.inflight.get_mut(&key) {
                    p.paced = true;
                }
                self.resend.push_back(key);
                self.paced += 1;
            }
            if !h.waiting.is_empty() {
                h.slot_scheduled = true;
                let at = h.next_token(now, margin);
                self.slots.push(Reverse((at, addr)));
            }
        }
    }

    fn local_for(&mut self, target: IpAddr) -> Option<IpAddr> {
        let io = &mut self.io;
        self.local.get(target, |t| io.local_addr(t))
    }

    fn pair_at(&self, pos: u64) -> Option<Key> {
        let idx = self.perm.nth(pos);
        let addr = (self.space.addr_at)(idx / self.nports)?;
        let port = *self.space.ports.get((idx % self.nports) as usize)?;
        Some((addr, port))
    }

    fn send_some(&mut self, now: Duration) -> Result<(), ScanError> {
        let rate = self.cfg.rate.max(1) as f64;
        let dt = now.saturating_sub(self.last_refill).as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + dt * rate).min((BATCH_MAX as f64 * 2.0).max(1.0));
        let mut bufs = vec![[0u8; MAX_PROBE_LEN]; BATCH_MAX];
        loop {
            let n = (self.tokens.floor() as usize).min(BATCH_MAX);
            if n == 0 {
                return Ok(());
            }
            // (is a retry, key, position of a new pair, length)
            let mut meta: Vec<(bool, Key, u64, usize)> = Vec::with_capacity(n);
            while meta.len() < n {
                let (retry, key, pos) = if let Some(key) = self.resend.pop_front() {
                    let Some(p) = self.inflight.get(&key) else {
                        continue;
                    };
                    (true, key, p.pos)
                } else {
                    let pos = if let Some(p) = self.requeue.pop_front() {
                        p
                    } else if self.next_k < self.shard_len {
                        let p = self.shard.index + self.next_k * self.shard.count;
                        self.next_k += 1;
                        p
                    } else {
                        break;
                    };
                    let Some(key) = self.pair_at(pos) else {
                        continue;
                    };
                    if self.inflight.contains_key(&key) {
                        continue;
                    }
                    (false, key, pos)
                };
                let Some(local) = self.local_for(key.0) else {
                    if !retry {
                        self.start(key, pos, now);
                    }
                    self.conclude(key, Reason::NetUnreach, None, 0, None);
                    continue;
                };
                let tries = if retry {
                    self.inflight.get(&key).map_or(0, |p| p.tries)
                } else {
                    0
                };
                let (sport, _) = self.cookie.probe(local, key.0, key.1, tries);
                self.ip_id = self.ip_id.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let probe = UdpProbe {
                    src: local,
                    dst: key.0,
                    sport,
                    dport: key.1,
                    ip_id: (self.ip_id >> 16) as u16,
                    payload: (self.space.payload)(key.1),
                };
                let i = meta.len();
                match packet::build_udp(&mut bufs[i], &probe) {
                    Some(len) => meta.push((retry, key, pos, len)),
                    None => {
                        if !retry {
                            self.start(key, pos, now);
                        }
                        self.conclude(key, Reason::NetUnreach, None, 0, None);
                    }
                }
            }
            if meta.is_empty() {
                return Ok(());
            }
            let pkts: Vec<OutPacket<'_>> = meta
                .iter()
                .zip(bufs.iter())
                .map(|((_, key, _, len), b)| OutPacket {
                    dst: key.0,
                    bytes: &b[..*len],
                })
                .collect();
            let sent = match self.io.send(&pkts) {
                Ok(k) => k.min(pkts.len()),
                Err(e) if is_transient(&e) => 0,
                Err(e) => return Err(e.into()),
            };
            drop(pkts);
            self.tokens -= sent as f64;
            let timeout = self.timeout();
            let total = meta.len();
            for (i, (retry, key, pos, _)) in meta.into_iter().enumerate() {
                if i >= sent {
                    if retry {
                        self.resend.push_front(key);
                    } else {
                        self.requeue.push_front(pos);
                    }
                    continue;
                }
                if !retry {
                    self.start(key, pos, now);
                }
                let Some(p) = self.inflight.get_mut(&key) else {
                    continue;
                };
                if !retry {
                    p.paced = false;
                }
                p.last_sent = now;
                p.tries += 1;
                self.timers.push(Timer {
                    at: now + timeout,
                    key,
                    tries: p.tries,
                });
                self.summary.sent += 1;
            }
            if sent < total {
                return Ok(());
            }
        }
    }

    fn start(&mut self, key: Key, pos: u64, now: Duration) {
        self.inflight.insert(
            key,
            Pending {
                pos,
                tries: 0,
                last_sent: now,
                paced: false,
            },
        );
        let cfg = self.cfg;
        let h = self.hosts.entry(key.0).or_insert_with(|| Host {
            first: now,
            icmp: 0,
            data: 0,
            first_icmp: None,
            rate: cfg.icmp_rate.max(0.01),
            burst: cfg.icmp_burst.max(1.0),
            tokens: cfg.icmp_burst.max(1.0),
            last: now,
            waiting: VecDeque::new(),
            slot_scheduled: false,
            inflight: 0,
            misses: 0,
            paced_answered: 0,
            cut_short: false,
        });
        h.inflight += 1;
    }

    /// The try of `key` a reply to local port `lport` answers.
    fn which_try(&mut self, local: IpAddr, key: Key, lport: u16, sent: u8) -> Option<u8> {
        (0..sent.min(MAX_TRIES)).find(|&t| self.cookie.probe(local, key.0, key.1, t).0 == lport)
    }

    fn on_reply(&mut self, r: UdpReceived) {
        let key = (r.reply.target, r.reply.target_port);
        let Some(p) = self.inflight.get(&key) else {
            // Late or duplicate answers to one of our probes, or noise.
            let ours = self
                .which_try(r.reply.local, key, r.reply.local_port, MAX_TRIES)
                .is_some();
            if ours {
                self.duplicates += 1;
            } else {
                self.invalid += 1;
            }
            return;
        };
        let (tries, last_sent, paced) = (p.tries, p.last_sent, p.paced);
        let Some(t) = self.which_try(r.reply.local, key, r.reply.local_port, tries) else {
            self.invalid += 1;
            return;
        };
        let rtt = (t + 1 == tries).then(|| r.at.saturating_sub(last_sent));
        if let Some(rtt) = rtt {
            let s = rtt.as_secs_f64();
            match self.srtt {
                None => {
                    self.srtt = Some(s);
                    self.rttvar = s / 2.0;
                }
                Some(old) => {
                    self.rttvar = 0.75 * self.rttvar + 0.25 * (old - s).abs();
                    self.srtt = Some(0.875 * old + 0.125 * s);
                }
            }
        }
        if paced
            && t + 1 == tries
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
                self.learn_limit(key.0, r.at, !paced);
                if paced && t + 1 == tries {
                    // The paced try was answered: probe a slightly faster
                    // refill. Slowly, because overshooting costs a try (an
                    // unanswered one halves the rate again).
                    if let Some(h) = self.hosts.get_mut(&key.0) {
                        h.rate = (h.rate * PACED_CLIMB).min(MAX_ICMP_RATE);
                    }
                }
                (*reason, None)
            }
        };
        self.conclude(key, reason, rtt, tries, service);
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
        if charge {
            // The host spent a token of its real bucket on this answer
            // (suppressed answers spend none, so only what arrives counts).
            h.refill(at, margin);
            h.tokens -= 1.0;
        }
        let first = *h.first_icmp.get_or_insert(at);
        let span = at.saturating_sub(first).as_secs_f64();
        let allowed = h.burst + span * h.rate + 1.0;
        if f64::from(h.icmp) > allowed {
            h.burst = h.burst.max(f64::from(h.icmp));
            h.rate = (h.rate * 2.0).max(f64::from(h.icmp) / span.max(0.05));
            h.tokens = h.tokens.max(1.0);
        }
    }

    /// Ends a host's paced retries: its waiting pairs are concluded
    /// undecided (pairs with a try in flight follow when it times out).
    fn cut_host_short(&mut self, addr: IpAddr) {
        let Some(h) = self.hosts.get_mut(&addr) else {
            return;
        };
        if !h.cut_short {
            h.cut_short = true;
            self.cut_short += 1;
        }
        let waiting = std::mem::take(&mut h.waiting);
        for k in waiting {
            let t = self.inflight.get(&k).map_or(0, |p| p.tries);
            self.conclude_undecided(k, t);
        }
    }

    /// Concludes a silent pair whose tries were not spent (its host's
    /// paced retries ended): open|filtered, counted undecided.
    fn conclude_undecided(&mut self, key: Key, tries: u8) {
        if self.inflight.contains_key(&key) {
            self.summary.udp_undecided += 1;
            self.conclude(key, Reason::NoResponse, None, tries, None);
        }
    }

    fn conclude(
        &mut self,
        key: Key,
        reason: Reason,
        rtt: Option<Duration>,
        tries: u8,
        service: Option<ServiceInfo>,
    ) {
        if self.inflight.remove(&key).is_none() {
            return;
        }
        let mut o = Observation::new(
            key.0,
            key.1,
            Proto::Udp,
            reason,
            rtt.map(|d| d.as_micros() as f64 / 1000.0),
        );
        o.tries = tries.max(1);
        o.service = service;
        self.summary.count(o.state);
        if let Some(h) = self.hosts.get_mut(&key.0) {
            h.inflight = h.inflight.saturating_sub(1);
            // Hosts are kept while they may still get pairs (their ports
            // are spread over the whole permutation) only when few: a big
            // space forgets idle hosts and relearns them.
            if h.inflight == 0 && h.waiting.is_empty() && self.hosts.len() > 65_536 {
                self.hosts.remove(&key.0);
            }
        }
        (self.emit)(ScanEvent::Observation(o));
    }

    fn progress(&mut self, now: Duration) {
        self.next_progress = now + self.cfg.progress_every;
        let dt = now.saturating_sub(self.progress_at).as_secs_f64();
        let rate = if dt > 0.0 {
            (self.summary.sent - self.progress_sent) as f64 / dt
        } else {
            0.0
        };
        self.progress_sent = self.summary.sent;
        self.progress_at = now;
        (self.emit)(ScanEvent::Progress(Progress {
            done: self.done_before + self.summary.probed,
            total: self.shard_len,
            open: self.summary.open,
            rate,
        }));
    }
}
