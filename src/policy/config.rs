//! Policy layer: the declared port policy (a TOML file the user owns).
//!
//! The file says which hosts form which asset group, which ports each group
//! may expose and why, and which exposures are waived until when. It is
//! parsed strictly (unknown keys are errors) and validated as a whole
//! (profile names, address specs, dates, windows, overlapping groups whose
//! rules disagree), and every error points at `file:line:column` with a hint,
//! because a policy that silently means something else is worse than none.
//!
//! ```toml
//! name = "payments"
//! baseline_profiles = ["cis-v8"]    # profiles for hosts in no group
//!
//! [[group]]
//! name = "cardholder"
//! targets = ["198.18.0.0/28"]
//! tags = ["cardholder"]
//! vantage = "internal"              # or "internet"
//! profiles = ["pci-dss-4.0"]
//! max_open_ports = 15
//! expect = "reachable"              # or "unreachable": a segmentation test
//!
//! [[group.allow]]
//! port = 443                        # or "8000-8010"
//! proto = "tcp"                     # default tcp
//! service = "https"
//! justification = "payment API"
//! approver = "j.doe"
//! ticket = "CHG-1042"
//! review_by = 2027-03-31
//!
//! [[exception]]
//! target = "198.18.0.7"             # address, CIDR, range or a group name
//! port = 23
//! check = "cleartext-admin"         # optional: only this check
//! reason = "legacy terminal, replacement ordered"
//! approver = "ciso"
//! ticket = "RISK-77"
//! expires = 2027-01-31
//! window = { every = "quarter", last_days = 14 }   # optional, see window.rs
//!
//! [[change]]                        # an approved change (drift between audits)
//! ticket = "CHG-2041"
//! approver = "cab"
//! approved = 2026-11-20
//! target = "198.18.0.5"             # address, CIDR, range or a group name
//! opens = [8443, "9000-9010"]       # ports the change opens (and/or `closes`)
//! window = { from = 2026-11-21, until = 2026-11-28 }   # optional: temporary
//! ```

use std::fmt;
use std::path::Path;

use chrono::NaiveDate;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

mod scanner;
pub use scanner::Scanner;

use super::addr::AddrRange;
use super::window::{RawWindow, Window};
use crate::model::Proto;
use crate::rules::profiles::{CheckKind, Profiles};

/// Where a policy error is: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Errors in a policy file; each names the place and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: cannot read the policy: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// TOML syntax, unknown keys, wrong types, malformed dates.
    #[error("{at}: {message}\n  hint: {hint}")]
    Syntax {
        at: Location,
        message: String,
        hint: String,
    },
    #[error("{at}: unknown profile '{name}'\n  hint: {hint}")]
    UnknownProfile {
        at: Location,
        name: String,
        hint: String,
    },
    /// Two groups share addresses but disagree on their rules.
    #[error("{at}: {message}\n  hint: {hint}")]
    Conflict {
        at: Location,
        message: String,
        hint: String,
    },
    /// A value that parses but makes no sense (bad address, port, window…).
    #[error("{at}: {message}\n  hint: {hint}")]
    Invalid {
        at: Location,
        message: String,
        hint: String,
    },
}

impl PolicyError {
    /// The location, when the error has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            PolicyError::Read { .. } => None,
            PolicyError::Syntax { at, .. }
            | PolicyError::UnknownProfile { at, .. }
            | PolicyError::Conflict { at, .. }
            | PolicyError::Invalid { at, .. } => Some(at),
        }
    }
}

/// Where the audit sees a group from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vantage {
    /// From the internet (or another untrusted network).
    Internet,
    /// From inside the organisation's network.
    #[default]
    Internal,
}

impl Vantage {
    pub fn as_str(self) -> &'static str {
        match self {
            Vantage::Internet => "internet",
            Vantage::Internal => "internal",
        }
    }
}

impl fmt::Display for Vantage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the audit's vantage may reach of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Ordinary group: its allowed ports answer.
    #[default]
    Reachable,
    /// A segmentation test: nothing on its hosts may answer from here; any
    /// open or closed port is a `segmentation-breach`, all-filtered passes.
    Unreachable,
}

/// Profiles a host in no group is judged against when the policy does not
/// say (`baseline_profiles`): the general frameworks only. The sector and
/// national standards (PCI DSS, 等保) apply only where a group declares them.
pub const DEFAULT_BASELINE_PROFILES: [&str; 3] = ["iso27001-2022", "cis-v8", "nist-800-53r5"];

