//! Import layer: scan results made elsewhere, turned into observations so an
//! audit can judge them without scanning — nmap XML (`-oX`), masscan JSON
//! (`-oJ`) and portwarden's own JSONL (several files merge, e.g. the shards
//! of a distributed scan) — and the nmap XML writer for `scan --format
//! nmap-xml`, so portwarden's results feed tools that read nmap.
//!
//! The files are untrusted input: parsers are checked, never panic, and
//! errors name the file and the line (and column) to look at.

pub mod bundle;
pub(crate) mod masscan;
pub mod nmap;
pub(crate) mod ranges;
mod read;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::lines::{BoundedLines, LineError, MAX_LINE};
use crate::model::{Observation, PortState, Proto, Reason};
use crate::scan::ScanSummary;

pub use nmap::{NmapRun, to_nmap_xml};
pub use ranges::PortRanges;
pub(crate) use read::read_through;
pub use read::{MAX_BANNER, MAX_ENTRIES, MAX_FIELD};
use read::{Merged, open};

/// A file of existing scan results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    NmapXml(PathBuf),
    Masscan(PathBuf),
    Jsonl(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::NmapXml(p) | Source::Masscan(p) | Source::Jsonl(p) => p,
        }
    }

    /// `nmap-xml:FILE`, for the run's parameters in the history.
    pub fn label(&self) -> String {
        let kind = match self {
            Source::NmapXml(_) => "nmap-xml",
            Source::Masscan(_) => "masscan-json",
            Source::Jsonl(_) => "jsonl",
        };
        format!("{kind}:{}", self.path().display())
    }
}

/// Errors reading scan results; each names the file and where in it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message}\n  hint: {hint}")]
    Parse {
        file: String,
        line: usize,
        col: usize,
        message: String,
        hint: String,
    },
    #[error(
        "{file} is truncated: {why} ({observations} results read before the cut)\n  hint: import the complete file, or pass --allow-partial-import to audit what it holds (the report then says \"partial import\")"
    )]
    Truncated {
        file: String,
        why: String,
        observations: u64,
    },
    #[error("no observations in {file}\n  hint: {hint}")]
    Empty { file: String, hint: String },
}

/// Ports an importer read as ranges (nmap's `<extraports>`), never
/// expanded port by port: a full-range scan of a /16 stays a few bytes a
/// host.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    pub ip: IpAddr,
    pub proto: Proto,
    pub state: PortState,
    pub reason: Reason,
    pub time: DateTime<Utc>,
    pub hostnames: Vec<String>,
    pub ports: PortRanges,
}

/// Longest scanner command line kept from a file, in bytes.
pub const MAX_ARGS: usize = 4 << 10;
/// Longest port list kept per protocol, in bytes: nmap's default top 1000
/// TCP ports take about 4 KiB.
pub const MAX_PORT_LIST: usize = 8 << 10;
/// Longest scanner name, version or scan type kept, in bytes.
pub const MAX_NAME: usize = 64;
/// Port lists kept per file (nmap writes one per protocol).
pub const MAX_PORT_LISTS: usize = 8;

/// What an imported file says about the scan that made it: the scanner,
/// its command line, when it ran and which ports it was asked to probe.
/// Every field is what the file claims (it is not verified), bounded, with
/// control characters replaced (see [`inert`]); renderers still escape it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// `nmap`, `masscan` (nmap's `scanner` attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_version: Option<String>,
    /// The scanner's command line as it recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    /// The ports the scanner was asked to probe, one list per protocol.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortList>,
    /// A signed bundle's header and summary, as checked (`import::bundle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<bundle::BundleFacts>,
}

/// One protocol's port list as the scanner recorded it (nmap's `<scaninfo>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortList {
    pub protocol: String,
    /// nmap's scan type (`syn`, `connect`, `udp`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_type: Option<String>,
    /// `22-23,80,443`, as written.
    pub ports: String,
}

impl Provenance {
    /// True when the file recorded nothing about its scan.
    pub fn is_empty(&self) -> bool {
        *self == Provenance::default()
    }
}

pub use crate::lines::inert;

/// How to read imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept a file that was cut short, keeping what it holds.
    pub allow_partial: bool,
}

