use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    partials: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    fix: Vec<Spanned<RawFix>>,
    #[serde(default)]
    platform: Vec<Spanned<RawPlatform>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFix {
    key: String,
    title_en: String,
    title_zh: String,
    about_en: String,
    about_zh: String,
    #[serde(default)]
    about_unmanaged_en: Option<String>,
    #[serde(default)]
    about_unmanaged_zh: Option<String>,
    platforms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlatform {
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

impl RemediationCatalog {
    /// The catalogue built into the binary (`rules/remediation.toml`).
    pub fn embedded() -> RemediationCatalog {
        // The embedded files are checked by this module's tests, so a
        // failure here is a build that skipped them, not a user error.
        RemediationCatalog::from_rules(&crate::rules::Rules::embedded())
            .unwrap_or_else(|e| panic!("embedded remediation templates are invalid: {e}"))
    }

    /// The catalogue from the rulebook: its templates compiled from the
    /// text read and hashed there, with its firewalld services and fix
    /// comments.
    pub fn from_rules(rules: &crate::rules::Rules) -> Result<RemediationCatalog, RemediationError> {
        RemediationCatalog::parse_with(
            &rules.remediation.text,
            &rules.remediation.origin,
            rules.firewalld.clone(),
            &FixMessages::from_rules(&rules.i18n)?,
        )
    }

    /// Parses and validates a remediation file with the embedded fix
    /// comments; `file` is the name errors give.
    pub fn parse(
        text: &str,
        file: &str,
        firewalld: FirewalldServices,
    ) -> Result<RemediationCatalog, RemediationError> {
        RemediationCatalog::parse_with(text, file, firewalld, &FixMessages::embedded()?)
    }

    /// Parses and validates a remediation file whose comments are the
    /// given messages (`{{t "key"}}`).
    pub fn parse_with(
        text: &str,
        file: &str,
        firewalld: FirewalldServices,
        messages: &FixMessages,
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
        registry.register_helper("t", Box::new(MessageHelper));
        messages.register(&mut registry)?;
        let message_keys = messages.keys();

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
            compile(text, file, &place, src, None, Some(&message_keys))?;
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
                let tpl = compile(
                    text,
                    file,
                    &place,
                    src,
                    Some(&partial_names),
                    Some(&message_keys),
                )?;
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

        let fixes = parse_fixes(text, file, &raw, &platforms, &seen)?;
        let catalog = RemediationCatalog {
            platforms,
            fixes,
            registry,
            firewalld,
            policy_texts: messages.policy_texts(),
        };
        catalog.check_samples(text, file, &raw, messages)?;
        Ok(catalog)
    }

    /// Strict rendering of every platform for every key, both protocols,
    /// both address families, with and without admin sources: walks the
    /// branches the templates take and catches what the syntax walk cannot.
    fn check_samples(
        &self,
        text: &str,
        file: &str,
        raw: &RawFile,
        messages: &FixMessages,
    ) -> Result<(), RemediationError> {
        let catalog = self;
        let mut keys: Vec<String> = catalog.fixes.iter().map(|f| f.key.clone()).collect();
        keys.push("unknown-key".into());
        for key in &keys {
            for (sample, zh) in samples(key)
                .into_iter()
                .flat_map(|s| [(s.clone(), false), (s, true)])
            {
                let mut data = catalog.context(&sample);
                data["zh"] = json!(zh);
                // Each message on its own first, so an error names its label.
                for set in &messages.sets {
                    for (k, src) in &set.entries {
                        if let Err(e) = catalog.registry.render(&message_name(set.lang, k), &data) {
                            let place = format!("{}.{k}", messages::TABLE);
                            return Err(render_error(&set.text, &set.file, &place, src, &e));
                        }
                    }
                }
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
        Ok(())
    }
}

/// The `[[fix]]` entries, each naming known platforms only.
fn parse_fixes(
    text: &str,
    file: &str,
    raw: &RawFile,
    platforms: &[Platform],
    seen: &HashSet<String>,
) -> Result<Vec<Fix>, RemediationError> {
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
        if f.about_unmanaged_en.is_some() != f.about_unmanaged_zh.is_some() {
            return Err(invalid(format!(
                "fix '{}': give about_unmanaged_en and about_unmanaged_zh together",
                f.key
            )));
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
            about_unmanaged_en: f.about_unmanaged_en.as_deref().map(|s| s.trim().to_owned()),
            about_unmanaged_zh: f.about_unmanaged_zh.as_deref().map(|s| s.trim().to_owned()),
            platforms: f.platforms.clone(),
        });
    }

    Ok(fixes)
}

/// The contexts every template is rendered for at load time, for one key:
/// between them they take each side of the protocol, address-family,
/// admin, sources, service, unit and policy-line branches.
pub(super) fn samples(key: &str) -> [FixContext; 3] {
    let base = FixContext {
        id: "0123456789ab".into(),
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

pub(super) fn is_name(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.chars().all(allowed)
}

/// Compiles one template and checks every name it uses.
pub(super) fn compile(
    text: &str,
    file: &str,
    place: &str,
    src: &Spanned<String>,
    partials: Option<&HashSet<&str>>,
    messages: Option<&HashSet<&str>>,
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
            Ref::Message(key) if messages.is_some_and(|m| m.contains(key.as_str())) => None,
            Ref::Message(key) if messages.is_none() => Some((
                key.clone(),
                format!("'{{{{t \"{key}\"}}}}': a message cannot include another message"),
            )),
            Ref::Message(key) => Some((
                key.clone(),
                format!(
                    "unknown message '{key}': add {}.{key} to both label files (i18n/en.toml, i18n/zh-CN.toml)",
                    messages::TABLE
                ),
            )),
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
pub(super) enum Ref {
    Var(String),
    /// `{{t "key"}}`: a comment from the label files.
    Message(String),
    Helper(String),
    Partial(String),
    Unsupported(&'static str),
}

pub(super) fn collect(tpl: &Template, out: &mut Vec<Ref>) {
    for element in &tpl.elements {
        collect_element(element, out);
    }
}

pub(super) fn collect_element(element: &TemplateElement, out: &mut Vec<Ref>) {
    match element {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
        TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
            if matches!(&h.name, Parameter::Name(n) if n == "t") {
                match (&h.params[..], h.hash.is_empty()) {
                    ([Parameter::Literal(Value::String(key))], true) => {
                        out.push(Ref::Message(key.clone()))
                    }
                    _ => out.push(Ref::Unsupported("'t' helpers other than {{t \"key\"}}")),
                }
            } else if h.params.is_empty() && h.hash.is_empty() {
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

pub(super) fn helper_ref(name: &Parameter) -> Ref {
    match name {
        Parameter::Name(n) => Ref::Helper(n.clone()),
        _ => Ref::Unsupported("computed helper names"),
    }
}

pub(super) fn collect_param(param: &Parameter, out: &mut Vec<Ref>) {
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
pub(super) fn template_error(
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
pub(super) fn render_error(
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
pub(super) fn file_line(text: &str, src: &Spanned<String>, template_line: usize) -> usize {
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
pub(super) fn line_of_name(text: &str, src: &Spanned<String>, name: &str) -> usize {
    let template_line = src
        .get_ref()
        .lines()
        .position(|l| l.contains("{{") && l.contains(name))
        .map_or(1, |i| i + 1);
    file_line(text, src, template_line)
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub(super) fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
