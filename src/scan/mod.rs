//! Scan layer: probes (address, port) pairs and concludes open / closed /
//! filtered for each, emitting [`ScanEvent`]s as it goes.
//!
//! Two TCP probe engines share one contract: `connect` (full handshakes
//! through the kernel, no privilege) and [`syn`] (stateless half-open
//! scanning over raw sockets). UDP ports go to `udp`, which runs beside
//! the TCP engine; both are protocol layers on one raw-packet core, `raw`.
//! All walk a seeded permutation of the (address × port) index space so no
//! host receives its ports back to back.
//!
//! What it offers outside the crate: [`run`] with its [`ScanConfig`],
//! [`TimeoutConfig`] and [`ScanSummary`], and from [`syn`] the shard
//! syntax, the raw-socket check and the SYN engine driven directly (the lab
//! tests pin its rate with it). Inside the crate the app also takes the UDP
//! options and the local source-address choice. Everything else, the fake
//! network and fault injector of the unit tests included, is private to the
//! layer.

pub(crate) mod connect;
pub(crate) mod local;
pub(crate) mod permute;
pub(crate) mod raw;
pub(crate) mod resume;
pub mod syn;
pub(crate) mod udp;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::{ScanEvent, ScanKind};
use crate::target::{PortSet, Targets};

/// Time-out bounds for one probe. The engine adapts between `min` and `max`
/// from the round-trip times it measures, starting at `initial`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeoutConfig {
    pub initial: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(100),
            max: Duration::from_secs(3),
        }
    }
}

/// A validated scan configuration (built by the CLI or the app from flags).
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub kind: ScanKind,
    /// Cap on probes per second; `None` lets the engine choose/adapt.
    pub rate: Option<u64>,
    /// SYN scan: hard cap for the adaptive rate (`--max-rate`; the lower of
    /// this and `rate` wins); neither set = 1,000,000/s.
    pub max_rate: Option<u64>,
    /// Extra probes for a port that did not answer.
    pub retries: u8,
    pub timeout: TimeoutConfig,
    /// Upper bound on probes in flight (connect scan); `None` sizes it from
    /// the open-file limit.
    pub concurrency: Option<usize>,
    /// Seed of the probe order permutation.
    pub seed: u64,
    /// Scan only shard `(i, n)`, 0 ≤ i < n: the permutation positions `p`
    /// with `p % n == i` (`--shard`), so n machines can split one scan.
    pub shard: Option<(u64, u64)>,
    /// SYN scan: write the resume state here when the scan is stopped early.
    pub resume_out: Option<PathBuf>,
    /// SYN scan: continue the scan saved in this resume file (its seed and
    /// shard replace `seed` and `shard`).
    pub resume_from: Option<PathBuf>,
    /// A resume state already read (it takes precedence over
    /// `resume_from`): [`run`] reads the file once and hands each engine of
    /// a mixed TCP+UDP scan its own part.
    pub resume: Option<raw::schedule::ResumeState>,
    /// Raised (e.g. by a Ctrl-C handler) to stop early: the engine stops
    /// sending, collects late answers, reports and returns `interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
    /// SYN scan: source ports to draw from (inclusive). `None` = 61000–65535,
    /// outside Linux's ephemeral range so the kernel's own connections
    /// never collide with probes.
    pub source_ports: Option<(u16, u16)>,
    /// UDP payloads and priority ports (used when the port set has UDP ports).
    pub udp: udp::UdpOptions,
    /// UDP: how long one host's limiter-paced retries may go on, counted
    /// from its first probe (`--host-timeout`).
    pub host_timeout: Duration,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            kind: ScanKind::Connect,
            rate: None,
            retries: 1,
            timeout: TimeoutConfig::default(),
            concurrency: None,
            seed: 0,
            max_rate: None,
            shard: None,
            resume_out: None,
            resume_from: None,
            resume: None,
            stop: None,
            source_ports: None,
            udp: udp::UdpOptions::default(),
            host_timeout: udp::engine::DEFAULT_HOST_TIMEOUT,
        }
    }
}

