//! Scan layer, the SYN engine: the TCP layer on the raw core.
//!
//! The schedule (seeded permutation, pacing, retries, sharding, resume) is
//! the raw core's ([`crate::scan::raw::engine`]); this layer builds SYNs,
//! validates SYN-ACKs, RSTs and ICMP errors with the cookie's sequence
//! number, answers SYN-ACKs with a RST, and adds what is TCP's: the rate
//! adapts like a congestion window (it grows while answers keep up and is
//! cut when probes evidently get dropped: answers that only come to a
//! retransmission, or a falling answer ratio), which is what keeps recall
//! high behind rate-limiting firewalls where blind senders lose ports;
//! hosts that answer nothing get one probe per port; hosts that answer
//! SYN-ACK nearly everywhere are held for confirmation (SYN proxies).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::packet::{self, MAX_PROBE_LEN, ProbeFields, Reply, ReplyKind};
use crate::model::{Observation, Proto, Reason, ScanEvent};
use crate::scan::raw::cookie::MAX_TRIES;
use crate::scan::raw::engine::{self as core_engine, Core, Pacing, ProbeArgs, Protocol};
pub use crate::scan::raw::engine::{Space, is_transient};
use crate::scan::raw::io::{OutPacket, PacketIo, Received};
use crate::scan::raw::schedule::Key;
pub use crate::scan::raw::schedule::{ResumeState, ScheduleConfig};
use crate::scan::{ScanError, ScanSummary};

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateMode {
    /// Exactly this many probes per second, never adapted.
    Fixed(u64),
    /// Start at `start`, adapt to loss, never above `max`.
    Adaptive { start: u64, max: u64 },
}

/// Engine settings (built from [`crate::scan::ScanConfig`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub schedule: ScheduleConfig,
    pub rate: RateMode,
    /// Probes in flight to one host at most.
    pub host_inflight: u32,
    /// Hosts answering SYN-ACK on at least this share of ≥ `proxy_min_ports`
    /// concluded ports are treated as SYN proxies / tarpits.
    pub proxy_ratio: f64,
    pub proxy_min_ports: u32,
    /// Answer each SYN-ACK with a RST (the kernel does too, having no socket).
    pub send_rst: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            schedule: ScheduleConfig::default(),
            rate: RateMode::Adaptive {
                start: 20_000,
                max: 1_000_000,
            },
            host_inflight: 4096,
            proxy_ratio: 0.8,
            proxy_min_ports: 100,
            send_rst: true,
        }
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
    /// Times the controller cut the rate.
    pub cuts: u32,
    /// When the last new pair was first probed (from the start).
    pub walked_at: Option<Duration>,
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

const CONTROL_EVERY: Duration = Duration::from_millis(50);
const MIN_RATE: f64 = 50.0;
const SILENT_HOST: u32 = 32;

/// Batches of up to 64 SYNs, each a quarter millisecond of the rate.
const PACING: Pacing = Pacing {
    batch_max: 64,
    full_batches: true,
    min_wait: Duration::ZERO,
    max_inflight: 262_144,
    max_requeue: 65_536,
};

#[derive(Default)]
struct Window {
    sent: u64,
    sent_first: u64,
    ans_first: u64,
    ans_retry: u64,
}

/// The TCP layer: per-host state, RSTs to send, rate control.
struct Tcp<'c> {
    cfg: &'c EngineConfig,
    hosts: HashMap<IpAddr, Host>,
    suspect: Vec<Observation>,
    rsts: Vec<(IpAddr, [u8; MAX_PROBE_LEN], usize)>,
    max_rate: f64,
    adaptive: bool,
    slow_start: bool,
    last_cut: Duration,
    freeze_until: Duration,
    best_ratio: f64,
    low_windows: u32,
    clean_windows: u32,
    window: Window,
    next_control: Duration,
    highest_try: u8,
    silent_hosts: u64,
    cuts: u32,
}

/// Runs a SYN scan over `io` and emits one observation per concluded pair.
pub fn run(
    io: &mut dyn PacketIo<Reply = Reply>,
    space: &Space<'_>,
    cfg: &EngineConfig,
    emit: &mut dyn FnMut(ScanEvent),
) -> Result<EngineOutcome, ScanError> {
    let (rate, max_rate, adaptive) = match cfg.rate {
        RateMode::Fixed(r) => (r.max(1) as f64, r.max(1) as f64, false),
        RateMode::Adaptive { start, max } => {
            let max = max.max(1) as f64;
            ((start.max(1) as f64).min(max), max, true)
        }
    };
    let now = io.now();
    let mut core = Core::new(
        io,
        space,
        &cfg.schedule,
        emit,
        "ports",
        (rate, PACING),
        MAX_PROBE_LEN,
    )?;
    let mut tcp = Tcp {
        cfg,
        hosts: HashMap::new(),
        suspect: Vec::new(),
        rsts: Vec::new(),
        max_rate,
        adaptive,
        slow_start: true,
        last_cut: now,
        freeze_until: now,
        best_ratio: 0.0,
        low_windows: 0,
        clean_windows: 0,
        window: Window::default(),
        next_control: now + CONTROL_EVERY,
        highest_try: 0,
        silent_hosts: 0,
        cuts: 0,
    };
    let end = core_engine::run(&mut core, &mut tcp)?;
    Ok(EngineOutcome {
        summary: end.summary,
        suspect: std::mem::take(&mut tcp.suspect),
        resume: end.resume,
        invalid: core.invalid,
        duplicates: core.duplicates,
        final_rate: core.rate,
        cuts: tcp.cuts,
        walked_at: core.walked_at.map(|t| t.saturating_sub(now)),
    })
}

