//! Rules layer: compliance profiles (`rules/profiles/<id>.toml`) and the
//! parameters of the checks (`rules/profiles/checks.toml`).
//!
//! A profile lists a standard's requirements with the IDs exactly as the
//! standard numbers them and says which portwarden checks fail each one;
//! what a port scan cannot judge is kept, marked `not-assessed` with its
//! reason, so a report never implies more coverage than it has. The files
//! are embedded as defaults and can be replaced one by one from a rules
//! directory.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use super::line_col;
use crate::model::{EvidenceLevel, Severity};

/// Ids of the built-in profiles, in report order.
pub const BUILTIN_PROFILES: [&str; 12] = [
    "pci-dss-4.0",
    "iso27001-2022",
    "mlps2-level3",
    "cis-v8",
    "nist-800-53r5",
    "soc2-2017",
    "hipaa-security-rule",
    "mlps2-level2",
    "mlps2-level4",
    "mlps2-cloud",
    "mlps2-ics",
    "iec62443-3-3",
];

pub(crate) const EMBEDDED: [(&str, &str); 12] = [
    (
        "pci-dss-4.0",
        include_str!("../../rules/profiles/pci-dss-4.0.toml"),
    ),
    (
        "iso27001-2022",
        include_str!("../../rules/profiles/iso27001-2022.toml"),
    ),
    (
        "mlps2-level3",
        include_str!("../../rules/profiles/mlps2-level3.toml"),
    ),
    ("cis-v8", include_str!("../../rules/profiles/cis-v8.toml")),
    (
        "nist-800-53r5",
        include_str!("../../rules/profiles/nist-800-53r5.toml"),
    ),
    (
        "soc2-2017",
        include_str!("../../rules/profiles/soc2-2017.toml"),
    ),
    (
        "hipaa-security-rule",
        include_str!("../../rules/profiles/hipaa-security-rule.toml"),
    ),
    (
        "mlps2-level2",
        include_str!("../../rules/profiles/mlps2-level2.toml"),
    ),
    (
        "mlps2-level4",
        include_str!("../../rules/profiles/mlps2-level4.toml"),
    ),
    (
        "mlps2-cloud",
        include_str!("../../rules/profiles/mlps2-cloud.toml"),
    ),
    (
        "mlps2-ics",
        include_str!("../../rules/profiles/mlps2-ics.toml"),
    ),
    (
        "iec62443-3-3",
        include_str!("../../rules/profiles/iec62443-3-3.toml"),
    ),
];

pub(crate) const EMBEDDED_CHECKS: &str = include_str!("../../rules/profiles/checks.toml");

/// The kinds of check the policy engine runs. The logic lives in
/// `policy::eval`; the parameters in `checks.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckKind {
    NotAllowed,
    HighRiskExposed,
    CleartextAdmin,
    RemoteAdminInternet,
    DatabaseInternet,
    PortCap,
    AllowedUnjustified,
    AllowedReviewOverdue,
    ExceptionExpired,
    UnexpectedService,
    UnauthService,
    TlsCert,
    UnmanagedHost,
    UnapprovedChange,
    SegmentationBreach,
    AllowedReviewMissing,
    /// An open UDP amplifier (memcached, SSDP, chargen, NTP monlist, …).
    AmplificationVector,
    /// SNMP answered with a default community (`public`, `private`).
    SnmpDefaultCommunity,
    /// An allowance that matched no open port of its group in this audit,
    /// though its port was probed: a redundant rule (等保 8.1.3.2 b).
    AllowanceUnused,
    /// An allowance without a justification, an approver or a review date,
    /// whatever the state of its port.
    AllowanceIncomplete,
    /// An exception that lasts longer than the policy allows (12 months by
    /// default), or that is not reviewed within six months.
    ExceptionOverlong,
    /// Judged from the audit history of the scope: the audits of the last
    /// 12 months are at most 92 days apart (`policy::cadence`).
    ScanCadence,
    /// Judged from the audit history: an audit of the scope followed each
    /// approved `[[change]]` within 30 days.
    RescanAfterChange,
    /// Judged from the audit history: each segment group (`expect =
    /// "unreachable"`) was tested within 12 months (6 for a group tagged
    /// `service-provider`).
    SegmentationCadence,
}

