//! App layer: cancellation of a run (Ctrl-C, SIGTERM). The CLI owns the
//! signals and calls [`Cancel::cancel`]; the app checks the flag between
//! steps, runs long synchronous steps (import, evaluation, report writing)
//! on a worker thread it can walk away from, and keeps the one step that
//! must not be cut in half — putting the report in place and recording the
//! run — behind [`Cancel::commit`]. A cancel either comes before the commit
//! (nothing is written, temporary directories are removed at once) or
//! waits the few milliseconds the commit takes and changes nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::safe_fs::{self, TempPath};

/// The run was cancelled: nothing was written or recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted: nothing was written and nothing recorded in the history")]
pub struct Cancelled;

/// A cancellation flag shared by the CLI and the app (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    flag: Arc<AtomicBool>,
    /// A signal that came after the commit: the run finishes, but what
    /// follows it (writing the metrics) must not wait on anything.
    late: AtomicBool,
    gate: Mutex<Gate>,
    notify: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Gate {
    cancelled: bool,
    committed: bool,
    /// Temporary directories to remove when cancelled.
    temps: Vec<PathBuf>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.0.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels the run unless it has already committed (then it finishes,
    /// and this returns false). Removes the run's temporary directories.
    pub fn cancel(&self) -> bool {
        let mut g = self.gate();
        if g.committed {
            self.0.late.store(true, Ordering::SeqCst);
            return false;
        }
        g.cancelled = true;
        self.0.flag.store(true, Ordering::SeqCst);
        for p in g.temps.drain(..) {
            safe_fs::remove_ours(&p);
        }
        drop(g);
        self.0.notify.notify_waiters();
        true
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// True once a signal came, before or after the commit.
    pub fn signalled(&self) -> bool {
        self.is_cancelled() || self.0.late.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled: the check between steps.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// The raw flag, for engines that take a stop flag.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.flag.clone()
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Creates a temporary directory that a cancel removes at once (and its
    /// guard removes on every other path).
    pub fn temp_dir(&self, parent: &Path, prefix: &str) -> anyhow::Result<TempPath> {
        let mut g = self.gate();
        if g.cancelled {
            return Err(Cancelled.into());
        }
        let t = safe_fs::create_temp_dir(parent, prefix).map_err(|e| {
            anyhow::anyhow!("cannot create a directory in {}: {e}", parent.display())
        })?;
        g.temps.push(t.path().to_path_buf());
        Ok(t)
    }

    /// Runs `f` (putting the results in place, recording the run) unless
    /// cancelled first; a cancel arriving meanwhile waits for it and is then
    /// ignored.
    pub fn commit<T>(&self, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut g = self.gate();
        if g.cancelled {
            return Err(Cancelled.into());
        }
        let r = f();
        g.committed = true;
        g.temps.clear();
        r
    }
}

/// Runs the synchronous `f` on a thread of its own and waits for it, or
/// for a cancel: then it returns [`Cancelled`] at once and leaves the
/// thread to die with the process (it cannot commit any more).
pub async fn off_thread<T: Send + 'static>(
    cancel: &Cancel,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    cancel.check()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portwarden-work".into())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    tokio::select! {
        r = rx => r.map_err(|_| anyhow::anyhow!("the worker thread failed"))?,
        () = cancel.cancelled() => Err(Cancelled.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_removes_temporaries_and_forbids_the_commit() {
        let base = std::env::temp_dir().join(format!("pw-cancel-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let c = Cancel::new();
        let t = c.temp_dir(&base, ".x.tmp-").unwrap();
        std::fs::write(t.path().join("big"), "x").unwrap();
        assert!(c.cancel());
        assert!(!t.path().exists(), "removed by the cancel itself");
        assert!(c.commit(|| Ok(())).unwrap_err().is::<Cancelled>());
        assert!(c.temp_dir(&base, ".x.tmp-").unwrap_err().is::<Cancelled>());
        drop(t);
        // After a commit, a cancel changes nothing.
        let c = Cancel::new();
        c.commit(|| Ok(())).unwrap();
        assert!(!c.signalled());
        assert!(!c.cancel());
        assert!(!c.is_cancelled());
        assert!(c.signalled(), "a late signal is remembered");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[tokio::test]
    async fn off_thread_returns_at_once_when_cancelled() {
        let c = Cancel::new();
        let c2 = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            c2.cancel();
        });
        let r = off_thread(&c, || {
            std::thread::sleep(std::time::Duration::from_secs(30));
            Ok(())
        })
        .await;
        assert!(r.unwrap_err().is::<Cancelled>());
        assert_eq!(off_thread(&Cancel::new(), || Ok(7)).await.unwrap(), 7);
    }
}
