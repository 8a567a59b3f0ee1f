//! Scan layer, raw packets: the control loop every probe engine runs.
//!
//! One thread walks the seeded permutation of the (address × port) space
//! (only its shard's positions), paces probes with a global token bucket,
//! sends them in batches, retransmits pairs that stay silent after the
//! adaptive time-out and concludes each pair exactly once from the replies
//! the I/O delivers. What a probe is, what a reply means, how many tries a
//! pair gets and how a host's answers steer the pacing is the protocol's
//! ([`Protocol`], implemented by the SYN and the UDP engine); everything
//! else is here, once. Everything time-related reads the I/O's clock, so
//! the loop runs identically on the virtual clock of the fake network.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::cookie::{Cookie, MAX_TRIES};
use super::io::{OutPacket, PacketIo, Received};
use super::schedule::{Key, LocalAddrs, ResumeState, Rtt, ScheduleConfig, Shard, Timer, Walk};
use crate::model::{Observation, Progress, Proto, Reason, ScanEvent};
use crate::scan::permute::Permutation;
use crate::scan::{ScanError, ScanSummary};

/// The (address × port) space: `addr_at(i)` for `i < n_addrs`, `ports`.
#[derive(Clone, Copy)]
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

/// A pair with a probe in flight (or waiting for a retry).
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// Its position in the permutation (for the resume state).
    pub pos: u64,
    pub tries: u8,
    pub last_sent: Duration,
    pub prev_sent: Duration,
    /// The last try was released by the protocol's per-host pacing model.
    pub paced: bool,
}

/// How probes are batched and paced.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Most probes handed to the I/O at once.
    pub batch_max: usize,
    /// Wait for a batch that fits the rate (a quarter millisecond of it)
    /// instead of sending every token as it comes.
    pub full_batches: bool,
    /// Shortest wait for tokens (a zero wait on a virtual clock would never
    /// let time, and tokens, advance).
    pub min_wait: Duration,
    /// Most pairs in flight (memory bound); new pairs wait beyond it.
    pub max_inflight: usize,
    /// Most positions waiting to be sent again before new ones.
    pub max_requeue: usize,
}

/// The fields of one probe the protocol builds.
#[derive(Debug, Clone, Copy)]
pub struct ProbeArgs {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// The cookie's sequence number for this try (TCP carries it).
    pub seq: u32,
    pub ip_id: u16,
}

