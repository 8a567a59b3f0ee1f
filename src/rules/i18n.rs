//! The languages a report is written in and their labels, for the report
//! layer and the terminal.
//!
//! Labels are data (`report-templates/i18n/*.toml`, embedded, and part of
//! the rulebook: a rules directory's `i18n/en.toml` and `i18n/zh-CN.toml`
//! replace them), so wording is corrected without touching code. A label missing from one language would
//! show up as an empty heading in front of an auditor, so both files are
//! parsed together and must have exactly the same keys.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

const EN: &str = super::embedded::I18N[0].1;
const ZH_CN: &str = super::embedded::I18N[1].1;

/// A label file is malformed, or the two languages differ.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error(
        "report labels differ between languages: missing in en.toml: {missing_en}; missing in zh-CN.toml: {missing_zh}"
    )]
    Differ {
        missing_en: String,
        missing_zh: String,
    },
}

/// The language of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// The language a POSIX locale name asks for (`zh_CN.UTF-8` → zh-CN,
    /// anything else or nothing → en). The caller picks the variable
    /// (LC_ALL, then LC_MESSAGES, then LANG), since the library reads no
    /// environment.
    pub fn from_locale(locale: Option<&str>) -> Lang {
        match locale {
            Some(l) if l.to_ascii_lowercase().starts_with("zh") => Lang::ZhCn,
            _ => Lang::En,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "en" | "en-us" | "en-gb" => Ok(Lang::En),
            "zh" | "zh-cn" | "zh-hans" => Ok(Lang::ZhCn),
            _ => Err(format!(
                "unknown report language '{s}' (expected en or zh-CN)"
            )),
        }
    }
}

/// The labels of one language: a nested table for the templates and the
/// same keys flattened (`severity.high`) for code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels {
    lang: Lang,
    tree: Value,
    flat: BTreeMap<String, String>,
}

/// The labels of both languages, parsed together and checked to have
/// exactly the same keys: the rulebook's typed `i18n/*.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSet {
    en: Labels,
    zh: Labels,
}

impl LabelSet {
    /// Both label files as (text, file name for errors).
    pub fn from_texts(
        (en, en_file): (&str, &str),
        (zh, zh_file): (&str, &str),
    ) -> Result<LabelSet, LabelError> {
        let en = parse(en, en_file)?;
        let mut zh = parse(zh, zh_file)?;
        let only = |a: &Labels, b: &Labels| -> Vec<String> {
            a.flat
                .keys()
                .filter(|k| !b.flat.contains_key(*k))
                .cloned()
                .collect()
        };
        let missing_zh = only(&en, &zh);
        let missing_en = only(&zh, &en);
        if !missing_zh.is_empty() || !missing_en.is_empty() {
            return Err(LabelError::Differ {
                missing_en: missing_en.join(", "),
                missing_zh: missing_zh.join(", "),
            });
        }
        zh.lang = Lang::ZhCn;
        Ok(LabelSet { en, zh })
    }

    /// The labels of `lang`.
    pub fn of(&self, lang: Lang) -> Labels {
        match lang {
            Lang::En => self.en.clone(),
            Lang::ZhCn => self.zh.clone(),
        }
    }
}

impl Labels {
    /// The embedded labels of `lang`, after checking that both embedded
    /// files parse and have the same keys.
    pub fn embedded(lang: Lang) -> Result<Labels, LabelError> {
        Labels::from_pair(lang, EN, ZH_CN)
    }

