//! Report layer: `report.pdf`, the printed report, made by Chromium's own
//! PDF printer from the print layout ([`super::print`]).
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

/// Prints the report's print layout ([`super::print`]) to
/// `dir/report.pdf` with `chromium`, twice: the first pass finds the page
/// each section starts on (from the PDF's named destinations), the second
/// writes those pages into the contents. `dir` may be relative.
pub fn print(
    chromium: &Path,
    dir: &Path,
    model: &super::ReportModel,
    paper: super::print::Paper,
) -> Result<(), ReportError> {
    let pdf = dir.join(FILE_NAME);
    let profile = dir.join(".chromium-profile");
    let fail = |message: String| ReportError::Pdf {
        chromium: chromium.to_path_buf(),
        message,
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    let report_json = dir.join("report.json");
    let report_hash = {
        use sha2::Digest;
        let bytes = fs::read(&report_json).map_err(io(&report_json))?;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    // create_dir, not create_dir_all: the profile is ours only if we made it.
    fs::create_dir(&profile).map_err(io(&profile))?;
    let result = two_passes(chromium, &profile, &pdf, model, paper, &report_hash);
    let removed = fs::remove_dir_all(&profile);
    if let Err(e) = result {
        let _ = fs::remove_file(&pdf);
        return Err(e);
    }
    removed.map_err(io(&profile))?;
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

/// Renders the print page into the profile directory and prints it, then
/// again with the contents' page numbers.
fn two_passes(
    chromium: &Path,
    profile: &Path,
    pdf: &Path,
    model: &super::ReportModel,
    paper: super::print::Paper,
    report_hash: &str,
) -> Result<(), ReportError> {
    let fail = |message: String| ReportError::Pdf {
        chromium: chromium.to_path_buf(),
        message,
    };
    let page = profile.join("print.html");
    let mut pages = std::collections::HashMap::new();
    for pass in 0..2 {
        let html = super::print::render(model, paper, report_hash, &pages)?;
        fs::write(&page, html).map_err(|source| ReportError::Io {
            path: page.clone(),
            source,
        })?;
        run(chromium, profile, pdf, &page).map_err(fail)?;
        if pass == 0 {
            let bytes = fs::read(pdf).map_err(|source| ReportError::Io {
                path: pdf.to_path_buf(),
                source,
            })?;
            pages = super::pdf_pages::section_pages(&bytes);
            if pages.is_empty() {
                // No destinations (an older Chromium): the contents stay
                // without page numbers.
                break;
            }
        }
    }
    Ok(())
}

/// `file://` and the absolute path, percent-encoded (Chromium reads a
/// relative `file://` URL as nothing).
fn file_url(path: &Path) -> Result<String, String> {
    let abs =
        fs::canonicalize(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    let mut url = String::from("file://");
    for b in abs.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            url.push(*b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(url)
}

/// The last lines of Chromium's stderr, for an error.
fn stderr_tail(path: &Path) -> String {
    const LINES: usize = 8;
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(16 * 1024)..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(LINES)..].join("\n  ");
    if tail.is_empty() {
        String::new()
    } else {
        format!(
            "; its last messages:\n  {}",
            super::display_safe(&tail).replace('\u{FFFD}', "\n  ")
        )
    }
}

fn run(chromium: &Path, profile: &Path, pdf: &Path, page: &Path) -> Result<(), String> {
    let log = profile.join("stderr.log");
    let stderr =
        fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let url = file_url(page)?;
    let pdf =
        std::path::absolute(pdf).map_err(|e| format!("cannot resolve {}: {e}", pdf.display()))?;
    let profile = std::path::absolute(profile)
        .map_err(|e| format!("cannot resolve {}: {e}", profile.display()))?;
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
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
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
            Ok(Some(status)) if status.success() && pdf.is_file() => return Ok(()),
            Ok(Some(status)) if status.success() => {
                return Err(format!("it wrote no PDF{}", stderr_tail(&log)));
            }
            Ok(Some(status)) => {
                return Err(format!("it exited with {status}{}", stderr_tail(&log)));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A program that fails on Chromium's arguments: its own stderr ends
    /// the error (a shell rejects `--headless` as an option).
    #[test]
    fn a_failing_printer_is_quoted_from_its_stderr() {
        let dir = std::env::temp_dir().join(format!("pw-pdf-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("profile")).unwrap();
        fs::write(dir.join("page.html"), "<p>x</p>").unwrap();
        let err = run(
            Path::new("/bin/sh"),
            &dir.join("profile"),
            &dir.join("out.pdf"),
            &dir.join("page.html"),
        )
        .unwrap_err();
        let _ = fs::remove_dir_all(&dir);
        assert!(err.starts_with("it exited with"), "{err}");
        assert!(
            err.contains("its last messages:") && err.contains("--"),
            "{err}"
        );
    }

    #[test]
    fn a_relative_page_becomes_an_absolute_encoded_url() {
        let dir = std::env::temp_dir().join(format!("pw pdf #{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let page = dir.join("print.html");
        fs::write(&page, "x").unwrap();
        let url = file_url(&page).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert!(url.starts_with("file:///"), "{url}");
        assert!(url.contains("pw%20pdf%20%23"), "{url}");
        assert!(file_url(Path::new("no/such/page.html")).is_err());
    }
}
