//! Rules layer: the data of `rules/` and the report's label files,
//! embedded once in the binary ([`embedded`]) and overridable with
//! `--rules DIR`. [`Rules::load`] reads, hashes, parses and checks every
//! file once per command and offers typed values: the port catalogue with
//! its named sets and top-UDP/TCP lists ([`Catalogue`]), the compliance
//! profiles and their checks ([`profiles::Profiles`]), the identification
//! probes ([`ProbeSet`]), the UDP payloads ([`Payloads`]), firewalld's
//! services ([`FirewalldServices`]) and both languages' labels
//! ([`LabelSet`]), the remediation platforms and fixes
//! ([`RemediationRules`], whose handlebars templates the report layer
//! compiles). Errors name
//! the file and line, because a rules file is something the operator edits
//! by hand and must be able to fix.

pub(crate) mod firewalld;
pub(crate) mod i18n;
pub(crate) mod ports;
pub(crate) mod probes;
pub mod profiles;
pub(crate) mod remediation;
pub(crate) mod top_udp;
pub(crate) mod udp_payloads;

use std::path::{Path, PathBuf};

pub use firewalld::FirewalldServices;
pub use i18n::{LabelError, LabelSet, Labels, Lang};
pub use ports::{Catalogue, NamedSet, PortEntry};
pub use probes::{ProbeError, ProbeSet};
pub use remediation::{RemediationRules, RemediationRulesError};
pub use udp_payloads::{Payload, PayloadError, Payloads};

/// Errors in rule files. Each names the file (or `<embedded>/…` for the
/// built-in copy) and, when the problem is inside the file, its line and
/// column.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rules directory {} does not exist or is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// The file parsed (or failed to) but says something invalid.
    /// `line` and `column` are 1-based; 0 means the position is unknown.
    #[error("{}: {message}", location(origin, *line, *column))]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
}

fn location(origin: &str, line: usize, column: usize) -> String {
    if line == 0 {
        origin.to_string()
    } else {
        format!("{origin}:{line}:{column}")
    }
}

/// Longest error message about a rule file, in bytes.
const MAX_MESSAGE: usize = 512;

impl RulesError {
    /// An `Invalid` error located at byte `offset` of `text`.
    /// The message is cut at [`MAX_MESSAGE`] bytes: what it quotes from
    /// the file (a 100 MB token) is never echoed whole.
    pub(crate) fn at(origin: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            message.truncate(message.floor_char_boundary(MAX_MESSAGE));
            message.push('…');
        }
        RulesError::Invalid {
            origin: origin.to_string(),
            line,
            column,
            message,
        }
    }

    /// Wraps a TOML syntax or type error, keeping its position.
    pub(crate) fn from_toml(origin: &str, text: &str, err: &toml::de::Error) -> Self {
        match err.span() {
            Some(span) => RulesError::at(origin, text, span.start, err.message()),
            None => RulesError::Invalid {
                origin: origin.to_string(),
                line: 0,
                column: 0,
                message: err.message().to_string(),
            },
        }
    }
}

/// 1-based (line, column) of byte `offset` in `text`; the column counts
/// characters, not bytes, so it matches what an editor shows.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A rule file whose parser lives in a higher layer (identification
/// probes, remediation templates, report labels): its text, read once here.
#[derive(Debug, Clone)]
pub struct RuleText {
    /// Where it came from, for error messages (`<embedded>/probes.toml`).
    pub origin: String,
    pub text: String,
}

/// The rule files built into the binary: the one place they are embedded.
/// Layers parse them through [`Rules`]; their own `embedded()`
/// constructors (for tests and defaults) read these.
pub mod embedded {
    pub const PROBES: &str = include_str!("../../rules/probes.toml");
    pub const REMEDIATION: &str = include_str!("../../rules/remediation.toml");
    pub const FIREWALLD: &str = include_str!("../../rules/firewalld-services.txt");
    pub const UDP_PAYLOADS: &str = include_str!("../../rules/udp-payloads.toml");
    /// The commented starter policy `policy init` writes (not a rule the
    /// audit reads: it is never overridden by `--rules`).
    pub const POLICY_STARTER: &str = include_str!("../../rules/policy-starter.toml");
    pub const I18N: [(&str, &str); 2] = [
        ("en", include_str!("../../report-templates/i18n/en.toml")),
        (
            "zh-CN",
            include_str!("../../report-templates/i18n/zh-CN.toml"),
        ),
    ];
}
use embedded::{
    FIREWALLD as EMBEDDED_FIREWALLD, I18N as EMBEDDED_I18N, PROBES as EMBEDDED_PROBES,
    REMEDIATION as EMBEDDED_REMEDIATION, UDP_PAYLOADS as EMBEDDED_UDP_PAYLOADS,
};