/// What a finished scan reports about itself (the observations went out as events).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanSummary {
    /// (address, port) pairs concluded.
    pub probed: u64,
    /// Probes sent, retries included.
    pub sent: u64,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    /// UDP ports that stayed silent (`open|filtered`).
    pub open_filtered: u64,
    /// Pairs whose probe failed on this machine (reason `local-error`):
    /// counted in `filtered` too, but never tested.
    pub local_errors: u64,
    /// UDP pairs left open|filtered before their retries were spent,
    /// because their host's ICMP rate limit needed more time than the host
    /// time-out allowed (or the host stopped answering paced retries):
    /// counted in `open_filtered` too, but undecided between closed and
    /// open|filtered.
    pub udp_undecided: u64,
    /// Wall time of the scan.
    pub elapsed: Duration,
    /// Probes per second actually achieved.
    pub rate: f64,
    /// True when the scan was stopped before it finished (Ctrl-C / SIGTERM).
    pub interrupted: bool,
}

impl ScanSummary {
    /// The summary of two engines that ran side by side.
    pub fn merge(self, other: ScanSummary) -> ScanSummary {
        let elapsed = self.elapsed.max(other.elapsed);
        let sent = self.sent + other.sent;
        ScanSummary {
            probed: self.probed + other.probed,
            sent,
            open: self.open + other.open,
            closed: self.closed + other.closed,
            filtered: self.filtered + other.filtered,
            open_filtered: self.open_filtered + other.open_filtered,
            local_errors: self.local_errors + other.local_errors,
            udp_undecided: self.udp_undecided + other.udp_undecided,
            elapsed,
            rate: if elapsed.is_zero() {
                0.0
            } else {
                sent as f64 / elapsed.as_secs_f64()
            },
            interrupted: self.interrupted || other.interrupted,
        }
    }

    /// Counts one concluded (address, port) pair.
    pub fn count(&mut self, state: crate::model::PortState) {
        use crate::model::PortState;
        self.probed += 1;
        match state {
            PortState::Open => self.open += 1,
            PortState::Closed => self.closed += 1,
            PortState::Filtered => self.filtered += 1,
            PortState::OpenFiltered => self.open_filtered += 1,
        }
    }

    /// Counts one concluded observation, local errors apart.
    pub fn count_observation(&mut self, o: &crate::model::Observation) {
        self.count(o.state);
        if o.reason == crate::model::Reason::LocalError {
            self.local_errors += 1;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "SYN scan needs raw sockets: run as root or grant the capability with `sudo setcap cap_net_raw,cap_net_admin+ep {0}`"
    )]
    NoRawSocketPrivilege(String),
    #[error("{0}")]
    Config(String),
    #[error(
        "UDP ports need the raw-socket UDP engine, which a connect scan cannot use: run as root (or grant CAP_NET_RAW) with --scan syn or auto, or drop the UDP ports (e.g. -p common instead of common,high-risk-udp)"
    )]
    UdpNeedsRaw,
}

