//! Scan layer, raw packets: the probe schedule's parts that do not depend
//! on the protocol: the settings every engine shares, the walk over the
//! seeded permutation of the (address × port) space (sharding, resume),
//! the retry timers, the round-trip estimate and the source-address cache.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scan::{ScanConfig, ScanError, TimeoutConfig};

/// Settings every probe engine shares (built from [`ScanConfig`]).
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Seed of the probe order permutation.
    pub seed: u64,
    /// Key of the reply cookie ([`super::cookie::Cookie`]).
    pub key: (u64, u64),
    /// Source ports to draw from (inclusive).
    pub sports: (u16, u16),
    /// Extra tries for a silent pair.
    pub retries: u8,
    pub timeout: TimeoutConfig,
    pub shard: Shard,
    pub stop: Option<Arc<AtomicBool>>,
    pub resume: Option<ResumeState>,
    pub progress_every: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            seed: 0,
            key: (0x5eed, 0xc0ffee),
            sports: (61000, 65535),
            retries: 1,
            timeout: TimeoutConfig::default(),
            shard: Shard::default(),
            stop: None,
            resume: None,
            progress_every: Duration::from_millis(250),
        }
    }
}

impl ScheduleConfig {
    /// Checks and maps the shared settings of `cfg` (a fresh random cookie
    /// key per scan).
    pub fn from_scan(cfg: &ScanConfig) -> Result<ScheduleConfig, ScanError> {
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
            (None, Some(p)) => Some(crate::scan::resume::read_single(p)?),
            (None, None) => None,
        };
        let sports = cfg.source_ports.unwrap_or((61000, 65535));
        if sports.0 == 0 || sports.0 > sports.1 {
            return Err(ScanError::Config(format!(
                "source port range {}-{} is empty or starts at 0: give LOW-HIGH with 1 <= LOW <= HIGH",
                sports.0, sports.1
            )));
        }
        Ok(ScheduleConfig {
            seed: cfg.seed,
            key: (rand::random(), rand::random()),
            sports,
            retries: cfg.retries,
            timeout: cfg.timeout,
            shard,
            stop: cfg.stop.clone(),
            resume,
            ..ScheduleConfig::default()
        })
    }

    /// Position of step `k` of this run's shard.
    pub fn shard_pos(&self, k: u64) -> u64 {
        let s = self.resume.as_ref().map(|r| r.shard).unwrap_or(self.shard);
        s.index + k * s.count
    }
}

/// The probe rate cap: the lower of `--rate` and `--max-rate`, else
/// `default` (at least 1).
pub fn rate_cap(cfg: &ScanConfig, default: u64) -> u64 {
    match (cfg.rate, cfg.max_rate) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => default,
    }
    .max(1)
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

/// Part `index` of `count` of the permutation (positions `p` with
/// `p % count == index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

/// Where an interrupted scan stopped: enough to finish it later with no
/// pair lost or concluded twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    pub version: u32,
    pub seed: u64,
    pub shard: Shard,
    /// Number of (address, port) pairs of the whole scan (checks that the
    /// resumed scan has the same targets and ports).
    pub total: u64,
    /// Next step `k` of the shard (position `index + k * count`) never sent.
    pub next: u64,
    /// Positions sent or scheduled but not concluded.
    pub outstanding: Vec<u64>,
}

/// An (address, port) pair.
pub type Key = (IpAddr, u16);

/// A time-out, ordered by deadline only (earliest first in the max-heap):
/// comparing whole keys cost measurable time on million-probe scans.
#[derive(Clone, Copy)]
pub struct Timer {
    pub at: Duration,
    pub key: Key,
    pub tries: u8,
}

/// Where one run walks the seeded permutation: its seed and shard, the
/// step to start from, and the positions an interrupted run left
/// outstanding.
pub struct Walk {
    pub seed: u64,
    pub shard: Shard,
    pub next_k: u64,
    pub shard_len: u64,
    pub requeue: VecDeque<u64>,
    /// Pairs the interrupted run had concluded (for progress).
    pub done_before: u64,
}

