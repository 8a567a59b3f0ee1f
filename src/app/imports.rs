//! The scope of an import audit, and its signed bundles: the scope is what
//! the files recorded (addresses as the fewest CIDRs, the (port, proto)
//! pairs probed), or, for bundles, what their scans were asked to cover.
//! Each `--from-jsonl` file that is a bundle is checked against the policy's `[[scanner]]` keys before it is
//! read, the bundles must make whole scans, and the audit's scope is what
//! the bundles' scans were asked to cover (so a merged audit and a direct
//! audit of the same targets and ports share one scope in the history).

use anyhow::Result;

use super::{AuditRequest, Collected, Scope};
use crate::import::Source;
use crate::import::bundle::{self, Bundle, Trusted};
use crate::model::{AuditVantage, Observation, PortState, Proto};
use crate::policy::Policy;
use crate::policy::{Segments, VantageScan};

/// The addresses of imported observations as the fewest CIDRs that cover
/// exactly them.
pub(super) fn imported_targets(observations: &[Observation]) -> Vec<String> {
    let nets: Vec<ipnet::IpNet> = observations
        .iter()
        .map(|o| ipnet::IpNet::from(o.ip))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    ipnet::IpNet::aggregate(&nets)
        .iter()
        .map(|n| match n {
            ipnet::IpNet::V4(v) if v.prefix_len() == 32 => v.addr().to_string(),
            ipnet::IpNet::V6(v) if v.prefix_len() == 128 => v.addr().to_string(),
            n => n.to_string(),
        })
        .collect()
}

