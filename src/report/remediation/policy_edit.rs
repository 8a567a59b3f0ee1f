use super::*;

/// What a policy edit is computed from, besides the entry.
pub(super) struct EditInput<'a> {
    pub key: &'a str,
    pub first: &'a Finding,
    pub hosts: &'a [IpAddr],
    pub policy: &'a Policy,
    pub catalog: &'a RemediationCatalog,
    pub lang: Lang,
}

/// The policy file, the entry's line and the TOML to add or edit; its
/// comments in the report's language (`fix_policy.*` labels).
pub(super) fn policy_edit(x: &EditInput<'_>, entry: PolicyRef) -> (String, Option<usize>, String) {
    let (key, first, hosts, policy) = (x.key, x.first, x.hosts, x.policy);
    let say = |k: &str, params: &[(&str, &str)]| x.catalog.policy_comment(x.lang, k, params);
    let date = x.catalog.policy_text(x.lang, "date_format", &[]);
    // Without a policy file the audit judged against the built-in baseline.
    let baseline = !policy.given;
    let file = if baseline {
        "policy.toml".to_owned()
    } else {
        policy.file.clone()
    };
    // Comment lines name the file as text on one line (a path may hold anything).
    let shown = comment_str(&file);
    let mut s = String::new();
    if baseline {
        s.push_str(&say("no_policy", &[]));
    }
    let port_line = |s: &mut String| {
        if let (Some(p), Some(proto)) = (first.port, first.proto) {
            s.push_str(&format!("port = {p}\nproto = \"{proto}\"\n"));
        }
    };
    let line = match entry {
        PolicyRef::Allow(gi, ai) => Some(allow_edit(&mut s, x, gi, ai, &shown, &date)),
        PolicyRef::Exception(ei) => {
            let e = &policy.exceptions[ei];
            s.push_str(&say(
                "exception_expired",
                &[
                    ("file", &shown),
                    ("line", &e.line.to_string()),
                    ("id", &toml_str(&e.id)),
                    ("date", &e.expires.to_string()),
                ],
            ));
            s.push_str(&format!(
                "[[exception]]\nid = {}\ntarget = {}\n",
                toml_str(&e.id),
                toml_str(&e.target_spec)
            ));
            if let Some(p) = e.ports {
                if p.lo == p.hi {
                    s.push_str(&format!("port = {}\n", p.lo));
                } else {
                    s.push_str(&format!("port = \"{p}\"\n"));
                }
                s.push_str(&format!("proto = \"{}\"\n", e.proto));
            }
            if let Some(c) = e.check {
                s.push_str(&format!("check = \"{}\"\n", c.as_str()));
            }
            s.push_str(&format!(
                "reason = {}\napprover = \"<APPROVER>\"\nticket = \"<TICKET>\"\nexpires = <NEW_EXPIRY_DATE>  # {date}\n",
                toml_str(&e.reason)
            ));
            Some(e.line)
        }
        PolicyRef::Group(gi) => {
            let g = &policy.groups[gi];
            s.push_str(&say(
                "group_cap",
                &[
                    ("file", &shown),
                    ("line", &g.line.to_string()),
                    ("group", &toml_str(&g.name)),
                    (
                        "max",
                        &g.max_open_ports.map_or("?".to_owned(), |m| m.to_string()),
                    ),
                ],
            ));
            s.push_str("max_open_ports = <NEW_CAP>\n");
            Some(g.line)
        }
        PolicyRef::None => {
            let targets = hosts
                .iter()
                .map(|h| format!("\"{h}\""))
                .collect::<Vec<_>>()
                .join(", ");
            match key {
                "add-host-to-policy" => {
                    let names: Vec<String> = policy
                        .groups
                        .iter()
                        .map(|g| {
                            x.catalog.policy_text(
                                x.lang,
                                "group_ref",
                                &[("group", &toml_str(&g.name)), ("line", &g.line.to_string())],
                            )
                        })
                        .collect();
                    if !names.is_empty() {
                        s.push_str(&say("add_to_group", &[("groups", &names.join(", "))]));
                    }
                    s.push_str(&format!(
                        "[[group]]\nname = \"<GROUP_NAME>\"\ntargets = [{targets}]\n"
                    ));
                }
                "approve-or-revert-change" => {
                    s.push_str(&say("record_change", &[]));
                    let specs: Vec<String> = match &first.group {
                        Some(g) => vec![toml_str(g)],
                        None => hosts.iter().map(|h| format!("\"{h}\"")).collect(),
                    };
                    for spec in specs {
                        s.push_str(&format!(
                            "[[change]]\nticket = \"<TICKET>\"\napprover = \"<APPROVER>\"\napproved = <APPROVAL_DATE>  # {date}\ntarget = {spec}\n"
                        ));
                        if let Some(p) = first.port {
                            s.push_str(&format!("opens = [{p}]\n"));
                        }
                        if let Some(proto) = first.proto {
                            s.push_str(&format!("proto = \"{proto}\"\n"));
                        }
                        s.push_str("description = \"<WHAT_CHANGED_AND_WHY>\"\n");
                    }
                }
                _ => {
                    s.push_str(&say("entry_not_found", &[]));
                    port_line(&mut s);
                }
            }
            None
        }
    };
    (file, line, s.trim_end().to_owned())
}

/// The `[[group.allow]]` entry to complete; returns its line.
fn allow_edit(
    s: &mut String,
    x: &EditInput<'_>,
    gi: usize,
    ai: usize,
    shown: &str,
    date: &str,
) -> usize {
    let (key, first) = (x.key, x.first);
    let g = &x.policy.groups[gi];
    let a = &g.allow[ai];
    let what = match key {
        "review-rule" => "what_review",
        "fix-service-or-policy" => "what_service",
        _ => "what_justify",
    };
    s.push_str(&x.catalog.policy_comment(
        x.lang,
        "allow_entry",
        &[
            ("file", shown),
            ("line", &a.line.to_string()),
            ("ports", &a.ports.to_string()),
            ("proto", a.proto.as_str()),
            ("group", &toml_str(&g.name)),
            ("what", &x.catalog.policy_text(x.lang, what, &[])),
        ],
    ));
    s.push_str("[[group.allow]]\n");
    if a.ports.lo == a.ports.hi {
        s.push_str(&format!("port = {}\n", a.ports.lo));
    } else {
        s.push_str(&format!("port = \"{}\"\n", a.ports));
    }
    s.push_str(&format!("proto = \"{}\"\n", a.proto));
    let service = if key == "fix-service-or-policy" {
        first.service.clone().or(a.service.clone())
    } else {
        a.service.clone()
    };
    if let Some(sv) = service {
        s.push_str(&format!("service = {}\n", toml_str(&sv)));
    }
    let field = |s: &mut String, name: &str, v: &Option<String>, ph: &str| match v {
        Some(v) if !v.trim().is_empty() => s.push_str(&format!("{name} = {}\n", toml_str(v))),
        _ => s.push_str(&format!("{name} = \"{ph}\"\n")),
    };
    field(
        s,
        "justification",
        &a.justification,
        "<WHY_THE_PORT_MUST_BE_OPEN>",
    );
    field(s, "approver", &a.approver, "<APPROVER>");
    field(s, "ticket", &a.ticket, "<TICKET>");
    match (key, a.review_by) {
        ("review-rule", _) | (_, None) => {
            s.push_str(&format!("review_by = <NEXT_REVIEW_DATE>  # {date}\n"))
        }
        (_, Some(d)) => s.push_str(&format!("review_by = {d}\n")),
    }
    a.line
}
