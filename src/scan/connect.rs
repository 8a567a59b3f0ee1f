//! Connect scan engine: full TCP handshakes through the kernel, for when raw
//! sockets are not available (no root / CAP_NET_RAW) or not wanted.
//!
//! Why it is built this way:
//! - Pairs are walked in the seeded permutation order of `permute`, so hosts
//!   are interleaved and no host receives its ports back to back.
//! - Concurrency is sized from the open-file limit (raised to the hard limit
//!   first); EMFILE / ENOBUFS shrink it and the pair is tried again after a
//!   pause instead of failing (RustScan panics here). Each lowering is
//!   announced once, with the new value.
//! - Every pair in scope ends in exactly one observation. A probe the local
//!   system refuses outright (no route, address family disabled, a local
//!   firewall, a shortage that outlasts the back-off) concludes with reason
//!   `local-error` naming the errno: the connect is issued non-blocking, so
//!   an error returned by the `connect()` call itself is ours, while one
//!   that arrives later came from the network.
//! - Sockets close with SO_LINGER 0, i.e. with a RST: no TIME_WAIT pile-up,
//!   so a quarter-million probes do not exhaust ephemeral ports.
//! - The per-probe time-out follows measured RTTs (RFC 6298 style smoothed
//!   RTT + 4 × variance), clamped to the configured floor and ceiling.
//! - Time-outs are retried later, interleaved with new probes, not at once.
//! - A connect to a local address can meet itself (TCP simultaneous open:
//!   the kernel picked the destination port as the source port), which
//!   looks like an open port. A socket whose local address equals the
//!   remote one is dropped and the pair probed again from a source port
//!   bound apart from the destination port.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::permute::Permutation;
use super::{ScanConfig, ScanError, ScanSummary, TimeoutConfig};
use crate::model::{Observation, Progress, Proto, Reason, ScanEvent};
use crate::target::{PortSet, Targets};

/// Descriptors kept free for everything that is not a probe socket.
const RESERVED_FDS: u64 = 64;
/// Never more probes in flight than this, whatever the limit allows.
const MAX_CONCURRENCY: usize = 16_384;
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

pub async fn run(
    targets: &Targets,
    ports: &PortSet,
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    let naddr = targets.len();
    scan_pairs(naddr, |i| targets.get(i), ports.tcp(), cfg, events).await
}

/// The engine proper, over any indexable address list (tests use a closure).
pub async fn scan_pairs(
    naddr: u64,
    addr_at: impl Fn(u64) -> Option<IpAddr>,
    ports: &[u16],
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    scan_pairs_with(naddr, addr_at, ports, cfg, events, None).await
}

/// A probe tried this many times against local shortages ends as
/// `local-error`; the pauses between tries double from [`BACKOFF_FIRST`].
const MAX_LOCAL_TRIES: u8 = 6;
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// EADDRNOTAVAIL lowers the concurrency only with this many probes in
/// flight (ephemeral ports running out); with fewer it is the address's
/// own problem (e.g. IPv6 disabled) and must not slow the other pairs.
const EADDRNOTAVAIL_CROWD: usize = 1024;

/// Seeded fault injection for tests: makes `connect()` fail locally, as
/// the kernel would, before any socket is made.
#[derive(Debug, Clone)]
pub struct LocalFaults {
    pub seed: u64,
    /// Share of addresses that always fail with `always` (e.g. IPv6 off).
    pub broken_addrs: f64,
    pub always: i32,
    /// Chance that one attempt fails with a shortage from `shortages`.
    pub transient: f64,
    pub shortages: Vec<i32>,
}

impl LocalFaults {
    fn roll(&self, parts: &[u64]) -> u64 {
        let mut h = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        for &p in parts {
            h = (h ^ p).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 31;
        }
        h
    }

