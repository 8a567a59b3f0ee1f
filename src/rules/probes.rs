//! The identification probes of `rules/probes.toml` (payloads, banner
//! rules, match patterns), loaded, unescaped and compiled once by
//! [`super::Rules::load`], so the identify layer never re-parses text per
//! port and a bad pattern is reported at start with its file and entry
//! rather than mid-scan.

use regex::bytes::Regex;
use serde::Deserialize;

use crate::model::AuthStatus;

/// Protocol logic that lives in code because data cannot express it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    Tls,
    Http,
    MongoDb,
    Postgresql,
    Mssql,
    Rdp,
    Smb,
    Ldap,
    Amqp,
    Kafka,
}

impl Parser {
    const NAMES: [(&'static str, Parser); 10] = [
        ("tls", Parser::Tls),
        ("http", Parser::Http),
        ("mongodb", Parser::MongoDb),
        ("postgresql", Parser::Postgresql),
        ("mssql", Parser::Mssql),
        ("rdp", Parser::Rdp),
        ("smb", Parser::Smb),
        ("ldap", Parser::Ldap),
        ("amqp", Parser::Amqp),
        ("kafka", Parser::Kafka),
    ];

    fn from_name(s: &str) -> Option<Parser> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, p)| *p)
    }

    fn known() -> String {
        Self::NAMES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Errors while loading a probe file.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{file}: not a valid probe file: {message}")]
    Toml { file: String, message: String },
    #[error("{file}: {entry}: {message}")]
    Invalid {
        file: String,
        entry: String,
        message: String,
    },
}

/// One compiled match rule: a byte regex and what to take from it.
#[derive(Debug, Clone)]
pub struct MatchRule {
    pub service: String,
    pub pattern: Regex,
    pub product: Option<String>,
    pub version: Option<String>,
    pub auth: AuthStatus,
    pub confidence: f32,
}

/// What a rule concluded from a response.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    pub service: String,
    pub product: Option<String>,
    pub version: Option<String>,
    pub auth: AuthStatus,
    pub confidence: f32,
}

impl MatchRule {
    /// Applies the rule; captured text is escaped to printable ASCII and
    /// bounded, since it comes from the network.
    pub fn apply(&self, data: &[u8]) -> Option<RuleHit> {
        let caps = self.pattern.captures(data)?;
        let expand = |tpl: &Option<String>| -> Option<String> {
            let tpl = tpl.as_ref()?;
            let mut out = Vec::new();
            caps.expand(tpl.as_bytes(), &mut out);
            let s = crate::lines::escape_bytes(&out, 80);
            let s = s.trim().to_string();
            (!s.is_empty()).then_some(s)
        };
        Some(RuleHit {
            service: self.service.clone(),
            product: expand(&self.product),
            version: expand(&self.version),
            auth: self.auth,
            confidence: self.confidence,
        })
    }
}

/// Something to send to a silent service.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    /// Unescaped payload; may contain the `{host}` placeholder.
    pub payload: Vec<u8>,
    pub parser: Option<Parser>,
    pub services: Vec<String>,
    pub ports: Vec<u16>,
    pub matches: Vec<MatchRule>,
}

impl Probe {
    /// The payload with `{host}` replaced.
    pub fn payload_for(&self, host: &str) -> Vec<u8> {
        let needle = b"{host}";
        let mut out = Vec::with_capacity(self.payload.len() + host.len());
        let mut i = 0;
        while i < self.payload.len() {
            if self.payload[i..].starts_with(needle) {
                out.extend_from_slice(host.as_bytes());
                i += needle.len();
            } else {
                out.push(self.payload[i]);
                i += 1;
            }
        }
        out
    }

    /// First rule of this probe that matches.
    pub fn match_response(&self, data: &[u8]) -> Option<RuleHit> {
        self.matches.iter().find_map(|r| r.apply(data))
    }
}

/// A web application or HTTP API told apart from a plain web server by
/// one response (`[[http]]` in the probe file), and how to learn whether it
/// answers without credentials.
#[derive(Debug, Clone)]
pub struct HttpFingerprint {
    /// Where to look: `/` is the response already read; any other path is
    /// fetched only on the fingerprint's `ports` or registered `services`.
    pub path: String,
    pub services: Vec<String>,
    pub ports: Vec<u16>,
    /// Applied to the raw response (status line, headers and body).
    pub rule: MatchRule,
    /// A request that only succeeds without credentials…
    pub unauth_path: Option<String>,
    /// …and what its raw response looks like when it does.
    pub unauth: Option<Regex>,
}

