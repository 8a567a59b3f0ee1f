//! Model layer: the plain data every other layer shares.
//!
//! Nothing here does I/O or knows about the network, the CLI or the report
//! format. The serde field names of [`Observation`] are the JSONL format
//! (`{"ip","port","proto","state","reason","rtt_ms",…}`): other tools and
//! later audits read them, so they stay stable once released.

mod assets;
pub(crate) mod drift;
mod vantage;
pub use assets::{AssetCell, AssetRow, AssetStatus, ProfileAssets};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
pub use vantage::{AuditVantage, is_internet_source, merge_by_name};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Transport protocol of a probed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(format!("unknown protocol '{other}' (expected tcp or udp)")),
        }
    }
}

/// What a probe concluded about one (address, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// The service accepted a connection (SYN-ACK, or a completed connect).
    Open,
    /// The host answered that nothing listens (RST, connection refused).
    Closed,
    /// No answer, or an ICMP error that says something in the path blocks it.
    Filtered,
    /// UDP: no answer after the retries, so either a service that ignores
    /// empty or unknown requests or a firewall that drops them (nmap's
    /// `open|filtered`).
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl PortState {
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a state was concluded. Names follow nmap's `reason` vocabulary so
/// people who read nmap output can read ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A SYN-ACK answered our SYN (SYN scan).
    SynAck,
    /// A TCP connect() completed (connect scan).
    Connected,
    /// A RST answered our SYN (SYN scan).
    Reset,
    /// connect() failed with ECONNREFUSED (connect scan).
    ConnRefused,
    /// Nothing came back before the last retry timed out.
    NoResponse,
    /// ICMP / ICMPv6 host unreachable (or connect's EHOSTUNREACH).
    HostUnreach,
    /// ICMP / ICMPv6 network unreachable (or connect's ENETUNREACH).
    NetUnreach,
    /// ICMP port unreachable on a TCP probe (a firewall's "reject").
    PortUnreach,
    /// ICMP protocol unreachable.
    ProtoUnreach,
    /// ICMP communication administratively prohibited (type 3 code 13;
    /// ICMPv6 type 1 code 1), or the host/net-prohibited codes 9 and 10.
    AdminProhibited,
    /// Any other ICMP destination-unreachable code.
    IcmpUnreach,
    /// A UDP datagram answered our UDP probe (nmap's `udp-response`).
    UdpResponse,
    /// The probe could not be sent at all: the local system refused it
    /// (no route, address family disabled, out of descriptors after
    /// back-off, …). The port was never tested; the observation's `error`
    /// names the errno. Reported as `filtered`, as nmap does for a port it
    /// got no answer from, but counted apart so it is never taken for one.
    LocalError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SynAck => "syn-ack",
            Reason::Connected => "connected",
            Reason::Reset => "reset",
            Reason::ConnRefused => "conn-refused",
            Reason::NoResponse => "no-response",
            Reason::HostUnreach => "host-unreach",
            Reason::NetUnreach => "net-unreach",
            Reason::PortUnreach => "port-unreach",
            Reason::ProtoUnreach => "proto-unreach",
            Reason::AdminProhibited => "admin-prohibited",
            Reason::IcmpUnreach => "icmp-unreach",
            Reason::UdpResponse => "udp-response",
            Reason::LocalError => "local-error",
        }
    }

    /// The state a reason implies. Every reason maps to exactly one state.
    pub fn state(self) -> PortState {
        match self {
            Reason::SynAck | Reason::Connected | Reason::UdpResponse => PortState::Open,
            Reason::Reset | Reason::ConnRefused => PortState::Closed,
            _ => PortState::Filtered,
        }
    }

    /// The state a reason implies for a probe of `proto`. UDP differs from
    /// TCP in two places: an ICMP port unreachable is the host's own
    /// "nothing listens" (closed), and silence proves nothing
    /// (open|filtered).
    pub fn state_for(self, proto: Proto) -> PortState {
        match (proto, self) {
            (Proto::Udp, Reason::PortUnreach) => PortState::Closed,
            (Proto::Udp, Reason::NoResponse) => PortState::OpenFiltered,
            _ => self.state(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How the ports were probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanKind {
    /// Full TCP handshake through the operating system (no privilege needed).
    Connect,
    /// Half-open stateless SYN scan over raw sockets (root or CAP_NET_RAW).
    Syn,
}

impl fmt::Display for ScanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ScanKind::Connect => "connect",
            ScanKind::Syn => "syn",
        })
    }
}