impl CheckKind {
    pub const ALL: [CheckKind; 24] = [
        CheckKind::NotAllowed,
        CheckKind::HighRiskExposed,
        CheckKind::CleartextAdmin,
        CheckKind::RemoteAdminInternet,
        CheckKind::DatabaseInternet,
        CheckKind::PortCap,
        CheckKind::AllowedUnjustified,
        CheckKind::AllowedReviewOverdue,
        CheckKind::ExceptionExpired,
        CheckKind::UnexpectedService,
        CheckKind::UnauthService,
        CheckKind::TlsCert,
        CheckKind::UnmanagedHost,
        CheckKind::UnapprovedChange,
        CheckKind::SegmentationBreach,
        CheckKind::AllowedReviewMissing,
        CheckKind::AmplificationVector,
        CheckKind::SnmpDefaultCommunity,
        CheckKind::AllowanceUnused,
        CheckKind::AllowanceIncomplete,
        CheckKind::ExceptionOverlong,
        CheckKind::ScanCadence,
        CheckKind::RescanAfterChange,
        CheckKind::SegmentationCadence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::NotAllowed => "not-allowed",
            CheckKind::HighRiskExposed => "high-risk-exposed",
            CheckKind::CleartextAdmin => "cleartext-admin",
            CheckKind::RemoteAdminInternet => "remote-admin-internet",
            CheckKind::DatabaseInternet => "database-internet",
            CheckKind::PortCap => "port-cap",
            CheckKind::AllowedUnjustified => "allowed-unjustified",
            CheckKind::AllowedReviewOverdue => "allowed-review-overdue",
            CheckKind::ExceptionExpired => "exception-expired",
            CheckKind::UnexpectedService => "unexpected-service",
            CheckKind::UnauthService => "unauth-service",
            CheckKind::TlsCert => "tls-cert",
            CheckKind::UnmanagedHost => "unmanaged-host",
            CheckKind::UnapprovedChange => "unapproved-change",
            CheckKind::SegmentationBreach => "segmentation-breach",
            CheckKind::AllowedReviewMissing => "allowed-review-missing",
            CheckKind::AmplificationVector => "amplification-vector",
            CheckKind::SnmpDefaultCommunity => "snmp-default-community",
            CheckKind::AllowanceUnused => "allowance-unused",
            CheckKind::AllowanceIncomplete => "allowance-incomplete",
            CheckKind::ExceptionOverlong => "exception-overlong",
            CheckKind::ScanCadence => "scan-cadence",
            CheckKind::RescanAfterChange => "rescan-after-change",
            CheckKind::SegmentationCadence => "segmentation-cadence",
        }
    }

    /// The names of every check, for error hints.
    pub fn names() -> String {
        CheckKind::ALL.map(CheckKind::as_str).join(", ")
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckKind::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown check '{s}'; known: {}", CheckKind::names()))
    }
}

/// When a check counts against a requirement: always, or only for hosts
/// whose group carries a tag / is scanned from a vantage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckCondition {
    Always,
    /// `@tag:NAME`: the host's group has this tag.
    Tag(String),
    /// `@vantage:internet|internal`.
    Vantage(String),
    /// `@unapproved`: only findings on ports without a justified, approved
    /// allowance (a boundary requirement is not failed by a port the policy
    /// documents and approves).
    Unapproved,
}

/// One entry of a requirement's `checks` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRef {
    pub check: CheckKind,
    pub when: CheckCondition,
}

impl FromStr for CheckRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, cond) = match s.split_once('@') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let check = name.parse::<CheckKind>()?;
        let when = match cond {
            None => CheckCondition::Always,
            Some("unapproved") => CheckCondition::Unapproved,
            Some(c) => match c.split_once(':') {
                Some(("tag", t)) if !t.is_empty() => CheckCondition::Tag(t.to_string()),
                Some(("vantage", v)) if v == "internet" || v == "internal" => {
                    CheckCondition::Vantage(v.to_string())
                }
                _ => {
                    return Err(format!(
                        "bad condition '@{c}' in '{s}'; write '@tag:NAME', '@vantage:internet|internal' or '@unapproved'"
                    ));
                }
            },
        };
        Ok(CheckRef { check, when })
    }
}

/// A resolved port list: every port, or these (sorted, unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortList {
    All,
    Ports(Vec<u16>),
}

