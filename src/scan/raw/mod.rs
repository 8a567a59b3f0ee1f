//! Scan layer: the protocol-neutral raw-packet core of the stateless probe
//! engines (SYN, UDP).
//!
//! - [`wire`]: IPv4 / IPv6 / ICMP building, parsing and checksums;
//! - [`io`]: the packet-I/O seam ([`io::PacketIo`]); [`socket`] is the
//!   real implementation over raw and packet sockets (receiving on
//!   [`ring`]s). In tests, `fake` is the in-memory network and
//!   `faulty::Faulty` the seeded fault injector both engines wrap it in;
//! - [`schedule`] and [`engine`]: the walk over the seeded permutation,
//!   sharding and resume, the global pacing, retry timers and the control
//!   loop, with the protocol's part behind [`engine::Protocol`];
//! - [`pacing::TokenBucket`]: the per-host pacing models (and the limiters
//!   of the fake targets);
//! - [`cookie`]: the keyed hash that makes replies verifiable without
//!   per-probe state.
//!
//! The SYN and UDP engines are thin layers on top: they build their probe,
//! validate and read the reply, and map it to a state.

pub(crate) mod cookie;
pub(crate) mod engine;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod faulty;
pub(crate) mod io;
pub(crate) mod pacing;
pub(crate) mod ring;
pub(crate) mod schedule;
pub(crate) mod socket;
pub(crate) mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;

use crate::model::{Reason, ScanEvent};
use crate::scan::{EventBurst, ScanError, StopOnDrop};
use crate::target::Targets;
use engine::Space;
use schedule::ResumeState;

pub use socket::raw_sockets_available;

/// Set (to anything) for one line of engine figures at the end of a SYN
/// or UDP scan: for benchmarks and bug reports.
const STATS_ENV: &str = "PORTWARDEN_SCAN_STATS";

/// Whether [`STATS_ENV`] asks for the engine figures.
pub(crate) fn stats_wanted() -> bool {
    std::env::var_os(STATS_ENV).is_some()
}

/// The reason an ICMP (`v6` false) or ICMPv6 destination unreachable of
/// `code` gives, in nmap's vocabulary.
pub fn unreachable_reason(v6: bool, code: u8) -> Reason {
    if v6 {
        // RFC 4443 §3.1.
        match code {
            0 => Reason::NetUnreach,
            1 | 5 | 6 => Reason::AdminProhibited,
            3 => Reason::HostUnreach,
            4 => Reason::PortUnreach,
            _ => Reason::IcmpUnreach,
        }
    } else {
        match code {
            0 => Reason::NetUnreach,
            1 => Reason::HostUnreach,
            2 => Reason::ProtoUnreach,
            3 => Reason::PortUnreach,
            9 | 10 | 13 => Reason::AdminProhibited,
            _ => Reason::IcmpUnreach,
        }
    }
}

/// Fails with the privilege error unless this process may open the raw
/// sockets the SYN and UDP engines need.
pub fn require_raw_sockets() -> Result<(), ScanError> {
    if raw_sockets_available() {
        return Ok(());
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "portwarden".into());
    Err(ScanError::NoRawSocketPrivilege(exe))
}

/// What an engine run hands back: at least where it stopped.
pub trait Outcome {
    /// Set when the run was stopped before it finished.
    fn resume(&self) -> Option<&ResumeState>;
}

/// An engine run on a thread of its own (see [`run_on_thread`]).
pub(crate) struct EngineThread {
    /// Names the engine in errors.
    pub name: &'static str,
    /// Events sent at once.
    pub burst: usize,
    pub targets: Targets,
    pub ports: Vec<u16>,
    /// The engine's stop flag.
    pub stop: Arc<AtomicBool>,
    /// Where a stopped run's resume state goes.
    pub resume_out: Option<PathBuf>,
}

/// Runs an engine over `t.targets` × `t.ports` on a blocking thread of its
/// own. Its events reach `events` in bursts; dropping this future (Ctrl-C
/// in a `select!`) raises the stop flag, so the thread stops probing too;
/// the resume state of a stopped run is written by the thread itself, so
/// it is written even when the caller's future was dropped.
pub(crate) async fn run_on_thread<T: Outcome + Send + 'static>(
    t: EngineThread,
    events: &mpsc::Sender<ScanEvent>,
    engine: impl FnOnce(&Space<'_>, &mut dyn FnMut(ScanEvent)) -> Result<T, ScanError> + Send + 'static,
) -> Result<T, ScanError> {
    let _guard = StopOnDrop(t.stop);
    let tx = events.clone();
    let (targets, ports, resume_out) = (t.targets, t.ports, t.resume_out);
    let burst = t.burst;
    tokio::task::spawn_blocking(move || -> Result<T, ScanError> {
        let mut burst = EventBurst::new(&tx, burst);
        let addr_at = |i: u64| targets.get(i);
        let space = Space {
            n_addrs: targets.len(),
            addr_at: &addr_at,
            ports: &ports,
        };
        let outcome = engine(&space, &mut |ev| burst.emit(ev));
        burst.flush();
        let outcome = outcome?;
        if let (Some(state), Some(path)) = (outcome.resume(), &resume_out) {
            crate::scan::resume::write_single(path, state)?;
        }
        Ok(outcome)
    })
    .await
    .map_err(|e| ScanError::Config(format!("the {} engine thread failed: {e}", t.name)))?
}
