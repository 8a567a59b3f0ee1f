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
use crate::rules::Catalogue;

/// The embedded default, `rules/remediation.toml`.
const EMBEDDED: &str = include_str!("../../rules/remediation.toml");
/// The embedded list of firewalld's own services.
const EMBEDDED_FIREWALLD: &str = include_str!("../../rules/firewalld-services.txt");

/// The file name looked for in a rules directory.
pub const FILE_NAME: &str = "remediation.toml";
/// The firewalld service list's file name in a rules directory.
pub const FIREWALLD_FILE_NAME: &str = "firewalld-services.txt";

/// What an embedded-file error names as its file.
const EMBEDDED_NAME: &str = "rules/remediation.toml (embedded)";

/// The placeholders a template may use, all filled for every fix (see the
/// head of `rules/remediation.toml` for what each holds).
pub const VARIABLES: &[&str] = &[
    "key",
    // The report's language is Chinese (prose such as warnings follows it).
    "zh",
    "finding",
    "port",
    "proto",
    "proto_upper",
    "proto_title",
    "proto_number",
    "udp",
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

/// The template fields of a platform; `warning` may be absent.
const FIELDS: &[&str] = &["commands", "undo", "verify", "warning"];

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

/// One platform's metadata; its templates live in the catalogue's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub id: String,
    pub title_en: String,
    pub title_zh: String,
    pub language: String,
    pub verify_language: String,
}

/// A remediation key and the platforms that fix it, in display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub key: String,
    pub title_en: String,
    pub title_zh: String,
    pub about_en: String,
    pub about_zh: String,
    pub platforms: Vec<String>,
}

/// firewalld's own service names and the ports each opens
/// (`rules/firewalld-services.txt`), with our names mapped to theirs.
#[derive(Debug, Clone, Default)]
pub struct FirewalldServices {
    services: HashMap<String, Vec<(u16, u16, Proto)>>,
    aliases: HashMap<String, String>,
}

impl FirewalldServices {
    /// Parses the list; `file` names it in errors. An alias must name a
    /// listed service: that is the load-time check the fixes rely on.
    pub fn parse(text: &str, file: &str) -> Result<FirewalldServices, RemediationError> {
        let mut out = FirewalldServices::default();
        let mut aliases = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let invalid = |message: String| RemediationError::Invalid {
                file: file.to_owned(),
                line: n + 1,
                message,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("alias ") {
                let (ours, theirs) = rest
                    .split_once('=')
                    .ok_or_else(|| invalid("write 'alias OURS = FIREWALLD'".into()))?;
                aliases.push((n + 1, ours.trim().to_owned(), theirs.trim().to_owned()));
                continue;
            }
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            if safe_name(&name) != Some(name.as_str()) {
                return Err(invalid(format!("'{name}' is not a service name")));
            }
            let mut ports = Vec::new();
            for w in words {
                let parsed = w.split_once('/').and_then(|(range, proto)| {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    let proto = match proto {
                        "tcp" => Proto::Tcp,
                        "udp" => Proto::Udp,
                        _ => return None,
                    };
                    Some((lo.parse().ok()?, hi.parse().ok()?, proto))
                });
                // sctp/dccp entries exist in firewalld; we only judge TCP/UDP.
                match parsed {
                    Some(p) => ports.push(p),
                    None if w.ends_with("/sctp") || w.ends_with("/dccp") => {}
                    None => return Err(invalid(format!("'{w}' is not PORT/tcp or PORT/udp"))),
                }
            }
            out.services.insert(name, ports);
        }
        for (line, ours, theirs) in aliases {
            if !out.services.contains_key(&theirs) {
                return Err(RemediationError::Invalid {
                    file: file.to_owned(),
                    line,
                    message: format!("alias '{ours}': firewalld has no service '{theirs}'"),
                });
            }
            out.aliases.insert(ours, theirs);
        }
        Ok(out)
    }

    /// firewalld's service for our service name, if it exists and opens
    /// exactly this port; else `None` (the fix uses `--remove-port`).
    pub fn lookup(&self, service: &str, port: u16, proto: Proto) -> Option<&str> {
        let name = self
            .aliases
            .get(service)
            .map(String::as_str)
            .unwrap_or(service);
        let (name, ports) = self.services.get_key_value(name)?;
        ports
            .iter()
            .any(|&(lo, hi, p)| p == proto && lo <= port && port <= hi)
            .then_some(name.as_str())
    }
}