/// Every rule file the program uses, loaded together from one `--rules DIR`
/// resolution (each file in DIR replaces its built-in counterpart), each
/// read once and hashed at load time: the evidence hashes are the hashes of
/// the bytes that were actually used.
#[derive(Debug, Clone)]
pub struct Rules {
    pub ports: Catalogue,
    pub profiles: profiles::Profiles,
    /// `probes.toml`: the identification probes, compiled.
    pub probes: probes::ProbeSet,
    /// `remediation.toml`: platforms, fixes and partials, checked; their
    /// handlebars templates are compiled by the report layer.
    pub remediation: RemediationRules,
    /// `firewalld-services.txt`: firewalld's own service names and ports,
    /// for the firewalld fixes.
    pub firewalld: firewalld::FirewalldServices,
    /// `udp-payloads.toml`: the UDP probe payloads.
    pub udp_payloads: udp_payloads::Payloads,
    /// `i18n/en.toml` and `i18n/zh-CN.toml`: the report's labels, parsed
    /// and checked to have the same keys.
    pub labels: i18n::LabelSet,
    /// The same files' texts, whose `[fix_comment]` and `[fix_policy]`
    /// messages the report layer compiles with the remediation templates.
    pub i18n: Vec<(String, RuleText)>,
    /// Relative name (`ports.toml`, `profiles/cis-v8.toml`, `i18n/en.toml`)
    /// → SHA-256 (hex) of every file in effect.
    pub files: std::collections::BTreeMap<String, String>,
    /// The directory that overrode the built-in rules, if any.
    pub dir: Option<PathBuf>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Errors of the whole rulebook: the port catalogue's or a profile's.
#[derive(Debug, thiserror::Error)]
pub enum RulebookError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Profiles(#[from] profiles::ProfileError),
    #[error(transparent)]
    Probes(#[from] probes::ProbeError),
    #[error(transparent)]
    Payloads(#[from] udp_payloads::PayloadError),
    #[error(transparent)]
    Labels(#[from] i18n::LabelError),
    #[error(transparent)]
    Remediation(#[from] RemediationRulesError),
}

impl Rules {
    /// The rules built into the binary.
    pub fn embedded() -> Rules {
        Rules::load(None).unwrap_or_else(|e| panic!("built-in rules are invalid: {e}"))
    }

    /// The built-in rules, with each file present in `dir` replacing its
    /// built-in counterpart. `None` means the built-in rules only.
    pub fn load(dir: Option<&Path>) -> Result<Rules, RulebookError> {
        if let Some(d) = dir
            && !d.is_dir()
        {
            return Err(RulesError::NotADirectory {
                path: d.to_path_buf(),
            }
            .into());
        }
        let mut files = std::collections::BTreeMap::new();
        // The user's copy of `name` when DIR has one, else the built-in text.
        let mut read = |name: &str, embedded: &str| -> Result<RuleText, RulesError> {
            let own = dir.map(|d| d.join(name)).filter(|p| p.is_file());
            let t = match own {
                Some(p) => RuleText {
                    text: std::fs::read_to_string(&p).map_err(|source| RulesError::Read {
                        path: p.clone(),
                        source,
                    })?,
                    origin: p.display().to_string(),
                },
                None => RuleText {
                    origin: format!("<embedded>/{name}"),
                    text: embedded.to_string(),
                },
            };
            files.insert(name.to_string(), sha256_hex(t.text.as_bytes()));
            Ok(t)
        };
        let ports_text = read(ports::FILE_NAME, ports::EMBEDDED_TEXT)?;
        let ports = Catalogue::from_toml_str(&ports_text.text, &ports_text.origin)?;
        if ports.is_empty() {
            // An empty catalogue would make every port unknown and every
            // risk check silent: refuse it rather than audit blind.
            return Err(RulesError::Invalid {
                origin: ports_text.origin,
                line: 1,
                column: 1,
                message: "the port catalogue has no [[port]] entries; list at least one, or remove the file to use the built-in catalogue".into(),
            }
            .into());
        }
        let top_text = read(top_udp::FILE_NAME, top_udp::EMBEDDED_TEXT)?;
        let ports = ports.with_top_udp(top_udp::parse(&top_text.text, &top_text.origin)?);
        let top_tcp = read(top_udp::TCP_FILE_NAME, top_udp::TCP_EMBEDDED_TEXT)?;
        let ports = ports.with_top_tcp(top_udp::parse_tcp(&top_tcp.text, &top_tcp.origin)?);
        let probes = read("probes.toml", EMBEDDED_PROBES)?;
        let probes = probes::ProbeSet::parse(&probes.text, &probes.origin)?;
        let remediation = read("remediation.toml", EMBEDDED_REMEDIATION)?;
        let remediation = RemediationRules::parse(&remediation.text, &remediation.origin)?;
        let firewalld = read("firewalld-services.txt", EMBEDDED_FIREWALLD)?;
        let firewalld = firewalld::FirewalldServices::parse(&firewalld.text, &firewalld.origin)?;
        let udp_payloads = read("udp-payloads.toml", EMBEDDED_UDP_PAYLOADS)?;
        let udp_payloads = udp_payloads::Payloads::parse(&udp_payloads.text, &udp_payloads.origin)?;
        for (id, text) in profiles::EMBEDDED {
            read(&format!("profiles/{id}.toml"), text)?;
        }
        read("profiles/checks.toml", profiles::EMBEDDED_CHECKS)?;
        let [(en_lang, en), (zh_lang, zh)] = EMBEDDED_I18N;
        let en = read(&format!("i18n/{en_lang}.toml"), en)?;
        let zh = read(&format!("i18n/{zh_lang}.toml"), zh)?;
        let labels = i18n::LabelSet::from_texts((&en.text, &en.origin), (&zh.text, &zh.origin))?;
        let i18n = vec![(en_lang.to_string(), en), (zh_lang.to_string(), zh)];
        // Profiles a rules directory adds (or replaces), read once.
        let mut own_profiles = Vec::new();
        if let Some(pdir) = dir.map(|d| d.join("profiles")).filter(|p| p.is_dir()) {
            let entries = std::fs::read_dir(&pdir).map_err(|source| RulesError::Read {
                path: pdir.clone(),
                source,
            })?;
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for p in paths {
                let text = std::fs::read_to_string(&p).map_err(|source| RulesError::Read {
                    path: p.clone(),
                    source,
                })?;
                let name = format!(
                    "profiles/{}",
                    p.file_name().unwrap_or_default().to_string_lossy()
                );
                files.insert(name, sha256_hex(text.as_bytes()));
                own_profiles.push((p, text));
            }
        }
        let profiles =
            profiles::Profiles::with_files(profiles::Profiles::embedded()?, &own_profiles)?;
        profiles.validate_tags(&ports.tags())?;
        profiles.validate_port_scopes(|n| ports.set(n))?;
        Ok(Rules {
            ports,
            profiles,
            probes,
            remediation,
            firewalld,
            udp_payloads,
            labels,
            i18n,
            files,
            dir: dir.map(Path::to_path_buf),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let text = "a = 1\nbé = 2\nc";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 999), (3, 2));
    }

    #[test]
    fn invalid_error_names_file_line_and_column() {
        let e = RulesError::at("x/ports.toml", "a\nbc", 3, "bad thing");
        assert_eq!(e.to_string(), "x/ports.toml:2:2: bad thing");
    }

    #[test]
    fn load_without_dir_is_embedded() {
        let r = Rules::load(None).unwrap();
        assert_eq!(r.ports.len(), Catalogue::embedded().len());
    }

    #[test]
    fn load_from_missing_dir_fails() {
        let err = Rules::load(Some(Path::new("/nonexistent/portwarden-rules"))).unwrap_err();
        assert!(
            matches!(err, RulebookError::Rules(RulesError::NotADirectory { .. })),
            "{err}"
        );
    }

    #[test]
    fn one_load_hashes_every_file_in_effect() {
        let r = Rules::load(None).unwrap();
        for name in [
            "ports.toml",
            "probes.toml",
            "remediation.toml",
            "firewalld-services.txt",
            "udp-payloads.toml",
            "top-udp.txt",
            "top-tcp.txt",
            "profiles/checks.toml",
            "profiles/pci-dss-4.0.toml",
            "i18n/en.toml",
            "i18n/zh-CN.toml",
        ] {
            assert_eq!(r.files[name].len(), 64, "{name}");
        }
        assert_eq!(
            r.files["probes.toml"],
            sha256_hex(EMBEDDED_PROBES.as_bytes())
        );
        assert_eq!(r.profiles.ids().len(), profiles::BUILTIN_PROFILES.len());
    }

    /// A scratch rules directory, removed on drop.
    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(tag: &str, files: &[(&str, &str)]) -> Dir {
        let d = std::env::temp_dir().join(format!("pw-rulebook-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(d.join("profiles")).unwrap();
        for (name, text) in files {
            std::fs::write(d.join(name), text).unwrap();
        }
        Dir(d)
    }

    #[test]
    fn rule_errors_name_file_and_line() {
        let d = dir("empty", &[("ports.toml", "# nothing\n")]);
        let e = Rules::load(Some(&d.0)).unwrap_err().to_string();
        assert!(e.ends_with("ports.toml:1:1: the port catalogue has no [[port]] entries; list at least one, or remove the file to use the built-in catalogue"), "{e}");
        let checks = profiles::EMBEDDED_CHECKS.replacen(
            "remediation = \"close-port\"",
            "remediation = \"close-prot\"",
            1,
        );
        let d = dir("remedy", &[("profiles/checks.toml", &checks)]);
        let e = Rules::load(Some(&d.0)).unwrap_err().to_string();
        assert!(
            e.contains("checks.toml:18:1: check 'not-allowed': unknown remediation 'close-prot'"),
            "{e}"
        );
        let checks = profiles::EMBEDDED_CHECKS.replacen(
            "tags = [\"remote-admin\"]",
            "tags = [\"remote-admn\"]",
            1,
        );
        let d = dir("tags", &[("profiles/checks.toml", &checks)]);
        let e = Rules::load(Some(&d.0)).unwrap_err().to_string();
        assert!(e.contains("checks.toml:40:1: check 'remote-admin-internet': tag 'remote-admn' is in no entry of the port catalogue"), "{e}");
        let d = dir(
            "probes",
            &[(
                "probes.toml",
                "[[http]]\nservice = \"x\"\npattern = \"y\"\n",
            )],
        );
        let r = Rules::load(Some(&d.0)).unwrap();
        assert_eq!(r.probes.http.len(), 1);
        assert!(r.probes.probes.is_empty());
        let d = dir("top-udp", &[("top-udp.txt", "161 snmp\n53\n161\n")]);
        let e = Rules::load(Some(&d.0)).unwrap_err().to_string();
        assert!(
            e.ends_with("top-udp.txt:3:1: port 161 is listed twice (first at line 1); keep one"),
            "{e}"
        );
        let d = dir("top-udp-own", &[("top-udp.txt", "# mine\n161\n53 dns\n")]);
        let r = Rules::load(Some(&d.0)).unwrap();
        assert_eq!(r.ports.top_udp(), &[161, 53]);
        assert_eq!(r.files["top-udp.txt"], sha256_hex(b"# mine\n161\n53 dns\n"));
        assert_eq!(Rules::embedded().ports.top_udp().len(), 1000);
        assert_eq!(
            r.files["probes.toml"],
            sha256_hex(EMBEDDED_PROBES.as_bytes())
        );
    }
}
