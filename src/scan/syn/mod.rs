//! Scan layer: the stateless SYN scan engine (raw sockets, root or
//! CAP_NET_RAW).
//!
//! Half-open scanning sends one SYN per (address, port) and concludes from
//! the answer (SYN-ACK open, RST closed, ICMP unreachable or silence
//! filtered) without ever opening a connection, which is what makes full
//! port ranges fast. It is the TCP layer on the raw core
//! ([`crate::scan::raw`]: schedule, cookie, sockets, fake network): [`packet`]
//! builds SYNs and reads replies, [`engine`] adds TCP's rate control and
//! per-host rules, [`io`] is the TCP side of the fake network and [`raw`]
//! the raw-socket I/O. This module wires them to the [`ScanConfig`]
//! contract and re-checks hosts that look like SYN proxies with full
//! connects before calling their ports open.

pub(crate) mod engine;
#[cfg(test)]
pub(crate) mod io;
pub(crate) mod packet;
pub(crate) mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::{ScanConfig, ScanError, ScanSummary};
use crate::model::{Observation, Reason, ScanEvent};
use crate::scan::raw::{EngineThread, Outcome, run_on_thread};
use crate::target::{PortSet, Targets};
use engine::ResumeState;

pub use crate::scan::raw::schedule::parse_shard;
/// The engine driven directly, below [`ScanConfig`] (the lab tests pin its
/// rate and schedule with these).
pub use crate::scan::raw::{engine::Space, schedule::ScheduleConfig};
pub use crate::scan::resume::{read_single as read_resume, write_single as write_resume};
pub use engine::{EngineConfig, EngineOutcome, RateMode, run as run_engine};
pub use raw::RawIo;
pub use raw::raw_sockets_available;

/// Default first rate of the adaptive controller (probes/s).
const START_RATE: u64 = 20_000;
const DEFAULT_MAX_RATE: u64 = 1_000_000;

impl Outcome for engine::EngineOutcome {
    fn resume(&self) -> Option<&ResumeState> {
        self.resume.as_ref()
    }
}

/// Runs a SYN scan of `targets` × `ports` and sends every conclusion to
/// `events`. Needs raw sockets ([`raw_sockets_available`]).
pub async fn run(
    targets: &Targets,
    ports: &PortSet,
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    crate::scan::raw::require_raw_sockets()?;
    let mut ecfg = engine_config(cfg)?;
    let stop = ecfg
        .schedule
        .stop
        .get_or_insert_with(Default::default)
        .clone();
    let thread = EngineThread {
        name: "SYN",
        burst: 256,
        targets: targets.clone(),
        ports: ports.tcp().to_vec(),
        stop,
        resume_out: cfg.resume_out.clone(),
    };
    let outcome = run_on_thread(thread, &events, move |space, emit| {
        let mut io = raw::RawIo::open_for(true, ecfg.schedule.sports)?;
        if let Some(n) = io.notice.take() {
            emit(ScanEvent::Notice(n));
        }
        let outcome = engine::run(&mut io, space, &ecfg, emit)?;
        if crate::scan::raw::stats_wanted() {
            emit(ScanEvent::Notice(stats_line(
                &outcome,
                (io.received, io.drops()),
            )));
        }
        Ok(outcome)
    })
    .await?;
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

fn stats_line(o: &engine::EngineOutcome, (received, drops): (u64, u64)) -> String {
    let s = &o.summary;
    format!(
        "engine: {} probes for {} pairs in {:.2} s (last new pair at {}), {received} replies parsed, {drops} dropped by the kernel, {} invalid, {} duplicates, {} rate cuts, final rate {:.0}/s",
        s.sent,
        s.probed,
        s.elapsed.as_secs_f64(),
        o.walked_at
            .map_or("-".into(), |t| format!("{:.2} s", t.as_secs_f64())),
        o.invalid,
        o.duplicates,
        o.cuts,
        o.final_rate
    )
}

/// Maps the shared [`ScanConfig`] onto the engine's settings.
pub fn engine_config(cfg: &ScanConfig) -> Result<EngineConfig, ScanError> {
    // `rate` (--rate) and `max_rate` (--max-rate) are both caps; below
    // the cap the engine always adapts.
    let max = crate::scan::raw::schedule::rate_cap(cfg, DEFAULT_MAX_RATE);
    let rate = RateMode::Adaptive {
        start: START_RATE.min(max),
        max,
    };
    Ok(EngineConfig {
        schedule: crate::scan::raw::schedule::ScheduleConfig::from_scan(cfg)?,
        rate,
        ..EngineConfig::default()
    })
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
    use crate::scan::raw::schedule::Shard;

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
        assert_eq!(engine_config(&c).unwrap().schedule.resume, Some(state));
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