/// The validated remediation templates, in file order.
#[derive(Debug, Clone)]
pub struct RemediationCatalog {
    platforms: Vec<Platform>,
    fixes: Vec<Fix>,
    registry: Handlebars<'static>,
    firewalld: FirewalldServices,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    partials: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    fix: Vec<Spanned<RawFix>>,
    #[serde(default)]
    platform: Vec<Spanned<RawPlatform>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFix {
    key: String,
    title_en: String,
    title_zh: String,
    about_en: String,
    about_zh: String,
    platforms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    id: Spanned<String>,
    title_en: String,
    title_zh: String,
    language: String,
    verify_language: Option<String>,
    commands: Spanned<String>,
    undo: Spanned<String>,
    verify: Spanned<String>,
    #[serde(default)]
    warning: Option<Spanned<String>>,
}

impl RawPlatform {
    fn field(&self, name: &str) -> Option<&Spanned<String>> {
        match name {
            "commands" => Some(&self.commands),
            "undo" => Some(&self.undo),
            "verify" => Some(&self.verify),
            "warning" => self.warning.as_ref(),
            _ => None,
        }
    }
}

/// True when a policy's platform name selects the platform `id`: the id
/// itself, or a family of ids (`windows` for `windows-netsh`, …).
pub fn platform_matches(id: &str, name: &str) -> bool {
    id == name
        || id
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('-'))
}

impl RemediationCatalog {
    /// The catalogue built into the binary (`rules/remediation.toml`).
    pub fn embedded() -> RemediationCatalog {
        // The embedded files are checked by this module's tests, so a
        // failure here is a build that skipped them, not a user error.
        let firewalld =
            FirewalldServices::parse(EMBEDDED_FIREWALLD, "rules/firewalld-services.txt")
                .unwrap_or_else(|e| panic!("embedded firewalld service list is invalid: {e}"));
        RemediationCatalog::parse(EMBEDDED, EMBEDDED_NAME, firewalld)
            .unwrap_or_else(|e| panic!("embedded remediation templates are invalid: {e}"))
    }

    /// The catalogue from the rulebook's texts (read and hashed once there).
    pub fn from_rules(rules: &crate::rules::Rules) -> Result<RemediationCatalog, RemediationError> {
        let firewalld = FirewalldServices::parse(&rules.firewalld.text, &rules.firewalld.origin)?;
        RemediationCatalog::parse(
            &rules.remediation.text,
            &rules.remediation.origin,
            firewalld,
        )
    }