    fn chance(&self, p: f64, parts: &[u64]) -> bool {
        p > 0.0 && (self.roll(parts) >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn error_for(&self, addr: SocketAddr, attempt: u32) -> Option<io::Error> {
        let ip = match addr.ip() {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => u128::from(a) as u64,
        };
        if self.chance(self.broken_addrs, &[1, ip]) {
            return Some(io::Error::from_raw_os_error(self.always));
        }
        if !self.shortages.is_empty()
            && self.chance(self.transient, &[2, ip, addr.port() as u64, attempt as u64])
        {
            let i = self.roll(&[3, ip, attempt as u64]) as usize % self.shortages.len();
            return Some(io::Error::from_raw_os_error(self.shortages[i]));
        }
        None
    }
}

/// [`scan_pairs`] with injected local faults (tests).
pub async fn scan_pairs_with(
    naddr: u64,
    addr_at: impl Fn(u64) -> Option<IpAddr>,
    ports: &[u16],
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
    faults: Option<Arc<LocalFaults>>,
) -> Result<ScanSummary, ScanError> {
    let started = Instant::now();
    let nports = ports.len() as u64;
    let total = naddr
        .checked_mul(nports)
        .ok_or_else(|| ScanError::Config("too many (address, port) pairs".into()))?;
    let limit = cfg
        .concurrency
        .unwrap_or_else(|| default_concurrency(raise_nofile_limit()))
        .clamp(1, MAX_CONCURRENCY);
    let perm = Permutation::new(total, cfg.seed);
    let mut rtt = RttEstimator::new(cfg.timeout);
    let clock = TimeoutClock {
        current_us: Arc::new(AtomicU64::new(rtt.timeout().as_micros() as u64)),
        min: cfg.timeout.min,
    };
    let mut pacer = cfg.rate.map(Pacer::new);

    // A shard takes the permutation positions p with p % n == i.
    let (first, step) = cfg.shard.unwrap_or((0, 1));
    let planned = total.saturating_sub(first).div_ceil(step.max(1));
    let stopped = || cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    let mut next_pos = first;
    let mut retry: VecDeque<Job> = VecDeque::new();
    // Pairs waiting out a local shortage, each until its own time.
    let mut delayed: Vec<(Instant, Job)> = Vec::new();
    let mut inflight: JoinSet<(Job, Outcome)> = JoinSet::new();
    let mut summary = ScanSummary::default();
    let mut ticker = ProgressTicker {
        last: Instant::now(),
        last_sent: 0,
    };
    let mut window = Window { limit, epoch: 0 };
    let mut attempts = 0u32;

    loop {
        // Fill the window.
        // Once stopped, nothing new is sent; probes in flight still conclude.
        while !stopped() && inflight.len() < window.limit {
            let now = Instant::now();
            let job = if let Some(i) = delayed.iter().position(|(t, _)| *t <= now) {
                delayed.swap_remove(i).1
            } else {
                match retry.pop_front() {
                    Some(job) => job,
                    None if next_pos < total => {
                        let idx = perm.nth(next_pos);
                        next_pos += step;
                        let Some(ip) = addr_at(idx % naddr) else {
                            continue;
                        };
                        Job::new(SocketAddr::new(ip, ports[(idx / naddr) as usize]))
                    }
                    None => break,
                }
            };
            if let Some(p) = pacer.as_mut() {
                p.wait().await;
            }
            summary.sent += 1;
            attempts = attempts.wrapping_add(1);
            let job = Job {
                epoch: window.epoch,
                ..job
            };
            let injected = faults
                .as_ref()
                .and_then(|f| f.error_for(job.addr, attempts));
            inflight.spawn(probe(job, clock.clone(), injected));
        }

        let next_delayed = delayed.iter().map(|(t, _)| *t).min();
        let joined = match next(&mut inflight, next_delayed, window.limit, stopped()).await {
            Next::Joined(j) => j,
            Next::Woke => continue,
            Next::Done => break,
        };
        let (mut job, outcome) = match joined {
            Ok(v) => v,
            Err(e) => return Err(ScanError::Io(io::Error::other(e))),
        };
        job.tries += 1;

        ticker.tick(&summary, planned, &events).await;
        let reason = match outcome {
            Outcome::Answered { reason, rtt: t } => {
                rtt.sample(t);
                let us = rtt.timeout().as_micros() as u64;
                clock.current_us.store(us, Ordering::Relaxed);
                finish(&mut summary, &events, job, reason, Some(t), None).await?;
                continue;
            }
            Outcome::Unreachable { reason, rtt: t } => {
                finish(&mut summary, &events, job, reason, t, None).await?;
                continue;
            }
            // `probe` never returns a self-connect: it probes again or
            // concludes with a local error.
            Outcome::TimedOut | Outcome::SelfConnect => Reason::NoResponse,
            Outcome::Local { error, shortage } => {
                // Our side refused the probe: nothing went on the wire.
                summary.sent -= 1;
                job.tries -= 1;
                job.local_tries += 1;
                if !shortage || job.local_tries >= MAX_LOCAL_TRIES {
                    let named = errno_name(&error);
                    finish(
                        &mut summary,
                        &events,
                        job,
                        Reason::LocalError,
                        None,
                        Some(named),
                    )
                    .await?;
                    continue;
                }
                // Out of descriptors, buffers or ports: shrink the window
                // (once per lowering), pause this pair, try it again.
                window
                    .shortage(job.epoch, &error, inflight.len(), &events)
                    .await;
                let pause = BACKOFF_FIRST
                    .saturating_mul(1 << (job.local_tries - 1).min(8))
                    .min(BACKOFF_MAX);
                delayed.push((Instant::now() + pause, job));
                continue;
            }
        };
        if job.tries <= cfg.retries {
            retry.push_back(job);
        } else {
            finish(&mut summary, &events, job, reason, None, None).await?;
        }
    }
    summary.interrupted =
        stopped() && (next_pos < total || !retry.is_empty() || !delayed.is_empty());
    summary.elapsed = started.elapsed();
    summary.rate = summary.sent as f64 / summary.elapsed.as_secs_f64().max(1e-9);
    Ok(summary)
}

/// The window of probes in flight, lowered on local shortages.
struct Window {
    limit: usize,
    /// Bumped at each lowering: a shortage of a probe started before the
    /// last lowering says nothing new and lowers nothing more.
    epoch: u32,
}

impl Window {
    /// A local shortage met by a probe started in `epoch`: lowers the
    /// window (once per lowering) and says so.
    async fn shortage(
        &mut self,
        epoch: u32,
        error: &io::Error,
        inflight: usize,
        events: &mpsc::Sender<ScanEvent>,
    ) {
        if epoch != self.epoch {
            return;
        }
        if let Some(new_limit) = lowered(error, inflight, self.limit) {
            self.limit = new_limit;
            self.epoch += 1;
            notice(
                events,
                format!(
                    "local resource shortage ({}); concurrency lowered to {new_limit}",
                    errno_name(error)
                ),
            )
            .await;
        }
    }
}

/// A local shortage with `inflight` probes in flight under `limit`: the
/// lower window, when this shortage calls for one. Out of ephemeral ports
/// (EADDRNOTAVAIL) with few probes in flight is not crowding.
fn lowered(error: &io::Error, inflight: usize, limit: usize) -> Option<usize> {
    let crowded =
        error.raw_os_error() != Some(libc::EADDRNOTAVAIL) || inflight >= EADDRNOTAVAIL_CROWD;
    let new_limit = (inflight * 3 / 4).max(1);
    (crowded && new_limit < limit).then_some(new_limit)
}

/// What the scan loop does next.
enum Next {
    /// A probe concluded (or the join failed).
    Joined(Result<(Job, Outcome), tokio::task::JoinError>),
    /// A delayed pair is due: fill the window again.
    Woke,
    /// Nothing in flight and nothing delayed (or stopped): the scan ends.
    Done,
}

/// Waits for the next probe to conclude, or for the next delayed pair
/// (`due`) when the window has room for it.
async fn next(
    inflight: &mut JoinSet<(Job, Outcome)>,
    due: Option<Instant>,
    limit: usize,
    stopped: bool,
) -> Next {
    if inflight.is_empty() {
        // Nothing in flight: wait for the next delayed pair, or finish.
        return match due {
            Some(t) if !stopped => {
                tokio::time::sleep_until(t.into()).await;
                Next::Woke
            }
            _ => Next::Done,
        };
    }
    let joined = match due {
        Some(t) if inflight.len() < limit && !stopped => {
            tokio::select! {
                j = inflight.join_next() => j,
                _ = tokio::time::sleep_until(t.into()) => return Next::Woke,
            }
        }
        _ => inflight.join_next().await,
    };
    joined.map_or(Next::Done, Next::Joined)
}

/// Progress events, one per [`PROGRESS_EVERY`] at most.
struct ProgressTicker {
    last: Instant,
    last_sent: u64,
}

impl ProgressTicker {
    async fn tick(
        &mut self,
        summary: &ScanSummary,
        planned: u64,
        events: &mpsc::Sender<ScanEvent>,
    ) {
        if self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        let secs = self.last.elapsed().as_secs_f64();
        // A local error takes its probe back out of `sent`, so `sent`
        // can be below the last sample: no underflow, a rate of 0.
        let rate = summary.sent.saturating_sub(self.last_sent) as f64 / secs;
        self.last_sent = summary.sent;
        self.last = Instant::now();
        let p = Progress {
            done: summary.probed,
            total: planned,
            open: summary.open,
            rate,
        };
        let _ = events.send(ScanEvent::Progress(p)).await;
    }
}

#[derive(Debug, Clone, Copy)]
struct Job {
    addr: SocketAddr,
    /// Probes that went on the wire.
    tries: u8,
    /// Attempts the local system refused.
    local_tries: u8,
    /// The lowering epoch the probe was started in.
    epoch: u32,
}

impl Job {
    /// A pair not probed yet (its epoch is set when it is started).
    fn new(addr: SocketAddr) -> Job {
        Job {
            addr,
            tries: 0,
            local_tries: 0,
            epoch: 0,
        }
    }
}

mod probe;

use probe::{Outcome, TimeoutClock, probe};
#[cfg(test)]
use probe::{classify_error, local};

/// `EADDRNOTAVAIL: Cannot assign requested address`: the errno's name and
/// the system's text, for a `local-error` observation.
pub fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL",
        Some(libc::ENETUNREACH) => "ENETUNREACH",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH",
        Some(libc::EMFILE) => "EMFILE",
        Some(libc::ENFILE) => "ENFILE",
        Some(libc::ENOBUFS) => "ENOBUFS",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::EAFNOSUPPORT) => "EAFNOSUPPORT",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EADDRINUSE) => "EADDRINUSE",
        Some(libc::ENETDOWN) => "ENETDOWN",
        Some(n) => return format!("errno {n}: {}", strip_os_suffix(e)),
        None => return e.to_string(),
    };
    format!("{name}: {}", strip_os_suffix(e))
}