/// What one imported file gave.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileImport {
    /// `nmap-xml:FILE`, as [`Source::label`].
    pub source: String,
    /// Ports listed one by one.
    pub listed: u64,
    /// Results that repeated an (address, port, protocol) read before
    /// (counted in `listed`; the newest is kept).
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicates: u64,
    /// Ports folded into ranges.
    pub folded: u64,
    /// Why the file looks cut short, when it does (accepted only with
    /// [`LoadOptions::allow_partial`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// What the file says about the scan that made it (shown in the
    /// report's scope, not recorded in the history).
    #[serde(skip)]
    pub provenance: Provenance,
    /// SHA-256 of the bytes parsed, taken while reading them (so a pipe,
    /// a FIFO or a file replaced meanwhile is hashed as what was read).
    #[serde(skip)]
    pub sha256: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Every imported file, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// One observation per (address, port, protocol), sorted; the newest
    /// wins. A host whose only answers are folded closed ports keeps one
    /// of them here, so it counts as a host that answered.
    pub observations: Vec<Observation>,
    /// Folded ports not also listed, newest file first per address.
    pub folded: Vec<Folded>,
    pub files: Vec<FileImport>,
}

impl Imported {
    /// True when a file was cut short (and accepted as such).
    pub fn partial(&self) -> bool {
        self.files.iter().any(|f| f.truncated.is_some())
    }

    /// Counts of every state, folded ports included.
    pub fn summary(&self) -> ScanSummary {
        let mut s = ScanSummary::default();
        for o in &self.observations {
            s.count_observation(o);
        }
        for f in &self.folded {
            let n = f.ports.len();
            s.probed += n;
            match f.state {
                PortState::Open => s.open += n,
                PortState::Closed => s.closed += n,
                PortState::Filtered => s.filtered += n,
                PortState::OpenFiltered => s.open_filtered += n,
            }
        }
        s
    }

    /// Distinct addresses and port numbers seen.
    pub fn hosts_and_ports(&self) -> (u64, usize) {
        let mut hosts: BTreeSet<IpAddr> = self.observations.iter().map(|o| o.ip).collect();
        hosts.extend(self.folded.iter().map(|f| f.ip));
        let mut ports = PortRanges::new();
        for o in &self.observations {
            ports.insert(o.port, o.port);
        }
        for f in &self.folded {
            ports.union(&f.ports);
        }
        (hosts.len() as u64, ports.len() as usize)
    }

    /// The record of the run's source: files, counts, and `partial`.
    pub fn source_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "import",
            "files": self.files.iter().map(|f| f.source.clone()).collect::<Vec<_>>(),
            "details": self.files,
            "partial": self.partial(),
        })
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let upto = &text.as_bytes()[..offset.min(text.len())];
    let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

/// 1-based line and column of a byte offset in a file, found by reading
/// it again (only when an error is reported, so the happy path keeps no
/// line table). A pipe or FIFO cannot be read again: (0, 0).
fn line_col_in_file(path: &Path, offset: u64) -> (usize, usize) {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return (0, 0);
    }
    let Ok(f) = std::fs::File::open(path) else {
        return (0, 0);
    };
    let mut r = BufReader::new(f.take(offset));
    let (mut line, mut col) = (1usize, 1usize);
    while let Ok(buf) = r.fill_buf() {
        if buf.is_empty() {
            break;
        }
        for &b in buf {
            if b == b'\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        let n = buf.len();
        r.consume(n);
    }
    (line, col)
}

/// A [`LineError`] as a parse error of `file`.
pub(crate) fn line_error(file: &str, e: LineError, hint: &str) -> ImportError {
    match e {
        LineError::Io(source) => ImportError::Read {
            file: file.to_string(),
            source,
        },
        LineError::TooLong { line, max } => ImportError::Parse {
            file: file.to_string(),
            line,
            col: max,
            message: format!("line longer than {} KiB", max >> 10),
            hint: hint.to_string(),
        },
        LineError::NotUtf8 { line } => ImportError::Parse {
            file: file.to_string(),
            line,
            col: 1,
            message: "not UTF-8 text".into(),
            hint: hint.to_string(),
        },
    }
}

const JSONL_HINT: &str =
    "each line must be one observation as `portwarden scan --format jsonl` writes it";

/// Reads one file of portwarden JSONL (`scan --format jsonl`, or a report's
/// `observations.jsonl`). Blank lines are skipped.
pub fn parse_jsonl(text: &str, file: &str) -> Result<Vec<Observation>, ImportError> {
    let mut out = Vec::new();
    read_jsonl(text.as_bytes(), file, &mut |o| out.push(o))?;
    Ok(out)
}