impl PortList {
    pub fn len(&self) -> u32 {
        match self {
            PortList::All => 65_535,
            PortList::Ports(p) => p.len() as u32,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, port: u16) -> bool {
        match self {
            PortList::All => port != 0,
            PortList::Ports(p) => p.binary_search(&port).is_ok(),
        }
    }
}

/// Parses a port scope entry: `all`, `1-65535`, a named set (looked up with
/// `lookup`), or a comma list of ports, ranges and set names.
pub fn parse_port_list(
    spec: &str,
    lookup: impl Fn(&str) -> Option<Vec<u16>>,
) -> Result<PortList, String> {
    let spec = spec.trim();
    if spec.eq_ignore_ascii_case("all") || spec == "-" || spec == "1-65535" {
        return Ok(PortList::All);
    }
    if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
        return Ok(PortList::Ports(Vec::new()));
    }
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim) {
        let num = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p != 0);
        if let Some((a, b)) = item.split_once('-')
            && let (Some(lo), Some(hi)) = (num(a), num(b))
        {
            if lo > hi {
                return Err(format!("port range '{item}' runs backwards"));
            }
            out.extend(lo..=hi);
        } else if let Some(p) = num(item) {
            out.push(p);
        } else if !item.is_empty()
            && item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            out.extend(
                lookup(item).ok_or_else(|| format!("unknown port set '{item}' in '{spec}'"))?,
            );
        } else {
            return Err(format!(
                "'{item}' in port scope '{spec}' is not a port, a range or a set name"
            ));
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.len() == 65_535 {
        return Ok(PortList::All);
    }
    Ok(PortList::Ports(out))
}

/// Whether a scan can judge a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Judged by the findings of `checks`.
    Checks(Vec<CheckRef>),
    /// Outside what a port scan sees; `reason` says why.
    NotAssessed { reason: String },
}

/// One requirement of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// Exactly as the standard numbers it (`1.2.5`, `A.8.20`, `8.1.4.4 b)`).
    pub id: String,
    pub title_en: String,
    pub title_zh: String,
    pub description: String,
    /// False while the mapping still needs checking against the standard.
    pub confirmed: bool,
    /// `partial` when a scan can show a failure but never that the
    /// requirement is met: its best status is then `partial`.
    pub evidence: EvidenceLevel,
    pub assessment: Assessment,
    /// For a requirement of an extension profile (`extends`): the level
    /// profile it belongs to (等保 cloud 8.2.x is level 3, 7.2.x level 2).
    /// It applies only to hosts whose groups declare that level too.
    pub level: Option<String>,
}

/// A compliance profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub name_zh: String,
    /// The edition of the standard (`4.0`, `2019`, `Rev. 5`).
    pub version: String,
    pub description: String,
    /// An extension (等保 cloud, industrial) names the profiles it adds to:
    /// a policy group declaring it must declare one of them beside it.
    pub extends: Vec<String>,
    /// Reported only where a policy group or `baseline_profiles` declares
    /// it (`report = "declared"`); the five original profiles are always
    /// reported.
    pub when_declared: bool,
    /// The ports a scan must cover on every host before a requirement can
    /// pass (`None`: whatever the audit probed).
    pub port_scope: Option<PortScope>,
    pub requirements: Vec<Requirement>,
}

/// A port scope as written: per protocol, `all`, a named set of the port
/// catalogue (`common`, `high-risk-udp`) or ports and ranges (`22,80-90`).
/// The evaluator resolves the names against the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortScope {
    #[serde(default)]
    pub tcp: Option<String>,
    #[serde(default)]
    pub udp: Option<String>,
}

