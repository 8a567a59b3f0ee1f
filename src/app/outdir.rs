//! The report folder's swap into place: built in a temporary directory
//! beside `--out`, put in place at the commit only when what is there is
//! ours to replace ([`report::check_out_dir`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Cancel;
use crate::report::{OutDir, check_out_dir};

/// Builds a report directory next to `out`, to be renamed into place by
/// [`PendingReport::commit`], so an interrupted or failed run never leaves a
/// half-written report nor destroys the previous one, and never replaces
/// what is not a report of ours ([`report::check_out_dir`]). The temporary directory
/// is new (random name), removed on every error path and at once on a
/// cancel.
pub fn write_report_dir(
    out: &Path,
    cancel: &Cancel,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PendingReport> {
    check_out_dir(out)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .with_context(|| format!("report directory '{}' has no name", out.display()))?
        .to_string_lossy()
        .into_owned();
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    crate::safe_fs::remove_stale_temps(&parent, &name);
    let tmp = cancel.temp_dir(&parent, &format!(".{name}.tmp-"))?;
    fill(tmp.path())?;
    cancel.check()?;
    Ok(PendingReport {
        out: out.to_path_buf(),
        tmp,
        cancel: cancel.clone(),
    })
}

/// A report written in its temporary directory, not yet in place. Dropped
/// without a commit, it is removed.
#[derive(Debug)]
pub struct PendingReport {
    out: PathBuf,
    tmp: crate::safe_fs::TempPath,
    cancel: Cancel,
}

impl PendingReport {
    /// The temporary directory (to add files signed over the others).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Puts the report in place and runs `then` (recording the run) behind
    /// the cancellation gate: both happen, or neither when a cancel came
    /// first.
    pub fn commit<T>(self, then: impl FnOnce() -> Result<T>) -> Result<T> {
        let PendingReport { out, tmp, cancel } = self;
        cancel.commit(|| {
            // Checked again: something may have appeared at `out` meanwhile.
            match check_out_dir(&out)? {
                OutDir::Absent | OutDir::Empty => {
                    fs::rename(tmp.path(), &out).with_context(|| {
                        format!("cannot move the report into {}", out.display())
                    })?;
                    tmp.keep();
                }
                OutDir::Report => {
                    // Swap in one step; the previous report is then where the
                    // temporary directory was, and goes with its guard.
                    crate::safe_fs::exchange(tmp.path(), &out).with_context(|| {
                        format!("cannot replace the previous report {}", out.display())
                    })?;
                    drop(tmp);
                }
            }
            then()
        })
    }
}
