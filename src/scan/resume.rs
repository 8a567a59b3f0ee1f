//! Scan layer: resume files of scans that ran the TCP and UDP engines side
//! by side.
//!
//! Each engine walks a permutation of its own (address × port) space, so
//! one engine's [`ResumeState`] cannot describe a mixed scan. A mixed scan's
//! file holds both states (version 2); an engine that had finished when the
//! scan was stopped has none, and a resumed scan skips it. Single-engine
//! scans keep writing version 1 files ([`write_single`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ScanError;
use super::raw::schedule::ResumeState;

/// Version of a mixed scan's resume file.
pub const MIXED_VERSION: u32 = 2;

/// The resume file of a mixed TCP+UDP scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixedResume {
    pub version: u32,
    /// The TCP engine's state; `None` when it had finished.
    pub tcp: Option<ResumeState>,
    /// The UDP engine's state; `None` when it had finished.
    pub udp: Option<ResumeState>,
}

/// What a resume file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeFile {
    /// A TCP-only or UDP-only scan (version 1).
    Single(ResumeState),
    /// A scan of TCP and UDP ports (version 2).
    Mixed(MixedResume),
}

/// Reads a resume file of either kind.
pub fn read(path: &Path) -> Result<ResumeFile, ScanError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ScanError::Config(format!(
            "cannot read the resume file {}: {e}",
            path.display()
        ))
    })?;
    let not_ours = |e: serde_json::Error| {
        // A parsed value that does not fit has no position.
        let at = match e.line() {
            0 => String::new(),
            n => format!(":{n}"),
        };
        ScanError::Config(format!(
            "{}{at}: not a portwarden resume file ({e}); pass the file an interrupted scan wrote",
            path.display(),
        ))
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(not_ours)?;
    if value.get("version").and_then(serde_json::Value::as_u64) == Some(MIXED_VERSION.into()) {
        let m: MixedResume = serde_json::from_value(value).map_err(not_ours)?;
        if m.tcp.is_none() && m.udp.is_none() {
            return Err(ScanError::Config(format!(
                "{}: the resume file holds no unfinished part: that scan was complete",
                path.display()
            )));
        }
        return Ok(ResumeFile::Mixed(m));
    }
    let state: ResumeState = serde_json::from_value(value).map_err(not_ours)?;
    if state.version != 1 {
        return Err(ScanError::Config(format!(
            "{}: resume file version {} is not supported (expected 1, or {MIXED_VERSION} for a scan of TCP and UDP ports)",
            path.display(),
            state.version
        )));
    }
    Ok(ResumeFile::Single(state))
}

/// Where the two engines of a mixed scan write their parts of `path`.
pub fn part_paths(path: &Path) -> (PathBuf, PathBuf) {
    let with = |tag: &str| {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{tag}.part"));
        path.with_file_name(name)
    };
    (with("tcp"), with("udp"))
}

/// Joins the engines' parts (written only by an engine that was stopped)
/// into `path`, and removes them. Nothing is written when neither engine
/// was stopped.
pub fn join_parts(tcp: &Path, udp: &Path, path: &Path) -> Result<(), ScanError> {
    let part = |p: &Path| -> Result<Option<ResumeState>, ScanError> {
        if p.exists() {
            let s = read_single(p)?;
            let _ = std::fs::remove_file(p);
            Ok(Some(s))
        } else {
            Ok(None)
        }
    };
    let (tcp, udp) = (part(tcp)?, part(udp)?);
    if tcp.is_none() && udp.is_none() {
        return Ok(());
    }
    let m = MixedResume {
        version: MIXED_VERSION,
        tcp,
        udp,
    };
    write_atomic(path, &m)
}

/// Reads a resume file written by an interrupted TCP-only or UDP-only
/// scan ([`read`] reads either kind).
pub fn read_single(path: &Path) -> Result<ResumeState, ScanError> {
    match read(path)? {
        ResumeFile::Single(state) => Ok(state),
        ResumeFile::Mixed(_) => Err(ScanError::Config(format!(
            "{}: this resume file is of a scan of TCP and UDP ports: resume with the ports of the interrupted scan",
            path.display()
        ))),
    }
}

/// Writes one engine's resume state (atomically: a temporary file renamed
/// over it).
pub fn write_single(path: &Path, state: &ResumeState) -> Result<(), ScanError> {
    write_atomic(path, state)
}

/// Writes a resume state as JSON, atomically (a temporary file renamed
/// over `path`): either kind of resume file.
pub(crate) fn write_atomic(path: &Path, state: &impl Serialize) -> Result<(), ScanError> {
    let text = serde_json::to_string(state)
        .map_err(|e| ScanError::Config(format!("cannot encode the resume state: {e}")))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            ScanError::Config(format!(
                "cannot write the resume file {}: {e}",
                path.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::raw::schedule::Shard;

    fn state(seed: u64) -> ResumeState {
        ResumeState {
            version: 1,
            seed,
            shard: Shard::default(),
            total: 100,
            next: 20,
            outstanding: vec![3, 5],
        }
    }

    #[test]
    fn parts_join_into_one_file_that_reads_back() {
        let dir = std::env::temp_dir().join(format!("pw-resume-mixed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scan.resume");
        let (t, u) = part_paths(&path);
        assert_eq!(t, dir.join("scan.resume.tcp.part"));
        assert_eq!(u, dir.join("scan.resume.udp.part"));
        // Neither engine stopped: no file.
        join_parts(&t, &u, &path).unwrap();
        assert!(!path.exists());
        // Only the UDP engine was stopped.
        write_single(&u, &state(7)).unwrap();
        join_parts(&t, &u, &path).unwrap();
        assert!(!u.exists());
        assert_eq!(
            read(&path).unwrap(),
            ResumeFile::Mixed(MixedResume {
                version: 2,
                tcp: None,
                udp: Some(state(7)),
            })
        );
        // A single engine's file reads as such.
        write_single(&path, &state(9)).unwrap();
        assert_eq!(read(&path).unwrap(), ResumeFile::Single(state(9)));
        std::fs::write(&path, r#"{"version":2,"tcp":null,"udp":null}"#).unwrap();
        assert_eq!(
            read(&path).unwrap_err().to_string(),
            format!(
                "{}: the resume file holds no unfinished part: that scan was complete",
                path.display()
            )
        );
        std::fs::write(&path, "{\"version\":2,\n\"tcp\":1}").unwrap();
        assert!(
            read(&path)
                .unwrap_err()
                .to_string()
                .starts_with(&format!("{}: not a portwarden resume file", path.display())),
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
