//! Signed scan bundles: what `scan --vantage NAME --sign-key KEY -o FILE`
//! writes, and what an import audit checks before it trusts one.
//!
//! A bundle is portwarden JSONL framed by two records: a header first (tool
//! version, scope, ports, seed, shard, vantage with its source addresses and
//! interfaces, start and end) and a summary last (`complete`, the probe
//! counts and the number of observations between them). `FILE.sig` holds an
//! Ed25519 signature over the SHA-256 of the file's exact bytes. Both
//! records are objects without `ip`/`port`, so the plain JSONL importer
//! skips them (and reads `"complete": false` as a partial file).
//!
//! The files are untrusted: lines are bounded, and every refusal names the
//! file and why (unsigned, unknown key, edited, cut, incomplete, a missing
//! or repeated shard, shards of different scans).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lines::{BoundedLines, LineError, MAX_LINE};
use crate::model::{AuditVantage, Observation};

/// The header's `format`.
pub const FORMAT: &str = "portwarden-bundle/1";
/// The `.sig` file's `format`.
pub const SIGNATURE_FORMAT: &str = "portwarden-bundle-signature/1";
/// Largest `.sig` file read.
const MAX_SIG: u64 = 16 << 10;
/// Distinct target addresses kept to find the scan's source addresses.
const ADDRESS_SAMPLE: usize = 4096;

/// What a bundle's scan was asked to cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleScope {
    pub targets: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    /// The port spec as given (`common`, `22,80`).
    pub ports: String,
}

/// Shard `index` of `count` (`0/1` for a scan that was not split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A bundle's first record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always `header`.
    #[serde(rename = "type")]
    pub record: String,
    pub format: String,
    pub tool: String,
    /// `portwarden --version` of the scanner (with its git revision).
    pub version: String,
    pub scope: BundleScope,
    pub seed: u64,
    pub shard: Shard,
    /// `syn` or `connect`.
    pub engine: String,
    pub vantage: AuditVantage,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
}

/// A bundle's last record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Always `summary`.
    #[serde(rename = "type")]
    pub record: String,
    /// False when the scan was stopped before it finished.
    pub complete: bool,
    /// Observation lines between the header and this record.
    pub observations: u64,
    pub probed: u64,
    pub sent: u64,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
}

/// `FILE.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleSignature {
    pub format: String,
    pub algorithm: String,
    /// The bundle's file name.
    pub signed_file: String,
    /// SHA-256 of the bundle's exact bytes, hex.
    pub sha256: String,
    /// `SHA256:` and the hex SHA-256 of the raw 32-byte public key.
    pub public_key_fingerprint: String,
    /// Ed25519 over `portwarden-bundle/1\n` and the hex SHA-256, hex.
    pub signature: String,
}

/// The path of a bundle's signature: `FILE.sig`.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// A public key's fingerprint, as `keygen` prints it.
pub fn fingerprint(key: &VerifyingKey) -> String {
    format!("SHA256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

fn signed_message(sha256_hex: &str) -> Vec<u8> {
    format!("{FORMAT}\n{sha256_hex}").into_bytes()
}

/// The signature of a bundle whose bytes hash to `digest`.
pub fn sign(bundle: &Path, digest: &[u8; 32], key: &SigningKey) -> BundleSignature {
    let sha256 = hex::encode(digest);
    BundleSignature {
        format: SIGNATURE_FORMAT.into(),
        algorithm: "ed25519".into(),
        signed_file: bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        public_key_fingerprint: fingerprint(&key.verifying_key()),
        signature: hex::encode(key.sign(&signed_message(&sha256)).to_bytes()),
        sha256,
    }
}

/// Collects a scan's observations (in an unnamed file beside the output:
/// nothing is left behind whatever ends the process) until the header,
/// which needs the scan's end, can be written first.
pub struct BundleWriter {
    body: BufWriter<File>,
    read_back: File,
    lines: u64,
    sample: std::collections::BTreeSet<IpAddr>,
}

impl BundleWriter {
    /// A writer whose scratch file lies beside `output`.
    pub fn new(output: &Path) -> io::Result<BundleWriter> {
        let dir = match output.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let (file, tmp) = crate::safe_fs::create_temp_file(dir, ".portwarden-bundle-", 0o600)?;
        let read_back = File::open(tmp.path());
        // Unlinked at once (the TempPath removes it on drop).
        drop(tmp);
        Ok(BundleWriter {
            body: BufWriter::new(file),
            read_back: read_back?,
            lines: 0,
            sample: Default::default(),
        })
    }

    pub fn observation(&mut self, o: &Observation) -> io::Result<()> {
        serde_json::to_writer(&mut self.body, o)?;
        self.body.write_all(b"\n")?;
        self.lines += 1;
        if self.sample.len() < ADDRESS_SAMPLE {
            self.sample.insert(o.ip);
        }
        Ok(())
    }

    /// Some of the addresses observed (to find the source addresses).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.sample.iter().copied()
    }

    /// Observations written so far.
    pub fn observations(&self) -> u64 {
        self.lines
    }

    /// Writes the header, the observations and the summary (its
    /// `observations` set here) to `out`; returns the SHA-256 of every
    /// byte written.
    pub fn finish(
        mut self,
        header: &Header,
        mut summary: Summary,
        out: &mut dyn Write,
    ) -> io::Result<[u8; 32]> {
        self.body.flush()?;
        summary.observations = self.lines;
        let mut w = HashingWriter {
            inner: out,
            hash: Sha256::new(),
        };
        serde_json::to_writer(&mut w, header)?;
        w.write_all(b"\n")?;
        self.read_back.rewind()?;
        io::copy(&mut self.read_back, &mut w)?;
        serde_json::to_writer(&mut w, &summary)?;
        w.write_all(b"\n")?;
        w.flush()?;
        Ok(w.hash.finalize().into())
    }
}

struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hash: Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A scanner whose bundles are trusted (the policy's `[[scanner]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub name: String,
    pub vantage: String,
    pub key: VerifyingKey,
}

/// What the report's scope says of one bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleFacts {
    /// The `[[scanner]]` whose key signed it (`None`: no scanner declared,
    /// so nothing was verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    pub vantage: AuditVantage,
    pub shard: Shard,
    pub seed: u64,
    pub scope: BundleScope,
    pub version: String,
    pub engine: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub complete: bool,
    pub observations: u64,
    pub probed: u64,
    pub sent: u64,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
}

