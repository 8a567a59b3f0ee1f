//! Policy layer: results per asset (测评对象). A 等保 测评 gives its result
//! per object as well as per requirement; the same view serves the other
//! frameworks. Each audited host (and each declared host that did not
//! answer) gets one status per requirement of each reported profile that
//! applies to it, with the findings that decided it. Decided here, from the
//! same coverage facts as the requirement verdicts; the report only
//! formats it.
//!
//! Findings about a group rather than a host (an allowance, the audit
//! calendar) are recorded on the group's lowest audited address, so they
//! decide that host's cells.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::eval::HostCtx;
use super::evidence::ScopeTable;
use crate::model::{
    AssetCell, AssetRow, AssetStatus, EvidenceLevel, Finding, FindingStatus, ProfileAssets,
    ProfileVerdict,
};
use crate::rules::profiles::{Assessment, Profile, Profiles, Requirement};

/// The per-asset results of every reported profile.
pub(super) fn asset_results(
    profiles: &Profiles,
    verdicts: &[ProfileVerdict],
    table: &ScopeTable,
    ctxs: &[HostCtx],
    findings: &[Finding],
    history: bool,
) -> Vec<ProfileAssets> {
    let mut by_host: BTreeMap<IpAddr, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_host.entry(f.ip).or_default().push(f);
    }
    let none = Vec::new();
    let mut out = Vec::new();
    for v in verdicts {
        let Some(p) = profiles.get(&v.profile) else {
            continue;
        };
        let reqs: Vec<&Requirement> = v
            .requirements
            .iter()
            .filter_map(|rv| p.requirements.iter().find(|r| r.id == rv.id))
            .collect();
        let assets = ctxs
            .iter()
            .filter(|c| c.profiles.contains(&p.id.as_str()) && (c.in_scope() || declared(c)))
            .map(|c| {
                let fs = by_host.get(&c.ip).unwrap_or(&none);
                AssetRow {
                    ip: c.ip,
                    group: c.group_name(),
                    cells: reqs
                        .iter()
                        .map(|r| cell(p, r, c, fs, table, history))
                        .collect(),
                }
            })
            .collect();
        out.push(ProfileAssets {
            profile: p.id.clone(),
            assets,
        });
    }
    out
}

/// A host a group names by its single address: its silence is a gap.
fn declared(c: &HostCtx) -> bool {
    c.groups
        .iter()
        .any(|g| g.ranges.iter().any(|r| r.size() == 1 && r.contains(c.ip)))
}

fn at(status: AssetStatus, r: &Requirement, reason: Option<String>) -> AssetCell {
    AssetCell {
        requirement: r.id.clone(),
        status,
        findings: Vec::new(),
        reason,
    }
}

/// The status of requirement `r` of `p` on host `c`.
fn cell(
    p: &Profile,
    r: &Requirement,
    c: &HostCtx,
    fs: &[&Finding],
    table: &ScopeTable,
    history: bool,
) -> AssetCell {
    let refs = match &r.assessment {
        Assessment::NotAssessed { reason } => {
            return at(AssetStatus::NotAssessed, r, Some(reason.clone()));
        }
        Assessment::Checks(refs) => refs,
    };
    if r.level
        .as_ref()
        .is_some_and(|l| !c.profiles.contains(&l.as_str()))
    {
        let why = format!("a requirement of {} only", r.level.as_deref().unwrap_or(""));
        return at(AssetStatus::NotApplicable, r, Some(why));
    }
    if !c.in_scope() {
        let why = "the host did not answer: every probe was filtered or never sent";
        return at(AssetStatus::NotAssessed, r, Some(why.into()));
    }
    let key = p.control_ref(r);
    let mapped: Vec<&&Finding> = fs.iter().filter(|f| f.controls.contains(&key)).collect();
    let failing: Vec<&&Finding> = mapped
        .iter()
        .copied()
        .filter(|f| f.status.is_failing())
        .collect();
    let refs: Vec<_> = refs.iter().filter(|x| c.satisfies(&x.when, None)).collect();
    if refs.is_empty() && failing.is_empty() {
        let why = "its checks concern only hosts of another tag or vantage";
        return at(AssetStatus::NotApplicable, r, Some(why.into()));
    }
    let (mut ran, mut gaps, mut nothing) = (Vec::new(), Vec::new(), Vec::new());
    for x in &refs {
        match c.ran(x.check, history) {
            Ok(()) => ran.push(x.check.as_str()),
            Err(e) if e.nothing_to_judge => nothing.push(e.text),
            Err(e) => gaps.push(format!("{} ({})", x.check, e.text)),
        }
    }
    if !failing.is_empty() {
        let fired: Vec<&str> = failing.iter().map(|f| f.check.as_str()).collect();
        let clean = ran.iter().any(|k| !fired.contains(k));
        return AssetCell {
            findings: failing.iter().map(|f| f.id.clone()).collect(),
            ..at(
                if clean {
                    AssetStatus::PartlyMet
                } else {
                    AssetStatus::NotMet
                },
                r,
                None,
            )
        };
    }
    let waived: Vec<String> = mapped
        .iter()
        .filter(|f| f.status == FindingStatus::Waived)
        .map(|f| f.id.clone())
        .collect();
    if !waived.is_empty() {
        return AssetCell {
            findings: waived,
            ..at(AssetStatus::Accepted, r, None)
        };
    }
    if ran.is_empty() {
        return match gaps.is_empty() {
            true => at(AssetStatus::NotApplicable, r, nothing.first().cloned()),
            false => at(AssetStatus::NotAssessed, r, Some(gaps.join("; "))),
        };
    }
    if let Some(short) = scope_gap(p, c, table, &refs) {
        gaps.push(short);
    }
    if !gaps.is_empty() {
        return at(AssetStatus::Incomplete, r, Some(gaps.join("; ")));
    }
    if r.evidence == EvidenceLevel::Partial {
        let why =
            "partial evidence: a scan can show this requirement failing, never that it is met";
        return at(AssetStatus::Incomplete, r, Some(why.into()));
    }
    at(AssetStatus::Met, r, None)
}

