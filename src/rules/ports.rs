//! Rules layer: the port catalogue (`rules/ports.toml`).
//!
//! The catalogue says what usually listens on a port, how risky it is to
//! expose, which vendor lists flag it, and which named port sets exist
//! (`common`, `high-risk`, plus one set per tag). Port specs, identification
//! (`unexpected` service), policy findings and remediation text all read it,
//! so it is validated strictly at load time: every problem is reported with
//! the file, line and column the operator has to fix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::RulesError;
use crate::model::{Proto, Severity};

/// File name of the catalogue inside a rules directory.
pub const FILE_NAME: &str = "ports.toml";

pub(crate) const EMBEDDED_TEXT: &str = include_str!("../../rules/ports.toml");
pub(crate) const EMBEDDED_ORIGIN: &str = "<embedded>/ports.toml";

/// What the catalogue knows about one (port, protocol).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortEntry {
    pub port: u16,
    pub proto: Proto,
    /// Lowercase service name (`ssh`, `redis`, …): the vocabulary of
    /// [`crate::model::ServiceInfo::name`].
    pub service: String,
    pub description: String,
    pub risk: Severity,
    /// Why exposing it is risky; always present for high and critical.
    pub why: Option<String>,
    /// Lists that name the port as risky (`prowler`, `cncert`, …).
    pub sources: Vec<String>,
    pub tags: Vec<String>,
    /// The Linux unit that usually provides the service, for remediation.
    pub systemd_unit: Option<String>,
    /// Other names the service answers to in port specs.
    pub aliases: Vec<String>,
}

impl PortEntry {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// True when `name` is the service name or one of its aliases
    /// (case-insensitive).
    pub fn answers_to(&self, name: &str) -> bool {
        self.service.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// A port set declared in the catalogue's `[sets.NAME]` tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedSet {
    pub name: String,
    pub description: String,
    pub proto: Proto,
    /// Sorted, de-duplicated.
    pub ports: Vec<u16>,
}

/// The loaded, validated port catalogue.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    origin: String,
    /// Sorted by (port, proto).
    entries: Vec<PortEntry>,
    by_key: HashMap<(u16, Proto), usize>,
    /// Lowercase service name or alias → indices into `entries`.
    by_name: HashMap<String, Vec<usize>>,
    sets: BTreeMap<String, NamedSet>,
    /// The ranked UDP list (`top-udp.txt`), most important first; port
    /// specs select its head with `top-udp:N`. Attached by the rulebook.
    top_udp: Vec<u16>,
    /// The ranked TCP list (`top-tcp.txt`): `top-tcp:N`, `--top-ports N`.
    top_tcp: Vec<u16>,
}

// ---- file format -----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    port: Vec<RawEntry>,
    #[serde(default)]
    sets: BTreeMap<String, Spanned<RawSet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    port: Spanned<u16>,
    proto: Proto,
    service: Spanned<String>,
    description: String,
    risk: Severity,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    #[serde(default)]
    systemd_unit: Option<Spanned<String>>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    #[serde(default)]
    description: String,
    #[serde(default = "default_set_proto")]
    proto: Proto,
    ports: Vec<Spanned<RawItem>>,
}

fn default_set_proto() -> Proto {
    Proto::Tcp
}

/// A set item: `22` or `"8000-8100"` (or `"22"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawItem {
    Number(i64),
    Text(String),
}

// ---- loading ---------------------------------------------------------------

impl Catalogue {
    /// The catalogue built into the binary, parsed once per process.
    pub fn embedded() -> Catalogue {
        Catalogue::embedded_ref().clone()
    }