/// One checked bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub path: PathBuf,
    pub facts: BundleFacts,
}

/// A bundle refused, or bundles that do not make one scan.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: io::Error },
    #[error("{file}: refused: {message}\n  hint: {hint}")]
    Refused {
        file: String,
        message: String,
        hint: String,
    },
    #[error("{message}\n  hint: {hint}")]
    Set { message: String, hint: String },
}

fn refused(file: &Path, message: String, hint: &str) -> BundleError {
    BundleError::Refused {
        file: file.display().to_string(),
        message,
        hint: hint.to_string(),
    }
}

const CUT_HINT: &str =
    "the bundle was cut or is still being written: rerun the shard's scan, or wait for it";

/// What a file's bytes say: `None` when it is plain JSONL (no header).
struct Inspected {
    header: Header,
    summary: Summary,
    digest: [u8; 32],
}

fn inspect(path: &Path) -> Result<Option<Inspected>, BundleError> {
    let read_err = |source| BundleError::Read {
        file: path.display().to_string(),
        source,
    };
    let f = File::open(path).map_err(read_err)?;
    let mut reader = HashingReader {
        inner: f,
        hash: Sha256::new(),
    };
    let mut lines = BoundedLines::new(BufReader::new(&mut reader), MAX_LINE);
    let line_err = |e: LineError| {
        refused(
            path,
            e.to_string(),
            "a bundle is the JSONL file `portwarden scan --vantage … --sign-key … -o FILE` wrote",
        )
    };
    let mut header: Option<Header> = None;
    let mut last: Option<String> = None;
    let mut between = 0u64;
    let mut terminated = true;
    loop {
        let l = match lines.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            // Not even a header: the JSONL importer names what is wrong.
            Err(_) if header.is_none() => return Ok(None),
            Err(e) => return Err(line_err(e)),
        };
        if l.text.trim().is_empty() {
            continue;
        }
        terminated = l.terminated;
        if header.is_none() {
            if !l.text.contains("\"header\"") {
                return Ok(None);
            }
            let h: Header = serde_json::from_str(l.text).map_err(|e| {
                refused(
                    path,
                    format!("line {}: not a bundle header: {e}", l.no),
                    CUT_HINT,
                )
            })?;
            if h.record != "header" || h.format != FORMAT {
                return Err(refused(
                    path,
                    format!(
                        "line 1: header of format '{}', not {FORMAT}",
                        crate::import::inert(&h.format, 64)
                    ),
                    "scan again with this portwarden version",
                ));
            }
            if h.vantage
                .name
                .as_deref()
                .is_none_or(|n| n.trim().is_empty())
            {
                return Err(refused(
                    path,
                    "line 1: the header names no vantage".into(),
                    "scan with --vantage NAME",
                ));
            }
            header = Some(h);
            continue;
        }
        if last.is_some() {
            between += 1;
        }
        last = Some(l.text.to_string());
    }
    drop(lines);
    let Some(header) = header else {
        return Ok(None);
    };
    let summary = last
        .filter(|_| terminated)
        .and_then(|l| serde_json::from_str::<Summary>(&l).ok())
        .filter(|s| s.record == "summary");
    let Some(summary) = summary else {
        return Err(refused(
            path,
            format!(
                "truncated: shard {} of vantage '{}' has no closing summary record",
                header.shard,
                crate::import::inert(vantage_name(&header.vantage), 64)
            ),
            CUT_HINT,
        ));
    };
    if summary.observations != between {
        return Err(refused(
            path,
            format!(
                "truncated or edited: its summary counts {} observations, the file holds {between}",
                summary.observations
            ),
            CUT_HINT,
        ));
    }
    Ok(Some(Inspected {
        header,
        summary,
        digest: reader.hash.finalize().into(),
    }))
}

