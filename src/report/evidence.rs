//! Report layer: the evidence bundle. `manifest.json` records the SHA-256
//! of every file of a report directory together with who ran the audit,
//! when, with which tool, rules and policy; [`verify`] recomputes the hashes
//! and names every file that was altered, removed or added since.
//!
//! The manifest proves integrity only as far as the manifest itself is
//! trusted: its own hash ([`manifest_sha256`]) is what an auditor records
//! elsewhere (a ticket, a signed mail) to make later tampering detectable,
//! or the audit signs it with an Ed25519 key ([`sign_manifest`], checked by
//! [`verify_with_key`]), so a manifest edited and rehashed is caught too.
//!
//! A report directory is hostile input when verified: nothing in it is
//! followed (symbolic links), waited on (FIFOs) or read from (devices);
//! every file is opened with `O_NOFOLLOW | O_NONBLOCK` and checked to be a
//! regular file (`fstat`) before a byte is read.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ReportError;

/// The name of the manifest in a report directory.
pub const MANIFEST: &str = "manifest.json";

/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 1;

/// The signature of `manifest.json`, beside it (not listed in it).
pub const SIGNATURE: &str = "manifest.sig";

/// The `format` of `manifest.sig`.
pub const SIGNATURE_FORMAT: &str = "portwarden-signature-v1";

/// Largest manifest (or signature) file read: a manifest lists a few
/// files, so anything bigger is not ours.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Which rules an audit used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesInfo {
    /// `embedded (portwarden 0.1.0)`, or the overriding directory.
    pub version: String,
    /// SHA-256 over the per-file hashes below (name, hash; one per line).
    pub sha256: String,
    /// Each rule file in effect and its SHA-256.
    pub files: BTreeMap<String, String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub rules: RulesInfo,
    pub policy_file: String,
    pub policy_sha256: Option<String>,
    pub command_line: Vec<String>,
    pub operator: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub as_of: NaiveDate,
    /// The scan result files an import audit read, with their SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<super::model::InputFile>,
    /// Every other file of the directory (relative path, `/`-separated) → SHA-256.
    pub files: BTreeMap<String, String>,
    /// The same files' sizes in bytes: `verify` compares them before
    /// hashing, so a file swapped for a huge (or sparse) one is named at
    /// once. Absent from manifests of older versions (then every file is
    /// hashed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sizes: BTreeMap<String, u64>,
    /// Where the audit's run sits in the history (absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::model::HistoryAnchor>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct VerifyReport {
    /// Files whose content matches.
    pub intact: Vec<String>,
    /// Files whose content changed.
    pub altered: Vec<String>,
    /// Files the manifest lists that are gone.
    pub missing: Vec<String>,
    /// Files present that the manifest does not list.
    pub extra: Vec<String>,
    /// Entries that are not regular files or directories (symbolic links,
    /// FIFOs, devices, sockets), with what they are: never followed nor read.
    pub refused: Vec<(String, &'static str)>,
    /// The manifest's own SHA-256 (to compare with the one recorded at audit time).
    pub manifest_sha256: String,
    /// What `manifest.sig` says.
    pub signature: SignatureStatus,
}

/// The signature of a report directory, as [`verify_with_key`] found it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// No `manifest.sig` and no key asked for.
    #[default]
    Unsigned,
    /// Signed, but no public key was given to check it with.
    Unchecked { fingerprint: String },
    /// The signature matches `manifest.json` and the given key.
    Valid { fingerprint: String },
    /// Missing, malformed, by another key, or not matching the manifest.
    Invalid { reason: String },
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.altered.is_empty()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && self.refused.is_empty()
            && !matches!(self.signature, SignatureStatus::Invalid { .. })
    }
}

/// What a directory entry is, for messages.
fn kind_name(t: fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Opens `path` for reading only if it is a regular file: a symbolic link
/// is not followed (`O_NOFOLLOW`), a FIFO or device is not waited on
/// (`O_NONBLOCK`) and is refused after `fstat`, before any read.
pub(crate) fn open_regular(path: &Path) -> Result<File, ReportError> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io(io::Error::other("is a symbolic link: not followed"))
            } else {
                io(e)
            }
        })?;
    let t = file.metadata().map_err(io)?.file_type();
    if !t.is_file() {
        return Err(io(io::Error::other(format!(
            "is a {}, not a regular file: not read",
            kind_name(t)
        ))));
    }
    Ok(file)
}

