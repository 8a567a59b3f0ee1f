//! Report layer: the scope and limitations box — what the auditor must
//! know before signing: when the scan ran, from where, with which engine
//! and timing, which protocols and ports were and were not probed, the
//! state counts, whether services were identified, and the scope itself,
//! bounded at any scale (a /16 import is a few lines, not 25,000
//! fragments).

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::{ProtocolCoverage, ReportInput, StateCounts};
use crate::model::Proto;
use crate::report::i18n::Labels;

/// The scope shows at most this many lines (targets or networks).
pub const SCOPE_LINES: usize = 8;

/// How times are shown in words (report.json keeps RFC 3339).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

/// The scope and limitations box (see the module).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// When the scan ran: a live scan's start and end; for an import, the
    /// earliest start and latest end its files record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<DateTime<Utc>>,
    /// The window in words (or why it is unknown).
    pub window_text: String,
    /// The engine and its timing in words.
    pub engine: String,
    /// The imported files' own command lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_args: Vec<String>,
    /// Settings that risk missed ports, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Per protocol: probed over how many ports, or not and why.
    pub protocols: Vec<ProtocolCoverage>,
    /// What this scan did not test, in words.
    pub not_tested: Vec<String>,
    /// (address, port) pairs concluded per state.
    pub states: StateCounts,
    /// The state counts in words.
    pub states_text: String,
    pub identification: bool,
    /// The scope, at most [`SCOPE_LINES`] lines.
    pub scope_lines: Vec<String>,
    /// Targets not listed in `scope_lines`.
    pub scope_more: usize,
    /// Addresses in the scope.
    pub scope_hosts: u64,
    /// The scope of an import: the networks covering its addresses, since
    /// the files do not say what was asked for.
    pub scope_reconstructed: bool,
    /// Distinct addresses with results.
    pub addresses_seen: usize,
}

/// Builds the box from the run's facts, the imported files' provenance
/// and the observations.
pub(super) fn build_limits(input: &ReportInput<'_>, labels: &Labels) -> Limits {
    let facts = &input.facts;
    let import = facts.scan_type.is_none();
    let provenance: Vec<&crate::import::Provenance> =
        facts.inputs.iter().map(|i| &i.provenance).collect();
    let (window_start, window_end) = if import {
        (
            provenance.iter().filter_map(|p| p.started).min(),
            provenance.iter().filter_map(|p| p.finished).max(),
        )
    } else {
        (Some(facts.started), Some(facts.finished))
    };
    let window_text = match (window_start, window_end) {
        (Some(a), Some(b)) => labels.fmt(
            "limits.window",
            &[
                ("from", &a.format(TIME_FORMAT).to_string()),
                ("to", &b.format(TIME_FORMAT).to_string()),
            ],
        ),
        (Some(a), None) | (None, Some(a)) => a.format(TIME_FORMAT).to_string(),
        (None, None) => labels.get("limits.window_unknown"),
    };
    let import_args: Vec<String> = provenance.iter().filter_map(|p| p.args.clone()).collect();
    let warnings: Vec<String> = import_args
        .iter()
        .flat_map(|a| aggressive_settings(a, labels))
        .collect();
    let engine = engine_text(input, labels, &provenance);
    let mut protocols = if import {
        imported_protocols(input)
    } else {
        facts.coverage.protocols.clone()
    };
    for p in &mut protocols {
        p.why_text = p
            .why
            .as_ref()
            .map(|w| labels.get(&format!("limits.why_{}", w.replace('-', "_"))));
    }
    let identification = facts
        .coverage
        .identification
        .unwrap_or_else(|| import_args.iter().any(|a| asks_service_detection(a)));
    let not_tested = not_tested(&protocols, identification, labels);
    let states = facts.coverage.states;
    let states_text = labels.fmt(
        "limits.states",
        &[
            ("probed", &states.probed.to_string()),
            ("open", &states.open.to_string()),
            ("closed", &states.closed.to_string()),
            ("filtered", &states.filtered.to_string()),
            ("open_filtered", &states.open_filtered.to_string()),
        ],
    );
    let seen: BTreeSet<IpAddr> = input.observations.iter().map(|o| o.ip).collect();
    let (scope_lines, scope_more, scope_hosts) = if import && !seen.is_empty() {
        let nets = covering_networks(&seen, SCOPE_LINES);
        let hosts = nets.iter().map(net_size).fold(0u64, u64::saturating_add);
        (nets.iter().map(|n| n.to_string()).collect(), 0, hosts)
    } else {
        (
            facts.targets.iter().take(SCOPE_LINES).cloned().collect(),
            facts.targets.len().saturating_sub(SCOPE_LINES),
            facts.host_count,
        )
    };
    Limits {
        window_start,
        window_end,
        window_text,
        engine,
        import_args,
        warnings,
        protocols,
        not_tested,
        states,
        states_text,
        identification,
        scope_lines,
        scope_more,
        scope_hosts,
        scope_reconstructed: import && !seen.is_empty(),
        addresses_seen: seen.len(),
    }
}

