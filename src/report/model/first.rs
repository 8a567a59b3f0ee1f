//! Report layer: the first screen — one sentence of verdict for the
//! manager, the trend against the previous run, and the "fix first" list
//! for the engineer — and what each fix card says about itself (its asset
//! groups, the policy lines it comes from, the platform it opens on).
//! Everything here formats what the evaluator decided; nothing is judged
//! again.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{FixGroup, FrameworkReport, PortRow, ReportInput, Summary, Trend};
use crate::model::Finding;
use crate::policy::Vantage;
use crate::report::i18n::Labels;

/// Fix groups in the "fix first" list.
pub const FIX_FIRST: usize = 5;

/// Services whose hosts are Windows unless a group says otherwise: their
/// fix cards open on a Windows platform.
const WINDOWS_SERVICES: [&str; 6] = ["rdp", "smb", "winrm", "msrpc", "netbios-ssn", "mssql"];

/// The first screen (see the module).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirstScreen {
    /// One sentence: the worst exposure, then each framework's failing and
    /// unassessed requirements.
    pub verdict: String,
    /// `bad` (failing findings), `good` (none).
    pub tone: String,
    /// The trend in words, when the history has a previous run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
    /// The anchors of the fix groups to do first, in order.
    pub fix_first: Vec<String>,
}

/// What the policy says about one asset group, for the cards.
struct GroupFacts {
    internet: bool,
    line: usize,
    platforms: bool,
}

/// Findings by id and the policy's groups by name, built once.
pub(super) struct Index<'a> {
    findings: HashMap<&'a str, &'a Finding>,
    groups: HashMap<&'a str, GroupFacts>,
    policy_file: &'a str,
    has_groups: bool,
}

impl<'a> Index<'a> {
    pub(super) fn new(input: &'a ReportInput<'_>) -> Index<'a> {
        Index {
            findings: input
                .evaluation
                .findings
                .iter()
                .map(|f| (f.id.as_str(), f))
                .collect(),
            groups: input
                .policy
                .groups
                .iter()
                .map(|g| {
                    (
                        g.name.as_str(),
                        GroupFacts {
                            internet: g.vantage == Vantage::Internet,
                            line: g.line,
                            platforms: !g.platforms.is_empty(),
                        },
                    )
                })
                .collect(),
            policy_file: &input.policy.file,
            has_groups: !input.policy.groups.is_empty(),
        }
    }

    pub(super) fn finding(&self, id: &str) -> Option<&'a Finding> {
        self.findings.get(id).copied()
    }

    fn internet(&self, group: Option<&str>) -> bool {
        group
            .and_then(|g| self.groups.get(g))
            .is_some_and(|g| g.internet)
    }
}

/// Names each fix group in words, with its asset groups, exposure, policy
/// lines and the platforms it opens on.
pub(super) fn describe_fixes(
    groups: &mut [FixGroup],
    index: &Index<'_>,
    input: &ReportInput<'_>,
    labels: &Labels,
) {
    let no_group = labels.get("ui.no_group");
    for g in groups.iter_mut() {
        let names: BTreeSet<Option<&str>> = g
            .fix
            .finding_ids
            .iter()
            .filter_map(|id| index.finding(id))
            .map(|f| f.group.as_deref())
            .collect();
        g.internet = names.iter().any(|n| index.internet(*n));
        // Named groups first, "(no group)" last.
        g.groups = names
            .iter()
            .flatten()
            .map(|n| n.to_string())
            .chain(names.contains(&None).then(|| no_group.clone()))
            .collect();
        g.policy_lines = names
            .iter()
            .map(
                |n| match n.and_then(|name| index.groups.get(name).map(|f| (name, f))) {
                    Some((name, f)) => labels.fmt(
                        "first.policy_line",
                        &[
                            ("file", index.policy_file),
                            ("line", &f.line.to_string()),
                            ("group", name),
                        ],
                    ),
                    None if index.has_groups => {
                        labels.fmt("first.policy_no_group", &[("file", index.policy_file)])
                    }
                    None => labels.get("first.policy_none"),
                },
            )
            .collect();
        let page = g.fix.page_fixes();
        let group_platforms = names.iter().any(|n| {
            n.and_then(|n| index.groups.get(n))
                .is_some_and(|f| f.platforms)
        });
        let service = g.fix.service.as_deref().unwrap_or("");
        let windows = WINDOWS_SERVICES.contains(&service)
            || g.fix
                .port
                .zip(g.fix.proto)
                .and_then(|(p, proto)| input.catalogue.entry(p, proto))
                .is_some_and(|e| e.has_tag("windows"));
        let (inline, basis): (Vec<usize>, &str) = if g.fix.preferred > 0 && group_platforms {
            ((0..g.fix.preferred.min(page.len())).collect(), "group")
        } else if let Some(i) = page
            .iter()
            .position(|p| windows && p.platform.starts_with("windows"))
        {
            (vec![i], "service")
        } else {
            ((0..page.len().min(1)).collect(), "default")
        };
        g.inline = inline;
        g.platform_basis = labels.get(&format!("first.basis_{basis}"));
        g.name = fix_name(g, labels);
    }
}

/// "Close the port 3389/tcp (rdp) on 16 hosts in dmz".
fn fix_name(g: &FixGroup, labels: &Labels) -> String {
    let n = g.fix.hosts.len();
    let hosts = labels.fmt(
        if n == 1 {
            "ui.hosts_count_one"
        } else {
            "ui.hosts_count"
        },
        &[("n", &n.to_string())],
    );
    let groups = g.groups.join(&labels.get("first.and"));
    match (g.fix.port, g.fix.proto) {
        (Some(port), Some(proto)) => labels.fmt(
            "first.fix_name",
            &[
                ("title", &g.fix.title),
                ("port", &format!("{port}/{proto}")),
                ("service", g.fix.service.as_deref().unwrap_or("?")),
                ("hosts", &hosts),
                ("groups", &groups),
            ],
        ),
        _ => labels.fmt(
            "first.fix_name_hosts",
            &[
                ("title", &g.fix.title),
                ("hosts", &hosts),
                ("groups", &groups),
            ],
        ),
    }
}