/// Reads a small regular file (a manifest, a key, a signature), at most `max` bytes.
/// A regular file of at most `max` bytes: never a link, FIFO or device.
pub(crate) fn read_small(path: &Path, max: u64) -> Result<Vec<u8>, ReportError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(ReportError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(format!("is larger than {max} bytes")),
        });
    }
    Ok(bytes)
}

/// SHA-256 of a regular file inside a report directory, streamed.
fn safe_sha256(path: &Path) -> Result<String, ReportError> {
    hash_open(path, open_regular(path)?).map(|(h, _)| h)
}

/// SHA-256 and length of what `file` (opened at `path`) holds, streamed.
fn hash_open(path: &Path, mut file: File) -> Result<(String, u64), ReportError> {
    let mut h = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ReportError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(h.finalize()), len))
}

/// Whether the regular file `path` still holds what `want` (hash) and
/// `size` (when the manifest records it) say: a size that differs is
/// enough, without reading a byte.
fn still_holds(path: &Path, want: &str, size: Option<u64>) -> Result<bool, ReportError> {
    let file = open_regular(path)?;
    if let Some(size) = size {
        let now = file
            .metadata()
            .map_err(|source| ReportError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if now != size {
            return Ok(false);
        }
    }
    Ok(hash_open(path, file)?.0 == want)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// [`RulesInfo`] from per-file hashes recorded when the rules were loaded
/// (`rules::Rules::files`), so nothing is read twice.
pub fn rules_info_from(files: BTreeMap<String, String>, rules_dir: Option<&Path>) -> RulesInfo {
    let joined: String = files.iter().map(|(n, h)| format!("{n} {h}\n")).collect();
    let version = match rules_dir {
        Some(d) => format!("{} (overrides the embedded rules)", d.display()),
        None => format!("embedded (portwarden {})", env!("CARGO_PKG_VERSION")),
    };
    RulesInfo {
        version,
        sha256: sha256_hex(joined.as_bytes()),
        files,
    }
}

/// The entries of a report directory: regular files and everything else.
#[derive(Debug, Default)]
struct Listing {
    /// Regular files except the manifest and its signature, as sorted
    /// `/`-separated relative paths.
    files: Vec<String>,
    /// Symbolic links, FIFOs, devices, sockets: named, never followed.
    refused: Vec<(String, &'static str)>,
}

/// Lists `dir` without following anything: a symbolic link (to a file or
/// to a directory) is listed as refused, not entered.
fn list_files(dir: &Path) -> Result<Listing, ReportError> {
    fn walk(base: &Path, dir: &Path, out: &mut Listing) -> Result<(), ReportError> {
        let io = |source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        };
        for e in fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let path = e.path();
            // `DirEntry::file_type` is lstat's: links are not followed.
            let kind = e.file_type().map_err(io)?;
            let rel = path.strip_prefix(base).unwrap_or(&path);
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if kind.is_dir() {
                walk(base, &path, out)?;
            } else if kind.is_file() {
                out.files.push(name);
            } else {
                out.refused.push((name, kind_name(kind)));
            }
        }
        Ok(())
    }
    let mut out = Listing::default();
    walk(dir, dir, &mut out)?;
    out.files.retain(|n| n != MANIFEST && n != SIGNATURE);
    out.files.sort();
    out.refused.sort();
    Ok(out)
}

/// Hashes every file in `dir` and writes `manifest.json` (last, so it
/// covers everything else). `files` in `manifest` is replaced.
pub fn write_manifest(dir: &Path, mut manifest: Manifest) -> Result<Manifest, ReportError> {
    manifest.files.clear();
    manifest.sizes.clear();
    for name in list_files(dir)?.files {
        let path = dir.join(&name);
        let (hash, size) = hash_open(&path, open_regular(&path)?)?;
        manifest.sizes.insert(name.clone(), size);
        manifest.files.insert(name, hash);
    }
    let path = dir.join(MANIFEST);
    let mut text = serde_json::to_vec_pretty(&manifest).map_err(ReportError::Json)?;
    text.push(b'\n');
    fs::write(&path, text).map_err(|source| ReportError::Io { path, source })?;
    Ok(manifest)
}

/// The SHA-256 of a report directory's manifest.
pub fn manifest_sha256(dir: &Path) -> Result<String, ReportError> {
    safe_sha256(&dir.join(MANIFEST))
}

/// Reads and parses a report directory's manifest: a regular file (never
/// a link, FIFO or device), at most 16 MiB, written by portwarden. Returns
/// its bytes and its content. Anything that reads a manifest from a
/// directory it did not just write should use this.
pub fn read_manifest(dir: &Path) -> Result<(Vec<u8>, Manifest), ReportError> {
    let path: PathBuf = dir.join(MANIFEST);
    let text = read_small(&path, MAX_MANIFEST_BYTES)?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| ReportError::BadManifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
    if manifest.tool != "portwarden" {
        return Err(ReportError::BadManifest {
            path,
            message: format!("its tool is '{}'", manifest.tool),
        });
    }
    Ok((text, manifest))
}

/// Whether `dir` holds a previous portwarden report and nothing else, so
/// replacing it destroys nothing we did not write: its `manifest.json` is a
/// regular file that parses as ours, and every entry is the manifest, its
/// signature or a regular file the manifest lists. `Err` says why not.
pub fn is_own_report(dir: &Path) -> Result<(), String> {
    /// Only what recognition needs, so manifests of other versions (fields
    /// added or gone) are still recognised as ours.
    #[derive(Deserialize)]
    struct Ours {
        tool: String,
        files: BTreeMap<String, String>,
    }
    let path = dir.join(MANIFEST);
    let manifest = read_small(&path, MAX_MANIFEST_BYTES)
        .and_then(|text| {
            serde_json::from_slice::<Ours>(&text).map_err(|e| ReportError::BadManifest {
                path: path.clone(),
                message: e.to_string(),
            })
        })
        .and_then(|m| {
            if m.tool == "portwarden" {
                Ok(m)
            } else {
                Err(ReportError::BadManifest {
                    path: path.clone(),
                    message: format!("its tool is '{}'", m.tool),
                })
            }
        })
        .map_err(|e| match e {
            ReportError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                format!("it has no {MANIFEST}")
            }
            ReportError::Io { source, .. } => format!("its {MANIFEST} {source}"),
            other => other.to_string(),
        })?;
    let listing = list_files(dir).map_err(|e| e.to_string())?;
    if let Some((name, kind)) = listing.refused.first() {
        return Err(format!("it holds '{name}', a {kind}"));
    }
    if let Some(name) = listing
        .files
        .iter()
        .find(|n| !manifest.files.contains_key(*n))
    {
        return Err(format!(
            "it holds '{name}', which its {MANIFEST} does not list"
        ));
    }
    Ok(())
}

