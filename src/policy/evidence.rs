//! Policy layer: what an audit's evidence covers — the facts a verdict
//! rests on besides the findings.
//!
//! * the vantage: where the probes left from, measured, not declared; a
//!   group's `vantage = "internet"` is judged only from a public source
//!   address of an audit run with `--vantage internet`;
//! * the port scope: the ports a profile asks to be probed on every host
//!   (PCI DSS: every TCP port plus the high-risk UDP set), against the ports
//!   that were probed (a probe that was never sent does not count);
//! * the UDP evidence: which UDP answers carry enough to judge an amplifier
//!   (our own payload, or an import that names the service);
//! * the segmentation evidence: conclusive probes (a reject, or silence
//!   after the retries) and a control probe that reached a live host, from
//!   the segment's own vantage in a merged audit (see [`super::vantage`]).
//!
//! Pure: the caller passes what it measured in an [`EvalContext`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::cadence::AuditHistory;
use super::catalogue::PortCatalogue;
use super::config::{Group, Policy};
use super::eval::Baseline;
use crate::model::{AuditVantage, Observation, PortState, Proto, Reason};
use crate::rules::profiles::{PortList, PortScope, Profiles, parse_port_list};

/// What the audit measured besides the observations.
#[derive(Debug, Clone)]
pub struct EvalContext<'a> {
    /// Expiries, windows and review dates are judged by its UTC date.
    pub now: DateTime<Utc>,
    /// The previous run of the same scope, for the change checks.
    pub baseline: Option<&'a Baseline>,
    /// Where the probes left from.
    pub vantage: AuditVantage,
    /// An audit merging signed bundles of several vantages: what each
    /// vantage probed and saw open; each host is judged from the vantages
    /// that scanned it (see [`super::vantage`]). Empty: `vantage` stands
    /// for every host.
    pub scans: Vec<super::vantage::VantageScan>,
    /// What the UDP probes carried.
    pub udp: UdpEvidence,
    /// The earlier audits of the same scope, for the calendar checks;
    /// `None` without a history (`--no-store`).
    pub audits: Option<&'a AuditHistory>,
}

impl<'a> EvalContext<'a> {
    /// A context with no vantage, no UDP payloads and no history: nothing
    /// beyond the observations themselves is taken as evidence.
    pub fn bare(now: DateTime<Utc>) -> EvalContext<'a> {
        EvalContext {
            now,
            baseline: None,
            vantage: AuditVantage::default(),
            scans: Vec::new(),
            udp: UdpEvidence::default(),
            audits: None,
        }
    }
}

/// Which UDP probes carried a payload a service answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpEvidence {
    /// Ports our own UDP engine sent a service payload to (sorted). Empty
    /// for imports: their UDP answers count only where they name a service.
    pub payload_ports: Vec<u16>,
    /// The NTP monlist request was sent (`--udp-monlist`).
    pub monlist: bool,
}

/// The NTP port: its amplifier check needs the monlist request.
const NTP: u16 = 123;
/// The SNMP port: the default-community check needs our SNMP payload.
const SNMP: u16 = 161;

/// One resolved port scope (a profile's, or a group's narrower one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedScope {
    pub text: String,
    pub tcp: PortList,
    pub udp: PortList,
    /// Set when a group narrowed a profile's scope: `group: justification`.
    pub narrowed_by: Option<String>,
}

/// Every port scope an audit judges by, resolved once against the port
/// catalogue; hosts refer to them by index.
#[derive(Debug, Default)]
pub struct ScopeTable {
    pub scopes: Vec<ResolvedScope>,
    /// (profile id, group name or "") → index in `scopes`.
    index: BTreeMap<(String, String), usize>,
}

