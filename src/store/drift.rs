//! Store layer: drift, what changed between two recorded runs — ports
//! opened and closed, services that changed, findings that appeared or were
//! resolved, exceptions that expired in between. Pure: runs in, a [`Drift`]
//! out; whether an opened port was an approved change is judged by the
//! policy engine (the `unapproved-change` finding) and copied in here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::NaiveDate;

use super::{ExceptionNote, NewRun};
pub use crate::model::drift::{Drift, FindingChange, PortChange, RunRef, ServiceChange};
use crate::model::{Finding, Observation, PortState, Proto};

type Key = (IpAddr, u16, Proto);

/// The open ports of a run (newest observation per port wins) with their
/// service names.
pub fn open_ports(observations: &[Observation]) -> BTreeMap<Key, Option<String>> {
    let mut latest: BTreeMap<Key, &Observation> = BTreeMap::new();
    for o in observations {
        let e = latest.entry((o.ip, o.port, o.proto)).or_insert(o);
        if o.time >= e.time {
            *e = o;
        }
    }
    latest
        .into_iter()
        .filter(|(_, o)| o.state == PortState::Open)
        .map(|(k, o)| (k, o.service.as_ref().map(|s| s.name.clone())))
        .collect()
}

fn finding_change(f: &Finding) -> FindingChange {
    FindingChange {
        id: f.id.clone(),
        check: f.check.clone(),
        severity: f.severity,
        ip: f.ip,
        port: f.port,
        message: f.message.clone(),
    }
}

/// Compares two runs. `from_id`/`to_id` name them (`None`: not recorded).
pub fn drift(from: (&NewRun, Option<i64>), to: (&NewRun, Option<i64>)) -> Drift {
    let (a, b) = (from.0, to.0);
    let pa = open_ports(&a.observations);
    let pb = open_ports(&b.observations);
    let change = |k: &Key, service: &Option<String>, approval: Option<String>| PortChange {
        ip: k.0,
        port: k.1,
        proto: k.2,
        service: service.clone(),
        approval,
    };
    let opened = pb
        .iter()
        .filter(|(k, _)| !pa.contains_key(k))
        .map(|(k, s)| change(k, s, None))
        .collect();
    let closed = pa
        .iter()
        .filter(|(k, _)| !pb.contains_key(k))
        .map(|(k, s)| change(k, s, None))
        .collect();
    let services_changed = pb
        .iter()
        .filter_map(|(k, after)| {
            let before = pa.get(k)?;
            (before != after).then(|| ServiceChange {
                ip: k.0,
                port: k.1,
                proto: k.2,
                before: before.clone(),
                after: after.clone(),
            })
        })
        .collect();
    let failing = |r: &NewRun| -> BTreeMap<String, Finding> {
        r.findings
            .iter()
            .filter(|f| f.status.is_failing())
            .map(|f| (f.id.clone(), f.clone()))
            .collect()
    };
    let (fa, fb) = (failing(a), failing(b));
    let findings_new = fb
        .values()
        .filter(|f| !fa.contains_key(&f.id))
        .map(finding_change)
        .collect();
    let findings_resolved = fa
        .values()
        .filter(|f| !fb.contains_key(&f.id))
        .map(finding_change)
        .collect();
    let (da, db): (NaiveDate, NaiveDate) = (a.started.date_naive(), b.started.date_naive());
    let mut exceptions_expired: Vec<ExceptionNote> = Vec::new();
    for e in a.exceptions.iter().chain(&b.exceptions) {
        // Valid on the first run's day, past its last day on the second's.
        if e.expires >= da && e.expires < db && !exceptions_expired.contains(e) {
            exceptions_expired.push(e.clone());
        }
    }
    exceptions_expired.sort_by(|x, y| (x.expires, &x.id).cmp(&(y.expires, &y.id)));
    let mut d = Drift {
        schema_version: 1,
        from: RunRef {
            id: from.1,
            started: a.started,
            scope_key: a.scope.key.clone(),
        },
        to: RunRef {
            id: to.1,
            started: b.started,
            scope_key: b.scope.key.clone(),
        },
        opened,
        closed,
        services_changed,
        findings_new,
        findings_resolved,
        exceptions_expired,
    };
    judge_approval(&mut d, &[b]);
    d
}

/// Marks each opened port `unapproved` (a failing `unapproved-change`
/// finding for it in one of `runs`), `waived` (only waived ones) or
/// `approved`. `runs` are the runs after `from` up to `to`: a port opened
/// in an intermediate run was judged there, not in `to`.
pub fn judge_approval(d: &mut Drift, runs: &[&NewRun]) {
    let mut failing: BTreeSet<Key> = BTreeSet::new();
    let mut waived: BTreeSet<Key> = BTreeSet::new();
    for f in runs
        .iter()
        .flat_map(|r| &r.findings)
        .filter(|f| f.check == "unapproved-change")
    {
        if let (Some(port), Some(proto)) = (f.port, f.proto) {
            if f.status.is_failing() {
                failing.insert((f.ip, port, proto));
            } else {
                waived.insert((f.ip, port, proto));
            }
        }
    }
    for c in &mut d.opened {
        let k = (c.ip, c.port, c.proto);
        let label = if failing.contains(&k) {
            "unapproved"
        } else if waived.contains(&k) {
            "waived"
        } else {
            "approved"
        };
        c.approval = Some(label.into());
    }
}

/// One row per change, for the table and CSV renderings:
/// `(kind, host, port, detail)`.
pub fn rows(d: &Drift) -> Vec<[String; 4]> {
    let mut out = Vec::new();
    let port = |p: u16, proto: Proto| format!("{p}/{proto}");
    for c in &d.opened {
        let detail = [c.service.clone(), c.approval.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        out.push([
            "opened".into(),
            c.ip.to_string(),
            port(c.port, c.proto),
            detail,
        ]);
    }
    for c in &d.closed {
        out.push([
            "closed".into(),
            c.ip.to_string(),
            port(c.port, c.proto),
            c.service.clone().unwrap_or_default(),
        ]);
    }
    for c in &d.services_changed {
        out.push([
            "service-changed".into(),
            c.ip.to_string(),
            port(c.port, c.proto),
            format!(
                "{} -> {}",
                c.before.as_deref().unwrap_or("?"),
                c.after.as_deref().unwrap_or("?")
            ),
        ]);
    }
    let fport = |f: &FindingChange| f.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    for f in &d.findings_new {
        out.push([
            "finding-new".into(),
            f.ip.to_string(),
            fport(f),
            format!("{} {} ({})", f.severity, f.check, f.id),
        ]);
    }
    for f in &d.findings_resolved {
        out.push([
            "finding-resolved".into(),
            f.ip.to_string(),
            fport(f),
            format!("{} {} ({})", f.severity, f.check, f.id),
        ]);
    }
    for e in &d.exceptions_expired {
        out.push([
            "exception-expired".into(),
            e.target.clone(),
            "-".into(),
            format!("{} expired on {}", e.id, e.expires),
        ]);
    }
    out
}