    /// `DIR/remediation.toml` and `DIR/firewalld-services.txt` when they
    /// exist (each replaces the embedded file as a whole), else the embedded ones.
    pub fn load_dir(dir: &Path) -> Result<RemediationCatalog, RemediationError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| RemediationError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let fw_path = dir.join(FIREWALLD_FILE_NAME);
        let firewalld = if fw_path.exists() {
            FirewalldServices::parse(&read(&fw_path)?, &fw_path.display().to_string())?
        } else {
            FirewalldServices::parse(EMBEDDED_FIREWALLD, "rules/firewalld-services.txt")?
        };
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return RemediationCatalog::parse(EMBEDDED, EMBEDDED_NAME, firewalld);
        }
        RemediationCatalog::parse(&read(&path)?, &path.display().to_string(), firewalld)
    }

    /// Parses and validates a remediation file; `file` is the name errors give.
    pub fn parse(
        text: &str,
        file: &str,
        firewalld: FirewalldServices,
    ) -> Result<RemediationCatalog, RemediationError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            RemediationError::Toml {
                file: file.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;

        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        // The output is shell, PowerShell, YAML, HCL or TOML, not HTML: the
        // report renderers escape for their own format.
        registry.register_escape_fn(handlebars::no_escape);

        let partial_names: HashSet<&str> = raw.partials.keys().map(String::as_str).collect();
        for (name, src) in &raw.partials {
            let place = format!("partial '{name}'");
            if !is_name(name, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
            }) {
                return Err(RemediationError::Invalid {
                    file: file.to_owned(),
                    line: line_col(text, src.span().start).0,
                    message: format!(
                        "partial name '{name}': use lower-case letters, digits and '_'"
                    ),
                });
            }
            // A partial may not include partials: that rules out recursion.
            compile(text, file, &place, src, None)?;
            registry
                .register_partial(name, src.get_ref().as_str())
                .map_err(|e| {
                    template_error(text, file, &place, src, e.pos().map(|p| p.0), e.reason())
                })?;
        }

        if raw.platform.is_empty() {
            return Err(RemediationError::Invalid {
                file: file.to_owned(),
                line: 1,
                message: "no [[platform]] entries: a remediation file needs at least one".into(),
            });
        }
        let mut platforms = Vec::with_capacity(raw.platform.len());
        let mut seen: HashSet<String> = HashSet::new();
        for entry in &raw.platform {
            let line = line_col(text, entry.span().start).0;
            let p = entry.get_ref();
            let id = p.id.get_ref();
            let invalid = |message: String| RemediationError::Invalid {
                file: file.to_owned(),
                line,
                message,
            };
            if !is_name(id, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            }) {
                return Err(invalid(format!(
                    "platform id '{id}': use lower-case letters, digits and '-'"
                )));
            }
            if !seen.insert(id.clone()) {
                return Err(invalid(format!("platform id '{id}' is used twice")));
            }
            for (field, value) in [
                ("title_en", &p.title_en),
                ("title_zh", &p.title_zh),
                ("language", &p.language),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(format!("platform '{id}': {field} is empty")));
                }
            }
            for field in FIELDS {
                let Some(src) = p.field(field) else { continue };
                let place = format!("platform '{id}', {field}");
                let tpl = compile(text, file, &place, src, Some(&partial_names))?;
                registry.register_template(&template_name(id, field), tpl);
            }
            platforms.push(Platform {
                id: id.clone(),
                title_en: p.title_en.trim().to_owned(),
                title_zh: p.title_zh.trim().to_owned(),
                language: p.language.trim().to_owned(),
                verify_language: p
                    .verify_language
                    .as_deref()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .unwrap_or(p.language.trim())
                    .to_owned(),
            });
        }

        let mut fixes: Vec<Fix> = Vec::with_capacity(raw.fix.len());
        for entry in &raw.fix {
            let line = line_col(text, entry.span().start).0;
            let f = entry.get_ref();
            let invalid = |message: String| RemediationError::Invalid {
                file: file.to_owned(),
                line,
                message,
            };
            if !is_name(&f.key, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            }) {
                return Err(invalid(format!(
                    "fix key '{}': use lower-case letters, digits and '-'",
                    f.key
                )));
            }
            if fixes.iter().any(|o| o.key == f.key) {
                return Err(invalid(format!("fix key '{}' is used twice", f.key)));
            }
            if f.platforms.is_empty() {
                return Err(invalid(format!("fix '{}' names no platform", f.key)));
            }
            for id in &f.platforms {
                if !seen.contains(id) {
                    let known: Vec<&str> = platforms.iter().map(|p| p.id.as_str()).collect();
                    return Err(invalid(format!(
                        "fix '{}': unknown platform '{id}'{}; known: {}",
                        f.key,
                        did_you_mean(id, &known)
                            .map(|s| format!(" (did you mean '{s}'?)"))
                            .unwrap_or_default(),
                        known.join(", ")
                    )));
                }
            }
            fixes.push(Fix {
                key: f.key.clone(),
                title_en: f.title_en.trim().to_owned(),
                title_zh: f.title_zh.trim().to_owned(),
                about_en: f.about_en.trim().to_owned(),
                about_zh: f.about_zh.trim().to_owned(),
                platforms: f.platforms.clone(),
            });
        }

        let catalog = RemediationCatalog {
            platforms,
            fixes,
            registry,
            firewalld,
        };
        // Strict rendering of every platform for every key, both protocols,
        // both address families, with and without admin sources, walks the
        // branches the templates take and catches what the syntax walk cannot.
        let mut keys: Vec<String> = catalog.fixes.iter().map(|f| f.key.clone()).collect();
        keys.push("unknown-key".into());
        for key in &keys {
            for sample in samples(key) {
                let data = catalog.context(&sample);
                for (entry, platform) in raw.platform.iter().zip(&catalog.platforms) {
                    let p = entry.get_ref();
                    for field in FIELDS {
                        let Some(src) = p.field(field) else { continue };
                        if let Err(e) = catalog
                            .registry
                            .render(&template_name(&platform.id, field), &data)
                        {
                            let place = format!("platform '{}', {field}", platform.id);
                            return Err(render_error(text, file, &place, src, &e));
                        }
                    }
                }
            }
        }
        Ok(catalog)
    }

    /// The platforms in file order.
    pub fn platforms(&self) -> &[Platform] {
        &self.platforms
    }

    /// The fixes in file order.
    pub fn fixes(&self) -> &[Fix] {
        &self.fixes
    }

    /// The fix for a remediation key.
    pub fn fix(&self, key: &str) -> Option<&Fix> {
        self.fixes.iter().find(|f| f.key == key)
    }

    /// The firewalld service list the fixes are checked against.
    pub fn firewalld(&self) -> &FirewalldServices {
        &self.firewalld
    }

    /// Checks that every id names a platform, so that a typo in a policy's
    /// preferred list is reported when the policy is loaded.
    pub fn check_platforms(&self, ids: &[String]) -> Result<(), RemediationError> {
        for id in ids {
            if !self.platforms.iter().any(|p| platform_matches(&p.id, id)) {
                let known: Vec<&str> = self.platforms.iter().map(|p| p.id.as_str()).collect();
                return Err(RemediationError::UnknownPlatform {
                    id: id.clone(),
                    hint: did_you_mean(id, &known)
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default(),
                    known: known.join(", "),
                });
            }
        }
        Ok(())
    }

    /// The fix for one context on every platform its key lists: the
    /// `preferred` ones first, in the given order, then the rest in the
    /// fix's order. A platform whose commands render empty is left out.
    /// An unknown key gives no platform.
    pub fn render(&self, ctx: &FixContext, preferred: &[String], lang: Lang) -> Vec<PlatformFix> {
        let Some(fix) = self.fix(&ctx.key) else {
            return Vec::new();
        };
        let mut order: Vec<&str> = Vec::with_capacity(fix.platforms.len());
        for id in preferred {
            if fix.platforms.contains(id) && !order.contains(&id.as_str()) {
                order.push(id);
            }
        }
        for id in &fix.platforms {
            if !order.contains(&id.as_str()) {
                order.push(id);
            }
        }
        let mut data = self.context(ctx);
        data["zh"] = json!(lang == Lang::ZhCn);
        order
            .into_iter()
            .filter_map(|id| {
                let p = self.platforms.iter().find(|p| p.id == id)?;
                let commands = self.render_one(id, "commands", &data);
                if commands.trim().is_empty() {
                    return None;
                }
                let warning = self.render_one(id, "warning", &data);
                Some(PlatformFix {
                    platform: p.id.clone(),
                    title: match lang {
                        Lang::ZhCn => p.title_zh.clone(),
                        Lang::En => p.title_en.clone(),
                    },
                    language: p.language.clone(),
                    verify_language: p.verify_language.clone(),
                    warning: (!warning.trim().is_empty()).then(|| warning.trim().to_owned()),
                    commands,
                    undo: self.render_one(id, "undo", &data),
                    verify: self.render_one(id, "verify", &data),
                })
            })
            .collect()
    }

    fn render_one(&self, id: &str, field: &str, data: &Value) -> String {
        let name = template_name(id, field);
        if !self.registry.has_template(&name) {
            return String::new();
        }
        match self.registry.render(&name, data) {
            Ok(text) => tidy(&text),
            // Loading rendered every template with the same set of keys, so
            // this is not expected; say so in the output rather than panic.
            Err(e) => format!("# portwarden could not render this template: {e}"),
        }
    }

    /// The template data for one fix.
    fn context(&self, c: &FixContext) -> Value {
        let port = c.port.unwrap_or(0);
        let proto = c.proto.unwrap_or(Proto::Tcp);
        let udp = proto == Proto::Udp;
        let ipv6 = c.ipv6;
        let service = c.service.as_deref().and_then(safe_name);
        let unit = c.unit.as_deref().and_then(unit_base);
        let admin = c.port.is_some() && is_admin(port, proto, service);
        let restrict = c.key == "restrict-source" || admin;
        let sources: Vec<String> = c.sources.iter().map(|n| n.to_string()).collect();
        let placeholder = || vec![SOURCE_PLACEHOLDER.to_owned()];
        let shown = if sources.is_empty() {
            placeholder()
        } else {
            sources.clone()
        };
        let prefix = if ipv6 { 128 } else { 32 };
        let hosts: Vec<String> = c.hosts.iter().map(|h| h.to_string()).collect();
        let cidrs: Vec<String> = hosts.iter().map(|h| format!("{h}/{prefix}")).collect();
        let quoted = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let firewalld = service.and_then(|s| self.firewalld.lookup(s, port, proto));
        let on = match &c.port {
            Some(p) => match service {
                Some(s) => format!("{p}/{proto} ({s})"),
                None => format!("{p}/{proto}"),
            },
            None => String::new(),
        };
        let total = c.host_total.max(hosts.len());
        let mut shown_hosts = hosts.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
        if total > 6 {
            shown_hosts.push_str(&format!(" and {} more", total - 6.min(hosts.len())));
        }
        json!({
            "key": c.key,
            "finding": format!("{} {on}{}on {shown_hosts}", c.key, if on.is_empty() { "" } else { " " }),
            "port": port,
            "proto": proto.as_str(),
            "proto_upper": if udp { "UDP" } else { "TCP" },
            "proto_title": if udp { "Udp" } else { "Tcp" },
            "proto_number": if udp { 17 } else { 6 },
            "udp": udp,
            "ipv6": ipv6,
            "ip_family": if ipv6 { "ipv6" } else { "ipv4" },
            "iptables": if ipv6 { "ip6tables" } else { "iptables" },
            "any_cidr": if ipv6 { "::/0" } else { "0.0.0.0/0" },
            "host_prefix": prefix,
            "ss_flags": if udp { "-ulnp" } else { "-tlnp" },
            "nft_family": if ipv6 { "ip6" } else { "ip" },
            "service": service.unwrap_or(SERVICE_PLACEHOLDER),
            "has_service": service.is_some(),
            "unit": unit.unwrap_or(UNIT_PLACEHOLDER),
            "has_unit": unit.is_some(),
            "admin": admin,
            "restrict": restrict,
            "sources": shown.join(","),
            "sources_space": shown.join(" "),
            "sources_quoted": quoted(&shown),
            "has_sources": !sources.is_empty(),
            "nft_sources": if shown.len() == 1 { shown[0].clone() } else { format!("{{ {} }}", shown.join(", ")) },
            "k8s_ip_blocks": shown
                .iter()
                .map(|s| format!("        - ipBlock:\n            cidr: {s}"))
                .collect::<Vec<_>>()
                .join("\n"),
            "hosts": hosts.join(" "),
            "hosts_quoted": quoted(&hosts),
            "host_cidrs": cidrs.join(","),
            "host_cidrs_quoted": quoted(&cidrs),
            "host_count": hosts.len(),
            "tag": format!("portwarden-{}-{port}", proto.as_str()),
            "tag_hcl": format!("portwarden_{}_{port}", proto.as_str()),
            "firewalld_service": firewalld.unwrap_or(""),
            "has_firewalld_service": firewalld.is_some(),
            "policy_file": c.policy_file,
            "policy_line": c.policy_line.unwrap_or(0),
            "policy_snippet": c.policy_snippet,
            "group": c.group.clone().unwrap_or_default(),
        })
    }
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

