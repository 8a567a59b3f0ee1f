//! App layer: every path a run will write, checked before any work, so a
//! typo in `--metrics` or `-o` costs nothing instead of a whole scan.
//!
//! A check creates the missing folders where that is what the operator
//! means (a report directory, a scan's output, the history), and refuses a
//! missing folder where it is more likely a typo or a collector that is not
//! set up (`--metrics` into a node_exporter textfile directory). Whether a
//! folder can be written is learned by writing: a temporary file is created
//! in it and removed at once (the permission bits do not tell, for root or
//! on a read-only mount).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::AuditRequest;

/// What to do about a missing folder on the way to an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parents {
    /// Create it (and its parents).
    Create,
    /// Refuse: a missing folder is an error naming it.
    Require,
}

/// The folder a file at `path` is written into (`.` for a bare name); for a
/// symbolic link to an existing file, the folder of its target, where the
/// replacement is written.
fn folder_of(path: &Path) -> PathBuf {
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).unwrap_or(path.into()),
        _ => path.to_path_buf(),
    };
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes sure `dir` exists (by `parents`) and that a file can be created
/// in it. `what` names the option in errors.
fn check_folder(dir: &Path, parents: Parents, what: &str) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "{what}: {} is not a folder, so nothing can be written in it",
            dir.display()
        ),
        // ENOTDIR: a file on the way, which creating the folder names.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            match parents {
                Parents::Create => fs::create_dir_all(dir).with_context(|| {
                    format!("{what}: cannot create the folder {}", dir.display())
                })?,
                Parents::Require => bail!(
                    "{what}: the folder {} does not exist (create it, or correct the path)",
                    dir.display()
                ),
            }
        }
        Err(e) => {
            return Err(e).with_context(|| format!("{what}: cannot reach {}", dir.display()));
        }
    }
    crate::safe_fs::create_temp_file(dir, ".portwarden-write-check-", 0o600)
        .map(drop)
        .with_context(|| format!("{what}: cannot write in {}", dir.display()))
}

/// Checks that a file can be written at `path` by the rules of
/// [`crate::safe_fs::OutFile`]: not a folder nor a block device nor a
/// dangling link, and (a regular file or a new one) its folder writable.
/// A FIFO or character device is written in place and not probed.
pub fn check_output_file(path: &Path, parents: Parents) -> Result<()> {
    let what = format!("cannot write {}", path.display());
    if fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        // A FIFO or a device: written in place (OutFile refuses a block device).
        return Ok(crate::safe_fs::OutFile::check(path)?);
    }
    check_folder(&folder_of(path), parents, &what)?;
    // Its own message names the path.
    Ok(crate::safe_fs::OutFile::check(path)?)
}

/// Checks every path an audit writes, before anything is resolved or
/// scanned: the report directory (a missing parent is created), the
/// metrics file (its folder must exist), the history database (its folder
/// is created) and, with `--pdf`, report.pdf inside the report directory.
pub fn check_audit_outputs(req: &AuditRequest) -> Result<()> {
    super::check_out_dir(&req.out)?;
    let out_what = format!("cannot write the report {}", req.out.display());
    check_folder(&folder_of(&req.out), Parents::Create, &out_what)?;
    if let Some(m) = &req.metrics {
        check_output_file(m, Parents::Require)
            .with_context(|| format!("--metrics {}", m.display()))?;
    }
    if let Some(store) = &req.store {
        let what = format!("cannot write the history {}", store.display());
        if fs::metadata(store).is_ok_and(|m| m.is_dir()) {
            bail!("{what}: it is a folder (give the database file's path)");
        }
        check_folder(&folder_of(store), Parents::Create, &what)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pw-paths-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_folders_are_created_or_refused_and_nothing_is_left() {
        let d = scratch("files");
        let deep = d.join("a/b/out.jsonl");
        check_output_file(&deep, Parents::Create).unwrap();
        assert!(d.join("a/b").is_dir());
        assert_eq!(
            fs::read_dir(d.join("a/b")).unwrap().count(),
            0,
            "the probe file was left"
        );
        assert!(!deep.exists());

        let e = check_output_file(&d.join("nope/m.prom"), Parents::Require).unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("the folder") && text.contains("nope") && text.contains("does not exist"),
            "{text}"
        );
        assert!(!d.join("nope").exists());

        // A file where a folder should be: refused, whoever runs it.
        fs::write(d.join("plain"), "x").unwrap();
        let e = check_output_file(&d.join("plain/out.csv"), Parents::Create).unwrap_err();
        assert!(format!("{e:#}").contains("is not a folder"), "{e:#}");
        let e = check_output_file(&d.join("plain/x/out.csv"), Parents::Create).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot create the folder"),
            "{e:#}"
        );
        // A folder given as the file.
        assert!(check_output_file(&d.join("a"), Parents::Create).is_err());
        // /dev/null is written in place.
        check_output_file(Path::new("/dev/null"), Parents::Require).unwrap();
        assert_eq!(fs::read_dir(&d).unwrap().count(), 2, "only a/ and plain");
        let _ = fs::remove_dir_all(&d);
    }
}
