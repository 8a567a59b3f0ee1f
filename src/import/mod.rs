//! Import layer: scan results made elsewhere, turned into observations so an
//! audit can judge them without scanning — nmap XML (`-oX`), masscan JSON
//! (`-oJ`) and portwarden's own JSONL (several files merge, e.g. the shards
//! of a distributed scan) — and the nmap XML writer for `scan --format
//! nmap-xml`, so portwarden's results feed tools that read nmap.
//!
//! The files are untrusted input: parsers are checked, never panic, and
//! errors name the file and the line (and column) to look at.

pub mod masscan;
pub mod nmap;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::model::{Observation, Proto};

pub use nmap::{NmapRun, to_nmap_xml};

/// A file of existing scan results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    NmapXml(PathBuf),
    Masscan(PathBuf),
    Jsonl(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::NmapXml(p) | Source::Masscan(p) | Source::Jsonl(p) => p,
        }
    }

    /// `nmap-xml:FILE`, for the run's parameters in the history.
    pub fn label(&self) -> String {
        let kind = match self {
            Source::NmapXml(_) => "nmap-xml",
            Source::Masscan(_) => "masscan-json",
            Source::Jsonl(_) => "jsonl",
        };
        format!("{kind}:{}", self.path().display())
    }
}

/// Errors reading scan results; each names the file and where in it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message}\n  hint: {hint}")]
    Parse {
        file: String,
        line: usize,
        col: usize,
        message: String,
        hint: String,
    },
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let upto = &text.as_bytes()[..offset.min(text.len())];
    let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

fn read(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        file: path.display().to_string(),
        source,
    })
}

/// Reads one file of portwarden JSONL (`scan --format jsonl`, or a report's
/// `observations.jsonl`). Blank lines are skipped.
pub fn parse_jsonl(text: &str, file: &str) -> Result<Vec<Observation>, ImportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let o: Observation = serde_json::from_str(line).map_err(|e| ImportError::Parse {
            file: file.to_string(),
            line: i + 1,
            col: e.column(),
            message: e.to_string(),
            hint: "each line must be one observation as `portwarden scan --format jsonl` writes it"
                .into(),
        })?;
        out.push(o);
    }
    Ok(out)
}

/// Reads every source and merges them: one observation per (address,
/// port, protocol), the newest winning, so overlapping shards or a rescan
/// of part of the range are fine. Sorted by address, port, protocol.
pub fn load(sources: &[Source]) -> Result<Vec<Observation>, ImportError> {
    let mut all = Vec::new();
    for s in sources {
        let text = read(s.path())?;
        let file = s.path().display().to_string();
        all.extend(match s {
            Source::NmapXml(_) => nmap::parse(&text, &file)?.observations,
            Source::Masscan(_) => masscan::parse(&text, &file)?,
            Source::Jsonl(_) => parse_jsonl(&text, &file)?,
        });
    }
    Ok(merge(all))
}

/// One observation per (address, port, protocol): the newest wins.
pub fn merge(observations: Vec<Observation>) -> Vec<Observation> {
    let mut by: BTreeMap<(IpAddr, u16, Proto), Observation> = BTreeMap::new();
    for o in observations {
        match by.get(&(o.ip, o.port, o.proto)) {
            Some(e) if e.time > o.time => {}
            _ => {
                by.insert((o.ip, o.port, o.proto), o);
            }
        }
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortState, Reason};

    #[test]
    fn jsonl_merges_newest_and_names_bad_lines() {
        let a = r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"closed","reason":"conn-refused","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}

{"ip":"198.18.0.6","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}"#;
        let b = r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:05:05Z"}"#;
        let mut all = parse_jsonl(a, "a").unwrap();
        all.extend(parse_jsonl(b, "b").unwrap());
        let m = merge(all);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].ip.to_string(), "198.18.0.5");
        assert_eq!(m[0].state, PortState::Open);
        assert_eq!(m[0].reason, Reason::Connected);
        let e = parse_jsonl("\n{\"ip\":\"x\"}\n", "s.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.jsonl:2:"), "{e}");
        assert!(e.contains("hint: each line must be one observation"), "{e}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