    /// The built-in catalogue without copying it.
    pub fn embedded_ref() -> &'static Catalogue {
        static EMBEDDED: OnceLock<Catalogue> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            // Cannot fail at run time: `embedded_catalogue_parses` checks
            // this exact text at test time.
            Catalogue::from_toml_str(EMBEDDED_TEXT, EMBEDDED_ORIGIN)
                .unwrap_or_else(|e| panic!("built-in port catalogue is invalid: {e}"))
                .with_top_udp(super::top_udp::embedded().to_vec())
                .with_top_tcp(super::top_udp::embedded_tcp().to_vec())
        })
    }

    /// Parses and validates catalogue text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Catalogue, RulesError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| RulesError::from_toml(origin, text, &e))?;
        let err = |offset: usize, msg: String| RulesError::at(origin, text, offset, msg);

        let mut entries: Vec<(PortEntry, usize)> = Vec::with_capacity(raw.port.len());
        let mut first_seen: HashMap<(u16, Proto), usize> = HashMap::new();
        // Tags and set names share the spec namespace with service names;
        // their positions are kept to report a clash after all entries are in.
        let mut spec_names_at: Vec<(String, &'static str, usize)> = Vec::new();
        for r in raw.port {
            let at = r.port.span().start;
            let port = *r.port.get_ref();
            if port == 0 {
                return Err(err(at, "port 0 is not a valid port (use 1-65535)".into()));
            }
            if let Some(prev) = first_seen.insert((port, r.proto), at) {
                let (line, _) = super::line_col(text, prev);
                return Err(err(
                    at,
                    format!(
                        "duplicate entry for {port}/{} (first defined at line {line}); keep one",
                        r.proto
                    ),
                ));
            }
            let service = checked_name(r.service, "service name", &err)?;
            let aliases = r
                .aliases
                .into_iter()
                .map(|a| checked_name(a, "alias", &err))
                .collect::<Result<Vec<_>, _>>()?;
            let tags = r
                .tags
                .into_iter()
                .map(|t| {
                    let at = t.span().start;
                    let t = checked_name(t, "tag", &err)?;
                    spec_names_at.push((t.clone(), "tag", at));
                    Ok(t)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sources = r
                .sources
                .into_iter()
                .map(|s| checked_name(s, "source", &err))
                .collect::<Result<Vec<_>, _>>()?;
            let systemd_unit = r.systemd_unit.map(|u| systemd_unit(u, &err)).transpose()?;
            let why = r.why.filter(|w| !w.trim().is_empty());
            if r.risk >= Severity::High && why.is_none() {
                return Err(err(
                    at,
                    format!(
                        "{port}/{} ({service}) has risk {} but no `why`: say why exposing it is risky",
                        r.proto, r.risk
                    ),
                ));
            }
            entries.push((
                PortEntry {
                    port,
                    proto: r.proto,
                    service,
                    description: r.description,
                    risk: r.risk,
                    why,
                    sources,
                    tags,
                    systemd_unit,
                    aliases,
                },
                at,
            ));
        }
        entries.sort_by_key(|(e, _)| (e.port, e.proto));
        let entries: Vec<PortEntry> = entries.into_iter().map(|(e, _)| e).collect();

        let mut sets = BTreeMap::new();
        for (name, set) in raw.sets {
            let at = set.span().start;
            let name = name.to_ascii_lowercase();
            if !is_spec_name(&name) {
                return Err(err(
                    at,
                    format!(
                        "set name '{name}' must use a-z, 0-9, '-', '_' or '.', contain a letter, and not be 'all'"
                    ),
                ));
            }
            if sets.contains_key(&name) {
                return Err(err(
                    at,
                    format!("set '{name}' is defined twice (set names ignore case)"),
                ));
            }
            spec_names_at.push((name.clone(), "set name", at));
            let set = set.into_inner();
            let mut ports = set_ports(&name, set.ports, &err)?;
            ports.sort_unstable();
            ports.dedup();
            if ports.is_empty() {
                return Err(err(at, format!("set '{name}' has no ports")));
            }
            sets.insert(
                name.clone(),
                NamedSet {
                    name,
                    description: set.description,
                    proto: set.proto,
                    ports,
                },
            );
        }

        let mut by_key = HashMap::with_capacity(entries.len());
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_key.insert((e.port, e.proto), i);
            let mut names: BTreeSet<&str> = BTreeSet::new();
            names.insert(&e.service);
            names.extend(e.aliases.iter().map(String::as_str));
            for n in names {
                by_name.entry(n.to_string()).or_default().push(i);
            }
        }

        for (name, what, at) in &spec_names_at {
            if let Some(ix) = by_name.get(name) {
                let e = &entries[ix[0]];
                return Err(err(
                    *at,
                    format!(
                        "{what} '{name}' is also a service name ({}/{}); port specs could not tell them apart: rename one",
                        e.port, e.proto
                    ),
                ));
            }
        }

        Ok(Catalogue {
            origin: origin.to_string(),
            entries,
            by_key,
            by_name,
            sets,
            top_udp: Vec::new(),
            top_tcp: Vec::new(),
        })
    }

    /// The catalogue with `list` as its ranked UDP list (see
    /// [`super::top_udp`]).
    pub fn with_top_udp(mut self, list: Vec<u16>) -> Catalogue {
        self.top_udp = list;
        self
    }

    /// The ranked UDP list, most important first (empty when none was
    /// attached).
    pub fn top_udp(&self) -> &[u16] {
        &self.top_udp
    }

    /// The catalogue with `list` as its ranked TCP list.
    pub fn with_top_tcp(mut self, list: Vec<u16>) -> Catalogue {
        self.top_tcp = list;
        self
    }

    /// The ranked TCP list, most important first (empty when none was
    /// attached).
    pub fn top_tcp(&self) -> &[u16] {
        &self.top_tcp
    }

    // ---- lookups -----------------------------------------------------------

    /// Where the catalogue came from (a path, or `<embedded>/ports.toml`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// All entries, sorted by (port, proto).
    pub fn entries(&self) -> &[PortEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entry(&self, port: u16, proto: Proto) -> Option<&PortEntry> {
        self.by_key.get(&(port, proto)).map(|&i| &self.entries[i])
    }

    /// Entries whose service name or alias is `name` (case-insensitive),
    /// sorted by (port, proto).
    pub fn by_service(&self, name: &str) -> Vec<&PortEntry> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|ix| ix.iter().map(|&i| &self.entries[i]).collect())
            .unwrap_or_default()
    }

    /// A set declared in the file (not the tag-derived ones).
    pub fn named_set(&self, name: &str) -> Option<&NamedSet> {
        self.sets.get(&name.to_ascii_lowercase())
    }

    /// The ports of a set: a declared set first, otherwise a tag, which
    /// stands for every TCP port carrying it. `None` when neither exists.
    /// Declared sets may be UDP (see [`Catalogue::named_set`]).
    pub fn set(&self, name: &str) -> Option<Vec<u16>> {
        if let Some(s) = self.named_set(name) {
            return Some(s.ports.clone());
        }
        let mut found = false;
        let mut ports = Vec::new();
        for e in &self.entries {
            if e.has_tag(name) {
                found = true;
                if e.proto == Proto::Tcp {
                    ports.push(e.port);
                }
            }
        }
        // Entries are sorted by (port, proto), so TCP ports come out sorted
        // and unique.
        found.then_some(ports)
    }

    /// Every name [`Catalogue::set`] accepts: declared sets and tags, sorted.
    pub fn set_names(&self) -> Vec<&str> {
        let mut names: BTreeSet<&str> = self.sets.keys().map(String::as_str).collect();
        names.extend(self.tags());
        names.into_iter().collect()
    }

    /// Every tag used by an entry, sorted.
    pub fn tags(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self
            .entries
            .iter()
            .flat_map(|e| e.tags.iter().map(String::as_str))
            .collect();
        names.into_iter().collect()
    }

    /// Every service name and alias, lowercase, sorted.
    pub fn service_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// The ports of a named set: numbers and "lo-hi" ranges, each within
