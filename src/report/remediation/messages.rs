//! The comment lines of the fix blocks, in the report's language.
//!
//! A template writes a comment as `# {{t "key"}}`; the text is the label
//! `fix_comment.key` of the report's label files (`i18n/en.toml`,
//! `i18n/zh-CN.toml`), itself a template over the same placeholders. A
//! zh-CN report gets Chinese comments; the commands stay as they are. Both
//! languages must have every key a template uses (checked at load, with
//! the file and line of the label).

use handlebars::{
    Context, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason,
};

use super::*;

/// The label table the messages live in.
pub(super) const TABLE: &str = "fix_comment";
/// The label table of the policy-edit comments (`{name}` parameters).
pub(super) const POLICY_TABLE: &str = "fix_policy";
/// Every `fix_policy` key the policy edits use.
pub(super) const POLICY_KEYS: &[&str] = &[
    "no_policy",
    "exception_expired",
    "group_cap",
    "add_to_group",
    "group_ref",
    "record_change",
    "entry_not_found",
    "allow_entry",
    "what_review",
    "what_service",
    "what_justify",
    "date_format",
    "some_unmanaged",
    "absorbed",
];

impl RemediationCatalog {
    /// A policy-edit comment in `lang`, its `{name}`s filled, as `# ` lines.
    pub(super) fn policy_comment(&self, lang: Lang, key: &str, params: &[(&str, &str)]) -> String {
        let text = self
            .policy_texts
            .iter()
            .find(|(l, _)| *l == lang)
            .and_then(|(_, m)| m.get(key))
            .map_or(key, String::as_str);
        let filled = crate::report::i18n::fill(text, params);
        filled
            .lines()
            .map(|l| format!("# {}\n", l.trim_end()))
            .collect()
    }

    /// A policy-edit text in `lang` (no comment marks).
    pub(super) fn policy_text(&self, lang: Lang, key: &str, params: &[(&str, &str)]) -> String {
        let comment = self.policy_comment(lang, key, params);
        comment
            .trim_end()
            .trim_start_matches("# ")
            .replace("\n# ", " ")
    }
}

/// One language's messages, with the file they come from.
#[derive(Debug, Clone)]
pub struct MessageSet {
    pub(super) lang: Lang,
    pub(super) file: String,
    pub(super) text: String,
    pub(super) entries: BTreeMap<String, Spanned<String>>,
    /// `fix_policy.*`: the comments of the policy-file edits, with
    /// `{name}` parameters.
    pub(super) policy: BTreeMap<String, Spanned<String>>,
}

/// The fix-comment messages of both languages.
#[derive(Debug, Clone)]
pub struct FixMessages {
    pub(super) sets: Vec<MessageSet>,
}

#[derive(Deserialize)]
struct LabelFile {
    #[serde(default)]
    fix_comment: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    fix_policy: BTreeMap<String, Spanned<String>>,
}

impl FixMessages {
    /// The messages of the embedded label files.
    pub fn embedded() -> Result<FixMessages, RemediationError> {
        FixMessages::from_rules(&crate::rules::Rules::embedded().i18n)
    }

    /// The messages of the rulebook's label files (language name → text).
    pub fn from_rules(
        i18n: &[(String, crate::rules::RuleText)],
    ) -> Result<FixMessages, RemediationError> {
        let mut texts = Vec::new();
        for lang in [Lang::En, Lang::ZhCn] {
            let Some((_, t)) = i18n.iter().find(|(name, _)| name == lang.as_str()) else {
                return Err(RemediationError::Invalid {
                    file: format!("i18n/{}.toml", lang.as_str()),
                    line: 1,
                    message: "the rulebook has no such label file".into(),
                });
            };
            texts.push((lang, t.text.clone(), t.origin.clone()));
        }
        FixMessages::from_texts(texts)
    }

    pub(super) fn from_texts(
        texts: impl IntoIterator<Item = (Lang, String, String)>,
    ) -> Result<FixMessages, RemediationError> {
        let mut sets = Vec::new();
        for (lang, text, file) in texts {
            let parsed: LabelFile = toml::from_str(&text).map_err(|e| {
                let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
                RemediationError::Toml {
                    file: file.clone(),
                    line,
                    column,
                    message: e.message().trim().to_owned(),
                }
            })?;
            sets.push(MessageSet {
                lang,
                file,
                text,
                entries: parsed.fix_comment,
                policy: parsed.fix_policy,
            });
        }
        // Every key in both languages: a comment missing in one would
        // show as a bare key in front of its reader.
        for a in &sets {
            for b in &sets {
                for (table, mine, theirs) in [
                    (TABLE, &a.entries, &b.entries),
                    (POLICY_TABLE, &a.policy, &b.policy),
                ] {
                    if let Some((key, src)) = mine.iter().find(|(k, _)| !theirs.contains_key(*k)) {
                        return Err(RemediationError::Invalid {
                            file: a.file.clone(),
                            line: line_col(&a.text, src.span().start).0,
                            message: format!("{table}.{key} is missing from {}", b.file),
                        });
                    }
                }
            }
            // The keys the policy edits use (code, not templates, names them).
            if let Some(key) = POLICY_KEYS.iter().find(|k| !a.policy.contains_key(**k)) {
                return Err(RemediationError::Invalid {
                    file: a.file.clone(),
                    line: 1,
                    message: format!("{POLICY_TABLE}.{key} is missing"),
                });
            }
        }
        Ok(FixMessages { sets })
    }

    /// The policy-edit comments per language.
    pub(super) fn policy_texts(&self) -> Vec<(Lang, BTreeMap<String, String>)> {
        self.sets
            .iter()
            .map(|s| {
                let texts = s
                    .policy
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().trim().to_owned()));
                (s.lang, texts.collect())
            })
            .collect()
    }

    /// The message keys (the same in every language).
    pub(super) fn keys(&self) -> HashSet<&str> {
        self.sets
            .first()
            .map(|s| s.entries.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Compiles every message (placeholders only: no partial, no nested
    /// message) and registers it as `msg.<lang>.<key>`.
    pub(super) fn register(
        &self,
        registry: &mut Handlebars<'static>,
    ) -> Result<(), RemediationError> {
        for set in &self.sets {
            for (key, src) in &set.entries {
                let place = format!("{TABLE}.{key}");
                let tpl = compile(&set.text, &set.file, &place, src, None, None)?;
                registry.register_template(&message_name(set.lang, key), tpl);
            }
        }
        Ok(())
    }
}

/// The registry name of one message.
pub(super) fn message_name(lang: Lang, key: &str) -> String {
    format!("msg.{}.{key}", lang.as_str())
}

/// `{{t "key"}}`: the message in the language the data asks for (`zh`),
/// rendered over the same data. A message of several lines continues as
/// `# ` comment lines.
pub(super) struct MessageHelper;

impl HelperDef for MessageHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let key = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("t", 0))?;
        let zh = ctx.data().get("zh").and_then(Value::as_bool) == Some(true);
        let lang = if zh { Lang::ZhCn } else { Lang::En };
        let text = r.render_with_context(&message_name(lang, key), ctx)?;
        out.write(&text.trim().replace('\n', "\n# "))?;
        Ok(())
    }
}