/// Runs the scan described by `cfg` and sends every conclusion to `events`.
/// TCP ports go to the engine `cfg.kind` names; UDP ports to the UDP
/// engine, at the same time (each engine's parsers ignore the other's
/// replies). A connect scan cannot send UDP probes: it refuses UDP ports
/// rather than leave them silently unscanned.
pub async fn run(
    targets: &Targets,
    ports: &PortSet,
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    let mixed = !ports.udp().is_empty() && !ports.tcp().is_empty();
    // The resume file, read once: one engine's state, or (a mixed scan)
    // each engine's.
    let resume = match (&cfg.resume, &cfg.resume_from) {
        (Some(state), _) => Some(resume::ResumeFile::Single(state.clone())),
        (None, Some(path)) => Some(resume::read(path)?),
        (None, None) => None,
    };
    let (tcp_resume, udp_resume) = match resume {
        None => (None, None),
        Some(resume::ResumeFile::Single(state)) if !mixed => (Some(state.clone()), Some(state)),
        Some(resume::ResumeFile::Mixed(m)) if mixed => (m.tcp, m.udp),
        Some(resume::ResumeFile::Single(_)) => {
            return Err(ScanError::Config(
                "this resume file is of a TCP-only or a UDP-only scan, but these ports mix TCP and UDP: resume with the ports of the interrupted scan".into(),
            ));
        }
        Some(resume::ResumeFile::Mixed(_)) => {
            return Err(ScanError::Config(
                "this resume file is of a scan of TCP and UDP ports: resume with the ports of the interrupted scan".into(),
            ));
        }
    };
    if ports.udp().is_empty() {
        let mut c = cfg.clone();
        c.resume = tcp_resume;
        return run_tcp(targets, ports, &c, events).await;
    }
    if cfg.kind == ScanKind::Connect {
        return Err(ScanError::UdpNeedsRaw);
    }
    if ports.tcp().is_empty() {
        let mut c = cfg.clone();
        c.resume = udp_resume;
        return udp::run(targets, ports.udp(), &c, &c.udp, events).await;
    }
    let resumed = cfg.resume.is_some() || cfg.resume_from.is_some();
    // Each engine writes its part of the resume state beside the resume
    // file; the parts are joined into it once both have ended. An engine
    // that had finished before a resumed scan has no part: it is skipped.
    let parts = cfg.resume_out.as_deref().map(resume::part_paths);
    if let Some((t, u)) = &parts {
        // Stale parts of an earlier run must not be taken for this one's.
        let _ = std::fs::remove_file(t);
        let _ = std::fs::remove_file(u);
    }
    // Each engine gets a stop flag of its own: an engine raises its flag
    // when it ends (so that its threads stop), which must not stop the
    // other. The operator's flag (Ctrl-C) is passed on to both.
    let engine_cfg = |part: Option<PathBuf>, state: Option<raw::schedule::ResumeState>| {
        let mut c = cfg.clone();
        c.resume_out = part;
        c.resume_from = None;
        c.resume = state;
        c.stop = Some(Arc::new(AtomicBool::new(false)));
        c
    };
    let run_tcp_engine = !resumed || tcp_resume.is_some();
    let run_udp_engine = !resumed || udp_resume.is_some();
    let tcp_cfg = engine_cfg(parts.as_ref().map(|p| p.0.clone()), tcp_resume);
    let udp_cfg = engine_cfg(parts.as_ref().map(|p| p.1.clone()), udp_resume);
    let flags = [tcp_cfg.stop.clone(), udp_cfg.stop.clone()];
    let operator = cfg.stop.clone();
    let pass_on = async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if operator.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                for f in flags.iter().flatten() {
                    f.store(true, Ordering::Relaxed);
                }
            }
        }
    };
    let tcp_ports = ports.tcp_only();
    let engines = async {
        tokio::join!(
            async {
                if run_tcp_engine {
                    run_tcp(targets, &tcp_ports, &tcp_cfg, events.clone()).await
                } else {
                    Ok(ScanSummary::default())
                }
            },
            async {
                if run_udp_engine {
                    udp::run(targets, ports.udp(), &udp_cfg, &udp_cfg.udp, events.clone()).await
                } else {
                    Ok(ScanSummary::default())
                }
            },
        )
    };
    let (tcp, udp) = tokio::select! {
        r = engines => r,
        () = pass_on => unreachable!("passing the stop flag on never ends"),
    };
    if let (Some((t, u)), Some(path)) = (&parts, &cfg.resume_out) {
        resume::join_parts(t, u, path)?;
    }
    let (tcp, udp) = (tcp?, udp?);
    Ok(tcp.merge(udp))
}

async fn run_tcp(
    targets: &Targets,
    ports: &PortSet,
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    match cfg.kind {
        ScanKind::Connect => connect::run(targets, ports, cfg, events).await,
        ScanKind::Syn => syn::run(targets, ports, cfg, events).await,
    }
}

/// Raises an engine's stop flag when dropped: dropping an engine's future
/// (Ctrl-C in a `select!`) must stop its thread too, or the process would
/// keep probing until the scan ends.
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An engine thread's events, sent in bursts: waking the consumer task once
/// per observation cost more CPU than the scan itself on full-range scans
/// (measured: ~1M futex wake-ups). Progress and notices, a full burst, and
/// anything older than 50 ms flush it.
pub(crate) struct EventBurst<'a> {
    tx: &'a mpsc::Sender<ScanEvent>,
    burst: Vec<ScanEvent>,
    cap: usize,
    last_flush: std::time::Instant,
}

impl<'a> EventBurst<'a> {
    pub(crate) fn new(tx: &'a mpsc::Sender<ScanEvent>, cap: usize) -> EventBurst<'a> {
        EventBurst {
            tx,
            burst: Vec::with_capacity(cap),
            cap,
            last_flush: std::time::Instant::now(),
        }
    }

    pub(crate) fn emit(&mut self, ev: ScanEvent) {
        let urgent = !matches!(ev, ScanEvent::Observation(_));
        self.burst.push(ev);
        if urgent
            || self.burst.len() >= self.cap
            || self.last_flush.elapsed() >= Duration::from_millis(50)
        {
            self.flush();
            self.last_flush = std::time::Instant::now();
        }
    }

    /// Sends what is held (blocking: called from the engine's thread).
    pub(crate) fn flush(&mut self) {
        for ev in self.burst.drain(..) {
            // A closed channel means nobody listens any more; the scan
            // still finishes so the summary and resume state are right.
            let _ = self.tx.blocking_send(ev);
        }
    }
}