/// One probe result: the unit of the JSONL stream and of `observations.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub state: PortState,
    pub reason: Reason,
    /// Round-trip time of the answering probe; `None` when nothing answered.
    pub rtt_ms: Option<f64>,
    /// When the answer (or the final time-out) was seen.
    pub time: DateTime<Utc>,
    /// Host names (from the target specs) that resolved to `ip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// How many probes were sent before the conclusion (1 = no retry).
    #[serde(default = "one")]
    pub tries: u8,
    /// What answers on the port, once identification has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceInfo>,
    /// For reason `local-error`: the local error that stopped the probe,
    /// named by its errno (`EADDRNOTAVAIL: Cannot assign requested address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn one() -> u8 {
    1
}

impl Observation {
    /// A fresh observation stamped with the current time.
    pub fn new(ip: IpAddr, port: u16, proto: Proto, reason: Reason, rtt_ms: Option<f64>) -> Self {
        Observation {
            ip,
            port,
            proto,
            state: reason.state_for(proto),
            reason,
            rtt_ms,
            time: Utc::now(),
            hostnames: Vec::new(),
            tries: 1,
            service: None,
            error: None,
        }
    }
}

/// Where a report's run sits in the audit history: written into the
/// report's `manifest.json` (`history`) before the run is committed, while
/// the run records the manifest's hash. `history verify --against DIR`
/// checks the store still holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryAnchor {
    /// The history database the run was recorded in.
    pub store: String,
    /// The run's id.
    pub run: i64,
    /// The chain head the run links to (the hash of the run before it).
    pub prev_hash: String,
    /// `sha256`, or `hmac-sha256` for a keyed history.
    pub chain: String,
    /// The history key's public id, for a keyed history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Authentication status of an identified service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthStatus {
    /// The service demanded credentials before doing anything useful.
    Required,
    /// The service answered a real command without any credentials.
    None,
    #[default]
    Unknown,
}

/// Certificate facts gathered from a TLS handshake.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TlsInfo {
    /// Negotiated protocol version, e.g. `TLSv1.3`.
    pub version: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    pub not_after: Option<DateTime<Utc>>,
    pub self_signed: bool,
    pub expired: bool,
}

/// What identification learned about the service on an open port.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Service name in the catalogue's vocabulary (`ssh`, `http`, `redis`, …).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    #[serde(default)]
    pub auth: AuthStatus,
    /// The first bytes the service sent, escaped so the text is printable
    /// ASCII (`\xNN` for anything else). Bounded in length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// 0.0–1.0: how sure the match is.
    pub confidence: f32,
    /// True when the identified service differs from the one registered for
    /// the port in the catalogue (SSH on 8022, telnet on 2323).
    #[serde(default)]
    pub unexpected: bool,
    /// Free-form extra facts (HTTP title, Redis role, cluster name, …).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// Severity of a finding, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown severity '{s}' (expected one of: info, low, medium, high, critical)"
                )
            })
    }
}

/// Something the engine emits while it works; the caller (the CLI) decides
/// how to show it. The library itself never prints.
// Observations dominate the stream; boxing each would cost an allocation
// per port for no gain, so the size difference is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ScanEvent {
    /// A final conclusion about one port.
    Observation(Observation),
    /// Periodic progress: probes sent so far out of the planned total.
    Progress(Progress),
    /// Something the operator should know that is not an error
    /// (a fallback, a host name that did not resolve, a back-off).
    Notice(String),
}

