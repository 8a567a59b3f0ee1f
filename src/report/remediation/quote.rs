//! Quoting for the languages fixes are written in: one function per
//! language, used for every value that is not ours (paths, group names,
//! exception texts) before it is placed in a generated command.
//!
//! Every function gives a single line: a value cannot end a `#` comment or
//! start a new command. Control characters (C0, DEL, C1) and the bidi
//! controls that reorder what a reader sees are replaced where the language
//! has no escape for them (shell, PowerShell), escaped where it has one
//! (HCL, YAML, TOML).

/// True for a character that must never reach a command as itself.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}'
        )
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A POSIX shell word: single-quoted, so nothing in it expands
/// (`'it'\''s'`). Hidden characters become `?` (inert inside quotes).
pub fn sh_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            c if hidden(c) => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A PowerShell verbatim string: single-quoted, with every quote
/// PowerShell reads as a single quote (also the typographic ones) doubled.
pub fn ps_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => {
                out.push(c);
                out.push(c);
            }
            c if hidden(c) => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Escapes for a double-quoted string of a language with `\uXXXX`.
fn escaped(s: &str, out: &mut String, mut extra: impl FnMut(char, &mut String) -> bool) {
    for c in s.chars() {
        if extra(c, out) {
            continue;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
}

/// An HCL (Terraform) string literal; `${` and `%{` are escaped so that
/// nothing in the value is read as an interpolation or a directive.
pub fn hcl_str(s: &str) -> String {
    let mut out = String::from("\"");
    let mut prev = '\0';
    escaped(s, &mut out, |c, out| {
        let was = prev;
        prev = c;
        if c == '{' && (was == '$' || was == '%') {
            // `$${` and `%%{` are the literal forms.
            out.push(was);
            out.push('{');
            return true;
        }
        false
    });
    out.push('"');
    out
}

/// A YAML double-quoted scalar.
pub fn yaml_str(s: &str) -> String {
    let mut out = String::from("\"");
    escaped(s, &mut out, |_, _| false);
    out.push('"');
    out
}

/// A TOML basic string, always on one line (the toml crate may choose a
/// multi-line literal for a value with a newline).
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    escaped(s, &mut out, |_, _| false);
    out.push('"');
    out
}

/// Text for a comment line of any language: one line, hidden characters
/// replaced; nothing else changes.
pub fn comment_str(s: &str) -> String {
    s.chars().map(|c| if hidden(c) { '?' } else { c }).collect()
}

/// The quoting function for a platform's language (`sh`, `powershell`,
/// `hcl`, `yaml`, `toml`); other languages (`bat`) get comment text only,
/// and their templates place no outside value.
pub fn quote_for(language: &str) -> fn(&str) -> String {
    match language {
        "sh" => sh_str,
        "powershell" => ps_str,
        "hcl" => hcl_str,
        "yaml" => yaml_str,
        "toml" => toml_str,
        _ => comment_str,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_quotes_to_one_inert_line() {
        assert_eq!(sh_str("a'b $(x)\nc"), "'a'\\''b $(x)?c'");
        assert_eq!(ps_str("a'b\u{2019}c $x"), "'a''b\u{2019}\u{2019}c $x'");
        assert_eq!(hcl_str("a\"${x}%{y}\\\n"), "\"a\\\"$${x}%%{y}\\\\\\n\"");
        assert_eq!(yaml_str("a\"b\u{202E}"), "\"a\\\"b\\u202E\"");
        assert_eq!(toml_str("g\nh"), "\"g\\nh\"");
        assert_eq!(comment_str("x\ny\u{1b}"), "x?y?");
    }
}