impl Walk {
    /// Checks `shard` and `resume` against a space of `total` pairs
    /// (`ports` names the port kind in errors: "ports", "UDP ports").
    pub fn plan(
        total: u64,
        seed: u64,
        shard: Shard,
        resume: Option<&ResumeState>,
        ports: &str,
    ) -> Result<Walk, ScanError> {
        let shard = resume.map(|r| r.shard).unwrap_or(shard);
        if shard.count == 0 || shard.index >= shard.count {
            return Err(ScanError::Config(format!(
                "shard {}/{} is out of range: use I/N with 0 <= I < N",
                shard.index, shard.count
            )));
        }
        let mut seed = seed;
        let mut next_k = 0;
        let mut requeue = VecDeque::new();
        if let Some(r) = resume {
            if r.total != total {
                return Err(ScanError::Config(format!(
                    "the resume file describes {} (address, port) pairs but these targets and {ports} make {total}: resume with the same targets and ports",
                    r.total
                )));
            }
            seed = r.seed;
            next_k = r.next;
            requeue.extend(
                r.outstanding
                    .iter()
                    .copied()
                    .filter(|p| *p < total && p % shard.count == shard.index),
            );
        }
        let shard_len = if total > shard.index {
            (total - shard.index).div_ceil(shard.count)
        } else {
            0
        };
        if next_k > shard_len {
            return Err(ScanError::Config(format!(
                "the resume file says step {next_k} of a shard that has only {shard_len}: it does not belong to this scan"
            )));
        }
        Ok(Walk {
            seed,
            shard,
            next_k,
            shard_len,
            requeue,
            done_before: resume.map_or(0, |r| r.next.saturating_sub(r.outstanding.len() as u64)),
        })
    }
}

/// Local source addresses by target, shared by a /24 (IPv4) or /64
/// (IPv6): asking the routing table costs a few system calls, and routes
/// and source addresses practically never differ inside one.
#[derive(Default)]
pub struct LocalAddrs(HashMap<IpAddr, Option<IpAddr>>);

impl LocalAddrs {
    /// The source address for `target`, from the cache or `lookup`.
    pub fn get(
        &mut self,
        target: IpAddr,
        lookup: impl FnOnce(IpAddr) -> Option<IpAddr>,
    ) -> Option<IpAddr> {
        let key = match target {
            IpAddr::V4(a) if !a.is_loopback() => IpAddr::V4((u32::from(a) & 0xffff_ff00).into()),
            IpAddr::V6(a) if !a.is_loopback() => {
                IpAddr::V6((u128::from(a) & !((1u128 << 64) - 1)).into())
            }
            other => other,
        };
        if let Some(l) = self.0.get(&key) {
            return *l;
        }
        if self.0.len() > 65_536 {
            self.0.clear();
        }
        let l = lookup(target);
        self.0.insert(key, l);
        l
    }
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at)
    }
}

/// The smoothed round-trip time (RFC 6298) and the probe time-out it gives.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rtt {
    srtt: Option<f64>,
    rttvar: f64,
}

impl Rtt {
    /// Takes one unambiguous sample (Karn: only answers to the latest try).
    pub fn sample(&mut self, rtt: Duration) {
        let s = rtt.as_secs_f64();
        match self.srtt {
            None => {
                self.srtt = Some(s);
                self.rttvar = s / 2.0;
            }
            Some(old) => {
                self.rttvar = 0.75 * self.rttvar + 0.25 * (old - s).abs();
                self.srtt = Some(0.875 * old + 0.125 * s);
            }
        }
    }

    /// The time-out: `initial` until a sample came, then srtt + 4 rttvar
    /// within the bounds.
    pub fn timeout(&self, t: &TimeoutConfig) -> Duration {
        match self.srtt {
            None => t.initial,
            Some(s) => Duration::from_secs_f64(s + 4.0 * self.rttvar).clamp(t.min, t.max),
        }
    }
}