/// A progress snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// (address, port) pairs concluded so far.
    pub done: u64,
    /// (address, port) pairs planned in all.
    pub total: u64,
    /// Open ports found so far.
    pub open: u64,
    /// Probes sent per second over the last interval.
    pub rate: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_jsonl_field_names_are_stable() {
        let mut o = Observation::new(
            "198.18.0.5".parse().unwrap(),
            22,
            Proto::Tcp,
            Reason::SynAck,
            Some(1.5),
        );
        o.time = "2026-01-02T03:04:05Z".parse().unwrap();
        let s = serde_json::to_string(&o).unwrap();
        assert_eq!(
            s,
            r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"syn-ack","rtt_ms":1.5,"time":"2026-01-02T03:04:05Z","tries":1}"#
        );
        let back: Observation = serde_json::from_str(&s).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn every_reason_has_one_state() {
        assert_eq!(Reason::ConnRefused.state(), PortState::Closed);
        assert_eq!(Reason::AdminProhibited.state(), PortState::Filtered);
        assert_eq!(Reason::Connected.state(), PortState::Open);
        assert_eq!(
            Reason::PortUnreach.state_for(Proto::Tcp),
            PortState::Filtered
        );
        assert_eq!(Reason::PortUnreach.state_for(Proto::Udp), PortState::Closed);
        assert_eq!(
            Reason::NoResponse.state_for(Proto::Udp),
            PortState::OpenFiltered
        );
        assert_eq!(Reason::UdpResponse.state_for(Proto::Udp), PortState::Open);
        assert_eq!(
            Reason::HostUnreach.state_for(Proto::Udp),
            PortState::Filtered
        );
    }

    #[test]
    fn open_filtered_serializes_as_nmap_names_it() {
        let s = serde_json::to_string(&PortState::OpenFiltered).unwrap();
        assert_eq!(s, r#""open|filtered""#);
        let back: PortState = serde_json::from_str(&s).unwrap();
        assert_eq!(back, PortState::OpenFiltered);
        assert_eq!(PortState::OpenFiltered.to_string(), "open|filtered");
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Critical > Severity::High);
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert!("urgent".parse::<Severity>().is_err());
    }
}

// ---------------------------------------------------------------------------
// Findings: what the policy engine concludes from observations. Plain data;
// the logic is in `policy`. These field names are the `findings.json`
// format, read by reports and by later audits (stable ids).
// ---------------------------------------------------------------------------

/// Whether a finding counts against the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingStatus {
    /// Nothing excuses it.
    Fail,
    /// A valid exception covers it today.
    Waived,
    /// An exception covered it but has expired: it fails again.
    ExpiredWaiver,
}

impl FindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Fail => "fail",
            FindingStatus::Waived => "waived",
            FindingStatus::ExpiredWaiver => "expired-waiver",
        }
    }

    /// True when the finding counts against the audit (and the gate).
    pub fn is_failing(self) -> bool {
        !matches!(self, FindingStatus::Waived)
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The observation a finding rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub time: DateTime<Utc>,
    pub state: PortState,
    pub reason: Reason,
}

/// One policy or compliance finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across runs: a hash of host, port, protocol and check.
    pub id: String,
    /// The check kind (`not-allowed`, `cleartext-admin`, …).
    pub check: String,
    pub severity: Severity,
    pub ip: IpAddr,
    /// `None` for host-level checks (port cap, unmanaged host).
    pub port: Option<u16>,
    pub proto: Option<Proto>,
    /// Identified service, else the catalogue's name for the port.
    pub service: Option<String>,
    /// The asset group the host belongs to; `None` for an unmanaged host.
    pub group: Option<String>,
    pub evidence: Option<Evidence>,
    pub status: FindingStatus,
    /// The exception that waived it, whose expiry made it fail again, or
    /// whose window did not cover the audit day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// `profile:requirement`, e.g. `pci-dss-4.0:1.2.5`, `mlps2-level3:8.1.4.4 b)`.
    pub controls: Controls,
    /// Key of the remediation template (`close-port`, `restrict-source`, …).
    pub remediation: String,
    pub message: String,
    /// The message as a translation key and its parameters (`message` is
    /// its English rendering).
    #[serde(default)]
    pub msg: Message,
    /// The allowance (policy file:line) the evaluator matched for the
    /// finding's port, over every group of the host: the fix that edits an
    /// allowance reads it here instead of matching again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<RuleRef>,
}

/// A finding's controls, shared: every finding of one check on hosts of
/// one kind maps to the same list, and a /16 audit has ~150,000 findings.
/// Serialised as the list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Controls(std::sync::Arc<[String]>);

impl std::ops::Deref for Controls {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for Controls {
    fn from(v: Vec<String>) -> Controls {
        Controls(v.into())
    }
}

impl<const N: usize> PartialEq<[&str; N]> for Controls {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.0.len() == N && self.0.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl Serialize for Controls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for Controls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d).map(Controls::from)
    }
}

/// A sentence as data: a key of the report's `[msg]` translations and the
/// values to fill in (`{port}`, `{group}`, …). Renderers translate it; the
/// English text stays beside it for readers without the key tables.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Message {
    pub key: String,
    #[serde(default, skip_serializing_if = "MsgArgs::is_empty")]
    pub args: MsgArgs,
}

/// A message's parameters, sorted by name. A short sorted list rather than
/// a `BTreeMap`: a finding has one to four parameters, and a map's node
/// (room for eleven pairs) made each of a /16 audit's ~150,000 findings
/// half a kilobyte larger. Serialised as a map, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MsgArgs(Vec<(String, String)>);