/// The (port, proto) pairs of imported observations as a port spec:
/// `22,80,443`, runs as ranges, UDP after `U:` (`22,80,U:53,161`).
pub(super) fn imported_ports(observations: &[Observation]) -> String {
    let spec = |proto: Proto| -> String {
        let ports: std::collections::BTreeSet<u16> = observations
            .iter()
            .filter(|o| o.proto == proto)
            .map(|o| o.port)
            .collect();
        let mut runs: Vec<(u16, u16)> = Vec::new();
        for p in ports {
            match runs.last_mut() {
                Some((_, end)) if u32::from(*end) + 1 == u32::from(p) => *end = p,
                _ => runs.push((p, p)),
            }
        }
        runs.iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let (tcp, udp) = (spec(Proto::Tcp), spec(Proto::Udp));
    match (tcp.is_empty(), udp.is_empty()) {
        (_, true) => tcp,
        (true, false) => format!("U:{udp}"),
        (false, false) => format!("{tcp},U:{udp}"),
    }
}

/// The policy's scanners as the bundle checker takes them.
pub(super) fn trusted(policy: &Policy) -> Vec<Trusted> {
    policy
        .scanners
        .iter()
        .map(|s| Trusted {
            name: s.name.clone(),
            vantage: s.vantage.clone(),
            key: s.key,
        })
        .collect()
}

/// Checks every JSONL import that is a bundle (and, with trusted scanners,
/// refuses one that is not). Empty when no file is a bundle.
pub(super) fn check(req: &AuditRequest, trusted: &[Trusted]) -> Result<Vec<Bundle>> {
    let mut out = Vec::new();
    for s in &req.import {
        if let Source::Jsonl(path) = s
            && let Some(b) = bundle::check_file(path, trusted, req.allow_partial_import)?
        {
            out.push(b);
        }
    }
    bundle::check_set(&out)?;
    Ok(out)
}

/// The vantages the bundles were scanned from, each once (by name, in
/// order), with every source address and interface they recorded.
pub fn vantages(bundles: &[Bundle]) -> Vec<AuditVantage> {
    crate::model::merge_by_name(bundles.iter().map(|b| &b.facts.vantage))
}

/// With verified bundles of several vantages: what each vantage probed
/// and saw open, so the policy judges each host from the vantages that
/// scanned it (its internet checks from a proven internet vantage only;
/// the segmentation test of a host of `segments` from the vantages its
/// group names, whose probes of it are kept).
/// The import merged the bundles, the newest answer winning; here each is
/// read again, its bytes checked against the hash the import took, and an
/// open answer from any vantage wins over a closed or silent one from
/// another (a port open from somewhere is open).
pub(super) fn by_vantage(
    bundles: &[Bundle],
    req: &AuditRequest,
    segments: &Segments,
    collected: &mut Collected,
) -> Result<()> {
    let names = vantages(bundles);
    if names.len() < 2 || bundles.iter().any(|b| b.facts.scanner.is_none()) {
        return Ok(());
    }
    let mut scans: Vec<VantageScan> = names
        .into_iter()
        .map(|v| VantageScan {
            vantage: AuditVantage {
                lab: req.lab_vantage,
                ..v
            },
            ..VantageScan::default()
        })
        .collect();
    let opts = crate::import::LoadOptions {
        allow_partial: req.allow_partial_import,
    };
    for b in bundles {
        let read = crate::import::load(&[Source::Jsonl(b.path.clone())], opts)?;
        let hashed = req
            .import
            .iter()
            .position(|s| s.path() == b.path.as_path())
            .and_then(|i| collected.inputs.get(i))
            .map(|f| f.sha256.as_str());
        if read.files.first().map(|f| f.sha256.as_str()) != hashed {
            anyhow::bail!(
                "{}: changed while the audit read it: import it again once nothing writes it",
                b.path.display()
            );
        }
        let Some(scan) = scans
            .iter_mut()
            .find(|s| s.vantage.name == b.facts.vantage.name)
        else {
            continue;
        };
        for o in read.observations {
            scan.record(&o, segments);
            if o.state != PortState::Open {
                continue;
            }
            let merged = &mut collected.observations;
            if let Ok(i) =
                merged.binary_search_by_key(&(o.ip, o.port, o.proto), |m| (m.ip, m.port, m.proto))
                && merged[i].state != PortState::Open
            {
                let was = std::mem::replace(&mut merged[i], o);
                recount_as_open(&mut collected.summary, &was);
            }
        }
    }
    collected.scans = scans;
    Ok(())
}

/// The merged counts once `was` gave way to an open answer of another
/// vantage.
fn recount_as_open(s: &mut crate::scan::ScanSummary, was: &Observation) {
    match was.state {
        PortState::Open => return,
        PortState::Closed => s.closed = s.closed.saturating_sub(1),
        PortState::Filtered => s.filtered = s.filtered.saturating_sub(1),
        PortState::OpenFiltered => s.open_filtered = s.open_filtered.saturating_sub(1),
    }
    s.open += 1;
    if was.reason == crate::model::Reason::LocalError {
        s.local_errors = s.local_errors.saturating_sub(1);
    }
}

/// The scope the bundles cover, each bundle's facts on its input file, and
/// the bundles and their vantages in the run's recorded source.
pub(super) fn apply(
    bundles: &[Bundle],
    req: &AuditRequest,
    scope: &mut Scope,
    collected: &mut Collected,
) {
    if bundles.is_empty() {
        return;
    }
    let merged = bundle::merged_scope(bundles);
    scope.targets = merged.targets;
    scope.excludes = merged.excludes;
    scope.ports = merged.ports;
    for (i, s) in req.import.iter().enumerate() {
        if let Some(b) = bundles.iter().find(|b| b.path.as_path() == s.path())
            && let Some(p) = collected.inputs.get_mut(i).map(|f| &mut f.provenance)
        {
            p.scanner = Some("portwarden".into());
            p.scanner_version = Some(b.facts.version.clone());
            p.started = Some(b.facts.started);
            p.finished = Some(b.facts.finished);
            p.bundle = Some(b.facts.clone());
        }
    }
    let facts: Vec<&bundle::BundleFacts> = bundles.iter().map(|b| &b.facts).collect();
    collected.source["bundles"] = serde_json::json!(facts);
    let vantages = vantages(bundles);
    // One vantage, every bundle verified against a declared scanner: the
    // audit is judged from it (an internet requirement from internet
    // bundles only).
    if let [one] = vantages.as_slice()
        && bundles.iter().all(|b| b.facts.scanner.is_some())
    {
        collected.vantage = Some(one.clone());
    }
    collected.source["vantages"] = serde_json::json!(vantages);
}