impl HttpFingerprint {
    /// Whether `path` is worth a request on this port.
    pub fn applies(&self, port: u16, registered: Option<&str>) -> bool {
        self.path == "/"
            || self.ports.contains(&port)
            || registered.is_some_and(|r| self.services.iter().any(|s| s == r))
    }
}

/// All banner rules and probes, compiled.
#[derive(Debug, Clone)]
pub struct ProbeSet {
    pub banners: Vec<MatchRule>,
    pub probes: Vec<Probe>,
    pub http: Vec<HttpFingerprint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    banner: Vec<RuleDef>,
    #[serde(default)]
    probe: Vec<ProbeDef>,
    #[serde(default)]
    http: Vec<HttpDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpDef {
    service: String,
    #[serde(default = "root_path")]
    path: String,
    pattern: String,
    product: Option<String>,
    version: Option<String>,
    confidence: Option<f32>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    ports: Vec<u16>,
    unauth_path: Option<String>,
    unauth_pattern: Option<String>,
}

fn root_path() -> String {
    "/".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    service: String,
    pattern: String,
    product: Option<String>,
    version: Option<String>,
    auth: Option<String>,
    confidence: Option<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeDef {
    name: String,
    #[serde(default)]
    payload: String,
    parser: Option<String>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default, rename = "match")]
    matches: Vec<RuleDef>,
}

impl ProbeSet {
    /// The probes shipped in the binary.
    pub fn embedded() -> Result<ProbeSet, ProbeError> {
        ProbeSet::parse(super::embedded::PROBES, "rules/probes.toml (embedded)")
    }

    /// Parses and validates probe definitions; `file` names the source in
    /// error messages.
    pub fn parse(text: &str, file: &str) -> Result<ProbeSet, ProbeError> {
        let def: FileDef = toml::from_str(text).map_err(|e| ProbeError::Toml {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |entry: String, message: String| ProbeError::Invalid {
            file: file.to_string(),
            entry,
            message,
        };
        let mut banners = Vec::new();
        for (i, r) in def.banner.iter().enumerate() {
            let entry = format!("banner #{} (service {})", i + 1, r.service);
            banners.push(compile_rule(r).map_err(|m| invalid(entry, m))?);
        }
        let mut probes = Vec::new();
        for p in &def.probe {
            let entry = format!("probe '{}'", p.name);
            if probes.iter().any(|q: &Probe| q.name == p.name) {
                return Err(invalid(entry, "the name is used twice".into()));
            }
            let parser = match &p.parser {
                None => None,
                Some(n) => Some(Parser::from_name(n).ok_or_else(|| {
                    invalid(
                        entry.clone(),
                        format!("unknown parser '{n}'; known: {}", Parser::known()),
                    )
                })?),
            };
            let payload = unescape(&p.payload).map_err(|m| invalid(entry.clone(), m))?;
            if payload.is_empty() && parser.is_none() {
                return Err(invalid(
                    entry,
                    "a probe needs a payload or a parser (nothing would be sent)".into(),
                ));
            }
            if parser.is_none() && p.matches.is_empty() {
                return Err(invalid(
                    entry,
                    "a probe without a parser needs at least one [[probe.match]]".into(),
                ));
            }
            let mut matches = Vec::new();
            for (i, r) in p.matches.iter().enumerate() {
                let e = format!("{entry}, match #{}", i + 1);
                matches.push(compile_rule(r).map_err(|m| invalid(e, m))?);
            }
            probes.push(Probe {
                name: p.name.clone(),
                payload,
                parser,
                services: p.services.clone(),
                ports: p.ports.clone(),
                matches,
            });
        }
        let mut http = Vec::new();
        for (i, h) in def.http.iter().enumerate() {
            let entry = format!("http #{} (service {})", i + 1, h.service);
            let rule = compile_rule(&RuleDef {
                service: h.service.clone(),
                pattern: h.pattern.clone(),
                product: h.product.clone(),
                version: h.version.clone(),
                auth: None,
                confidence: h.confidence,
            })
            .map_err(|m| invalid(entry.clone(), m))?;
            let path_ok = |p: &str| p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic());
            if !path_ok(&h.path) || h.unauth_path.as_deref().is_some_and(|p| !path_ok(p)) {
                return Err(invalid(
                    entry,
                    "paths start with '/' and hold no spaces or control characters".into(),
                ));
            }
            if h.unauth_path.is_some() != h.unauth_pattern.is_some() {
                return Err(invalid(
                    entry,
                    "give unauth_path and unauth_pattern together".into(),
                ));
            }
            let unauth = match &h.unauth_pattern {
                None => None,
                Some(p) => Some(
                    regex::bytes::RegexBuilder::new(p)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| invalid(entry.clone(), format!("bad unauth_pattern: {e}")))?,
                ),
            };
            http.push(HttpFingerprint {
                path: h.path.clone(),
                services: h.services.clone(),
                ports: h.ports.clone(),
                rule,
                unauth_path: h.unauth_path.clone(),
                unauth,
            });
        }
        Ok(ProbeSet {
            banners,
            probes,
            http,
        })
    }

