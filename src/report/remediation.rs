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
            compile(text, file, &place, src, &partial_names)?;
            registry
                .register_partial(name, src.get_ref().as_str())
                .map_err(|e| {
                    template_error(text, file, &place, src, e.pos().map(|p| p.0), e.reason())
                })?;
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
                let tpl = compile(text, file, &place, src, &partial_names)?;
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
            if !self.platforms.iter().any(|p| &p.id == id) {
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
            if let Some(i) = self.platforms.iter().position(|p| &p.id == id) {
                if !order.contains(&i) {
                    order.push(i);
                }
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
    partials: &HashSet<&str>,
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
            Ref::Partial(name) if partials.contains(name.as_str()) => None,
            Ref::Partial(name) => {
                let mut known: Vec<&str> = partials.iter().copied().collect();
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

    #[test]
    fn dump() {
        let c = RemediationCatalog::embedded();
        for t in samples() {
            for r in c.render(&t, &[]) {
                println!(
                    "=== {} [{}] {} / {}\n{}\n--- verify [{}]\n{}\n",
                    r.platform,
                    r.language,
                    r.title_en,
                    r.title_zh,
                    r.commands,
                    r.verify_language,
                    r.verify
                );
            }
        }
    }
}