/// `Cannot assign requested address (os error 99)` → without the suffix.
fn strip_os_suffix(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

async fn finish(
    summary: &mut ScanSummary,
    events: &mpsc::Sender<ScanEvent>,
    job: Job,
    reason: Reason,
    rtt: Option<Duration>,
    error: Option<String>,
) -> Result<(), ScanError> {
    let mut obs = Observation::new(
        job.addr.ip(),
        job.addr.port(),
        Proto::Tcp,
        reason,
        rtt.map(|d| d.as_micros() as f64 / 1000.0),
    );
    obs.tries = job.tries;
    obs.error = error;
    summary.count_observation(&obs);
    // A closed receiver means the caller stopped listening: stop scanning.
    events
        .send(ScanEvent::Observation(obs))
        .await
        .map_err(|_| ScanError::Config("the event receiver was dropped".into()))
}

async fn notice(events: &mpsc::Sender<ScanEvent>, text: String) {
    let _ = events.send(ScanEvent::Notice(text)).await;
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

fn default_concurrency(nofile: u64) -> usize {
    (nofile.saturating_sub(RESERVED_FDS) * 9 / 10).clamp(1, MAX_CONCURRENCY as u64) as usize
}

/// Smoothed RTT estimate (RFC 6298) turned into a probe time-out.
#[derive(Debug)]
struct RttEstimator {
    bounds: TimeoutConfig,
    srtt: Option<f64>,
    rttvar: f64,
}

impl RttEstimator {
    fn new(bounds: TimeoutConfig) -> Self {
        RttEstimator {
            bounds,
            srtt: None,
            rttvar: 0.0,
        }
    }

    fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2.0;
            }
            Some(s) => {
                self.rttvar = 0.75 * self.rttvar + 0.25 * (s - r).abs();
                self.srtt = Some(0.875 * s + 0.125 * r);
            }
        }
    }

    fn timeout(&self) -> Duration {
        let Some(s) = self.srtt else {
            return self.bounds.initial.clamp(self.bounds.min, self.bounds.max);
        };
        Duration::from_secs_f64(s + 4.0 * self.rttvar).clamp(self.bounds.min, self.bounds.max)
    }
}

