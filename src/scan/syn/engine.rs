//! Scan layer, schedule and control loop of the SYN engine.
//!
//! One thread walks the seeded permutation of the (address × port) index
//! space (only its shard's positions), paces probes with a token bucket,
//! retransmits pairs that stay silent after the adaptive time-out, and
//! concludes each pair exactly once from the replies the I/O delivers.
//! The rate adapts like a congestion window: it grows while answers keep
//! up and is cut when probes evidently get dropped (answers that only come
//! to a retransmission, or a falling answer ratio), which is what keeps
//! recall high behind rate-limiting firewalls where blind senders lose
//! ports. Everything time-related reads the I/O's clock, so the loop runs
//! identically on the virtual clock of the fake network.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cookie::{Cookie, MAX_TRIES};
use super::io::{OutPacket, PacketIo, Received};
use super::packet::{self, MAX_PROBE_LEN, ProbeFields, ReplyKind};
use crate::model::{Observation, Progress, Proto, Reason, ScanEvent};
use crate::scan::permute::Permutation;
use crate::scan::{ScanError, ScanSummary, TimeoutConfig};

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateMode {
    /// Exactly this many probes per second, never adapted.
    Fixed(u64),
    /// Start at `start`, adapt to loss, never above `max`.
    Adaptive { start: u64, max: u64 },
}

/// Part `index` of `count` of the permutation (positions `p` with
/// `p % count == index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

/// Where an interrupted scan stopped: enough to finish it later with no
/// pair lost or concluded twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    pub version: u32,
    pub seed: u64,
    pub shard: Shard,
    /// Number of (address, port) pairs of the whole scan (checks that the
    /// resumed scan has the same targets and ports).
    pub total: u64,
    /// Next step `k` of the shard (position `index + k * count`) never sent.
    pub next: u64,
    /// Positions sent or scheduled but not concluded.
    pub outstanding: Vec<u64>,
}

/// Engine settings (built from [`crate::scan::ScanConfig`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub seed: u64,
    pub key: (u64, u64),
    pub sports: (u16, u16),
    pub retries: u8,
    pub timeout: TimeoutConfig,
    pub rate: RateMode,
    /// Probes in flight to one host at most.
    pub host_inflight: u32,
    pub shard: Shard,
    pub stop: Option<Arc<AtomicBool>>,
    pub resume: Option<ResumeState>,
    /// Hosts answering SYN-ACK on at least this share of ≥ `proxy_min_ports`
    /// concluded ports are treated as SYN proxies / tarpits.
    pub proxy_ratio: f64,
    pub proxy_min_ports: u32,
    /// Answer each SYN-ACK with a RST (the kernel does too, having no socket).
    pub send_rst: bool,
    pub progress_every: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0,
            key: (0x5eed, 0xc0ffee),
            sports: (61000, 65535),
            retries: 1,
            timeout: TimeoutConfig::default(),
            rate: RateMode::Adaptive {
                start: 20_000,
                max: 1_000_000,
            },
            host_inflight: 4096,
            shard: Shard::default(),
            stop: None,
            resume: None,
            proxy_ratio: 0.8,
            proxy_min_ports: 100,
            send_rst: true,
            progress_every: Duration::from_millis(250),
        }
    }
}

/// The (address × port) space: `addr_at(i)` for `i < n_addrs`, `ports`.
pub struct Space<'a> {
    pub n_addrs: u64,
    pub addr_at: &'a dyn Fn(u64) -> Option<IpAddr>,
    pub ports: &'a [u16],
}

impl Space<'_> {
    pub fn total(&self) -> u64 {
        self.n_addrs.saturating_mul(self.ports.len() as u64)
    }
}

/// What the engine hands back besides the events it emitted.
#[derive(Debug, Default)]
pub struct EngineOutcome {
    pub summary: ScanSummary,
    /// Open ports of hosts that answered SYN-ACK nearly everywhere: not yet
    /// reported, to be confirmed with a full connect.
    pub suspect: Vec<Observation>,
    /// Set when the scan was stopped before it finished.
    pub resume: Option<ResumeState>,
    /// Replies that failed validation, and valid replies for pairs already
    /// concluded (duplicates, late answers).
    pub invalid: u64,
    pub duplicates: u64,
    /// Final rate the controller settled on (probes/s).
    pub final_rate: f64,
}

