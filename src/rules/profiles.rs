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
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::line_col;
use crate::model::{EvidenceLevel, Severity};

/// Ids of the built-in profiles, in report order.
pub const BUILTIN_PROFILES: [&str; 5] = [
    "pci-dss-4.0",
    "iso27001-2022",
    "mlps2-level3",
    "cis-v8",
    "nist-800-53r5",
];

pub(crate) const EMBEDDED: [(&str, &str); 5] = [
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
}

impl CheckKind {
    pub const ALL: [CheckKind; 21] = [
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
}

/// A compliance profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub name_zh: String,
    pub description: String,
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
pub const REMEDIATION_KEYS: [&str; 12] = [
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
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
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
    description: String,
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
            requirements.push(Requirement {
                id: r.id,
                title_en: r.title_en,
                title_zh: r.title_zh,
                description: r.description,
                confirmed: r.confirmed,
                evidence,
                assessment,
            });
        }
        Ok(Profile {
            id: raw.id,
            name: raw.name,
            name_zh: raw.name_zh,
            description: raw.description,
            port_scope: raw.port_scope,
            requirements,
        })
    }
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
        Ok(Profiles {
            profiles,
            checks,
            checks_origin,
        })
    }

    /// The embedded profiles, with every `<rules_dir>/profiles/*.toml`
    /// replacing the embedded file of the same name (or adding a profile).
    /// `checks.toml` there replaces the check parameters. A missing
    /// `profiles` folder leaves the embedded set as it is.
    pub fn load_dir(rules_dir: &Path) -> Result<Profiles, ProfileError> {
        let set = Profiles::embedded()?;
        let dir = rules_dir.join("profiles");
        if !dir.is_dir() {
            return Ok(set);
        }
        let read_dir = std::fs::read_dir(&dir).map_err(|source| ProfileError::Read {
            file: dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = read_dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut texts = Vec::with_capacity(files.len());
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Read {
                file: path.clone(),
                source,
            })?;
            texts.push((path, text));
        }
        Profiles::with_files(set, &texts)
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
        Ok(set)
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
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
mod tests {
    use super::*;

    fn embedded() -> Profiles {
        Profiles::embedded().expect("embedded profiles parse")
    }

    fn req<'a>(p: &'a Profiles, profile: &str, id: &str) -> &'a Requirement {
        p.get(profile)
            .unwrap()
            .requirements
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{profile}:{id} missing"))
    }

    #[test]
    fn embedded_profiles_load_in_order() {
        let p = embedded();
        assert_eq!(p.ids(), BUILTIN_PROFILES.to_vec());
        assert_eq!(p.checks().len(), CheckKind::ALL.len());
        assert_eq!(p.check(CheckKind::TlsCert).kind, CheckKind::TlsCert);
        assert_eq!(
            p.check(CheckKind::UnauthService).severity,
            Severity::Critical
        );
    }

    #[test]
    fn ids_are_as_the_standards_number_them() {
        let p = embedded();
        let ids: Vec<&str> = p
            .get("mlps2-level3")
            .unwrap()
            .requirements
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert!(ids.contains(&"8.1.4.4 b)"));
        assert!(ids.contains(&"8.1.3.2 a)"));
        let r = req(&p, "pci-dss-4.0", "1.2.5");
        assert!(r.confirmed);
        assert_eq!(
            r.assessment,
            Assessment::Checks(vec![
                "not-allowed".parse().unwrap(),
                "allowed-unjustified".parse().unwrap(),
                "allowance-incomplete".parse().unwrap(),
                "unexpected-service".parse().unwrap(),
                "exception-expired".parse().unwrap(),
            ])
        );
    }

    #[test]
    fn dagger_entries_are_unconfirmed() {
        let p = embedded();
        for (profile, id) in [
            ("pci-dss-4.0", "4.2.1"),
            ("pci-dss-4.0", "11.3.1.3"),
            ("iso27001-2022", "A.8.24"),
            ("mlps2-level3", "8.1.10.2 a)"),
            ("cis-v8", "3.10"),
            ("nist-800-53r5", "SC-17"),
        ] {
            assert!(!req(&p, profile, id).confirmed, "{profile}:{id}");
        }
        assert!(req(&p, "nist-800-53r5", "SC-7(5)").confirmed);
    }

    #[test]
    fn mapping_corrections() {
        let p = embedded();
        let ids = |profile: &str| -> Vec<String> {
            p.get(profile)
                .unwrap()
                .requirements
                .iter()
                .map(|r| r.id.clone())
                .collect()
        };
        let checks = |profile: &str, id: &str| -> Vec<String> {
            match &req(&p, profile, id).assessment {
                Assessment::Checks(c) => c
                    .iter()
                    .map(|c| match &c.when {
                        CheckCondition::Always => c.check.to_string(),
                        CheckCondition::Tag(t) => format!("{}@tag:{t}", c.check),
                        CheckCondition::Vantage(v) => format!("{}@vantage:{v}", c.check),
                        CheckCondition::Unapproved => format!("{}@unapproved", c.check),
                    })
                    .collect(),
                Assessment::NotAssessed { .. } => vec!["not-assessed".into()],
            }
        };
        // CIS 13.9 is 802.1X on switch ports, not TCP/UDP ports.
        assert!(!ids("cis-v8").contains(&"13.9".to_string()));
        // NIST writes CM-7b.; CM-7 is judged once.
        assert!(ids("nist-800-53r5").contains(&"CM-7b.".to_string()));
        assert!(!ids("nist-800-53r5").contains(&"CM-7".to_string()));
        assert!(!ids("nist-800-53r5").contains(&"CM-7 b".to_string()));
        // 等保 8.1.10.6 carries its item letter.
        assert!(ids("mlps2-level3").contains(&"8.1.10.6 g)".to_string()));
        assert!(!ids("mlps2-level3").contains(&"8.1.10.6".to_string()));
        // Cardholder-only and internet-only requirements.
        assert_eq!(
            checks("pci-dss-4.0", "1.3.1"),
            [
                "not-allowed@tag:cardholder",
                "database-internet@tag:cardholder",
                "segmentation-breach@tag:cardholder"
            ]
        );
        assert_eq!(
            checks("pci-dss-4.0", "1.4.4"),
            ["database-internet@tag:cardholder"]
        );
        // Not failed by a port the policy allows and approves (1.2.5 judges
        // the allowance itself).
        assert_eq!(
            checks("pci-dss-4.0", "1.4.1"),
            ["remote-admin-internet@unapproved"]
        );
        assert_eq!(
            checks("pci-dss-4.0", "1.4.2"),
            [
                "not-allowed@vantage:internet",
                "remote-admin-internet@unapproved"
            ]
        );
        assert_eq!(
            checks("nist-800-53r5", "CM-3"),
            ["exception-expired", "unapproved-change"]
        );
        assert!(checks("cis-v8", "13.4").contains(&"segmentation-breach".to_string()));
        assert_eq!(checks("pci-dss-4.0", "11.3.1.3"), ["not-assessed"]);
        for (p_, id) in [
            ("pci-dss-4.0", "1.2.7"),
            ("mlps2-level3", "8.1.3.2 b)"),
            ("iso27001-2022", "A.8.20"),
            ("cis-v8", "4.4"),
        ] {
            let c = checks(p_, id);
            assert!(c.contains(&"allowance-unused".to_string()), "{p_} {id}");
            assert!(c.contains(&"allowance-incomplete".to_string()), "{p_} {id}");
        }
        for (p_, id) in [
            ("pci-dss-4.0", "1.2.6"),
            ("pci-dss-4.0", "2.2.5"),
            ("pci-dss-4.0", "2.2.7"),
            ("mlps2-level3", "8.1.4.1 c)"),
        ] {
            assert_eq!(
                req(&p, p_, id).evidence,
                EvidenceLevel::Partial,
                "{p_} {id}"
            );
        }
        assert_eq!(
            checks("mlps2-level3", "8.1.4.4 c)"),
            ["remote-admin-internet@vantage:internet"]
        );
        assert_eq!(
            checks("cis-v8", "12.2"),
            [
                "remote-admin-internet@vantage:internet",
                "database-internet@vantage:internet"
            ]
        );
        // 1.2.7: allowances without a review date within six months fail it.
        assert!(checks("pci-dss-4.0", "1.2.7").contains(&"allowed-review-missing".to_string()));
        // A data-flow diagram is not something a scan sees.
        assert_eq!(checks("pci-dss-4.0", "1.2.4"), ["not-assessed"]);
        // New requirements a scan bears on.
        assert_eq!(checks("pci-dss-4.0", "11.4.5"), ["segmentation-breach"]);
        // Scans after changes: this audit is one; cadence is history's job.
        assert_eq!(checks("pci-dss-4.0", "11.3.2.1"), ["not-assessed"]);
        assert_eq!(checks("mlps2-level3", "8.1.3.1 b)"), ["unmanaged-host"]);
        assert_eq!(checks("nist-800-53r5", "CM-8(3)"), ["unmanaged-host"]);
        // Segmentation evidence maps where the issue says.
        for (profile, id) in [
            ("pci-dss-4.0", "11.4.5"),
            ("mlps2-level3", "8.1.3.1 a)"),
            ("iso27001-2022", "A.8.22"),
            ("nist-800-53r5", "SC-7"),
        ] {
            assert!(
                checks(profile, id).contains(&"segmentation-breach".to_string()),
                "{profile}:{id}"
            );
        }
        // What a scan can only partly evidence is declared so.
        for (profile, id) in [
            ("pci-dss-4.0", "8.2.1"),
            ("pci-dss-4.0", "2.2.2"),
            ("pci-dss-4.0", "4.2.1"),
            ("mlps2-level3", "8.1.4.1 a)"),
            ("iso27001-2022", "A.8.5"),
        ] {
            assert_eq!(
                req(&p, profile, id).evidence,
                EvidenceLevel::Partial,
                "{profile}:{id}"
            );
        }
        assert_eq!(
            req(&p, "pci-dss-4.0", "1.2.5").evidence,
            EvidenceLevel::Full
        );
    }

    #[test]
    fn unknown_evidence_is_an_error() {
        let text = "id = \"x\"\nname = \"X\"\n\n[[requirement]]\nid = \"1\"\ntitle_en = \"a\"\ntitle_zh = \"b\"\nchecks = [\"port-cap\"]\nevidence = \"some\"\n";
        let e = Profile::parse(text, "x.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("x.toml:4:1: requirement '1': unknown evidence 'some'"),
            "{e}"
        );
    }

    #[test]
    fn not_assessed_keeps_its_reason() {
        let p = embedded();
        match &req(&p, "pci-dss-4.0", "1.2.8").assessment {
            Assessment::NotAssessed { reason } => assert!(reason.contains("configuration files")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conditions_parse() {
        let c: CheckRef = "not-allowed@tag:cardholder".parse().unwrap();
        assert_eq!(c.when, CheckCondition::Tag("cardholder".into()));
        let c: CheckRef = "not-allowed@vantage:internet".parse().unwrap();
        assert_eq!(c.when, CheckCondition::Vantage("internet".into()));
        assert!("not-allowed@zone:x".parse::<CheckRef>().is_err());
        assert!("not-alowed".parse::<CheckRef>().is_err());
    }

    #[test]
    fn bad_profile_names_line() {
        let text = "id = \"x\"\nname = \"X\"\n\n[[requirement]]\nid = \"1\"\ntitle_en = \"a\"\ntitle_zh = \"b\"\nchecks = [\"nope\"]\n";
        let e = Profile::parse(text, "x.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("x.toml:4:1: requirement '1': unknown check 'nope'"),
            "{e}"
        );
        let text = "id = \"x\"\nname = \"X\"\ncolour = 1\nrequirement = []\n";
        let e = Profile::parse(text, "x.toml").unwrap_err().to_string();
        assert!(e.starts_with("x.toml:3:1: unknown field `colour`"), "{e}");
    }

    #[test]
    fn load_dir_overrides_one_profile() {
        let dir = std::env::temp_dir().join(format!("pw-profiles-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("profiles")).unwrap();
        std::fs::write(
            dir.join("profiles/cis-v8.toml"),
            "id = \"cis-v8\"\nname = \"CIS mini\"\n[[requirement]]\nid = \"4.8\"\ntitle_en = \"a\"\ntitle_zh = \"b\"\nchecks = [\"port-cap\"]\n",
        )
        .unwrap();
        let p = Profiles::load_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(p.get("cis-v8").unwrap().name, "CIS mini");
        assert_eq!(p.get("cis-v8").unwrap().requirements.len(), 1);
        assert_eq!(p.ids(), BUILTIN_PROFILES.to_vec());
    }
}
