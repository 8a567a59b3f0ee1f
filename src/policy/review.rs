//! Policy layer: the review of the rule base as a whole, not only of the
//! rules that matched an open port (PCI DSS 1.2.7, 等保 8.1.3.2 b): an
//! allowance nobody uses is a redundant rule, and an allowance without a
//! justification, an approver or a review date is undocumented whatever
//! the state of its port.
//!
//! An allowance belongs to a group, not a host: its findings are recorded on
//! the group's lowest audited address, and their messages name the group.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::config::{AllowRule, Group, Policy};
use super::eval::{HostCtx, controls, finding_id};
use crate::model::{
    Evidence, Finding, FindingStatus, Message, Observation, PortState, Proto, RuleRef,
};
use crate::rules::profiles::{CheckKind, Profiles};

type Latest<'o> = BTreeMap<(IpAddr, u16, Proto), &'o Observation>;

/// The observations of `ip` on the ports of `a`.
fn on_rule<'o, 'l>(
    latest: &'l Latest<'o>,
    ip: IpAddr,
    a: &AllowRule,
) -> impl Iterator<Item = &'o Observation> + 'l {
    let proto = a.proto;
    latest
        .range((ip, a.ports.lo, Proto::Tcp)..=(ip, a.ports.hi, Proto::Udp))
        .filter(move |((_, _, p), _)| *p == proto)
        .map(|(_, o)| *o)
}

/// `allowance-unused` and `allowance-incomplete` for every group with an
/// audited host.
pub(super) fn allowance_checks(
    policy: &Policy,
    profiles: &Profiles,
    ctxs: &[HostCtx],
    latest: &Latest,
    out: &mut Vec<Finding>,
) {
    for g in &policy.groups {
        let hosts: Vec<&HostCtx> = ctxs
            .iter()
            .filter(|c| c.in_scope() && c.groups.iter().any(|x| x.name == g.name))
            .collect();
        let Some(anchor) = hosts.iter().min_by_key(|c| c.ip) else {
            continue;
        };
        for a in &g.allow {
            if let Some(text) = incomplete(g, a, &policy.file) {
                out.push(in_file(
                    &policy.file,
                    rule_finding(
                        profiles,
                        anchor,
                        g,
                        a,
                        CheckKind::AllowanceIncomplete,
                        None,
                        text,
                    ),
                ));
            }
            let used = hosts
                .iter()
                .any(|c| on_rule(latest, c.ip, a).any(|o| o.state == PortState::Open));
            let probed: Vec<&Observation> = hosts
                .iter()
                .flat_map(|c| on_rule(latest, c.ip, a))
                .filter(|o| o.reason != crate::model::Reason::LocalError)
                .collect();
            if used || probed.is_empty() {
                continue;
            }
            let newest = probed.iter().max_by_key(|o| o.time).map(|o| Evidence {
                time: o.time,
                state: o.state,
                reason: o.reason,
            });
            let ports = format!("{}/{}", a.ports, a.proto);
            out.push(in_file(&policy.file, rule_finding(
                profiles,
                anchor,
                g,
                a,
                CheckKind::AllowanceUnused,
                newest,
                (
                format!(
                    "group '{}' allows {ports} ({}:{}) but no audited host of the group ({} probed) has it open: remove the redundant rule, or record why it stays",
                    g.name,
                    policy.file,
                    a.line,
                    hosts.len()
                ),
                Message::new("msg.allowance_unused")
                    .arg("group", &g.name)
                    .arg("port", &ports)
                    .arg("line", a.line)
                    .arg("hosts", hosts.len()),
                ),
            )));
        }
    }
}

/// The finding, its allowance named in the policy's file.
fn in_file(file: &str, mut f: Finding) -> Finding {
    if let Some(r) = &mut f.allowed_by {
        r.file = file.to_string();
    }
    f
}

/// What an allowance lacks, if anything.
fn incomplete(g: &Group, a: &AllowRule, file: &str) -> Option<(String, Message)> {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    // The fields missing, and a key per combination (j, a, r) so each
    // language can say it in its own words.
    let mut missing = Vec::new();
    let mut code = String::new();
    if blank(&a.justification) {
        missing.push("justification");
        code.push('j');
    }
    if blank(&a.approver) {
        missing.push("approver");
        code.push('a');
    }
    if a.review_by.is_none() {
        missing.push("review_by");
        code.push('r');
    }
    if missing.is_empty() {
        return None;
    }
    let ports = format!("{}/{}", a.ports, a.proto);
    let list = missing.join(", ");
    Some((
        format!(
            "group '{}' allows {ports} ({file}:{}) without {list}: every rule needs a business need, an approver and a review date",
            g.name, a.line
        ),
        Message::new(&format!("msg.allowance_incomplete.{code}"))
            .arg("group", &g.name)
            .arg("port", &ports)
            .arg("line", a.line),
    ))
}

fn rule_finding(
    profiles: &Profiles,
    anchor: &HostCtx,
    g: &Group,
    a: &AllowRule,
    check: CheckKind,
    evidence: Option<Evidence>,
    (message, msg): (String, Message),
) -> Finding {
    let p = profiles.check(check);
    Finding {
        id: finding_id(anchor.ip, Some(a.ports.lo), Some(a.proto), check),
        check: check.as_str().to_string(),
        severity: p.severity,
        ip: anchor.ip,
        port: Some(a.ports.lo),
        proto: Some(a.proto),
        service: a.service.clone(),
        group: Some(g.name.clone()),
        evidence,
        status: FindingStatus::Fail,
        exception: None,
        controls: controls(profiles, anchor, check, false, None),
        remediation: p.remediation.clone(),
        message,
        msg,
        allowed_by: Some(RuleRef {
            file: String::new(),
            line: a.line,
        }),
    }
}
