//! Connect scan engine: full TCP handshakes through the kernel, for when raw
//! sockets are not available (no root / CAP_NET_RAW) or not wanted.
//!
//! Why it is built this way:
//! - Pairs are walked in the seeded permutation order of `permute`, so hosts
//!   are interleaved and no host receives its ports back to back.
//! - Concurrency is sized from the open-file limit (raised to the hard limit
//!   first); EMFILE / ENOBUFS / EADDRNOTAVAIL shrink it and the pair is tried
//!   again after a pause instead of failing (RustScan panics here).
//! - Sockets close with SO_LINGER 0, i.e. with a RST: no TIME_WAIT pile-up,
//!   so a quarter-million probes do not exhaust ephemeral ports.
//! - The per-probe time-out follows measured RTTs (RFC 6298 style smoothed
//!   RTT + 4 × variance), clamped to the configured floor and ceiling.
//! - Time-outs are retried later, interleaved with new probes, not at once.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;
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
    let started = Instant::now();
    let nports = ports.len() as u64;
    let total = naddr
        .checked_mul(nports)
        .ok_or_else(|| ScanError::Config("too many (address, port) pairs".into()))?;
    let mut limit = cfg
        .concurrency
        .unwrap_or_else(|| default_concurrency(raise_nofile_limit()))
        .clamp(1, MAX_CONCURRENCY);
    let perm = Permutation::new(total, cfg.seed);
    let rtt = Arc::new(Mutex::new(RttEstimator::new(cfg.timeout)));
    let mut pacer = cfg.rate.map(Pacer::new);

    // A shard takes the permutation positions p with p % n == i.
    let (first, step) = cfg.shard.unwrap_or((0, 1));
    let planned = total.saturating_sub(first).div_ceil(step.max(1));
    let stopped = || cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    let mut next_pos = first;
    let mut retry: VecDeque<Job> = VecDeque::new();
    let mut inflight: JoinSet<(Job, Outcome)> = JoinSet::new();
    let mut summary = ScanSummary::default();
    let mut last_progress = Instant::now();
    let mut last_sent = 0u64;
    let mut backoff_until: Option<Instant> = None;

    loop {
        // Fill the window.
        // Once stopped, nothing new is sent; probes in flight still conclude.
        while !stopped()
            && inflight.len() < limit
            && backoff_until.is_none_or(|t| Instant::now() >= t)
        {
            let job = match retry.pop_front() {
                Some(job) => job,
                None if next_pos < total => {
                    let idx = perm.nth(next_pos);
                    next_pos += step;
                    let Some(ip) = addr_at(idx % naddr) else {
                        continue;
                    };
                    Job {
                        addr: SocketAddr::new(ip, ports[(idx / naddr) as usize]),
                        tries: 0,
                    }
                }
                None => break,
            };
            if let Some(p) = pacer.as_mut() {
                p.wait().await;
            }
            let timeout = rtt.lock().map(|r| r.timeout()).unwrap_or(cfg.timeout.max);
            summary.sent += 1;
            inflight.spawn(probe(job, timeout));
        }
        backoff_until = None;

        let Some(joined) = inflight.join_next().await else {
            break; // nothing in flight and nothing left to send
        };
        let (mut job, outcome) = match joined {
            Ok(v) => v,
            Err(e) => return Err(ScanError::Io(io::Error::other(e))),
        };
        job.tries += 1;

        if last_progress.elapsed() >= PROGRESS_EVERY {
            let secs = last_progress.elapsed().as_secs_f64();
            let rate = (summary.sent - last_sent) as f64 / secs;
            last_sent = summary.sent;
            last_progress = Instant::now();
            let p = Progress {
                done: summary.probed,
                total: planned,
                open: summary.open,
                rate,
            };
            let _ = events.send(ScanEvent::Progress(p)).await;
        }
        let reason = match outcome {
            Outcome::Answered { reason, rtt: t } => {
                if let Ok(mut r) = rtt.lock() {
                    r.sample(t);
                }
                finish(&mut summary, &events, job, reason, Some(t)).await?;
                continue;
            }
            Outcome::Unreachable { reason, rtt: t } => {
                finish(&mut summary, &events, job, reason, t).await?;
                continue;
            }
            Outcome::TimedOut => Reason::NoResponse,
            Outcome::LocalShortage(e) => {
                // Our side ran out of descriptors, buffers or ports: not the
                // target's answer. Shrink the window, pause, try again.
                summary.sent -= 1;
                job.tries -= 1;
                let new_limit = (inflight.len() * 3 / 4).max(1);
                if new_limit < limit {
                    limit = new_limit;
                    notice(
                        &events,
                        format!("local resource shortage ({e}); concurrency lowered to {limit}"),
                    )
                    .await;
                }
                backoff_until = Some(Instant::now() + Duration::from_millis(50));
                retry.push_front(job);
                continue;
            }
        };
        if job.tries <= cfg.retries {
            retry.push_back(job);
        } else {
            finish(&mut summary, &events, job, reason, None).await?;
        }
    }
    summary.interrupted = stopped() && (next_pos < total || !retry.is_empty());
    summary.elapsed = started.elapsed();
    summary.rate = summary.sent as f64 / summary.elapsed.as_secs_f64().max(1e-9);
    Ok(summary)
}