/// An (address, port) pair.
pub(crate) type Key = (IpAddr, u16);

/// A time-out, ordered by deadline only (earliest first in the max-heap):
/// comparing whole keys cost measurable time on million-probe scans.
/// Shared with the UDP engine.
#[derive(Clone, Copy)]
pub(crate) struct Timer {
    pub at: Duration,
    pub key: Key,
    pub tries: u8,
}

/// Where one run walks the seeded permutation: its seed and shard, the
/// step to start from, and the positions an interrupted run left
/// outstanding. Shared with the UDP engine, so both read a resume state
/// the same way.
pub(crate) struct Walk {
    pub seed: u64,
    pub shard: Shard,
    pub next_k: u64,
    pub shard_len: u64,
    pub requeue: VecDeque<u64>,
    /// Pairs the interrupted run had concluded (for progress).
    pub done_before: u64,
}

impl Walk {
    /// Checks `shard` and `resume` against a space of `total` pairs
    /// (`ports` names the port kind in errors: "ports", "UDP ports").
    pub fn plan(
        total: u64,
        seed: u64,
        shard: Shard,
        resume: Option<&ResumeState>,
        ports: &str,
    ) -> Result<Walk, ScanError> {
        let shard = resume.map(|r| r.shard).unwrap_or(shard);
        if shard.count == 0 || shard.index >= shard.count {
            return Err(ScanError::Config(format!(
                "shard {}/{} is out of range: use I/N with 0 <= I < N",
                shard.index, shard.count
            )));
        }
        let mut seed = seed;
        let mut next_k = 0;
        let mut requeue = VecDeque::new();
        if let Some(r) = resume {
            if r.total != total {
                return Err(ScanError::Config(format!(
                    "the resume file describes {} (address, port) pairs but these targets and {ports} make {total}: resume with the same targets and ports",
                    r.total
                )));
            }
            seed = r.seed;
            next_k = r.next;
            requeue.extend(
                r.outstanding
                    .iter()
                    .copied()
                    .filter(|p| *p < total && p % shard.count == shard.index),
            );
        }
        let shard_len = if total > shard.index {
            (total - shard.index).div_ceil(shard.count)
        } else {
            0
        };
        if next_k > shard_len {
            return Err(ScanError::Config(format!(
                "the resume file says step {next_k} of a shard that has only {shard_len}: it does not belong to this scan"
            )));
        }
        Ok(Walk {
            seed,
            shard,
            next_k,
            shard_len,
            requeue,
            done_before: resume.map_or(0, |r| r.next.saturating_sub(r.outstanding.len() as u64)),
        })
    }
}

/// Local source addresses by target, shared by a /24 (IPv4) or /64
/// (IPv6): asking the routing table costs a few system calls, and routes
/// and source addresses practically never differ inside one. Shared with
/// the UDP engine.
#[derive(Default)]
pub(crate) struct LocalAddrs(HashMap<IpAddr, Option<IpAddr>>);

impl LocalAddrs {
    /// The source address for `target`, from the cache or `lookup`.
    pub fn get(
        &mut self,
        target: IpAddr,
        lookup: impl FnOnce(IpAddr) -> Option<IpAddr>,
    ) -> Option<IpAddr> {
        let key = match target {
            IpAddr::V4(a) if !a.is_loopback() => IpAddr::V4((u32::from(a) & 0xffff_ff00).into()),
            IpAddr::V6(a) if !a.is_loopback() => {
                IpAddr::V6((u128::from(a) & !((1u128 << 64) - 1)).into())
            }
            other => other,
        };
        if let Some(l) = self.0.get(&key) {
            return *l;
        }
        if self.0.len() > 65_536 {
            self.0.clear();
        }
        let l = lookup(target);
        self.0.insert(key, l);
        l
    }
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at)
    }
}