/// The engine and timing of a live scan, or what an import's files say
/// made them.
fn engine_text(
    input: &ReportInput<'_>,
    labels: &Labels,
    provenance: &[&crate::import::Provenance],
) -> String {
    let facts = &input.facts;
    let Some(kind) = facts.scan_type else {
        let scanners: Vec<String> = provenance
            .iter()
            .filter_map(|p| {
                let s = p.scanner.as_deref()?;
                Some(match &p.scanner_version {
                    Some(v) => format!("{s} {v}"),
                    None => s.to_string(),
                })
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        return if scanners.is_empty() {
            labels.get("limits.engine_import_unknown")
        } else {
            labels.fmt(
                "limits.engine_import",
                &[("scanners", &scanners.join(", "))],
            )
        };
    };
    let rate = match facts.rate {
        Some(r) => labels.fmt("limits.rate", &[("n", &r.to_string())]),
        None => labels.get("limits.rate_unlimited"),
    };
    labels.fmt(
        "limits.engine_scan",
        &[
            ("engine", &labels.get(&format!("scan_type.{kind}"))),
            ("rate", &rate),
        ],
    )
}

/// The protocols an import covered: each file's own port lists (nmap's
/// `<scaninfo>`), else the protocols its results hold.
fn imported_protocols(input: &ReportInput<'_>) -> Vec<ProtocolCoverage> {
    let mut out = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        let name = proto.to_string();
        let lists: Vec<&str> = input
            .facts
            .inputs
            .iter()
            .flat_map(|i| i.provenance.ports.iter())
            .filter(|l| l.protocol.eq_ignore_ascii_case(&name))
            .map(|l| l.ports.as_str())
            .collect();
        let listed: usize = lists.iter().map(|l| count_ports(l)).max().unwrap_or(0);
        let seen: BTreeSet<u16> = input
            .observations
            .iter()
            .filter(|o| o.proto == proto)
            .map(|o| o.port)
            .collect();
        let ports = listed.max(seen.len());
        out.push(ProtocolCoverage {
            proto,
            probed: ports > 0,
            ports,
            why: (ports == 0).then(|| "not-in-files".to_string()),
            why_text: None,
        });
    }
    out
}

/// Ports in a list such as `22-25,80,U:53` (ranges counted in full;
/// anything unreadable counts as one).
fn count_ports(list: &str) -> usize {
    list.split(',')
        .map(|part| {
            let part = part
                .trim()
                .trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == ':');
            match part.split_once('-') {
                Some((a, b)) => match (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    (Ok(a), Ok(b)) if a <= b => (b - a + 1) as usize,
                    _ => 1,
                },
                None if part.is_empty() => 0,
                None => 1,
            }
        })
        .sum()
}

/// What this scan did not test, in words.
fn not_tested(
    protocols: &[ProtocolCoverage],
    identification: bool,
    labels: &Labels,
) -> Vec<String> {
    let mut out = Vec::new();
    for p in protocols {
        let proto = p.proto.to_string().to_uppercase();
        if !p.probed {
            out.push(labels.fmt(
                "limits.not_probed",
                &[
                    ("proto", &proto),
                    ("why", p.why_text.as_deref().unwrap_or("")),
                ],
            ));
        } else if p.ports < 65_535 {
            out.push(labels.fmt(
                "limits.ports_of",
                &[("proto", &proto), ("n", &p.ports.to_string())],
            ));
        }
    }
    if !identification {
        out.push(labels.get("limits.no_identification"));
    }
    out
}

/// A scanner command line asks for service detection (nmap `-sV`, `-A`,
/// or a combined `-sSV`).
fn asks_service_detection(args: &str) -> bool {
    args.split_whitespace()
        .any(|t| t == "-A" || (t.starts_with("-s") && !t.starts_with("--") && t[2..].contains('V')))
}

