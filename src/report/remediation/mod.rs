//! Report layer: what fixes each kind of finding, per platform (host
//! firewalls, the service manager, Windows, cloud security groups,
//! Kubernetes, configuration as code, the policy file itself).
//!
//! The commands are data — handlebars templates in `rules/remediation.toml`,
//! embedded as the default and replaceable from a rules directory. A
//! `[[fix]]` maps a remediation key (the `remediation` of a check in
//! `checks.toml`) to the platforms that fix it; a `[[platform]]` holds the
//! templates (`commands`, `undo`, `verify`, `warning`). A report that hands
//! out a command with a typo in it is worse than none, so the file is checked
//! when it is loaded: every template must compile, may use only the
//! placeholders in [`VARIABLES`], and is rendered with sample values for
//! every key in strict mode.
//!
//! [`fix_groups`] computes a fix once per (key, port/proto, service, address
//! family, admin sources, policy entry) and lists the hosts and findings it
//! closes, so a report of 256 hosts does not repeat the same text hundreds
//! of times. Administration ports (ssh, rdp, winrm) are never simply denied:
//! their fixes keep the group's `admin_sources` allowed and come with a
//! warning and a timed rollback.
//!
//! Values that reach a shell command (service and unit names, which come
//! from identification of untrusted network answers or from the user) are
//! filtered to a conservative character set; anything else becomes a
//! `<SERVICE>` / `<SYSTEMD_UNIT>` placeholder instead of being pasted in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{Handlebars, RenderErrorReason, Template};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use toml::Spanned;

use super::i18n::Lang;
use crate::model::{Finding, Proto, Severity};
use crate::policy::Policy;
use crate::rules::remediation::did_you_mean;
pub use crate::rules::remediation::{Fix, Platform};
use crate::rules::{Catalogue, RemediationRules, line_col};

/// The placeholders a template may use, all filled for every fix (see the
/// head of `rules/remediation.toml` for what each holds).
pub const VARIABLES: &[&str] = &[
    "key",
    "id",
    // The report's language is Chinese (prose such as warnings follows it).
    "zh",
    "finding",
    "port",
    "proto",
    "proto_upper",
    "proto_title",
    "proto_number",
    "udp",
    "scan_ports",
    "ipv6",
    "ip_family",
    "iptables",
    "any_cidr",
    "host_prefix",
    "ss_flags",
    "nft_family",
    "service",
    "has_service",
    "unit",
    "has_unit",
    "admin",
    "restrict",
    "sources",
    "sources_space",
    "sources_quoted",
    "sources_sh",
    "sources_complement",
    "family_range",
    "family_halves",
    "family_halves_quoted",
    "has_sources",
    "nft_sources",
    "k8s_ip_blocks",
    "hosts",
    "hosts_quoted",
    "host_cidrs",
    "host_cidrs_quoted",
    "host_count",
    "tag",
    "tag_hcl",
    "firewalld_service",
    "has_firewalld_service",
    "policy_file",
    "policy_line",
    "policy_snippet",
    "group",
];

/// Block and expression helpers a template may call: the logic ones that
/// ship with handlebars. Iteration and lookups have nothing to work on here.
const HELPERS: &[&str] = &["if", "unless", "eq", "ne", "and", "or", "not"];

/// Placeholder shown when the service name is unknown or unsafe to paste.
const SERVICE_PLACEHOLDER: &str = "<SERVICE>";
/// Placeholder shown when the systemd unit is unknown or unsafe to paste.
const UNIT_PLACEHOLDER: &str = "<SYSTEMD_UNIT>";
/// Placeholder shown when the host's groups declare no admin source.
const SOURCE_PLACEHOLDER: &str = "<ADMIN_SOURCE_CIDR>";

/// Ports whose loss locks the operator out, whatever answers on them.
const ADMIN_PORTS: &[u16] = &[22, 3389, 5985, 5986];
/// Identified services that carry remote administration.
const ADMIN_SERVICES: &[&str] = &["ssh", "rdp", "ms-wbt-server", "winrm", "winrm-https"];

/// Loading or using the remediation catalogue failed.
#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Toml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A template uses a placeholder that is not in [`VARIABLES`].
    #[error(
        "{file}:{line}: {place}: unknown placeholder {{{{{name}}}}}{hint}; known: {known}",
        known = VARIABLES.join(", ")
    )]
    UnknownPlaceholder {
        file: String,
        line: usize,
        /// `platform 'ID', commands|undo|verify|warning` or `partial 'NAME'`.
        place: String,
        name: String,
        /// ` (did you mean {{…}}?)` or empty.
        hint: String,
    },
    /// A template does not compile, or uses a construct we do not support.
    #[error("{file}:{line}: {place}: {message}")]
    Template {
        file: String,
        line: usize,
        place: String,
        message: String,
    },
    /// The remediation file itself is malformed (checked by the rulebook).
    #[error(transparent)]
    Rules(#[from] crate::rules::RemediationRulesError),
    /// A field is missing, empty or malformed, or an id is used twice.
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    /// A report directory's report.json cannot be read as a report.
    #[error("{}: {message}", path.display())]
    Report { path: PathBuf, message: String },
    /// A platform id (e.g. in a policy's preferred list) names no platform.
    #[error("unknown remediation platform '{id}'{hint}; known: {known}")]
    UnknownPlatform {
        id: String,
        hint: String,
        known: String,
    },
}

