//! nmap's habits: the spellings clap cannot read (`-iL`, `-sS`, `-oX`, …)
//! rewritten into portwarden's own options before parsing, and the flags
//! that mean something else here refused with the reason.
//!
//! Only the arguments of `scan` and `audit` are rewritten, and nothing after
//! `--`. `-oX out.xml` is never read as `-o X`: an argument that starts like
//! an nmap output flag is either exactly one (`-oX`) or an error.

use std::ffi::OsString;

/// nmap flags portwarden refuses, with what to use instead.
const REFUSED: &[(&str, &str)] = &[
    (
        "-O",
        "OS detection is not done by portwarden; `--identify` names the services on open ports",
    ),
    (
        "-A",
        "portwarden does no OS detection, scripts or traceroute; `--identify` (`-sV`) names the services",
    ),
    (
        "-sn",
        "portwarden never does host discovery alone: it always scans ports (give -p)",
    ),
    (
        "-sP",
        "portwarden never does host discovery alone: it always scans ports (give -p)",
    ),
    (
        "-sC",
        "portwarden runs no NSE scripts; `--identify` names the services and `audit` judges them",
    ),
    (
        "--script",
        "portwarden runs no NSE scripts; `--identify` names the services and `audit` judges them",
    ),
    (
        "-v",
        "portwarden has no verbosity levels: a terminal shows a progress bar, and --format jsonl streams every result",
    ),
    (
        "-vv",
        "portwarden has no verbosity levels: a terminal shows a progress bar, and --format jsonl streams every result",
    ),
    (
        "-d",
        "portwarden has no debug levels: --format jsonl streams every result with its reason",
    ),
    (
        "-6",
        "not needed: give IPv6 addresses or names directly; both families are scanned",
    ),
    (
        "-n",
        "portwarden resolves only the host names you give it and never looks addresses up; give IP addresses to resolve nothing",
    ),
    ("-R", "portwarden does no reverse DNS lookups"),
    (
        "--min-rate",
        "portwarden has no minimum rate; --rate N caps probes per second",
    ),
    (
        "-e",
        "portwarden picks the interface from the routing table; it cannot be forced",
    ),
    (
        "-S",
        "portwarden sends from the routed source address; it cannot be spoofed",
    ),
    ("-D", "portwarden sends no decoys"),
    ("-f", "portwarden does not fragment probes"),
    ("-g", "portwarden does not fix the source port"),
    ("--source-port", "portwarden does not fix the source port"),
    (
        "-oS",
        "no script-kiddie output; -oN writes the table, -oX nmap XML, -oG greppable",
    ),
    (
        "-oM",
        "the machine output -oM is deprecated in nmap; use -oG (greppable) or -oX",
    ),
    ("-oH", "no hex output; -oX writes nmap XML"),
];

/// Letters of `-s<LETTERS>` portwarden honours.
const SCAN_LETTERS: &str = "STUV";

/// Rewrites nmap's spellings in the arguments of `scan` and `audit`.
/// Errors say which flag, why, and what to write instead.
pub fn translate(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let sub = args
        .iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .map(|a| a.to_string_lossy().into_owned());
    let scan = match sub.as_deref() {
        Some("scan") => true,
        Some("audit") => false,
        _ => return Ok(args),
    };
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    // Up to and including the subcommand, as given.
    for a in it.by_ref() {
        let is_sub = a.to_str() == sub.as_deref();
        out.push(a);
        if is_sub {
            break;
        }
    }
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str().map(str::to_string) else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(it.by_ref());
            break;
        }
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{text} needs a value (nmap's {text} FILE)"))
        };
        match text.as_str() {
            "-iL" => {
                let file = value()?;
                if file == "-" {
                    return Err(
                        "-iL - (targets on standard input) cannot be honoured: give a file, or the targets as arguments"
                            .into(),
                    );
                }
                out.push("--targets-file".into());
                out.push(file);
            }
            "-Pn" => out.push("--nmap-pn".into()),
            "-F" => out.extend(["--top-ports".into(), "100".into()]),
            "--excludefile" => out.push("--exclude-file".into()),
            "-oX" | "-oN" | "-oG" | "-oA" => {
                if !scan {
                    return Err(format!(
                        "{text}: an audit writes a report directory (--out DIR, with observations.jsonl and report.json); nmap outputs are written by `portwarden scan`"
                    ));
                }
                let format = match &text[2..] {
                    "X" => "xml",
                    "N" => "normal",
                    "G" => "grepable",
                    _ => "all",
                };
                let mut v = OsString::from(format!("{format}="));
                v.push(value()?);
                out.extend(["--nmap-output".into(), v]);
            }
            t => out.extend(other(t, scan)?.unwrap_or_else(|| vec![arg])),
        }
    }
    Ok(out)
}

/// The rest of the rewriting: refused flags, `-o` look-alikes and `-s`
/// letters. `None` keeps the argument as it is.
fn other(t: &str, scan: bool) -> Result<Option<Vec<OsString>>, String> {
    if let Some((_, why)) = REFUSED.iter().find(|(f, _)| *f == t) {
        return Err(format!("{t} (nmap) cannot be honoured: {why}"));
    }
    if t.starts_with("-o") && t.len() > 3 && t[2..3].chars().all(|c| "XNGASMH".contains(c)) {
        return Err(format!(
            "'{t}' is ambiguous: write nmap's `{} {}` (with a space) for nmap output, or `-o {}` for a file of that name",
            &t[..3],
            &t[3..],
            &t[2..]
        ));
    }
    if !(t.starts_with("-s") && t.len() > 2) {
        return Ok(None);
    }
    let mut out = Vec::new();
    for c in t[2..].chars() {
        if !SCAN_LETTERS.contains(c) {
            return Err(format!(
                "{t} (nmap): -s{c} is not a scan type portwarden has: -sS (SYN), -sT (connect), -sU (UDP) and -sV (--identify) are"
            ));
        }
        match c {
            // An audit identifies services unless --no-identify.
            'V' if !scan => {}
            'V' => out.push("--identify".into()),
            _ => out.extend(["--nmap-scan".into(), c.to_string().into()]),
        }
    }
    Ok(Some(out))
}

