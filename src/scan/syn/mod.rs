//! Scan layer: the stateless SYN scan engine (raw sockets, root or
//! CAP_NET_RAW).
//!
//! Half-open scanning sends one SYN per (address, port) and concludes from
//! the answer (SYN-ACK open, RST closed, ICMP unreachable or silence
//! filtered) without ever opening a connection, which is what makes full
//! port ranges fast. The parts: [`packet`] builds probes and parses replies,
//! [`cookie`] authenticates replies without per-probe state, [`engine`] is
//! the schedule (seeded permutation, pacing, adaptive rate, retries,
//! sharding, resume), [`io`] is the seam to the network with an in-memory
//! fake for tests, and [`raw`] is the real raw-socket I/O. This module wires
//! them to the [`ScanConfig`] contract and re-checks hosts that look like
//! SYN proxies with full connects before calling their ports open.

pub mod cookie;
pub mod engine;
pub mod io;
pub mod packet;
pub mod raw;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::{EventBurst, ScanConfig, ScanError, ScanSummary, StopOnDrop};
use crate::model::{Observation, Reason, ScanEvent};
use crate::target::{PortSet, Targets};
use engine::{EngineConfig, RateMode, ResumeState, Shard, Space};

pub use raw::raw_sockets_available;

/// Default first rate of the adaptive controller (probes/s).
const START_RATE: u64 = 20_000;
const DEFAULT_MAX_RATE: u64 = 1_000_000;

/// Runs a SYN scan of `targets` × `ports` and sends every conclusion to
/// `events`. Needs raw sockets ([`raw_sockets_available`]).
pub async fn run(
    targets: &Targets,
    ports: &PortSet,
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    if !raw_sockets_available() {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "portwarden".into());
        return Err(ScanError::NoRawSocketPrivilege(exe));
    }
    let mut ecfg = engine_config(cfg)?;
    // Dropping this future (Ctrl-C in a `select!`) must stop the engine
    // thread too, or the process would keep probing until the scan ends.
    let stop = ecfg.stop.get_or_insert_with(Default::default).clone();
    let _guard = StopOnDrop(stop);
    let targets_owned = targets.clone();
    let port_list: Vec<u16> = ports.tcp().to_vec();
    let resume_out = cfg.resume_out.clone();
    let tx = events.clone();
    let outcome =
        tokio::task::spawn_blocking(move || -> Result<engine::EngineOutcome, ScanError> {
            let mut io = raw::RawIo::open(true)?;
            let t = &targets_owned;
            let addr_at = |i: u64| t.get(i);
            let space = Space {
                n_addrs: t.len(),
                addr_at: &addr_at,
                ports: &port_list,
            };
            let mut burst = EventBurst::new(&tx, 256);
            let outcome = engine::run(&mut io, &space, &ecfg, &mut |ev| burst.emit(ev));
            burst.flush();
            let outcome = outcome?;
            // Written here, not by the caller, so it is written even when the
            // caller's future was dropped.
            if let (Some(state), Some(path)) = (&outcome.resume, &resume_out) {
                write_resume(path, state)?;
            }
            Ok(outcome)
        })
        .await
        .map_err(|e| ScanError::Config(format!("the SYN engine thread failed: {e}")))??;

    let mut summary = outcome.summary;
    if !outcome.suspect.is_empty() {
        // The suspects were counted open; recount them as confirmed.
        summary.open -= outcome.suspect.len() as u64;
        summary.probed -= outcome.suspect.len() as u64;
        for o in confirm(outcome.suspect, cfg.timeout.max).await {
            summary.count(o.state);
            let _ = events.send(ScanEvent::Observation(o)).await;
        }
    }
    Ok(summary)
}

/// Maps the shared [`ScanConfig`] onto the engine's settings.
pub fn engine_config(cfg: &ScanConfig) -> Result<EngineConfig, ScanError> {
    // `rate` (--rate) and `max_rate` (--max-rate) are both caps; below
    // the cap the engine always adapts.
    let max = match (cfg.rate, cfg.max_rate) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => DEFAULT_MAX_RATE,
    }
    .max(1);
    let rate = RateMode::Adaptive {
        start: START_RATE.min(max),
        max,
    };
    let shard = match cfg.shard {
        None => Shard::default(),
        Some((index, count)) if count > 0 && index < count => Shard { index, count },
        Some((index, count)) => {
            return Err(ScanError::Config(format!(
                "shard {index}/{count} is out of range: use I/N with 0 <= I < N"
            )));
        }
    };
    let resume = match (&cfg.resume, &cfg.resume_from) {
        (Some(state), _) => Some(state.clone()),
        (None, Some(p)) => Some(read_resume(p)?),
        (None, None) => None,
    };
    let sports = cfg.source_ports.unwrap_or((61000, 65535));
    if sports.0 == 0 || sports.0 > sports.1 {
        return Err(ScanError::Config(format!(
            "source port range {}-{} is empty or starts at 0: give LOW-HIGH with 1 <= LOW <= HIGH",
            sports.0, sports.1
        )));
    }
    Ok(EngineConfig {
        seed: cfg.seed,
        key: (rand::random(), rand::random()),
        sports,
        retries: cfg.retries,
        timeout: cfg.timeout,
        rate,
        shard,
        stop: cfg.stop.clone(),
        resume,
        ..EngineConfig::default()
    })
}