    /// First banner rule that matches.
    pub fn match_banner(&self, data: &[u8]) -> Option<RuleHit> {
        self.banners.iter().find_map(|r| r.apply(data))
    }

    /// Probes in the order to try them on `port` whose registered service
    /// is `registered`: that service's probes, then the port's, then the rest.
    pub fn ordered(&self, port: u16, registered: Option<&str>) -> Vec<&Probe> {
        let rank = |p: &Probe| {
            if registered.is_some_and(|r| p.services.iter().any(|s| s == r)) {
                0
            } else if p.ports.contains(&port) {
                1
            } else {
                2
            }
        };
        let mut v: Vec<&Probe> = self.probes.iter().collect();
        v.sort_by_key(|p| rank(p)); // stable: file order within a rank
        v
    }
}

fn compile_rule(r: &RuleDef) -> Result<MatchRule, String> {
    if r.service.trim().is_empty() {
        return Err("service must not be empty".into());
    }
    let pattern = regex::bytes::RegexBuilder::new(&r.pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad pattern: {e}"))?;
    let auth = match r.auth.as_deref() {
        None | Some("unknown") => AuthStatus::Unknown,
        Some("required") => AuthStatus::Required,
        Some("none") => AuthStatus::None,
        Some(o) => {
            return Err(format!(
                "unknown auth '{o}' (expected required, none or unknown)"
            ));
        }
    };
    let confidence = r.confidence.unwrap_or(0.9);
    if !(0.0..=1.0).contains(&confidence) {
        return Err(format!("confidence {confidence} is outside 0.0-1.0"));
    }
    Ok(MatchRule {
        service: r.service.clone(),
        pattern,
        product: r.product.clone(),
        version: r.version.clone(),
        auth,
        confidence,
    })
}

/// Turns `\r \n \t \0 \\ \xNN` into bytes.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&c) = b.get(i + 1) else {
            return Err("payload ends with a lone backslash".into());
        };
        match c {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = b
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("bad \\x escape at byte {i} (expected two hex digits)")
                    })?;
                out.push(hex);
                i += 2;
            }
            o => {
                return Err(format!(
                    "unknown escape '\\{}' at byte {i} (use \\r \\n \\t \\0 \\\\ \\xNN)",
                    o as char
                ));
            }
        }
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_loads() {
        let set = ProbeSet::embedded().unwrap();
        assert!(set.banners.len() >= 10);
        assert!(set.probes.iter().any(|p| p.name == "redis"));
    }

    #[test]
    fn unescape_handles_every_escape() {
        assert_eq!(
            unescape(r"a\r\n\t\0\\\x41\xff").unwrap(),
            b"a\r\n\t\0\\A\xff".to_vec()
        );
        assert!(unescape(r"\q").unwrap_err().contains("unknown escape"));
        assert!(unescape(r"\x4").is_err());
        assert!(unescape("\\").is_err());
    }

    #[test]
    fn ssh_banner_rule_extracts_product_and_version() {
        let set = ProbeSet::embedded().unwrap();
        let hit = set
            .match_banner(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            .unwrap();
        assert_eq!(hit.service, "ssh");
        assert_eq!(hit.product.as_deref(), Some("OpenSSH"));
        assert_eq!(hit.version.as_deref(), Some("9.2p1"));
        assert_eq!(hit.auth, AuthStatus::Required);
        let hit = set.match_banner(b"SSH-2.0-dropbear_2022.83\r\n").unwrap();
        assert_eq!(hit.product.as_deref(), Some("dropbear"));
        assert_eq!(hit.version.as_deref(), Some("2022.83"));
    }

    #[test]
    fn mysql_and_mariadb_greetings() {
        let set = ProbeSet::embedded().unwrap();
        let mut g = vec![0x4a, 0, 0, 0, 0x0a];
        g.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0\x08\0\0\0abc");
        let hit = set.match_banner(&g).unwrap();
        assert_eq!(
            (
                hit.service.as_str(),
                hit.product.as_deref(),
                hit.version.as_deref()
            ),
            ("mysql", Some("MariaDB"), Some("10.11.6"))
        );
        let mut g = vec![0x4a, 0, 0, 0, 0x0a];
        g.extend_from_slice(b"8.0.36\0\xff\xfe");
        let hit = set.match_banner(&g).unwrap();
        assert_eq!(
            (hit.product.as_deref(), hit.version.as_deref()),
            (Some("MySQL"), Some("8.0.36"))
        );
    }

    #[test]
    fn telnet_ftp_smtp_vnc_banners() {
        let set = ProbeSet::embedded().unwrap();
        assert_eq!(
            set.match_banner(b"\xff\xfd\x18\xff\xfd\x20")
                .unwrap()
                .service,
            "telnet"
        );
        let ftp = set.match_banner(b"220 (vsFTPd 3.0.3)\r\n").unwrap();
        assert_eq!(
            (
                ftp.service.as_str(),
                ftp.product.as_deref(),
                ftp.version.as_deref()
            ),
            ("ftp", Some("vsFTPd"), Some("3.0.3"))
        );
        let smtp = set
            .match_banner(b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n")
            .unwrap();
        assert_eq!(
            (smtp.service.as_str(), smtp.product.as_deref()),
            ("smtp", Some("Postfix"))
        );
        let vnc = set.match_banner(b"RFB 003.008\n").unwrap();
        assert_eq!(
            (vnc.service.as_str(), vnc.version.as_deref()),
            ("vnc", Some("003.008"))
        );
        assert!(set.match_banner(b"hello there\r\n").is_none());
    }

    #[test]
    fn redis_and_memcached_probe_rules() {
        let set = ProbeSet::embedded().unwrap();
        let redis = set.probes.iter().find(|p| p.name == "redis").unwrap();
        let open = redis
            .match_response(b"+PONG\r\n$300\r\n# Server\r\nredis_version:7.0.15\r\n")
            .unwrap();
        assert_eq!(open.auth, AuthStatus::None);
        assert_eq!(open.version.as_deref(), Some("7.0.15"));
        let locked = redis
            .match_response(b"-NOAUTH Authentication required.\r\n")
            .unwrap();
        assert_eq!(locked.auth, AuthStatus::Required);
        let mc = set.probes.iter().find(|p| p.name == "memcached").unwrap();
        let hit = mc.match_response(b"VERSION 1.6.18\r\n").unwrap();
        assert_eq!(
            (hit.version.as_deref(), hit.auth),
            (Some("1.6.18"), AuthStatus::None)
        );
        assert!(mc.match_response(b"ERROR\r\n").is_none());
    }

    #[test]
    fn ordering_puts_registered_then_port_probes_first() {
        let set = ProbeSet::embedded().unwrap();
        let names: Vec<&str> = set
            .ordered(16379, Some("redis"))
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names[0], "redis");
        let names: Vec<&str> = set
            .ordered(11211, None)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names[0], "memcached");
        let names: Vec<&str> = set
            .ordered(1, None)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(&names[..2], &["http", "tls"]);
    }

    #[test]
    fn bad_files_name_the_entry() {
        let e = ProbeSet::parse("[[banner]]\nservice='x'\npattern='('\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.toml: banner #1 (service x): bad pattern"),
            "{e}"
        );
        let e = ProbeSet::parse("[[probe]]\nname='a'\nparser='nope'\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown parser 'nope'"), "{e}");
        let e = ProbeSet::parse("[[probe]]\nname='a'\npayload='x'\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs at least one"), "{e}");
        let p = ProbeSet::parse(
            "[[probe]]\nname='a'\npayload='GET {host}'\n[[probe.match]]\nservice='h'\npattern='^x'\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(
            p.probes[0].payload_for("example.org"),
            b"GET example.org".to_vec()
        );
    }

    /// Every `[[http]]` fingerprint against recorded responses
    /// (tests/fixtures/http): name, version, and what its unauthenticated
    /// request tells (`None`: the fixture shows the credentials prompt).
    #[test]
    fn http_fingerprints_match_recorded_responses() {
        macro_rules! fx {
            ($f:literal) => {
                &include_bytes!(concat!("../../tests/fixtures/http/", $f))[..]
            };
        }
        let set = ProbeSet::embedded().unwrap();
        /// (what, answer at the fingerprint's path, unauth answer, name,
        /// version, open without credentials?)
        type Case<'a> = (
            &'a str,
            &'a [u8],
            Option<&'a [u8]>,
            &'a str,
            Option<&'a str>,
            Option<bool>,
        );
        let cases: [Case; 11] = [
            (
                "couchdb",
                fx!("couchdb--.http"),
                Some(fx!("couchdb--_all_dbs.http")),
                "couchdb",
                Some("3.3.3"),
                Some(true),
            ),
            (
                "kibana",
                fx!("kibana--.http"),
                Some(fx!("kibana--api-status.http")),
                "kibana",
                None,
                Some(true),
            ),
            (
                "rabbitmq",
                fx!("rabbitmq--.http"),
                Some(fx!("rabbitmq--api-overview.http")),
                "rabbitmq-management",
                None,
                Some(false),
            ),
            (
                "jenkins",
                fx!("jenkins--.http"),
                Some(fx!("jenkins--api-json.http")),
                "jenkins",
                Some("2.426.1"),
                Some(false),
            ),
            (
                "minio",
                fx!("minio--.http"),
                Some(fx!("minio--.http")),
                "minio",
                None,
                Some(false),
            ),
            (
                "grafana",
                fx!("grafana--api-health.http"),
                Some(fx!("grafana--api-search.http")),
                "grafana",
                Some("10.2.3"),
                Some(false),
            ),
            (
                "etcd",
                fx!("etcd--version.http"),
                Some(fx!("etcd--v2-keys.http")),
                "etcd",
                Some("3.4.23"),
                None,
            ),
            (
                "influxdb",
                fx!("influxdb--ping.http"),
                Some(fx!("influxdb--query.http")),
                "influxdb",
                Some("1.6.7~rc0"),
                Some(true),
            ),
            (
                "consul",
                fx!("consul--v1-agent-self.http"),
                Some(fx!("consul--v1-agent-self.http")),
                "consul",
                Some("1.17.1"),
                Some(true),
            ),
            (
                "prometheus",
                fx!("prometheus--healthy.http"),
                Some(fx!("prometheus--api-v1-status-config.http")),
                "prometheus",
                None,
                Some(true),
            ),
            (
                "hadoop",
                fx!("hadoop--jmx.http"),
                Some(fx!("hadoop--jmx.http")),
                "hadoop-namenode-ui",
                Some("3.3.6"),
                Some(true),
            ),
        ];
        for (what, raw, unauth, name, version, open) in cases {
            let (fp, hit) = set
                .http
                .iter()
                .find_map(|fp| fp.rule.apply(raw).map(|h| (fp, h)))
                .unwrap_or_else(|| panic!("{what}: no fingerprint matches"));
            assert_eq!(hit.service, name, "{what}");
            assert_eq!(hit.version.as_deref(), version, "{what}");
            if let (Some(u), Some(re)) = (unauth, &fp.unauth) {
                assert_eq!(
                    Some(re.is_match(u)),
                    open.filter(|o| *o).or(Some(false)),
                    "{what}"
                );
                if open == Some(false) {
                    let status = crate::identify::http_status(u);
                    assert!(matches!(status, Some(401 | 403)), "{what}: {status:?}");
                }
            }
        }
        // A plain web page matches none of them.
        let nginx = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 5\r\n\r\nhello";
        assert!(set.http.iter().all(|fp| fp.rule.apply(nginx).is_none()));
    }

    #[test]
    fn http_fingerprint_errors_name_the_entry() {
        let e = ProbeSet::parse(
            "[[http]]\nservice = \"x\"\npattern = \"a\"\nunauth_path = \"/a\"\n",
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "p.toml: http #1 (service x): give unauth_path and unauth_pattern together"
        );
        let e = ProbeSet::parse(
            "[[http]]\nservice = \"x\"\npath = \"a b\"\npattern = \"a\"\n",
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("paths start with '/'"), "{e}");
    }
}