impl PortScope {
    /// `tcp all, udp high-risk-udp`.
    pub fn text(&self) -> String {
        [("tcp", &self.tcp), ("udp", &self.udp)]
            .iter()
            .filter_map(|(p, v)| v.as_ref().map(|v| format!("{p} {v}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Profile {
    /// `profile:requirement`, the form findings carry.
    pub fn control_ref(&self, req: &Requirement) -> String {
        format!("{}:{}", self.id, req.id)
    }
}

/// What `portwarden profiles` lists of one profile: its coverage counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProfileSummary {
    pub id: String,
    pub name: String,
    pub name_zh: String,
    pub version: String,
    pub requirements: usize,
    /// Mappings checked against the standard's text.
    pub confirmed: usize,
    /// Requirements a scan can show failing but never met.
    pub partial_evidence: Vec<String>,
    /// Requirements outside what a scan sees.
    pub not_assessed: Vec<String>,
    /// For an extension: the levels it may sit beside.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<String>,
    /// Reported only where a policy declares it.
    pub when_declared: bool,
}

impl Profile {
    pub fn summary(&self) -> ProfileSummary {
        let ids = |f: &dyn Fn(&Requirement) -> bool| {
            self.requirements
                .iter()
                .filter(|r| f(r))
                .map(|r| r.id.clone())
                .collect()
        };
        ProfileSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            name_zh: self.name_zh.clone(),
            version: self.version.clone(),
            requirements: self.requirements.len(),
            confirmed: self.requirements.iter().filter(|r| r.confirmed).count(),
            partial_evidence: ids(&|r| r.evidence == EvidenceLevel::Partial),
            not_assessed: ids(&|r| matches!(r.assessment, Assessment::NotAssessed { .. })),
            extends: self.extends.clone(),
            when_declared: self.when_declared,
        }
    }
}

/// Parameters of one check kind.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckParams {
    pub kind: CheckKind,
    pub title: String,
    pub severity: Severity,
    pub remediation: String,
    pub tags: Vec<String>,
    pub services: Vec<String>,
    pub min_risk: Option<Severity>,
    pub escalate_to_risk: bool,
    /// Line of its `[[check]]` in the file (for errors found later, such
    /// as a tag the port catalogue does not know).
    pub line: usize,
}

/// The remediation advice a check may point a finding at (the report turns
/// each into words and per-platform commands).
pub const REMEDIATION_KEYS: [&str; 13] = [
    "close-port",
    "replace-cleartext",
    "restrict-source",
    "reduce-exposure",
    "document-justification",
    "review-rule",
    "renew-or-remove-exception",
    "fix-service-or-policy",
    "enable-auth",
    "renew-certificate",
    "add-host-to-policy",
    "approve-or-revert-change",
    "schedule-audit",
];

/// Every profile plus the check parameters.
#[derive(Debug, Clone)]
pub struct Profiles {
    profiles: Vec<Profile>,
    checks: Vec<CheckParams>,
    /// Where the check parameters came from (for errors).
    checks_origin: String,
}

/// Errors loading profiles or check parameters. Each names the file and,
/// where the TOML parser knows it, the line and column.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}:{line}:{col}: {message}")]
    Parse {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    id: String,
    name: String,
    #[serde(default)]
    name_zh: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    extends: Vec<String>,
    #[serde(default)]
    report: Option<String>,
    #[serde(default)]
    port_scope: Option<PortScope>,
    #[serde(rename = "requirement")]
    requirements: Vec<toml::Spanned<RawRequirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    id: String,
    title_en: String,
    title_zh: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    checks: Vec<String>,
    #[serde(default = "yes")]
    confirmed: bool,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    evidence: Option<String>,
    #[serde(default)]
    level: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    #[serde(rename = "check")]
    checks: Vec<toml::Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    title: String,
    severity: String,
    remediation: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    min_risk: Option<String>,
    #[serde(default)]
    escalate_to_risk: bool,
}

fn toml_error(file: &str, text: &str, e: toml::de::Error) -> ProfileError {
    let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    ProfileError::Parse {
        file: file.to_string(),
        line,
        col,
        message: e.message().trim().to_string(),
    }
}

impl Profile {
    /// Parses one profile file; `file` is used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| toml_error(file, text, e))?;
        let mut seen = BTreeSet::new();
        let mut requirements = Vec::with_capacity(raw.requirements.len());
        for sp in raw.requirements {
            let (line, col) = line_col(text, sp.span().start);
            let r = sp.into_inner();
            let at = |message: String| ProfileError::Parse {
                file: file.to_string(),
                line,
                col,
                message,
            };
            if !seen.insert(r.id.clone()) {
                return Err(at(format!("requirement '{}' appears twice", r.id)));
            }
            if let Some(l) = &r.level
                && !raw.extends.contains(l)
            {
                return Err(at(format!(
                    "requirement '{}': level '{l}' is not in this profile's extends ({})",
                    r.id,
                    if raw.extends.is_empty() {
                        "none: only an extension profile gives a level".to_string()
                    } else {
                        raw.extends.join(", ")
                    }
                )));
            }
            requirements.push(requirement(r, &at)?);
        }
        let when_declared = match raw.report.as_deref() {
            None | Some("always") => false,
            Some("declared") => true,
            Some(other) => {
                return Err(ProfileError::Invalid {
                    file: file.to_string(),
                    message: format!(
                        "unknown report = \"{other}\"; write \"declared\" (reported only where a policy declares it) or \"always\""
                    ),
                });
            }
        };
        Ok(Profile {
            id: raw.id,
            name: raw.name,
            name_zh: raw.name_zh,
            version: raw.version,
            description: raw.description,
            extends: raw.extends,
            when_declared,
            port_scope: raw.port_scope,
            requirements,
        })
    }
}