fn platform_ids<S: serde::Serializer>(p: &[PlatformFix], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|p| p.platform.as_str()))
}

/// Reports before `fixes.jsonl` held the texts inline; newer ones hold ids
/// (the texts come from `fixes.jsonl`).
fn platforms_or_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PlatformFix>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Full(PlatformFix),
        Id(#[allow(dead_code)] String),
    }
    Ok(Vec::<Entry>::deserialize(d)?
        .into_iter()
        .filter_map(|e| match e {
            Entry::Full(p) => Some(p),
            Entry::Id(_) => None,
        })
        .collect())
}

/// One line of `fixes.jsonl`: one platform's fix for one group.
#[derive(Debug, Serialize, Deserialize)]
struct FixLine<'a> {
    /// The group's [`FixGroup::id`].
    fix: std::borrow::Cow<'a, str>,
    #[serde(flatten)]
    platform: std::borrow::Cow<'a, PlatformFix>,
}

/// The file beside report.json that holds every fix's texts.
pub const FIXES_JSONL: &str = "fixes.jsonl";

/// Writes `fixes.jsonl`: one JSON object per group and platform, in report
/// order (`{"fix": ID, "platform": …, "commands": …, "undo": …, …}`).
pub fn write_fixes_jsonl<'a>(
    w: &mut impl std::io::Write,
    groups: impl IntoIterator<Item = &'a FixGroup>,
) -> std::io::Result<()> {
    for g in groups {
        for p in &g.platforms {
            let line = FixLine {
                fix: std::borrow::Cow::Borrowed(&g.id),
                platform: std::borrow::Cow::Borrowed(p),
            };
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Largest report.json [`read_fixes`] reads: far above any real report,
/// low enough that a hostile file cannot exhaust memory.
const MAX_REPORT_JSON: u64 = 512 * 1024 * 1024;
/// Largest line of `fixes.jsonl` [`read_fixes`] accepts.
const MAX_FIX_LINE: u64 = 64 * 1024 * 1024;

/// The fixes recorded in a report directory's `report.json`.
pub fn read_fixes(dir: &Path) -> Result<Vec<FixGroup>, RemediationError> {
    #[derive(Deserialize)]
    struct Doc {
        /// The report model's fix groups (each flattens a [`FixGroup`]).
        fix_groups: Vec<FixGroup>,
    }
    let path = dir.join("report.json");
    // The same guarded read as the evidence files: a regular file within
    // the bound, never a link, FIFO or device.
    let text = super::evidence::read_small(&path, MAX_REPORT_JSON).map_err(|e| {
        RemediationError::Report {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    let mut doc: Doc = serde_json::from_slice(&text).map_err(|e| RemediationError::Report {
        path: path.clone(),
        message: format!("not a portwarden report ({e})"),
    })?;
    drop(text);
    if doc.fix_groups.iter().all(|g| g.platforms.is_empty()) && !doc.fix_groups.is_empty() {
        read_fix_lines(&dir.join(FIXES_JSONL), &mut doc.fix_groups)?;
    }
    Ok(doc.fix_groups)
}

/// Puts `fixes.jsonl`'s texts back into their groups, streaming the file
/// through the evidence layer's guarded open (a regular file, never a link,
/// FIFO or device) with every line bounded.
fn read_fix_lines(path: &Path, groups: &mut [FixGroup]) -> Result<(), RemediationError> {
    use std::io::BufRead;
    let bad = |line: usize, message: String| RemediationError::Report {
        path: path.to_path_buf(),
        message: if line == 0 {
            message
        } else {
            format!("line {line}: {message}")
        },
    };
    let file = super::evidence::open_regular(path).map_err(|e| bad(0, e.to_string()))?;
    let by_id: HashMap<String, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.clone(), i))
        .collect();
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let read = std::io::Read::take(&mut reader, MAX_FIX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| bad(n, e.to_string()))?;
        if read == 0 {
            break;
        }
        if buf.len() as u64 > MAX_FIX_LINE {
            return Err(bad(n, format!("longer than {MAX_FIX_LINE} bytes")));
        }
        let line: FixLine<'static> =
            serde_json::from_slice(&buf).map_err(|e| bad(n, format!("not a fix line ({e})")))?;
        let Some(&i) = by_id.get(line.fix.as_ref()) else {
            return Err(bad(n, format!("fix '{}' is not in report.json", line.fix)));
        };
        groups[i].platforms.push(line.platform.into_owned());
    }
    Ok(())
}

/// The fix that closes a finding, by finding id.
pub fn fix_for<'a>(fixes: &'a [FixGroup], finding_id: &str) -> Option<&'a FixGroup> {
    fixes
        .iter()
        .find(|g| g.finding_ids.iter().any(|f| f == finding_id))
}

/// The policy entry a policy fix edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PolicyRef {
    None,
    /// (group index, allow-rule index)
    Allow(usize, usize),
    Exception(usize),
    Group(usize),
}