/// Streams JSONL, one bounded line at a time, into `out`. A scan's summary
/// record (an object without `ip`) is not an observation; when it says
/// `"complete": false` the scan was interrupted and the file is partial.
fn read_jsonl<R: BufRead>(
    input: R,
    file: &str,
    out: &mut dyn FnMut(Observation),
) -> Result<Option<String>, ImportError> {
    let mut truncated = None;
    let mut lines = BoundedLines::new(input, MAX_LINE);
    while let Some(l) = lines
        .next_line()
        .map_err(|e| line_error(file, e, JSONL_HINT))?
    {
        let line = l.text;
        if line.trim().is_empty() {
            continue;
        }
        let o: Result<Observation, _> =
            serde_json::from_str(line).map_err(|e| ImportError::Parse {
                file: file.to_string(),
                line: l.no,
                col: e.column(),
                // serde quotes the value it refused: never a whole line.
                message: inert(&e.to_string(), MAX_ARGS),
                hint: JSONL_HINT.into(),
            });
        match o {
            Ok(o) => {
                if let Err(message) = check_numbers(&o) {
                    return Err(ImportError::Parse {
                        file: file.to_string(),
                        line: l.no,
                        col: 1,
                        message,
                        hint: JSONL_HINT.into(),
                    });
                }
                out(o)
            }
            // A scan's closing summary record is not an observation.
            Err(e) => match summary_record(line) {
                Some(m) => {
                    if m.get("complete") == Some(&serde_json::Value::Bool(false)) {
                        truncated = Some(
                            "the scan that wrote it was interrupted (its summary says \"complete\": false)"
                                .to_string(),
                        );
                    }
                }
                None => return Err(e),
            },
        }
    }
    Ok(truncated)
}

/// Refuses numbers the history could not store and read back: a
/// confidence outside 0–1 (`1e39` reads as infinity) or a round-trip time
/// that is negative or not finite. JSON has no NaN, but an infinity would be
/// written back as `null`, which no later audit of the scope could read.
pub(crate) fn check_numbers(o: &Observation) -> Result<(), String> {
    if let Some(r) = o.rtt_ms
        && !(r.is_finite() && r >= 0.0)
    {
        return Err(format!(
            "rtt_ms {r} is not a finite number of milliseconds (0 or more)"
        ));
    }
    if let Some(s) = &o.service
        && !(0.0..=1.0).contains(&s.confidence)
    {
        return Err(format!(
            "service confidence {} is not a number from 0 to 1",
            s.confidence
        ));
    }
    Ok(())
}

/// A summary record a scan may end its JSONL with: an object without
/// `ip` and `port`.
fn summary_record(line: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
        .ok()
        .filter(|m| !m.contains_key("ip") && !m.contains_key("port"))
}

/// Reads every source and merges them: one observation per (address,
/// port, protocol), the newest winning, so overlapping shards or a rescan
/// of part of the range are fine. Every file is streamed; a truncated
/// nmap or masscan file is an error unless `opts.allow_partial`, and a
/// file with no results at all is an error.
pub fn load(sources: &[Source], opts: LoadOptions) -> Result<Imported, ImportError> {
    let mut all = Merged::default();
    let mut folded = Vec::new();
    let mut files = Vec::new();
    for s in sources {
        let path = s.path();
        let file = path.display().to_string();
        let (read_before, dup_before) = (all.read, all.duplicates);
        let folded_before = folded.len();
        let mut input = open(path)?;
        let (truncated, provenance) = match s {
            Source::NmapXml(_) => {
                let pos = |off: u64| line_col_in_file(path, off);
                let run = nmap::parse_reader(&mut input, &file, &pos)?;
                run.observations.into_iter().for_each(|o| all.push(o));
                folded.extend(run.folded);
                (run.truncated, run.provenance)
            }
            Source::Masscan(_) => {
                let run = masscan::parse_reader(&mut input, &file)?;
                run.observations.into_iter().for_each(|o| all.push(o));
                (run.truncated, run.provenance)
            }
            Source::Jsonl(_) => (
                read_jsonl(&mut input, &file, &mut |o| all.push(o))?,
                Provenance::default(),
            ),
        };
        let sha256 = input.finish().map_err(|source| ImportError::Read {
            file: file.clone(),
            source,
        })?;
        let listed = all.read - read_before;
        let nfolded: u64 = folded[folded_before..]
            .iter()
            .map(|f: &Folded| f.ports.len())
            .sum();
        if let Some(why) = &truncated
            && !opts.allow_partial
        {
            return Err(ImportError::Truncated {
                file,
                why: why.clone(),
                observations: listed + nfolded,
            });
        }
        if listed == 0 && nfolded == 0 {
            return Err(ImportError::Empty {
                file,
                hint: match s {
                    Source::NmapXml(_) => "nmap found no host up, or the file holds no <port> results: check the scan's targets and -p",
                    Source::Masscan(_) => "masscan found nothing open in its range",
                    Source::Jsonl(_) => "the file has no observation lines",
                }
                .into(),
            });
        }
        files.push(FileImport {
            source: s.label(),
            listed,
            duplicates: all.duplicates - dup_before,
            folded: nfolded,
            truncated,
            provenance,
            sha256,
        });
    }
    let (observations, folded) = settle_folded(all.finish(), folded);
    Ok(Imported {
        observations,
        folded,
        files,
    })
}

