//! `portwarden policy init|check`: the starter policy, and a policy file
//! checked against the rulebook (loaded once) with its summary and warnings.

use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result, bail};

use portwarden::app;
use portwarden::rules::Rules;

use super::args::PolicyCmd;
use super::exit;

pub(super) fn policy_cmd(cmd: PolicyCmd) -> Result<u8> {
    match cmd {
        PolicyCmd::Init { output, force } => {
            let text = portwarden::policy::policy_init_text();
            match output {
                None => print!("{text}"),
                Some(path) => {
                    if path.exists() && !force {
                        bail!("{} exists; add --force to replace it", path.display());
                    }
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "wrote a starter policy to {}: edit it, then `portwarden policy check {}`",
                        path.display(),
                        path.display()
                    );
                }
            }
            Ok(exit::OK)
        }
        PolicyCmd::Check { file, rules, as_of } => {
            // The rulebook, read once: profiles, remediation, port sets.
            let rulebook = portwarden::rules::Rules::load(rules.as_deref())?;
            let profiles = rulebook.profiles.clone();
            let policy = app::load_policy(Some(&file), &profiles)?;
            app::check_platforms(
                &policy,
                &portwarden::report::RemediationCatalog::from_rules(&rulebook)?,
            )?;
            policy.check_port_scopes(&rulebook.ports)?;
            let today = app::clock(as_of).date_naive();
            let summary = portwarden::policy::check_summary(&policy, &profiles, today);
            // Everything from the policy file is text a hostile file could
            // fill with terminal escapes: shown through the report's escaping.
            let safe = |s: &str| portwarden::report::display_safe(s);
            let mut w = BufWriter::new(io::stdout());
            writeln!(w, "{}: valid", safe(&summary.file))?;
            for g in &summary.groups {
                let cap = g
                    .max_open_ports
                    .map(|c| format!(", at most {c} open ports"))
                    .unwrap_or_default();
                writeln!(
                    w,
                    "group {} ({} vantage; profiles: {}{cap})\n  targets: {}",
                    safe(&g.name),
                    g.vantage.as_str(),
                    safe(&g.profiles.join(", ")),
                    safe(&g.targets.join(", "))
                )?;
                for a in &g.allowed {
                    let svc = a
                        .service
                        .as_deref()
                        .map(|s| format!(" ({})", safe(s)))
                        .unwrap_or_default();
                    let review = a
                        .review_by
                        .map(|d| format!(", review by {d}"))
                        .unwrap_or_default();
                    let flag = if !a.justified {
                        "  [no justification/approver]"
                    } else if a.review_overdue {
                        "  [review overdue]"
                    } else {
                        ""
                    };
                    writeln!(w, "  allow {}{svc}{review}{flag}", a.ports)?;
                }
            }
            for e in &summary.exceptions {
                let window = e
                    .window
                    .as_deref()
                    .map(|x| format!(", window: {}", safe(x)))
                    .unwrap_or_default();
                writeln!(
                    w,
                    "exception {} on {} {}: {}, expires {} ({}){window}",
                    safe(&e.id),
                    safe(&e.target),
                    e.ports,
                    e.state,
                    e.expires,
                    e.when
                )?;
            }
            for c in &policy.changes {
                let list = |ports: &[portwarden::policy::PortRange]| {
                    ports
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let mut what = Vec::new();
                if !c.opens.is_empty() {
                    what.push(format!("opens {}/{}", list(&c.opens), c.proto));
                }
                if !c.closes.is_empty() {
                    what.push(format!("closes {}/{}", list(&c.closes), c.proto));
                }
                let until = c.until.map(|d| format!(" until {d}")).unwrap_or_default();
                let state = match c.state(today) {
                    portwarden::policy::ChangeState::Pending => "pending",
                    portwarden::policy::ChangeState::Active => "active",
                    portwarden::policy::ChangeState::Ended => "ended",
                };
                writeln!(
                    w,
                    "change {} on {}: {}, approved {} by {}{until} ({state})",
                    safe(&c.ticket),
                    safe(&c.target_spec),
                    what.join(", "),
                    c.approved,
                    safe(&c.approver)
                )?;
            }
            for warning in &summary.warnings {
                writeln!(w, "warning: {}", safe(warning))?;
            }
            for warning in service_typos(&summary, &rulebook)? {
                writeln!(w, "warning: {}", safe(&warning))?;
            }
            w.flush()?;
            Ok(exit::OK)
        }
    }
}

/// `service = "modbsu"`: an allowance naming a service close to a known
/// one (and not itself known) is almost surely a typo that would only
/// surface at audit time, as unexpected-service.
fn service_typos(
    summary: &portwarden::policy::PolicySummary,
    rules: &Rules,
) -> Result<Vec<String>> {
    let catalogue = &rules.ports;
    let probes = &rules.probes;
    // Names identification can give beyond the catalogue's.
    let mut known: Vec<&str> = probes.banners.iter().map(|r| r.service.as_str()).collect();
    known.extend(
        probes
            .probes
            .iter()
            .flat_map(|p| p.matches.iter().map(|r| r.service.as_str())),
    );
    known.extend(probes.http.iter().map(|h| h.rule.service.as_str()));
    let mut out = Vec::new();
    for g in &summary.groups {
        for a in &g.allowed {
            let Some(service) = &a.service else { continue };
            let close = portwarden::target::ports::similar_services(service, catalogue, &known);
            if !close.is_empty() {
                out.push(format!(
                    "policy line {}: service '{service}' is not a service portwarden knows; did you mean {}? (identified services would never match it)",
                    a.line,
                    close
                        .iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
        }
    }
    Ok(out)
}