/// An inclusive port range (a single port has `lo == hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
    fn overlaps(&self, o: &PortRange) -> bool {
        self.lo <= o.hi && o.lo <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// A port as written: `443` or `"8000-8010"`.
struct PortField(Result<PortRange, String>);

impl<'de> Deserialize<'de> for PortField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number (443) or a range string (\"8000-8010\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortField, E> {
                Ok(PortField(
                    u16::try_from(v)
                        .ok()
                        .filter(|p| *p != 0)
                        .map(|p| PortRange { lo: p, hi: p })
                        .ok_or_else(|| format!("port {v} is outside 1-65535")),
                ))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortField, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortField, E> {
                let (a, b) = v.split_once('-').unwrap_or((v, v));
                let p = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p != 0);
                Ok(PortField(match (p(a), p(b)) {
                    (Some(lo), Some(hi)) if lo <= hi => Ok(PortRange { lo, hi }),
                    _ => Err(format!(
                        "port \"{v}\" is not a port or a range like \"8000-8010\" within 1-65535"
                    )),
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// A date as written: a TOML date (`2027-01-31`) or the string "2027-01-31".
struct DateField(Result<NaiveDate, String>);

impl<'de> Deserialize<'de> for DateField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let bad = |s: &str| format!("'{s}' is not a date; write YYYY-MM-DD, e.g. 2027-01-31");
        Ok(DateField(match v {
            toml::Value::String(s) => {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad(&s))
            }
            toml::Value::Datetime(dt) => match (dt.date, dt.time) {
                (Some(date), None) => NaiveDate::from_ymd_opt(
                    i32::from(date.year),
                    u32::from(date.month),
                    u32::from(date.day),
                )
                .ok_or_else(|| bad(&dt.to_string())),
                _ => Err(format!(
                    "'{dt}' has a time of day; write just the date, YYYY-MM-DD"
                )),
            },
            other => Err(format!(
                "expected a date (YYYY-MM-DD), found {}",
                other.type_str()
            )),
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default, rename = "group")]
    groups: Vec<Spanned<RawGroup>>,
    #[serde(default, rename = "exception")]
    exceptions: Vec<Spanned<RawException>>,
    #[serde(default, rename = "change")]
    changes: Vec<Spanned<RawChange>>,
    #[serde(default)]
    baseline_profiles: Option<Vec<Spanned<String>>>,
    /// Longest an exception may last, in months (default 12).
    #[serde(default)]
    max_exception_months: Option<Spanned<i64>>,
    #[serde(default, rename = "scanner")]
    scanners: Vec<Spanned<scanner::RawScanner>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    ticket: Spanned<String>,
    approver: Spanned<String>,
    approved: Spanned<DateField>,
    target: Spanned<String>,
    #[serde(default)]
    opens: Vec<Spanned<PortField>>,
    #[serde(default)]
    closes: Vec<Spanned<PortField>>,
    #[serde(default)]
    proto: Option<Proto>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    window: Option<Spanned<RawChangeWindow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChangeWindow {
    #[serde(default)]
    from: Option<Spanned<DateField>>,
    #[serde(default)]
    until: Option<Spanned<DateField>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    targets: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    vantage: Option<Spanned<Vantage>>,
    #[serde(default)]
    profiles: Vec<Spanned<String>>,
    #[serde(default)]
    max_open_ports: Option<Spanned<i64>>,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    admin_sources: Vec<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    port_scope: Option<Spanned<RawGroupScope>>,
}

/// `port_scope = { tcp = "common", udp = "high-risk-udp", justification = "…" }`:
/// a group narrows its profiles' port scope, with a reason the report shows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroupScope {
    #[serde(default)]
    tcp: Option<String>,
    #[serde(default)]
    udp: Option<String>,
    #[serde(default)]
    justification: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    port: Spanned<PortField>,
    #[serde(default)]
    proto: Option<Proto>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    approver: Option<String>,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    review_by: Option<Spanned<DateField>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawException {
    #[serde(default)]
    id: Option<String>,
    target: Spanned<String>,
    #[serde(default)]
    port: Option<Spanned<PortField>>,
    #[serde(default)]
    proto: Option<Proto>,
    #[serde(default)]
    check: Option<Spanned<String>>,
    reason: Spanned<String>,
    approver: Spanned<String>,
    #[serde(default)]
    ticket: Option<String>,
    expires: Spanned<DateField>,
    #[serde(default)]
    review_by: Option<Spanned<DateField>>,
    #[serde(default)]
    window: Option<Spanned<RawWindow>>,
}

/// One allowed port (or range) of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowRule {
    pub ports: PortRange,
    pub proto: Proto,
    /// The service expected to answer (`unexpected-service` when another does).
    pub service: Option<String>,
    pub justification: Option<String>,
    pub approver: Option<String>,
    pub ticket: Option<String>,
    pub review_by: Option<NaiveDate>,
    /// Line in the policy file, for messages.
    pub line: usize,
}

impl AllowRule {
    /// PCI DSS 1.2.5 wants both a business justification and an approval.
    pub fn is_justified(&self) -> bool {
        let set = |s: &Option<String>| s.as_deref().is_some_and(|v| !v.trim().is_empty());
        set(&self.justification) && set(&self.approver)
    }

    /// The review date has passed on `today`: decided here, once, for the
    /// evaluator, the report and `policy check`.
    pub fn review_overdue(&self, today: NaiveDate) -> bool {
        self.review_by.is_some_and(|d| d < today)
    }

    pub fn matches(&self, port: u16, proto: Proto) -> bool {
        self.proto == proto && self.ports.contains(port)
    }
}

/// An asset group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// The specs as written, parallel to `ranges`.
    pub targets: Vec<String>,
    pub ranges: Vec<AddrRange>,
    pub tags: Vec<String>,
    pub vantage: Vantage,
    pub profiles: Vec<String>,
    pub max_open_ports: Option<usize>,
    pub platforms: Vec<String>,
    /// The networks administrators (and declared clients) connect from
    /// (`admin_sources = ["198.18.5.0/24"]`): what a restrict-source fix
    /// keeps allowed. Empty: fixes show a placeholder.
    pub admin_sources: Vec<ipnet::IpNet>,
    pub allow: Vec<AllowRule>,
    pub line: usize,
    /// `unreachable`: a segmentation test group.
    pub expect: Expect,
    /// The group narrows its profiles' port scope (with a justification).
    pub port_scope: Option<GroupPortScope>,
}

/// A group's own port scope, narrower than its profiles ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPortScope {
    pub scope: crate::rules::profiles::PortScope,
    pub justification: String,
    pub line: usize,
}

impl Group {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }
}

/// What an exception applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum ExceptionTarget {
    /// Every host of the named group.
    Group(String),
    Addr(AddrRange),
}

/// A waiver: a finding it matches is `waived` while it is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    /// `id` if given, else the ticket, else `exception-N` (1-based, file order).
    pub id: String,
    /// The target as written.
    pub target_spec: String,
    pub target: ExceptionTarget,
    /// `None`: every port of the target, and its host-level findings.
    pub ports: Option<PortRange>,
    pub proto: Proto,
    /// `None`: every check.
    pub check: Option<CheckKind>,
    pub reason: String,
    pub approver: String,
    pub ticket: Option<String>,
    /// Last day the exception is valid (inclusive).
    pub expires: NaiveDate,
    /// The next review of the exception (six-month review rule).
    pub review_by: Option<NaiveDate>,
    pub window: Option<Window>,
    pub line: usize,
}

/// Whether an exception covers a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExceptionState {
    Active,
    /// Not expired, but today is outside its window.
    OutsideWindow,
    Expired,
}

impl ExceptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionState::Active => "active",
            ExceptionState::OutsideWindow => "outside-window",
            ExceptionState::Expired => "expired",
        }
    }
}

impl fmt::Display for ExceptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Exception {
    pub fn state(&self, today: NaiveDate) -> ExceptionState {
        if today > self.expires {
            ExceptionState::Expired
        } else if self.window.is_some_and(|w| !w.contains(today)) {
            ExceptionState::OutsideWindow
        } else {
            ExceptionState::Active
        }
    }
}

