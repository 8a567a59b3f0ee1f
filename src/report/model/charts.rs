//! Report layer: the bounded data behind the summary charts, and the one
//! normalisation of scanners' service names to the catalogue's.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::{
    Charts, GroupSeverity, HEAT_HOSTS, HostHeat, PortRow, PortState, Proto, ReportInput,
    ServiceCount, TOP_SERVICES, display_safe, severity_rank,
};
use crate::rules::Catalogue;

/// Names a scanner's service name as the catalogue does, so charts, rows
/// and fix groups count one service once: nmap's `ms-wbt-server` on 3389
/// is `rdp`, `microsoft-ds` is `smb`, `mongod` is `mongodb`; a generic
/// name (`http`, `tcpwrapped`) or none is the port's catalogue service; a
/// name the catalogue does not know stays as it is (lower case).
pub fn canonical_service(
    catalogue: &Catalogue,
    port: u16,
    proto: Proto,
    raw: Option<&str>,
) -> String {
    const GENERIC: [&str; 6] = ["http", "ssl", "tls", "tcpwrapped", "unknown", "ssl/http"];
    let entry = catalogue.entry(port, proto);
    let raw = raw
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_ascii_lowercase);
    match (raw, entry) {
        (None, Some(e)) => e.service.clone(),
        (None, None) => format!("{port}/{proto}"),
        (Some(r), Some(e))
            if e.answers_to(&r)
                || GENERIC.contains(&r.as_str())
                || crate::identify::same_service(&e.service, &r) =>
        {
            e.service.clone()
        }
        (Some(r), _) => catalogue
            .by_service(&r)
            .first()
            .map(|e| e.service.clone())
            .unwrap_or(r),
    }
}

pub(super) fn build_charts(input: &ReportInput<'_>, rows: &[PortRow]) -> Charts {
    let mut groups: BTreeMap<Option<String>, GroupSeverity> = BTreeMap::new();
    let mut heat: HashMap<IpAddr, [usize; 5]> = HashMap::new();
    let mut failing_by_service: HashMap<String, usize> = HashMap::new();
    for r in rows {
        let h = heat.entry(r.ip).or_insert([0; 5]);
        for c in r.checks.iter().filter(|c| c.status.is_failing()) {
            h[severity_rank(c.severity) as usize] += 1;
        }
        // Ports only: host-level rows are counted as hosts elsewhere.
        let (Some(port), Some(proto)) = (r.port, r.proto) else {
            continue;
        };
        let g = groups
            .entry(r.group.clone())
            .or_insert_with(|| GroupSeverity {
                group: r.group.clone(),
                counts: [0; 5],
                rows: 0,
            });
        g.rows += 1;
        if r.failing {
            g.counts[severity_rank(r.severity) as usize] += 1;
            let name = canonical_service(input.catalogue, port, proto, r.service.as_deref());
            *failing_by_service.entry(name).or_default() += 1;
        }
    }
    let mut open_by_service: HashMap<String, usize> = HashMap::new();
    for o in input.observations {
        if o.state == PortState::Open {
            let raw = o.service.as_ref().map(|s| s.name.as_str());
            let name = canonical_service(input.catalogue, o.port, o.proto, raw);
            *open_by_service.entry(name).or_default() += 1;
        }
    }
    let mut services: Vec<ServiceCount> = open_by_service
        .into_iter()
        .map(|(service, open)| ServiceCount {
            failing: failing_by_service
                .get(service.as_str())
                .copied()
                .unwrap_or(0),
            service: display_safe(&service),
            open,
        })
        .collect();
    services.sort_by(|a, b| b.open.cmp(&a.open).then(a.service.cmp(&b.service)));
    services.truncate(TOP_SERVICES);
    // Most exposed: weighted by severity (a critical outweighs ten lows).
    let weight = |c: &[usize; 5]| -> u64 {
        c.iter()
            .enumerate()
            .map(|(i, n)| *n as u64 * 10u64.pow(i as u32))
            .sum()
    };
    let mut heat: Vec<HostHeat> = heat
        .into_iter()
        .filter(|(_, c)| c.iter().any(|n| *n > 0))
        .map(|(ip, counts)| HostHeat { ip, counts })
        .collect();
    heat.sort_by(|a, b| {
        weight(&b.counts)
            .cmp(&weight(&a.counts))
            .then(a.ip.cmp(&b.ip))
    });
    heat.truncate(HEAT_HOSTS);
    let mut groups: Vec<GroupSeverity> = groups.into_values().collect();
    groups.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.group.cmp(&b.group)));
    Charts {
        groups,
        services,
        heat,
    }
}