/// One protocol's part of the engine: building probes, reading replies,
/// and the per-host rules (tries, pacing, reporting).
pub trait Protocol {
    type Reply;
    /// Transport protocol of the observations.
    const PROTO: Proto;
    /// Longest probe `build` writes.
    const MAX_PROBE: usize;
    /// Writes the probe into `buf`; `None`: it cannot be built.
    fn build(&mut self, p: &ProbeArgs, buf: &mut [u8]) -> Option<usize>;
    /// Whether a new pair of `key`'s host may start now (else it waits).
    fn admit(&mut self, _key: Key) -> bool {
        true
    }
    /// A new pair enters the schedule.
    fn on_start(&mut self, key: Key, now: Duration);
    /// A probe went out (`new`: the pair's first).
    fn on_sent(&mut self, _new: bool) {}
    fn on_reply(&mut self, core: &mut Core<'_, Self::Reply>, r: Received<Self::Reply>);
    /// The latest try of `key` timed out (it is still in flight).
    fn on_timeout(&mut self, core: &mut Core<'_, Self::Reply>, key: Key, now: Duration);
    /// A pair was concluded and counted: the protocol reports it.
    fn concluded(&mut self, core: &mut Core<'_, Self::Reply>, o: Observation);
    /// Before sending: hand due retries to `core.resend`.
    fn release(&mut self, _core: &mut Core<'_, Self::Reply>, _now: Duration) {}
    /// After sending: packets of the protocol's own (RSTs).
    fn after_send(&mut self, _core: &mut Core<'_, Self::Reply>) -> Result<(), ScanError> {
        Ok(())
    }
    /// Work held back by the protocol (waiting retries).
    fn has_work(&self) -> bool {
        false
    }
    /// When the protocol next needs the loop to wake.
    fn wake_at(&self) -> Option<Duration> {
        None
    }
    /// After every wait (rate control).
    fn tick(&mut self, _core: &mut Core<'_, Self::Reply>, _now: Duration) {}
    /// The run ends: report what is still held.
    fn finish(&mut self, _core: &mut Core<'_, Self::Reply>) {}
}

/// The state every engine shares; the protocol reads and steers it.
pub struct Core<'a, R> {
    pub io: &'a mut dyn PacketIo<Reply = R>,
    pub emit: &'a mut dyn FnMut(ScanEvent),
    pub cfg: &'a ScheduleConfig,
    space: &'a Space<'a>,
    pub cookie: Cookie,
    perm: Permutation,
    pub nports: u64,
    seed: u64,
    shard: Shard,
    shard_len: u64,
    next_k: u64,
    pub requeue: VecDeque<u64>,
    done_before: u64,
    pub resend: VecDeque<Key>,
    pub inflight: HashMap<Key, Pending>,
    timers: BinaryHeap<Timer>,
    local: LocalAddrs,
    pub rtt: Rtt,
    /// Global rate, probes per second (a protocol may adapt it).
    pub rate: f64,
    pacing: Pacing,
    tokens: f64,
    last_refill: Duration,
    ip_id: u32,
    pub summary: ScanSummary,
    /// Replies that matched no probe of ours, or a try never sent.
    pub invalid: u64,
    /// Valid replies for pairs already concluded.
    pub duplicates: u64,
    /// The local error the next `finish(LocalError)` names.
    local_error: Option<String>,
    next_progress: Duration,
    progress_sent: u64,
    progress_at: Duration,
    bufs: Vec<u8>,
    /// When the last new pair's first probe went out (diagnostics).
    pub walked_at: Option<Duration>,
}

/// Where a run ended.
pub struct RunEnd {
    pub summary: ScanSummary,
    pub resume: Option<ResumeState>,
}

impl<'a, R> Core<'a, R> {
    /// Plans the walk (`ports` names the port kind in errors).
    pub fn new(
        io: &'a mut dyn PacketIo<Reply = R>,
        space: &'a Space<'a>,
        cfg: &'a ScheduleConfig,
        emit: &'a mut dyn FnMut(ScanEvent),
        ports: &str,
        (rate, pacing): (f64, Pacing),
        max_probe: usize,
    ) -> Result<Core<'a, R>, ScanError> {
        let total = space.total();
        let walk = Walk::plan(total, cfg.seed, cfg.shard, cfg.resume.as_ref(), ports)?;
        let now = io.now();
        Ok(Core {
            io,
            emit,
            cfg,
            space,
            cookie: Cookie::new(cfg.key, cfg.sports),
            perm: Permutation::new(total, walk.seed),
            nports: space.ports.len() as u64,
            seed: walk.seed,
            shard: walk.shard,
            shard_len: walk.shard_len,
            next_k: walk.next_k,
            requeue: walk.requeue,
            done_before: walk.done_before,
            resend: VecDeque::new(),
            inflight: HashMap::new(),
            timers: BinaryHeap::new(),
            local: LocalAddrs::default(),
            rtt: Rtt::default(),
            rate,
            pacing,
            tokens: 1.0,
            last_refill: now,
            ip_id: (cfg.key.0 as u32) ^ 0x5a5a,
            summary: ScanSummary::default(),
            invalid: 0,
            duplicates: 0,
            local_error: None,
            next_progress: now + cfg.progress_every,
            progress_sent: 0,
            progress_at: now,
            bufs: vec![0; pacing.batch_max * max_probe],
            walked_at: None,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.rtt.timeout(&self.cfg.timeout)
    }

    /// Pairs not yet sent, or waiting to be sent again.
    pub fn has_work(&self) -> bool {
        !self.resend.is_empty() || !self.requeue.is_empty() || self.next_k < self.shard_len
    }

    /// Tries a pair gets by the configuration.
    pub fn base_tries(&self) -> u8 {
        self.cfg.retries.saturating_add(1).clamp(1, MAX_TRIES)
    }

    /// Checks a reply of `key` to `local`:`local_port` (carrying the probe
    /// sequence `seq`, when the protocol has one) against the cookie and
    /// the pairs in flight: the try it answers and the pair's state, or
    /// `None` (counted as invalid or duplicate).
    pub fn accept(
        &mut self,
        local: IpAddr,
        key: Key,
        local_port: u16,
        seq: Option<u32>,
    ) -> Option<(u8, Pending)> {
        let p = self.inflight.get(&key).copied();
        let t = match seq {
            Some(s) => self.cookie.check(local, key.0, key.1, local_port, s),
            None => {
                let sent = p.map_or(MAX_TRIES, |p| p.tries);
                self.cookie
                    .check_port(local, key.0, key.1, local_port, sent)
            }
        };
        match (t, p) {
            (Some(t), Some(p)) if t < p.tries => Some((t, p)),
            (Some(_), None) => {
                // Late or duplicate answers to one of our probes.
                self.duplicates += 1;
                None
            }
            _ => {
                // Forged, noise, from an older scan, or a try never sent.
                self.invalid += 1;
                None
            }
        }
    }

    /// The round-trip time of an answer to try `t` of `p` (answers to the
    /// latest try are also RTT samples; Karn: only those).
    pub fn answered(&mut self, t: u8, p: &Pending, at: Duration) -> Option<Duration> {
        if t + 1 == p.tries {
            let rtt = at.saturating_sub(p.last_sent);
            self.rtt.sample(rtt);
            Some(rtt)
        } else if t + 2 == p.tries {
            Some(at.saturating_sub(p.prev_sent))
        } else {
            None
        }
    }

    /// Takes `key` out of the schedule and counts its observation; `None`
    /// when it was concluded already.
    pub fn finish(
        &mut self,
        key: Key,
        proto: Proto,
        reason: Reason,
        rtt: Option<Duration>,
        tries: u8,
    ) -> Option<Observation> {
        self.inflight.remove(&key)?;
        let mut o = Observation::new(
            key.0,
            key.1,
            proto,
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
        Some(o)
    }

    fn pair_at(&self, pos: u64) -> Option<Key> {
        let idx = self.perm.nth(pos);
        let addr = (self.space.addr_at)(idx / self.nports)?;
        let port = *self.space.ports.get((idx % self.nports) as usize)?;
        Some((addr, port))
    }

    fn local_for(&mut self, target: IpAddr) -> Option<IpAddr> {
        let io = &mut self.io;
        self.local.get(target, |t| io.local_addr(t))
    }

    fn batch_want(&self) -> usize {
        if self.pacing.full_batches {
            ((self.rate * 0.000_25) as usize).clamp(1, self.pacing.batch_max)
        } else {
            1
        }
    }

    fn refill(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.last_refill).as_secs_f64();
        self.last_refill = now;
        let cap = if self.pacing.full_batches {
            2 * self.batch_want()
        } else {
            2 * self.pacing.batch_max
        };
        self.tokens = (self.tokens + dt * self.rate).min((cap as f64).max(1.0));
    }

    /// When enough tokens for a batch will be there.
    fn tokens_at(&self, now: Duration) -> Duration {
        let need = (self.batch_want() as f64 - self.tokens).max(0.0);
        now + Duration::from_secs_f64(need / self.rate).max(self.pacing.min_wait)
    }

    fn start(&mut self, key: Key, pos: u64, now: Duration) {
        self.inflight.insert(
            key,
            Pending {
                pos,
                tries: 0,
                last_sent: now,
                prev_sent: now,
                paced: false,
            },
        );
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

    /// What an interrupted run leaves to finish later.
    fn resume_state(&self) -> ResumeState {
        let mut outstanding: Vec<u64> = self.inflight.values().map(|p| p.pos).collect();
        outstanding.extend(self.requeue.iter().copied());
        outstanding.sort_unstable();
        ResumeState {
            version: 1,
            seed: self.seed,
            shard: self.shard,
            total: self.space.total(),
            next: self.next_k,
            outstanding,
        }
    }
}

/// Concludes `key` with `reason` and lets the protocol report it.
pub fn conclude<P: Protocol>(
    core: &mut Core<'_, P::Reply>,
    proto: &mut P,
    key: Key,
    reason: Reason,
    rtt: Option<Duration>,
    tries: u8,
) {
    if let Some(o) = core.finish(key, P::PROTO, reason, rtt, tries) {
        proto.concluded(core, o);
    }
}

/// Concludes a pair the local system would not let out, naming why.
fn conclude_local<P: Protocol>(
    core: &mut Core<'_, P::Reply>,
    proto: &mut P,
    key: Key,
    error: String,
) {
    let tries = core.inflight.get(&key).map_or(0, |p| p.tries);
    core.local_error = Some(error);
    conclude(core, proto, key, Reason::LocalError, None, tries);
    core.local_error = None;
}

/// Runs the scan to its end (or, once the stop flag is raised, until the
/// replies to what was sent had one time-out to arrive).
pub fn run<P: Protocol>(core: &mut Core<'_, P::Reply>, proto: &mut P) -> Result<RunEnd, ScanError> {
    let start = core.io.now();
    let mut rx: Vec<Received<P::Reply>> = Vec::with_capacity(1024);
    let mut stopping: Option<Duration> = None;
    loop {
        // Drain first: after the thread was descheduled, answers may sit
        // in the socket while their time-outs look expired.
        rx.clear();
        core.io.poll(&mut rx)?;
        for r in rx.drain(..) {
            proto.on_reply(core, r);
        }
        let now = core.io.now();
        if stopping.is_none()
            && core
                .cfg
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            // Stop sending; late replies still conclude pairs until the
            // grace period (one time-out) is over.
            stopping = Some(now + core.timeout());
        }
        expire(core, proto, now, stopping.is_some());
        if stopping.is_none() {
            proto.release(core, now);
            send_some(core, proto, now)?;
        }
        proto.after_send(core)?;
        let work_left = core.has_work() || proto.has_work();
        match stopping {
            Some(end) if core.inflight.is_empty() || now >= end => break,
            None if !work_left && core.inflight.is_empty() => break,
            _ => {}
        }
        // Sleep until the next thing to do: a token batch, a time-out, a
        // protocol wake-up or progress tick (or the end of the grace period).
        let mut until = core.next_progress;
        if let Some(t) = proto.wake_at() {
            until = until.min(t);
        }
        if let Some(t) = core.timers.peek() {
            until = until.min(t.at);
        }
        if let Some(end) = stopping {
            until = until.min(end);
        } else if core.has_work() {
            until = until.min(core.tokens_at(now));
        }
        let wait = until.saturating_sub(now).min(Duration::from_millis(50));
        rx.clear();
        core.io.recv(wait, &mut rx)?;
        let now = core.io.now();
        for r in rx.drain(..) {
            proto.on_reply(core, r);
        }
        proto.tick(core, now);
        if now >= core.next_progress {
            core.progress(now);
        }
    }
    let end = core.io.now();
    proto.finish(core);
    let resume = stopping.map(|_| core.resume_state());
    core.progress(end);
    let mut summary = std::mem::take(&mut core.summary);
    summary.elapsed = end.saturating_sub(start);
    summary.rate = if summary.elapsed.is_zero() {
        0.0
    } else {
        summary.sent as f64 / summary.elapsed.as_secs_f64()
    };
    summary.interrupted = resume.is_some();
    Ok(RunEnd { summary, resume })
}

fn expire<P: Protocol>(
    core: &mut Core<'_, P::Reply>,
    proto: &mut P,
    now: Duration,
    stopping: bool,
) {
    while let Some(&Timer { at, key, tries }) = core.timers.peek() {
        if at > now {
            break;
        }
        core.timers.pop();
        let Some(p) = core.inflight.get(&key) else {
            continue;
        };
        if p.tries != tries || stopping {
            continue;
        }
        proto.on_timeout(core, key, now);
    }
}

/// Where a probe of a batch comes from.
#[derive(Clone, Copy)]
enum Source {
    New(u64),
    Retry(Key),
}

/// The next pair to probe: a retry first, then a position that waited,
/// then the next step of the walk; `None` when nothing may go now.
fn next_pair<P: Protocol>(
    core: &mut Core<'_, P::Reply>,
    proto: &mut P,
    deferred: &mut usize,
) -> Option<Option<(Source, Key)>> {
    if let Some(key) = core.resend.pop_front() {
        return Some(
            core.inflight
                .contains_key(&key)
                .then_some((Source::Retry(key), key)),
        );
    }
    if core.inflight.len() >= core.pacing.max_inflight {
        return None;
    }
    let pos = if *deferred < core.requeue.len().min(8) {
        core.requeue.pop_front()?
    } else if core.next_k < core.shard_len {
        if core.requeue.len() >= core.pacing.max_requeue {
            return None;
        }
        let p = core.cfg.shard_pos(core.next_k);
        core.next_k += 1;
        p
    } else {
        return None;
    };
    let Some(key) = core.pair_at(pos) else {
        return Some(None);
    };
    if core.inflight.contains_key(&key) {
        // The same pair twice in the space (duplicate ports are
        // impossible; duplicate addresses are not).
        return Some(None);
    }
    if !proto.admit(key) {
        core.requeue.push_back(pos);
        *deferred += 1;
        return (*deferred <= 64).then_some(None);
    }
    Some(Some((Source::New(pos), key)))
}

/// Sends what the tokens allow, in batches.
fn send_some<P: Protocol>(
    core: &mut Core<'_, P::Reply>,
    proto: &mut P,
    now: Duration,
) -> Result<(), ScanError> {
    core.refill(now);
    let want = core.batch_want();
    let mut bufs = std::mem::take(&mut core.bufs);
    let r = loop {
        let avail = core.tokens.floor() as usize;
        // Send in full batches unless little work is left.
        let backlog =
            core.resend.len() + core.requeue.len() + (core.shard_len - core.next_k) as usize;
        if avail == 0 || (avail < want && backlog >= want) {
            break Ok(());
        }
        let n = avail.min(core.pacing.batch_max);
        match send_batch(core, proto, now, n, &mut bufs) {
            Ok(true) => {}
            other => break other.map(|_| ()),
        }
    };
    core.bufs = bufs;
    r
}

/// Enters a new pair into the schedule (retries are in it already).
fn start<P: Protocol>(
    core: &mut Core<'_, P::Reply>,
    proto: &mut P,
    src: Source,
    key: Key,
    now: Duration,
) {
    if let Source::New(pos) = src {
        core.start(key, pos, now);
        proto.on_start(key, now);
    }
}

/// Builds and sends one batch of at most `n` probes; `Ok(false)` when
/// there is nothing more to send now.
fn send_batch<P: Protocol>(
    core: &mut Core<'_, P::Reply>,
    proto: &mut P,
    now: Duration,
    n: usize,
    bufs: &mut [u8],
) -> Result<bool, ScanError> {
    let mut meta: Vec<(Source, Key, usize)> = Vec::with_capacity(n);
    let mut deferred = 0;
    while meta.len() < n {
        let Some(next) = next_pair(core, proto, &mut deferred) else {
            break;
        };
        let Some((src, key)) = next else { continue };
        let Some(local) = core.local_for(key.0) else {
            // No route from this machine: nothing can go out.
            start(core, proto, src, key, now);
            let e = "ENETUNREACH: no route to the target from this host".into();
            conclude_local(core, proto, key, e);
            continue;
        };
        let tries = core.inflight.get(&key).map_or(0, |p| p.tries);
        let (sport, seq) = core.cookie.probe(local, key.0, key.1, tries);
        core.ip_id = core.ip_id.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let args = ProbeArgs {
            src: local,
            dst: key.0,
            sport,
            dport: key.1,
            seq,
            ip_id: (core.ip_id >> 16) as u16,
        };
        let i = meta.len();
        match proto.build(&args, &mut bufs[i * P::MAX_PROBE..(i + 1) * P::MAX_PROBE]) {
            Some(len) => meta.push((src, key, len)),
            None => {
                start(core, proto, src, key, now);
                let e = "EAFNOSUPPORT: no source address of the target's family".into();
                conclude_local(core, proto, key, e);
            }
        }
    }
    if meta.is_empty() {
        return Ok(false);
    }
    let pkts: Vec<OutPacket<'_>> = meta
        .iter()
        .enumerate()
        .map(|(i, (_, key, len))| OutPacket {
            dst: key.0,
            bytes: &bufs[i * P::MAX_PROBE..i * P::MAX_PROBE + len],
        })
        .collect();
    let mut refused = None;
    let sent = match core.io.send(&pkts) {
        Ok(k) => k.min(pkts.len()),
        Err(e) if is_transient(&e) => 0,
        // The kernel refused the first packet (no route, a local firewall,
        // the family disabled): that pair is concluded as a local error,
        // the rest are offered again.
        Err(e) => {
            refused = Some(crate::scan::connect::errno_name(&e));
            0
        }
    };
    drop(pkts);
    let had_refusal = refused.is_some();
    core.tokens -= sent as f64;
    let timeout = core.timeout();
    for (i, (src, key, _)) in meta.into_iter().enumerate() {
        if i == 0
            && let Some(error) = refused.take()
        {
            start(core, proto, src, key, now);
            conclude_local(core, proto, key, error);
            continue;
        }
        if i >= sent {
            match src {
                Source::New(pos) => core.requeue.push_front(pos),
                Source::Retry(k) => core.resend.push_front(k),
            }
            continue;
        }
        start(core, proto, src, key, now);
        proto.on_sent(matches!(src, Source::New(_)));
        let Some(p) = core.inflight.get_mut(&key) else {
            continue;
        };
        p.prev_sent = p.last_sent;
        p.last_sent = now;
        p.tries += 1;
        core.timers.push(Timer {
            at: now + timeout,
            key,
            tries: p.tries,
        });
        core.summary.sent += 1;
    }
    if core.walked_at.is_none() && !core.has_work() {
        core.walked_at = Some(now);
    }
    // The socket pushed back: try again after the next wait.
    Ok(sent == n || had_refusal)
}

/// A send error worth retrying later (buffers full, interrupted).
pub fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}