fn resolve(scope: &PortScope, cat: &dyn PortCatalogue) -> (PortList, PortList) {
    let one = |spec: &Option<String>| match spec {
        None => PortList::Ports(Vec::new()),
        // Validated when the rules and the policy were loaded; a name the
        // catalogue does not know asks for every port (fail closed).
        Some(s) => parse_port_list(s, |n| cat.set(n)).unwrap_or(PortList::All),
    };
    (one(&scope.tcp), one(&scope.udp))
}

impl ScopeTable {
    pub fn new(policy: &Policy, profiles: &Profiles, cat: &dyn PortCatalogue) -> ScopeTable {
        let mut t = ScopeTable::default();
        for p in profiles.profiles() {
            let Some(scope) = &p.port_scope else { continue };
            let (tcp, udp) = resolve(scope, cat);
            t.index
                .insert((p.id.clone(), String::new()), t.scopes.len());
            t.scopes.push(ResolvedScope {
                text: scope.text(),
                tcp,
                udp,
                narrowed_by: None,
            });
            for g in &policy.groups {
                let Some(own) = &g.port_scope else { continue };
                if !g.profiles.contains(&p.id) {
                    continue;
                }
                let (tcp, udp) = resolve(&own.scope, cat);
                t.index
                    .insert((p.id.clone(), g.name.clone()), t.scopes.len());
                t.scopes.push(ResolvedScope {
                    text: own.scope.text(),
                    tcp,
                    udp,
                    narrowed_by: Some(format!("{}: {}", g.name, own.justification)),
                });
            }
        }
        t
    }

    /// The scope of `profile` for a host in `groups` (the first group that
    /// narrows it wins), if the profile declares one.
    pub fn of(&self, profile: &str, groups: &[&Group]) -> Option<usize> {
        groups
            .iter()
            .find_map(|g| self.index.get(&(profile.to_string(), g.name.clone())))
            .or_else(|| self.index.get(&(profile.to_string(), String::new())))
            .copied()
    }
}

/// What the probes of one host show, beyond its open ports.
#[derive(Debug, Clone, Default)]
pub struct HostEvidence {
    /// At least one probe was answered (open or closed).
    pub answered: bool,
    /// Probes that were sent and concluded (any state but a local error).
    pub sent: u64,
    /// Probes the local system refused to send: never tested.
    pub local_errors: u64,
    /// Conclusive segmentation probes: a reject, or TCP silence after the
    /// retries. UDP `open|filtered` proves nothing: a service may be silent.
    pub seg_conclusive: u64,
    /// UDP probes whose answer (or silence) can judge an amplifier.
    pub udp_judged: u64,
    /// UDP probes sent at all.
    pub udp_sent: u64,
    /// An SNMP probe carried our community request, or an import named it.
    pub snmp_judged: bool,
    /// NTP was probed without the monlist request.
    pub ntp_without_monlist: bool,
    /// Per scope index: (TCP ports of the scope probed, UDP ports probed).
    pub scope_hits: Vec<(usize, u32, u32)>,
}

/// A probe that was sent and concluded (for an unreachable group: one that
/// is also conclusive about isolation: a reject, or silence after the
/// retries; UDP `open|filtered` proves nothing).
pub(super) fn conclusive(o: &Observation, isolation: bool) -> bool {
    if o.reason == Reason::LocalError {
        return false;
    }
    !(isolation && o.state == PortState::OpenFiltered)
}

