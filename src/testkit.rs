//! Test fixtures shared by the unit tests of `policy` and `report`: a fixed
//! clock, observations, policies parsed against the embedded profiles, a
//! small port catalogue, the evaluation contexts of the lab, and lookups
//! into an [`Evaluation`].
//!
//! ```ignore
//! let a = Audit::new(group("a", "198.18.0.1").profiles(&["cis-v8"]).allow(443, "web").toml());
//! let e = a.eval(&[obs("198.18.0.1", 443).service("https")]);
//! ```

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::model::{
    AuditVantage, AuthStatus, Finding, FindingStatus, Observation, Proto, Reason,
    RequirementVerdict, RuleRef, ServiceInfo, Severity, TlsInfo,
};
use crate::policy::{
    EvalContext, Evaluation, Policy, PortCatalogue, Profiles, StaticCatalogue, UdpEvidence,
    evaluate, evaluate_in,
};
use crate::report::{FixGroup, Lang, RemediationCatalog, fix_groups};
use crate::rules::Catalogue;

/// The audit day of most tests.
pub(crate) const DAY: &str = "2026-11-24";

/// When the test observations were made, unless `.at(..)` says otherwise.
pub(crate) const SEEN: &str = "2026-11-24T08:00:00Z";

/// Noon UTC of `day` (`YYYY-MM-DD`): the clock of an audit.
pub(crate) fn at(day: &str) -> DateTime<Utc> {
    format!("{day}T12:00:00Z").parse().unwrap()
}

/// An open TCP port (`syn-ack`) seen at [`SEEN`], with no identification.
pub(crate) fn obs(ip: &str, port: u16) -> Observation {
    let mut o = Observation::new(
        ip.parse().unwrap(),
        port,
        Proto::Tcp,
        Reason::SynAck,
        Some(1.0),
    );
    o.time = SEEN.parse().unwrap();
    o
}

/// A closed TCP port (`conn-refused`).
pub(crate) fn closed(ip: &str, port: u16) -> Observation {
    obs(ip, port).reason(Reason::ConnRefused)
}

/// A closed UDP port (ICMP port unreachable): the UDP checks ran.
pub(crate) fn udp_closed(ip: &str, port: u16) -> Observation {
    obs(ip, port).udp().reason(Reason::PortUnreach)
}

/// Builder steps on an [`Observation`]; each keeps the state consistent
/// with the protocol and the reason.
pub(crate) trait ObsExt: Sized {
    fn reason(self, reason: Reason) -> Self;
    fn udp(self) -> Self;
    /// Seen at `time` (RFC 3339).
    fn at(self, time: &str) -> Self;
    /// Identified as `name` with full confidence.
    fn service(self, name: &str) -> Self;
    /// Guessed as `name` with `confidence`.
    fn guess(self, name: &str, confidence: f32) -> Self;
    /// The identified service speaks TLS.
    fn tls(self, self_signed: bool) -> Self;
    /// The identified service's authentication.
    fn auth(self, auth: AuthStatus) -> Self;
}

impl ObsExt for Observation {
    fn reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self.state = reason.state_for(self.proto);
        self
    }
    fn udp(mut self) -> Self {
        self.proto = Proto::Udp;
        self.state = self.reason.state_for(self.proto);
        self
    }
    fn at(mut self, time: &str) -> Self {
        self.time = time.parse().unwrap();
        self
    }
    fn service(self, name: &str) -> Self {
        self.guess(name, 1.0)
    }
    fn guess(mut self, name: &str, confidence: f32) -> Self {
        self.service = Some(ServiceInfo {
            name: name.into(),
            confidence,
            ..Default::default()
        });
        self
    }
    fn tls(mut self, self_signed: bool) -> Self {
        self.service.as_mut().expect("tls after service").tls = Some(TlsInfo {
            self_signed,
            ..Default::default()
        });
        self
    }
    fn auth(mut self, auth: AuthStatus) -> Self {
        self.service.as_mut().expect("auth after service").auth = auth;
        self
    }
}

/// The ports of the test scopes: `common` (TCP) and `high-risk-udp`.
pub(crate) const COMMON: [u16; 9] = [22, 23, 80, 443, 445, 502, 3389, 5432, 6379];
pub(crate) const HIGH_RISK_UDP: [u16; 4] = [53, 123, 161, 11211];

