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

pub(super) type Key = (IpAddr, u16, Proto);

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

pub(super) fn finding_change(f: &Finding) -> FindingChange {
    FindingChange {
        id: f.id.clone(),
        check: f.check.clone(),
        severity: f.severity,
        ip: f.ip,
        port: f.port,
        message: f.message.clone(),
    }
}

/// A run's open ports in key order, with their service names.
pub(super) type OpenPort = (Key, Option<String>);

/// The ports and findings compared, each side read one item at a time in
/// key order (open ports by address, port, protocol; failing findings by
/// id, one per id).
pub(super) struct Sides<'a, E> {
    pub ports: [&'a mut dyn FnMut() -> Result<Option<OpenPort>, E>; 2],
    pub findings: [&'a mut dyn FnMut() -> Result<Option<FindingChange>, E>; 2],
}

/// What changed in the ports: walks both sides together, holding one port
/// of each.
#[allow(clippy::type_complexity)]
fn merge_ports<E>(
    [a, b]: [&mut dyn FnMut() -> Result<Option<OpenPort>, E>; 2],
) -> Result<(Vec<PortChange>, Vec<PortChange>, Vec<ServiceChange>), E> {
    let change = |k: &Key, service: &Option<String>| PortChange {
        ip: k.0,
        port: k.1,
        proto: k.2,
        service: service.clone(),
        approval: None,
    };
    let (mut opened, mut closed, mut services) = (Vec::new(), Vec::new(), Vec::new());
    let (mut x, mut y) = (a()?, b()?);
    loop {
        match (&x, &y) {
            (None, None) => break,
            (Some((ka, sa)), Some((kb, _))) if ka < kb => {
                closed.push(change(ka, sa));
                x = a()?;
            }
            (Some((ka, sa)), None) => {
                closed.push(change(ka, sa));
                x = a()?;
            }
            (Some((ka, sa)), Some((kb, sb))) if ka == kb => {
                if sa != sb {
                    services.push(ServiceChange {
                        ip: kb.0,
                        port: kb.1,
                        proto: kb.2,
                        before: sa.clone(),
                        after: sb.clone(),
                    });
                }
                x = a()?;
                y = b()?;
            }
            (_, Some((kb, sb))) => {
                opened.push(change(kb, sb));
                y = b()?;
            }
        }
    }
    Ok((opened, closed, services))
}

/// The failing findings new in `b` and resolved since `a`.
#[allow(clippy::type_complexity)]
fn merge_findings<E>(
    [a, b]: [&mut dyn FnMut() -> Result<Option<FindingChange>, E>; 2],
) -> Result<(Vec<FindingChange>, Vec<FindingChange>), E> {
    let (mut new, mut resolved) = (Vec::new(), Vec::new());
    let (mut x, mut y) = (a()?, b()?);
    loop {
        match (x.take(), y.take()) {
            (None, None) => break,
            (Some(fa), Some(fb)) if fa.id == fb.id => {
                (x, y) = (a()?, b()?);
            }
            (Some(fa), fb) if fb.as_ref().is_none_or(|fb| fa.id < fb.id) => {
                resolved.push(fa);
                (x, y) = (a()?, fb);
            }
            (fa, Some(fb)) => {
                new.push(fb);
                (x, y) = (fa, b()?);
            }
            (Some(_), None) => unreachable!("handled above"),
        }
    }
    Ok((new, resolved))
}

/// The drift between run `a` (`from`) and run `b` (`to`) from their
/// headers and their sides, approval not judged yet.
pub(super) fn compare<E>(
    from: (&NewRun, Option<i64>),
    to: (&NewRun, Option<i64>),
    sides: Sides<'_, E>,
) -> Result<Drift, E> {
    let (a, b) = (from.0, to.0);
    let (opened, closed, services_changed) = merge_ports(sides.ports)?;
    let (findings_new, findings_resolved) = merge_findings(sides.findings)?;
    let (da, db): (NaiveDate, NaiveDate) = (a.started.date_naive(), b.started.date_naive());
    let mut exceptions_expired: Vec<ExceptionNote> = Vec::new();
    for e in a.exceptions.iter().chain(&b.exceptions) {
        // Valid on the first run's day, past its last day on the second's.
        if e.expires >= da && e.expires < db && !exceptions_expired.contains(e) {
            exceptions_expired.push(e.clone());
        }
    }
    exceptions_expired.sort_by(|x, y| (x.expires, &x.id).cmp(&(y.expires, &y.id)));
    Ok(Drift {
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
    })
}

/// The open ports of a run held in memory, in key order.
pub(super) fn open_in_memory(
    r: &NewRun,
) -> std::collections::btree_map::IntoIter<Key, Option<String>> {
    open_ports(&r.observations).into_iter()
}

/// The failing findings of a run held in memory, by id (the last of an id
/// wins).
pub(super) fn failing_in_memory(r: &NewRun) -> impl Iterator<Item = FindingChange> + '_ {
    let failing: BTreeMap<&str, &Finding> = r
        .findings
        .iter()
        .filter(|f| f.status.is_failing())
        .map(|f| (f.id.as_str(), f))
        .collect();
    failing.into_values().map(finding_change)
}

/// Compares two runs. `from_id`/`to_id` name them (`None`: not recorded).
pub fn drift(from: (&NewRun, Option<i64>), to: (&NewRun, Option<i64>)) -> Drift {
    let (mut pa, mut pb) = (open_in_memory(from.0), open_in_memory(to.0));
    let (mut fa, mut fb) = (failing_in_memory(from.0), failing_in_memory(to.0));
    let sides = Sides::<std::convert::Infallible> {
        ports: [&mut || Ok(pa.next()), &mut || Ok(pb.next())],
        findings: [&mut || Ok(fa.next()), &mut || Ok(fb.next())],
    };
    let Ok(mut d) = compare(from, to, sides);
    judge_approval(&mut d, &[to.0]);
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
    approve(d, &failing, &waived);
}

/// Labels the opened ports from the `unapproved-change` findings' ports.
pub(super) fn approve(d: &mut Drift, failing: &BTreeSet<Key>, waived: &BTreeSet<Key>) {
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