/// Removes from the folded ranges every port known otherwise (listed in any
/// file, or folded in a newer record of the same address), and keeps for
/// each address that answered only in folded closed ports one of them as an
/// observation, so the policy sees the host as one that answered.
fn settle_folded(
    mut observations: Vec<Observation>,
    mut folded: Vec<Folded>,
) -> (Vec<Observation>, Vec<Folded>) {
    if folded.is_empty() {
        return (observations, folded);
    }
    let mut known: BTreeMap<(IpAddr, Proto), PortRanges> = BTreeMap::new();
    let mut answered: BTreeSet<IpAddr> = BTreeSet::new();
    for o in &observations {
        known
            .entry((o.ip, o.proto))
            .or_default()
            .insert(o.port, o.port);
        if matches!(o.state, PortState::Open | PortState::Closed) {
            answered.insert(o.ip);
        }
    }
    // Newest first, so an older file's folded range never hides a newer
    // answer for the same port.
    folded.sort_by(|a, b| (a.ip, a.proto, b.time).cmp(&(b.ip, b.proto, a.time)));
    let mut kept = Vec::with_capacity(folded.len());
    let mut extra = Vec::new();
    for mut f in folded {
        let k = known.entry((f.ip, f.proto)).or_default();
        let rest = f.ports.minus(k);
        k.union(&f.ports);
        f.ports = rest;
        if f.state == PortState::Closed
            && !answered.contains(&f.ip)
            && let Some(first) = f.ports.first()
        {
            answered.insert(f.ip);
            let mut o = Observation::new(f.ip, first, f.proto, f.reason, None);
            o.state = f.state;
            o.time = f.time;
            o.hostnames = f.hostnames.clone();
            extra.push(o);
            f.ports = f.ports.minus(&PortRanges::parse(&first.to_string()));
        }
        if !f.ports.is_empty() {
            kept.push(f);
        }
    }
    if !extra.is_empty() {
        observations.extend(extra);
        // Keys are unique: an unstable sort needs no buffer.
        observations.sort_unstable_by_key(|o| (o.ip, o.port, o.proto));
    }
    (observations, kept)
}