impl MsgArgs {
    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets a parameter, replacing any earlier value of the same name.
    pub fn insert(&mut self, name: String, value: String) {
        match self.find(&name) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }
}

impl Serialize for MsgArgs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for MsgArgs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(MsgArgs(map.into_iter().collect()))
    }
}

impl Message {
    /// A message with no parameters.
    pub fn new(key: &str) -> Message {
        Message {
            key: key.to_string(),
            args: Default::default(),
        }
    }

    /// Adds a parameter.
    pub fn arg(mut self, name: &str, value: impl fmt::Display) -> Message {
        self.args.insert(name.to_string(), value.to_string());
        self
    }
}

/// How a requirement fared in one audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequirementStatus {
    /// Every mapped check ran over an in-scope host with its data; none failed.
    Pass,
    /// A failing finding maps to it.
    Fail,
    /// Nothing failed, but some mapped checks could not run, or a scan can
    /// only partly evidence the requirement (`evidence = "partial"`).
    Partial,
    /// Nothing mapped ran, or a scan cannot judge it.
    NotAssessed,
    /// Every failure that maps to it is covered by an active exception:
    /// the risk is accepted (PCI "in place with compensating control",
    /// 等保 风险接受). Never counted as a pass.
    Accepted,
}

impl RequirementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequirementStatus::Pass => "pass",
            RequirementStatus::Fail => "fail",
            RequirementStatus::Partial => "partial",
            RequirementStatus::NotAssessed => "not-assessed",
            RequirementStatus::Accepted => "accepted",
        }
    }
}

/// How far a port scan can evidence a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceLevel {
    /// A clean scan is evidence that the requirement is met.
    #[default]
    Full,
    /// A scan can show a failure but never that the requirement is met
    /// (PCI 8.2.1 unique user IDs: a scan sees unauthenticated services,
    /// not accounts). The best status is `partial`.
    Partial,
}

/// Whether one check ran, over which hosts, with which data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckCoverage {
    /// The check kind (`not-allowed`, `unauth-service`, …) with its
    /// condition when the mapping has one (`not-allowed@tag:cardholder`).
    pub check: String,
    /// True when it ran over at least one in-scope host with the data it needs.
    pub ran: bool,
    /// In-scope hosts it ran over.
    pub hosts: usize,
    /// In-scope hosts it had to run over (those with something of its kind
    /// to judge): a pass needs `hosts == of`.
    #[serde(default)]
    pub of: usize,
    /// It did not run because there was nothing of its kind to judge (no
    /// exception to expire, no allowance to review): it neither blocks a
    /// `pass` nor counts as evidence for one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nothing_to_judge: bool,
    /// Probes behind it, where that is the evidence (segmentation).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probes: u64,
    /// Why it could not run (English).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_msg: Option<Message>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a requirement's verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Coverage {
    /// Audited hosts (that answered, or probed hosts of an
    /// `expect = "unreachable"` group) whose groups declare the profile.
    pub hosts_in_scope: usize,
    /// Hosts the requirement applies to: every probed host whose groups
    /// declare the profile (or, for a baseline profile, every probed host in
    /// no group), answered or not.
    #[serde(default)]
    pub hosts_applicable: usize,
    /// Of those, the hosts that answered at least one probe (open or closed).
    #[serde(default)]
    pub hosts_answered: usize,
    /// The port scope the profile asks for, and how much of it was probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortCoverage>,
    /// The vantage the requirement was judged from (`internet (203.0.113.7)`),
    /// or why a declared vantage was not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<String>,
    /// What keeps the evidence from being complete, in words (each also a
    /// reason of a `partial` or `not-assessed` status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Message>,
    /// One per mapped check, in the profile's order.
    pub checks: Vec<CheckCoverage>,
}