struct Pending {
    pos: u64,
    tries: u8,
    last_sent: Duration,
    prev_sent: Duration,
}

#[derive(Default)]
struct Host {
    inflight: u32,
    concluded: u32,
    synack: u32,
    answered: u32,
    /// Pairs concluded with no answer while the host never answered at all.
    silent: u32,
    judged: bool,
    suspect: bool,
    held: Vec<Observation>,
}

#[derive(Clone, Copy)]
enum Source {
    New(u64),
    Retry(Key),
}

const BATCH_MAX: usize = 64;
const CONTROL_EVERY: Duration = Duration::from_millis(50);
const MIN_RATE: f64 = 50.0;
const MAX_INFLIGHT: usize = 262_144;
const MAX_REQUEUE: usize = 65_536;
const SILENT_HOST: u32 = 32;

#[derive(Default)]
struct Window {
    sent: u64,
    sent_first: u64,
    ans_first: u64,
    ans_retry: u64,
}

struct Engine<'a, 'b> {
    io: &'a mut dyn PacketIo,
    space: &'a Space<'b>,
    cfg: &'a EngineConfig,
    emit: &'a mut dyn FnMut(ScanEvent),
    cookie: Cookie,
    perm: Permutation,
    nports: u64,
    shard_len: u64,
    next_k: u64,
    requeue: VecDeque<u64>,
    resend: VecDeque<Key>,
    inflight: HashMap<Key, Pending>,
    timers: BinaryHeap<Timer>,
    hosts: HashMap<IpAddr, Host>,
    local: LocalAddrs,
    suspect: Vec<Observation>,
    rsts: Vec<(IpAddr, [u8; MAX_PROBE_LEN], usize)>,
    // rate control
    rate: f64,
    max_rate: f64,
    adaptive: bool,
    slow_start: bool,
    tokens: f64,
    last_refill: Duration,
    last_cut: Duration,
    freeze_until: Duration,
    best_ratio: f64,
    low_windows: u32,
    clean_windows: u32,
    window: Window,
    next_control: Duration,
    // timing
    srtt: Option<f64>,
    rttvar: f64,
    highest_try: u8,
    silent_hosts: u64,
    /// Pairs a resumed scan had concluded before (for progress).
    done_before: u64,
    ip_id: u32,
    // accounting
    summary: ScanSummary,
    /// The local error the next `conclude(LocalError)` names.
    local_error: Option<String>,
    invalid: u64,
    duplicates: u64,
    next_progress: Duration,
    progress_sent: u64,
    progress_at: Duration,
}

/// Runs a SYN scan over `io` and emits one observation per concluded pair.
pub fn run(
    io: &mut dyn PacketIo,
    space: &Space<'_>,
    cfg: &EngineConfig,
    emit: &mut dyn FnMut(ScanEvent),
) -> Result<EngineOutcome, ScanError> {
    let total = space.total();
    let Walk {
        seed,
        shard,
        next_k,
        shard_len,
        requeue,
        done_before,
    } = Walk::plan(total, cfg.seed, cfg.shard, cfg.resume.as_ref(), "ports")?;
    let (rate, max_rate, adaptive) = match cfg.rate {
        RateMode::Fixed(r) => (r.max(1) as f64, r.max(1) as f64, false),
        RateMode::Adaptive { start, max } => {
            let max = max.max(1) as f64;
            ((start.max(1) as f64).min(max), max, true)
        }
    };
    let now = io.now();
    let mut e = Engine {
        io,
        space,
        cfg,
        emit,
        cookie: Cookie::new(cfg.key, cfg.sports),
        perm: Permutation::new(total, seed),
        nports: space.ports.len() as u64,
        shard_len,
        next_k,
        requeue,
        resend: VecDeque::new(),
        inflight: HashMap::new(),
        timers: BinaryHeap::new(),
        hosts: HashMap::new(),
        local: LocalAddrs::default(),
        suspect: Vec::new(),
        rsts: Vec::new(),
        rate,
        max_rate,
        adaptive,
        slow_start: true,
        tokens: 1.0,
        last_refill: now,
        last_cut: now,
        freeze_until: now,
        best_ratio: 0.0,
        low_windows: 0,
        clean_windows: 0,
        window: Window::default(),
        next_control: now + CONTROL_EVERY,
        srtt: None,
        rttvar: 0.0,
        highest_try: 0,
        silent_hosts: 0,
        done_before,
        ip_id: (cfg.key.0 as u32) ^ 0x5a5a,
        summary: ScanSummary::default(),
        local_error: None,
        invalid: 0,
        duplicates: 0,
        next_progress: now + cfg.progress_every,
        progress_sent: 0,
        progress_at: now,
    };
    e.run(now, seed, shard)
}