/// One `[[requirement]]`, checked; `at` names its line in errors.
fn requirement(
    r: RawRequirement,
    at: &dyn Fn(String) -> ProfileError,
) -> Result<Requirement, ProfileError> {
    let assessment = match r.status.as_deref() {
        Some("not-assessed") => {
            if !r.checks.is_empty() {
                return Err(at(format!(
                    "requirement '{}' is not-assessed but lists checks; drop one of them",
                    r.id
                )));
            }
            let reason = r.reason.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                at(format!(
                    "requirement '{}' is not-assessed: give the reason (reason = \"...\")",
                    r.id
                ))
            })?;
            Assessment::NotAssessed { reason }
        }
        Some(other) => {
            return Err(at(format!(
                "requirement '{}': unknown status '{other}'; the only status is \"not-assessed\"",
                r.id
            )));
        }
        None => {
            if r.checks.is_empty() {
                return Err(at(format!(
                    "requirement '{}' has no checks: list them, or mark it status = \"not-assessed\" with a reason",
                    r.id
                )));
            }
            let checks = r
                .checks
                .iter()
                .map(|c| c.parse::<CheckRef>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| at(format!("requirement '{}': {m}", r.id)))?;
            Assessment::Checks(checks)
        }
    };
    let evidence = match r.evidence.as_deref() {
        None | Some("full") => EvidenceLevel::Full,
        Some("partial") => EvidenceLevel::Partial,
        Some(other) => {
            return Err(at(format!(
                "requirement '{}': unknown evidence '{other}'; write evidence = \"partial\" or leave it out",
                r.id
            )));
        }
    };
    Ok(Requirement {
        id: r.id,
        title_en: r.title_en,
        title_zh: r.title_zh,
        description: r.description,
        confirmed: r.confirmed,
        evidence,
        assessment,
        level: r.level,
    })
}

fn parse_checks(text: &str, file: &str) -> Result<Vec<CheckParams>, ProfileError> {
    let raw: RawChecks = toml::from_str(text).map_err(|e| toml_error(file, text, e))?;
    let invalid = |message: String| ProfileError::Invalid {
        file: file.to_string(),
        message,
    };
    let mut out: Vec<CheckParams> = Vec::new();
    for sc in raw.checks {
        let (line, col) = line_col(text, sc.span().start);
        let c = sc.into_inner();
        let at = |message: String| ProfileError::Parse {
            file: file.to_string(),
            line,
            col,
            message,
        };
        if !REMEDIATION_KEYS.contains(&c.remediation.as_str()) {
            return Err(at(format!(
                "check '{}': unknown remediation '{}'; known: {}",
                c.id,
                c.remediation,
                REMEDIATION_KEYS.join(", ")
            )));
        }
        let kind: CheckKind = c.id.parse().map_err(at)?;
        if out.iter().any(|p| p.kind == kind) {
            return Err(invalid(format!("check '{kind}' appears twice")));
        }
        let severity: Severity = c.severity.parse().map_err(invalid)?;
        let min_risk = c
            .min_risk
            .map(|s| s.parse::<Severity>())
            .transpose()
            .map_err(invalid)?;
        out.push(CheckParams {
            kind,
            title: c.title,
            severity,
            remediation: c.remediation,
            tags: c.tags,
            services: c.services.iter().map(|s| s.to_ascii_lowercase()).collect(),
            min_risk,
            escalate_to_risk: c.escalate_to_risk,
            line,
        });
    }
    for kind in CheckKind::ALL {
        if !out.iter().any(|p| p.kind == kind) {
            return Err(invalid(format!(
                "check '{kind}' is missing; every check needs an entry"
            )));
        }
    }
    out.sort_by_key(|p| p.kind);
    Ok(out)
}

impl Profiles {
    /// The profiles and check parameters built into the binary.
    pub fn embedded() -> Result<Profiles, ProfileError> {
        let profiles = EMBEDDED
            .iter()
            .map(|(id, text)| Profile::parse(text, &format!("rules/profiles/{id}.toml")))
            .collect::<Result<Vec<_>, _>>()?;
        let checks_origin = "rules/profiles/checks.toml".to_string();
        let checks = parse_checks(EMBEDDED_CHECKS, &checks_origin)?;
        let set = Profiles {
            profiles,
            checks,
            checks_origin,
        };
        set.validate_extends()?;
        Ok(set)
    }

