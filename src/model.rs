//! Model layer: the plain data every other layer shares.
//!
//! Nothing here does I/O or knows about the network, the CLI or the report
//! format. The serde field names of [`Observation`] are the JSONL format
//! (`{"ip","port","proto","state","reason","rtt_ms",…}`): other tools and
//! later audits read them, so they stay stable once released.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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
    /// UDP only: no answer after every retry. A UDP service that ignores
    /// the probe and a firewall that drops it look the same (nmap's name).
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
        }
    }

    /// The state a reason implies. Every reason maps to exactly one state.
    pub fn state(self) -> PortState {
        match self {
            Reason::SynAck | Reason::Connected => PortState::Open,
            Reason::Reset | Reason::ConnRefused => PortState::Closed,
            Reason::UdpResponse => PortState::Open,
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
        }
    }
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
    pub controls: Vec<String>,
    /// Key of the remediation template (`close-port`, `restrict-source`, …).
    pub remediation: String,
    pub message: String,
}

/// How a requirement fared in one audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequirementStatus {
    Pass,
    Fail,
    NotAssessed,
}

impl RequirementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequirementStatus::Pass => "pass",
            RequirementStatus::Fail => "fail",
            RequirementStatus::NotAssessed => "not-assessed",
        }
    }
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
    /// Why it was not assessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ids of the failing findings (empty unless `status` is `fail`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
}

/// One profile's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileVerdict {
    pub profile: String,
    pub name: String,
    pub requirements: Vec<RequirementVerdict>,
    pub passed: usize,
    pub failed: usize,
    pub not_assessed: usize,
    /// passed / (passed + failed); `None` when nothing was assessed.
    pub score: Option<f64>,
}