fn read_signature(path: &Path) -> Result<Option<BundleSignature>, BundleError> {
    let sig = signature_path(path);
    let f = match File::open(&sig) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BundleError::Read {
                file: sig.display().to_string(),
                source,
            });
        }
    };
    let mut text = Vec::new();
    f.take(MAX_SIG)
        .read_to_end(&mut text)
        .map_err(|source| BundleError::Read {
            file: sig.display().to_string(),
            source,
        })?;
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        refused(
            path,
            format!("{} is not a bundle signature: {e}", sig.display()),
            "it is the .sig file `scan --sign-key` wrote beside the bundle",
        )
    })
}

/// Checks one file. `Ok(None)`: plain JSONL, accepted only when no scanner
/// is trusted. With trusted scanners a bundle must be signed by one of
/// them, unedited, for the vantage that scanner is declared for, and
/// complete unless `allow_partial`.
pub fn check_file(
    path: &Path,
    trusted: &[Trusted],
    allow_partial: bool,
) -> Result<Option<Bundle>, BundleError> {
    // A pipe or FIFO (`--from-jsonl /dev/stdin`) can be read once only: it
    // is left to the import, which hashes what it reads. A bundle must be a
    // regular file, read for its signature and then for its observations.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        if trusted.is_empty() {
            return Ok(None);
        }
        return Err(refused(
            path,
            "not a regular file: a signed bundle is read twice (signature, then observations)"
                .into(),
            "copy the bundle to a file and import that",
        ));
    }
    let Some(ins) = inspect(path)? else {
        if trusted.is_empty() {
            return Ok(None);
        }
        return Err(refused(
            path,
            "not a signed bundle (no header record)".into(),
            "the policy declares [[scanner]] keys: import only bundles written by `portwarden scan --vantage NAME --sign-key KEY -o FILE`",
        ));
    };
    let (h, s) = (&ins.header, &ins.summary);
    let mut scanner = None;
    let mut key_fingerprint = None;
    match read_signature(path)? {
        None if !trusted.is_empty() => {
            return Err(refused(
                path,
                format!("unsigned: no {}", signature_path(path).display()),
                "scan with --sign-key KEY (a key of a [[scanner]] in the policy)",
            ));
        }
        None => {}
        Some(sig) if !trusted.is_empty() => {
            let t = verify_signature(path, &sig, &ins.digest, trusted)?;
            if t.vantage != vantage_name(&h.vantage) {
                return Err(refused(
                    path,
                    format!(
                        "claims vantage '{}' but its signer, scanner '{}', is declared for vantage '{}'",
                        crate::import::inert(vantage_name(&h.vantage), 64),
                        t.name,
                        t.vantage
                    ),
                    "scan with --vantage as the policy's [[scanner]] says, or fix the policy",
                ));
            }
            scanner = Some(t.name.clone());
            key_fingerprint = Some(sig.public_key_fingerprint);
        }
        Some(sig) => key_fingerprint = Some(crate::import::inert(&sig.public_key_fingerprint, 80)),
    }
    if !s.complete && !allow_partial {
        return Err(refused(
            path,
            format!(
                "incomplete: shard {} of vantage '{}' was stopped before it finished (its summary says \"complete\": false)",
                h.shard,
                crate::import::inert(vantage_name(&h.vantage), 64)
            ),
            "rerun that shard, or pass --allow-partial-import to audit what it holds (the report then says \"partial import\")",
        ));
    }
    let inert = |v: &str| crate::import::inert(v, crate::import::MAX_NAME);
    let mut vantage = h.vantage.clone();
    vantage.name = vantage.name.as_deref().map(inert);
    // The lab setting is the auditing machine's, never a file's claim.
    vantage.lab = false;
    vantage.interfaces = vantage
        .interfaces
        .iter()
        .map(|i| i.as_deref().map(inert))
        .collect();
    Ok(Some(Bundle {
        path: path.to_path_buf(),
        facts: BundleFacts {
            scanner,
            key_fingerprint,
            vantage,
            shard: h.shard,
            seed: h.seed,
            scope: h.scope.clone(),
            version: inert(&h.version),
            engine: inert(&h.engine),
            started: h.started,
            finished: h.finished,
            complete: s.complete,
            observations: s.observations,
            probed: s.probed,
            sent: s.sent,
            open: s.open,
            closed: s.closed,
            filtered: s.filtered,
        },
    }))
}

