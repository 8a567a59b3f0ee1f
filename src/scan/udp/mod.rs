//! Scan layer: the stateless UDP scan engine (raw sockets, root or
//! CAP_NET_RAW).
//!
//! It shares the SYN engine's core: the seeded permutation, sharding and
//! resume state, the keyed-hash source ports ([`crate::scan::syn::cookie`]),
//! the raw sockets and the checked IP parser. What differs is the probe (a
//! protocol payload per port, [`payloads`]), the states (open on a UDP
//! answer, closed on the target's ICMP port unreachable, filtered on any
//! other unreachable, open|filtered on silence) and the pacing, which
//! follows each target's ICMP limiter ([`engine`]). Answers are read by
//! [`crate::identify::udp`] so an open port comes out already named.

pub mod engine;
pub mod io;
pub mod packet;
pub mod payloads;

use tokio::sync::mpsc;

use super::{EventBurst, ScanConfig, ScanError, ScanSummary, StopOnDrop};
use crate::model::{ScanEvent, ServiceInfo};
use crate::target::Targets;
use engine::{UdpEngineConfig, UdpSpace};
use payloads::Payloads;

/// Default global rate (probes/s). UDP answers are bounded by the targets'
/// ICMP limiters, not by our send path, so there is nothing to gain from
/// the SYN engine's adaptive climb; `--rate`/`--max-rate` cap it.
const DEFAULT_RATE: u64 = 20_000;

/// What a UDP scan needs besides the shared [`ScanConfig`].
#[derive(Debug, Clone)]
pub struct UdpOptions {
    pub payloads: Payloads,
    /// Ports whose silent pairs get one limiter-paced try more (sorted).
    pub priority: Vec<u16>,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            payloads: Payloads::embedded(),
            priority: Vec::new(),
        }
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
    if !crate::scan::syn::raw_sockets_available() {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "portwarden".into());
        return Err(ScanError::NoRawSocketPrivilege(exe));
    }
    let mut ecfg = engine_config(cfg, opts)?;
    let stop = ecfg.stop.get_or_insert_with(Default::default).clone();
    let _guard = StopOnDrop(stop);
    let targets = targets.clone();
    let ports = ports.to_vec();
    let payloads = opts.payloads.clone();
    let resume_out = cfg.resume_out.clone();
    let tx = events.clone();
    let outcome = tokio::task::spawn_blocking(move || -> Result<engine::UdpOutcome, ScanError> {
        let mut io = io::RawUdpIo::open()?;
        let addr_at = |i: u64| targets.get(i);
        let payload = |port: u16| payloads.bytes(port);
        let describe = |port: u16, reply: &[u8]| -> Option<ServiceInfo> {
            let hint = payloads.for_port(port).map(|p| p.service.as_str());
            Some(crate::identify::udp::describe(hint, reply))
        };
        let space = UdpSpace {
            n_addrs: targets.len(),
            addr_at: &addr_at,
            ports: &ports,
            payload: &payload,
            describe: &describe,
        };
        let mut burst = EventBurst::new(&tx, 128);
        let outcome = engine::run(&mut io, &space, &ecfg, &mut |ev| burst.emit(ev));
        burst.flush();
        let outcome = outcome?;
        if let (Some(state), Some(path)) = (&outcome.resume, &resume_out) {
            crate::scan::syn::write_resume(path, state)?;
        }
        Ok(outcome)
    })
    .await
    .map_err(|e| ScanError::Config(format!("the UDP engine thread failed: {e}")))??;
    Ok(outcome.summary)
}

/// Maps the shared [`ScanConfig`] onto the UDP engine's settings.
pub fn engine_config(cfg: &ScanConfig, opts: &UdpOptions) -> Result<UdpEngineConfig, ScanError> {
    // Shard, resume and source-port checks are the SYN engine's.
    let syn = crate::scan::syn::engine_config(cfg)?;
    let rate = match (cfg.rate, cfg.max_rate) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => DEFAULT_RATE,
    }
    .max(1);
    Ok(UdpEngineConfig {
        seed: cfg.seed,
        key: syn.key,
        sports: syn.sports,
        retries: cfg.retries,
        timeout: cfg.timeout,
        rate,
        shard: syn.shard,
        stop: cfg.stop.clone(),
        resume: syn.resume,
        priority: opts.priority.clone(),
        host_timeout: cfg.host_timeout,
        ..UdpEngineConfig::default()
    })
}

#[cfg(test)]
mod tests;