/// What findings are grouped by: equal keys get one fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
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
    let mut groups: BTreeMap<GroupKey, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        if !f.status.is_failing() || catalog.fix(&f.remediation).is_none() {
            continue;
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
            key: f.remediation.clone(),
            port: f.port,
            proto: f.proto.map(Proto::as_str),
            service: f.service.as_deref().and_then(safe_name).map(str::to_owned),
            ipv6,
            sources,
            preferred,
            entry: policy_ref(f, policy),
        };
        groups.entry(key).or_default().push(f);
    }

    let mut out: Vec<FixGroup> = groups
        .into_iter()
        .map(|(gk, fs)| {
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
            let (policy_file, policy_line, policy_snippet) =
                policy_edit(&gk.key, gk.entry, fs[0], &hosts, policy);
            let ctx = FixContext {
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
            let id = {
                use sha2::{Digest, Sha256};
                let digest = Sha256::digest(format!("{gk:?}").as_bytes());
                digest[..6].iter().map(|b| format!("{b:02x}")).collect()
            };
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
                about: match lang {
                    Lang::ZhCn => fix.about_zh.clone(),
                    Lang::En => fix.about_en.clone(),
                },
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
                    let (policy_file, policy_line, policy_snippet) =
                        policy_edit(&gk.key, gk.entry, fs[0], shown, policy);
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

/// The policy entry a finding's fix edits, for the keys that edit one.
fn policy_ref(f: &Finding, policy: &Policy) -> PolicyRef {
    let group = || {
        f.group
            .as_ref()
            .and_then(|name| policy.groups.iter().position(|g| &g.name == name))
    };
    match f.remediation.as_str() {
        "document-justification" | "review-rule" | "fix-service-or-policy" => {
            let (Some(gi), Some(port), Some(proto)) = (group(), f.port, f.proto) else {
                return PolicyRef::None;
            };
            match policy.groups[gi]
                .allow
                .iter()
                .position(|a| a.matches(port, proto))
            {
                Some(ai) => PolicyRef::Allow(gi, ai),
                None => PolicyRef::None,
            }
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

/// A TOML string literal (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The policy file, the entry's line and the TOML to add or edit.
fn policy_edit(
    key: &str,
    entry: PolicyRef,
    first: &Finding,
    hosts: &[IpAddr],
    policy: &Policy,
) -> (String, Option<usize>, String) {
    // Without a policy file the audit judged against the built-in baseline.
    let baseline = policy.groups.is_empty() && policy.file.starts_with('(');
    let file = if baseline {
        "policy.toml".to_owned()
    } else {
        policy.file.clone()
    };
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
        PolicyRef::Allow(gi, ai) => {
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
                "# {file}:{}: the [[group.allow]] entry for {}/{} in group {}: {what}.\n[[group.allow]]\n",
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
                Some(v) if !v.trim().is_empty() => {
                    s.push_str(&format!("{name} = {}\n", toml_str(v)))
                }
                _ => s.push_str(&format!("{name} = \"{ph}\"\n")),
            };
            field(
                &mut s,
                "justification",
                &a.justification,
                "<WHY_THE_PORT_MUST_BE_OPEN>",
            );
            field(&mut s, "approver", &a.approver, "<APPROVER>");
            field(&mut s, "ticket", &a.ticket, "<TICKET>");
            match (key, a.review_by) {
                ("review-rule", _) | (_, None) => {
                    s.push_str("review_by = <NEXT_REVIEW_DATE>  # YYYY-MM-DD\n")
                }
                (_, Some(d)) => s.push_str(&format!("review_by = {d}\n")),
            }
            Some(a.line)
        }
        PolicyRef::Exception(ei) => {
            let e = &policy.exceptions[ei];
            s.push_str(&format!(
                "# {file}:{}: exception {} expired on {}. Renew it with a new approval, or delete the\n# entry and fix the finding itself.\n[[exception]]\nid = {}\ntarget = {}\n",
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
                "# {file}:{}: group {} allows at most {} open ports a host. Close the ports nothing needs\n# (each has its own fix); raise the cap only with a documented reason.\nmax_open_ports = <NEW_CAP>\n",
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
                        .map(|g| format!("{} (line {})", g.name, g.line))
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

fn template_name(id: &str, field: &str) -> String {
    format!("{id}.{field}")
}

/// Blank lines left by block tags are kept only singly, and the text ends
/// without trailing blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if blank > 0 && !out.is_empty() {
            out.push('\n');
        }
        blank = 0;
        out.push_str(line.trim_end());
        out.push('\n');
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

/// A name that is safe to paste into a shell command line, or `None`.
/// It may not start with `-` (it would read as an option) and holds only
/// characters that no shell, YAML or HCL gives a meaning to.
fn safe_name(s: &str) -> Option<&str> {
    let s = s.trim();
    let ok = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | ':' | '+' | '-'));
    ok.then_some(s)
}

/// The unit name without its `.service` / `.socket` suffix, so that the
/// templates can name both `UNIT` and `UNIT.socket`.
fn unit_base(s: &str) -> Option<&str> {
    let s = safe_name(s)?;
    let base = s
        .strip_suffix(".service")
        .or_else(|| s.strip_suffix(".socket"))
        .unwrap_or(s);
    safe_name(base)
}

/// The contexts every template is rendered for at load time, for one key:
/// between them they take each side of the protocol, address-family,
/// admin, sources, service, unit and policy-line branches.
fn samples(key: &str) -> [FixContext; 3] {
    let base = FixContext {
        key: key.to_owned(),
        port: Some(22),
        proto: Some(Proto::Tcp),
        service: Some("ssh".into()),
        unit: Some("ssh.service".into()),
        ipv6: false,
        sources: vec!["198.18.5.0/24".parse().expect("sample net")],
        hosts: vec![
            IpAddr::from([198, 18, 0, 10]),
            IpAddr::from([198, 18, 0, 11]),
        ],
        host_total: 2,
        policy_file: "policy.toml".into(),
        policy_line: Some(12),
        policy_snippet: "[[group.allow]]\nport = 22".into(),
        group: Some("dmz".into()),
    };
    [
        base.clone(),
        FixContext {
            port: Some(161),
            proto: Some(Proto::Udp),
            service: None,
            unit: None,
            ipv6: true,
            sources: vec![],
            hosts: vec![IpAddr::from([0x2001, 2, 0, 0, 0, 0, 0, 5])],
            policy_line: None,
            group: None,
            ..base.clone()
        },
        FixContext {
            port: None,
            proto: None,
            service: Some("redis".into()),
            ..base
        },
    ]
}

fn is_name(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.chars().all(allowed)
}

/// Compiles one template and checks every name it uses.
fn compile(
    text: &str,
    file: &str,
    place: &str,
    src: &Spanned<String>,
    partials: Option<&HashSet<&str>>,
) -> Result<Template, RemediationError> {
    let tpl = Template::compile(src.get_ref())
        .map_err(|e| template_error(text, file, place, src, e.pos().map(|p| p.0), e.reason()))?;
    let mut refs = Vec::new();
    collect(&tpl, &mut refs);
    for r in refs {
        let problem = match r {
            Ref::Var(name) if VARIABLES.contains(&name.as_str()) => None,
            Ref::Var(name) => {
                let hint = did_you_mean(&name, VARIABLES)
                    .map(|s| format!(" (did you mean {{{{{s}}}}}?)"))
                    .unwrap_or_default();
                return Err(RemediationError::UnknownPlaceholder {
                    file: file.to_owned(),
                    line: line_of_name(text, src, &name),
                    place: place.to_owned(),
                    name,
                    hint,
                });
            }
            Ref::Helper(name) if HELPERS.contains(&name.as_str()) => None,
            Ref::Helper(name) => Some((
                name.clone(),
                format!("unsupported helper '{name}'; known: {}", HELPERS.join(", ")),
            )),
            Ref::Partial(name) if partials.is_some_and(|p| p.contains(name.as_str())) => None,
            Ref::Partial(name) if partials.is_none() => Some((
                name.clone(),
                format!("'{{{{> {name}}}}}': a partial cannot include another partial"),
            )),
            Ref::Partial(name) => {
                let mut known: Vec<&str> = partials.into_iter().flatten().copied().collect();
                known.sort_unstable();
                Some((
                    name.clone(),
                    format!(
                        "unknown partial '{name}'; known: {}",
                        if known.is_empty() {
                            "none (define them under [partials])".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ))
            }
            Ref::Unsupported(what) => Some((
                String::new(),
                format!("{what} are not supported in remediation templates"),
            )),
        };
        if let Some((name, message)) = problem {
            return Err(RemediationError::Template {
                file: file.to_owned(),
                line: line_of_name(text, src, &name),
                place: place.to_owned(),
                message,
            });
        }
    }
    Ok(tpl)
}

/// A name a template refers to.
enum Ref {
    Var(String),
    Helper(String),
    Partial(String),
    Unsupported(&'static str),
}

fn collect(tpl: &Template, out: &mut Vec<Ref>) {
    for element in &tpl.elements {
        collect_element(element, out);
    }
}

fn collect_element(element: &TemplateElement, out: &mut Vec<Ref>) {
    match element {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
        TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
            if h.params.is_empty() && h.hash.is_empty() {
                // `{{name}}`: a value.
                collect_param(&h.name, out);
            } else {
                // `{{helper arg …}}`.
                out.push(helper_ref(&h.name));
                h.params.iter().for_each(|p| collect_param(p, out));
                h.hash.values().for_each(|p| collect_param(p, out));
            }
        }
        TemplateElement::HelperBlock(h) => {
            out.push(helper_ref(&h.name));
            h.params.iter().for_each(|p| collect_param(p, out));
            h.hash.values().for_each(|p| collect_param(p, out));
            if let Some(t) = &h.template {
                collect(t, out);
            }
            if let Some(t) = &h.inverse {
                collect(t, out);
            }
        }
        TemplateElement::PartialExpression(d) => {
            match &d.name {
                Parameter::Name(n) => out.push(Ref::Partial(n.clone())),
                _ => out.push(Ref::Unsupported("computed partial names")),
            }
            if !d.params.is_empty() || !d.hash.is_empty() {
                out.push(Ref::Unsupported("partial parameters"));
            }
        }
        _ => out.push(Ref::Unsupported("decorators and partial blocks")),
    }
}

fn helper_ref(name: &Parameter) -> Ref {
    match name {
        Parameter::Name(n) => Ref::Helper(n.clone()),
        _ => Ref::Unsupported("computed helper names"),
    }
}

fn collect_param(param: &Parameter, out: &mut Vec<Ref>) {
    match param {
        Parameter::Name(n) => out.push(Ref::Var(n.clone())),
        Parameter::Path(handlebars::Path::Relative((_, raw))) => out.push(Ref::Var(raw.clone())),
        Parameter::Path(handlebars::Path::Local(_)) => {
            out.push(Ref::Unsupported("@-variables"));
        }
        Parameter::Literal(_) => {}
        Parameter::Subexpression(s) => collect_element(&s.element, out),
        _ => out.push(Ref::Unsupported("these parameters")),
    }
}

/// An error inside a template, placed at the line of the file it comes from.
fn template_error(
    text: &str,
    file: &str,
    place: &str,
    src: &Spanned<String>,
    template_line: Option<usize>,
    reason: &dyn std::fmt::Display,
) -> RemediationError {
    RemediationError::Template {
        file: file.to_owned(),
        line: file_line(text, src, template_line.unwrap_or(1)),
        place: place.to_owned(),
        message: reason.to_string(),
    }
}

/// A failed sample rendering; a strict-mode miss is an unknown placeholder.
fn render_error(
    text: &str,
    file: &str,
    place: &str,
    src: &Spanned<String>,
    e: &handlebars::RenderError,
) -> RemediationError {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(name)) => RemediationError::UnknownPlaceholder {
            file: file.to_owned(),
            line: file_line(text, src, e.line_no.unwrap_or(1)),
            place: place.to_owned(),
            name: name.clone(),
            hint: did_you_mean(name, VARIABLES)
                .map(|s| format!(" (did you mean {{{{{s}}}}}?)"))
                .unwrap_or_default(),
        },
        reason => template_error(text, file, place, src, e.line_no, reason),
    }
}

/// The file line of line `template_line` (1-based) of a template string.
fn file_line(text: &str, src: &Spanned<String>, template_line: usize) -> usize {
    let start = src.span().start;
    let opening = text.get(start..).unwrap_or("");
    // A multi-line string's first newline right after the quotes is not
    // part of the value.
    let skip = ["'''\n", "\"\"\"\n", "'''\r\n", "\"\"\"\r\n"]
        .iter()
        .any(|q| opening.starts_with(q)) as usize;
    line_col(text, start).0 + skip + template_line.saturating_sub(1)
}

/// The file line of the first template line that mentions `name` in a tag.
fn line_of_name(text: &str, src: &Spanned<String>, name: &str) -> usize {
    let template_line = src
        .get_ref()
        .lines()
        .position(|l| l.contains("{{") && l.contains(name))
        .map_or(1, |i| i + 1);
    file_line(text, src, template_line)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
#[path = "remediation_tests.rs"]
mod tests;