/// Checks a report directory against its manifest.
pub fn verify(dir: &Path) -> Result<VerifyReport, ReportError> {
    verify_with_key(dir, None)
}

/// Checks a report directory against its manifest and, with a public key,
/// `manifest.sig` against the manifest: then a missing, foreign or broken
/// signature makes the directory not intact.
pub fn verify_with_key(
    dir: &Path,
    key: Option<&VerifyingKey>,
) -> Result<VerifyReport, ReportError> {
    let (text, manifest) = read_manifest(dir)?;
    let mut report = VerifyReport {
        manifest_sha256: sha256_hex(&text),
        signature: check_signature(dir, &text, key),
        ..VerifyReport::default()
    };
    let listing = list_files(dir)?;
    for (name, want) in &manifest.files {
        if listing.refused.iter().any(|(n, _)| n == name) {
            continue;
        }
        if listing.files.binary_search(name).is_err() {
            report.missing.push(name.clone());
        } else if still_holds(&dir.join(name), want, manifest.sizes.get(name).copied())?
            && (!name.ends_with(super::compress::SUFFIX)
                || super::compress::decodes(&dir.join(name))?)
        {
            report.intact.push(name.clone());
        } else {
            report.altered.push(name.clone());
        }
    }
    report.extra = listing
        .files
        .into_iter()
        .filter(|n| !manifest.files.contains_key(n))
        .collect();
    report.refused = listing.refused;
    Ok(report)
}

/// Reading or writing a key or a signature failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {message}", path.display())]
    Bad { path: PathBuf, message: String },
    #[error("{} exists: keygen never overwrites a key (choose another --out or move it)", .0.display())]
    Exists(PathBuf),
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// `manifest.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureFile {
    pub format: String,
    pub algorithm: String,
    /// The file signed (its exact bytes).
    pub signed_file: String,
    pub manifest_sha256: String,
    /// `SHA256:` and the hex SHA-256 of the raw 32-byte public key.
    pub public_key_fingerprint: String,
    /// The 64-byte Ed25519 signature, hex.
    pub signature: String,
}