impl HostEvidence {
    /// Gathers one host's evidence; `scopes` are the scope indexes its
    /// profiles ask for, `isolation` when its group must be unreachable.
    pub fn of(
        all: &[&Observation],
        udp: &UdpEvidence,
        table: &ScopeTable,
        scopes: &[usize],
        isolation: bool,
    ) -> HostEvidence {
        let mut e = HostEvidence::default();
        for o in all {
            if matches!(o.state, PortState::Open | PortState::Closed) {
                e.answered = true;
            }
            if o.reason == Reason::LocalError {
                e.local_errors += 1;
                continue;
            }
            e.sent += 1;
            if isolation && conclusive(o, true) {
                e.seg_conclusive += 1;
            }
            if o.proto == Proto::Udp {
                e.udp_sent += 1;
                let named = o.service.as_ref().is_some_and(|s| !s.name.is_empty());
                let ours = udp.payload_ports.binary_search(&o.port).is_ok();
                if named || ours {
                    e.udp_judged += 1;
                }
                // A default community is judged by our request carrying it,
                // or by an answer that says which community it accepted; a
                // bare "snmp" from an import does not say.
                let community = o
                    .service
                    .as_ref()
                    .is_some_and(|s| s.extra.contains_key("community"));
                if o.port == SNMP && (ours || community) {
                    e.snmp_judged = true;
                }
                if o.port == NTP && !udp.monlist && !named {
                    e.ntp_without_monlist = true;
                }
            }
        }
        let mut idx: Vec<usize> = scopes.to_vec();
        idx.sort_unstable();
        idx.dedup();
        for i in idx {
            let s = &table.scopes[i];
            let (mut t, mut u) = (0u32, 0u32);
            for o in all {
                if !conclusive(o, isolation) {
                    continue;
                }
                match o.proto {
                    Proto::Tcp if s.tcp.contains(o.port) => t += 1,
                    Proto::Udp if s.udp.contains(o.port) => u += 1,
                    _ => {}
                }
            }
            e.scope_hits.push((i, t, u));
        }
        e
    }

    /// (TCP, UDP) ports of scope `i` probed on this host.
    pub fn hits(&self, i: usize) -> (u32, u32) {
        self.scope_hits
            .iter()
            .find(|(j, _, _)| *j == i)
            .map(|(_, t, u)| (*t, *u))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AuditVantage, is_internet_source};
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internet_sources_exclude_private_and_special_ranges() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "198.18.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(!is_internet_source(ip(a), false), "{a}");
        }
        assert!(is_internet_source(ip("20.30.40.50"), false));
        assert!(is_internet_source(ip("2a00:1450::1"), false));
        assert!(is_internet_source(ip("198.19.0.1"), true));
    }

    #[test]
    fn the_vantage_needs_the_flag_and_a_public_source() {
        let mut v = AuditVantage {
            name: None,
            sources: vec![ip("127.0.0.1")],
            interfaces: vec![Some("lo".into())],
            lab: false,
        };
        assert_eq!(
            v.internet().unwrap_err(),
            "declared internet, but the audit was not run with --vantage internet (scanned from 127.0.0.1 (lo))"
        );
        v.name = Some("internet".into());
        assert_eq!(
            v.internet().unwrap_err(),
            "declared internet, scanned from 127.0.0.1 (lo)"
        );
        v.sources = vec![ip("20.30.40.50")];
        v.interfaces = vec![Some("eth0".into())];
        assert_eq!(v.internet().unwrap(), "internet (20.30.40.50 (eth0))");
        v.sources = vec![ip("198.18.0.1")];
        assert!(v.internet().is_err());
        v.lab = true;
        assert!(
            v.internet()
                .unwrap()
                .contains("PORTWARDEN_TEST_VANTAGE=lab")
        );
        v.sources.clear();
        assert!(v.internet().unwrap_err().contains("no source address"));
    }

    #[test]
    fn port_lists_parse_sets_ranges_and_all() {
        let lookup = |n: &str| (n == "web").then(|| vec![80, 443]);
        assert_eq!(parse_port_list("all", lookup).unwrap(), PortList::All);
        assert_eq!(parse_port_list("1-65535", lookup).unwrap(), PortList::All);
        assert_eq!(
            parse_port_list("22, web, 8000-8002", lookup).unwrap(),
            PortList::Ports(vec![22, 80, 443, 8000, 8001, 8002])
        );
        assert_eq!(
            parse_port_list("nope", lookup).unwrap_err(),
            "unknown port set 'nope' in 'nope'"
        );
        assert!(parse_port_list("9-1", lookup).is_err());
        assert!(parse_port_list("a b", lookup).is_err());
    }
}
