//! The remediation file (`rules/remediation.toml`), typed and checked:
//! its `[[platform]]` entries (ids, titles, languages and their template
//! sources), its `[[fix]]` entries (each naming known platforms only) and
//! its `[partials]`. The templates are handlebars: the report layer
//! compiles them from these values, with the positions kept here, and
//! renders every one with sample values before anything is scanned.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::Spanned;

use super::line_col;

/// The template fields of a platform, in file order; `warning` may be
/// absent.
pub const FIELDS: &[&str] = &["commands", "undo", "verify", "warning"];

/// The remediation file is malformed or says something invalid.
#[derive(Debug, thiserror::Error)]
pub enum RemediationRulesError {
    #[error("{file}:{line}:{column}: {message}")]
    Toml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A field is missing, empty or malformed, or an id is used twice.
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

/// One platform's metadata.
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
    /// The about text when every host of the fix is in no asset group (no
    /// allow list, no admin sources); `None` when `about_*` fits them too.
    pub about_unmanaged_en: Option<String>,
    pub about_unmanaged_zh: Option<String>,
    pub platforms: Vec<String>,
}

/// A platform and the sources of its templates, as written.
#[derive(Debug, Clone)]
pub struct PlatformRule {
    pub platform: Platform,
    /// (field of [`FIELDS`], template source with its span in the file).
    pub templates: Vec<(&'static str, Spanned<String>)>,
}

/// The whole file, checked: names well formed and unique, every fix
/// naming known platforms, no platform without its titles and language.
#[derive(Debug, Clone)]
pub struct RemediationRules {
    /// Where it came from, for error messages.
    pub origin: String,
    /// Its text, which the template spans point into.
    pub text: String,
    /// `[partials]`: name → template source, in name order.
    pub partials: Vec<(String, Spanned<String>)>,
    pub platforms: Vec<PlatformRule>,
    pub fixes: Vec<Fix>,
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
    #[serde(default)]
    about_unmanaged_en: Option<String>,
    #[serde(default)]
    about_unmanaged_zh: Option<String>,
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

fn is_name(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.chars().all(allowed)
}

/// The known name within two edits of `name`, if any.
pub(crate) fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl RemediationRules {
    /// Parses and checks a remediation file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<RemediationRules, RemediationRulesError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            RemediationRulesError::Toml {
                file: file.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        let invalid = |line: usize, message: String| RemediationRulesError::Invalid {
            file: file.to_owned(),
            line,
            message,
        };
        for (name, src) in &raw.partials {
            if !is_name(name, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
            }) {
                return Err(invalid(
                    line_col(text, src.span().start).0,
                    format!("partial name '{name}': use lower-case letters, digits and '_'"),
                ));
            }
        }
        if raw.platform.is_empty() {
            return Err(invalid(
                1,
                "no [[platform]] entries: a remediation file needs at least one".into(),
            ));
        }
        let mut platforms = Vec::with_capacity(raw.platform.len());
        for entry in raw.platform {
            let line = line_col(text, entry.span().start).0;
            let p = entry.into_inner();
            let id = p.id.get_ref().clone();
            if !is_name(&id, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            }) {
                return Err(invalid(
                    line,
                    format!("platform id '{id}': use lower-case letters, digits and '-'"),
                ));
            }
            if platforms.iter().any(|o: &PlatformRule| o.platform.id == id) {
                return Err(invalid(line, format!("platform id '{id}' is used twice")));
            }
            for (field, value) in [
                ("title_en", &p.title_en),
                ("title_zh", &p.title_zh),
                ("language", &p.language),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(line, format!("platform '{id}': {field} is empty")));
                }
            }
            let verify_language = p
                .verify_language
                .as_deref()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .unwrap_or(p.language.trim())
                .to_owned();
            let mut templates = vec![
                (FIELDS[0], p.commands),
                (FIELDS[1], p.undo),
                (FIELDS[2], p.verify),
            ];
            templates.extend(p.warning.map(|w| (FIELDS[3], w)));
            platforms.push(PlatformRule {
                platform: Platform {
                    id,
                    title_en: p.title_en.trim().to_owned(),
                    title_zh: p.title_zh.trim().to_owned(),
                    language: p.language.trim().to_owned(),
                    verify_language,
                },
                templates,
            });
        }
        let fixes = parse_fixes(text, file, raw.fix, &platforms)?;
        Ok(RemediationRules {
            origin: file.to_owned(),
            text: text.to_owned(),
            partials: raw.partials.into_iter().collect(),
            platforms,
            fixes,
        })
    }
}

/// The `[[fix]]` entries, each naming known platforms only.
fn parse_fixes(
    text: &str,
    file: &str,
    raw: Vec<Spanned<RawFix>>,
    platforms: &[PlatformRule],
) -> Result<Vec<Fix>, RemediationRulesError> {
    let known: Vec<&str> = platforms.iter().map(|p| p.platform.id.as_str()).collect();
    let seen: HashSet<&str> = known.iter().copied().collect();
    let mut fixes: Vec<Fix> = Vec::with_capacity(raw.len());
    for entry in raw {
        let line = line_col(text, entry.span().start).0;
        let f = entry.into_inner();
        let invalid = |message: String| RemediationRulesError::Invalid {
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
        if let Some(id) = f.platforms.iter().find(|id| !seen.contains(id.as_str())) {
            return Err(invalid(format!(
                "fix '{}': unknown platform '{id}'{}; known: {}",
                f.key,
                did_you_mean(id, &known)
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default(),
                known.join(", ")
            )));
        }
        let trim = |s: &str| s.trim().to_owned();
        fixes.push(Fix {
            title_en: trim(&f.title_en),
            title_zh: trim(&f.title_zh),
            about_en: trim(&f.about_en),
            about_zh: trim(&f.about_zh),
            about_unmanaged_en: f.about_unmanaged_en.as_deref().map(trim),
            about_unmanaged_zh: f.about_unmanaged_zh.as_deref().map(trim),
            key: f.key,
            platforms: f.platforms,
        });
    }
    Ok(fixes)
}