/// An approved change: the record that makes a port opened between two
/// audits legitimate (or its closing expected).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub ticket: String,
    pub approver: String,
    /// The day it was approved: a port opened before is not covered.
    pub approved: NaiveDate,
    /// The target as written.
    pub target_spec: String,
    pub target: ExceptionTarget,
    pub opens: Vec<PortRange>,
    pub closes: Vec<PortRange>,
    pub proto: Proto,
    pub description: Option<String>,
    /// First day of the change window (default: the approval day).
    pub from: Option<NaiveDate>,
    /// Last day of a temporary change: afterwards a port it opened must be
    /// closed again.
    pub until: Option<NaiveDate>,
    pub line: usize,
}

/// Where a change stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeState {
    /// Before its approval or window start.
    Pending,
    Active,
    /// Past the end of its window.
    Ended,
}

impl Change {
    pub fn state(&self, today: NaiveDate) -> ChangeState {
        let start = self.from.unwrap_or(self.approved).max(self.approved);
        if today < start {
            ChangeState::Pending
        } else if self.until.is_some_and(|u| today > u) {
            ChangeState::Ended
        } else {
            ChangeState::Active
        }
    }

    /// True when the change targets `ip` (directly or through `groups`,
    /// the names of the host's groups).
    pub fn targets(&self, ip: std::net::IpAddr, groups: &[&str]) -> bool {
        match &self.target {
            ExceptionTarget::Addr(r) => r.contains(ip),
            ExceptionTarget::Group(g) => groups.contains(&g.as_str()),
        }
    }

    pub fn opens_port(&self, port: u16, proto: Proto) -> bool {
        self.proto == proto && self.opens.iter().any(|r| r.contains(port))
    }

    pub fn closes_port(&self, port: u16, proto: Proto) -> bool {
        self.proto == proto && self.closes.iter().any(|r| r.contains(port))
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The file it came from (for messages and reports).
    pub file: String,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub groups: Vec<Group>,
    pub exceptions: Vec<Exception>,
    /// Approved changes (`[[change]]`), in file order.
    pub changes: Vec<Change>,
    /// Profiles hosts in no group are judged against; `None`: the default
    /// ([`DEFAULT_BASELINE_PROFILES`]).
    pub baseline_profiles: Option<Vec<String>>,
    /// A policy file was given; `false` for [`Policy::none`].
    pub given: bool,
    /// Longest an exception may last from the audit day, in months
    /// (`max_exception_months`, default 12): longer is `exception-overlong`.
    pub max_exception_months: u32,
    /// SHA-256 of the bytes [`Policy::load`] read (hex): the evidence hash,
    /// so no later layer reads the file again. `None` when parsed from text.
    pub sha256: Option<String>,
    /// The scanners whose signed bundles an import trusts (`[[scanner]]`).
    pub scanners: Vec<Scanner>,
}

/// Turns byte spans into locations for one file. Line starts are found
/// once; each location is then a binary search, so a policy with tens of
/// thousands of entries parses in linear time.
struct Src<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl<'a> Src<'a> {
    fn new(file: &'a str, text: &'a str) -> Src<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Src {
            file,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }

    fn at(&self, span: std::ops::Range<usize>) -> Location {
        let (line, col) = self.line_col(span.start);
        Location {
            file: self.file.to_string(),
            line,
            col,
        }
    }
    fn invalid(&self, span: std::ops::Range<usize>, message: String, hint: &str) -> PolicyError {
        PolicyError::Invalid {
            at: self.at(span),
            message,
            hint: hint.to_string(),
        }
    }
}

fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn syntax_hint(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest
            .split("expected ")
            .nth(1)
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .collect();
        return match closest(field, expected) {
            Some(c) => format!("did you mean `{c}`? (`portwarden policy init` prints a commented example)"),
            None => "remove the key or fix its spelling; `portwarden policy init` prints a commented example".into(),
        };
    }
    if message.contains("date") {
        return "write dates as YYYY-MM-DD, e.g. expires = 2027-01-31".into();
    }
    if message.contains("port") {
        return "write a port as a number (443) or a quoted range (\"8000-8010\")".into();
    }
    if message.starts_with("missing field") {
        return "add the field; `portwarden policy init` prints a policy that uses every field"
            .into();
    }
    if message.starts_with("unknown variant") {
        return "use one of the values the message lists".into();
    }
    if message.starts_with("invalid type") {
        return "check the value's type: numbers unquoted, text quoted, lists in [ ], dates as YYYY-MM-DD".into();
    }
    "see `portwarden policy init` for a valid example".into()
}

