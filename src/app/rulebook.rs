//! Step 1: the rulebook an audit judges by, loaded (and every rule file
//! hashed) once, before anything is scanned: a typo there must not cost a
//! scan.

use std::path::Path;

use anyhow::{Context, Result};

use super::AuditRequest;
use crate::policy::{Policy, Profiles};
use crate::report;
use crate::rules::Rules;

/// What an audit judges by, loaded before anything is scanned.
pub(super) struct Rulebook {
    pub(super) policy: Policy,
    pub(super) profiles: Profiles,
    pub(super) remediation: report::RemediationCatalog,
    /// The report's labels, from the rulebook's i18n files.
    pub(super) labels: report::Labels,
    /// Every rule file, read and hashed once (the evidence hashes).
    pub(super) rules: Rules,
}

impl Rulebook {
    /// Reads the rules (embedded, or `--rules`), the report's labels and the
    /// policy, and checks the policy against them.
    pub(super) fn load(req: &AuditRequest) -> Result<Rulebook> {
        // Every rule file is read and hashed once, here.
        let rules = Rules::load(req.scope.rules_dir.as_deref())?;
        let profiles = rules.profiles.clone();
        let remediation = report::RemediationCatalog::from_rules(&rules)?;
        let labels = rules.labels.of(req.lang);
        let policy = load_policy(req.policy.as_deref(), &profiles)?;
        check_platforms(&policy, &remediation)?;
        policy.check_port_scopes(&rules.ports)?;
        Ok(Rulebook {
            policy,
            profiles,
            remediation,
            labels,
            rules,
        })
    }
}

/// Every group's `platforms` must name remediation platforms (or families
/// such as `windows`): a typo would silently reorder nothing.
pub fn check_platforms(policy: &Policy, remediation: &report::RemediationCatalog) -> Result<()> {
    for g in &policy.groups {
        remediation
            .check_platforms(&g.platforms)
            .with_context(|| format!("{}:{}: group '{}'", policy.file, g.line, g.name))?;
    }
    Ok(())
}

/// Loads the declared policy, or the empty one (every host unmanaged).
pub fn load_policy(path: Option<&Path>, profiles: &Profiles) -> Result<Policy> {
    Ok(match path {
        Some(p) => Policy::load(p, profiles)?,
        None => Policy::none(),
    })
}