/// The profile's port scope not covered on this host, for requirements
/// whose checks look at ports.
fn scope_gap(
    p: &Profile,
    c: &HostCtx,
    table: &ScopeTable,
    refs: &[&crate::rules::profiles::CheckRef],
) -> Option<String> {
    if refs.iter().all(|x| super::verdict::policy_only(x.check)) {
        return None;
    }
    let &(_, i) = c.scopes.iter().find(|(id, _)| *id == p.id)?;
    let s = &table.scopes[i];
    let (t, u) = c.ev.hits(i);
    (t < s.tcp.len() || u < s.udp.len()).then(|| {
        format!(
            "scanned {t} of {} TCP and {u} of {} UDP ports of the profile's scope ({}) on this host",
            s.tcp.len(),
            s.udp.len(),
            s.text
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::model::{AssetStatus, Observation, Proto, Reason, Severity};
    use crate::policy::evidence::{EvalContext, UdpEvidence};
    use crate::policy::{Policy, Profiles, StaticCatalogue, evaluate_in};

    const POLICY: &str = r#"
[[group]]
name = "web"
targets = ["198.18.0.1", "198.18.0.2"]
profiles = ["mlps2-level3"]
port_scope = { tcp = "443,8080", udp = "161", justification = "the firewall passes these only" }

[[group.allow]]
port = 443
justification = "web"
approver = "ciso"
review_by = 2027-01-31
"#;

    fn obs(ip: &str, port: u16, proto: Proto, reason: Reason) -> Observation {
        let mut o = Observation::new(ip.parse().unwrap(), port, proto, reason, Some(1.0));
        o.time = "2026-11-24T08:00:00Z".parse().unwrap();
        o
    }

    #[test]
    fn each_host_gets_its_own_status_per_requirement() {
        let profiles = Profiles::embedded().unwrap();
        let policy = Policy::parse(POLICY, "p.toml", &profiles).unwrap();
        let cat = StaticCatalogue::new()
            .with(443, Proto::Tcp, "https", Severity::Low, &[])
            .with(8080, Proto::Tcp, "http-proxy", Severity::Low, &[]);
        let mut o = Vec::new();
        for ip in ["198.18.0.1", "198.18.0.2"] {
            o.push(obs(ip, 443, Proto::Tcp, Reason::SynAck));
            o.push(obs(ip, 161, Proto::Udp, Reason::PortUnreach));
        }
        // .1 has an unallowed port open; .2 refuses it.
        o.push(obs("198.18.0.1", 8080, Proto::Tcp, Reason::SynAck));
        o.push(obs("198.18.0.2", 8080, Proto::Tcp, Reason::ConnRefused));
        let e = evaluate_in(
            &policy,
            &profiles,
            &cat,
            &o,
            &EvalContext {
                udp: UdpEvidence {
                    payload_ports: vec![161],
                    monlist: true,
                },
                ..EvalContext::bare("2026-11-24T12:00:00Z".parse().unwrap())
            },
        );
        let mlps = e
            .assets
            .iter()
            .find(|a| a.profile == "mlps2-level3")
            .unwrap();
        let cell = |ip: &str, id: &str| {
            let row = mlps.assets.iter().find(|a| a.ip.to_string() == ip).unwrap();
            let c = row.cells.iter().find(|c| c.requirement == id).unwrap();
            (c.status, c.findings.len(), c.reason.clone())
        };
        let na = e
            .findings
            .iter()
            .find(|f| f.check == "not-allowed")
            .unwrap();
        // 8.1.4.4 b): not-allowed fired, high-risk-exposed and the amplifier
        // check ran clean: a deficiency in part.
        assert_eq!(
            cell("198.18.0.1", "8.1.4.4 b)"),
            (AssetStatus::PartlyMet, 1, None)
        );
        assert!(na.controls.contains(&"mlps2-level3:8.1.4.4 b)".to_string()));
        // 8.1.3.2 a): its only check that could run fired.
        assert_eq!(cell("198.18.0.1", "8.1.3.2 a)").0, AssetStatus::NotMet);
        // The other host: every check ran over its scope, none fired.
        assert_eq!(
            cell("198.18.0.2", "8.1.4.4 b)"),
            (AssetStatus::Met, 0, None)
        );
        // Partial evidence is never 符合; nor is a scan-blind requirement.
        assert_eq!(cell("198.18.0.2", "8.1.4.1 c)").0, AssetStatus::Incomplete);
        assert_eq!(cell("198.18.0.2", "8.1.5.4").0, AssetStatus::NotAssessed);
        // Internet-only mapping on an internal host: not applicable.
        assert_eq!(
            cell("198.18.0.2", "8.1.4.4 c)").0,
            AssetStatus::NotApplicable
        );
    }
}