/// A catalogue of the few ports the tests use, with the scopes `common`
/// and `high-risk-udp`.
pub(crate) fn catalogue() -> StaticCatalogue {
    use Severity::*;
    StaticCatalogue::new()
        .with(22, Proto::Tcp, "ssh", Medium, &["remote-admin"])
        .with(
            23,
            Proto::Tcp,
            "telnet",
            High,
            &["cleartext", "remote-admin"],
        )
        .with(443, Proto::Tcp, "https", Low, &[])
        .with(80, Proto::Tcp, "http", Low, &["web", "cleartext"])
        .with(445, Proto::Tcp, "microsoft-ds", Critical, &[])
        .with(502, Proto::Tcp, "modbus", High, &["ot"])
        .with(3389, Proto::Tcp, "rdp", High, &["remote-admin"])
        .with(5432, Proto::Tcp, "postgresql", High, &["database"])
        .with(6379, Proto::Tcp, "redis", High, &["database", "cache"])
        .with_set("common", &COMMON)
        .with_set("high-risk-udp", &HIGH_RISK_UDP)
}

/// `o`, plus a closed answer on every other port of the test scopes of
/// `ip`: a host scanned in full.
pub(crate) fn covered(ip: &str, o: &[Observation]) -> Vec<Observation> {
    let mut out = o.to_vec();
    let have = |p: u16, proto: Proto| {
        o.iter()
            .any(|x| x.ip.to_string() == ip && x.port == p && x.proto == proto)
    };
    for p in COMMON {
        if !have(p, Proto::Tcp) {
            out.push(closed(ip, p));
        }
    }
    for p in HIGH_RISK_UDP {
        if !have(p, Proto::Udp) {
            out.push(udp_closed(ip, p));
        }
    }
    out
}

/// An audit run from the lab with `--vantage internet` under the lab test
/// setting, whose UDP engine sent its payloads (monlist included).
pub(crate) fn lab_internet(day: &str) -> EvalContext<'static> {
    EvalContext {
        now: at(day),
        baseline: None,
        vantage: AuditVantage {
            name: Some("internet".into()),
            sources: vec!["198.18.0.1".parse().unwrap()],
            interfaces: vec![Some("veth0".into())],
            lab: true,
        },
        scans: Vec::new(),
        udp: UdpEvidence {
            payload_ports: vec![53, 123, 161, 1900, 11211],
            monlist: true,
        },
        audits: None,
    }
}

/// An audit whose UDP engine sent its payloads (monlist included), from no
/// particular vantage.
pub(crate) fn scanned(day: &str) -> EvalContext<'static> {
    EvalContext {
        vantage: AuditVantage::default(),
        ..lab_internet(day)
    }
}

/// A policy text, written a group at a time.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyToml(String);

/// A policy of one group `name` over `targets` (one target spec).
pub(crate) fn group(name: &str, targets: &str) -> PolicyToml {
    PolicyToml::default().group(name, targets)
}