    /// The embedded set with each `(path, text)` of a rules directory's
    /// `profiles/` folder replacing (or adding) its profile, or the check
    /// parameters for `checks.toml`. The texts are read once by the caller.
    pub fn with_files(
        mut set: Profiles,
        files: &[(PathBuf, String)],
    ) -> Result<Profiles, ProfileError> {
        for (path, text) in files {
            let (path, text) = (path.clone(), text.as_str());
            let shown = path.display().to_string();
            if path.file_name().is_some_and(|n| n == "checks.toml") {
                set.checks = parse_checks(text, &shown)?;
                set.checks_origin = shown;
                continue;
            }
            let p = Profile::parse(text, &shown)?;
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if stem != p.id {
                return Err(ProfileError::Invalid {
                    file: shown,
                    message: format!(
                        "the profile id '{}' differs from the file name; name the file {}.toml",
                        p.id, p.id
                    ),
                });
            }
            match set.profiles.iter_mut().find(|q| q.id == p.id) {
                Some(q) => *q = p,
                None => set.profiles.push(p),
            }
        }
        set.validate_extends()?;
        Ok(set)
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// Every `extends` names a profile that is not itself an extension.
    fn validate_extends(&self) -> Result<(), ProfileError> {
        for p in &self.profiles {
            for e in &p.extends {
                let ok = self.get(e).is_some_and(|q| q.extends.is_empty());
                if !ok {
                    return Err(ProfileError::Invalid {
                        file: format!("profiles/{}.toml", p.id),
                        message: format!(
                            "extends '{e}': no such level profile; known: {}",
                            self.ids().join(", ")
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Over the profiles one policy group declares: the first extension
    /// declared without any of the levels it extends, as (index in
    /// `declared`, message, hint). An extension such as `mlps2-cloud`
    /// adds to a level and means nothing alone.
    pub fn extension_without_level(&self, declared: &[&str]) -> Option<(usize, String, String)> {
        declared.iter().enumerate().find_map(|(i, id)| {
            let p = self.get(id)?;
            if p.extends.is_empty() || p.extends.iter().any(|l| declared.contains(&l.as_str())) {
                return None;
            }
            Some((
                i,
                format!(
                    "profile '{id}' is an extension: declare it beside one of {}",
                    p.extends.join(", ")
                ),
                format!(
                    "profiles = [\"{}\", \"{id}\"]",
                    p.extends[p.extends.len() / 2]
                ),
            ))
        })
    }

    /// Profile ids in report order.
    pub fn ids(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.id.as_str()).collect()
    }

    /// Parameters of a check; every kind is present (checked at load).
    pub fn check(&self, kind: CheckKind) -> &CheckParams {
        // Load guarantees one entry per kind, sorted by kind.
        &self.checks[CheckKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default()]
    }

    pub fn checks(&self) -> &[CheckParams] {
        &self.checks
    }

    /// Every tag a check selects by must be a tag of the port catalogue:
    /// a typo would make the check silently select nothing.
    pub fn validate_tags(&self, known: &[&str]) -> Result<(), ProfileError> {
        for c in &self.checks {
            for want in &c.tags {
                for t in want.split('+').map(str::trim) {
                    if !known.iter().any(|k| k.eq_ignore_ascii_case(t)) {
                        return Err(ProfileError::Parse {
                            file: self.checks_origin.clone(),
                            line: c.line,
                            col: 1,
                            message: format!(
                                "check '{}': tag '{t}' is in no entry of the port catalogue",
                                c.kind
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Every profile's port scope names only sets `lookup` knows.
    pub fn validate_port_scopes(
        &self,
        lookup: impl Fn(&str) -> Option<Vec<u16>>,
    ) -> Result<(), ProfileError> {
        for p in &self.profiles {
            let Some(scope) = &p.port_scope else { continue };
            for spec in [&scope.tcp, &scope.udp].into_iter().flatten() {
                parse_port_list(spec, &lookup).map_err(|m| ProfileError::Invalid {
                    file: format!("profiles/{}.toml", p.id),
                    message: format!("port_scope: {m}"),
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "profiles_tests.rs"]
mod tests;