/// The names `keygen` writes in its directory.
pub const SECRET_KEY_FILE: &str = "portwarden-signing.key";
pub const PUBLIC_KEY_FILE: &str = "portwarden-signing.pub";

/// A public key's fingerprint: `SHA256:` and the hex SHA-256 of its 32 bytes.
pub fn fingerprint(key: &VerifyingKey) -> String {
    format!("SHA256:{}", sha256_hex(key.as_bytes()))
}

/// Writes a new Ed25519 key pair into `dir` (created if missing): the
/// secret key as PKCS#8 PEM with mode 0600, the public key as SPKI PEM.
/// Existing key files are never overwritten. Returns both paths.
pub fn generate_keypair(dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let bad = |path: &Path, message: String| KeyError::Bad {
        path: path.to_path_buf(),
        message,
    };
    let secret_path = dir.join(SECRET_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    for p in [&secret_path, &public_path] {
        if fs::symlink_metadata(p).is_ok() {
            return Err(KeyError::Exists(p.clone()));
        }
    }
    fs::create_dir_all(dir).map_err(|e| bad(dir, e.to_string()))?;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut())
        .map_err(|e| bad(dir, format!("no randomness from the OS: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let secret_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| bad(&secret_path, e.to_string()))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| bad(&public_path, e.to_string()))?;
    let create = |path: &Path, mode: u32, text: &[u8]| -> Result<(), KeyError> {
        use std::io::Write;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    KeyError::Exists(path.to_path_buf())
                } else {
                    bad(path, e.to_string())
                }
            })?;
        let done = f.write_all(text).and_then(|()| f.sync_all());
        if let Err(e) = done {
            let _ = fs::remove_file(path);
            return Err(bad(path, e.to_string()));
        }
        Ok(())
    };
    create(&secret_path, 0o600, secret_pem.as_bytes())?;
    if let Err(e) = create(&public_path, 0o644, public_pem.as_bytes()) {
        // Only the secret key we have just written is removed.
        let _ = fs::remove_file(&secret_path);
        return Err(e);
    }
    Ok((secret_path, public_path))
}

/// Reads a secret key written by [`generate_keypair`] (PKCS#8 PEM). Like
/// ssh, refuses a key that others may read: it may already be copied.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Bad {
            path: path.to_path_buf(),
            message: format!(
                "the secret key is readable or writable by others (mode {:o}): `chmod 600 {}`",
                mode & 0o777,
                path.display()
            ),
        });
    }
    let bytes = zeroize::Zeroizing::new(read_small(path, 64 << 10)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Bad {
        path: path.to_path_buf(),
        message: "not a PEM file".into(),
    })?;
    SigningKey::from_pkcs8_pem(text).map_err(|e| KeyError::Bad {
        path: path.to_path_buf(),
        message: format!(
            "not an Ed25519 secret key ({e}); `portwarden keygen --out DIR` writes one"
        ),
    })
}

/// Reads a public key written by [`generate_keypair`] (SPKI PEM).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let bytes = read_small(path, 64 << 10)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Bad {
        path: path.to_path_buf(),
        message: "not a PEM file".into(),
    })?;
    VerifyingKey::from_public_key_pem(text).map_err(|e| KeyError::Bad {
        path: path.to_path_buf(),
        message: format!("not an Ed25519 public key ({e}); it is the .pub file keygen wrote"),
    })
}

/// Signs the exact bytes of `dir/manifest.json` and writes `manifest.sig`.
pub fn sign_manifest(dir: &Path, key: &SigningKey) -> Result<SignatureFile, KeyError> {
    let manifest = read_small(&dir.join(MANIFEST), MAX_MANIFEST_BYTES)?;
    let sig = SignatureFile {
        format: SIGNATURE_FORMAT.into(),
        algorithm: "ed25519".into(),
        signed_file: MANIFEST.into(),
        manifest_sha256: sha256_hex(&manifest),
        public_key_fingerprint: fingerprint(&key.verifying_key()),
        signature: hex::encode(key.sign(&manifest).to_bytes()),
    };
    let path = dir.join(SIGNATURE);
    let mut text = serde_json::to_vec_pretty(&sig).map_err(ReportError::Json)?;
    text.push(b'\n');
    fs::write(&path, text).map_err(|source| ReportError::Io { path, source })?;
    Ok(sig)
}

