//! Report layer: the commands that close one exposed port, per platform
//! (host firewalls, the service manager, Windows, cloud security groups,
//! Kubernetes, configuration as code).
//!
//! The commands are data — handlebars templates in `rules/remediation.toml`,
//! embedded as the default and replaceable from a rules directory — so a
//! platform can be added or corrected without touching code. A report that
//! hands out a command with a typo in it is worse than none, so the file is
//! checked when it is loaded: every template must compile, may use only the
//! placeholders listed in [`VARIABLES`], and is rendered once with sample
//! values in strict mode. After that, [`RemediationCatalog::render`] cannot
//! meet an unknown placeholder.
//!
//! Values that reach a shell command (the service and unit names, which
//! come from identification of untrusted network answers or from the user)
//! are filtered to a conservative character set; anything else becomes the
//! `<SERVICE>` / `<SYSTEMD_UNIT>` placeholder instead of being pasted in.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{Handlebars, RenderErrorReason, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use toml::Spanned;

use crate::model::Proto;

/// The embedded default, `rules/remediation.toml`.
const EMBEDDED: &str = include_str!("../../rules/remediation.toml");

/// The file name looked for in a rules directory.
pub const FILE_NAME: &str = "remediation.toml";

/// What an embedded-file error names as its file.
const EMBEDDED_NAME: &str = "rules/remediation.toml (embedded)";

/// The placeholders a template may use, all filled for every target (see
/// the head of `rules/remediation.toml` for what each holds).
pub const VARIABLES: &[&str] = &[
    "ip",
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
    "host_cidr",
    "ss_flags",
    "service",
    "has_service",
    "unit",
    "has_unit",
    "finding",
];

/// Block and expression helpers a template may call: the logic ones that
/// ship with handlebars. Iteration and lookups have nothing to work on here.
const HELPERS: &[&str] = &["if", "unless", "eq", "ne", "and", "or", "not"];

/// Placeholder shown when the service name is unknown or unsafe to paste.
const SERVICE_PLACEHOLDER: &str = "<SERVICE>";
/// Placeholder shown when the systemd unit is unknown or unsafe to paste.
const UNIT_PLACEHOLDER: &str = "<SYSTEMD_UNIT>";

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
        /// `platform 'ID', commands|verify` or `partial 'NAME'`.
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
    /// A platform id (e.g. in a policy's preferred list) names no platform.
    #[error("unknown remediation platform '{id}'{hint}; known: {known}")]
    UnknownPlatform {
        id: String,
        hint: String,
        known: String,
    },
}

/// The finding to close: where, which port, and what we know of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemediationTarget {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    /// Service name (e.g. `redis`), from identification or the port catalogue.
    pub service: Option<String>,
    /// systemd unit that runs the service, when known (`redis-server` or
    /// `redis-server.service`).
    pub unit: Option<String>,
}

/// The commands for one platform, rendered for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedRemediation {
    /// Platform id, e.g. `ufw`.
    pub platform: String,
    pub title_en: String,
    pub title_zh: String,
    /// Language of `commands`, for the code block (`sh`, `powershell`, `yaml`, `hcl`).
    pub language: String,
    /// Language of `verify` (differs from `language` for YAML and HCL platforms,
    /// whose checks are shell commands).
    pub verify_language: String,
    pub commands: String,
    pub verify: String,
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