/// The trusted scanner whose key made `sig`, when it is a valid signature
/// of these bytes.
fn verify_signature<'a>(
    path: &Path,
    sig: &BundleSignature,
    digest: &[u8; 32],
    trusted: &'a [Trusted],
) -> Result<&'a Trusted, BundleError> {
    let Some(t) = trusted
        .iter()
        .find(|t| fingerprint(&t.key) == sig.public_key_fingerprint)
    else {
        let known: Vec<String> = trusted
            .iter()
            .map(|t| format!("{} {}", t.name, fingerprint(&t.key)))
            .collect();
        return Err(refused(
            path,
            format!(
                "signed by an unknown key {}",
                crate::import::inert(&sig.public_key_fingerprint, 80)
            ),
            &format!("the policy's [[scanner]] keys are: {}", known.join(", ")),
        ));
    };
    let sha256 = hex::encode(digest);
    let bytes = hex::decode(&sig.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok());
    let valid = sig.format == SIGNATURE_FORMAT
        && sig.algorithm == "ed25519"
        && sig.sha256 == sha256
        && bytes.is_some_and(|b| {
            t.key
                .verify(&signed_message(&sha256), &Signature::from_bytes(&b))
                .is_ok()
        });
    if !valid {
        return Err(refused(
            path,
            format!(
                "edited: its bytes (SHA-256 {sha256}) are not what scanner '{}' signed",
                t.name
            ),
            "the bundle or its .sig was changed after the scan: rerun the shard's scan",
        ));
    }
    Ok(t)
}

/// A bundle's vantage name (its header always has one).
pub fn vantage_name(v: &AuditVantage) -> &str {
    v.name.as_deref().unwrap_or_default()
}

/// Checks that the bundles make whole scans: per vantage, one seed, scope
/// and shard count, and every shard index exactly once.
pub fn check_set(bundles: &[Bundle]) -> Result<(), BundleError> {
    let mut by_vantage: BTreeMap<&str, Vec<&Bundle>> = BTreeMap::new();
    for b in bundles {
        by_vantage
            .entry(vantage_name(&b.facts.vantage))
            .or_default()
            .push(b);
    }
    for (vantage, group) in by_vantage {
        let first = group[0];
        let f = &first.facts;
        let mut seen: BTreeMap<u64, &Bundle> = BTreeMap::new();
        for &b in &group {
            let g = &b.facts;
            let differ = if g.seed != f.seed {
                Some(format!("seeds {} and {}", f.seed, g.seed))
            } else if g.scope != f.scope {
                Some("scopes (targets, excludes or ports)".to_string())
            } else if g.shard.count != f.shard.count {
                Some(format!(
                    "shard counts {} and {}",
                    f.shard.count, g.shard.count
                ))
            } else {
                None
            };
            if let Some(what) = differ {
                return Err(BundleError::Set {
                    message: format!(
                        "{} and {} are shards of different scans of vantage '{vantage}': different {what}",
                        first.path.display(),
                        b.path.display()
                    ),
                    hint: "merge only the bundles of one run (same --seed, targets, -p and shard count)".into(),
                });
            }
            if let Some(other) = seen.insert(g.shard.index, b) {
                return Err(BundleError::Set {
                    message: format!(
                        "{} and {} are both shard {} of vantage '{vantage}'",
                        other.path.display(),
                        b.path.display(),
                        g.shard
                    ),
                    hint: "give each shard's bundle once".into(),
                });
            }
        }
        if let Some(missing) = (0..f.shard.count).find(|i| !seen.contains_key(i)) {
            return Err(BundleError::Set {
                message: format!(
                    "shard {missing}/{} of vantage '{vantage}' is missing (seed {}): no bundle for index {missing}",
                    f.shard.count, f.seed
                ),
                hint: "wait for that index of the Job to finish, or rerun it".into(),
            });
        }
    }
    Ok(())
}

/// The scope the bundles cover together: every target, exclude and port
/// spec of theirs, each once, in order.
pub fn merged_scope(bundles: &[Bundle]) -> BundleScope {
    let mut scope = BundleScope {
        targets: Vec::new(),
        excludes: Vec::new(),
        ports: String::new(),
    };
    let mut ports: Vec<&str> = Vec::new();
    for b in bundles {
        let s = &b.facts.scope;
        for t in &s.targets {
            if !scope.targets.contains(t) {
                scope.targets.push(t.clone());
            }
        }
        for e in &s.excludes {
            if !scope.excludes.contains(e) {
                scope.excludes.push(e.clone());
            }
        }
        if !ports.contains(&s.ports.as_str()) {
            ports.push(&s.ports);
        }
    }
    scope.ports = ports.join(",");
    scope
}