impl PolicyToml {
    /// Opens another `[[group]]`.
    pub(crate) fn group(self, name: &str, targets: &str) -> Self {
        self.group_over(name, &[targets])
    }
    /// Opens another `[[group]]` over several target specs.
    pub(crate) fn group_over(mut self, name: &str, targets: &[&str]) -> Self {
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        self.0.push_str(&format!(
            "[[group]]\nname = \"{name}\"\ntargets = [{}]\n",
            targets.join(", ")
        ));
        self
    }
    /// `profiles = [..]` of the group.
    pub(crate) fn profiles(self, ids: &[&str]) -> Self {
        self.list("profiles", ids)
    }
    /// `tags = [..]` of the group.
    pub(crate) fn tags(self, tags: &[&str]) -> Self {
        self.list("tags", tags)
    }
    /// `key = [..]`, a list of strings.
    fn list(self, key: &str, items: &[&str]) -> Self {
        let items: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
        self.line(&format!("{key} = [{}]", items.join(", ")))
    }
    /// Any line, as written.
    pub(crate) fn line(mut self, line: &str) -> Self {
        self.0.push_str(line);
        self.0.push('\n');
        self
    }
    /// A complete allowance (approver `lead`, reviewed by 2027-01-31).
    pub(crate) fn allow(self, port: u16, justification: &str) -> Self {
        self.allow_with(port, &[], justification)
    }
    /// [`Self::allow`] with more lines (e.g. `service = "https"`) after the port.
    pub(crate) fn allow_with(self, port: u16, lines: &[&str], justification: &str) -> Self {
        self.allow_only(port, lines).line(&format!(
            "justification = \"{justification}\"\napprover = \"lead\"\nreview_by = 2027-01-31"
        ))
    }
    /// An allowance of `port` with just `lines` (no approver, no review):
    /// an incomplete one.
    pub(crate) fn allow_only(mut self, port: u16, lines: &[&str]) -> Self {
        self.0
            .push_str(&format!("[[group.allow]]\nport = {port}\n"));
        for l in lines {
            self = self.line(l);
        }
        self
    }
    /// An `[[exception]]` (`id`, if any) of `port` on `target`, with
    /// `lines` after it (reason, approver, expires, …).
    pub(crate) fn exception(
        mut self,
        id: Option<&str>,
        target: &str,
        port: u16,
        lines: &[&str],
    ) -> Self {
        self.0.push_str("[[exception]]\n");
        if let Some(id) = id {
            self = self.line(&format!("id = \"{id}\""));
        }
        self.0
            .push_str(&format!("target = \"{target}\"\nport = {port}\n"));
        for l in lines {
            self = self.line(l);
        }
        self
    }
    /// `port_scope = { tcp, udp, justification }` of the group.
    pub(crate) fn port_scope(self, tcp: &str, udp: &str, justification: &str) -> Self {
        self.line(&format!(
            "port_scope = {{ tcp = \"{tcp}\", udp = \"{udp}\", justification = \"{justification}\" }}"
        ))
    }
    /// One `[[group.allow]]` a row, each after a blank line.
    pub(crate) fn allowances(mut self, rows: &[AllowRow]) -> Self {
        for &(port, service, justification, approver, review_by) in rows {
            let lines = [
                keyed("service", service, true),
                keyed("justification", justification, true),
                keyed("approver", approver, true),
                keyed("review_by", review_by, false),
            ];
            let lines: Vec<&str> = lines.iter().flatten().map(String::as_str).collect();
            self = self.line("").allow_only(port, &lines);
        }
        self
    }
    /// One `[[exception]]` a row, each after a blank line.
    pub(crate) fn exceptions(mut self, rows: &[ExceptionRow]) -> Self {
        for &(id, target, port, reason, approver, expires) in rows {
            let lines = [
                format!("reason = \"{reason}\""),
                format!("approver = \"{approver}\""),
                format!("expires = {expires}"),
            ];
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            self = self.line("").exception(Some(id), target, port, &lines);
        }
        self
    }
    /// One `[[change]]` a row, each after a blank line; `opens` as written.
    pub(crate) fn changes(mut self, rows: &[ChangeRow]) -> Self {
        for &(ticket, approver, approved, target, opens) in rows {
            self = self.line(&format!(
                "\n[[change]]\nticket = \"{ticket}\"\napprover = \"{approver}\"\napproved = {approved}\ntarget = \"{target}\"\nopens = {opens}"
            ));
        }
        self
    }
    pub(crate) fn toml(&self) -> &str {
        &self.0
    }
}

/// (port, service, justification, approver, review_by) of an allowance;
/// an empty field is left out.
pub(crate) type AllowRow<'a> = (u16, &'a str, &'a str, &'a str, &'a str);

/// (id, target, port, reason, approver, expires) of an exception.
pub(crate) type ExceptionRow<'a> = (&'a str, &'a str, u16, &'a str, &'a str, &'a str);

/// (ticket, approver, approved, target, opens) of a change record.
pub(crate) type ChangeRow<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

/// `key = value` (quoted as a string or not), or nothing for an empty value.
fn keyed(key: &str, value: &str, quoted: bool) -> Option<String> {
    match (value.is_empty(), quoted) {
        (true, _) => None,
        (false, true) => Some(format!("{key} = \"{value}\"")),
        (false, false) => Some(format!("{key} = {value}")),
    }
}

/// The embedded profiles.
pub(crate) fn profiles() -> Profiles {
    Profiles::embedded().unwrap()
}

/// A policy parsed against `profiles`, with the evaluations the tests run.
pub(crate) struct Audit {
    pub profiles: Profiles,
    pub policy: Policy,
}