/// What nmap's -s letters, -p and --top-ports ask for: the engine and the
/// port spec. `None` for the spec keeps the command's default.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanTypes {
    pub engine: Option<super::args::ScanType>,
    pub udp: bool,
    pub tcp: bool,
}

impl ScanTypes {
    /// From the collected `--nmap-scan` letters; `-sS` with `-sT` is refused.
    pub fn from_letters(letters: &[char]) -> Result<ScanTypes, String> {
        use super::args::ScanType;
        let mut t = ScanTypes::default();
        for c in letters {
            let engine = match c {
                'S' => ScanType::Syn,
                'T' => ScanType::Connect,
                _ => {
                    t.udp = true;
                    continue;
                }
            };
            if t.engine.is_some_and(|e| e != engine) {
                return Err("-sS and -sT ask for two TCP engines: give one".into());
            }
            t.engine = Some(engine);
            t.tcp = true;
        }
        Ok(t)
    }

    /// The port spec for `-p SPEC` / `--top-ports N` under these scan types,
    /// or `None` to keep the default. `-sU -p 53,161` is `U:53,161`; with a
    /// TCP type too, the ports are scanned over both protocols (nmap's way).
    pub fn ports(&self, spec: Option<&str>, top: Option<u32>) -> Option<String> {
        let both = self.udp && self.tcp;
        if let Some(n) = top {
            return Some(match (self.udp, both) {
                (false, _) => format!("top-tcp:{n}"),
                (true, false) => format!("top-udp:{n}"),
                (true, true) => format!("top-tcp:{n},top-udp:{n}"),
            });
        }
        if !self.udp {
            return spec.map(str::to_string);
        }
        let Some(spec) = spec else {
            return Some(if both { "common,top-udp" } else { "top-udp" }.into());
        };
        // A spec that names its protocols already is taken as it is.
        let named = spec.split(',').any(|i| {
            let i = i.trim().to_ascii_lowercase();
            i.starts_with("t:") || i.starts_with("u:") || i.contains("/tcp") || i.contains("/udp")
        });
        Some(if named {
            spec.to_string()
        } else if both {
            format!("T:{spec},U:{spec}")
        } else {
            format!("U:{spec}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(line: &str) -> Result<String, String> {
        let args = std::iter::once("portwarden")
            .chain(line.split(' '))
            .map(OsString::from)
            .collect();
        translate(args).map(|v| {
            v.iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    #[test]
    fn nmap_spellings_become_our_options() {
        assert_eq!(
            tr("scan -sS -Pn -T4 -iL hosts.txt -oX out.xml -p 22").unwrap(),
            "scan --nmap-scan S --nmap-pn -T4 --targets-file hosts.txt --nmap-output xml=out.xml -p 22"
        );
        assert_eq!(
            tr("scan -sTU -oA base -F 10.0.0.1").unwrap(),
            "scan --nmap-scan T --nmap-scan U --nmap-output all=base --top-ports 100 10.0.0.1"
        );
        assert_eq!(
            tr("audit -sV -sS 10.0.0.1").unwrap(),
            "audit --nmap-scan S 10.0.0.1"
        );
        // Our own -o and anything after -- stay as they are.
        assert_eq!(
            tr("scan -o out.jsonl 10.0.0.1 -- -oX").unwrap(),
            "scan -o out.jsonl 10.0.0.1 -- -oX"
        );
        assert_eq!(tr("ports -oX").unwrap(), "ports -oX");
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_the_reason() {
        let e = tr("scan -oXout.xml 10.0.0.1").unwrap_err();
        assert!(
            e.contains("`-oX out.xml`") && e.contains("-o Xout.xml"),
            "{e}"
        );
        let e = tr("scan -O 10.0.0.1").unwrap_err();
        assert!(
            e.starts_with("-O (nmap) cannot be honoured") && e.contains("--identify"),
            "{e}"
        );
        let e = tr("audit -oX a.xml 10.0.0.1").unwrap_err();
        assert!(e.contains("--out DIR"), "{e}");
        let e = tr("scan -sA 10.0.0.1").unwrap_err();
        assert!(e.contains("-sA is not a scan type"), "{e}");
        assert!(tr("scan -iL").unwrap_err().contains("-iL needs a value"));
        assert!(tr("scan -iL -").unwrap_err().contains("standard input"));
    }

    #[test]
    fn scan_types_shape_the_port_spec() {
        let t = |l: &[char]| ScanTypes::from_letters(l).unwrap();
        assert_eq!(
            t(&['U']).ports(Some("53,161"), None).as_deref(),
            Some("U:53,161")
        );
        assert_eq!(
            t(&['S', 'U']).ports(Some("53"), None).as_deref(),
            Some("T:53,U:53")
        );
        assert_eq!(
            t(&['U']).ports(Some("U:53,T:22"), None).as_deref(),
            Some("U:53,T:22")
        );
        assert_eq!(t(&['U']).ports(None, None).as_deref(), Some("top-udp"));
        assert_eq!(t(&[]).ports(None, Some(10)).as_deref(), Some("top-tcp:10"));
        assert_eq!(
            t(&['U']).ports(None, Some(10)).as_deref(),
            Some("top-udp:10")
        );
        assert_eq!(t(&[]).ports(None, None), None);
        assert!(ScanTypes::from_letters(&['S', 'T']).is_err());
    }
}
