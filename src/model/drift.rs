//! What changed between two runs of the same scope ([`Drift`]): plain
//! data, computed by the store (`store::drift`) and written by the report.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Proto, Severity};

/// An exception of the policy in force, kept so a later diff can say which
/// exceptions expired between two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionNote {
    pub id: String,
    pub target: String,
    pub expires: NaiveDate,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    /// `None` for the audit being written (not recorded yet, or `--no-store`).
    pub id: Option<i64>,
    pub started: DateTime<Utc>,
    pub scope_key: String,
}

/// A port that opened or closed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortChange {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub service: Option<String>,
    /// Opened ports: `approved` (a change record covers it), `unapproved`
    /// (an `unapproved-change` finding), or `None` when not judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// A port open in both runs whose service changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceChange {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A finding in the drift (the fields a reader needs to find it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingChange {
    pub id: String,
    pub check: String,
    pub severity: Severity,
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub message: String,
}

/// What changed from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub schema_version: u32,
    pub from: RunRef,
    pub to: RunRef,
    pub opened: Vec<PortChange>,
    pub closed: Vec<PortChange>,
    pub services_changed: Vec<ServiceChange>,
    pub findings_new: Vec<FindingChange>,
    pub findings_resolved: Vec<FindingChange>,
    /// Exceptions whose expiry date lies between the two runs.
    pub exceptions_expired: Vec<ExceptionNote>,
}

impl Drift {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty()
            && self.closed.is_empty()
            && self.services_changed.is_empty()
            && self.findings_new.is_empty()
            && self.findings_resolved.is_empty()
            && self.exceptions_expired.is_empty()
    }
}