/// A token bucket for `--rate`: one token per probe, a burst of 1/20 s.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let burst = (rate / 20.0).max(1.0);
        Pacer {
            rate,
            tokens: burst,
            burst,
            last: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        loop {
            let now = Instant::now();
            self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
                .min(self.burst);
            self.last = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, TcpListener};

    async fn collect(
        addrs: Vec<IpAddr>,
        ports: Vec<u16>,
        cfg: ScanConfig,
    ) -> (ScanSummary, BTreeMap<(IpAddr, u16), Observation>) {
        let (tx, mut rx) = mpsc::channel(1024);
        let n = addrs.len() as u64;
        let reader = tokio::spawn(async move {
            let mut seen = BTreeMap::new();
            while let Some(ev) = rx.recv().await {
                if let ScanEvent::Observation(o) = ev {
                    assert!(
                        seen.insert((o.ip, o.port), o).is_none(),
                        "pair reported twice"
                    );
                }
            }
            seen
        });
        let summary = scan_pairs(n, |i| addrs.get(i as usize).copied(), &ports, &cfg, tx)
            .await
            .unwrap();
        (summary, reader.await.unwrap())
    }

    #[tokio::test]
    async fn loopback_open_and_closed() {
        let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = [
            l1.local_addr().unwrap().port(),
            l2.local_addr().unwrap().port(),
        ];
        // A port that was just free: bind, read it, drop.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (summary, seen) = collect(
            vec![lo],
            vec![open[0], open[1], closed],
            ScanConfig::default(),
        )
        .await;
        assert_eq!(summary.probed, 3);
        assert_eq!(summary.open, 2);
        assert_eq!(seen[&(lo, open[0])].reason, Reason::Connected);
        assert_eq!(seen[&(lo, open[1])].state, crate::model::PortState::Open);
        assert_eq!(seen[&(lo, closed)].reason, Reason::ConnRefused);
        assert!(seen[&(lo, closed)].rtt_ms.is_some());
    }

    #[tokio::test]
    async fn tiny_concurrency_still_covers_everything() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ports: Vec<u16> = (40_000..40_050).collect();
        let cfg = ScanConfig {
            concurrency: Some(1),
            ..ScanConfig::default()
        };
        let (summary, seen) = collect(
            vec![lo, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))],
            ports,
            cfg,
        )
        .await;
        assert_eq!(summary.probed, 100);
        assert_eq!(seen.len(), 100);
    }

    #[tokio::test]
    async fn shards_cover_the_space_exactly_once() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let addrs = vec![lo, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))];
        let ports: Vec<u16> = (40_100..40_137).collect();
        let mut union = BTreeMap::new();
        for i in 0..3 {
            let cfg = ScanConfig {
                shard: Some((i, 3)),
                seed: 9,
                ..ScanConfig::default()
            };
            let (summary, seen) = collect(addrs.clone(), ports.clone(), cfg).await;
            assert_eq!(summary.probed as usize, seen.len());
            for (k, o) in seen {
                assert!(union.insert(k, o).is_none(), "{k:?} in two shards");
            }
        }
        assert_eq!(union.len(), 2 * 37);
    }

    #[tokio::test]
    async fn a_raised_stop_flag_sends_nothing_more() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cfg = ScanConfig {
            stop: Some(stop),
            ..ScanConfig::default()
        };
        let (summary, seen) = collect(vec![lo], (40_200..40_300).collect(), cfg).await;
        assert!(summary.interrupted);
        assert_eq!(summary.sent, 0);
        assert!(seen.is_empty());
    }

    #[test]
    fn rtt_estimator_clamps_to_bounds() {
        let bounds = TimeoutConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let mut r = RttEstimator::new(bounds);
        assert_eq!(r.timeout(), Duration::from_secs(1));
        for _ in 0..50 {
            r.sample(Duration::from_micros(50));
        }
        assert_eq!(r.timeout(), Duration::from_millis(100));
        for _ in 0..50 {
            r.sample(Duration::from_secs(5));
        }
        assert_eq!(r.timeout(), Duration::from_secs(2));
    }

    #[test]
    fn concurrency_follows_the_fd_limit() {
        assert_eq!(default_concurrency(1024), 864);
        assert_eq!(default_concurrency(1_000_000), MAX_CONCURRENCY);
        assert_eq!(default_concurrency(10), 1);
    }

    #[test]
    fn local_refusals_are_not_port_states() {
        assert!(matches!(
            local(io::Error::from_raw_os_error(libc::EMFILE)),
            Outcome::Local { shortage: true, .. }
        ));
        assert!(matches!(
            local(io::Error::from_raw_os_error(libc::ENETUNREACH)),
            Outcome::Local {
                shortage: false,
                ..
            }
        ));
        assert!(matches!(
            classify_error(io::Error::from_raw_os_error(libc::EHOSTUNREACH)),
            Outcome::Unreachable {
                reason: Reason::HostUnreach,
                rtt: None
            }
        ));
        assert_eq!(
            errno_name(&io::Error::from_raw_os_error(libc::EADDRNOTAVAIL)),
            "EADDRNOTAVAIL: Cannot assign requested address"
        );
    }

    /// Runs the engine with injected local faults and returns the
    /// observations (asserting no pair twice) and the notices.
    async fn collect_faulty(
        addrs: Vec<IpAddr>,
        ports: Vec<u16>,
        cfg: ScanConfig,
        faults: LocalFaults,
    ) -> (
        ScanSummary,
        BTreeMap<(IpAddr, u16), Observation>,
        Vec<String>,
    ) {
        let (tx, mut rx) = mpsc::channel(1024);
        let n = addrs.len() as u64;
        let reader = tokio::spawn(async move {
            let mut seen = BTreeMap::new();
            let mut notices = Vec::new();
            while let Some(ev) = rx.recv().await {
                match ev {
                    ScanEvent::Observation(o) => {
                        let k = (o.ip, o.port);
                        assert!(seen.insert(k, o).is_none(), "{k:?} reported twice");
                    }
                    ScanEvent::Notice(t) => notices.push(t),
                    _ => {}
                }
            }
            (seen, notices)
        });
        let summary = scan_pairs_with(
            n,
            |i| addrs.get(i as usize).copied(),
            &ports,
            &cfg,
            tx,
            Some(Arc::new(faults)),
        )
        .await
        .unwrap();
        let (seen, notices) = reader.await.unwrap();
        (summary, seen, notices)
    }

    /// Property: whatever the local system refuses, and however often,
    /// every (address, port) in scope ends in exactly one observation, and
    /// the summary counts the local errors.
    #[tokio::test]
    async fn injected_local_errors_still_cover_the_scope_exactly_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        let addrs: Vec<IpAddr> = (1..=6)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect();
        let mut ports: Vec<u16> = (40_400..40_412).collect();
        ports.push(open);
        for seed in 0..6u64 {
            let faults = LocalFaults {
                seed,
                broken_addrs: 0.3,
                always: if seed % 2 == 0 {
                    libc::ENETUNREACH
                } else {
                    libc::EADDRNOTAVAIL
                },
                transient: 0.25,
                shortages: vec![libc::EMFILE, libc::ENOBUFS, libc::EADDRNOTAVAIL],
            };
            let cfg = ScanConfig {
                concurrency: Some(16),
                seed,
                ..ScanConfig::default()
            };
            let (summary, seen, _) =
                collect_faulty(addrs.clone(), ports.clone(), cfg, faults.clone()).await;
            assert_eq!(seen.len(), addrs.len() * ports.len(), "seed {seed}");
            for a in &addrs {
                for p in &ports {
                    assert!(seen.contains_key(&(*a, *p)), "seed {seed}: {a}:{p} missing");
                }
            }
            let local: Vec<&Observation> = seen
                .values()
                .filter(|o| o.reason == Reason::LocalError)
                .collect();
            assert_eq!(summary.local_errors as usize, local.len(), "seed {seed}");
            assert_eq!(summary.probed as usize, seen.len());
            for o in &local {
                assert_eq!(o.state, crate::model::PortState::Filtered);
                assert_eq!(o.tries, 0, "nothing went on the wire");
                let e = o.error.as_deref().unwrap();
                assert!(
                    e.starts_with("ENETUNREACH")
                        || e.starts_with("EADDRNOTAVAIL")
                        || e.starts_with("EMFILE")
                        || e.starts_with("ENOBUFS"),
                    "{e}"
                );
                // A broken address fails on every port.
                let broken = faults.chance(
                    faults.broken_addrs,
                    &[
                        1,
                        match o.ip {
                            IpAddr::V4(a) => u32::from(a) as u64,
                            IpAddr::V6(a) => u128::from(a) as u64,
                        },
                    ],
                );
                assert!(broken || !e.starts_with("ENETUNREACH"), "{e}");
            }
            // Addresses that are not broken answered for real.
            for ((a, p), o) in &seen {
                if o.reason != Reason::LocalError && *p == open && *a == addrs[0] {
                    assert_eq!(o.reason, Reason::Connected);
                }
            }
        }
    }

    /// Under a storm of EMFILE each lowering is announced once, with the
    /// new concurrency, and the values only go down.
    #[tokio::test]
    async fn each_concurrency_lowering_is_announced_once() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let faults = LocalFaults {
            seed: 7,
            broken_addrs: 0.0,
            always: libc::EMFILE,
            transient: 0.6,
            shortages: vec![libc::EMFILE],
        };
        let cfg = ScanConfig {
            concurrency: Some(256),
            ..ScanConfig::default()
        };
        let ports: Vec<u16> = (41_000..41_600).collect();
        let (summary, seen, notices) = collect_faulty(vec![lo], ports, cfg, faults).await;
        assert_eq!(seen.len(), 600);
        assert_eq!(summary.probed, 600);
        let limits: Vec<usize> = notices
            .iter()
            .filter_map(|n| n.rsplit_once("concurrency lowered to "))
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        assert!(!limits.is_empty(), "{notices:?}");
        assert!(limits.windows(2).all(|w| w[1] < w[0]), "{limits:?}");
        assert!(limits.len() <= 20, "{} notices: {notices:?}", limits.len());
        assert!(notices[0].contains("EMFILE"), "{}", notices[0]);
    }

    /// The case without the namespace: a family the kernel
    /// refuses at once still yields its observations (the lab test runs
    /// the real IPv6-disabled namespace).
    #[tokio::test]
    async fn a_refused_family_yields_local_error_observations() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6: IpAddr = "::1".parse().unwrap();
        let (summary, seen, _) = collect_faulty(
            vec![lo, v6],
            vec![40_990, 40_991],
            ScanConfig::default(),
            LocalFaults {
                seed: 3,
                broken_addrs: 1.0,
                always: libc::EADDRNOTAVAIL,
                transient: 0.0,
                shortages: vec![],
            },
        )
        .await;
        assert_eq!(seen.len(), 4);
        assert_eq!(summary.local_errors, 4);
        assert!(
            seen.values()
                .all(|o| o.error.as_deref().unwrap().starts_with("EADDRNOTAVAIL"))
        );
    }
}
