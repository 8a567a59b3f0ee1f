//! Store layer: opening the history. A new history is created whole under
//! a temporary name and linked into place without replacing anything, so
//! audits starting at once on a new `--store` never see a half-made (0-byte)
//! database; waiting for another audit's write lock ends on a stop flag (a
//! signal) instead of sitting out the busy timeout.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{MIGRATIONS, SCHEMA_VERSION, Store, StoreError};

/// How long a writer waits for another one's lock before giving up.
const BUSY_WAIT: Duration = Duration::from_secs(30);
/// How often the wait looks at the stop flag.
const BUSY_STEP: Duration = Duration::from_millis(10);

impl Store {
    /// Opens (creating if needed) the history at `path` and migrates it.
    /// An existing 0-byte file is refused: it is a truncated history, and
    /// starting a new chain in it would hide that.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, None)
    }

    /// [`Store::open`] whose waits for another process's write lock (here
    /// and in [`Store::begin_record`]) end with [`StoreError::Interrupted`]
    /// once `stop` is raised.
    pub fn open_interruptible(path: &Path, stop: Arc<AtomicBool>) -> Result<Store, StoreError> {
        Store::open_with(path, Some(stop))
    }

    /// Opens a history that must already exist (reading commands never
    /// create one): a missing or 0-byte file is an error that says so.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        match std::fs::metadata(path) {
            Err(_) => Err(StoreError::Missing {
                path: path.to_path_buf(),
            }),
            Ok(_) => Store::open(path),
        }
    }

    fn open_with(path: &Path, stop: Option<Arc<AtomicBool>>) -> Result<Store, StoreError> {
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(StoreError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                    path: path.to_path_buf(),
                    source,
                })?;
                dir
            }
            None => Path::new("."),
        };
        if std::fs::symlink_metadata(path).is_err() {
            create_whole(path, dir, stop.clone())?;
        }
        // Never created here: a path that vanished since is an error, not a
        // new empty history.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            key: None,
            stop,
        };
        store.setup()?;
        Ok(store)
    }

    /// A closure telling whether the stop flag is raised.
    pub(super) fn stopped(&self) -> impl Fn() -> bool + use<> {
        let stop = self.stop.clone();
        move || stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    fn setup(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let stopped = self.stopped();
        let sql = move |source| match stopped() {
            true => StoreError::Interrupted { path: path.clone() },
            false => StoreError::Sql {
                path: path.clone(),
                source,
            },
        };
        // A second audit waits for the first one's write instead of
        // failing, unless stopped.
        let stopped = self.stopped();
        self.conn
            .busy_handler(Some(move |n: i32| {
                if stopped() || BUSY_STEP * n.unsigned_abs() >= BUSY_WAIT {
                    return false;
                }
                std::thread::sleep(BUSY_STEP);
                true
            }))
            .map_err(&sql)?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(&sql)?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(&sql)?;
        // A run of a million rows is written in one transaction: a 32 MiB
        // page cache keeps its pages from spilling to the log over and over.
        self.conn
            .pragma_update(None, "cache_size", -32768)
            .map_err(&sql)?;
        // Up to date: no write lock needed (an audit opening the history
        // never queues behind another one's write).
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&sql)?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&sql)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        for (v, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(step).map_err(&sql)?;
            tx.pragma_update(None, "user_version", v as i64 + 1)
                .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)?;
        Ok(())
    }
}

/// Creates a complete, migrated, empty history at `path`: built under a
/// temporary name in `dir`, then linked to `path` only if nothing is there
/// yet (another audit may have won the race: then its history is kept and
/// ours removed). Nothing half-made is ever visible at `path`.
fn create_whole(path: &Path, dir: &Path, stop: Option<Arc<AtomicBool>>) -> Result<(), StoreError> {
    let io = |source| StoreError::Dir {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "history".into());
    let (file, tmp) =
        crate::safe_fs::create_temp_file(dir, &format!(".{name}.new-"), 0o666).map_err(io)?;
    drop(file);
    // SQLite's own side files of the temporary database, removed with it.
    let side = |ext: &str| {
        let mut p = tmp.path().as_os_str().to_owned();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let _wal = crate::safe_fs::TempPath::adopt(side("-wal"));
    let _shm = crate::safe_fs::TempPath::adopt(side("-shm"));
    let _journal = crate::safe_fs::TempPath::adopt(side("-journal"));
    let conn = Connection::open(tmp.path()).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut fresh = Store {
        conn,
        path: tmp.path().to_path_buf(),
        key: None,
        stop,
    };
    fresh.setup()?;
    fresh.conn.close().map_err(|(_, source)| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    match crate::safe_fs::link_new(tmp.path(), path) {
        Ok(()) => {}
        // Another audit created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    Ok(())
}
