//! Files written where the operator points: `scan -o FILE`, `--metrics
//! FILE`, the temporary twin of a report directory. Layer-neutral (like
//! `model`): the store, the app and the CLI use it.
//!
//! The rules, so nothing we did not create is destroyed:
//! * a regular file, or a path that does not exist yet, is replaced
//!   atomically: written to a temporary file beside it (created with
//!   `O_EXCL` under a random name), then renamed over it. A reader never
//!   sees half a file, and an error or an interrupt leaves the old one;
//! * a FIFO, a character device or a socket (`/dev/null`, a pipe another
//!   program reads) is written in place and never replaced;
//! * a directory, a block device or a dangling symbolic link is refused;
//! * a symbolic link to a regular file is kept: its target is replaced.
//!
//! Temporary paths are removed by their guard ([`TempPath`]) on every error
//! path; what happens on a signal is the caller's business (the app
//! registers its temporary directories with its cancellation gate).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writing an output file failed before anything was replaced.
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    #[error("{} is a directory: name a file", .0.display())]
    IsDirectory(PathBuf),
    #[error("{} is a block device: refusing to write to it", .0.display())]
    BlockDevice(PathBuf),
    #[error("{} is a symbolic link to nothing: refusing to replace it", .0.display())]
    Dangling(PathBuf),
    #[error("{} did not take the data within {} s (a FIFO that no program reads?)", path.display(), waited.as_secs())]
    NoReader {
        path: PathBuf,
        waited: std::time::Duration,
    },
    #[error("{}: interrupted before it was written", .0.display())]
    Interrupted(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SafeFsError + '_ {
    move |source| SafeFsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary file or directory we created, removed on drop unless kept.
#[derive(Debug)]
pub struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    /// Takes charge of a path we are about to create (or that a library
    /// creates for us, such as SQLite's side files): removed on drop if it
    /// exists then.
    pub fn adopt(path: PathBuf) -> TempPath {
        TempPath { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Forgets the path: it is no longer removed on drop (it was renamed
    /// into place, or handed to another owner).
    pub fn keep(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            remove_ours(&p);
        }
    }
}

/// Removes a temporary file or directory of ours, retrying when a writer
/// still running added an entry between listing and removal.
pub fn remove_ours(p: &Path) {
    for _ in 0..5 {
        let r = match fs::symlink_metadata(p) {
            Err(_) => return,
            Ok(m) if m.is_dir() => fs::remove_dir_all(p),
            Ok(_) => fs::remove_file(p),
        };
        match r {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(_) => continue,
        }
    }
}

/// A random suffix for temporary names (so a name is never guessed and
/// never collides with a leftover of another run).
fn suffix() -> String {
    let mut b = [0u8; 6];
    if getrandom::fill(&mut b).is_err() {
        // A clock-derived suffix still differs between runs; O_EXCL keeps it safe.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    hex::encode(b)
}

/// Creates a new directory `{prefix}{pid}-{random}` in `parent`; it must
/// not exist (never reuses nor clears anything).
pub fn create_temp_dir(parent: &Path, prefix: &str) -> io::Result<TempPath> {
    for _ in 0..16 {
        let p = parent.join(format!("{prefix}{}-{}", std::process::id(), suffix()));
        match fs::create_dir(&p) {
            Ok(()) => return Ok(TempPath { path: Some(p) }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "cannot find a free temporary name",
    ))
}

/// Creates a new file `{prefix}{pid}-{random}` in `parent` with `mode`.
pub fn create_temp_file(parent: &Path, prefix: &str, mode: u32) -> io::Result<(File, TempPath)> {
    for _ in 0..16 {
        let p = parent.join(format!("{prefix}{}-{}", std::process::id(), suffix()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&p)
        {
            Ok(f) => return Ok((f, TempPath { path: Some(p) })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "cannot find a free temporary name",
    ))
}

/// Gives the file `from` the name `to` only if nothing has that name yet
/// (`renameat2(RENAME_NOREPLACE)`, or a hard link where the file system
/// cannot do that): never replaces anything. `AlreadyExists` when `to`
/// exists; `from` is then untouched.
pub fn link_new(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => fs::hard_link(from, to),
        _ => Err(e),
    }
}

/// An output file being written: a temporary file renamed over the target
/// on [`OutFile::commit`], or a FIFO/character device written in place.
/// Dropped without a commit, the temporary file is removed and the target
/// is untouched.
#[derive(Debug)]
pub struct OutFile {
    file: File,
    replace: Option<(PathBuf, TempPath)>,
    path: PathBuf,
}

impl OutFile {
    /// Refuses what [`OutFile::create`] would refuse, creating nothing (to
    /// fail before a long run rather than after it).
    pub fn check(path: &Path) -> Result<(), SafeFsError> {
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => Err(SafeFsError::IsDirectory(path.to_path_buf())),
            Ok(m) if m.file_type().is_block_device() => {
                Err(SafeFsError::BlockDevice(path.to_path_buf()))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(path).is_ok() {
                    Err(SafeFsError::Dangling(path.to_path_buf()))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// Opens `path` for writing by the rules of this module.
    pub fn create(path: &Path) -> Result<OutFile, SafeFsError> {
        let link = fs::symlink_metadata(path);
        let meta = match fs::metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if link.is_ok() {
                    return Err(SafeFsError::Dangling(path.to_path_buf()));
                }
                None
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        if let Some(m) = &meta {
            let t = m.file_type();
            if t.is_dir() {
                return Err(SafeFsError::IsDirectory(path.to_path_buf()));
            }
            if t.is_block_device() {
                return Err(SafeFsError::BlockDevice(path.to_path_buf()));
            }
            if !t.is_file() {
                // FIFO, character device, socket: written as it is.
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                return Ok(OutFile {
                    file,
                    replace: None,
                    path: path.to_path_buf(),
                });
            }
        }
        // A symbolic link to a regular file: replace its target, keep the link.
        let target = match (&link, &meta) {
            (Ok(l), Some(_)) if l.file_type().is_symlink() => {
                fs::canonicalize(path).map_err(io_err(path))?
            }
            _ => path.to_path_buf(),
        };
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let mode = meta
            .as_ref()
            .map_or(0o666, |m| m.permissions().mode() & 0o7777);
        let (file, tmp) =
            create_temp_file(&parent, &format!(".{name}.tmp-"), mode).map_err(io_err(&target))?;
        if meta.is_some() {
            // The umask applied at creation: give the replacement the old mode.
            let _ = file.set_permissions(fs::Permissions::from_mode(mode));
        }
        Ok(OutFile {
            file,
            replace: Some((target, tmp)),
            path: path.to_path_buf(),
        })
    }

    /// A second handle to the file (for a buffered writer owned elsewhere).
    pub fn handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// True when the target is replaced on commit (a regular file).
    pub fn replaces(&self) -> bool {
        self.replace.is_some()
    }

    /// Flushes and puts the file in place.
    pub fn commit(mut self) -> Result<(), SafeFsError> {
        self.file.flush().map_err(io_err(&self.path))?;
        if let Some((target, tmp)) = self.replace.take() {
            self.file.sync_all().map_err(io_err(&self.path))?;
            fs::rename(tmp.path(), &target).map_err(io_err(&target))?;
            tmp.keep();
        }
        Ok(())
    }
}

impl Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes `bytes` to `path` by the rules of this module.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), SafeFsError> {
    let mut f = OutFile::create(path)?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.commit()
}

/// [`write`] that never hangs: a FIFO (or device) is opened without
/// waiting for a reader, which then has `wait` to appear, and a write
/// blocked on a full pipe gets the same `wait`; `stop()` (a signal) ends
/// either wait at once. A regular file is replaced as [`write`] does.
pub fn write_bounded(
    path: &Path,
    bytes: &[u8],
    wait: std::time::Duration,
    stop: &dyn Fn() -> bool,
) -> Result<(), SafeFsError> {
    use std::os::fd::AsRawFd;
    let special = fs::metadata(path)
        .is_ok_and(|m| !m.is_file() && !m.is_dir() && !m.file_type().is_block_device());
    if !special {
        return write(path, bytes);
    }
    let deadline = std::time::Instant::now() + wait;
    let step = std::time::Duration::from_millis(20);
    let gone = || -> Option<SafeFsError> {
        if stop() {
            Some(SafeFsError::Interrupted(path.to_path_buf()))
        } else if std::time::Instant::now() >= deadline {
            Some(SafeFsError::NoReader {
                path: path.to_path_buf(),
                waited: wait,
            })
        } else {
            None
        }
    };
    let file = loop {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        {
            Ok(f) => break f,
            // A FIFO without a reader.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if let Some(e) = gone() {
                    return Err(e);
                }
                std::thread::sleep(step);
            }
            Err(e) => return Err(io_err(path)(e)),
        }
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        match (&file).write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(e) = gone() {
                    return Err(e);
                }
                let mut p = libc::pollfd {
                    fd: file.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut p, 1, step.as_millis() as libc::c_int) };
            }
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    Ok(())
}

/// Removes what a killed run (SIGKILL, power loss) left: directories named
/// exactly as ours (`.NAME.tmp-PID-` and 12 hex digits, from a random
/// source) whose process is gone. Anything else is left alone; a live or
/// reused PID keeps its directory.
pub fn remove_stale_temps(parent: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, random)) = rest.split_once('-') else {
            continue;
        };
        let ours = pid.parse::<u32>().is_ok_and(|p| p > 0)
            && random.len() == 12
            && random.bytes().all(|b| b.is_ascii_hexdigit());
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if ours && is_dir && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`).
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; the call only renames.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pw-safefs-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_regular_file_is_replaced_only_on_commit() {
        let d = scratch("regular");
        let p = d.join("out.jsonl");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let mut f = OutFile::create(&p).unwrap();
        assert!(f.replaces());
        f.write_all(b"new").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "old");
        f.commit().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // Dropped without commit: the old file stays, no temporary is left.
        let mut f = OutFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(entries(&d), vec!["out.jsonl"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fifos_and_devices_are_written_in_place_directories_refused() {
        let d = scratch("special");
        // /dev/null stays a character device.
        write(Path::new("/dev/null"), b"x").unwrap();
        assert!(
            fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        // A FIFO is written into, not replaced.
        let fifo = d.join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
        };
        write(&fifo, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        // A directory is refused and untouched.
        fs::create_dir(d.join("dir")).unwrap();
        fs::write(d.join("dir/keep"), "k").unwrap();
        assert!(OutFile::check(&d.join("dir")).is_err());
        assert!(OutFile::check(&d.join("new")).is_ok());
        let e = write(&d.join("dir"), b"x").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert_eq!(fs::read_to_string(d.join("dir/keep")).unwrap(), "k");
        // A dangling link is refused; a link to a file keeps being a link.
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        assert!(matches!(
            write(&d.join("dangling"), b"x"),
            Err(SafeFsError::Dangling(_))
        ));
        fs::write(d.join("real"), "old").unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        write(&d.join("link"), b"new").unwrap();
        assert!(
            fs::symlink_metadata(d.join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(d.join("real")).unwrap(), "new");
        assert_eq!(
            entries(&d),
            vec!["dangling", "dir", "link", "pipe", "real"],
            "no temporary files left"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn temp_dirs_are_new_and_removed_on_drop() {
        let d = scratch("tmpdir");
        let t = create_temp_dir(&d, ".r.tmp-").unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        let p = t.path().to_path_buf();
        drop(t);
        assert!(!p.exists());
        let t = create_temp_dir(&d, ".r.tmp-").unwrap();
        let kept = t.keep();
        assert!(kept.is_dir());
        fs::remove_dir_all(&d).unwrap();
    }
}