/// The settings of a scanner command line that make it give up on slow or
/// lossy ports, each in words.
fn aggressive_settings(args: &str, labels: &Labels) -> Vec<String> {
    let tokens: Vec<&str> = args.split_whitespace().collect();
    let mut out = Vec::new();
    let value = |i: usize, t: &str| -> Option<String> {
        match t.split_once('=') {
            Some((_, v)) => Some(v.to_string()),
            None => tokens.get(i + 1).map(|v| v.to_string()),
        }
    };
    for (i, t) in tokens.iter().enumerate() {
        let flag = t.split('=').next().unwrap_or(t);
        let warn = match flag {
            "-T5" | "-Tinsane" => Some(("limits.warn_t5", String::new())),
            "--min-rate" => value(i, t).map(|v| ("limits.warn_min_rate", v)),
            "--max-retries" => value(i, t)
                .filter(|v| v.parse::<u32>().is_ok_and(|n| n < 6))
                .map(|v| ("limits.warn_max_retries", v)),
            "--host-timeout" => value(i, t).map(|v| ("limits.warn_host_timeout", v)),
            "--max-rtt-timeout" => value(i, t).map(|v| ("limits.warn_rtt", v)),
            "--rate" => value(i, t)
                .filter(|v| v.parse::<u64>().is_ok_and(|n| n > 10_000))
                .map(|v| ("limits.warn_rate", v)),
            _ => None,
        };
        if let Some((key, v)) = warn {
            out.push(labels.fmt(key, &[("value", &crate::report::display_safe(&v))]));
        }
    }
    out
}

/// At most `max` networks per address family covering `addrs`: the
/// longest prefix at which they fall into no more than `max` networks,
/// then merged (a /16 with 39,539 live addresses is one /16).
pub fn covering_networks(addrs: &BTreeSet<IpAddr>, max: usize) -> Vec<IpNet> {
    let v4: Vec<u32> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) => Some(u32::from(*v)),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<u128> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(v) => Some(u128::from(*v)),
            IpAddr::V4(_) => None,
        })
        .collect();
    let mut nets: Vec<IpNet> = Vec::new();
    if !v4.is_empty() {
        for p in (0..=32u8).rev() {
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            let set: BTreeSet<u32> = v4.iter().map(|a| a & mask).collect();
            if set.len() <= max || p == 0 {
                nets.extend(
                    set.into_iter()
                        .filter_map(|a| Ipv4Net::new(a.into(), p).ok().map(IpNet::V4)),
                );
                break;
            }
        }
    }
    if !v6.is_empty() {
        for p in (0..=128u8).rev() {
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            let set: BTreeSet<u128> = v6.iter().map(|a| a & mask).collect();
            if set.len() <= max || p == 0 {
                nets.extend(
                    set.into_iter()
                        .filter_map(|a| Ipv6Net::new(a.into(), p).ok().map(IpNet::V6)),
                );
                break;
            }
        }
    }
    IpNet::aggregate(&nets)
}

/// Addresses in a network (saturating for large IPv6 networks).
fn net_size(n: &IpNet) -> u64 {
    let bits = u32::from(n.max_prefix_len() - n.prefix_len());
    if bits >= 64 { u64::MAX } else { 1u64 << bits }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::i18n::Lang;

    #[test]
    fn a_dense_slash16_is_one_network_and_sparse_hosts_stay_exact() {
        let mut addrs = BTreeSet::new();
        for i in (0u32..65_536).step_by(3) {
            addrs.insert(IpAddr::V4(
                (u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + i).into(),
            ));
        }
        let nets = covering_networks(&addrs, SCOPE_LINES);
        assert_eq!(
            nets.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            ["198.18.0.0/16"]
        );
        assert_eq!(net_size(&nets[0]), 65_536);
        let few: BTreeSet<IpAddr> = ["198.18.0.5", "198.19.7.1", "2001:db8::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let nets = covering_networks(&few, SCOPE_LINES);
        assert_eq!(nets.len(), 3);
        assert_eq!(nets.iter().map(net_size).take(2).sum::<u64>(), 2);
    }

    #[test]
    fn aggressive_nmap_timing_is_named_and_service_detection_seen() {
        let labels = Labels::embedded(Lang::En).unwrap();
        let w = aggressive_settings(
            "nmap -T5 --min-rate 50000 --max-retries 2 -p 22 198.18.0.0/24",
            &labels,
        );
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[1].contains("50000") && w[2].contains('2'), "{w:?}");
        assert!(aggressive_settings("nmap -T4 --max-retries 6 -p 22 x", &labels).is_empty());
        assert!(asks_service_detection("nmap -sSV -p 22 x"));
        assert!(asks_service_detection("nmap -A x"));
        assert!(!asks_service_detection("nmap -sS --version-light x"));
        assert_eq!(count_ports("21-25,80,443"), 7);
    }
}