/// The fix groups to do first: internet-facing first, then the most
/// severe, then the most hosts.
pub(super) fn fix_first(groups: &[FixGroup]) -> Vec<String> {
    let mut order: Vec<&FixGroup> = groups.iter().collect();
    order.sort_by(|a, b| {
        b.internet
            .cmp(&a.internet)
            .then(b.fix.severity.cmp(&a.fix.severity))
            .then(b.fix.hosts.len().cmp(&a.fix.hosts.len()))
    });
    order
        .into_iter()
        .take(FIX_FIRST)
        .map(|g| g.anchor.clone())
        .collect()
}

/// The verdict sentence and the trend.
pub(super) fn first_screen(
    input: &ReportInput<'_>,
    rows: &[PortRow],
    summary: &Summary,
    compliance: &[FrameworkReport],
    fixes: &[FixGroup],
    index: &Index<'_>,
    labels: &Labels,
) -> FirstScreen {
    let worst = rows.iter().filter(|r| r.failing).map(|r| r.severity).max();
    let exposure = match worst {
        Some(sev) => {
            let at: Vec<&PortRow> = rows
                .iter()
                .filter(|r| r.failing && r.severity == sev)
                .collect();
            let hosts: BTreeSet<IpAddr> = at.iter().map(|r| r.ip).collect();
            let internet: BTreeSet<IpAddr> = at
                .iter()
                .filter(|r| index.internet(r.group.as_deref()))
                .map(|r| r.ip)
                .collect();
            let key = match (internet.len(), hosts.len()) {
                (0, _) => "first.where_hosts",
                (i, h) if i == h => "first.where_internet",
                _ => "first.where_some_internet",
            };
            let place = plural(
                labels,
                key,
                hosts.len(),
                &[
                    ("n", &hosts.len().to_string()),
                    ("internet", &internet.len().to_string()),
                ],
            );
            plural(
                labels,
                "first.exposure",
                at.len(),
                &[
                    ("n", &at.len().to_string()),
                    ("severity", &labels.get(&format!("first.sev_{sev}"))),
                    ("where", &place),
                ],
            )
        }
        None => labels.fmt(
            "first.no_exposure",
            &[
                ("open", &summary.open_ports.to_string()),
                ("hosts", &summary.hosts_with_open_ports.to_string()),
            ],
        ),
    };
    let frameworks: Vec<String> = compliance
        .iter()
        .map(|f| framework_clause(f, labels))
        .collect();
    let mut verdict = exposure;
    if !frameworks.is_empty() {
        verdict.push_str(&labels.get("first.clause_sep"));
        verdict.push_str(&frameworks.join(&labels.get("first.clause_sep")));
    }
    verdict.push_str(&labels.get("first.end"));
    let trend_text = input.facts.trend.as_ref().map(|t| {
        labels.fmt(
            "first.trend",
            &[
                (
                    "run",
                    &t.previous_run.map(|r| r.to_string()).unwrap_or_default(),
                ),
                ("date", &t.previous_started.format("%Y-%m-%d").to_string()),
                ("new", &t.new.to_string()),
                ("resolved", &t.resolved.to_string()),
                ("still", &t.still_open.to_string()),
            ],
        )
    });
    FirstScreen {
        verdict,
        tone: if worst.is_some() { "bad" } else { "good" }.into(),
        trend_text,
        trend: input.facts.trend.clone(),
        fix_first: fix_first(fixes),
    }
}

/// "PCI DSS v4.0: 3 requirements fail, 17 could not be assessed by this
/// scan", from the evaluator's counts, which are over confirmed mappings
/// only (an unconfirmed one is marked on its row and counted apart).
fn framework_clause(f: &FrameworkReport, labels: &Labels) -> String {
    let (fail, na, partial, accepted) = (f.failed, f.not_assessed, f.partial, f.accepted);
    let mut parts = vec![plural(
        labels,
        "first.req_fail",
        fail,
        &[("n", &fail.to_string())],
    )];
    if partial > 0 {
        parts.push(labels.fmt("first.req_partial", &[("n", &partial.to_string())]));
    }
    if accepted > 0 {
        parts.push(labels.fmt("first.req_accepted", &[("n", &accepted.to_string())]));
    }
    if na > 0 {
        parts.push(labels.fmt("first.req_not_assessed", &[("n", &na.to_string())]));
    }
    let unconfirmed = f.unconfirmed;
    if unconfirmed > 0 {
        parts.push(labels.fmt("first.req_unconfirmed", &[("n", &unconfirmed.to_string())]));
    }
    labels.fmt(
        "first.framework",
        &[
            ("name", &f.name),
            ("parts", &parts.join(&labels.get("first.list_sep"))),
        ],
    )
}

/// `key_zero` or `key_one` when `n` is 0 or 1 and the language has it,
/// else `key`.
pub(super) fn plural(labels: &Labels, key: &str, n: usize, args: &[(&str, &str)]) -> String {
    let form = match n {
        0 => format!("{key}_zero"),
        1 => format!("{key}_one"),
        _ => key.to_string(),
    };
    if labels.find(&form).is_some() {
        labels.fmt(&form, args)
    } else {
        labels.fmt(key, args)
    }
}