    /// Parses both label files (`en`, `zh`) and returns the one of `lang`.
    pub fn from_pair(lang: Lang, en: &str, zh: &str) -> Result<Labels, LabelError> {
        Ok(LabelSet::from_texts(
            (en, "report-templates/i18n/en.toml"),
            (zh, "report-templates/i18n/zh-CN.toml"),
        )?
        .of(lang))
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The nested table, as the templates see it (`t.heading.title`).
    pub fn tree(&self) -> &Value {
        &self.tree
    }

    /// The label at a dotted key; the key itself when there is none, so a
    /// gap shows as a visible key rather than an empty cell.
    pub fn get(&self, key: &str) -> String {
        self.flat
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// Every flattened key and its label, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.flat.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The label at `key` with its `{name}` placeholders replaced by
    /// `params` (a placeholder with no value stays as written).
    pub fn fmt(&self, key: &str, params: &[(&str, &str)]) -> String {
        fill(&self.get(key), params)
    }

    /// A message (key and parameters, as the evaluator records it) in this
    /// language; `None` when it has no key or the key has no label, so the
    /// caller can fall back to the English text recorded beside it. A
    /// message with an `exception_state` parameter gets its `msg.suffix.*`.
    pub fn message(&self, m: &crate::model::Message) -> Option<String> {
        let text = self.flat.get(&m.key)?;
        // A severity parameter (`risk`) is a label like any other.
        let risk = m
            .args
            .get("risk")
            .and_then(|r| self.flat.get(&format!("severity.{r}")));
        let args: Vec<(&str, &str)> = m
            .args
            .iter()
            .map(|(k, v)| match (k.as_str(), risk) {
                ("risk", Some(label)) => (k.as_str(), label.as_str()),
                _ => (k.as_str(), v.as_str()),
            })
            .collect();
        let mut out = fill(text, &args);
        if let Some(state) = m.args.get("exception_state")
            && let Some(suffix) = self.flat.get(&format!("msg.suffix.{state}"))
        {
            out.push_str(&fill(suffix, &args));
        }
        Some(out)
    }

    /// Like [`Self::get`] but `None` when the key is absent.
    pub fn find(&self, key: &str) -> Option<&str> {
        self.flat.get(key).map(String::as_str)
    }
}

/// Longest value put in place of one `{name}`, in bytes (longer ones are
/// cut, ending in `…`).
const MAX_PARAM: usize = 1 << 10;
/// Longest text a message expands to, in bytes: a `--rules` template that
/// repeats `{port}` 100,000 times cannot make one message gigabytes long.
const MAX_MESSAGE: usize = 16 << 10;

/// Replaces each `{name}` of `text` with its value, in one pass (a value
/// that itself contains `{x}` is not expanded again). Each value and the
/// whole result are bounded ([`MAX_PARAM`], [`MAX_MESSAGE`]).
pub(crate) fn fill(text: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE) + 16);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if out.len() > MAX_MESSAGE {
            rest = "";
            break;
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match params.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) if v.len() > MAX_PARAM => {
                        out.push_str(&v[..v.floor_char_boundary(MAX_PARAM)]);
                        out.push('…');
                    }
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if out.len() > MAX_MESSAGE {
        out.truncate(out.floor_char_boundary(MAX_MESSAGE));
        out.push('…');
    }
    out
}