impl Protocol for Tcp<'_> {
    type Reply = Reply;
    const PROTO: Proto = Proto::Tcp;
    const MAX_PROBE: usize = MAX_PROBE_LEN;

    fn build(&mut self, p: &ProbeArgs, buf: &mut [u8]) -> Option<usize> {
        let f = ProbeFields {
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            seq: p.seq,
            ip_id: p.ip_id,
            tsval: p.seq.rotate_left(13),
        };
        packet::build_syn(buf, &f)
    }

    fn admit(&mut self, key: Key) -> bool {
        let h = self.hosts.entry(key.0).or_default();
        h.inflight < self.cfg.host_inflight.max(1)
    }

    fn on_start(&mut self, key: Key, _now: Duration) {
        self.hosts.entry(key.0).or_default().inflight += 1;
    }

    fn on_sent(&mut self, new: bool) {
        if new {
            self.window.sent_first += 1;
        }
        self.window.sent += 1;
    }

    fn on_reply(&mut self, core: &mut Core<'_, Reply>, r: Received<Reply>) {
        let reply = r.reply;
        let key = (reply.target, reply.target_port);
        let Some((t, p)) = core.accept(reply.local, key, reply.local_port, Some(reply.probe_seq))
        else {
            return;
        };
        let rtt = core.answered(t, &p, r.at);
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
        let reason = match reply.kind {
            ReplyKind::SynAck => {
                if self.cfg.send_rst {
                    let mut b = [0u8; MAX_PROBE_LEN];
                    if let Some(n) = packet::build_rst(
                        &mut b,
                        reply.local,
                        reply.target,
                        reply.local_port,
                        reply.target_port,
                        reply.ack,
                    ) {
                        self.rsts.push((reply.target, b, n));
                    }
                }
                Reason::SynAck
            }
            ReplyKind::Reset => Reason::Reset,
            ReplyKind::Unreachable(reason) => reason,
        };
        core_engine::conclude(core, self, key, reason, rtt, p.tries);
    }

    fn on_timeout(&mut self, core: &mut Core<'_, Reply>, key: Key, _now: Duration) {
        let Some(tries) = core.inflight.get(&key).map(|p| p.tries) else {
            return;
        };
        if tries < self.allowed_tries(self.hosts.get(&key.0), core.base_tries()) {
            core.resend.push_back(key);
        } else {
            core_engine::conclude(core, self, key, Reason::NoResponse, None, tries);
        }
    }

    fn concluded(&mut self, core: &mut Core<'_, Reply>, o: Observation) {
        let (key, reason) = ((o.ip, o.port), o.reason);
        let proxy_check =
            core.nports >= self.cfg.proxy_min_ports as u64 && self.cfg.proxy_min_ports > 0;
        // Per-host state is what the silent-host and proxy rules need; with
        // few ports per host neither applies, so /8-sized scans with a
        // handful of ports keep only hosts with probes in flight.
        let keep_hosts = core.nports >= SILENT_HOST as u64;
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
                    (core.emit)(ScanEvent::Notice(msg));
                }
            }
        }
        let h = self.hosts.entry(key.0).or_default();
        if !proxy_check {
            if h.inflight == 0 && !keep_hosts {
                self.hosts.remove(&key.0);
            }
            (core.emit)(ScanEvent::Observation(o));
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
                (core.emit)(ScanEvent::Observation(o));
            }
        } else {
            (core.emit)(ScanEvent::Observation(o));
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
                (core.emit)(ScanEvent::Notice(msg));
            } else {
                for o in held {
                    (core.emit)(ScanEvent::Observation(o));
                }
            }
        }
    }

    fn after_send(&mut self, core: &mut Core<'_, Reply>) -> Result<(), ScanError> {
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
        match core.io.send(&pkts) {
            // A lost RST costs nothing but a half-open entry on the target
            // (and the kernel sends one as well).
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn wake_at(&self) -> Option<Duration> {
        Some(self.next_control)
    }

    fn tick(&mut self, core: &mut Core<'_, Reply>, now: Duration) {
        if now >= self.next_control {
            self.control(core, now);
        }
    }

    fn finish(&mut self, core: &mut Core<'_, Reply>) {
        // Hosts never judged (too few ports concluded): report what we have.
        for h in self.hosts.values_mut() {
            for o in std::mem::take(&mut h.held) {
                (core.emit)(ScanEvent::Observation(o));
            }
        }
    }
}

impl Tcp<'_> {
    fn allowed_tries(&self, host: Option<&Host>, base: u8) -> u8 {
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

    fn control(&mut self, core: &mut Core<'_, Reply>, now: Duration) {
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
            core.rate = (core.rate * 0.6).max(MIN_RATE);
            self.cuts += 1;
            self.slow_start = false;
            self.clean_windows = 0;
            self.low_windows = 0;
            self.last_cut = now;
            // Let the evidence about the old rate drain before judging again.
            self.freeze_until = now + core.timeout().max(2 * CONTROL_EVERY);
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
                core.rate
            );
            (core.emit)(ScanEvent::Notice(msg));
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
        if achieved >= 0.7 * core.rate && now >= self.freeze_until {
            let grow = if self.slow_start { 2.0 } else { 1.1 };
            core.rate = (core.rate * grow).min(self.max_rate);
        }
    }
}