impl Engine<'_, '_> {
    fn run(
        &mut self,
        start: Duration,
        seed: u64,
        shard: Shard,
    ) -> Result<EngineOutcome, ScanError> {
        let mut rx: Vec<Received> = Vec::with_capacity(1024);
        let mut stopping: Option<Duration> = None;
        loop {
            // Drain first: after the thread was descheduled, answers may
            // sit in the socket while their time-outs look expired.
            rx.clear();
            self.io.poll(&mut rx)?;
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
                // Stop sending; late replies still conclude pairs until the
                // grace period (one time-out) is over.
                stopping = Some(now + self.timeout());
            }
            self.expire(now, stopping.is_some());
            if stopping.is_none() {
                self.send_some(now)?;
            }
            self.flush_rsts()?;
            let work_left = self.has_work();
            match stopping {
                Some(end) if self.inflight.is_empty() || now >= end => break,
                None if !work_left && self.inflight.is_empty() => break,
                _ => {}
            }
            // Sleep until the next thing to do: a token batch, a time-out,
            // a control or progress tick (or the end of the grace period).
            let mut until = self.next_control.min(self.next_progress);
            if let Some(t) = self.timers.peek() {
                until = until.min(t.at);
            }
            if let Some(end) = stopping {
                until = until.min(end);
            } else if work_left {
                let want = self.batch_want() as f64;
                let need = (want - self.tokens).max(0.0);
                until = until.min(now + Duration::from_secs_f64(need / self.rate));
            }
            let wait = until.saturating_sub(now).min(Duration::from_millis(50));
            rx.clear();
            self.io.recv(wait, &mut rx)?;
            let now = self.io.now();
            for r in rx.drain(..) {
                self.on_reply(r);
            }
            if now >= self.next_control {
                self.control(now);
            }
            if now >= self.next_progress {
                self.progress(now);
            }
        }
        let end = self.io.now();
        // Hosts never judged (too few ports concluded): report what we have.
        let hosts: Vec<IpAddr> = self
            .hosts
            .iter()
            .filter(|(_, h)| !h.held.is_empty())
            .map(|(a, _)| *a)
            .collect();
        for a in hosts {
            let held = self
                .hosts
                .get_mut(&a)
                .map(|h| std::mem::take(&mut h.held))
                .unwrap_or_default();
            for o in held {
                (self.emit)(ScanEvent::Observation(o));
            }
        }
        let resume = stopping.map(|_| {
            let mut outstanding: Vec<u64> = self.inflight.values().map(|p| p.pos).collect();
            outstanding.extend(self.requeue.iter().copied());
            outstanding.sort_unstable();
            ResumeState {
                version: 1,
                seed,
                shard,
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
        Ok(EngineOutcome {
            summary,
            suspect: std::mem::take(&mut self.suspect),
            resume,
            invalid: self.invalid,
            duplicates: self.duplicates,
            final_rate: self.rate,
        })
    }

    fn timeout(&self) -> Duration {
        let t = &self.cfg.timeout;
        match self.srtt {
            None => t.initial,
            Some(s) => Duration::from_secs_f64(s + 4.0 * self.rttvar).clamp(t.min, t.max),
        }
    }

    fn batch_want(&self) -> usize {
        ((self.rate * 0.000_25) as usize).clamp(1, BATCH_MAX)
    }

    fn has_work(&self) -> bool {
        !self.resend.is_empty() || !self.requeue.is_empty() || self.next_k < self.shard_len
    }

    fn allowed_tries(&self, host: Option<&Host>) -> u8 {
        let base = self.cfg.retries.saturating_add(1).clamp(1, MAX_TRIES);
        // Like nmap: once answers come to late tries, give every responsive
        // host as many tries as the latest try that ever answered, plus one.
        // Silent hosts keep the configured count so dead address space
        // costs no more than asked for.
        match host {
            Some(h) if h.answered > 0 => {
                base.max(self.highest_try.saturating_add(2).min(MAX_TRIES))
            }
            // A host that let SILENT_HOST pairs time out on every try and
            // never answered anything is down (or drops everything): like
            // nmap skipping hosts that fail discovery, its remaining
            // ports get one probe instead of the full retry budget.
            Some(h) if h.silent >= SILENT_HOST => 1,
            _ => base,
        }
    }

    fn expire(&mut self, now: Duration, stopping: bool) {
        while let Some(&Timer {
            at: deadline,
            key,
            tries,
        }) = self.timers.peek()
        {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(p) = self.inflight.get(&key) else {
                continue;
            };
            if p.tries != tries || stopping {
                continue;
            }
            if p.tries < self.allowed_tries(self.hosts.get(&key.0)) {
                self.resend.push_back(key);
            } else {
                let tries = p.tries;
                self.conclude(key, Reason::NoResponse, None, tries);
            }
        }
    }

    fn refill(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.last_refill).as_secs_f64();
        self.last_refill = now;
        let cap = (2 * self.batch_want()) as f64;
        self.tokens = (self.tokens + dt * self.rate).min(cap.max(1.0));
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
        self.refill(now);
        let want = self.batch_want();
        let mut bufs = [[0u8; MAX_PROBE_LEN]; BATCH_MAX];
        loop {
            let avail = self.tokens.floor() as usize;
            // Send in full batches unless little work is left.
            let backlog =
                self.resend.len() + self.requeue.len() + (self.shard_len - self.next_k) as usize;
            if avail == 0 || (avail < want && backlog >= want) {
                return Ok(());
            }
            let n = avail.min(BATCH_MAX);
            let mut meta: Vec<(Source, Key, usize)> = Vec::with_capacity(n);
            let mut deferred = 0;
            while meta.len() < n {
                let (src, key) = if let Some(key) = self.resend.pop_front() {
                    if !self.inflight.contains_key(&key) {
                        continue;
                    }
                    (Source::Retry(key), key)
                } else {
                    if self.inflight.len() >= MAX_INFLIGHT {
                        break;
                    }
                    let pos = if deferred < self.requeue.len().min(8) {
                        match self.requeue.pop_front() {
                            Some(p) => p,
                            None => break,
                        }
                    } else if self.next_k < self.shard_len {
                        if self.requeue.len() >= MAX_REQUEUE {
                            break;
                        }
                        let p = self.cfg.shard_pos(self.next_k);
                        self.next_k += 1;
                        p
                    } else {
                        break;
                    };
                    let Some(key) = self.pair_at(pos) else {
                        continue;
                    };
                    if self.inflight.contains_key(&key) {
                        // The same pair twice in the space (duplicate ports
                        // are impossible; duplicate addresses are not).
                        continue;
                    }
                    let h = self.hosts.entry(key.0).or_default();
                    if h.inflight >= self.cfg.host_inflight.max(1) {
                        self.requeue.push_back(pos);
                        deferred += 1;
                        if deferred > 64 {
                            break;
                        }
                        continue;
                    }
                    (Source::New(pos), key)
                };
                let Some(local) = self.local_for(key.0) else {
                    // No route from this machine: nothing can go out.
                    if let Source::New(pos) = src {
                        self.start(key, pos, now);
                    }
                    let tries = self.inflight.get(&key).map_or(0, |p| p.tries);
                    self.conclude_local(
                        key,
                        "ENETUNREACH: no route to the target from this host".into(),
                        tries,
                    );
                    continue;
                };
                let tries = match src {
                    Source::Retry(k) => self.inflight.get(&k).map(|p| p.tries).unwrap_or(0),
                    _ => 0,
                };
                let (sport, seq) = self.cookie.probe(local, key.0, key.1, tries);
                self.ip_id = self.ip_id.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let f = ProbeFields {
                    src: local,
                    dst: key.0,
                    sport,
                    dport: key.1,
                    seq,
                    ip_id: (self.ip_id >> 16) as u16,
                    tsval: seq.rotate_left(13),
                };
                let i = meta.len();
                match packet::build_syn(&mut bufs[i], &f) {
                    Some(len) => meta.push((src, key, len)),
                    None => {
                        if let Source::New(pos) = src {
                            self.start(key, pos, now);
                        }
                        let tries = self.inflight.get(&key).map_or(0, |p| p.tries);
                        self.conclude_local(
                            key,
                            "EAFNOSUPPORT: no source address of the target's family".into(),
                            tries,
                        );
                    }
                }
            }
            if meta.is_empty() {
                return Ok(());
            }
            let pkts: Vec<OutPacket<'_>> = meta
                .iter()
                .zip(bufs.iter())
                .map(|((_, key, len), b)| OutPacket {
                    dst: key.0,
                    bytes: &b[..*len],
                })
                .collect();
            let mut refused = None;
            let sent = match self.io.send(&pkts) {
                Ok(k) => k.min(pkts.len()),
                Err(e) if is_transient(&e) => 0,
                // The kernel refused the first packet (no route, a local
                // firewall, the family disabled): that pair is concluded
                // as a local error, the rest are offered again.
                Err(e) => {
                    refused = Some(crate::scan::connect::errno_name(&e));
                    0
                }
            };
            drop(pkts);
            let had_refusal = refused.is_some();
            self.tokens -= sent as f64;
            let timeout = self.timeout();
            for (i, (src, key, _)) in meta.into_iter().enumerate() {
                if i == 0
                    && let Some(error) = refused.take()
                {
                    if let Source::New(pos) = src {
                        self.start(key, pos, now);
                    }
                    let tries = self.inflight.get(&key).map_or(0, |p| p.tries);
                    self.conclude_local(key, error, tries);
                    continue;
                }
                if i >= sent {
                    match src {
                        Source::New(pos) => self.requeue.push_front(pos),
                        Source::Retry(k) => self.resend.push_front(k),
                    }
                    continue;
                }
                if let Source::New(pos) = src {
                    self.start(key, pos, now);
                    self.window.sent_first += 1;
                }
                let Some(p) = self.inflight.get_mut(&key) else {
                    continue;
                };
                p.prev_sent = p.last_sent;
                p.last_sent = now;
                p.tries += 1;
                self.timers.push(Timer {
                    at: now + timeout,
                    key,
                    tries: p.tries,
                });
                self.summary.sent += 1;
                self.window.sent += 1;
            }
            if sent < n && !had_refusal {
                // The socket pushed back; try again after the next wait.
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
                prev_sent: now,
            },
        );
        self.hosts.entry(key.0).or_default().inflight += 1;
    }

    fn flush_rsts(&mut self) -> Result<(), ScanError> {
        if self.rsts.is_empty() {
            return Ok(());
        }
        let rsts = std::mem::take(&mut self.rsts);
        let pkts: Vec<OutPacket<'_>> = rsts
            .iter()
            .map(|(d, b, n)| OutPacket {
                dst: *d,
                bytes: &b[..*n],
            })
            .collect();
        match self.io.send(&pkts) {
            // A lost RST costs nothing but a half-open entry on the target
            // (and the kernel sends one as well).
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn on_reply(&mut self, r: Received) {
        let Some(t) = self.cookie.check(&r.reply) else {
            self.invalid += 1;
            return;
        };
        let key = (r.reply.target, r.reply.target_port);
        let Some(p) = self.inflight.get(&key) else {
            self.duplicates += 1;
            return;
        };
        if t >= p.tries {
            // Answers a probe we never sent: forged or from an older scan.
            self.invalid += 1;
            return;
        }
        let tries = p.tries;
        let rtt = if t + 1 == p.tries {
            Some(r.at.saturating_sub(p.last_sent))
        } else if t + 2 == p.tries {
            Some(r.at.saturating_sub(p.prev_sent))
        } else {
            None
        };
        if t + 1 == p.tries
            && let Some(rtt) = rtt
        {
            // RFC 6298 smoothing, only for unambiguous samples (Karn).
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
        if t == 0 {
            self.window.ans_first += 1;
        } else {
            self.highest_try = self.highest_try.max(t);
            if p.prev_sent >= self.last_cut {
                self.window.ans_retry += 1;
            }
        }
        if let Some(h) = self.hosts.get_mut(&key.0) {
            h.answered += 1;
        }
        let reason = match r.reply.kind {
            ReplyKind::SynAck => {
                if self.cfg.send_rst {
                    let mut b = [0u8; MAX_PROBE_LEN];
                    if let Some(n) = packet::build_rst(
                        &mut b,
                        r.reply.local,
                        r.reply.target,
                        r.reply.local_port,
                        r.reply.target_port,
                        r.reply.ack,
                    ) {
                        self.rsts.push((r.reply.target, b, n));
                    }
                }
                Reason::SynAck
            }
            ReplyKind::Reset => Reason::Reset,
            ReplyKind::Unreachable(reason) => reason,
        };
        self.conclude(key, reason, rtt, tries);
    }

    /// Concludes a pair the local system would not let out, naming why.
    fn conclude_local(&mut self, key: Key, error: String, tries: u8) {
        self.local_error = Some(error);
        self.conclude(key, Reason::LocalError, None, tries);
        self.local_error = None;
    }

    fn conclude(&mut self, key: Key, reason: Reason, rtt: Option<Duration>, tries: u8) {
        if self.inflight.remove(&key).is_none() {
            return;
        }
        let mut o = Observation::new(
            key.0,
            key.1,
            Proto::Tcp,
            reason,
            // Whole microseconds, like the connect engine: no false precision.
            rtt.map(|d| d.as_micros() as f64 / 1000.0),
        );
        if reason == Reason::LocalError {
            // Only the probes that went out count (none, for most).
            o.tries = tries;
            o.error = self.local_error.take();
        } else {
            o.tries = tries.max(1);
        }
        self.summary.count_observation(&o);
        let proxy_check =
            self.nports >= self.cfg.proxy_min_ports as u64 && self.cfg.proxy_min_ports > 0;
        // Per-host state is what the silent-host and proxy rules need; with
        // few ports per host neither applies, so /8-sized scans with a
        // handful of ports keep only hosts with probes in flight.
        let keep_hosts = self.nports >= SILENT_HOST as u64;
        let h = self.hosts.entry(key.0).or_default();
        h.inflight = h.inflight.saturating_sub(1);
        h.concluded += 1;
        if reason == Reason::SynAck {
            h.synack += 1;
        }
        if reason == Reason::NoResponse && h.answered == 0 {
            h.silent += 1;
            if h.silent == SILENT_HOST {
                self.silent_hosts += 1;
                if self.silent_hosts == 1 {
                    let msg = format!(
                        "{} did not answer any of {SILENT_HOST} ports: treating silent hosts as down, one probe per remaining port",
                        key.0
                    );
                    (self.emit)(ScanEvent::Notice(msg));
                }
            }
        }
        let h = self.hosts.entry(key.0).or_default();
        if !proxy_check {
            if h.inflight == 0 && !keep_hosts {
                self.hosts.remove(&key.0);
            }
            (self.emit)(ScanEvent::Observation(o));
            return;
        }
        if reason == Reason::SynAck {
            if h.suspect {
                self.suspect.push(o);
                return;
            }
            if !h.judged {
                h.held.push(o);
            } else {
                (self.emit)(ScanEvent::Observation(o));
            }
        } else {
            (self.emit)(ScanEvent::Observation(o));
        }
        let h = self.hosts.entry(key.0).or_default();
        if !h.judged && h.concluded >= self.cfg.proxy_min_ports {
            h.judged = true;
            let held = std::mem::take(&mut h.held);
            if h.synack as f64 >= self.cfg.proxy_ratio * h.concluded as f64 {
                h.suspect = true;
                let msg = format!(
                    "{}: answered SYN-ACK on {} of {} ports — likely a SYN proxy or tarpit; confirming its open ports with full connects",
                    key.0, h.synack, h.concluded
                );
                self.suspect.extend(held);
                (self.emit)(ScanEvent::Notice(msg));
            } else {
                for o in held {
                    (self.emit)(ScanEvent::Observation(o));
                }
            }
        }
    }

    fn control(&mut self, now: Duration) {
        let span = now
            .saturating_sub(self.next_control.saturating_sub(CONTROL_EVERY))
            .max(CONTROL_EVERY);
        self.next_control = now + CONTROL_EVERY;
        let w = std::mem::take(&mut self.window);
        if !self.adaptive {
            return;
        }
        let answered = w.ans_first + w.ans_retry;
        let retry_share = if answered > 0 {
            w.ans_retry as f64 / answered as f64
        } else {
            0.0
        };
        let loss_by_retries = w.ans_retry >= 5 && retry_share > 0.10;
        // Answers of one window can belong to the probes of the last one
        // (a descheduled thread drains late), so a ratio above 1 says
        // nothing, and one low window is noise: it takes two in a row.
        let ratio = if w.sent_first > 0 {
            (w.ans_first as f64 / w.sent_first as f64).min(1.0)
        } else {
            0.0
        };
        let enough = w.sent_first >= 200;
        let low = enough && self.best_ratio >= 0.02 && ratio < 0.7 * self.best_ratio;
        self.low_windows = if low {
            self.low_windows + 1
        } else if enough {
            0
        } else {
            self.low_windows
        };
        let loss_by_ratio = self.low_windows >= 2;
        if (loss_by_retries || loss_by_ratio) && now >= self.freeze_until {
            self.rate = (self.rate * 0.6).max(MIN_RATE);
            self.slow_start = false;
            self.clean_windows = 0;
            self.low_windows = 0;
            self.last_cut = now;
            // Let the evidence about the old rate drain before judging again.
            self.freeze_until = now + self.timeout().max(2 * CONTROL_EVERY);
            let why = if loss_by_retries {
                format!(
                    "{} of {answered} answers came only to a retransmission",
                    w.ans_retry
                )
            } else {
                format!(
                    "answer ratio fell from {:.2} to {ratio:.2}",
                    self.best_ratio
                )
            };
            // The reference ratio forgets a little with every cut, so a
            // lasting change of the answer mix cannot pin the rate down.
            self.best_ratio *= 0.9;
            let msg = format!(
                "packets are being dropped ({why}): slowing down to {:.0} probes/s",
                self.rate
            );
            (self.emit)(ScanEvent::Notice(msg));
            return;
        }
        if loss_by_retries || low {
            self.clean_windows = 0;
            return;
        }
        if enough {
            self.best_ratio = ratio.max(self.best_ratio * 0.98);
        }
        self.clean_windows += 1;
        // After a cut, probe upwards gently; after half a second without
        // any loss, grow fast again (the cut may have been a hiccup).
        if self.clean_windows >= 10 {
            self.slow_start = true;
        }
        let achieved = w.sent as f64 / span.as_secs_f64();
        if achieved >= 0.7 * self.rate && now >= self.freeze_until {
            let grow = if self.slow_start { 2.0 } else { 1.1 };
            self.rate = (self.rate * grow).min(self.max_rate);
        }
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

impl EngineConfig {
    fn shard_pos(&self, k: u64) -> u64 {
        let s = self.resume.as_ref().map(|r| r.shard).unwrap_or(self.shard);
        s.index + k * s.count
    }
}

/// A send error worth retrying later (buffers full, interrupted).
pub(crate) fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}