fn parse(text: &str, file: &str) -> Result<Labels, LabelError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| LabelError::Invalid {
        file: file.to_string(),
        message: e.message().trim().to_string(),
    })?;
    let mut flat = BTreeMap::new();
    flatten("", &toml::Value::Table(table.clone()), &mut flat, file)?;
    let tree = serde_json::to_value(&table).map_err(|e| LabelError::Invalid {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    Ok(Labels {
        lang: Lang::En,
        tree,
        flat,
    })
}

fn flatten(
    prefix: &str,
    v: &toml::Value,
    out: &mut BTreeMap<String, String>,
    file: &str,
) -> Result<(), LabelError> {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out, file)?;
            }
            Ok(())
        }
        toml::Value::String(s) => {
            // Labels reach terminals and spreadsheets: no control or
            // bidirectional characters, and no cell a spreadsheet runs.
            if let Some(c) = s
                .chars()
                .find(|&c| crate::lines::unsafe_to_show(c) && c != '\n' && c != '\t')
            {
                return Err(LabelError::Invalid {
                    file: file.to_string(),
                    message: format!(
                        "label '{prefix}' holds the control character U+{:04X}: labels are shown in terminals",
                        c as u32
                    ),
                });
            }
            if let Some(c) = s.chars().next().filter(|c| matches!(c, '=' | '+' | '@')) {
                return Err(LabelError::Invalid {
                    file: file.to_string(),
                    message: format!(
                        "label '{prefix}' starts with '{c}': a spreadsheet would evaluate it in the CSV files"
                    ),
                });
            }
            out.insert(prefix.to_string(), s.clone());
            Ok(())
        }
        _ => Err(LabelError::Invalid {
            file: file.to_string(),
            message: format!("label '{prefix}' must be a string"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_labels_are_refused_and_messages_bounded() {
        for (label, says) in [
            ("\"\\u001b[2Jx\"", "holds the control character U+001B"),
            ("\"\\u009bx\"", "holds the control character U+009B"),
            ("\"a\\u202eb\"", "holds the control character U+202E"),
            (
                "\"=HYPERLINK(1)\"",
                "starts with '=': a spreadsheet would evaluate it",
            ),
        ] {
            let e = parse(&format!("[severity]\nhigh = {label}\n"), "x.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says) && e.contains("severity.high"), "{e}");
        }
        let huge = "x".repeat(20_000);
        let out = fill(&"{port}".repeat(100_000), &[("port", &huge)]);
        assert!(out.len() <= MAX_MESSAGE + 4, "{}", out.len());
        assert!(out.ends_with('…'));
        assert_eq!(fill("a {n} b", &[("n", "1")]), "a 1 b");
    }

    #[test]
    fn embedded_languages_have_the_same_keys() {
        let en = Labels::embedded(Lang::En).unwrap();
        let zh = Labels::embedded(Lang::ZhCn).unwrap();
        assert_eq!(
            en.flat.keys().collect::<Vec<_>>(),
            zh.flat.keys().collect::<Vec<_>>()
        );
        assert_eq!(en.get("severity.high"), "High");
        assert_eq!(zh.get("severity.high"), "高危");
        assert_eq!(zh.get("mlps.8.1.3"), "安全区域边界");
        assert_eq!(zh.get("mlps.8.1.3.2"), "访问控制");
        assert_eq!(zh.get("mlps.8.1.4.4"), "入侵防范");
        assert_eq!(zh.tree()["heading"]["compliance"], "合规评估");
    }

    #[test]
    fn a_rules_directory_replaces_the_labels_and_a_broken_file_is_named() {
        let dir = std::env::temp_dir().join(format!("pw-i18n-rules-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("i18n")).unwrap();
        let zh = ZH_CN.replace("compliance = \"合规评估\"", "compliance = \"等保测评结论\"");
        assert_ne!(zh, ZH_CN);
        std::fs::write(dir.join("i18n/zh-CN.toml"), &zh).unwrap();
        let rules = crate::rules::Rules::load(Some(&dir)).unwrap();
        let labels = rules.labels.of(Lang::ZhCn);
        assert_eq!(labels.tree()["heading"]["compliance"], "等保测评结论");
        assert_eq!(
            rules.files["i18n/zh-CN.toml"],
            crate::rules::sha256_hex(zh.as_bytes())
        );
        // English is still the embedded file, and both must keep one key set.
        let en = rules.labels.of(Lang::En);
        assert_eq!(en.tree()["heading"]["compliance"], "Compliance");
        let cut = zh.replace("show_hosts = \"显示主机\"\n", "");
        std::fs::write(dir.join("i18n/zh-CN.toml"), &cut).unwrap();
        let e = crate::rules::Rules::load(Some(&dir))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing in zh-CN.toml: ui.show_hosts"), "{e}");
        std::fs::write(dir.join("i18n/zh-CN.toml"), "[heading\n").unwrap();
        let e = crate::rules::Rules::load(Some(&dir))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}:", dir.join("i18n/zh-CN.toml").display())),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn labels_take_parameters() {
        let en = Labels::embedded(Lang::En).unwrap();
        assert_eq!(
            en.fmt("term.more", &[("n", "12"), ("path", "out/index.html")]),
            "… and 12 more in out/index.html"
        );
        let zh = Labels::embedded(Lang::ZhCn).unwrap();
        assert_eq!(
            zh.fmt("term.more", &[("n", "12"), ("path", "out/index.html")]),
            "…… 另有 12 条，见 out/index.html"
        );
    }

    #[test]
    fn messages_translate_with_their_parameters_and_suffix() {
        let zh = Labels::embedded(Lang::ZhCn).unwrap();
        let m = crate::model::Message::new("msg.not_allowed")
            .arg("port", "23/tcp")
            .arg("group", "{port}")
            .arg("exception_state", "expired")
            .arg("expires", "2026-01-31")
            .arg("exception", "EXC-1");
        assert_eq!(
            zh.message(&m).unwrap(),
            "23/tcp 已开放，但资产组 '{port}' 未允许该端口 — 例外已于 2026-01-31 过期（EXC-1）"
        );
        assert_eq!(zh.message(&crate::model::Message::new("msg.nope")), None);
        let m = crate::model::Message::new("msg.high_risk_exposed")
            .arg("port", "23/tcp")
            .arg("risk", "critical");
        assert_eq!(
            zh.message(&m).unwrap(),
            "高危端口 23/tcp（风险 严重）未经允许即暴露"
        );
    }

    #[test]
    fn a_key_missing_in_one_language_is_named() {
        let err = Labels::from_pair(
            Lang::En,
            "[a]\nx = \"1\"\ny = \"2\"\n",
            "[a]\nx = \"1\"\nz = \"3\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "report labels differ between languages: missing in en.toml: a.z; missing in zh-CN.toml: a.y"
        );
    }

    #[test]
    fn locale_picks_the_language() {
        assert_eq!(Lang::from_locale(Some("zh_CN.UTF-8")), Lang::ZhCn);
        assert_eq!(Lang::from_locale(Some("zh_TW")), Lang::ZhCn);
        assert_eq!(Lang::from_locale(Some("en_US.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(Some("C")), Lang::En);
        assert_eq!(Lang::from_locale(None), Lang::En);
        assert_eq!("zh-CN".parse::<Lang>().unwrap(), Lang::ZhCn);
        assert_eq!("zh_cn".parse::<Lang>().unwrap(), Lang::ZhCn);
        assert!("fr".parse::<Lang>().is_err());
    }
}