/// The validated remediation templates, in file order.
#[derive(Debug, Clone)]
pub struct RemediationCatalog {
    platforms: Vec<Platform>,
    fixes: Vec<Fix>,
    registry: Handlebars<'static>,
    firewalld: FirewalldServices,
    /// The policy-edit comments (`fix_policy.*`) per language.
    policy_texts: Vec<(Lang, BTreeMap<String, String>)>,
}

/// True when a policy's platform name selects the platform `id`: the id
/// itself, or a family of ids (`windows` for `windows-netsh`, …).
pub fn platform_matches(id: &str, name: &str) -> bool {
    id == name
        || id
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// True for a port whose loss locks the operator out: 22, 3389, 5985,
/// 5986 over TCP, or any port identified as ssh, rdp or winrm.
pub fn is_admin(port: u16, proto: Proto, service: Option<&str>) -> bool {
    (proto == Proto::Tcp && ADMIN_PORTS.contains(&port))
        || service.is_some_and(|s| ADMIN_SERVICES.contains(&s))
}

/// What one fix is rendered from: everything but the findings themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixContext {
    /// The fix group's id: every rule, comment, unit, backup and resource
    /// the fix creates is named `portwarden-<id>`.
    pub id: String,
    /// The remediation key (`close-port`, `restrict-source`, …).
    pub key: String,
    /// `None` for host-level findings (port cap, unmanaged host).
    pub port: Option<u16>,
    pub proto: Option<Proto>,
    /// Service name (e.g. `redis`), from identification or the port catalogue.
    pub service: Option<String>,
    /// systemd unit that runs the service, when known.
    pub unit: Option<String>,
    /// The hosts' address family.
    pub ipv6: bool,
    /// The groups' admin sources of that family.
    pub sources: Vec<IpNet>,
    pub hosts: Vec<IpAddr>,
    /// How many hosts the fix closes in all: more than `hosts` holds when
    /// the commands are rendered for a page that names only the first ones.
    pub host_total: usize,
    /// Policy fixes: the file, the entry's line and the TOML to add or edit.
    pub policy_file: String,
    pub policy_line: Option<usize>,
    pub policy_snippet: String,
    pub group: Option<String>,
}

/// One platform's fix, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFix {
    /// Platform id, e.g. `ufw`.
    pub platform: String,
    /// The platform's name in the report's language.
    pub title: String,
    /// Language of `commands` and `undo` (`sh`, `powershell`, `yaml`, `hcl`, `toml`).
    pub language: String,
    /// Language of `verify`.
    pub verify_language: String,
    /// Shown above the commands (lock-out risk), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub commands: String,
    /// The commands that revert the fix.
    pub undo: String,
    /// How to check the result, ending with a re-scan.
    pub verify: String,
}

/// One fix that closes a set of findings on a set of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixGroup {
    /// Stable short hash of what the fix is computed from (not of the hosts).
    pub id: String,
    /// The remediation key.
    pub key: String,
    /// The key in words, in the report's language.
    pub title: String,
    pub about: String,
    /// The worst severity among the findings.
    pub severity: Severity,
    pub port: Option<u16>,
    pub proto: Option<Proto>,
    pub service: Option<String>,
    pub hosts: Vec<IpAddr>,
    pub finding_ids: Vec<String>,
    /// Every platform's fix for every host. report.json records only the
    /// platform ids (the texts name every host: tens of MB at a /16); the
    /// texts are in `fixes.jsonl`, one line per group and platform, and
    /// [`read_fixes`] puts them back.
    #[serde(serialize_with = "platform_ids", deserialize_with = "platforms_or_ids")]
    pub platforms: Vec<PlatformFix>,
    /// How many of `platforms`, from the first, the hosts' policy groups
    /// declare (`platforms = [...]`); 0 when they declare none.
    #[serde(default)]
    pub preferred: usize,
    /// The same fixes rendered for a page: naming the first
    /// [`PAGE_HOSTS`] hosts only. Empty when `hosts` is no longer than that
    /// (the page shows `platforms`). Never serialised.
    #[serde(skip)]
    pub page_platforms: Vec<PlatformFix>,
}

/// A page names at most this many hosts in a fix's commands; the full
/// commands are in `fixes.jsonl` and printed by `portwarden fix`.
pub const PAGE_HOSTS: usize = 24;

impl FixGroup {
    /// The fixes as a page shows them (host lists cut to [`PAGE_HOSTS`]).
    pub fn page_fixes(&self) -> &[PlatformFix] {
        if self.page_platforms.is_empty() {
            &self.platforms
        } else {
            &self.page_platforms
        }
    }

    /// Whether [`FixGroup::page_fixes`] names fewer hosts than the fix closes.
    pub fn page_is_cut(&self) -> bool {
        !self.page_platforms.is_empty()
    }
}

mod fixes_file;
mod group;
mod messages;
mod parse;
mod policy_edit;
mod quote;
mod render;

pub use crate::rules::firewalld::FirewalldServices;
pub use fixes_file::{FIXES_JSONL, fix_for, read_fixes, write_fixes_jsonl};
pub use group::fix_groups;
pub use messages::FixMessages;
pub use quote::{comment_str, hcl_str, ps_str, quote_for, sh_str, toml_str, yaml_str};

use fixes_file::*;
use group::*;
use messages::*;
use parse::*;
use policy_edit::*;
use render::*;

#[cfg(test)]
#[path = "../remediation_cloud_tests.rs"]
mod cloud_tests;
#[cfg(test)]
#[path = "../remediation_i18n_tests.rs"]
mod i18n_tests;
#[cfg(test)]
#[path = "../remediation_tests.rs"]
mod tests;
