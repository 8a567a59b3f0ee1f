//! Policy layer: the declared port policy and the compliance engine.
//!
//! The user declares asset groups, the ports each may expose (with the
//! justification and approval auditors ask for) and time-boxed exceptions;
//! the engine judges scan observations against that declaration and against
//! compliance profiles (`rules/profiles/`), producing findings with stable
//! ids, control references and per-requirement verdicts. Everything here is
//! pure — files in, values out — so the CLI decides what to print and which
//! exit code a tripped gate means.
//!
//! * `config`: the policy file, strictly parsed, errors at `file:line:col`
//! * `window`: recurring windows of exceptions
//! * `eval`: [`evaluate`] and [`gate`]
//! * `catalogue`: the [`PortCatalogue`] view of the port catalogue

pub(crate) mod addr;
mod assets;
pub(crate) mod cadence;
pub(crate) mod catalogue;
pub(crate) mod config;
pub(crate) mod eval;
pub(crate) mod evidence;
mod review;
pub(crate) mod udp;
pub(crate) mod vantage;
mod verdict;
pub(crate) mod window;

use chrono::NaiveDate;
use serde::Serialize;

pub use crate::rules::profiles::{CheckKind, Profiles};
pub use cadence::AuditHistory;
pub use catalogue::{PortCatalogue, PortFacts, StaticCatalogue};
pub use config::{
    AllowRule, Change, ChangeState, DEFAULT_BASELINE_PROFILES, Exception, ExceptionState,
    ExceptionTarget, Expect, Group, Location, Policy, PolicyError, PortRange, Vantage,
};
pub use eval::{Baseline, Evaluation, evaluate, evaluate_in, finding_id, gate};
pub use evidence::{EvalContext, UdpEvidence};
pub use vantage::{Segments, VantageScan};
pub use window::Window;

const STARTER: &str = crate::rules::embedded::POLICY_STARTER;

/// A commented starter policy (`portwarden policy init`): it parses as is,
/// and shows every field so it can be edited rather than written from zero.
pub fn policy_init_text() -> &'static str {
    STARTER
}

/// One allowance, as `portwarden policy check` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllowSummary {
    /// `443/tcp`, `8000-8010/tcp`.
    pub ports: String,
    pub service: Option<String>,
    pub justified: bool,
    pub review_by: Option<NaiveDate>,
    pub review_overdue: bool,
    pub line: usize,
}

/// One group, as `portwarden policy check` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    pub name: String,
    pub targets: Vec<String>,
    pub vantage: Vantage,
    pub tags: Vec<String>,
    pub profiles: Vec<String>,
    pub max_open_ports: Option<usize>,
    pub allowed: Vec<AllowSummary>,
}

/// One exception and where it stands today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionSummary {
    pub id: String,
    pub target: String,
    /// `23/tcp`, or `all` when the exception names no port.
    pub ports: String,
    pub check: Option<String>,
    pub expires: NaiveDate,
    pub state: ExceptionState,
    /// Days until expiry (negative: days since).
    pub days_left: i64,
    /// The same in words: `12 days left`, `expired 525 days ago`.
    pub when: String,
    /// The window in words, e.g. "last 14 days of each quarter".
    pub window: Option<String>,
    pub line: usize,
}

/// What `portwarden policy check FILE` reports about a valid policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    pub file: String,
    pub groups: Vec<GroupSummary>,
    pub exceptions: Vec<ExceptionSummary>,
    /// Things that will turn into findings: allowances without justification
    /// or past review, expired exceptions.
    pub warnings: Vec<String>,
}