/// 1-65535 (unsorted, with repeats).
fn set_ports(
    name: &str,
    items: Vec<Spanned<RawItem>>,
    err: &impl Fn(usize, String) -> RulesError,
) -> Result<Vec<u16>, RulesError> {
    let mut ports = Vec::with_capacity(items.len());
    for item in items {
        let at = item.span().start;
        match item.into_inner() {
            RawItem::Number(n) => match u16::try_from(n) {
                Ok(p) if p != 0 => ports.push(p),
                _ => {
                    return Err(err(
                        at,
                        format!("set '{name}': port {n} is outside 1-65535"),
                    ));
                }
            },
            RawItem::Text(t) => match parse_range(&t) {
                Some((lo, hi)) => ports.extend(lo..=hi),
                None => {
                    return Err(err(
                        at,
                        format!(
                            "set '{name}': cannot read '{t}' (expected a port 1-65535 or a range like \"8000-8100\", low first)"
                        ),
                    ));
                }
            },
        }
    }
    Ok(ports)
}

/// A systemd unit name: letters, digits and `-_.@:` only.
fn systemd_unit(
    u: Spanned<String>,
    err: &impl Fn(usize, String) -> RulesError,
) -> Result<String, RulesError> {
    let ok = !u.get_ref().is_empty()
        && u.get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'));
    if !ok {
        return Err(err(
            u.span().start,
            format!("invalid systemd unit name '{}'", u.get_ref()),
        ));
    }
    Ok(u.into_inner())
}

