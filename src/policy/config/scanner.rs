//! `[[scanner]]`: the scanners whose signed bundles an import audit trusts
//! (`scan --vantage NAME --sign-key KEY`). Kept apart from the rest of the
//! policy parser.
//!
//! ```toml
//! [[scanner]]
//! name = "k8s-internal"
//! vantage = "internal"
//! pubkey = "keys/internal.pub"   # a .pub file from `portwarden keygen`
//!                                # (relative to the policy), or its PEM text
//! ```

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use serde::Deserialize;
use toml::Spanned;

use super::{PolicyError, Src};

/// A scanner whose bundles the policy trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanner {
    pub name: String,
    /// The vantage its bundles must declare (`internet`, `internal`, a
    /// segment's name).
    pub vantage: String,
    pub key: VerifyingKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScanner {
    name: Spanned<String>,
    vantage: Spanned<String>,
    pubkey: Spanned<String>,
}

/// Longest public key file read (a PEM key is ~113 bytes).
const MAX_PUBKEY_FILE: u64 = 16 << 10;

/// Checks the `[[scanner]]` entries: names and keys unique, every key an
/// Ed25519 public key (PEM text, or a file beside the policy).
pub(super) fn scanners(
    raw: Vec<Spanned<RawScanner>>,
    src: &Src<'_>,
) -> Result<Vec<Scanner>, PolicyError> {
    let mut out: Vec<Scanner> = Vec::new();
    for s in raw {
        let s = s.into_inner();
        let name = s.name.get_ref().trim().to_string();
        let vantage = s.vantage.get_ref().trim().to_string();
        for (v, span, what) in [
            (&name, s.name.span(), "name"),
            (&vantage, s.vantage.span(), "vantage"),
        ] {
            if !printable_name(v) {
                return Err(src.invalid(
                    span,
                    format!("a scanner's {what} must be 1 to 64 printable characters"),
                    "name = \"k8s-internal\", vantage = \"internal\"",
                ));
            }
        }
        if out.iter().any(|o| o.name == name) {
            return Err(src.invalid(
                s.name.span(),
                format!("scanner '{name}' is declared twice"),
                "give each [[scanner]] its own name",
            ));
        }
        let key = read_key(s.pubkey.get_ref(), src).map_err(|m| {
            src.invalid(
                s.pubkey.span(),
                m,
                "pubkey = \"scanner.pub\" (the portwarden-signing.pub `portwarden keygen` wrote) or its PEM text",
            )
        })?;
        if let Some(o) = out.iter().find(|o| o.key == key) {
            return Err(src.invalid(
                s.pubkey.span(),
                format!("scanner '{name}' has the same key as scanner '{}'", o.name),
                "give each scanner its own key pair, so a bundle names who made it",
            ));
        }
        out.push(Scanner { name, vantage, key });
    }
    Ok(out)
}

/// A scanner's name or a vantage: 1 to 64 printable characters.
fn printable_name(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && !v.chars().any(char::is_control)
}