impl Audit {
    /// `text` as `p.toml`, against the embedded profiles.
    pub(crate) fn new(text: &str) -> Self {
        Self::named(text, "p.toml")
    }
    /// `text` as `file`, against the embedded profiles.
    pub(crate) fn named(text: &str, file: &str) -> Self {
        Self::with(profiles(), text, file)
    }
    /// `text` as `file`, against `profiles`.
    pub(crate) fn with(profiles: Profiles, text: &str, file: &str) -> Self {
        let policy = Policy::parse(text, file, &profiles).unwrap();
        Audit { profiles, policy }
    }
    /// Evaluated with [`catalogue`] at noon on [`DAY`], no context.
    pub(crate) fn eval(&self, o: &[Observation]) -> Evaluation {
        self.eval_at(&catalogue(), o, at(DAY))
    }
    /// Evaluated with `ports` at `now`, no context.
    pub(crate) fn eval_at(
        &self,
        ports: &dyn PortCatalogue,
        o: &[Observation],
        now: DateTime<Utc>,
    ) -> Evaluation {
        evaluate(&self.policy, &self.profiles, ports, o, now)
    }
    /// Evaluated with [`catalogue`] in `cx`.
    pub(crate) fn eval_in(&self, o: &[Observation], cx: &EvalContext) -> Evaluation {
        evaluate_in(&self.policy, &self.profiles, &catalogue(), o, cx)
    }
    /// Evaluated with the embedded port catalogue at noon on [`DAY`].
    pub(crate) fn eval_real(&self, o: &[Observation]) -> Evaluation {
        self.eval_at(&Catalogue::embedded(), o, at(DAY))
    }
    /// The fix groups of `findings` in English, from the embedded
    /// remediation catalogue and port catalogue.
    pub(crate) fn fixes(&self, findings: &[Finding]) -> Vec<FixGroup> {
        fix_groups(
            findings,
            &self.policy,
            &RemediationCatalog::embedded(),
            &Catalogue::embedded(),
            Lang::En,
        )
    }
}

/// (check, remediation key, address, port, service) of one finding.
pub(crate) type FixRow<'a> = (&'a str, &'a str, &'a str, Option<u16>, Option<&'a str>);

/// The failing finding of `row`, high, as the evaluator records it against
/// `policy`: the host's first group, and the allowance over every group of
/// the host that admits the port (UDP for 161, TCP otherwise).
pub(crate) fn finding_in(policy: &Policy, row: FixRow) -> Finding {
    let (check, key, ip, port, service) = row;
    let ip: IpAddr = ip.parse().unwrap();
    let groups = policy.groups_of(ip);
    let proto = port.map(|p| if p == 161 { Proto::Udp } else { Proto::Tcp });
    let allowed_by = port.zip(proto).and_then(|(p, pr)| {
        groups
            .iter()
            .flat_map(|g| g.allow.iter())
            .find(|a| a.matches(p, pr))
            .map(|a| RuleRef {
                file: policy.file.clone(),
                line: a.line,
            })
    });
    Finding {
        id: format!("{check}-{ip}-{}", port.unwrap_or(0)),
        check: check.into(),
        severity: Severity::High,
        ip,
        port,
        proto,
        service: service.map(str::to_owned),
        group: groups.first().map(|g| g.name.clone()),
        evidence: None,
        status: FindingStatus::Fail,
        exception: None,
        controls: Default::default(),
        remediation: key.into(),
        message: String::new(),
        msg: Default::default(),
        allowed_by,
    }
}

/// [`finding_in`] of each row.
pub(crate) fn findings_in(policy: &Policy, rows: &[FixRow]) -> Vec<Finding> {
    rows.iter().map(|&r| finding_in(policy, r)).collect()
}

/// `ip port check status severity` of a finding.
pub(crate) fn brief(f: &Finding) -> String {
    let port = f.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    format!("{} {port} {} {} {}", f.ip, f.check, f.status, f.severity)
}

/// The finding of `check` on `ip:port`; panics naming it when there is none.
pub(crate) fn find<'a>(e: &'a Evaluation, ip: &str, port: Option<u16>, check: &str) -> &'a Finding {
    let ip: IpAddr = ip.parse().unwrap();
    e.findings
        .iter()
        .find(|f| f.ip == ip && f.port == port && f.check == check)
        .unwrap_or_else(|| panic!("no {check} on {ip}:{port:?}"))
}

/// Requirement `id` of `profile`.
pub(crate) fn req<'a>(e: &'a Evaluation, profile: &str, id: &str) -> &'a RequirementVerdict {
    e.profiles
        .iter()
        .find(|p| p.profile == profile)
        .unwrap_or_else(|| panic!("no profile {profile}"))
        .requirements
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no {profile}:{id}"))
}

/// Asserts that the reason of `r` says `part`.
pub(crate) fn assert_reason(r: &RequirementVerdict, part: &str) {
    assert!(
        r.reason.as_deref().unwrap().contains(part),
        "{:?}",
        r.reason
    );
}