#[derive(Debug, Clone, Copy)]
struct Job {
    addr: SocketAddr,
    tries: u8,
}

#[derive(Debug)]
enum Outcome {
    Answered {
        reason: Reason,
        rtt: Duration,
    },
    /// An error answer (ICMP unreachable, …); `rtt` when it came from the network.
    Unreachable {
        reason: Reason,
        rtt: Option<Duration>,
    },
    TimedOut,
    LocalShortage(io::Error),
}

async fn probe(job: Job, timeout: Duration) -> (Job, Outcome) {
    let outcome = connect_once(job.addr, timeout).await;
    (job, outcome)
}

async fn connect_once(addr: SocketAddr, timeout: Duration) -> Outcome {
    let socket = match if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    } {
        Ok(s) => s,
        Err(e) => return classify_error(e),
    };
    // Close with RST: no TIME_WAIT, so ephemeral ports are not exhausted.
    // (A zero linger never blocks on drop, which is what tokio warns about.)
    if let Err(e) = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO)) {
        return classify_error(e);
    }
    let start = Instant::now();
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(_stream)) => Outcome::Answered {
            reason: Reason::Connected,
            rtt: start.elapsed(),
        },
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Outcome::Answered {
            reason: Reason::ConnRefused,
            rtt: start.elapsed(),
        },
        Ok(Err(e)) => match classify_error(e) {
            Outcome::Unreachable { reason, .. } => Outcome::Unreachable {
                reason,
                rtt: Some(start.elapsed()),
            },
            other => other,
        },
        Err(_elapsed) => Outcome::TimedOut,
    }
}

fn classify_error(e: io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(
            libc::EMFILE
            | libc::ENFILE
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::EADDRNOTAVAIL
            | libc::EAGAIN,
        ) => Outcome::LocalShortage(e),
        Some(libc::ETIMEDOUT) => Outcome::TimedOut,
        code => Outcome::Unreachable {
            reason: match code {
                Some(libc::EHOSTUNREACH) => Reason::HostUnreach,
                Some(libc::ENETUNREACH) => Reason::NetUnreach,
                Some(libc::EACCES | libc::EPERM) => Reason::AdminProhibited,
                Some(libc::ENOPROTOOPT) => Reason::ProtoUnreach,
                _ => Reason::IcmpUnreach,
            },
            rtt: None,
        },
    }
}

async fn finish(
    summary: &mut ScanSummary,
    events: &mpsc::Sender<ScanEvent>,
    job: Job,
    reason: Reason,
    rtt: Option<Duration>,
) -> Result<(), ScanError> {
    summary.count(reason.state());
    let mut obs = Observation::new(
        job.addr.ip(),
        job.addr.port(),
        Proto::Tcp,
        reason,
        rtt.map(|d| d.as_micros() as f64 / 1000.0),
    );
    obs.tries = job.tries;
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
    fn local_shortage_is_not_a_port_state() {
        assert!(matches!(
            classify_error(io::Error::from_raw_os_error(libc::EMFILE)),
            Outcome::LocalShortage(_)
        ));
        assert!(matches!(
            classify_error(io::Error::from_raw_os_error(libc::EHOSTUNREACH)),
            Outcome::Unreachable {
                reason: Reason::HostUnreach,
                rtt: None
            }
        ));
    }
}