/// Tags of the policy's groups that no profile's mapping uses: a typo
/// (`card-holder`) silently keeps `@tag:cardholder` requirements off.
fn tag_warnings(policy: &Policy, profiles: &Profiles, warnings: &mut Vec<String>) {
    use crate::rules::profiles::{Assessment, CheckCondition};
    let used: std::collections::BTreeSet<String> = profiles
        .profiles()
        .iter()
        .flat_map(|p| p.requirements.iter())
        .filter_map(|r| match &r.assessment {
            Assessment::Checks(refs) => Some(refs),
            Assessment::NotAssessed { .. } => None,
        })
        .flatten()
        .filter_map(|c| match &c.when {
            CheckCondition::Tag(t) => Some(t.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    for g in &policy.groups {
        for t in &g.tags {
            if used.contains(&t.to_ascii_lowercase()) {
                continue;
            }
            // Only a tag that looks like one a profile uses is a likely
            // typo; others (`dmz`, `production`) just label the group.
            let Some(near) = used
                .iter()
                .map(|u| (strsim::jaro_winkler(&t.to_ascii_lowercase(), u), u))
                .filter(|(s, _)| *s > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, u)| format!(" (did you mean '{u}'?)"))
            else {
                continue;
            };
            warnings.push(format!(
                "{}:{}: group '{}' tag '{t}' is used by no profile{near}; requirements that depend on a tag ignore it",
                policy.file, g.line, g.name
            ));
        }
    }
}

/// Summarises a validated policy as of `today`.
pub fn check_summary(policy: &Policy, profiles: &Profiles, today: NaiveDate) -> PolicySummary {
    let mut warnings = Vec::new();
    tag_warnings(policy, profiles, &mut warnings);
    let groups = policy
        .groups
        .iter()
        .map(|g| GroupSummary {
            name: g.name.clone(),
            targets: g.targets.clone(),
            vantage: g.vantage,
            tags: g.tags.clone(),
            profiles: g.profiles.clone(),
            max_open_ports: g.max_open_ports,
            allowed: g
                .allow
                .iter()
                .map(|a| {
                    let ports = format!("{}/{}", a.ports, a.proto);
                    let overdue = a.review_overdue(today);
                    if !a.is_justified() {
                        warnings.push(format!(
                            "{}:{}: group '{}' allows {ports} without a justification and an approver",
                            policy.file, a.line, g.name
                        ));
                    }
                    if a.review_by.is_none() {
                        warnings.push(format!(
                            "{}:{}: group '{}' allowance {ports} has no review_by: rules are reviewed at least every six months (PCI DSS 1.2.7)",
                            policy.file, a.line, g.name
                        ));
                    }
                    if let Some(d) = a.review_by.filter(|_| overdue) {
                        warnings.push(format!(
                            "{}:{}: group '{}' allowance {ports} was due for review on {d}",
                            policy.file, a.line, g.name
                        ));
                    }
                    AllowSummary {
                        ports,
                        service: a.service.clone(),
                        justified: a.is_justified(),
                        review_by: a.review_by,
                        review_overdue: overdue,
                        line: a.line,
                    }
                })
                .collect(),
        })
        .collect();
    let exceptions = policy
        .exceptions
        .iter()
        .map(|e| {
            let state = e.state(today);
            if state == ExceptionState::Expired {
                warnings.push(format!(
                    "{}:{}: exception {} expired on {}",
                    policy.file, e.line, e.id, e.expires
                ));
            }
            if e.ports.is_none() {
                warnings.push(format!(
                    "{}:{}: exception {} waives '{}' on every port of {}: name the port if only some need it",
                    policy.file,
                    e.line,
                    e.id,
                    e.check.map(|c| c.as_str()).unwrap_or("every check"),
                    e.target_spec
                ));
            }
            let days = e.days_left(today);
            ExceptionSummary {
                when: match days {
                    0 => "expires today".to_string(),
                    1 => "1 day left".to_string(),
                    d if d > 0 => format!("{d} days left"),
                    -1 => "expired 1 day ago".to_string(),
                    d => format!("expired {} days ago", -d),
                },
                id: e.id.clone(),
                target: e.target_spec.clone(),
                ports: e.ports_label(),
                check: e.check.map(|c| c.as_str().to_string()),
                expires: e.expires,
                state,
                days_left: days,
                window: e.window.map(|w| w.to_string()),
                line: e.line,
            }
        })
        .collect();
    PolicySummary {
        file: policy.file.clone(),
        groups,
        exceptions,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_the_starter_policy() {
        let profiles = Profiles::embedded().unwrap();
        let p = Policy::parse(policy_init_text(), "starter.toml", &profiles).unwrap();
        let today = NaiveDate::from_ymd_opt(2027, 6, 1).unwrap();
        let s = check_summary(&p, &profiles, today);
        assert_eq!(s.groups.len(), 3);
        assert_eq!(s.groups[0].allowed[0].ports, "443/tcp");
        assert!(s.groups[0].allowed[0].review_overdue);
        assert_eq!(s.exceptions[0].id, "RISK-77");
        assert_eq!(s.exceptions[0].ports, "23/tcp");
        assert_eq!(s.exceptions[0].state, ExceptionState::Active);
        assert_eq!(s.exceptions[0].days_left, 29);
        // 2027-06-01 is not in the last 14 days of Q2.
        assert_eq!(s.exceptions[1].state, ExceptionState::OutsideWindow);
        assert_eq!(
            s.exceptions[1].window.as_deref(),
            Some("last 14 days of each quarter")
        );
        assert_eq!(
            s.warnings,
            [
                "starter.toml:45: group 'cardholder' allowance 443/tcp was due for review on 2027-05-31",
                "starter.toml:54: group 'cardholder' allowance 22/tcp was due for review on 2027-05-31",
                "starter.toml:69: group 'dmz' allowance 80/tcp was due for review on 2027-03-31",
                "starter.toml:77: group 'dmz' allowance 443/tcp was due for review on 2027-03-31",
                "starter.toml:93: group 'ot' allowance 502/tcp was due for review on 2027-02-28",
            ]
        );
        let later = check_summary(&p, &profiles, NaiveDate::from_ymd_opt(2027, 7, 1).unwrap());
        assert_eq!(later.exceptions[0].state, ExceptionState::Expired);
        assert_eq!(later.exceptions[0].days_left, -1);
        assert_eq!(later.exceptions[0].when, "expired 1 day ago");
        assert_eq!(s.exceptions[0].when, "29 days left");
        assert!(
            later
                .warnings
                .last()
                .unwrap()
                .ends_with("exception RISK-77 expired on 2027-06-30")
        );
    }
}