/// A segment group's `unreachable_from`: vantage names, each once, only
/// beside `expect = "unreachable"`, and each a declared scanner's vantage
/// when the policy declares scanners (else a typo would leave the segment
/// judged from no bundle).
pub(super) fn unreachable_from(
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    unreachable: bool,
    scanners: &[Scanner],
    src: &Src<'_>,
) -> Result<Vec<String>, PolicyError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let hint = "unreachable_from = [\"office\"] beside expect = \"unreachable\"";
    if !unreachable {
        return Err(src.invalid(
            raw.span(),
            "unreachable_from is only for a segment group (expect = \"unreachable\")".into(),
            hint,
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for v in raw.into_inner() {
        let name = v.get_ref().trim().to_string();
        let bad = if !printable_name(&name) {
            Some("a vantage must be 1 to 64 printable characters".to_string())
        } else if out.contains(&name) {
            Some(format!("vantage '{name}' is named twice"))
        } else if !scanners.is_empty() && !scanners.iter().any(|s| s.vantage == name) {
            let known: Vec<&str> = scanners.iter().map(|s| s.vantage.as_str()).collect();
            Some(format!(
                "no [[scanner]] has vantage '{name}' (declared: {})",
                known.join(", ")
            ))
        } else {
            None
        };
        if let Some(m) = bad {
            return Err(src.invalid(v.span(), m, hint));
        }
        out.push(name);
    }
    Ok(out)
}

fn read_key(value: &str, src: &Src<'_>) -> Result<VerifyingKey, String> {
    let text = if value.trim_start().starts_with("-----BEGIN") {
        value.to_string()
    } else {
        let base = std::path::Path::new(src.file)
            .parent()
            .unwrap_or(std::path::Path::new(""));
        let path = base.join(value);
        let f = std::fs::File::open(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_PUBKEY_FILE), &mut text)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        text
    };
    VerifyingKey::from_public_key_pem(text.trim())
        .map_err(|e| format!("not an Ed25519 public key in PEM form ({e})"))
}

#[cfg(test)]
mod tests {
    use crate::policy::Policy;
    use crate::rules::profiles::Profiles;

    fn pem() -> String {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        key.verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn scanners_parse_and_bad_ones_name_their_line() {
        let profiles = Profiles::embedded().unwrap();
        let text = format!(
            "[[scanner]]\nname = \"k8s\"\nvantage = \"internal\"\npubkey = '''\n{}'''\n",
            pem()
        );
        let p = Policy::parse(&text, "p.toml", &profiles).unwrap();
        assert_eq!(p.scanners.len(), 1);
        assert_eq!(
            (p.scanners[0].name.as_str(), p.scanners[0].vantage.as_str()),
            ("k8s", "internal")
        );

        let twice = format!("{text}{}", text.replace("k8s", "k8s-2"));
        let e = Policy::parse(&twice, "p.toml", &profiles)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:12:10:"), "{e}");
        assert!(e.contains("same key as scanner 'k8s'"), "{e}");

        let e = Policy::parse(
            "[[scanner]]\nname = \"a\"\nvantage = \"internet\"\npubkey = \"nope.pub\"\n",
            "/nonexistent/p.toml",
            &profiles,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("/nonexistent/p.toml:4:10: cannot read /nonexistent/nope.pub"),
            "{e}"
        );

        let e = Policy::parse(
            "[[scanner]]\nname = \"a\"\nvantage = \"\"\npubkey = \"-----BEGIN x\"\n",
            "p.toml",
            &profiles,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("p.toml:3:11: a scanner's vantage"), "{e}");
    }

    #[test]
    fn a_segment_names_declared_vantages_it_must_be_unreachable_from() {
        let profiles = Profiles::embedded().unwrap();
        let scanner = format!(
            "[[scanner]]\nname = \"desk\"\nvantage = \"office\"\npubkey = '''\n{}'''\n",
            pem()
        );
        let group = |lines: &str| {
            format!("[[group]]\nname = \"cde\"\ntargets = [\"198.18.0.8/29\"]\n{lines}\n{scanner}")
        };
        let parse = |text: &str| Policy::parse(text, "p.toml", &profiles);
        let p = parse(&group(
            "expect = \"unreachable\"\nunreachable_from = [\"office\"]",
        ))
        .unwrap();
        assert_eq!(p.groups[0].unreachable_from, ["office"]);
        for (lines, at, says) in [
            (
                "unreachable_from = [\"office\"]",
                "p.toml:4:20:",
                "unreachable_from is only for a segment group",
            ),
            (
                "expect = \"unreachable\"\nunreachable_from = [\"ofice\"]",
                "p.toml:5:21:",
                "no [[scanner]] has vantage 'ofice' (declared: office)",
            ),
            (
                "expect = \"unreachable\"\nunreachable_from = [\"office\", \"office\"]",
                "p.toml:5:31:",
                "vantage 'office' is named twice",
            ),
        ] {
            let e = parse(&group(lines)).unwrap_err().to_string();
            assert!(e.starts_with(at) && e.contains(says), "{e}");
        }
        // Without [[scanner]]: any name (an audit run with --vantage NAME).
        let text = "[[group]]\nname = \"cde\"\ntargets = [\"198.18.0.8/29\"]\nexpect = \"unreachable\"\nunreachable_from = [\"lab-office\"]\n";
        assert_eq!(
            parse(text).unwrap().groups[0].unreachable_from,
            ["lab-office"]
        );
    }
}
