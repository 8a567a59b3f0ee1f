//! Scan layer: the stateless UDP scan engine (raw sockets, root or
//! CAP_NET_RAW).
//!
//! It is the UDP layer on the raw core ([`crate::scan::raw`]: the seeded
//! permutation, sharding and resume state, the keyed-hash source ports,
//! the raw sockets and the checked IP parser). What is its own is the probe (a
//! protocol payload per port, [`crate::rules::Payloads`], from the rulebook), the states (open on a UDP
//! answer, closed on the target's ICMP port unreachable, filtered on any
//! other unreachable, open|filtered on silence) and the pacing, which
//! follows each target's ICMP limiter ([`engine`]). Answers are read by
//! [`crate::identify::udp`] so an open port comes out already named.

pub(crate) mod engine;
#[cfg(test)]
pub(crate) mod io;
pub(crate) mod packet;

use tokio::sync::mpsc;

use super::{ScanConfig, ScanError, ScanSummary};
use crate::model::{ScanEvent, ServiceInfo};
use crate::rules::udp_payloads::Payloads;
use crate::scan::raw::schedule::{ResumeState, ScheduleConfig, rate_cap};
use crate::scan::raw::{EngineThread, Outcome, run_on_thread};
use crate::target::Targets;
use engine::{UdpEngineConfig, UdpSpace};

/// The UDP engine's figures (`PORTWARDEN_SCAN_STATS`).
fn stats_line(o: &engine::UdpOutcome, received: u64) -> String {
    let s = &o.summary;
    format!(
        "UDP engine: {} probes for {} pairs in {:.2} s, {received} replies parsed, {} invalid, {} duplicates, {} paced retries, {} hosts cut short",
        s.sent,
        s.probed,
        s.elapsed.as_secs_f64(),
        o.invalid,
        o.duplicates,
        o.paced_retries,
        o.hosts_cut_short
    )
}

/// Raw sockets reading UDP and ICMP replies.
type RawUdpIo = crate::scan::raw::socket::RawIo<packet::UdpReply>;

/// Default global rate (probes/s). UDP answers are bounded by the targets'
/// ICMP limiters, not by our send path, so there is nothing to gain from
/// the SYN engine's adaptive climb; `--rate`/`--max-rate` cap it.
const DEFAULT_RATE: u64 = 20_000;

/// What a UDP scan needs besides the shared [`ScanConfig`]. The default
/// has no payloads at all (every probe an empty datagram): the payloads
/// come from the rulebook, never from a fallback here.
#[derive(Debug, Clone, Default)]
pub struct UdpOptions {
    pub payloads: Payloads,
    /// Ports whose silent pairs get one limiter-paced try more (sorted).
    pub priority: Vec<u16>,
}

impl Outcome for engine::UdpOutcome {
    fn resume(&self) -> Option<&ResumeState> {
        self.resume.as_ref()
    }
}

/// Runs a UDP scan of `targets` × `ports` and sends every conclusion to
/// `events`. Needs raw sockets.
pub async fn run(
    targets: &Targets,
    ports: &[u16],
    cfg: &ScanConfig,
    opts: &UdpOptions,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    crate::scan::raw::require_raw_sockets()?;
    let mut ecfg = engine_config(cfg, opts)?;
    let stop = ecfg
        .schedule
        .stop
        .get_or_insert_with(Default::default)
        .clone();
    let payloads = opts.payloads.clone();
    let thread = EngineThread {
        name: "UDP",
        burst: 128,
        targets: targets.clone(),
        ports: ports.to_vec(),
        stop,
        resume_out: cfg.resume_out.clone(),
    };
    let outcome = run_on_thread(thread, &events, move |pairs, emit| {
        // UDP rates are bounded by the targets' ICMP limiters, not by the
        // kernel's send path: one sending thread is plenty.
        let mut io = RawUdpIo::open_for(false, ecfg.schedule.sports)?;
        if let Some(n) = io.notice.take() {
            emit(ScanEvent::Notice(n));
        }
        let payload = |port: u16| payloads.bytes(port);
        let describe = |port: u16, reply: &[u8]| -> Option<ServiceInfo> {
            let hint = payloads.for_port(port).map(|p| p.service.as_str());
            Some(crate::identify::udp::describe(hint, reply))
        };
        let space = UdpSpace {
            pairs: *pairs,
            payload: &payload,
            describe: &describe,
        };
        let outcome = engine::run(&mut io, &space, &ecfg, emit)?;
        if crate::scan::raw::stats_wanted() {
            emit(ScanEvent::Notice(stats_line(&outcome, io.received)));
        }
        Ok(outcome)
    })
    .await?;
    Ok(outcome.summary)
}

/// Maps the shared [`ScanConfig`] onto the UDP engine's settings.
pub fn engine_config(cfg: &ScanConfig, opts: &UdpOptions) -> Result<UdpEngineConfig, ScanError> {
    Ok(UdpEngineConfig {
        schedule: ScheduleConfig::from_scan(cfg)?,
        rate: rate_cap(cfg, DEFAULT_RATE),
        priority: opts.priority.clone(),
        host_timeout: cfg.host_timeout,
        ..UdpEngineConfig::default()
    })
}

#[cfg(test)]
mod tests;
