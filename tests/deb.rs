//! The Debian package (issue 26): `packaging/build-deb.sh` builds it from
//! the release binary with dpkg-deb; its contents and control fields are
//! exact, lintian finds nothing, and it installs into a temporary root
//! (`dpkg --root`, the postinst run chrootless with DPKG_ROOT) where the
//! binary carries cap_net_raw and runs, the manual page renders and the
//! bash completion loads; a purge leaves nothing behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::k8s::{code, tempdir, text};
use crate::k8s_readme::have;
use crate::lab::Lab;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let o = run(program, args);
    assert_eq!(code(&o), 0, "{program} {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// The files the package must hold (paths without the leading `./`), with
/// their modes: the manual pages are the ones the binary generates.
fn expected_files(man: &Path) -> BTreeSet<String> {
    let mut want: BTreeSet<String> = [
        "-rwxr-xr-x usr/bin/portwarden",
        "-rw-r--r-- usr/share/bash-completion/completions/portwarden",
        "-rw-r--r-- usr/share/zsh/vendor-completions/_portwarden",
        "-rw-r--r-- usr/share/fish/vendor_completions.d/portwarden.fish",
        "-rw-r--r-- lib/systemd/system/portwarden-audit.service",
        "-rw-r--r-- lib/systemd/system/portwarden-audit.timer",
        "-rw-r--r-- usr/share/doc/portwarden/copyright",
        "-rw-r--r-- usr/share/doc/portwarden/changelog.gz",
        "-rw-r--r-- usr/share/doc/portwarden/README.md.gz",
        "-rw-r--r-- usr/share/lintian/overrides/portwarden",
    ]
    .map(String::from)
    .into();
    let o = Command::new(Lab::bin())
        .args(["man", "--out"])
        .arg(man)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    for e in std::fs::read_dir(man).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        want.insert(format!("-rw-r--r-- usr/share/man/man1/{name}.gz"));
    }
    want
}

fn ready() -> bool {
    [
        ("dpkg-deb", "dpkg"),
        ("dpkg-shlibdeps", "dpkg-dev"),
        ("lintian", "lintian"),
        ("setcap", "libcap2-bin"),
        ("getcap", "libcap2-bin"),
        ("man", "man-db"),
    ]
    .iter()
    .all(|(tool, pkg)| have(tool, pkg))
}

#[test]
fn the_deb_builds_installs_into_a_temporary_root_and_runs() {
    if !ready() {
        return;
    }
    let work = tempdir("deb");
    // The release build (shared with the image's: one PORTWARDEN_VERSION).
    let out = ok(&format!("{ROOT}/packaging/build-deb.sh"), &[]);
    let deb = PathBuf::from(ROOT).join(out.lines().last().unwrap().trim());
    let arch = ok("dpkg", &["--print-architecture"]).trim().to_string();
    assert_eq!(
        deb,
        Path::new(ROOT).join(format!("target/debian/portwarden_{VERSION}_{arch}.deb"))
    );
    let deb_s = deb.to_str().unwrap();

    // Control fields.
    let field = |name: &str| ok("dpkg-deb", &["-f", deb_s, name]).trim().to_string();
    assert_eq!(field("Package"), "portwarden");
    assert_eq!(field("Version"), VERSION);
    assert_eq!(field("Architecture"), arch);
    assert_eq!(field("Recommends"), "libcap2-bin");
    assert_eq!(field("Section"), "net");
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");
    let info = ok("dpkg-deb", &["-I", deb_s]);
    assert!(info.contains(" postinst "), "{info}");

    // Contents: exactly these files, owned by root.
    let listing = ok("dpkg-deb", &["-c", deb_s]);
    let mut files = BTreeSet::new();
    for l in listing.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(cols[1], "root/root", "{l}");
        if !cols[0].starts_with('d') {
            files.insert(format!("{} {}", cols[0], cols[5].trim_start_matches("./")));
        }
    }
    assert_eq!(files, expected_files(&work.join("man")));

    // lintian: no error, no warning (the kept symbol table is overridden,
    // with its reason, in the package).
    let o = run(
        "lintian",
        &[
            "--fail-on",
            "error,warning",
            "--tag-display-limit",
            "0",
            deb_s,
        ],
    );
    let found: Vec<String> = text(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .map(String::from)
        .collect();
    assert!(
        found.is_empty() && code(&o) == 0,
        "lintian: {found:?} {}",
        text(&o.stderr)
    );

    install_and_purge(&work, deb_s);
    let _ = std::fs::remove_dir_all(&work);
}

/// Installs into `work/root` with the maintainer script run chrootless,
/// checks the installed files, then purges.
fn install_and_purge(work: &Path, deb: &str) {
    let root = work.join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let root_arg = format!("--root={}", root.display());
    let dpkg = |args: &[&str]| {
        let mut all = vec![
            root_arg.as_str(),
            "--force-script-chrootless",
            // The temporary root's database knows no libc6.
            "--force-depends",
            "--log=/dev/null",
        ];
        all.extend_from_slice(args);
        ok("dpkg", &all)
    };
    dpkg(&["-i", deb]);
    let bin = root.join("usr/bin/portwarden");
    let bin_s = bin.to_str().unwrap();
    // The postinst granted the capability to the installed binary.
    assert_eq!(
        ok("getcap", &[bin_s]).trim(),
        format!("{bin_s} cap_net_raw=ep")
    );
    let rev = ok("git", &["rev-parse", "--short=12", "HEAD"]);
    let version = ok(bin_s, &["--version"]);
    assert!(
        version.starts_with(&format!("portwarden {VERSION} (git {}", rev.trim())),
        "{version}"
    );
    let page = root.join("usr/share/man/man1/portwarden-scan.1.gz");
    let o = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("portwarden-scan"),
        "{}",
        text(&o.stdout)
    );
    let completion = root.join("usr/share/bash-completion/completions/portwarden");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p portwarden",
            completion.display()
        ))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("portwarden"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(
        dpkg(&["-l", "portwarden"])
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>(),
        ["ii", "portwarden", VERSION]
    );
    // A purge removes every file it installed.
    dpkg(&["-P", "portwarden"]);
    let left: Vec<PathBuf> = ["usr", "lib"]
        .iter()
        .map(|d| root.join(d))
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
