use super::*;

/// The policy entry a policy fix edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum PolicyRef {
    None,
    /// (group index, allow-rule index)
    Allow(usize, usize),
    Exception(usize),
    Group(usize),
}

/// What findings are grouped by: equal keys get one fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct GroupKey {
    key: String,
    port: Option<u16>,
    proto: Option<&'static str>,
    service: Option<String>,
    ipv6: bool,
    sources: Vec<IpNet>,
    preferred: Vec<String>,
    entry: PolicyRef,
}

/// Computes the fixes for the failing findings: one [`FixGroup`] per
/// (remediation key, port/proto, service, address family, admin sources,
/// preferred platforms, policy entry), listing its hosts and findings.
/// Waived findings get no fix; keys the catalogue does not know are left
/// out. Sorted by severity (worst first), then key and port.
pub fn fix_groups<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    policy: &Policy,
    catalog: &RemediationCatalog,
    ports: &Catalogue,
    lang: Lang,
) -> Vec<FixGroup> {
    let findings: Vec<&Finding> = findings
        .into_iter()
        .filter(|f| f.status.is_failing() && catalog.fix(&f.remediation).is_some())
        .collect();
    // One finding, one fix: where a host:port is to be closed, a
    // restrict-source fix for it would contradict that. Closing is the
    // stronger fix and takes the finding; its text says so.
    let closed: HashSet<(IpAddr, Option<u16>, Option<Proto>)> = findings
        .iter()
        .filter(|f| f.remediation == CLOSE && f.port.is_some())
        .map(|f| (f.ip, f.port, f.proto))
        .collect();
    let mut merged: std::collections::BTreeSet<GroupKey> = Default::default();
    let mut groups: BTreeMap<GroupKey, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        let mut remediation = f.remediation.clone();
        let absorbed = remediation == RESTRICT && closed.contains(&(f.ip, f.port, f.proto));
        if absorbed {
            remediation = CLOSE.to_owned();
        }
        let ipv6 = f.ip.is_ipv6();
        let host_groups = match &f.group {
            Some(name) => policy.groups.iter().filter(|g| &g.name == name).collect(),
            None => policy.groups_of(f.ip),
        };
        let mut sources: Vec<IpNet> = host_groups
            .iter()
            .flat_map(|g| g.admin_sources.iter().copied())
            .filter(|n| matches!(n, IpNet::V6(_)) == ipv6)
            .collect();
        sources.sort();
        sources.dedup();
        let mut preferred: Vec<String> = Vec::new();
        for g in &host_groups {
            for want in &g.platforms {
                for p in catalog.platforms() {
                    if platform_matches(&p.id, want) && !preferred.contains(&p.id) {
                        preferred.push(p.id.clone());
                    }
                }
            }
        }
        let key = GroupKey {
            key: remediation,
            port: f.port,
            proto: f.proto.map(Proto::as_str),
            service: f.service.as_deref().and_then(safe_name).map(str::to_owned),
            ipv6,
            sources,
            preferred,
            entry: policy_ref(f, policy),
        };
        if absorbed {
            merged.insert(key.clone());
        }
        groups.entry(key).or_default().push(f);
    }

    let mut out: Vec<FixGroup> = groups
        .into_iter()
        .map(|(gk, fs)| {
            let absorbed = merged.contains(&gk);
            build_group(&gk, &fs, absorbed, policy, catalog, ports, lang)
        })
        .collect();
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.port.cmp(&b.port))
            .then_with(|| a.hosts.cmp(&b.hosts))
    });
    out
}

/// The restrict-source key, and the close-port key that wins over it.
const RESTRICT: &str = "restrict-source";
const CLOSE: &str = "close-port";