/// Parses `--shard I/N` (0 ≤ I < N): this machine scans the permutation
/// positions `p` with `p % N == I`.
pub fn parse_shard(s: &str) -> Result<(u64, u64), ScanError> {
    let bad = || {
        ScanError::Config(format!(
            "shard '{s}' is not I/N with 0 <= I < N (e.g. 0/3, 1/3, 2/3 split a scan over three machines)"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.trim().parse().map_err(|_| bad())?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Reads a resume file written by an interrupted TCP-only or UDP-only
/// scan ([`crate::scan::resume::read`] reads either kind).
pub fn read_resume(path: &Path) -> Result<ResumeState, ScanError> {
    match crate::scan::resume::read(path)? {
        crate::scan::resume::ResumeFile::Single(state) => Ok(state),
        crate::scan::resume::ResumeFile::Mixed(_) => Err(ScanError::Config(format!(
            "{}: this resume file is of a scan of TCP and UDP ports: resume with the ports of the interrupted scan",
            path.display()
        ))),
    }
}

/// Writes the resume state (atomically: a temporary file renamed over it).
pub fn write_resume(path: &Path, state: &ResumeState) -> Result<(), ScanError> {
    crate::scan::resume::write_atomic(path, state)
}

/// Re-checks the SYN-ACKs of suspected SYN proxies with full connects:
/// completed → open (connected), refused → closed, anything else → filtered.
async fn confirm(suspect: Vec<Observation>, timeout: Duration) -> Vec<Observation> {
    let gate = Arc::new(Semaphore::new(128));
    let mut set = tokio::task::JoinSet::new();
    for o in suspect {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let addr = SocketAddr::new(o.ip, o.port);
            let started = std::time::Instant::now();
            let reason =
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                    Ok(Ok(_)) => Reason::Connected,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        Reason::ConnRefused
                    }
                    _ => Reason::NoResponse,
                };
            let rtt = (reason != Reason::NoResponse)
                .then(|| started.elapsed().as_micros() as f64 / 1000.0);
            let mut c = Observation::new(o.ip, o.port, o.proto, reason, rtt);
            c.tries = o.tries.saturating_add(1);
            c
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(o) = r {
            out.push(o);
        }
    }
    out.sort_by_key(|o| (o.ip, o.port));
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn rate_and_max_rate_are_caps_and_the_lower_wins() {
        let cfg = |rate, max_rate| ScanConfig {
            rate,
            max_rate,
            ..ScanConfig::default()
        };
        let mode = |c: &ScanConfig| engine_config(c).unwrap().rate;
        assert_eq!(
            mode(&cfg(None, None)),
            RateMode::Adaptive {
                start: 20_000,
                max: 1_000_000
            }
        );
        assert_eq!(
            mode(&cfg(Some(5000), None)),
            RateMode::Adaptive {
                start: 5000,
                max: 5000
            }
        );
        assert_eq!(
            mode(&cfg(Some(50_000), Some(30_000))),
            RateMode::Adaptive {
                start: 20_000,
                max: 30_000
            }
        );
    }

    #[test]
    fn bad_shards_and_source_ports_are_refused_with_the_value() {
        let c = ScanConfig {
            shard: Some((3, 3)),
            ..ScanConfig::default()
        };
        assert_eq!(
            engine_config(&c).unwrap_err().to_string(),
            "shard 3/3 is out of range: use I/N with 0 <= I < N"
        );
        let c = ScanConfig {
            source_ports: Some((0, 10)),
            ..ScanConfig::default()
        };
        assert!(
            engine_config(&c)
                .unwrap_err()
                .to_string()
                .contains("source port range 0-10")
        );
        assert_eq!(parse_shard("1/3").unwrap(), (1, 3));
        assert!(
            parse_shard("3/3")
                .unwrap_err()
                .to_string()
                .starts_with("shard '3/3' is not I/N")
        );
        assert!(parse_shard("x").is_err());
    }

    #[test]
    fn resume_files_round_trip_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("pw-syn-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scan.resume");
        let state = ResumeState {
            version: 1,
            seed: 9,
            shard: Shard { index: 1, count: 2 },
            total: 100,
            next: 20,
            outstanding: vec![3, 5],
        };
        write_resume(&path, &state).unwrap();
        assert_eq!(read_resume(&path).unwrap(), state);
        let c = ScanConfig {
            resume_from: Some(path.clone()),
            ..ScanConfig::default()
        };
        assert_eq!(engine_config(&c).unwrap().resume, Some(state));
        std::fs::write(&path, "{\n  \"seed\": oops").unwrap();
        let e = read_resume(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:2: not a portwarden resume file",
                path.display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
