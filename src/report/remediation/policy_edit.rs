use super::*;

/// The policy file, the entry's line and the TOML to add or edit.
pub(super) fn policy_edit(
    key: &str,
    entry: PolicyRef,
    first: &Finding,
    hosts: &[IpAddr],
    policy: &Policy,
) -> (String, Option<usize>, String) {
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
        s.push_str(
            "# No policy file was given: start one with `portwarden policy init -o policy.toml`.\n",
        );
    }
    let port_line = |s: &mut String| {
        if let (Some(p), Some(proto)) = (first.port, first.proto) {
            s.push_str(&format!("port = {p}\nproto = \"{proto}\"\n"));
        }
    };
    let line = match entry {
        PolicyRef::Allow(gi, ai) => Some(allow_edit(&mut s, key, gi, ai, first, policy, &shown)),
        PolicyRef::Exception(ei) => {
            let e = &policy.exceptions[ei];
            s.push_str(&format!(
                "# {shown}:{}: exception {} expired on {}. Renew it with a new approval, or delete the\n# entry and fix the finding itself.\n[[exception]]\nid = {}\ntarget = {}\n",
                e.line,
                toml_str(&e.id),
                e.expires,
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
                "reason = {}\napprover = \"<APPROVER>\"\nticket = \"<TICKET>\"\nexpires = <NEW_EXPIRY_DATE>  # YYYY-MM-DD\n",
                toml_str(&e.reason)
            ));
            Some(e.line)
        }
        PolicyRef::Group(gi) => {
            let g = &policy.groups[gi];
            s.push_str(&format!(
                "# {shown}:{}: group {} allows at most {} open ports a host. Close the ports nothing needs\n# (each has its own fix); raise the cap only with a documented reason.\nmax_open_ports = <NEW_CAP>\n",
                g.line,
                toml_str(&g.name),
                g.max_open_ports.map_or("?".to_owned(), |m| m.to_string())
            ));
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
                        .map(|g| format!("{} (line {})", toml_str(&g.name), g.line))
                        .collect();
                    if !names.is_empty() {
                        s.push_str(&format!(
                            "# Add the hosts to the `targets` of the group they belong to: {}.\n# Or declare a group for them:\n",
                            names.join(", ")
                        ));
                    }
                    s.push_str(&format!(
                        "[[group]]\nname = \"<GROUP_NAME>\"\ntargets = [{targets}]\n"
                    ));
                }
                "approve-or-revert-change" => {
                    s.push_str("# Record the approved change (PCI DSS 6.5.1), or revert it (the firewall tabs).\n");
                    let specs: Vec<String> = match &first.group {
                        Some(g) => vec![toml_str(g)],
                        None => hosts.iter().map(|h| format!("\"{h}\"")).collect(),
                    };
                    for spec in specs {
                        s.push_str(&format!(
                            "[[change]]\nticket = \"<TICKET>\"\napprover = \"<APPROVER>\"\napproved = <APPROVAL_DATE>  # YYYY-MM-DD\ntarget = {spec}\n"
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
                    s.push_str("# The policy entry behind this finding was not found; the finding's message names it.\n");
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
    key: &str,
    gi: usize,
    ai: usize,
    first: &Finding,
    policy: &Policy,
    shown: &str,
) -> usize {
    let g = &policy.groups[gi];
    let a = &g.allow[ai];
    let what = match key {
        "review-rule" => {
            "review it with its approver, then set the next review date (at most six months ahead, PCI DSS 1.2.7); or delete the entry and close the port"
        }
        "fix-service-or-policy" => {
            "if the service found is the intended one, declare it; else stop it (next tab) and keep the entry"
        }
        _ => "give the business need and who approved it (PCI DSS 1.2.5)",
    };
    s.push_str(&format!(
        "# {shown}:{}: the [[group.allow]] entry for {}/{} in group {}: {what}.\n[[group.allow]]\n",
        a.line,
        a.ports,
        a.proto,
        toml_str(&g.name)
    ));
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
            s.push_str("review_by = <NEXT_REVIEW_DATE>  # YYYY-MM-DD\n")
        }
        (_, Some(d)) => s.push_str(&format!("review_by = {d}\n")),
    }
    a.line
}