/// The validated remediation templates, in file order.
#[derive(Debug, Clone)]
pub struct RemediationCatalog {
    platforms: Vec<Platform>,
    registry: Handlebars<'static>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    partials: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    platform: Vec<Spanned<RawPlatform>>,
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
    verify: Spanned<String>,
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
        // The embedded file is checked by this module's tests, so a failure
        // here is a build that skipped them, not a user error.
        RemediationCatalog::parse(EMBEDDED, EMBEDDED_NAME)
            .unwrap_or_else(|e| panic!("embedded remediation templates are invalid: {e}"))
    }

    /// `DIR/remediation.toml` when it exists (it replaces the embedded file
    /// as a whole), else the embedded catalogue.
    pub fn load_dir(dir: &Path) -> Result<RemediationCatalog, RemediationError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(RemediationCatalog::embedded());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| RemediationError::Io {
            path: path.clone(),
            source,
        })?;
        RemediationCatalog::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a remediation file; `file` is the name errors give.
    pub fn parse(text: &str, file: &str) -> Result<RemediationCatalog, RemediationError> {
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
        // The output is shell, PowerShell, YAML or HCL, not HTML: the report
        // renderers escape for their own format.
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
            for (field, src) in [("commands", &p.commands), ("verify", &p.verify)] {
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

        let catalog = RemediationCatalog {
            platforms,
            registry,
        };
        // Strict rendering with both protocol and address families walks
        // both sides of the `{{#if udp}}` / `{{#if ipv6}}` branches the
        // templates use, and catches whatever the syntax walk cannot.
        for sample in samples() {
            let data = context(&sample);
            for (entry, platform) in raw.platform.iter().zip(&catalog.platforms) {
                let p = entry.get_ref();
                for (field, src) in [("commands", &p.commands), ("verify", &p.verify)] {
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
        Ok(catalog)
    }

    /// The platforms in file order.
    pub fn platforms(&self) -> &[Platform] {
        &self.platforms
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

    /// The commands for every platform: the `preferred` ones first, in the
    /// given order, then the rest in file order. Ids in `preferred` that name
    /// no platform are skipped (see [`Self::check_platforms`]).
    pub fn render(
        &self,
        target: &RemediationTarget,
        preferred: &[String],
    ) -> Vec<RenderedRemediation> {
        let mut order: Vec<usize> = Vec::with_capacity(self.platforms.len());
        for id in preferred {
            if let Some(i) = self.platforms.iter().position(|p| &p.id == id)
                && !order.contains(&i)
            {
                order.push(i);
            }
        }
        for i in 0..self.platforms.len() {
            if !order.contains(&i) {
                order.push(i);
            }
        }
        let data = context(target);
        order
            .into_iter()
            .map(|i| {
                let p = &self.platforms[i];
                RenderedRemediation {
                    platform: p.id.clone(),
                    title_en: p.title_en.clone(),
                    title_zh: p.title_zh.clone(),
                    language: p.language.clone(),
                    verify_language: p.verify_language.clone(),
                    commands: self.render_one(&p.id, "commands", &data),
                    verify: self.render_one(&p.id, "verify", &data),
                }
            })
            .collect()
    }

    fn render_one(&self, id: &str, field: &str, data: &Value) -> String {
        match self.registry.render(&template_name(id, field), data) {
            Ok(text) => tidy(&text),
            // Loading rendered every template with the same set of keys, so
            // this is not expected; say so in the output rather than panic.
            Err(e) => format!("# portwarden could not render this template: {e}"),
        }
    }
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

/// The template data for one target.
fn context(t: &RemediationTarget) -> Value {
    let udp = t.proto == Proto::Udp;
    let ipv6 = t.ip.is_ipv6();
    let service = t.service.as_deref().and_then(safe_name);
    let unit = t.unit.as_deref().and_then(unit_base);
    let finding = match service {
        Some(s) => format!("{} {}/{} ({s})", t.ip, t.port, t.proto),
        None => format!("{} {}/{}", t.ip, t.port, t.proto),
    };
    json!({
        "ip": t.ip.to_string(),
        "port": t.port,
        "proto": t.proto.as_str(),
        "proto_upper": if udp { "UDP" } else { "TCP" },
        "proto_title": if udp { "Udp" } else { "Tcp" },
        "proto_number": if udp { 17 } else { 6 },
        "udp": udp,
        "ipv6": ipv6,
        "ip_family": if ipv6 { "ipv6" } else { "ipv4" },
        "iptables": if ipv6 { "ip6tables" } else { "iptables" },
        "any_cidr": if ipv6 { "::/0" } else { "0.0.0.0/0" },
        "host_cidr": format!("{}/{}", t.ip, if ipv6 { 128 } else { 32 }),
        "ss_flags": if udp { "-ulnp" } else { "-tlnp" },
        "service": service.unwrap_or(SERVICE_PLACEHOLDER),
        "has_service": service.is_some(),
        "unit": unit.unwrap_or(UNIT_PLACEHOLDER),
        "has_unit": unit.is_some(),
        "finding": finding,
    })
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

/// The two targets every template is rendered for at load time: between
/// them they take each side of the protocol, address-family, service and
/// unit branches.
fn samples() -> [RemediationTarget; 2] {
    [
        RemediationTarget {
            ip: IpAddr::from([198, 18, 0, 10]),
            port: 6379,
            proto: Proto::Tcp,
            service: Some("redis".into()),
            unit: Some("redis-server.service".into()),
        },
        RemediationTarget {
            ip: IpAddr::from([0x2001, 2, 0, 0, 0, 0, 0, 5]),
            port: 161,
            proto: Proto::Udp,
            service: None,
            unit: None,
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
mod tests {
    use super::*;

    fn tcp_target() -> RemediationTarget {
        RemediationTarget {
            ip: "198.18.0.10".parse().unwrap(),
            port: 6379,
            proto: Proto::Tcp,
            service: Some("redis".into()),
            unit: Some("redis-server.service".into()),
        }
    }

    fn udp_target() -> RemediationTarget {
        RemediationTarget {
            ip: "2001:2::5".parse().unwrap(),
            port: 161,
            proto: Proto::Udp,
            service: Some("snmp".into()),
            unit: None,
        }
    }

    const ALL_IDS: &[&str] = &[
        "ufw",
        "iptables",
        "nftables",
        "firewalld",
        "systemd",
        "windows-powershell",
        "windows-netsh",
        "aliyun",
        "aws",
        "azure",
        "gcp",
        "kubernetes",
        "ansible",
        "terraform",
    ];

    fn ids(rendered: &[RenderedRemediation]) -> Vec<&str> {
        rendered.iter().map(|r| r.platform.as_str()).collect()
    }

    fn assert_renders(target: &RemediationTarget, expected: &[(&str, &str, &str)]) {
        let rendered = RemediationCatalog::embedded().render(target, &[]);
        assert_eq!(
            ids(&rendered),
            expected.iter().map(|e| e.0).collect::<Vec<_>>()
        );
        for (r, (id, commands, verify)) in rendered.iter().zip(expected) {
            assert_eq!(r.commands, *commands, "commands of {id}");
            assert_eq!(r.verify, *verify, "verify of {id}");
        }
    }

    #[test]
    fn embedded_has_every_platform_in_file_order() {
        let c = RemediationCatalog::embedded();
        let ids: Vec<&str> = c.platforms().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ALL_IDS);
        let langs: Vec<(&str, &str)> = c
            .platforms()
            .iter()
            .map(|p| (p.language.as_str(), p.verify_language.as_str()))
            .collect();
        assert_eq!(
            langs,
            [
                ("sh", "sh"),
                ("sh", "sh"),
                ("sh", "sh"),
                ("sh", "sh"),
                ("sh", "sh"),
                ("powershell", "powershell"),
                ("powershell", "powershell"),
                ("sh", "sh"),
                ("sh", "sh"),
                ("sh", "sh"),
                ("sh", "sh"),
                ("yaml", "sh"),
                ("yaml", "sh"),
                ("hcl", "sh"),
            ]
        );
        let ufw = &c.platforms()[0];
        assert_eq!(ufw.title_en, "ufw (Ubuntu, Debian)");
        assert_eq!(ufw.title_zh, "ufw 防火墙（Ubuntu、Debian）");
    }

    #[test]
    fn every_platform_renders_a_tcp_port_on_ipv4_exactly() {
        assert_renders(&tcp_target(), TCP_EXPECTED);
    }

    #[test]
    fn every_platform_renders_a_udp_port_on_ipv6_exactly() {
        assert_renders(&udp_target(), UDP_EXPECTED);
    }

    #[test]
    fn rendered_entries_carry_titles_and_languages() {
        let r = RemediationCatalog::embedded().render(&tcp_target(), &["kubernetes".into()]);
        assert_eq!(
            (
                r[0].platform.as_str(),
                r[0].title_en.as_str(),
                r[0].title_zh.as_str(),
                r[0].language.as_str(),
                r[0].verify_language.as_str()
            ),
            (
                "kubernetes",
                "Kubernetes NetworkPolicy",
                "Kubernetes 网络策略（NetworkPolicy）",
                "yaml",
                "sh"
            )
        );
    }

    #[test]
    fn preferred_platforms_come_first_in_the_given_order() {
        let c = RemediationCatalog::embedded();
        let preferred: Vec<String> = ["aws", "systemd", "no-such", "aws", "ufw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = c.render(&tcp_target(), &preferred);
        assert_eq!(
            ids(&r),
            [
                "aws",
                "systemd",
                "ufw",
                "iptables",
                "nftables",
                "firewalld",
                "windows-powershell",
                "windows-netsh",
                "aliyun",
                "azure",
                "gcp",
                "kubernetes",
                "ansible",
                "terraform",
            ]
        );
        assert_eq!(ids(&c.render(&tcp_target(), &[])), ALL_IDS);
    }

    #[test]
    fn check_platforms_names_the_unknown_id_and_suggests() {
        let c = RemediationCatalog::embedded();
        assert!(c.check_platforms(&["aws".into(), "gcp".into()]).is_ok());
        assert!(c.check_platforms(&["windows".into()]).is_ok(), "a family");
        assert!(c.check_platforms(&["window".into()]).is_err());
        let err = c
            .check_platforms(&["aws".into(), "ufx".into()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "unknown remediation platform 'ufx' (did you mean 'ufw'?); known: {}",
                ALL_IDS.join(", ")
            )
        );
    }

    #[test]
    fn names_unsafe_for_a_shell_become_placeholders() {
        let c = RemediationCatalog::embedded();
        let mut t = tcp_target();
        t.service = Some("redis; rm -rf /".into());
        t.unit = Some("-x".into());
        let r = c.render(&t, &["firewalld".into(), "systemd".into()]);
        assert!(
            r[0].commands.contains("--remove-service=<SERVICE>\n"),
            "{}",
            r[0].commands
        );
        assert!(
            r[0].commands
                .starts_with("# portwarden finding: 198.18.0.10 6379/tcp\n")
        );
        assert!(
            r[1].commands
                .contains("sudo systemctl disable --now <SYSTEMD_UNIT>\n")
        );

        assert_eq!(safe_name(" redis "), Some("redis"));
        assert_eq!(safe_name("$(reboot)"), None);
        assert_eq!(safe_name("a`b`"), None);
        assert_eq!(safe_name(""), None);
        assert_eq!(safe_name(&"a".repeat(65)), None);
        assert_eq!(unit_base("redis-server.service"), Some("redis-server"));
        assert_eq!(unit_base("cups.socket"), Some("cups"));
        assert_eq!(unit_base("getty@tty1.service"), Some("getty@tty1"));
        assert_eq!(unit_base(".service"), None);
    }

    fn parse_err(toml: &str) -> RemediationError {
        RemediationCatalog::parse(toml, "test.toml").unwrap_err()
    }

    /// A platform without its templates: lines 1-5 of the test files.
    const HEAD: &str = "[[platform]]\nid = \"demo\"\ntitle_en = \"Demo\"\ntitle_zh = \"演示\"\nlanguage = \"sh\"\n";

    #[test]
    fn unknown_placeholder_fails_at_load_naming_platform_and_placeholder() {
        let toml = format!(
            "{HEAD}commands = '''\nsudo ufw deny {{{{port}}}}/{{{{prot}}}}\n'''\nverify = \"true\"\n"
        );
        match parse_err(&toml) {
            RemediationError::UnknownPlaceholder {
                file,
                line,
                place,
                name,
                hint,
            } => {
                assert_eq!(
                    (
                        file.as_str(),
                        line,
                        place.as_str(),
                        name.as_str(),
                        hint.as_str()
                    ),
                    (
                        "test.toml",
                        7,
                        "platform 'demo', commands",
                        "prot",
                        " (did you mean {{proto}}?)"
                    )
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = parse_err(&toml).to_string();
        assert!(
            msg.starts_with(
                "test.toml:7: platform 'demo', commands: unknown placeholder {{prot}} \
                 (did you mean {{proto}}?); known: ip, port, proto,"
            ),
            "{msg}"
        );
    }

    #[test]
    fn unknown_placeholder_in_an_untaken_branch_is_still_found() {
        let toml = format!(
            "{HEAD}commands = \"x\"\nverify = '''\nok\n{{{{#if udp}}}}\n\
             {{{{#unless ipv6}}}}{{{{hostname}}}}{{{{/unless}}}}\n{{{{/if}}}}\n'''\n"
        );
        let err = parse_err(&toml);
        assert!(
            matches!(&err, RemediationError::UnknownPlaceholder { line: 10, place, name, .. }
                if place == "platform 'demo', verify" && name == "hostname"),
            "{err:?}"
        );
    }

    #[test]
    fn partials_are_checked_too() {
        let toml = format!(
            "[partials]\nrecheck = \"portwarden scan {{{{host}}}}\"\n\n\
             {HEAD}commands = \"{{{{> recheck}}}}\"\nverify = \"v\"\n"
        );
        let err = parse_err(&toml);
        assert!(
            matches!(&err, RemediationError::UnknownPlaceholder { line: 2, place, name, .. }
                if place == "partial 'recheck'" && name == "host"),
            "{err:?}"
        );

        let toml = format!("{HEAD}commands = \"{{{{> nowhere}}}}\"\nverify = \"v\"\n");
        assert_eq!(
            parse_err(&toml).to_string(),
            "test.toml:6: platform 'demo', commands: unknown partial 'nowhere'; \
             known: none (define them under [partials])"
        );
    }

    #[test]
    fn a_partial_cannot_include_a_partial_and_a_file_needs_a_platform() {
        let toml = format!(
            "[partials]\na = \"{{{{> b}}}}\"\nb = \"x\"\n\n{HEAD}commands = \"c\"\nverify = \"v\"\n"
        );
        assert_eq!(
            parse_err(&toml).to_string(),
            "test.toml:2: partial 'a': '{{> b}}': a partial cannot include another partial"
        );
        assert_eq!(
            parse_err("# nothing here\n").to_string(),
            "test.toml:1: no [[platform]] entries: a remediation file needs at least one"
        );
    }

    #[test]
    fn unsupported_helpers_and_syntax_errors_are_reported_with_the_line() {
        let toml =
            format!("{HEAD}commands = \"{{{{#each port}}}}x{{{{/each}}}}\"\nverify = \"v\"\n");
        assert_eq!(
            parse_err(&toml).to_string(),
            "test.toml:6: platform 'demo', commands: unsupported helper 'each'; \
             known: if, unless, eq, ne, and, or, not"
        );
        let toml =
            format!("{HEAD}commands = \"ok\"\nverify = '''\nline one\n{{{{#if udp}}}}\n'''\n");
        let err = parse_err(&toml);
        // The unclosed block is noticed where the template ends.
        assert!(
            err.to_string()
                .starts_with("test.toml:10: platform 'demo', verify: invalid handlebars syntax"),
            "{err}"
        );
    }

    #[test]
    fn toml_errors_and_bad_fields_name_file_and_line() {
        let err = parse_err("[[platform]]\nid = \"demo\"\ntitle_en = \n");
        assert!(
            matches!(&err, RemediationError::Toml { file, line: 3, .. } if file == "test.toml"),
            "{err:?}"
        );
        let err = parse_err(&format!(
            "{HEAD}commands = \"a\"\nverify = \"b\"\ncolour = \"red\"\n"
        ));
        assert!(
            matches!(&err, RemediationError::Toml { line: 8, message, .. } if message.contains("colour")),
            "{err:?}"
        );
        let err = parse_err(&format!("{HEAD}commands = \"a\"\n"));
        assert!(
            matches!(&err, RemediationError::Toml { message, .. } if message.contains("verify")),
            "{err:?}"
        );
        let twice = format!(
            "{HEAD}commands = \"a\"\nverify = \"b\"\n\n{HEAD}commands = \"a\"\nverify = \"b\"\n"
        );
        assert_eq!(
            parse_err(&twice).to_string(),
            "test.toml:9: platform id 'demo' is used twice"
        );
        let bad_id =
            HEAD.replace("\"demo\"", "\"Demo Platform\"") + "commands = \"a\"\nverify = \"b\"\n";
        assert_eq!(
            parse_err(&bad_id).to_string(),
            "test.toml:1: platform id 'Demo Platform': use lower-case letters, digits and '-'"
        );
        let empty_title = HEAD.replace("\"Demo\"", "\" \"") + "commands = \"a\"\nverify = \"b\"\n";
        assert_eq!(
            parse_err(&empty_title).to_string(),
            "test.toml:1: platform 'demo': title_en is empty"
        );
    }

    #[test]
    fn templates_render_without_html_escaping_and_verify_language_defaults() {
        let toml = format!(
            "{HEAD}commands = '''\necho \"<A>\" 'b' & {{{{finding}}}}\n'''\n\
             verify = \"{{{{host_cidr}}}} {{{{any_cidr}}}} {{{{ip_family}}}} {{{{proto_title}}}}\"\n"
        );
        let c = RemediationCatalog::parse(&toml, "test.toml").unwrap();
        let r = c.render(&udp_target(), &[]);
        assert_eq!(
            (
                r[0].commands.as_str(),
                r[0].verify.as_str(),
                r[0].verify_language.as_str()
            ),
            (
                "echo \"<A>\" 'b' & 2001:2::5 161/udp (snmp)",
                "2001:2::5/128 ::/0 ipv6 Udp",
                "sh"
            )
        );
    }

    #[test]
    fn load_dir_uses_the_directory_file_when_there_is_one() {
        let dir = std::env::temp_dir().join(format!("portwarden-remed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = RemediationCatalog::load_dir(&dir).unwrap();
        assert_eq!(c.platforms().len(), ALL_IDS.len());

        let path = dir.join(FILE_NAME);
        std::fs::write(
            &path,
            format!("{HEAD}commands = \"a {{{{port}}}}\"\nverify = \"b\"\n"),
        )
        .unwrap();
        let c = RemediationCatalog::load_dir(&dir).unwrap();
        let r = c.render(&tcp_target(), &[]);
        assert_eq!((ids(&r), r[0].commands.as_str()), (vec!["demo"], "a 6379"));

        std::fs::write(
            &path,
            format!("{HEAD}commands = \"{{{{nope}}}}\"\nverify = \"b\"\n"),
        )
        .unwrap();
        let msg = RemediationCatalog::load_dir(&dir).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        let want = format!(
            "{}:6: platform 'demo', commands: unknown placeholder {{{{nope}}}};",
            path.display()
        );
        assert!(msg.starts_with(&want), "{msg}");
    }

    #[test]
    fn tidy_keeps_single_blank_lines_only() {
        assert_eq!(tidy("\n\na  \n\n\n\nb\n\n"), "a\n\nb");
    }

    // What every platform renders for the two targets. Reviewed by hand:
    // a change here is a change of the commands users will run.

    const TCP_EXPECTED: &[(&str, &str, &str)] = &[
        (
            "ufw",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# Remove the rule that opens the port ("Could not delete non-existent rule" means there was none).
# `sudo ufw status numbered` shows other rules for it (e.g. `allow 6379` or an app profile): delete those by number.
sudo ufw delete allow 6379/tcp
# ufw applies the first rule that matches. An appended deny would sit below any allow that still
# matches the port and never be reached, so insert the deny at position 1, above every allow.
sudo ufw insert 1 deny 6379/tcp
# If ufw answers "Invalid position '1'", the rule list is empty: use `sudo ufw deny 6379/tcp`."##,
            r##"sudo ufw status numbered
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -tlnp 'sport = :6379'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "iptables",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# The address is IPv4, so the rule goes into iptables (ip6tables filters IPv6).
# -I puts the rule at the top of INPUT: appended with -A it would come after an ACCEPT that lets the port in.
sudo iptables -I INPUT -p tcp --dport 6379 -j DROP
# If the host also answers on this port over IPv6, repeat the rule with ip6tables.
# Keep the rules across reboots (Debian/Ubuntu package iptables-persistent; saves IPv4 and IPv6):
sudo netfilter-persistent save
# A port published by Docker never passes INPUT; drop it in the DOCKER-USER chain instead:
# sudo iptables -I DOCKER-USER -p tcp -m conntrack --ctorigdstport 6379 --ctdir ORIGINAL -j DROP"##,
            r##"sudo iptables -L INPUT -n --line-numbers
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -tlnp 'sport = :6379'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "nftables",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# The inet family filters IPv4 and IPv6 alike. This assumes the usual table `inet filter` with the
# chain `input`; `sudo nft list ruleset` shows the names on this host.
# `insert` puts the rule at the top of the chain, ahead of any accept for the port (`add` would append it).
sudo nft insert rule inet filter input tcp dport 6379 drop
# The rule lasts until reboot. To keep it, add the same rule at the top of the input chain in
# /etc/nftables.conf (the file the nftables service loads at boot), then check the file:
sudo nft -c -f /etc/nftables.conf"##,
            r##"sudo nft -a list chain inet filter input
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -tlnp 'sport = :6379'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "firewalld",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# <ZONE> is the zone of the interface that carries 198.18.0.10: `sudo firewall-cmd --get-active-zones`.
sudo firewall-cmd --permanent --zone=<ZONE> --remove-port=6379/tcp
# If a firewalld service opens the port instead (see `sudo firewall-cmd --zone=<ZONE> --list-services`),
# remove the service; firewalld names its services itself (`firewall-cmd --get-services` lists them).
sudo firewall-cmd --permanent --zone=<ZONE> --remove-service=redis
# --permanent changes only the saved configuration; --reload makes it the running one.
sudo firewall-cmd --reload"##,
            r##"# The port and the service must be gone from the zone (check rich rules too):
sudo firewall-cmd --zone=<ZONE> --list-all
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -tlnp 'sport = :6379'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "systemd",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# Socket first: while redis-server.socket listens, systemd starts the service again on the next connection.
# ("Unit file redis-server.socket does not exist" means the service is not socket-activated: go on.)
sudo systemctl disable --now redis-server.socket
sudo systemctl disable --now redis-server
# To stop anything else from starting it again:  sudo systemctl mask redis-server"##,
            r##"systemctl is-active redis-server    # expect: inactive
systemctl is-enabled redis-server   # expect: disabled (or masked)
# Nothing may listen any more: expect only the header line.
sudo ss -tlnp 'sport = :6379'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "windows-powershell",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# Run in an elevated PowerShell. In Windows Firewall a block rule wins over every allow rule,
# so this one rule closes the port whatever else allows it.
New-NetFirewallRule -DisplayName "Block-In-TCP-6379" -Direction Inbound -Protocol TCP -LocalPort 6379 -Action Block -Profile Any
# The allow rules that opened the port, to review or remove (pipe them into Remove-NetFirewallRule):
Get-NetFirewallPortFilter -Protocol TCP | Where-Object LocalPort -eq 6379 | Get-NetFirewallRule | Where-Object { $_.Direction -eq 'Inbound' -and $_.Action -eq 'Allow' }
# Or stop the service itself:
# Stop-Service -Name <WINDOWS_SERVICE>; Set-Service -Name <WINDOWS_SERVICE> -StartupType Disabled"##,
            r##"Get-NetFirewallRule -DisplayName "Block-In-TCP-6379" | Format-Table DisplayName, Enabled, Direction, Action
# The listener stays (the firewall closes the port, not the service); the re-scan is what counts.
Get-NetTCPConnection -LocalPort 6379 -State Listen -ErrorAction SilentlyContinue
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "windows-netsh",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# Run in an elevated prompt. In Windows Firewall a block rule wins over every allow rule.
netsh advfirewall firewall add rule name="Block-In-TCP-6379" dir=in action=block protocol=TCP localport=6379 profile=any"##,
            r##"netsh advfirewall firewall show rule name="Block-In-TCP-6379"
# The listener stays (the firewall closes the port, not the service); the re-scan is what counts.
netstat -ano -p TCP | findstr /C:":6379 "
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "aliyun",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# 1. Find the ingress rule that lets 6379/tcp in and note its SecurityGroupRuleId:
aliyun ecs DescribeSecurityGroupAttribute --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --Direction ingress
# 2. Revoke it:
aliyun ecs RevokeSecurityGroup --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --SecurityGroupRuleId.1 <SECURITY_GROUP_RULE_ID>
# 3. Add an explicit Drop rule at priority 1 (1-100, lower wins; at equal priority Drop beats Accept),
#    so no Accept rule added later can open the port again:
aliyun ecs AuthorizeSecurityGroup --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --Policy Drop --Priority 1 --IpProtocol tcp --PortRange 6379/6379 --SourceCidrIp 0.0.0.0/0 --Description "portwarden: close 6379/tcp""##,
            r##"aliyun ecs DescribeSecurityGroupAttribute --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --Direction ingress
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "aws",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# Security groups can only allow: revoke the rule that allows the port.
aws ec2 revoke-security-group-ingress --region <REGION> --group-id <SECURITY_GROUP_ID> --protocol tcp --port 6379 --cidr 0.0.0.0/0
# A rule with another source does not match the command above: find its SecurityGroupRuleId and revoke that.
aws ec2 describe-security-group-rules --region <REGION> --filters Name=group-id,Values=<SECURITY_GROUP_ID>
# aws ec2 revoke-security-group-ingress --region <REGION> --group-id <SECURITY_GROUP_ID> --security-group-rule-ids <SECURITY_GROUP_RULE_ID>
# The subnet's network ACL can deny. It applies the lowest matching rule number first:
# pick a <RULE_NUMBER> below the ACL's allow rules.
aws ec2 create-network-acl-entry --region <REGION> --network-acl-id <NETWORK_ACL_ID> --ingress --rule-number <RULE_NUMBER> --protocol 6 --port-range From=6379,To=6379 --cidr-block 0.0.0.0/0 --rule-action deny"##,
            r##"aws ec2 describe-security-group-rules --region <REGION> --filters Name=group-id,Values=<SECURITY_GROUP_ID>
aws ec2 describe-network-acls --region <REGION> --network-acl-ids <NETWORK_ACL_ID>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "azure",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# NSG rules apply in priority order (100-4096, lower first): pick a <PRIORITY> below the rule that allows the port.
az network nsg rule create --resource-group <RESOURCE_GROUP> --nsg-name <NSG_NAME> --name Deny-In-TCP-6379 --priority <PRIORITY> --direction Inbound --access Deny --protocol Tcp --source-address-prefixes '*' --source-port-ranges '*' --destination-address-prefixes '*' --destination-port-ranges 6379
# The allow rule itself, to review and delete (az network nsg rule delete ... --name <RULE_NAME>):
az network nsg rule list --resource-group <RESOURCE_GROUP> --nsg-name <NSG_NAME> --output table"##,
            r##"az network nsg rule show --resource-group <RESOURCE_GROUP> --nsg-name <NSG_NAME> --name Deny-In-TCP-6379 --output table
# The rules in force on the VM's network interface, all NSGs combined:
az network nic list-effective-nsg --resource-group <RESOURCE_GROUP> --name <NIC_NAME>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "gcp",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# Rules apply in priority order (0-65535, lower first; at equal priority deny beats allow):
# pick a <PRIORITY> no higher than that of the rule that allows the port.
gcloud compute firewall-rules create deny-in-tcp-6379 --project=<PROJECT_ID> --network=<NETWORK> --direction=INGRESS --action=DENY --rules=tcp:6379 --source-ranges=0.0.0.0/0 --priority=<PRIORITY>
# The allow rules, to review and delete (gcloud compute firewall-rules delete <RULE_NAME>):
gcloud compute firewall-rules list --project=<PROJECT_ID> --format="table(name,network,direction,priority,sourceRanges.list(),allowed[].map().firewall_rule().list())""##,
            r##"gcloud compute firewall-rules describe deny-in-tcp-6379 --project=<PROJECT_ID>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "kubernetes",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# A NetworkPolicy can only allow. Once a policy selects a pod, the pod accepts only the ingress some
# policy lists, so 6379/tcp is closed by leaving it out of `ports` below.
# Needs a network plugin that enforces NetworkPolicy (Calico, Cilium, ...). Apply: kubectl apply -f policy.yaml
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-listed-ports-only
  namespace: <NAMESPACE>
spec:
  podSelector:
    matchLabels:
      app: <APP_LABEL>
  policyTypes:
    - Ingress
  ingress:
    # List only the ports the pods must serve (6379/tcp is not one of them).
    # With no port to allow at all, delete `ingress:` and everything below it: all ingress is then denied.
    - ports:
        - protocol: TCP
          port: <ALLOWED_PORT>"##,
            r##"kubectl -n <NAMESPACE> describe networkpolicy allow-listed-ports-only
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "ansible",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# Keep the tasks for the host's firewall: ufw (Ubuntu, Debian) or firewalld (RHEL, Fedora, SUSE).
- name: Delete the ufw rule that allows 6379/tcp
  community.general.ufw:
    rule: allow
    port: "6379"
    proto: tcp
    delete: true

- name: Deny 6379/tcp in ufw, above every allow (ufw applies the first match)
  community.general.ufw:
    rule: deny
    port: "6379"
    proto: tcp
    insert: 1

- name: Remove 6379/tcp from the firewalld zone
  ansible.posix.firewalld:
    zone: <ZONE>
    port: 6379/tcp
    permanent: true
    immediate: true
    state: disabled"##,
            r##"ansible-playbook --check --diff <PLAYBOOK>   # dry run: shows what would change
ansible-playbook <PLAYBOOK>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
        (
            "terraform",
            r##"# portwarden finding: 198.18.0.10 6379/tcp (redis)
# 1. Security groups can only allow: delete the rule that opens 6379/tcp (an
#    aws_security_group_rule, an aws_vpc_security_group_ingress_rule or an ingress block of the
#    aws_security_group) from the configuration.
# 2. Deny the port in the subnet's network ACL, which applies the lowest matching rule number first:
#    <RULE_NUMBER> must be below the ACL's allow rules.
resource "aws_network_acl_rule" "deny_in_tcp_6379" {
  network_acl_id = "<NETWORK_ACL_ID>"
  egress         = false
  rule_number    = <RULE_NUMBER>
  rule_action    = "deny"
  protocol       = "6"
  from_port      = 6379
  to_port        = 6379

  cidr_block = "0.0.0.0/0"
}"##,
            r##"terraform plan    # expect: the security group rule destroyed, aws_network_acl_rule.deny_in_tcp_6379 created
terraform apply
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 198.18.0.10 -p 6379"##,
        ),
    ];

    const UDP_EXPECTED: &[(&str, &str, &str)] = &[
        (
            "ufw",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# Remove the rule that opens the port ("Could not delete non-existent rule" means there was none).
# `sudo ufw status numbered` shows other rules for it (e.g. `allow 161` or an app profile): delete those by number.
sudo ufw delete allow 161/udp
# ufw applies the first rule that matches. An appended deny would sit below any allow that still
# matches the port and never be reached, so insert the deny at position 1, above every allow.
sudo ufw insert 1 deny 161/udp
# If ufw answers "Invalid position '1'", the rule list is empty: use `sudo ufw deny 161/udp`."##,
            r##"sudo ufw status numbered
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -ulnp 'sport = :161'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "iptables",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# The address is IPv6, so the rule goes into ip6tables (iptables only filters IPv4).
# -I puts the rule at the top of INPUT: appended with -A it would come after an ACCEPT that lets the port in.
sudo ip6tables -I INPUT -p udp --dport 161 -j DROP
# If the host also answers on this port over IPv4, repeat the rule with iptables.
# Keep the rules across reboots (Debian/Ubuntu package iptables-persistent; saves IPv4 and IPv6):
sudo netfilter-persistent save
# A port published by Docker never passes INPUT; drop it in the DOCKER-USER chain instead:
# sudo ip6tables -I DOCKER-USER -p udp -m conntrack --ctorigdstport 161 --ctdir ORIGINAL -j DROP"##,
            r##"sudo ip6tables -L INPUT -n --line-numbers
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -ulnp 'sport = :161'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "nftables",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# The inet family filters IPv4 and IPv6 alike. This assumes the usual table `inet filter` with the
# chain `input`; `sudo nft list ruleset` shows the names on this host.
# `insert` puts the rule at the top of the chain, ahead of any accept for the port (`add` would append it).
sudo nft insert rule inet filter input udp dport 161 drop
# The rule lasts until reboot. To keep it, add the same rule at the top of the input chain in
# /etc/nftables.conf (the file the nftables service loads at boot), then check the file:
sudo nft -c -f /etc/nftables.conf"##,
            r##"sudo nft -a list chain inet filter input
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -ulnp 'sport = :161'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "firewalld",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# <ZONE> is the zone of the interface that carries 2001:2::5: `sudo firewall-cmd --get-active-zones`.
sudo firewall-cmd --permanent --zone=<ZONE> --remove-port=161/udp
# If a firewalld service opens the port instead (see `sudo firewall-cmd --zone=<ZONE> --list-services`),
# remove the service; firewalld names its services itself (`firewall-cmd --get-services` lists them).
sudo firewall-cmd --permanent --zone=<ZONE> --remove-service=snmp
# --permanent changes only the saved configuration; --reload makes it the running one.
sudo firewall-cmd --reload"##,
            r##"# The port and the service must be gone from the zone (check rich rules too):
sudo firewall-cmd --zone=<ZONE> --list-all
# Is anything still listening? A firewall rule leaves the listener in place: the re-scan is what counts.
sudo ss -ulnp 'sport = :161'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "systemd",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# Find the unit that owns the listener: take the pid from `sudo ss -ulnp 'sport = :161'`,
# then `systemctl status <PID>` names the unit. Put its name in place of <SYSTEMD_UNIT>.
# Socket first: while <SYSTEMD_UNIT>.socket listens, systemd starts the service again on the next connection.
# ("Unit file <SYSTEMD_UNIT>.socket does not exist" means the service is not socket-activated: go on.)
sudo systemctl disable --now <SYSTEMD_UNIT>.socket
sudo systemctl disable --now <SYSTEMD_UNIT>
# To stop anything else from starting it again:  sudo systemctl mask <SYSTEMD_UNIT>"##,
            r##"systemctl is-active <SYSTEMD_UNIT>    # expect: inactive
systemctl is-enabled <SYSTEMD_UNIT>   # expect: disabled (or masked)
# Nothing may listen any more: expect only the header line.
sudo ss -ulnp 'sport = :161'
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "windows-powershell",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# Run in an elevated PowerShell. In Windows Firewall a block rule wins over every allow rule,
# so this one rule closes the port whatever else allows it.
New-NetFirewallRule -DisplayName "Block-In-UDP-161" -Direction Inbound -Protocol UDP -LocalPort 161 -Action Block -Profile Any
# The allow rules that opened the port, to review or remove (pipe them into Remove-NetFirewallRule):
Get-NetFirewallPortFilter -Protocol UDP | Where-Object LocalPort -eq 161 | Get-NetFirewallRule | Where-Object { $_.Direction -eq 'Inbound' -and $_.Action -eq 'Allow' }
# Or stop the service itself:
# Stop-Service -Name <WINDOWS_SERVICE>; Set-Service -Name <WINDOWS_SERVICE> -StartupType Disabled"##,
            r##"Get-NetFirewallRule -DisplayName "Block-In-UDP-161" | Format-Table DisplayName, Enabled, Direction, Action
# The listener stays (the firewall closes the port, not the service); the re-scan is what counts.
Get-NetUDPEndpoint -LocalPort 161 -ErrorAction SilentlyContinue
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "windows-netsh",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# Run in an elevated prompt. In Windows Firewall a block rule wins over every allow rule.
netsh advfirewall firewall add rule name="Block-In-UDP-161" dir=in action=block protocol=UDP localport=161 profile=any"##,
            r##"netsh advfirewall firewall show rule name="Block-In-UDP-161"
# The listener stays (the firewall closes the port, not the service); the re-scan is what counts.
netstat -ano -p UDPv6 | findstr /C:":161 "
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "aliyun",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# 1. Find the ingress rule that lets 161/udp in and note its SecurityGroupRuleId:
aliyun ecs DescribeSecurityGroupAttribute --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --Direction ingress
# 2. Revoke it:
aliyun ecs RevokeSecurityGroup --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --SecurityGroupRuleId.1 <SECURITY_GROUP_RULE_ID>
# 3. Add an explicit Drop rule at priority 1 (1-100, lower wins; at equal priority Drop beats Accept),
#    so no Accept rule added later can open the port again:
aliyun ecs AuthorizeSecurityGroup --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --Policy Drop --Priority 1 --IpProtocol udp --PortRange 161/161 --Ipv6SourceCidrIp ::/0 --Description "portwarden: close 161/udp""##,
            r##"aliyun ecs DescribeSecurityGroupAttribute --RegionId <REGION> --SecurityGroupId <SECURITY_GROUP_ID> --Direction ingress
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "aws",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# Security groups can only allow: revoke the rule that allows the port.
aws ec2 revoke-security-group-ingress --region <REGION> --group-id <SECURITY_GROUP_ID> --ip-permissions 'IpProtocol=udp,FromPort=161,ToPort=161,Ipv6Ranges=[{CidrIpv6=::/0}]'
# A rule with another source does not match the command above: find its SecurityGroupRuleId and revoke that.
aws ec2 describe-security-group-rules --region <REGION> --filters Name=group-id,Values=<SECURITY_GROUP_ID>
# aws ec2 revoke-security-group-ingress --region <REGION> --group-id <SECURITY_GROUP_ID> --security-group-rule-ids <SECURITY_GROUP_RULE_ID>
# The subnet's network ACL can deny. It applies the lowest matching rule number first:
# pick a <RULE_NUMBER> below the ACL's allow rules.
aws ec2 create-network-acl-entry --region <REGION> --network-acl-id <NETWORK_ACL_ID> --ingress --rule-number <RULE_NUMBER> --protocol 17 --port-range From=161,To=161 --ipv6-cidr-block ::/0 --rule-action deny"##,
            r##"aws ec2 describe-security-group-rules --region <REGION> --filters Name=group-id,Values=<SECURITY_GROUP_ID>
aws ec2 describe-network-acls --region <REGION> --network-acl-ids <NETWORK_ACL_ID>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "azure",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# NSG rules apply in priority order (100-4096, lower first): pick a <PRIORITY> below the rule that allows the port.
az network nsg rule create --resource-group <RESOURCE_GROUP> --nsg-name <NSG_NAME> --name Deny-In-UDP-161 --priority <PRIORITY> --direction Inbound --access Deny --protocol Udp --source-address-prefixes '*' --source-port-ranges '*' --destination-address-prefixes '*' --destination-port-ranges 161
# The allow rule itself, to review and delete (az network nsg rule delete ... --name <RULE_NAME>):
az network nsg rule list --resource-group <RESOURCE_GROUP> --nsg-name <NSG_NAME> --output table"##,
            r##"az network nsg rule show --resource-group <RESOURCE_GROUP> --nsg-name <NSG_NAME> --name Deny-In-UDP-161 --output table
# The rules in force on the VM's network interface, all NSGs combined:
az network nic list-effective-nsg --resource-group <RESOURCE_GROUP> --name <NIC_NAME>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "gcp",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# Rules apply in priority order (0-65535, lower first; at equal priority deny beats allow):
# pick a <PRIORITY> no higher than that of the rule that allows the port.
gcloud compute firewall-rules create deny-in-udp-161 --project=<PROJECT_ID> --network=<NETWORK> --direction=INGRESS --action=DENY --rules=udp:161 --source-ranges=::/0 --priority=<PRIORITY>
# The allow rules, to review and delete (gcloud compute firewall-rules delete <RULE_NAME>):
gcloud compute firewall-rules list --project=<PROJECT_ID> --format="table(name,network,direction,priority,sourceRanges.list(),allowed[].map().firewall_rule().list())""##,
            r##"gcloud compute firewall-rules describe deny-in-udp-161 --project=<PROJECT_ID>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "kubernetes",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# A NetworkPolicy can only allow. Once a policy selects a pod, the pod accepts only the ingress some
# policy lists, so 161/udp is closed by leaving it out of `ports` below.
# Needs a network plugin that enforces NetworkPolicy (Calico, Cilium, ...). Apply: kubectl apply -f policy.yaml
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-listed-ports-only
  namespace: <NAMESPACE>
spec:
  podSelector:
    matchLabels:
      app: <APP_LABEL>
  policyTypes:
    - Ingress
  ingress:
    # List only the ports the pods must serve (161/udp is not one of them).
    # With no port to allow at all, delete `ingress:` and everything below it: all ingress is then denied.
    - ports:
        - protocol: TCP
          port: <ALLOWED_PORT>"##,
            r##"kubectl -n <NAMESPACE> describe networkpolicy allow-listed-ports-only
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "ansible",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# Keep the tasks for the host's firewall: ufw (Ubuntu, Debian) or firewalld (RHEL, Fedora, SUSE).
- name: Delete the ufw rule that allows 161/udp
  community.general.ufw:
    rule: allow
    port: "161"
    proto: udp
    delete: true

- name: Deny 161/udp in ufw, above every allow (ufw applies the first match)
  community.general.ufw:
    rule: deny
    port: "161"
    proto: udp
    insert: 1

- name: Remove 161/udp from the firewalld zone
  ansible.posix.firewalld:
    zone: <ZONE>
    port: 161/udp
    permanent: true
    immediate: true
    state: disabled"##,
            r##"ansible-playbook --check --diff <PLAYBOOK>   # dry run: shows what would change
ansible-playbook <PLAYBOOK>
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
        (
            "terraform",
            r##"# portwarden finding: 2001:2::5 161/udp (snmp)
# 1. Security groups can only allow: delete the rule that opens 161/udp (an
#    aws_security_group_rule, an aws_vpc_security_group_ingress_rule or an ingress block of the
#    aws_security_group) from the configuration.
# 2. Deny the port in the subnet's network ACL, which applies the lowest matching rule number first:
#    <RULE_NUMBER> must be below the ACL's allow rules.
resource "aws_network_acl_rule" "deny_in_udp_161" {
  network_acl_id = "<NETWORK_ACL_ID>"
  egress         = false
  rule_number    = <RULE_NUMBER>
  rule_action    = "deny"
  protocol       = "17"
  from_port      = 161
  to_port        = 161

  ipv6_cidr_block = "::/0"
}"##,
            r##"terraform plan    # expect: the security group rule destroyed, aws_network_acl_rule.deny_in_udp_161 created
terraform apply
# From another host, re-check the finding: the port must no longer show as open.
portwarden scan 2001:2::5 -p 161
# UDP gives no answer when dropped: nmap shows open|filtered or closed once the fix works (needs root).
nmap -sU -6 -p 161 2001:2::5"##,
        ),
    ];
}