impl Policy {
    /// No policy: every host is unmanaged and judged by the baseline.
    pub fn none() -> Policy {
        Policy {
            file: "(no policy: built-in baseline)".into(),
            given: false,
            name: None,
            owner: None,
            groups: Vec::new(),
            exceptions: Vec::new(),
            changes: Vec::new(),
            baseline_profiles: None,
            max_exception_months: 12,
            sha256: None,
            scanners: Vec::new(),
        }
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path, profiles: &Profiles) -> Result<Policy, PolicyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            file: file.clone(),
            source,
        })?;
        let mut policy = Policy::parse(&text, &file, profiles)?;
        use sha2::Digest;
        policy.sha256 = Some(hex::encode(sha2::Sha256::digest(text.as_bytes())));
        Ok(policy)
    }

    /// Parses and validates policy text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, profiles: &Profiles) -> Result<Policy, PolicyError> {
        let src = Src::new(file, text);
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            PolicyError::Syntax {
                at: src.at(e.span().unwrap_or(0..0)),
                hint: syntax_hint(&message),
                message,
            }
        })?;
        let known = profiles.ids();

        let mut groups: Vec<Group> = Vec::new();
        let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut group_spans: Vec<Vec<std::ops::Range<usize>>> = Vec::new();
        for sg in raw.groups {
            let gspan = sg.span();
            let g = sg.into_inner();
            let name = g.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(src.invalid(
                    g.name.span(),
                    "a group needs a name".into(),
                    "name = \"dmz\"",
                ));
            }
            if !names.insert(name.clone()) {
                return Err(src.invalid(
                    g.name.span(),
                    format!("group '{name}' is declared twice"),
                    "give each [[group]] its own name, or merge them",
                ));
            }
            if g.targets.is_empty() {
                return Err(src.invalid(
                    gspan,
                    format!("group '{name}' has no targets"),
                    "targets = [\"198.18.0.0/24\", \"198.18.1.10-20\"]",
                ));
            }
            let mut ranges = Vec::new();
            let mut spans = Vec::new();
            for t in &g.targets {
                let r = AddrRange::parse(t.get_ref()).map_err(|m| {
                    src.invalid(
                        t.span(),
                        m,
                        "use an address (198.18.0.5), a CIDR (198.18.0.0/24) or a range (198.18.0.10-20)",
                    )
                })?;
                ranges.push(r);
                spans.push(t.span());
            }
            let mut gprofiles = Vec::new();
            for p in &g.profiles {
                let n = p.get_ref();
                if !known.contains(&n.as_str()) {
                    let hint = match closest(n, known.iter().copied()) {
                        Some(c) => format!("did you mean '{c}'? known: {}", known.join(", ")),
                        None => format!("known profiles: {}", known.join(", ")),
                    };
                    return Err(PolicyError::UnknownProfile {
                        at: src.at(p.span()),
                        name: n.clone(),
                        hint,
                    });
                }
                if !gprofiles.contains(n) {
                    gprofiles.push(n.clone());
                }
            }
            let ids: Vec<&str> = gprofiles.iter().map(String::as_str).collect();
            if let Some((i, message, hint)) = profiles.extension_without_level(&ids) {
                let at = g.profiles.iter().find(|p| p.get_ref() == ids[i]);
                return Err(src.invalid(at.map_or(gspan, |p| p.span()), message, &hint));
            }
            let max_open_ports = match &g.max_open_ports {
                None => None,
                Some(m) => Some(usize::try_from(*m.get_ref()).map_err(|_| {
                    src.invalid(
                        m.span(),
                        format!("max_open_ports = {} is negative", m.get_ref()),
                        "give the most open ports a host of this group may have, e.g. 15",
                    )
                })?),
            };
            let mut allow = Vec::new();
            for sa in g.allow {
                let aspan = sa.span();
                let a = sa.into_inner();
                let ports = a.port.get_ref().0.clone().map_err(|m| {
                    src.invalid(a.port.span(), m, "port = 443 or port = \"8000-8010\"")
                })?;
                let review_by = match &a.review_by {
                    None => None,
                    Some(d) => Some(
                        d.get_ref()
                            .0
                            .clone()
                            .map_err(|m| src.invalid(d.span(), m, "review_by = 2027-06-30"))?,
                    ),
                };
                allow.push(AllowRule {
                    ports,
                    proto: a.proto.unwrap_or(Proto::Tcp),
                    service: a
                        .service
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty()),
                    justification: a.justification,
                    approver: a.approver,
                    ticket: a.ticket,
                    review_by,
                    line: src.at(aspan).line,
                });
            }
            let mut admin_sources = Vec::new();
            for a in &g.admin_sources {
                let text = a.get_ref().trim();
                let net = text
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        src.invalid(
                            a.span(),
                            format!("admin source '{text}' is not an address or a CIDR"),
                            "admin_sources = [\"198.18.5.0/24\", \"2001:2:5::/64\"]",
                        )
                    })?;
                admin_sources.push(net.trunc());
            }
            let port_scope = match g.port_scope {
                None => None,
                Some(ps) => Some(group_port_scope(&src, &name, ps)?),
            };
            groups.push(Group {
                port_scope,
                name,
                targets: g.targets.iter().map(|t| t.get_ref().clone()).collect(),
                ranges,
                tags: g.tags,
                vantage: g.vantage.map(|v| *v.get_ref()).unwrap_or_default(),
                profiles: gprofiles,
                max_open_ports,
                platforms: g.platforms,
                admin_sources,
                allow,
                line: src.at(gspan).line,
                expect: g.expect.unwrap_or_default(),
            });
            group_spans.push(spans);
        }
        check_overlaps(&src, &groups, &group_spans)?;

        let mut exceptions = Vec::new();
        let mut ids: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (n, se) in raw.exceptions.into_iter().enumerate() {
            let espan = se.span();
            let e = se.into_inner();
            let spec = e.target.get_ref().trim().to_string();
            let target = match AddrRange::parse(&spec) {
                Ok(r) => ExceptionTarget::Addr(r),
                Err(m) => {
                    if names.contains(&spec) {
                        ExceptionTarget::Group(spec.clone())
                    } else {
                        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                        return Err(src.invalid(
                            e.target.span(),
                            format!("{m}, nor the name of a group"),
                            &format!(
                                "target = an address, CIDR or range, or one of the groups: {}",
                                names.join(", ")
                            ),
                        ));
                    }
                }
            };
            let ports =
                match &e.port {
                    None => None,
                    Some(p) => Some(p.get_ref().0.clone().map_err(|m| {
                        src.invalid(p.span(), m, "port = 23 or port = \"8000-8010\"")
                    })?),
                };
            let check = match &e.check {
                None => None,
                Some(c) => Some(c.get_ref().parse::<CheckKind>().map_err(|m| {
                    let hint = match closest(c.get_ref(), CheckKind::ALL.map(CheckKind::as_str)) {
                        Some(s) => format!("did you mean '{s}'?"),
                        None => "leave `check` out to waive every check on the port".into(),
                    };
                    src.invalid(c.span(), m, &hint)
                })?),
            };
            if ports.is_none() && check.is_none() {
                return Err(src.invalid(
                    espan,
                    "a blanket exception (no port and no check) is not accepted: an auditor cannot tell what risk it accepts".into(),
                    "name the port (port = 23) or the check (check = \"cleartext-admin\") it waives",
                ));
            }
            if let (Some(CheckKind::SegmentationBreach), Some(c)) = (check, &e.check) {
                return Err(src.invalid(
                    c.span(),
                    "a segmentation breach cannot be waived".into(),
                    "a path into a segment that must be unreachable is fixed, never accepted",
                ));
            }
            if let (Some(CheckKind::ExceptionExpired), Some(c)) = (check, &e.check) {
                return Err(src.invalid(
                    c.span(),
                    "an exception cannot waive 'exception-expired'".into(),
                    "extend the expired exception's `expires` instead, with a fresh approval",
                ));
            }
            for (field, v) in [("reason", &e.reason), ("approver", &e.approver)] {
                if v.get_ref().trim().is_empty() {
                    return Err(src.invalid(
                        v.span(),
                        format!("an exception needs a non-empty {field}"),
                        "auditors ask who accepted the risk and why",
                    ));
                }
            }
            let expires = e
                .expires
                .get_ref()
                .0
                .clone()
                .map_err(|m| src.invalid(e.expires.span(), m, "expires = 2027-01-31"))?;
            let review_by = match &e.review_by {
                None => None,
                Some(d) => Some(
                    d.get_ref()
                        .0
                        .clone()
                        .map_err(|m| src.invalid(d.span(), m, "review_by = 2027-06-30"))?,
                ),
            };
            let window = match &e.window {
                None => None,
                Some(w) => Some(Window::from_raw(w.get_ref()).map_err(|m| {
                    src.invalid(
                        w.span(),
                        m,
                        "window = { every = \"quarter\", last_days = 14 } or { every = \"month\", days = \"25-31\" }",
                    )
                })?),
            };
            let id =
                e.id.clone()
                    .or_else(|| e.ticket.clone())
                    .unwrap_or_else(|| format!("exception-{}", n + 1));
            let line = src.at(espan.clone()).line;
            if let Some(first) = ids.insert(id.clone(), line) {
                return Err(src.invalid(
                    espan,
                    format!(
                        "exception id '{id}' is used twice: {file}:{first} and {file}:{line}"
                    ),
                    "give each [[exception]] its own `id` (findings name the exception that waived them)",
                ));
            }
            exceptions.push(Exception {
                id,
                target_spec: spec,
                target,
                ports,
                proto: e.proto.unwrap_or(Proto::Tcp),
                check,
                reason: e.reason.into_inner(),
                approver: e.approver.into_inner(),
                ticket: e.ticket,
                expires,
                review_by,
                window,
                line,
            });
        }
        let changes = parse_changes(&src, &groups, raw.changes)?;
        let baseline_profiles = match raw.baseline_profiles {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for p in list {
                    let n = p.get_ref();
                    if !known.contains(&n.as_str()) {
                        let hint = match closest(n, known.iter().copied()) {
                            Some(c) => format!("did you mean '{c}'? known: {}", known.join(", ")),
                            None => format!("known profiles: {}", known.join(", ")),
                        };
                        return Err(PolicyError::UnknownProfile {
                            at: src.at(p.span()),
                            name: n.clone(),
                            hint,
                        });
                    }
                    out.push(n.clone());
                }
                Some(out)
            }
        };
        let scanners = scanner::scanners(raw.scanners, &src)?;
        let max_exception_months = match &raw.max_exception_months {
            None => 12,
            Some(m) => u32::try_from(*m.get_ref())
                .ok()
                .filter(|m| (1..=120).contains(m))
                .ok_or_else(|| {
                    src.invalid(
                        m.span(),
                        format!("max_exception_months = {} is outside 1-120", m.get_ref()),
                        "max_exception_months = 12",
                    )
                })?,
        };
        Ok(Policy {
            scanners,
            given: true,
            max_exception_months,
            baseline_profiles,
            sha256: None,
            file: file.to_string(),
            name: raw.name,
            owner: raw.owner,
            groups,
            exceptions,
            changes,
        })
    }

    /// Every group's `port_scope` names only port sets the catalogue knows.
    pub fn check_port_scopes(
        &self,
        catalogue: &dyn super::catalogue::PortCatalogue,
    ) -> Result<(), PolicyError> {
        for g in &self.groups {
            let Some(ps) = &g.port_scope else { continue };
            for spec in [&ps.scope.tcp, &ps.scope.udp].into_iter().flatten() {
                crate::rules::profiles::parse_port_list(spec, |n| catalogue.set(n)).map_err(
                    |m| PolicyError::Invalid {
                        at: Location {
                            file: self.file.clone(),
                            line: ps.line,
                            col: 1,
                        },
                        message: format!("group '{}': port_scope: {m}", g.name),
                        hint: "use \"all\", a set of `portwarden ports` (common, high-risk-udp, …) or ports and ranges".into(),
                    },
                )?;
            }
        }
        Ok(())
    }

    /// The groups an address belongs to, in file order.
    pub fn groups_of(&self, ip: std::net::IpAddr) -> Vec<&Group> {
        self.groups.iter().filter(|g| g.contains(ip)).collect()
    }
}