/// Validates a name that can appear in a port spec (service, alias, tag,
/// source) and lowercases nothing: the file must already be lowercase so
/// that what the operator reads in it is what they type.
fn checked_name(
    name: Spanned<String>,
    what: &str,
    err: &impl Fn(usize, String) -> RulesError,
) -> Result<String, RulesError> {
    if is_spec_name(name.get_ref()) {
        Ok(name.into_inner())
    } else {
        Err(err(
            name.span().start,
            format!(
                "invalid {what} '{}': use lowercase a-z, 0-9, '-', '_' or '.', with at least one letter (and not 'all')",
                name.get_ref()
            ),
        ))
    }
}

/// Names must not be mistaken for a port or a range in a spec, hence the
/// letter requirement, and `all` is the spec keyword for every port.
fn is_spec_name(s: &str) -> bool {
    !s.is_empty()
        && s != "all"
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// `"22"` or `"8000-8100"` (1-65535, low first).
fn parse_range(s: &str) -> Option<(u16, u16)> {
    let port = |t: &str| -> Option<u16> {
        let t = t.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse::<u16>().ok().filter(|&p| p != 0)
    };
    match s.split_once('-') {
        None => port(s).map(|p| (p, p)),
        Some((a, b)) => {
            let (lo, hi) = (port(a)?, port(b)?);
            (lo <= hi).then_some((lo, hi))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TCP ports of research §2 (the merged vendor list plus our additions).
    const RESEARCH_TCP: &[u16] = &[
        20, 21, 22, 23, 25, 110, 143, 42, 88, 135, 593, 137, 138, 139, 389, 636, 444, 445, 1025,
        1026, 1027, 1028, 1068, 1433, 1434, 1521, 2483, 2484, 3000, 5000, 8080, 8088, 3127, 3128,
        3129, 3130, 4444, 5554, 9996, 3306, 3389, 4333, 5500, 5432, 5601, 5800, 5900, 5984, 6379,
        7000, 7001, 7199, 9042, 9160, 8888, 9092, 9200, 9300, 11211, 27017, 27018, 2375, 2376,
        2379, 2380, 10250, 8020, 50070, 8086, 2181, 5672, 15672,
    ];
    const RESEARCH_UDP: &[u16] = &[161, 123, 1900, 11211, 137, 138];

    fn cat() -> &'static Catalogue {
        Catalogue::embedded_ref()
    }

    fn parse_err(text: &str) -> String {
        Catalogue::from_toml_str(text, "t/ports.toml")
            .unwrap_err()
            .to_string()
    }

    const ONE: &str = r#"
[[port]]
port = 22
proto = "tcp"
service = "ssh"
description = "Secure Shell"
risk = "high"
why = "remote admin"
tags = ["remote-admin"]
aliases = ["SFTP-x"]
"#;

    #[test]
    fn embedded_catalogue_parses() {
        let c = Catalogue::from_toml_str(EMBEDDED_TEXT, EMBEDDED_ORIGIN).unwrap();
        assert!(c.len() >= 300, "only {} entries", c.len());
        assert_eq!(c.origin(), "<embedded>/ports.toml");
    }

    #[test]
    fn research_ports_are_catalogued_and_high_risk() {
        let high = cat().set("high-risk").unwrap();
        for &p in RESEARCH_TCP {
            assert!(high.contains(&p), "{p}/tcp missing from high-risk");
            let e = cat()
                .entry(p, Proto::Tcp)
                .unwrap_or_else(|| panic!("{p}/tcp"));
            assert!(e.risk >= Severity::High, "{p}/tcp is only {}", e.risk);
        }
        let mut expected: Vec<u16> = RESEARCH_TCP.to_vec();
        expected.sort_unstable();
        assert_eq!(high, expected);
        let udp = cat().named_set("high-risk-udp").unwrap();
        assert_eq!(udp.proto, Proto::Udp);
        for &p in RESEARCH_UDP {
            assert!(udp.ports.contains(&p));
            let e = cat()
                .entry(p, Proto::Udp)
                .unwrap_or_else(|| panic!("{p}/udp"));
            assert!(e.risk >= Severity::High, "{p}/udp is only {}", e.risk);
        }
    }

    #[test]
    fn common_set_size_and_contents() {
        let common = cat().set("common").unwrap();
        assert!((990..=1010).contains(&common.len()), "{}", common.len());
        for p in cat().set("high-risk").unwrap() {
            assert!(common.contains(&p), "common lacks high-risk {p}");
        }
        for p in [6379, 27017, 11211, 2375, 9092, 5601, 2379, 10250, 80, 443] {
            assert!(common.contains(&p), "common lacks {p}");
        }
        for e in cat().entries().iter().filter(|e| e.proto == Proto::Tcp) {
            assert!(
                common.contains(&e.port),
                "common lacks catalogued {}",
                e.port
            );
        }
    }

    #[test]
    fn lookups() {
        let ssh = cat().entry(22, Proto::Tcp).unwrap();
        assert_eq!(ssh.service, "ssh");
        assert_eq!(ssh.systemd_unit.as_deref(), Some("ssh"));
        assert_eq!(
            cat()
                .entry(6379, Proto::Tcp)
                .unwrap()
                .systemd_unit
                .as_deref(),
            Some("redis-server")
        );
        assert!(cat().entry(22, Proto::Udp).is_none());
        let redis: Vec<u16> = cat().by_service("REDIS").iter().map(|e| e.port).collect();
        assert_eq!(redis, vec![6379]);
        // Alias lookup.
        let smb: Vec<(u16, Proto)> = cat()
            .by_service("microsoft-ds")
            .iter()
            .map(|e| (e.port, e.proto))
            .collect();
        assert_eq!(smb, vec![(445, Proto::Tcp)]);
        let snmp: Vec<(u16, Proto)> = cat()
            .by_service("snmp")
            .iter()
            .map(|e| (e.port, e.proto))
            .collect();
        assert_eq!(snmp, vec![(161, Proto::Udp)]);
        assert!(cat().by_service("nope").is_empty());
        assert!(cat().service_names().contains(&"postgres"));
    }

    #[test]
    fn tags_are_sets() {
        let db = cat().set("database").unwrap();
        assert!(db.contains(&3306) && db.contains(&5432) && db.contains(&27017));
        assert!(!db.contains(&22));
        let mut sorted = db.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, db);
        let names = cat().set_names();
        for n in ["common", "high-risk", "web", "database", "remote-admin"] {
            assert!(names.contains(&n), "{n}");
        }
        assert!(cat().set("no-such-set").is_none());
    }

    #[test]
    fn small_file_parses_and_aliases_are_case_insensitive() {
        let err = parse_err(ONE);
        // Aliases must be lowercase in the file.
        assert_eq!(
            err,
            "t/ports.toml:10:12: invalid alias 'SFTP-x': use lowercase a-z, 0-9, '-', '_' or '.', with at least one letter (and not 'all')"
        );
        let c = Catalogue::from_toml_str(&ONE.replace("SFTP-x", "sftp-x"), "t").unwrap();
        assert_eq!(c.by_service("SFTP-X").len(), 1);
        assert_eq!(c.set("remote-admin"), Some(vec![22]));
    }

    #[test]
    fn unknown_key_is_reported_with_line() {
        let err = parse_err(&ONE.replace("why =", "whyy ="));
        assert!(
            err.starts_with("t/ports.toml:8:1: unknown field `whyy`"),
            "{err}"
        );
    }

    #[test]
    fn risk_typo_is_reported_with_line() {
        let err = parse_err(&ONE.replace("\"high\"", "\"hihg\""));
        assert!(
            err.starts_with("t/ports.toml:7:8: unknown variant `hihg`"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_entry_is_rejected() {
        let text = ONE.replace("SFTP-x", "sftp") + &ONE.replace("SFTP-x", "sftp2");
        let err = parse_err(&text);
        assert_eq!(
            err,
            "t/ports.toml:13:8: duplicate entry for 22/tcp (first defined at line 3); keep one"
        );
    }

    #[test]
    fn high_risk_needs_why() {
        let err = parse_err(
            &ONE.replace("SFTP-x", "sftp")
                .replace("why = \"remote admin\"\n", ""),
        );
        assert_eq!(
            err,
            "t/ports.toml:3:8: 22/tcp (ssh) has risk high but no `why`: say why exposing it is risky"
        );
    }

    #[test]
    fn bad_port_numbers_are_rejected() {
        let err = parse_err(&ONE.replace("port = 22", "port = 70000"));
        assert!(err.starts_with("t/ports.toml:3:8: "), "{err}");
        let err = parse_err(&ONE.replace("port = 22", "port = 0"));
        assert_eq!(
            err,
            "t/ports.toml:3:8: port 0 is not a valid port (use 1-65535)"
        );
    }

    #[test]
    fn set_with_unparsable_port_is_rejected() {
        let text = "[sets.mine]\nports = [22, \"80-\", 443]\n";
        assert_eq!(
            parse_err(text),
            "t/ports.toml:2:14: set 'mine': cannot read '80-' (expected a port 1-65535 or a range like \"8000-8100\", low first)"
        );
        let text = "[sets.mine]\nports = [22, 70000]\n";
        assert_eq!(
            parse_err(text),
            "t/ports.toml:2:14: set 'mine': port 70000 is outside 1-65535"
        );
        let text = "[sets.mine]\nports = [\"100-10\"]\n";
        assert!(parse_err(text).contains("cannot read '100-10'"));
    }

    #[test]
    fn names_must_not_clash_with_services() {
        let base = ONE.replace("SFTP-x", "sftp");
        let err = parse_err(&base.replace("tags = [\"remote-admin\"]", "tags = [\"sftp\"]"));
        assert_eq!(
            err,
            "t/ports.toml:9:9: tag 'sftp' is also a service name (22/tcp); port specs could not tell them apart: rename one"
        );
        let err = parse_err(&format!("{base}\n[sets.ssh]\nports = [22]\n"));
        assert!(
            err.starts_with("t/ports.toml:12:1: set name 'ssh' is also a service name (22/tcp)"),
            "{err}"
        );
        let err = parse_err("[sets.a]\nports = [1]\n[sets.A]\nports = [2]\n");
        assert!(err.contains("set 'a' is defined twice"), "{err}");
    }

    #[test]
    fn sets_accept_numbers_and_ranges() {
        let text = "[sets.Mine]\ndescription = \"d\"\nports = [\"10-12\", 11, \"5\"]\n";
        let c = Catalogue::from_toml_str(text, "t").unwrap();
        assert_eq!(c.set("mine"), Some(vec![5, 10, 11, 12]));
        assert_eq!(c.named_set("MINE").unwrap().proto, Proto::Tcp);
        assert_eq!(c.set_names(), vec!["mine"]);
    }

    #[test]
    fn a_rules_directory_catalogue_error_names_its_file_line_and_column() {
        let dir = std::env::temp_dir().join(format!("pw-rules-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), "[[port]]\nport = \"x\"\n").unwrap();
        let err = crate::rules::Rules::load(Some(&dir))
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.starts_with(&format!("{}:2:8: ", dir.join(FILE_NAME).display())),
            "{err}"
        );
    }

    #[test]
    fn parse_range_cases() {
        assert_eq!(parse_range("22"), Some((22, 22)));
        assert_eq!(parse_range(" 1-3 "), Some((1, 3)));
        assert_eq!(parse_range("0"), None);
        assert_eq!(parse_range("3-1"), None);
        assert_eq!(parse_range("1-65536"), None);
        assert_eq!(parse_range("a"), None);
        assert_eq!(parse_range("+5"), None);
    }
}
