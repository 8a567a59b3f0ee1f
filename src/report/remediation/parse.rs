use super::*;

impl RemediationCatalog {
    /// The catalogue built into the binary (`rules/remediation.toml`).
    pub fn embedded() -> RemediationCatalog {
        // The embedded files are checked by this module's tests, so a
        // failure here is a build that skipped them, not a user error.
        RemediationCatalog::from_rules(&crate::rules::Rules::embedded())
            .unwrap_or_else(|e| panic!("embedded remediation templates are invalid: {e}"))
    }

    /// The catalogue from the rulebook: its templates compiled from the
    /// typed remediation file read there, with its firewalld services and
    /// fix comments.
    pub fn from_rules(rules: &crate::rules::Rules) -> Result<RemediationCatalog, RemediationError> {
        RemediationCatalog::compile(
            &rules.remediation,
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
        let rules = RemediationRules::parse(text, file)?;
        RemediationCatalog::compile(&rules, firewalld, messages)
    }

    /// Compiles every template of a checked remediation file (names in
    /// them must be known placeholders, messages, helpers and partials),
    /// then renders each with sample values in strict mode.
    fn compile(
        rules: &RemediationRules,
        firewalld: FirewalldServices,
        messages: &FixMessages,
    ) -> Result<RemediationCatalog, RemediationError> {
        let (text, file) = (rules.text.as_str(), rules.origin.as_str());
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        // The output is shell, PowerShell, YAML, HCL or TOML, not HTML: the
        // report renderers escape for their own format.
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("t", Box::new(MessageHelper));
        messages.register(&mut registry)?;
        let message_keys = messages.keys();

        let partial_names: HashSet<&str> = rules.partials.iter().map(|(n, _)| n.as_str()).collect();
        for (name, src) in &rules.partials {
            let place = format!("partial '{name}'");
            // A partial may not include partials: that rules out recursion.
            compile(text, file, &place, src, None, Some(&message_keys))?;
            registry
                .register_partial(name, src.get_ref().as_str())
                .map_err(|e| {
                    template_error(text, file, &place, src, e.pos().map(|p| p.0), e.reason())
                })?;
        }
        for p in &rules.platforms {
            let id = &p.platform.id;
            for (field, src) in &p.templates {
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
        }
        let catalog = RemediationCatalog {
            platforms: rules.platforms.iter().map(|p| p.platform.clone()).collect(),
            fixes: rules.fixes.clone(),
            registry,
            firewalld,
            policy_texts: messages.policy_texts(),
        };
        catalog.check_samples(rules, messages)?;
        Ok(catalog)
    }

    /// Strict rendering of every platform for every key, both protocols,
    /// both address families, with and without admin sources: walks the
    /// branches the templates take and catches what the syntax walk cannot.
    fn check_samples(
        &self,
        rules: &RemediationRules,
        messages: &FixMessages,
    ) -> Result<(), RemediationError> {
        let (text, file) = (rules.text.as_str(), rules.origin.as_str());
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
                for p in &rules.platforms {
                    let id = &p.platform.id;
                    for (field, src) in &p.templates {
                        if let Err(e) = catalog.registry.render(&template_name(id, field), &data) {
                            let place = format!("platform '{id}', {field}");
                            return Err(render_error(text, file, &place, src, &e));
                        }
                    }
                }
            }
        }
        Ok(())
    }
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
