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
//! unreachable_from = ["office"]     # with "unreachable": the vantages it is
//!                                   # judged from (default: the audit's one)
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
use serde::{Deserialize, Serialize};

mod parse;
mod raw;
mod scanner;
pub use scanner::Scanner;

use parse::Src;

use super::addr::AddrRange;
use super::window::Window;
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
    /// The vantages (`--vantage NAME`, a `[[scanner]]`'s vantage) the
    /// segment must be unreachable from: its segmentation test is judged
    /// only from their probes. Empty: from the audit's one vantage.
    pub unreachable_from: Vec<String>,
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
    /// Days until it expires as of `today` (negative: days since).
    pub fn days_left(&self, today: NaiveDate) -> i64 {
        (self.expires - today).num_days()
    }

    /// The ports it names, `23/tcp` or `8000-8010/tcp`, or `all`.
    pub fn ports_label(&self) -> String {
        self.ports
            .map(|p| format!("{p}/{}", self.proto))
            .unwrap_or_else(|| "all".into())
    }

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

#[cfg(test)]
mod tests;