/// What `manifest.sig` says about `manifest` (its exact bytes).
fn check_signature(dir: &Path, manifest: &[u8], key: Option<&VerifyingKey>) -> SignatureStatus {
    let invalid = |reason: String| SignatureStatus::Invalid { reason };
    let path = dir.join(SIGNATURE);
    let present = fs::symlink_metadata(&path).is_ok();
    if !present {
        return match key {
            None => SignatureStatus::Unsigned,
            Some(_) => invalid(format!("no {SIGNATURE}: the report is not signed")),
        };
    }
    let sig: SignatureFile = match read_small(&path, 64 << 10)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{SIGNATURE}: {e}")))
    {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let Some(key) = key else {
        return SignatureStatus::Unchecked {
            fingerprint: sig.public_key_fingerprint,
        };
    };
    let want = fingerprint(key);
    if sig.format != SIGNATURE_FORMAT || sig.algorithm != "ed25519" || sig.signed_file != MANIFEST {
        return invalid(format!(
            "{SIGNATURE} is not a portwarden Ed25519 signature of {MANIFEST}"
        ));
    }
    if sig.public_key_fingerprint != want {
        return invalid(format!(
            "signed by key {}, not by the given key {want}",
            sig.public_key_fingerprint
        ));
    }
    let bytes = match hex::decode(&sig.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    {
        Some(b) => b,
        None => return invalid(format!("{SIGNATURE}: the signature is not 64 hex bytes")),
    };
    let signature = ed25519_dalek::Signature::from_bytes(&bytes);
    match key.verify_strict(manifest, &signature) {
        Ok(()) => SignatureStatus::Valid { fingerprint: want },
        Err(_) => invalid(format!(
            "{MANIFEST} does not match its signature: it was changed after signing"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            tool: "portwarden".into(),
            tool_version: "0.1.0".into(),
            rules: rules_info_from(crate::rules::Rules::embedded().files, None),
            policy_file: "p.toml".into(),
            policy_sha256: None,
            command_line: vec!["portwarden".into(), "audit".into()],
            operator: "tester".into(),
            started: "2026-01-02T03:04:05Z".parse().unwrap(),
            finished: "2026-01-02T03:05:05Z".parse().unwrap(),
            as_of: "2026-01-02".parse().unwrap(),
            inputs: Vec::new(),
            files: BTreeMap::new(),
            sizes: BTreeMap::new(),
            history: None,
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_names_altered_missing_and_extra_files() {
        let dir = std::env::temp_dir().join(format!("pw-evidence-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a.txt"), "a").unwrap();
        fs::write(dir.join("b.txt"), "b").unwrap();
        fs::write(dir.join("sub/c.txt"), "c").unwrap();
        let m = write_manifest(&dir, manifest()).unwrap();
        assert_eq!(
            m.files.keys().collect::<Vec<_>>(),
            vec!["a.txt", "b.txt", "sub/c.txt"]
        );
        assert_eq!(m.files["a.txt"], sha256_hex(b"a"));
        let clean = verify(&dir).unwrap();
        assert!(clean.is_intact());
        assert_eq!(clean.intact.len(), 3);
        assert_eq!(clean.manifest_sha256, manifest_sha256(&dir).unwrap());

        fs::write(dir.join("a.txt"), "A").unwrap();
        fs::remove_file(dir.join("sub/c.txt")).unwrap();
        fs::write(dir.join("new.txt"), "x").unwrap();
        let r = verify(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(!r.is_intact());
        assert_eq!(r.altered, vec!["a.txt"]);
        assert_eq!(r.missing, vec!["sub/c.txt"]);
        assert_eq!(r.extra, vec!["new.txt"]);
        assert_eq!(r.intact, vec!["b.txt"]);
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pw-evidence-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Keys in the standard PKCS#8 v1 / SPKI form (RFC 8410 §10, what
    /// `openssl genpkey -algorithm ed25519` and portwarden's keygen up to
    /// ed25519-dalek 2 wrote) still load, as the same key pair.
    #[test]
    fn standard_ed25519_pem_keys_load() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("rfc8410");
        let secret = dir.join("k.pem");
        fs::write(
            &secret,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        let public = dir.join("k.pub");
        fs::write(
            &public,
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let key = load_signing_key(&secret).unwrap();
        let pubkey = load_verifying_key(&public).unwrap();
        assert_eq!(key.verifying_key(), pubkey);
        assert_eq!(
            hex::encode(pubkey.as_bytes()),
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn keygen_sign_and_verify_catch_a_rehashed_manifest() {
        use std::os::unix::fs::PermissionsExt;
        let base = scratch("sign");
        let keys = base.join("keys");
        let (secret, public) = generate_keypair(&keys).unwrap();
        assert_eq!(
            fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let before = fs::read(&secret).unwrap();
        assert!(matches!(
            generate_keypair(&keys),
            Err(KeyError::Exists(p)) if p == secret
        ));
        assert_eq!(fs::read(&secret).unwrap(), before, "never overwritten");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_signing_key(&secret).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        let key = load_signing_key(&secret).unwrap();
        let public = load_verifying_key(&public).unwrap();
        assert_eq!(key.verifying_key(), public);

        let dir = base.join("report");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("findings.csv"), "a,b\n").unwrap();
        write_manifest(&dir, manifest()).unwrap();
        let sig = sign_manifest(&dir, &key).unwrap();
        assert_eq!(sig.public_key_fingerprint, fingerprint(&public));
        let r = verify_with_key(&dir, Some(&public)).unwrap();
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(
            r.signature,
            SignatureStatus::Valid {
                fingerprint: fingerprint(&public)
            }
        );
        assert!(r.extra.is_empty(), "manifest.sig is not an extra file");
        // Without a key the signature is named but not judged.
        assert!(matches!(
            verify(&dir).unwrap().signature,
            SignatureStatus::Unchecked { .. }
        ));

        // Edit a file and rehash the manifest: every hash matches again,
        // the signature does not.
        fs::write(dir.join("findings.csv"), "a,b\nforged\n").unwrap();
        write_manifest(&dir, manifest()).unwrap();
        let r = verify_with_key(&dir, Some(&public)).unwrap();
        assert!(r.altered.is_empty());
        assert!(!r.is_intact());
        assert!(
            matches!(&r.signature, SignatureStatus::Invalid { reason } if reason.contains("does not match its signature")),
            "{:?}",
            r.signature
        );
        // Another key's signature, and no signature at all.
        let other = generate_keypair(&base.join("other")).unwrap();
        let other = load_verifying_key(&other.1).unwrap();
        sign_manifest(&dir, &key).unwrap();
        let r = verify_with_key(&dir, Some(&other)).unwrap();
        assert!(
            matches!(&r.signature, SignatureStatus::Invalid { reason } if reason.contains("not by the given key")),
            "{:?}",
            r.signature
        );
        fs::remove_file(dir.join(SIGNATURE)).unwrap();
        let r = verify_with_key(&dir, Some(&public)).unwrap();
        assert!(!r.is_intact());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn verify_never_follows_links_nor_reads_fifos_or_devices() {
        let base = scratch("hostile");
        let dir = base.join("report");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("a.txt"), "a").unwrap();
        fs::write(dir.join("b.txt"), "b").unwrap();
        write_manifest(&dir, manifest()).unwrap();
        // A listed file replaced by a link out of the directory; a link to
        // /dev/zero; a FIFO nobody writes; a link to a directory outside.
        fs::write(base.join("outside"), "a").unwrap();
        fs::remove_file(dir.join("a.txt")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), dir.join("a.txt")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        let fifo = std::ffi::CString::new(dir.join("pipe").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let r = verify(&dir).unwrap();
        assert_eq!(
            r.refused,
            vec![
                ("a.txt".to_string(), "symbolic link"),
                ("etc".to_string(), "symbolic link"),
                ("pipe".to_string(), "FIFO"),
                ("zero".to_string(), "symbolic link"),
            ]
        );
        assert_eq!(r.intact, vec!["b.txt"]);
        assert!(r.altered.is_empty() && r.missing.is_empty() && r.extra.is_empty());
        assert!(!r.is_intact());
        // A manifest that is a link is not read either.
        fs::rename(dir.join(MANIFEST), base.join("m.json")).unwrap();
        std::os::unix::fs::symlink(base.join("m.json"), dir.join(MANIFEST)).unwrap();
        let e = verify(&dir).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(is_own_report(&dir).is_err());
        fs::remove_dir_all(&base).unwrap();
    }
}