fn group_port_scope(
    src: &Src,
    group: &str,
    ps: Spanned<RawGroupScope>,
) -> Result<GroupPortScope, PolicyError> {
    let span = ps.span();
    let r = ps.into_inner();
    let justification = r
        .justification
        .map(|j| j.trim().to_string())
        .filter(|j| !j.is_empty())
        .ok_or_else(|| {
            src.invalid(
                span.clone(),
                format!("group '{group}' narrows its port scope without a justification"),
                "port_scope = { tcp = \"common\", justification = \"why the rest need not be scanned\" }",
            )
        })?;
    let scope = crate::rules::profiles::PortScope {
        tcp: r.tcp,
        udp: r.udp,
    };
    for spec in [&scope.tcp, &scope.udp].into_iter().flatten() {
        crate::rules::profiles::parse_port_list(spec, |_| Some(Vec::new())).map_err(|m| {
            src.invalid(
                span.clone(),
                m,
                "write \"all\", a named set (\"common\") or ports and ranges (\"22,80-90\")",
            )
        })?;
    }
    Ok(GroupPortScope {
        scope,
        justification,
        line: src.at(span).line,
    })
}

fn parse_changes(
    src: &Src,
    groups: &[Group],
    raw: Vec<Spanned<RawChange>>,
) -> Result<Vec<Change>, PolicyError> {
    let mut out: Vec<Change> = Vec::new();
    let names: std::collections::HashSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let mut tickets: std::collections::HashSet<String> = std::collections::HashSet::new();
    for sc in raw {
        let cspan = sc.span();
        let c = sc.into_inner();
        for (field, v) in [("ticket", &c.ticket), ("approver", &c.approver)] {
            if v.get_ref().trim().is_empty() {
                return Err(src.invalid(
                    v.span(),
                    format!("a change needs a non-empty {field}"),
                    "auditors ask which ticket approved the change and who approved it",
                ));
            }
        }
        let ticket = c.ticket.get_ref().trim().to_string();
        if !tickets.insert(ticket.clone()) {
            return Err(src.invalid(
                c.ticket.span(),
                format!("change {ticket} is recorded twice"),
                "merge the two [[change]] records, or give the second its own ticket",
            ));
        }
        let date = |d: &Spanned<DateField>, hint: &str| {
            d.get_ref()
                .0
                .clone()
                .map_err(|m| src.invalid(d.span(), m, hint))
        };
        let approved = date(&c.approved, "approved = 2026-11-20")?;
        let spec = c.target.get_ref().trim().to_string();
        let target = match AddrRange::parse(&spec) {
            Ok(r) => ExceptionTarget::Addr(r),
            Err(_) if names.contains(spec.as_str()) => ExceptionTarget::Group(spec.clone()),
            Err(m) => {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                return Err(src.invalid(
                    c.target.span(),
                    format!("{m}, nor the name of a group"),
                    &format!(
                        "target = an address, CIDR or range, or one of the groups: {}",
                        names.join(", ")
                    ),
                ));
            }
        };
        let ports = |list: &[Spanned<PortField>]| {
            list.iter()
                .map(|p| {
                    p.get_ref()
                        .0
                        .clone()
                        .map_err(|m| src.invalid(p.span(), m, "opens = [8443, \"9000-9010\"]"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let opens = ports(&c.opens)?;
        let closes = ports(&c.closes)?;
        if opens.is_empty() && closes.is_empty() {
            return Err(src.invalid(
                cspan,
                format!("change {ticket} opens and closes no port"),
                "list the ports it changes: opens = [8443] and/or closes = [23]",
            ));
        }
        let (mut from, mut until) = (None, None);
        if let Some(w) = &c.window {
            let raw = w.get_ref();
            if let Some(f) = &raw.from {
                from = Some(date(
                    f,
                    "window = { from = 2026-11-21, until = 2026-11-28 }",
                )?);
            }
            if let Some(u) = &raw.until {
                until = Some(date(
                    u,
                    "window = { from = 2026-11-21, until = 2026-11-28 }",
                )?);
            }
            if let (Some(f), Some(u)) = (from, until)
                && u < f
            {
                return Err(src.invalid(
                    w.span(),
                    format!("change {ticket}'s window ends ({u}) before it starts ({f})"),
                    "window = { from = FIRST DAY, until = LAST DAY }",
                ));
            }
            if let Some(f) = from.filter(|f| *f < approved) {
                return Err(src.invalid(
                    w.span(),
                    format!(
                        "change {ticket}'s window starts ({f}) before its approval ({approved})"
                    ),
                    "a change may only be carried out once approved: move `from` or `approved`",
                ));
            }
        }
        out.push(Change {
            ticket,
            approver: c.approver.get_ref().trim().to_string(),
            approved,
            target_spec: spec,
            target,
            opens,
            closes,
            proto: c.proto.unwrap_or(Proto::Tcp),
            description: c.description,
            from,
            until,
            line: src.at(cspan).line,
        });
    }
    Ok(out)
}

/// Every (group `j`, earlier group `a`, range `k` of group `j`) where
/// range `k` shares an address with a range of group `a`, sorted and
/// without repeats. A sweep over the ranges sorted by their first address
/// keeps only the ranges still open, so disjoint groups cost n log n, not
/// n² (100,000 groups load in a second).
fn overlapping(groups: &[Group]) -> Vec<(usize, usize, usize)> {
    let mut all: Vec<((bool, u128, u128), usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, gr)| {
            gr.ranges
                .iter()
                .enumerate()
                .map(move |(k, r)| (r.bounds(), g, k))
        })
        .collect();
    all.sort_unstable_by_key(|&((v6, lo, _), g, k)| (v6, lo, g, k));
    let mut open: Vec<((bool, u128, u128), usize, usize)> = Vec::new();
    let mut out = Vec::new();
    for item in all {
        let ((v6, lo, _), g, k) = item;
        open.retain(|&((ov6, _, ohi), _, _)| ov6 == v6 && ohi >= lo);
        for &(_, og, ok) in &open {
            match og.cmp(&g) {
                std::cmp::Ordering::Less => out.push((g, og, k)),
                std::cmp::Ordering::Greater => out.push((og, g, ok)),
                std::cmp::Ordering::Equal => {}
            }
        }
        open.push(item);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Overlapping groups are fine while they agree: a host in both gets the
/// union of their allowances. Disagreement on vantage, cap or the service
/// expected on a port would make the verdict depend on file order.
fn check_overlaps(
    src: &Src,
    groups: &[Group],
    spans: &[Vec<std::ops::Range<usize>>],
) -> Result<(), PolicyError> {
    const HINT: &str = "an address may be in several groups only when their rules agree: split the ranges, or align the groups";
    // Only pairs of groups that share an address are compared, in the
    // order a full pairwise scan would meet them (so the first conflict
    // reported is the same), found by one sweep over the sorted ranges.
    for (j, a, k) in overlapping(groups) {
        let (b, a) = (&groups[j], &groups[a]);
        let rb = &b.ranges[k];
        let Some(ip) = a.ranges.iter().find_map(|ra| ra.intersection(rb)) else {
            continue;
        };
        let conflict = |what: String| PolicyError::Conflict {
            at: src.at(spans[j][k].clone()),
            message: format!(
                "group '{}' target '{}' overlaps group '{}' ({ip} is in both) and {what}",
                b.name, b.targets[k], a.name
            ),
            hint: HINT.to_string(),
        };
        if a.vantage != b.vantage {
            return Err(conflict(format!(
                "their vantage differs ({} vs {})",
                a.vantage.as_str(),
                b.vantage.as_str()
            )));
        }
        if a.expect != b.expect {
            return Err(conflict(
                "one expects its hosts unreachable and the other does not".into(),
            ));
        }
        if let (Some(ca), Some(cb)) = (a.max_open_ports, b.max_open_ports)
            && ca != cb
        {
            return Err(conflict(format!(
                "their max_open_ports differ ({ca} vs {cb})"
            )));
        }
        for xa in &a.allow {
            for xb in &b.allow {
                if xa.proto == xb.proto
                    && xa.ports.overlaps(&xb.ports)
                    && let (Some(sa), Some(sb)) = (&xa.service, &xb.service)
                    && sa != sb
                {
                    return Err(conflict(format!(
                        "they expect different services on {}/{} ('{sa}' vs '{sb}')",
                        xb.ports, xb.proto
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Profiles {
        Profiles::embedded().unwrap()
    }

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, "p.toml", &profiles())
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const GROUP: &str = "[[group]]\nname = \"web\"\ntargets = [\"198.18.0.0/28\"]\n";

    #[test]
    fn starter_policy_parses() {
        let p = parse(crate::policy::policy_init_text()).unwrap();
        let names: Vec<&str> = p.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["cardholder", "dmz", "ot"]);
        assert_eq!(p.groups[2].max_open_ports, Some(3));
        assert_eq!(p.groups[1].vantage, Vantage::Internet);
        assert_eq!(p.exceptions.len(), 2);
        assert_eq!(
            p.exceptions[1].target,
            ExceptionTarget::Group("cardholder".into())
        );
        assert_eq!(
            p.exceptions[1].window.unwrap().to_string(),
            "last 14 days of each quarter"
        );
        assert_eq!(
            p.groups[0].allow[0].review_by,
            NaiveDate::from_ymd_opt(2027, 5, 31)
        );
    }

    #[test]
    fn change_records() {
        let ok = format!(
            "{GROUP}[[change]]\nticket = \"CHG-1\"\napprover = \"cab\"\napproved = 2026-11-20\ntarget = \"web\"\nopens = [8443, \"9000-9001\"]\ncloses = [23]\nwindow = {{ from = 2026-11-21, until = 2026-11-28 }}\n"
        );
        let p = parse(&ok).unwrap();
        let c = &p.changes[0];
        assert_eq!(c.ticket, "CHG-1");
        assert_eq!(c.target, ExceptionTarget::Group("web".into()));
        assert_eq!(c.line, 4);
        assert!(c.opens_port(9001, Proto::Tcp) && !c.opens_port(9002, Proto::Tcp));
        assert!(c.closes_port(23, Proto::Tcp) && !c.opens_port(23, Proto::Tcp));
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(c.state(day("2026-11-20")), ChangeState::Pending);
        assert_eq!(c.state(day("2026-11-21")), ChangeState::Active);
        assert_eq!(c.state(day("2026-11-28")), ChangeState::Active);
        assert_eq!(c.state(day("2026-11-29")), ChangeState::Ended);

        let head = format!(
            "{GROUP}[[change]]\nticket = \"CHG-1\"\napprover = \"cab\"\napproved = 2026-11-20\ntarget = \"198.18.0.5\"\n"
        );
        let e = err(&format!("{head}opens = [80]\napprove = \"x\"\n"));
        assert!(e.starts_with("p.toml:10:1: unknown field `approve`"), "{e}");
        assert!(e.contains("did you mean `approved`?"), "{e}");
        let e = err(&head);
        assert!(
            e.starts_with("p.toml:4:1: change CHG-1 opens and closes no port"),
            "{e}"
        );
        let e = err(&format!(
            "{head}opens = [80]\nwindow = {{ from = 2026-11-19 }}\n"
        ));
        assert!(
            e.starts_with("p.toml:10:10: change CHG-1's window starts (2026-11-19) before its approval (2026-11-20)"),
            "{e}"
        );
        let e = err(&format!("{head}opens = [0]\n"));
        assert!(
            e.starts_with("p.toml:9:10: port 0 is outside 1-65535"),
            "{e}"
        );
        let e = err(&format!(
            "{head}opens = [80]\n[[change]]\nticket = \"CHG-1\"\napprover = \"x\"\napproved = 2026-11-20\ntarget = \"nowhere\"\nopens = [1]\n"
        ));
        assert!(
            e.starts_with("p.toml:11:10: change CHG-1 is recorded twice"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_points_at_it_with_a_suggestion() {
        let e = err(&format!("{GROUP}vantge = \"internet\"\n"));
        assert!(e.starts_with("p.toml:4:1: unknown field `vantge`"), "{e}");
        assert!(e.contains("hint: did you mean `vantage`?"), "{e}");
    }

    #[test]
    fn wrong_type_and_bad_dates() {
        let e = err(&format!("{GROUP}max_open_ports = \"ten\"\n"));
        assert!(e.starts_with("p.toml:4:18: invalid type"), "{e}");
        let e = err(&format!(
            "{GROUP}[[group.allow]]\nport = 22\nreview_by = \"2027/01/31\"\n"
        ));
        assert!(
            e.starts_with("p.toml:6:13: '2027/01/31' is not a date"),
            "{e}"
        );
        assert!(e.contains("hint: review_by = 2027-06-30"), "{e}");
        let e = err(&format!(
            "{GROUP}[[group.allow]]\nport = 22\nreview_by = 2027-02-30\n"
        ));
        assert!(e.starts_with("p.toml:6:"), "{e}");
        let e = err(&format!("{GROUP}[[group.allow]]\nport = 70000\n"));
        assert!(
            e.starts_with("p.toml:5:8: port 70000 is outside 1-65535"),
            "{e}"
        );
    }

    #[test]
    fn unknown_profile_suggests() {
        let e = err(&format!("{GROUP}profiles = [\"pci-dss-4\"]\n"));
        assert!(
            e.starts_with("p.toml:4:13: unknown profile 'pci-dss-4'"),
            "{e}"
        );
        assert!(e.contains("did you mean 'pci-dss-4.0'?"), "{e}");
        match parse(&format!("{GROUP}profiles = [\"sox\"]\n")).unwrap_err() {
            PolicyError::UnknownProfile { at, name, .. } => {
                assert_eq!((at.line, at.col, name.as_str()), (4, 13, "sox"))
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn bad_target_and_exception_fields() {
        let e = err("[[group]]\nname = \"a\"\ntargets = [\"db.example\"]\n");
        assert!(
            e.starts_with("p.toml:3:12: 'db.example' is not an address"),
            "{e}"
        );
        let exc = "[[exception]]\ntarget = \"198.18.0.1\"\nreason = \"r\"\napprover = \"a\"\n";
        let e = err(&format!("{GROUP}{exc}"));
        assert!(e.starts_with("p.toml:4:1: missing field `expires`"), "{e}");
        let e = err(&format!(
            "{GROUP}{exc}expires = 2027-01-01\ncheck = \"cleartext\"\n"
        ));
        assert!(
            e.starts_with("p.toml:9:9: unknown check 'cleartext'"),
            "{e}"
        );
        assert!(e.contains("did you mean 'cleartext-admin'?"), "{e}");
        let e = err(&format!(
            "{GROUP}{exc}expires = 2027-01-01\nport = 23\nwindow = {{ every = \"month\", last_days = 40 }}\n"
        ));
        assert!(
            e.starts_with("p.toml:10:10: a month window covers 1-31 days, not 40"),
            "{e}"
        );
        // A blanket exception says nothing an auditor can weigh.
        let e = err(&format!("{GROUP}{exc}expires = 2027-01-01\n"));
        assert!(
            e.starts_with("p.toml:4:1: a blanket exception (no port and no check) is not accepted"),
            "{e}"
        );
        // A breach of a segment is never waived.
        let e = err(&format!(
            "{GROUP}{exc}expires = 2027-01-01\ncheck = \"segmentation-breach\"\n"
        ));
        assert!(
            e.starts_with("p.toml:9:9: a segmentation breach cannot be waived"),
            "{e}"
        );
        let e = err(&format!(
            "{GROUP}{exc}expires = 2027-01-01\ncheck = \"exception-expired\"\n"
        ));
        assert!(
            e.starts_with("p.toml:9:9: an exception cannot waive 'exception-expired'"),
            "{e}"
        );
        let e = err(&format!(
            "{GROUP}[[exception]]\ntarget = \"nowhere\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n"
        ));
        assert!(e.contains("nor the name of a group"), "{e}");
        assert!(e.contains("one of the groups: web"), "{e}");
        let e = err(&format!(
            "{GROUP}{exc}expires = 2027-01-01\nwindow = {{ every = \"fortnight\", days = \"1\" }}\n"
        ));
        assert!(e.starts_with("p.toml:9:"), "{e}");
        assert!(e.contains("unknown variant `fortnight`"), "{e}");
    }

    #[test]
    fn expect_parses_and_overlaps_must_agree_on_it() {
        let p = parse(
            "[[group]]\nname = \"cde\"\ntargets = [\"198.18.0.0/28\"]\nexpect = \"unreachable\"\n",
        )
        .unwrap();
        assert_eq!(p.groups[0].expect, Expect::Unreachable);
        let e = err(
            "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nexpect = \"unreachable\"\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.1\"]\n",
        );
        assert!(
            e.contains("one expects its hosts unreachable and the other does not"),
            "{e}"
        );
        let e =
            err("[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nexpect = \"closed\"\n");
        assert!(e.contains("unknown variant `closed`"), "{e}");
    }

    #[test]
    fn overlapping_groups_must_agree() {
        let a = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nvantage = \"internal\"\n";
        let b = "[[group]]\nname = \"b\"\ntargets = [\"198.18.1.0/24\", \"198.18.0.8-20\"]\nvantage = \"internet\"\n";
        match parse(&format!("{a}{b}")).unwrap_err() {
            PolicyError::Conflict { at, message, .. } => {
                assert_eq!((at.line, at.col), (7, 29));
                assert_eq!(
                    message,
                    "group 'b' target '198.18.0.8-20' overlaps group 'a' (198.18.0.8 is in both) and their vantage differs (internal vs internet)"
                );
            }
            other => panic!("{other}"),
        }
        let caps = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nmax_open_ports = 3\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.4\"]\nmax_open_ports = 5\n";
        assert!(err(caps).contains("max_open_ports differ (3 vs 5)"));
        let svc = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group.allow]]\nport = 8080\nservice = \"http\"\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.4\"]\n[[group.allow]]\nport = \"8000-8100\"\nservice = \"ssh\"\n";
        assert!(err(svc).contains("different services on 8000-8100/tcp ('http' vs 'ssh')"));
        // Agreeing overlap is fine; a duplicate name is not.
        let ok = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.4\"]\ntags = [\"x\"]\n";
        assert_eq!(
            parse(ok)
                .unwrap()
                .groups_of("198.18.0.4".parse().unwrap())
                .len(),
            2
        );
        let dup = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group]]\nname = \"a\"\ntargets = [\"198.18.1.0/28\"]\n";
        assert!(err(dup).starts_with("p.toml:5:8: group 'a' is declared twice"));
    }

    #[test]
    fn exception_states() {
        let p = parse(&format!(
            "{GROUP}[[exception]]\ntarget = \"web\"\nport = 5432\nreason = \"r\"\napprover = \"a\"\nexpires = 2026-12-31\nwindow = {{ every = \"quarter\", last_days = 14 }}\n"
        ))
        .unwrap();
        let e = &p.exceptions[0];
        assert_eq!(e.id, "exception-1");
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(e.state(d("2026-12-20")), ExceptionState::Active);
        assert_eq!(e.state(d("2026-12-31")), ExceptionState::Active);
        assert_eq!(e.state(d("2026-11-20")), ExceptionState::OutsideWindow);
        assert_eq!(ExceptionState::OutsideWindow.to_string(), "outside-window");
        assert_eq!(e.state(d("2027-01-01")), ExceptionState::Expired);
    }

    #[test]
    fn locations_match_a_full_recount() {
        let text = "a = 1\n\nb = \"é😀\"\nlast";
        let src = Src::new("p.toml", text);
        for offset in 0..=text.len() + 3 {
            assert_eq!(
                src.line_col(offset),
                crate::rules::line_col(text, offset),
                "offset {offset}"
            );
        }
    }

    fn exception(id: &str) -> String {
        format!(
            "[[exception]]\nid = \"{id}\"\ntarget = \"198.18.0.1\"\nport = 23\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n"
        )
    }

    #[test]
    fn duplicate_exception_ids_name_both_places() {
        let text = format!(
            "{GROUP}{}{}{}",
            exception("x1"),
            exception("x2"),
            exception("x1")
        );
        let e = parse(&text).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("exception id 'x1' is used twice: p.toml:4 and p.toml:18"),
            "{msg}"
        );
        assert_eq!(e.location().map(|l| l.line), Some(18));
    }

    /// 50,000 exceptions parse (in linear time: each location is a binary
    /// search, not a recount from the start). The time is printed, never
    /// asserted: run with `--nocapture` to see it.
    #[test]
    fn fifty_thousand_exceptions_parse() {
        let mut text = String::from(GROUP);
        for i in 0..50_000 {
            text.push_str(&exception(&format!("e{i}")));
        }
        let t = std::time::Instant::now();
        let p = parse(&text).unwrap();
        eprintln!(
            "50,000 exceptions parsed in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        assert_eq!(p.exceptions.len(), 50_000);
        assert_eq!(p.exceptions[49_999].id, "e49999");
        assert_eq!(p.exceptions[49_999].line, 4 + 49_999 * 7);
    }
}