/// One group's fix, rendered on every platform. `absorbed`: the group
/// also takes restrict-source findings of the ports it closes.
fn build_group(
    gk: &GroupKey,
    fs: &[&Finding],
    absorbed: bool,
    policy: &Policy,
    catalog: &RemediationCatalog,
    ports: &Catalogue,
    lang: Lang,
) -> FixGroup {
    let mut hosts: Vec<IpAddr> = fs.iter().map(|f| f.ip).collect();
    hosts.sort();
    hosts.dedup();
    let proto = fs[0].proto;
    let unit = match (gk.port, proto) {
        (Some(port), Some(proto)) => ports
            .entry(port, proto)
            .and_then(|e| e.systemd_unit.clone()),
        _ => None,
    };
    let edit = |hosts: &[IpAddr]| {
        let x = EditInput {
            key: &gk.key,
            first: fs[0],
            hosts,
            policy,
            catalog,
            lang,
        };
        policy_edit(&x, gk.entry)
    };
    let (policy_file, policy_line, policy_snippet) = edit(&hosts);
    let id: String = {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{gk:?}").as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    };
    let ctx = FixContext {
        id: id.clone(),
        key: gk.key.clone(),
        port: gk.port,
        proto,
        service: gk.service.clone(),
        unit,
        ipv6: gk.ipv6,
        sources: gk.sources.clone(),
        host_total: hosts.len(),
        hosts: hosts.clone(),
        policy_file,
        policy_line,
        policy_snippet,
        group: fs[0].group.clone(),
    };
    let fix = catalog.fix(&gk.key).expect("filtered above");
    let platforms = catalog.render(&ctx, &gk.preferred, lang);
    let mut finding_ids: Vec<String> = fs.iter().map(|f| f.id.clone()).collect();
    finding_ids.sort();
    finding_ids.dedup();
    FixGroup {
        id,
        key: gk.key.clone(),
        title: match lang {
            Lang::ZhCn => fix.title_zh.clone(),
            Lang::En => fix.title_en.clone(),
        },
        about: about(fix, fs, absorbed, catalog, lang),
        severity: fs
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Info),
        port: gk.port,
        proto,
        service: gk.service.clone(),
        page_platforms: if hosts.len() > PAGE_HOSTS {
            let shown = &hosts[..PAGE_HOSTS];
            let (policy_file, policy_line, policy_snippet) = edit(shown);
            let page = FixContext {
                hosts: shown.to_vec(),
                policy_file,
                policy_line,
                policy_snippet,
                ..ctx.clone()
            };
            catalog.render(&page, &gk.preferred, lang)
        } else {
            Vec::new()
        },
        hosts,
        finding_ids,
        preferred: platforms
            .iter()
            .take_while(|p| gk.preferred.contains(&p.platform))
            .count(),
        platforms,
    }
}

/// The fix's about text for its hosts: hosts in no asset group have no
/// allow list (they are never told "not allowed"); a mixed fix says how
/// many are in none. `absorbed`: it also settles restrict-source findings.
fn about(
    fix: &Fix,
    fs: &[&Finding],
    absorbed: bool,
    catalog: &RemediationCatalog,
    lang: Lang,
) -> String {
    let mut unmanaged: Vec<IpAddr> = fs
        .iter()
        .filter(|f| f.group.is_none())
        .map(|f| f.ip)
        .collect();
    unmanaged.sort();
    unmanaged.dedup();
    let all = unmanaged.len() == fs.iter().map(|f| f.ip).collect::<HashSet<_>>().len();
    let (about, about_unmanaged) = match lang {
        Lang::ZhCn => (&fix.about_zh, &fix.about_unmanaged_zh),
        Lang::En => (&fix.about_en, &fix.about_unmanaged_en),
    };
    let mut text = match about_unmanaged {
        Some(u) if all => u.clone(),
        _ => about.clone(),
    };
    if !all && !unmanaged.is_empty() && about_unmanaged.is_some() {
        text.push(' ');
        text.push_str(&catalog.policy_text(
            lang,
            "some_unmanaged",
            &[("n", &unmanaged.len().to_string())],
        ));
    }
    if absorbed {
        text.push(' ');
        text.push_str(&catalog.policy_text(lang, "absorbed", &[]));
    }
    text
}

/// The policy entry a finding's fix edits, for the keys that edit one.
pub(super) fn policy_ref(f: &Finding, policy: &Policy) -> PolicyRef {
    let group = || {
        f.group
            .as_ref()
            .and_then(|name| policy.groups.iter().position(|g| &g.name == name))
    };
    match f.remediation.as_str() {
        "document-justification" | "review-rule" | "fix-service-or-policy" => {
            // The allowance the evaluator matched (over every group of the
            // host), by its line: the report never matches rules again.
            let Some(line) = f.allowed_by.as_ref().map(|r| r.line) else {
                return PolicyRef::None;
            };
            policy
                .groups
                .iter()
                .enumerate()
                .find_map(|(gi, g)| {
                    g.allow
                        .iter()
                        .position(|a| a.line == line)
                        .map(|ai| PolicyRef::Allow(gi, ai))
                })
                .unwrap_or(PolicyRef::None)
        }
        "renew-or-remove-exception" => f
            .exception
            .as_ref()
            .and_then(|id| policy.exceptions.iter().position(|e| &e.id == id))
            .map_or(PolicyRef::None, PolicyRef::Exception),
        "reduce-exposure" => group().map_or(PolicyRef::None, PolicyRef::Group),
        _ => PolicyRef::None,
    }
}
