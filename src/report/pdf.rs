//! Report layer: `report.pdf`, the printed executive report, made by
//! Chromium's own PDF printer from `index.html` (its print stylesheet:
//! summary, compliance, the most severe ports, exceptions and fix groups).
//!
//! Chromium runs headless, with a profile directory we create inside the
//! report directory being written and remove before the manifest is made,
//! with a time limit, and killed if portwarden dies first.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ReportError;

/// The PDF's file name in a report directory.
pub const FILE_NAME: &str = "report.pdf";

/// How long Chromium may take to print (a /16 page loads in a few seconds).
const TIME_LIMIT: Duration = Duration::from_secs(180);

/// The names looked for on `PATH`, in this order.
const NAMES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// The Chromium to print with: `PORTWARDEN_CHROMIUM` when set, else the
/// first of chromium, chromium-browser, google-chrome(-stable) on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PORTWARDEN_CHROMIUM") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| NAMES.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Prints `dir/index.html` to `dir/report.pdf` with `chromium`.
pub fn print(chromium: &Path, dir: &Path) -> Result<(), ReportError> {
    let pdf = dir.join(FILE_NAME);
    let profile = dir.join(".chromium-profile");
    let fail = |message: String| ReportError::Pdf {
        chromium: chromium.to_path_buf(),
        message,
    };
    // create_dir, not create_dir_all: the profile is ours only if we made it.
    fs::create_dir(&profile).map_err(|source| ReportError::Io {
        path: profile.clone(),
        source,
    })?;
    let result = run(chromium, &profile, &pdf, &dir.join("index.html"));
    let removed = fs::remove_dir_all(&profile);
    result.map_err(fail)?;
    removed.map_err(|source| ReportError::Io {
        path: profile,
        source,
    })?;
    let mut head = [0u8; 5];
    let head = super::evidence::open_regular(&pdf)
        .and_then(|mut f| {
            io::Read::read_exact(&mut f, &mut head).map_err(|source| ReportError::Io {
                path: pdf.clone(),
                source,
            })
        })
        .is_ok_and(|()| &head == b"%PDF-");
    if !head {
        let _ = fs::remove_file(&pdf);
        return Err(fail("it wrote no PDF".into()));
    }
    Ok(())
}

fn run(chromium: &Path, profile: &Path, pdf: &Path, page: &Path) -> Result<(), String> {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--no-pdf-header-footer",
    ]);
    // Chromium refuses to run as root with its sandbox on.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--no-sandbox");
    }
    cmd.arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill
    // the child when this thread ends, so no Chromium outlives portwarden.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start it: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("it exited with {status}")),
            Ok(None) if start.elapsed() > TIME_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it did not finish in {} s", TIME_LIMIT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