impl Coverage {
    /// `not-allowed: ran on 3 hosts; port-cap: not run (no cap declared)`.
    pub fn summary(&self) -> String {
        self.checks
            .iter()
            .map(|c| {
                if c.ran {
                    let probes = if c.probes > 0 {
                        format!(", {} probes", c.probes)
                    } else {
                        String::new()
                    };
                    format!("{}: ran on {} host(s){probes}", c.check, c.hosts)
                } else if c.nothing_to_judge {
                    format!(
                        "{}: nothing to judge ({})",
                        c.check,
                        c.reason.as_deref().unwrap_or("no data")
                    )
                } else {
                    format!(
                        "{}: not run ({})",
                        c.check,
                        c.reason.as_deref().unwrap_or("no data")
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The port scope a profile asks for, against what was probed on the hosts
/// it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortCoverage {
    /// The scope as written (`tcp 1-65535, udp high-risk-udp`).
    pub scope: String,
    /// A group narrowed the profile's scope with this justification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowed_by: Option<String>,
    /// Ports of the scope per host, per protocol.
    pub tcp_required: u32,
    pub udp_required: u32,
    /// The least any answering host had probed (a probe that was never sent
    /// does not count).
    pub tcp_probed_min: u32,
    pub udp_probed_min: u32,
    /// Answering hosts whose whole scope was probed.
    pub hosts_complete: usize,
}

/// Which checks ran over one group's hosts (`group` `None`: hosts in no group).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupCoverage {
    pub group: Option<String>,
    /// Audited hosts of the group (that answered; every probed host of an
    /// `expect = "unreachable"` group).
    pub hosts: usize,
    /// Probes concluded on those hosts (open, closed and filtered).
    pub probes: u64,
    /// One per check kind.
    pub checks: Vec<CheckCoverage>,
}

/// An exception of the policy as of the audit day: its state is decided
/// once, by the evaluator; reports only format it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionVerdict {
    pub id: String,
    pub line: usize,
    pub target: String,
    /// `23/tcp`, or `all` for every port (with a check).
    pub ports: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// `active`, `expired` or `outside-window`.
    pub state: String,
    pub expires: chrono::NaiveDate,
    /// Days from the audit day to the expiry (negative once expired).
    pub days_left: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_by: Option<chrono::NaiveDate>,
    pub approver: String,
    pub reason: String,
}

/// Where in the policy a decision came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The evaluator's decision about one open port: the renderers format it,
/// never re-derive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortVerdict {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    /// The first group of the host; `None` for an unmanaged host.
    pub group: Option<String>,
    /// The allowance that admits the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<RuleRef>,
    /// The allowance's documentation, for the inventory (PCI DSS 1.2.5.a).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_by: Option<chrono::NaiveDate>,
    /// The allowance's review date has passed (decided once, here).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub review_overdue: bool,
    /// An exception that applied (waived, or expired) to a finding here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// The checks that fired on the port (any status).
    #[serde(default)]
    pub checks_fired: Vec<String>,
    /// The service judged: identification's when specific, else the catalogue's.
    pub service: Option<String>,
    pub catalogue_service: Option<String>,
    pub identified_service: Option<String>,
    pub catalogue_risk: Option<Severity>,
    pub identified_risk: Option<Severity>,
    /// max(catalogue, identified): identification may raise, never lower.
    pub effective_risk: Option<Severity>,
}

impl fmt::Display for RequirementStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One requirement's verdict, with the findings behind a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequirementVerdict {
    pub id: String,
    pub title_en: String,
    pub title_zh: String,
    pub status: RequirementStatus,
    /// False while the mapping to this requirement awaits confirmation.
    pub confirmed: bool,
    /// Why it is partial or not assessed (English).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `reason` as a translation key and parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_msg: Option<Message>,
    /// Ids of the failing findings (`fail`), or of the waived findings
    /// whose risk an exception accepts (`accepted`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    /// How far a scan can evidence it (`partial`: never `pass`).
    #[serde(default)]
    pub evidence: EvidenceLevel,
    /// Which mapped checks ran, over which hosts, and why others did not.
    #[serde(default)]
    pub coverage: Coverage,
}

/// One profile's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileVerdict {
    pub profile: String,
    pub name: String,
    pub requirements: Vec<RequirementVerdict>,
    /// The status counts (passed … accepted) are over confirmed mappings
    /// only; the unconfirmed ones are counted in `unconfirmed` alone.
    pub passed: usize,
    pub failed: usize,
    pub not_assessed: usize,
    #[serde(default)]
    pub partial: usize,
    /// Requirements whose failures are all covered by exceptions.
    #[serde(default)]
    pub accepted: usize,
    /// Requirements whose mapping awaits confirmation (†): shown, never scored.
    #[serde(default)]
    pub unconfirmed: usize,
    /// passed / (passed + failed) over confirmed mappings only; `None` when
    /// no confirmed requirement passed or failed, and while any requirement
    /// is partial, accepted or not assessed (a percentage would read as more
    /// than the evidence shows).
    pub score: Option<f64>,
}
