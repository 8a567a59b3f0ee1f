//! Rules layer: the data of `rules/` (port catalogue, and later compliance
//! profiles, remediation templates and identification probes), embedded in
//! the binary as defaults and overridable with `--rules DIR`. Loaded and
//! validated at start; errors name the file and line, because a rules file
//! is something the operator edits by hand and must be able to fix.

pub mod ports;
pub mod profiles;

use std::path::{Path, PathBuf};

pub use ports::{Catalogue, NamedSet, PortEntry};

/// Errors in rule files. Each names the file (or `<embedded>/…` for the
/// built-in copy) and, when the problem is inside the file, its line and
/// column.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rules directory {} does not exist or is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// The file parsed (or failed to) but says something invalid.
    /// `line` and `column` are 1-based; 0 means the position is unknown.
    #[error("{}: {message}", location(origin, *line, *column))]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
}

fn location(origin: &str, line: usize, column: usize) -> String {
    if line == 0 {
        origin.to_string()
    } else {
        format!("{origin}:{line}:{column}")
    }
}

impl RulesError {
    /// An `Invalid` error located at byte `offset` of `text`.
    pub(crate) fn at(origin: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        RulesError::Invalid {
            origin: origin.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Wraps a TOML syntax or type error, keeping its position.
    pub(crate) fn from_toml(origin: &str, text: &str, err: &toml::de::Error) -> Self {
        match err.span() {
            Some(span) => RulesError::at(origin, text, span.start, err.message()),
            None => RulesError::Invalid {
                origin: origin.to_string(),
                line: 0,
                column: 0,
                message: err.message().to_string(),
            },
        }
    }
}

/// 1-based (line, column) of byte `offset` in `text`; the column counts
/// characters, not bytes, so it matches what an editor shows.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Every rule file the program uses, loaded together so one `--rules DIR`
/// overrides them consistently. Other rule kinds (profiles, remediation,
/// probes) join this struct as they are written.
#[derive(Debug, Clone)]
pub struct Rules {
    pub ports: Catalogue,
}

impl Rules {
    /// The rules built into the binary.
    pub fn embedded() -> Rules {
        Rules {
            ports: Catalogue::embedded(),
        }
    }

    /// The built-in rules, with each file present in `dir` replacing its
    /// built-in counterpart. `None` means the built-in rules only.
    pub fn load(dir: Option<&Path>) -> Result<Rules, RulesError> {
        match dir {
            None => Ok(Rules::embedded()),
            Some(dir) => Ok(Rules {
                ports: Catalogue::load_dir(dir)?,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let text = "a = 1\nbé = 2\nc";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 999), (3, 2));
    }

    #[test]
    fn invalid_error_names_file_line_and_column() {
        let e = RulesError::at("x/ports.toml", "a\nbc", 3, "bad thing");
        assert_eq!(e.to_string(), "x/ports.toml:2:2: bad thing");
    }

    #[test]
    fn load_without_dir_is_embedded() {
        let r = Rules::load(None).unwrap();
        assert_eq!(r.ports.len(), Catalogue::embedded().len());
    }

    #[test]
    fn load_from_missing_dir_fails() {
        let err = Rules::load(Some(Path::new("/nonexistent/portwarden-rules"))).unwrap_err();
        assert!(matches!(err, RulesError::NotADirectory { .. }), "{err}");
    }
}