/// One observation per (address, port, protocol): the newest wins (on a
/// tie, the one read last), sorted.
pub fn merge(observations: Vec<Observation>) -> Vec<Observation> {
    let mut m = Merged::default();
    observations.into_iter().for_each(|o| m.push(o));
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortState, Reason};

    #[test]
    fn jsonl_merges_newest_and_names_bad_lines() {
        let a = r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"closed","reason":"conn-refused","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}

{"ip":"198.18.0.6","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}"#;
        let b = r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:05:05Z"}"#;
        let mut all = parse_jsonl(a, "a").unwrap();
        all.extend(parse_jsonl(b, "b").unwrap());
        let m = merge(all);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].ip.to_string(), "198.18.0.5");
        assert_eq!(m[0].state, PortState::Open);
        assert_eq!(m[0].reason, Reason::Connected);
        let e = parse_jsonl("\n{\"ip\":\"x\"}\n", "s.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.jsonl:2:"), "{e}");
        assert!(e.contains("hint: each line must be one observation"), "{e}");
    }

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(name: &str, body: &[u8]) -> Tmp {
            let dir = std::env::temp_dir().join(format!("pw-import-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            if let Some(d) = self.0.parent() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }

    const HOST: &str = r#"<host starttime="1764000000"><address addr="198.18.0.9" addrtype="ipv4"/><ports><extraports state="closed" count="65534"><extrareasons reason="resets" count="65534" proto="tcp" ports="1-21,23-65535"/></extraports><port protocol="tcp" portid="22"><state state="filtered" reason="no-response"/></port></ports></host>"#;

    #[test]
    fn folded_ports_are_counted_and_one_keeps_the_host_answering() {
        let x = format!(
            "<nmaprun start=\"1764000000\">{HOST}<runstats><finished time=\"1764000001\"/></runstats></nmaprun>"
        );
        let f = Tmp::new("n.xml", x.as_bytes());
        let im = load(&[Source::NmapXml(f.0.clone())], LoadOptions::default()).unwrap();
        let brief: Vec<String> = im
            .observations
            .iter()
            .map(|o| format!("{}:{} {} {}", o.ip, o.port, o.state, o.reason))
            .collect();
        assert_eq!(
            brief,
            [
                "198.18.0.9:1 closed reset",
                "198.18.0.9:22 filtered no-response"
            ]
        );
        assert_eq!(im.folded.len(), 1);
        assert_eq!(im.folded[0].ports.intervals(), &[(2, 21), (23, 65535)]);
        let s = im.summary();
        assert_eq!(
            (s.probed, s.closed, s.filtered, s.open),
            (65535, 65534, 1, 0)
        );
        assert_eq!(im.hosts_and_ports(), (1, 65535));
        assert!(!im.partial());
        assert_eq!(im.source_json()["partial"], false);
    }

    #[test]
    fn truncated_files_need_allow_partial_and_say_so() {
        let x = format!("<nmaprun start=\"1764000000\">{HOST}\n<host><address addr=");
        let f = Tmp::new("cut.xml", x.as_bytes());
        let src = [Source::NmapXml(f.0.clone())];
        let e = load(&src, LoadOptions::default()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{} is truncated: it ends inside markup",
                f.0.display()
            )),
            "{e}"
        );
        assert!(e.contains("(65535 results read before the cut)"), "{e}");
        assert!(e.contains("--allow-partial-import"), "{e}");
        let im = load(
            &src,
            LoadOptions {
                allow_partial: true,
            },
        )
        .unwrap();
        assert!(im.partial());
        assert_eq!(im.source_json()["partial"], true);
        assert_eq!(im.summary().probed, 65535);

        let m = Tmp::new("m.json", b"[\n{\"ip\": \"198.18.0.5\", \"timestamp\": \"1\", \"ports\": [{\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\"}]},\n{\"ip\": \"198.18.0.6\", \"ports\": [{\"po");
        let src = [Source::Masscan(m.0.clone())];
        let e = load(&src, LoadOptions::default()).unwrap_err().to_string();
        assert!(
            e.contains("is truncated: its last line (3) ends inside a record"),
            "{e}"
        );
        let im = load(
            &src,
            LoadOptions {
                allow_partial: true,
            },
        )
        .unwrap();
        assert_eq!(im.observations.len(), 1);
        // A complete array without the cut record is fine.
        let ok = Tmp::new("ok.json", b"[\n{\"ip\": \"198.18.0.5\", \"ports\": [{\"port\": 53, \"proto\": \"udp\", \"status\": \"open\"}]}\n]\n");
        let im = load(&[Source::Masscan(ok.0.clone())], LoadOptions::default()).unwrap();
        assert_eq!(im.observations[0].proto, Proto::Udp);
        assert_eq!(im.observations[0].reason, Reason::UdpResponse);
        assert!(!im.partial());
        // An array opened and never closed.
        let open = Tmp::new(
            "open.json",
            b"[\n{\"ip\": \"198.18.0.5\", \"ports\": [{\"port\": 80, \"status\": \"open\"}]},\n",
        );
        let e = load(&[Source::Masscan(open.0.clone())], LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("never closes"), "{e}");
    }

    #[test]
    fn an_empty_import_is_an_error_naming_the_file() {
        let x = "<nmaprun start=\"1\"><runstats><finished time=\"2\"/></runstats></nmaprun>";
        let f = Tmp::new("e.xml", x.as_bytes());
        let e = load(&[Source::NmapXml(f.0.clone())], LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("no observations in {}", f.0.display())),
            "{e}"
        );
        let j = Tmp::new("e.jsonl", b"\n\n");
        let e = load(&[Source::Jsonl(j.0.clone())], LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no observations in "), "{e}");
        let m = Tmp::new("e.json", b"[\n]\n");
        assert!(matches!(
            load(&[Source::Masscan(m.0.clone())], LoadOptions::default()),
            Err(ImportError::Empty { .. })
        ));
    }

    #[test]
    fn jsonl_lines_are_bounded_and_an_interrupted_scan_is_partial() {
        let e = load(&[Source::Jsonl("/dev/zero".into())], LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/dev/zero:1:"), "{e}");
        assert!(e.contains("line longer than 1024 KiB"), "{e}");
        let body = format!(
            "{}\n{{\"complete\":false,\"probed\":1}}\n",
            r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}"#
        );
        let j = Tmp::new("i.jsonl", body.as_bytes());
        let src = [Source::Jsonl(j.0.clone())];
        let e = load(&src, LoadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("the scan that wrote it was interrupted"), "{e}");
        let im = load(
            &src,
            LoadOptions {
                allow_partial: true,
            },
        )
        .unwrap();
        assert_eq!(im.observations.len(), 1);
        assert!(im.partial());
    }

    #[test]
    fn numbers_the_history_cannot_read_back_are_refused_naming_the_line() {
        let ok = r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}"#;
        let inf = ok.replace(
            r#""rtt_ms":0.1"#,
            r#""rtt_ms":0.1,"service":{"name":"ssh","confidence":1e39}"#,
        );
        let e = parse_jsonl(&format!("{ok}\n{inf}\n"), "f.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f.jsonl:2:1: service confidence inf is not a number from 0 to 1"),
            "{e}"
        );
        let neg = ok.replace("0.1", "-1");
        let e = parse_jsonl(&neg, "f.jsonl").unwrap_err().to_string();
        assert!(
            e.starts_with("f.jsonl:1:1: rtt_ms -1 is not a finite"),
            "{e}"
        );
        for conf in ["NaN", "inf", "11", "-1", "high"] {
            let x = format!(
                "<nmaprun start=\"1\"><host><address addr=\"198.18.0.5\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"80\"><state state=\"open\" reason=\"syn-ack\"/><service name=\"http\" method=\"probed\" conf=\"{conf}\"/></port></ports></host></nmaprun>"
            );
            let e = nmap::parse(&x, "n.xml").unwrap_err().to_string();
            assert!(
                e.starts_with("n.xml:1:")
                    && e.contains(&format!(
                        "<service conf=\"{conf}\">: not a number from 0 to 10"
                    )),
                "{e}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_accepted_and_hashed_port_zero_refused() {
        let line = r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}"#;
        let body = format!("\u{FEFF}{line}\n");
        let j = Tmp::new("bom.jsonl", body.as_bytes());
        let m = Tmp::new(
            "bom.json",
            "\u{FEFF}[\n{\"ip\": \"198.18.0.5\", \"ports\": [{\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\"}]}\n]\n".as_bytes(),
        );
        let im = load(
            &[Source::Jsonl(j.0.clone()), Source::Masscan(m.0.clone())],
            LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(im.observations.len(), 2);
        use sha2::Digest;
        assert_eq!(
            im.files[0].sha256,
            hex::encode(sha2::Sha256::digest(body.as_bytes()))
        );
        let x = "<nmaprun start=\"1\"><host><address addr=\"198.18.0.5\" addrtype=\"ipv4\"/><ports>\n<port protocol=\"tcp\" portid=\"0\"><state state=\"open\" reason=\"syn-ack\"/></port></ports></host></nmaprun>";
        let e = nmap::parse(x, "z.xml").unwrap_err().to_string();
        assert!(
            e.starts_with("z.xml:2:1: a <port> without a valid portid (1 to 65535)"),
            "{e}"
        );
    }

    #[test]
    fn duplicates_are_counted_not_kept() {
        let line = r#"{"ip":"198.18.0.5","port":22,"proto":"tcp","state":"open","reason":"connected","rtt_ms":0.1,"time":"2026-01-02T03:04:05Z"}"#;
        let j = Tmp::new("dup.jsonl", format!("{line}\n").repeat(1000).as_bytes());
        let im = load(&[Source::Jsonl(j.0.clone())], LoadOptions::default()).unwrap();
        assert_eq!(im.observations.len(), 1);
        assert_eq!((im.files[0].listed, im.files[0].duplicates), (1000, 999));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
