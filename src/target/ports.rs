//! Target layer: port specs. Turns what the operator typed after `--ports`
//! (`22,80,443`, `1-1024`, `-`/`all`, open ranges `-1024` and `60000-`,
//! service names such as `ssh`, named sets such as `common` or `high-risk`,
//! catalogue tags such as `database`, or any mix) into the sorted
//! (port, protocol) lists the scan engines iterate. Protocols are chosen
//! nmap's way (`U:53,161,T:22`: a prefix holds until the next one) or per
//! item (`53/udp`, `snmp/udp`); without either an item means TCP, except
//! a name the catalogue knows only over UDP (`snmp`, `high-risk-udp`),
//! which keeps its protocol. Names are resolved through the port
//! catalogue, so a `--rules` override changes what `common` means too.
//! Every error quotes the offending item; an unknown name comes with the
//! closest names the catalogue knows.

use crate::model::Proto;
use crate::rules::Catalogue;

/// Why a port spec was rejected. Each variant quotes what the operator typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSpecError {
    #[error(
        "empty port spec: give ports (22,80), ranges (1-1024), service names (ssh), sets (common, high-risk), UDP ports (53/udp, U:53,161) or 'all'"
    )]
    Empty,
    #[error("empty item in port spec '{spec}': remove the doubled or trailing comma")]
    EmptyItem { spec: String },
    #[error("port 0 in '{item}' is not a valid port: ports are 1-65535")]
    ZeroPort { item: String },
    #[error("port in '{item}' is above 65535")]
    OutOfRange { item: String },
    #[error("reversed port range '{item}': write the lower port first ({lo}-{hi})")]
    Reversed { item: String, lo: u16, hi: u16 },
    #[error("cannot read port range '{item}': expected forms like 22, 1-1024, -1024 or 60000-")]
    Malformed { item: String },
    #[error("unknown port name '{name}' ({})", suggestion_text(suggestions))]
    UnknownName {
        name: String,
        suggestions: Vec<String>,
    },
    #[error(
        "unknown protocol in '{item}': write /tcp or /udp after a port (53/udp), or T: / U: before a list (U:53,161,T:22)"
    )]
    BadProto { item: String },
    #[error(
        "'{item}': the {proto} top list has {max} ports; select 1 to {max} of them ({list}:100), or all with {list}",
        proto = proto.to_string().to_uppercase(),
        list = top_name(*proto)
    )]
    TopCount {
        item: String,
        max: usize,
        proto: Proto,
    },
    #[error("'{name}' names no {proto} ports in the catalogue ({others})")]
    WrongProto {
        name: String,
        proto: Proto,
        others: String,
    },
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "use a port number, a range, a service name or a set such as 'common' or 'high-risk'"
            .to_string()
    } else {
        format!("did you mean: {}?", suggestions.join(", "))
    }
}

/// A non-empty set of (port, protocol) pairs: sorted, de-duplicated TCP
/// ports and UDP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet {
    tcp: Vec<u16>,
    udp: Vec<u16>,
}

impl PortSet {
    /// Parses a comma-separated port spec. Items may be mixed
    /// (`ssh,8000-8100,high-risk,U:53,161`) and surrounded by spaces. A
    /// name is looked up as a declared set, then as a service name or
    /// alias, then as a catalogue tag.
    pub fn parse(spec: &str, catalogue: &Catalogue) -> Result<PortSet, PortSpecError> {
        if spec.trim().is_empty() {
            return Err(PortSpecError::Empty);
        }
        // Bitmaps keep `all` (65,535 ports) and overlapping items cheap.
        let mut tcp = vec![false; 65536];
        let mut udp = vec![false; 65536];
        // The protocol a `T:` / `U:` prefix selected; `None` = the default.
        let mut mode: Option<Proto> = None;
        for raw in spec.split(',') {
            let mut item = raw.trim();
            if item.is_empty() {
                return Err(PortSpecError::EmptyItem {
                    spec: spec.to_string(),
                });
            }
            if let Some((prefix, rest)) = item.split_once(':')
                && !is_top_list(prefix)
            {
                mode = Some(match prefix.trim().to_ascii_lowercase().as_str() {
                    "t" | "tcp" => Proto::Tcp,
                    "u" | "udp" => Proto::Udp,
                    _ => {
                        return Err(PortSpecError::BadProto {
                            item: item.to_string(),
                        });
                    }
                });
                item = rest.trim();
                if item.is_empty() {
                    return Err(PortSpecError::EmptyItem {
                        spec: spec.to_string(),
                    });
                }
            }
            let mut proto = mode;
            if let Some((body, suffix)) = item.rsplit_once('/') {
                proto =
                    Some(
                        suffix
                            .trim()
                            .parse::<Proto>()
                            .map_err(|_| PortSpecError::BadProto {
                                item: item.to_string(),
                            })?,
                    );
                item = body.trim();
            }
            let looks_numeric = !item.is_empty()
                && item
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c.is_whitespace());
            if looks_numeric {
                let (lo, hi) = parse_numeric(item)?;
                let map = match proto {
                    Some(Proto::Udp) => &mut udp,
                    _ => &mut tcp,
                };
                map[usize::from(lo)..=usize::from(hi)].fill(true);
            } else {
                let (p, ports) = resolve_name(item, proto, catalogue)?;
                let map = match p {
                    Proto::Udp => &mut udp,
                    Proto::Tcp => &mut tcp,
                };
                for port in ports {
                    map[usize::from(port)] = true;
                }
            }
        }
        let pick = |m: &[bool]| (1..=u16::MAX).filter(|&p| m[usize::from(p)]).collect();
        let set = PortSet {
            tcp: pick(&tcp),
            udp: pick(&udp),
        };
        if set.is_empty() {
            return Err(PortSpecError::Empty);
        }
        Ok(set)
    }

    /// A TCP-only set.
    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> PortSet {
        PortSet::from_pairs(ports.into_iter().map(|p| (p, Proto::Tcp)))
    }

    /// A set of (port, protocol) pairs in any order.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u16, Proto)>) -> PortSet {
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for (port, proto) in pairs {
            match proto {
                Proto::Tcp => tcp.push(port),
                Proto::Udp => udp.push(port),
            }
        }
        for v in [&mut tcp, &mut udp] {
            v.sort_unstable();
            v.dedup();
        }
        PortSet { tcp, udp }
    }

    /// The union of two sets.
    pub fn union(&self, other: &PortSet) -> PortSet {
        PortSet::from_pairs(self.pairs().chain(other.pairs()))
    }

    /// The TCP ports, sorted.
    pub fn tcp(&self) -> &[u16] {
        &self.tcp
    }

    /// The UDP ports, sorted.
    pub fn udp(&self) -> &[u16] {
        &self.udp
    }

    /// The ports of one protocol, sorted.
    pub fn ports(&self, proto: Proto) -> &[u16] {
        match proto {
            Proto::Tcp => &self.tcp,
            Proto::Udp => &self.udp,
        }
    }

    /// Every (port, protocol) pair: TCP first, each sorted by port.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, Proto)> + '_ {
        let tcp = self.tcp.iter().map(|&p| (p, Proto::Tcp));
        tcp.chain(self.udp.iter().map(|&p| (p, Proto::Udp)))
    }

    /// The same set without its UDP ports.
    pub fn tcp_only(&self) -> PortSet {
        PortSet {
            tcp: self.tcp.clone(),
            udp: Vec::new(),
        }
    }

    /// Number of (port, protocol) pairs.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }

    pub fn contains(&self, port: u16, proto: Proto) -> bool {
        self.ports(proto).binary_search(&port).is_ok()
    }
}

/// `22`, `1-1024`, `-1024` (from 1), `60000-` (to 65535), `-` (all).
fn parse_numeric(item: &str) -> Result<(u16, u16), PortSpecError> {
    let malformed = || PortSpecError::Malformed {
        item: item.to_string(),
    };
    let port = |text: &str, default: u16| -> Result<u16, PortSpecError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(default);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        // Any digit string longer than u32 is also out of range.
        match text.parse::<u32>() {
            Ok(0) => Err(PortSpecError::ZeroPort {
                item: item.to_string(),
            }),
            Ok(p) => u16::try_from(p).map_err(|_| PortSpecError::OutOfRange {
                item: item.to_string(),
            }),
            Err(_) => Err(PortSpecError::OutOfRange {
                item: item.to_string(),
            }),
        }
    };
    match item.split_once('-') {
        None => {
            if item.trim().is_empty() {
                return Err(malformed());
            }
            let p = port(item, 0)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            if b.contains('-') {
                return Err(malformed());
            }
            let lo = port(a, 1)?;
            let hi = port(b, u16::MAX)?;
            if lo > hi {
                return Err(PortSpecError::Reversed {
                    item: item.to_string(),
                    lo: hi,
                    hi: lo,
                });
            }
            Ok((lo, hi))
        }
    }
}

/// Resolves a name to one protocol's ports. `want` is the protocol the
/// operator asked for (`/udp`, `U:`); without one, TCP entries win and a
/// name known only over UDP keeps its protocol.
fn resolve_name(
    item: &str,
    want: Option<Proto>,
    catalogue: &Catalogue,
) -> Result<(Proto, Vec<u16>), PortSpecError> {
    let name = item.to_ascii_lowercase();
    if name == "all" {
        return Ok((want.unwrap_or(Proto::Tcp), (1..=u16::MAX).collect()));
    }
    for list in [Proto::Udp, Proto::Tcp] {
        if let Some(head) = top_list(item, &name, list, catalogue)? {
            if want.is_some_and(|w| w != list) {
                return Err(PortSpecError::WrongProto {
                    name: item.to_string(),
                    proto: want.unwrap_or(list),
                    others: format!("it is a list of {} ports", list.to_string().to_uppercase()),
                });
            }
            return Ok((list, head));
        }
    }
    // (proto, port) candidates the name stands for.
    let found: Vec<(Proto, u16)> = if let Some(set) = catalogue.named_set(&name) {
        set.ports.iter().map(|&p| (set.proto, p)).collect()
    } else {
        let entries = catalogue.by_service(&name);
        if !entries.is_empty() {
            entries.iter().map(|e| (e.proto, e.port)).collect()
        } else if catalogue.set(&name).is_some() {
            catalogue
                .entries()
                .iter()
                .filter(|e| e.has_tag(&name))
                .map(|e| (e.proto, e.port))
                .collect()
        } else {
            return Err(PortSpecError::UnknownName {
                name: item.to_string(),
                suggestions: closest_names(&name, catalogue),
            });
        }
    };
    let of = |p: Proto| -> Vec<u16> {
        let mut v: Vec<u16> = found
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, port)| *port)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let proto = match want {
        Some(p) => p,
        None if !of(Proto::Tcp).is_empty() => Proto::Tcp,
        None => Proto::Udp,
    };
    let ports = of(proto);
    if ports.is_empty() {
        return Err(PortSpecError::WrongProto {
            name: item.to_string(),
            proto,
            others: found
                .iter()
                .map(|(q, p)| format!("{p}/{q}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok((proto, ports))
}

/// `top-udp` or `top-tcp` as the name before a `:` (so `top-udp:100` is
/// not read as a protocol prefix).
fn is_top_list(prefix: &str) -> bool {
    let p = prefix.trim();
    p.eq_ignore_ascii_case(top_name(Proto::Udp)) || p.eq_ignore_ascii_case(top_name(Proto::Tcp))
}

/// The port-spec name of a protocol's ranked list.
fn top_name(proto: Proto) -> &'static str {
    match proto {
        Proto::Udp => "top-udp",
        Proto::Tcp => "top-tcp",
    }
}

/// `top-udp` / `top-tcp` (a whole ranked list) or `top-udp:N` (its first
/// N ports); `None` when `name` is neither.
fn top_list(
    item: &str,
    name: &str,
    proto: Proto,
    catalogue: &Catalogue,
) -> Result<Option<Vec<u16>>, PortSpecError> {
    let count = match name.strip_prefix(top_name(proto)) {
        Some("") => None,
        Some(rest) => match rest.strip_prefix(':') {
            Some(n) => Some(n.trim()),
            None => return Ok(None),
        },
        None => return Ok(None),
    };
    let list = match proto {
        Proto::Udp => catalogue.top_udp(),
        Proto::Tcp => catalogue.top_tcp(),
    };
    let bad = || PortSpecError::TopCount {
        item: item.to_string(),
        max: list.len(),
        proto,
    };
    let n = match count {
        None => list.len(),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=list.len()).contains(&n) => n,
            _ => return Err(bad()),
        },
    };
    if n == 0 {
        return Err(bad());
    }
    Ok(Some(list[..n].to_vec()))
}

/// Known service names close to `name` (a likely typo of one of them),
/// best first; empty when `name` is known or nothing is close.
pub fn similar_services(name: &str, catalogue: &Catalogue, also_known: &[&str]) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    if !catalogue.by_service(&lower).is_empty() || also_known.contains(&lower.as_str()) {
        return Vec::new();
    }
    let mut names: Vec<&str> = catalogue.service_names();
    names.extend(also_known);
    names.sort_unstable();
    names.dedup();
    let mut close: Vec<(usize, &str)> = names
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, c), c))
        .filter(|(d, c)| *d <= (lower.len().max(c.len()) / 4).max(1))
        .collect();
    close.sort_unstable();
    close
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Up to three known names that look like `name`, best first. Edit
/// distance catches typos (`shh`, `comon`); Jaro-Winkler catches
/// truncations and shared prefixes (`postgre`, `elastic`).
fn closest_names(name: &str, catalogue: &Catalogue) -> Vec<String> {
    // `top-100`, `top100`, `top_100`: nmap's habit of counting top ports.
    let digits = name
        .strip_prefix("top")
        .map(|r| r.trim_start_matches(['-', '_', ':']))
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()));
    if let Some(n) = digits {
        return vec![format!("top-tcp:{n}"), format!("top-udp:{n}")];
    }
    let mut candidates: Vec<&str> = catalogue.service_names();
    candidates.extend(catalogue.set_names());
    candidates.push("all");
    candidates.push(top_name(Proto::Udp));
    candidates.push(top_name(Proto::Tcp));
    candidates.sort_unstable();
    candidates.dedup();
    let mut scored: Vec<(usize, f64, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let dist = strsim::damerau_levenshtein(name, c);
            let sim = strsim::jaro_winkler(name, c);
            let close_edit = dist <= (name.len().max(c.len()) / 3).max(1);
            (close_edit || sim >= 0.88).then_some((dist, sim, c))
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(b.2)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, _, c)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static Catalogue {
        Catalogue::embedded_ref()
    }

    fn parse(spec: &str) -> Result<Vec<u16>, PortSpecError> {
        PortSet::parse(spec, cat()).map(|s| s.tcp().to_vec())
    }

    fn err(spec: &str) -> String {
        parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(parse("22,80,443").unwrap(), vec![22, 80, 443]);
        assert_eq!(parse(" 443 , 22,22 ,80").unwrap(), vec![22, 80, 443]);
        assert_eq!(parse("1-5").unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(parse("1-1024").unwrap().len(), 1024);
        assert_eq!(parse("8000 - 8002").unwrap(), vec![8000, 8001, 8002]);
        assert_eq!(parse("5-5").unwrap(), vec![5]);
        assert_eq!(parse("65535").unwrap(), vec![65535]);
    }

    #[test]
    fn all_and_open_ranges() {
        for spec in ["-", "all", "ALL", " - "] {
            let all = parse(spec).unwrap();
            assert_eq!(all.len(), 65535, "{spec}");
            assert_eq!((all[0], all[65534]), (1, 65535));
        }
        assert_eq!(parse("-3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse("65533-").unwrap(), vec![65533, 65534, 65535]);
    }

    #[test]
    fn names_sets_and_mixes() {
        assert_eq!(parse("ssh,https").unwrap(), vec![22, 443]);
        assert_eq!(parse("SSH").unwrap(), vec![22]);
        // Alias.
        assert_eq!(parse("postgres").unwrap(), vec![5432]);
        let high = cat().set("high-risk").unwrap();
        assert_eq!(parse("high-risk").unwrap(), high);
        let common = parse("common").unwrap();
        assert!((990..=1010).contains(&common.len()));
        let mixed = parse("ssh, 8000-8100 ,high-risk").unwrap();
        let mut expected: Vec<u16> = high.clone();
        expected.push(22);
        expected.extend(8000..=8100);
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(mixed, expected);
        // A tag is a set.
        let db = parse("database").unwrap();
        assert!(db.contains(&3306) && db.contains(&6379) && !db.contains(&22));
        // A service on several TCP ports gives all of them.
        assert_eq!(parse("vnc").unwrap(), vec![5900, 5901, 5902, 5903]);
    }

    #[test]
    fn bad_numbers_quote_the_item() {
        assert_eq!(
            err("22,0"),
            "port 0 in '0' is not a valid port: ports are 1-65535"
        );
        assert_eq!(
            err("0-10"),
            "port 0 in '0-10' is not a valid port: ports are 1-65535"
        );
        assert_eq!(err("65536"), "port in '65536' is above 65535");
        assert_eq!(
            err("1-99999999999999"),
            "port in '1-99999999999999' is above 65535"
        );
        assert_eq!(
            err("100-10"),
            "reversed port range '100-10': write the lower port first (10-100)"
        );
        assert_eq!(
            err("1-2-3"),
            "cannot read port range '1-2-3': expected forms like 22, 1-1024, -1024 or 60000-"
        );
        assert_eq!(
            err("80 443"),
            "cannot read port range '80 443': expected forms like 22, 1-1024, -1024 or 60000-"
        );
    }

    #[test]
    fn empty_items_are_errors() {
        assert_eq!(parse(""), Err(PortSpecError::Empty));
        assert_eq!(parse("  "), Err(PortSpecError::Empty));
        assert_eq!(
            err("22,,80"),
            "empty item in port spec '22,,80': remove the doubled or trailing comma"
        );
        assert!(matches!(parse("22,"), Err(PortSpecError::EmptyItem { .. })));
    }

    #[test]
    fn unknown_name_suggests_closest() {
        let e = parse("shh").unwrap_err();
        match &e {
            PortSpecError::UnknownName { name, suggestions } => {
                assert_eq!(name, "shh");
                assert_eq!(suggestions.first().map(String::as_str), Some("ssh"));
                assert!(suggestions.len() <= 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string()
                .starts_with("unknown port name 'shh' (did you mean: ssh"),
            "{e}"
        );
        let e = parse("comon").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown port name 'comon' (did you mean: common"),
            "{e}"
        );
        let e = parse("hihg-risk").unwrap_err().to_string();
        assert!(e.contains("did you mean: high-risk"), "{e}");
        assert_eq!(
            err("zzzzqqqq"),
            "unknown port name 'zzzzqqqq' (use a port number, a range, a service name or a set such as 'common' or 'high-risk')"
        );
    }

    fn pairs(spec: &str) -> Vec<(u16, Proto)> {
        PortSet::parse(spec, cat()).unwrap().pairs().collect()
    }

    #[test]
    fn udp_by_suffix_prefix_and_name() {
        use Proto::{Tcp, Udp};
        assert_eq!(pairs("53/udp"), vec![(53, Udp)]);
        assert_eq!(pairs("53/UDP,53/tcp"), vec![(53, Tcp), (53, Udp)]);
        assert_eq!(pairs("1-3/udp"), vec![(1, Udp), (2, Udp), (3, Udp)]);
        // nmap's form: a prefix holds until the next one.
        assert_eq!(
            pairs("U:53,161,T:22,80"),
            vec![(22, Tcp), (80, Tcp), (53, Udp), (161, Udp)]
        );
        assert_eq!(pairs("22,u:161"), vec![(22, Tcp), (161, Udp)]);
        // A name known only over UDP keeps its protocol.
        assert_eq!(pairs("snmp"), vec![(161, Udp)]);
        assert_eq!(pairs("dns/udp"), vec![(53, Udp)]);
        assert_eq!(pairs("U:dns"), vec![(53, Udp)]);
        let hr: Vec<(u16, Proto)> = cat()
            .named_set("high-risk-udp")
            .unwrap()
            .ports
            .iter()
            .map(|&p| (p, Udp))
            .collect();
        assert_eq!(pairs("high-risk-udp"), hr);
        assert!(hr.contains(&(161, Udp)) && hr.contains(&(11211, Udp)));
        // A name carries its protocols: asking for another one is an error.
        assert_eq!(
            PortSet::parse("ssh/udp", cat()).unwrap_err().to_string(),
            "'ssh' names no udp ports in the catalogue (22/tcp)"
        );
        let mixed = PortSet::parse("common,high-risk-udp", cat()).unwrap();
        assert_eq!(mixed.tcp(), cat().set("common").unwrap().as_slice());
        assert_eq!(mixed.udp().len(), hr.len());
        assert_eq!(mixed.len(), mixed.tcp().len() + hr.len());
        assert!(mixed.contains(161, Udp) && !mixed.contains(161, Tcp));
    }

    #[test]
    fn a_mistyped_service_gets_the_close_names() {
        assert_eq!(similar_services("modbsu", cat(), &[]), vec!["modbus"]);
        assert_eq!(similar_services("MODBUS", cat(), &[]), Vec::<String>::new());
        assert_eq!(
            similar_services("grafana", cat(), &["grafana"]),
            Vec::<String>::new()
        );
        assert_eq!(
            similar_services("my-own-daemon", cat(), &[]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn top_tcp_selects_the_head_of_the_ranked_tcp_list() {
        let top = cat().top_tcp();
        assert_eq!(top.len(), 1000);
        let head = PortSet::parse("top-tcp:10", cat()).unwrap();
        let mut want = top[..10].to_vec();
        want.sort_unstable();
        assert_eq!(head.tcp(), &want[..]);
        assert!(head.udp().is_empty());
        assert_eq!(PortSet::parse("top-tcp", cat()).unwrap().len(), 1000);
        assert_eq!(
            err("top-tcp:1001"),
            "'top-tcp:1001': the TCP top list has 1000 ports; select 1 to 1000 of them (top-tcp:100), or all with top-tcp"
        );
        assert!(
            PortSet::parse("U:top-tcp:5", cat())
                .unwrap_err()
                .to_string()
                .contains("it is a list of TCP ports")
        );
        for typo in ["top-100", "top100", "TOP_100"] {
            assert!(
                err(typo).contains("top-tcp:100") && err(typo).contains("top-udp:100"),
                "{typo}: {}",
                err(typo)
            );
        }
    }

    #[test]
    fn top_udp_selects_the_head_of_the_ranked_list() {
        use Proto::{Tcp, Udp};
        let top = cat().top_udp();
        assert_eq!(top.len(), 1000);
        let set = PortSet::parse("top-udp", cat()).unwrap();
        assert_eq!((set.udp().len(), set.tcp().len()), (1000, 0));
        let head = PortSet::parse("top-udp:12", cat()).unwrap();
        let mut want = top[..12].to_vec();
        want.sort_unstable();
        assert_eq!(head.udp(), want.as_slice());
        // The first 12 are the high-risk-udp set.
        assert_eq!(want, cat().named_set("high-risk-udp").unwrap().ports);
        // Mixed with TCP, with /udp or U:, in any case.
        assert_eq!(
            pairs("22,TOP-UDP:2,80"),
            vec![(22, Tcp), (80, Tcp), (623, Udp), (11211, Udp)]
        );
        assert_eq!(pairs("top-udp:1/udp"), vec![(623, Udp)]);
        assert_eq!(pairs("U:top-udp:1"), vec![(623, Udp)]);
        for bad in ["top-udp:0", "top-udp:1001", "top-udp:x", "top-udp:"] {
            assert_eq!(
                PortSet::parse(bad, cat()).unwrap_err().to_string(),
                format!(
                    "'{bad}': the UDP top list has 1000 ports; select 1 to 1000 of them (top-udp:100), or all with top-udp"
                )
            );
        }
        // Like any UDP-only name, it refuses a TCP prefix or suffix.
        for bad in ["top-udp:5/tcp", "T:top-udp:5"] {
            assert_eq!(
                PortSet::parse(bad, cat()).unwrap_err().to_string(),
                "'top-udp:5' names no tcp ports in the catalogue (it is a list of UDP ports)"
            );
        }
        assert!(
            parse("top-ud").unwrap_err().to_string().contains("top-udp"),
            "suggests top-udp"
        );
    }

    #[test]
    fn bad_protocols_quote_the_item() {
        assert_eq!(
            PortSet::parse("53/sctp", cat()).unwrap_err(),
            PortSpecError::BadProto {
                item: "53/sctp".into()
            }
        );
        assert!(matches!(
            PortSet::parse("S:53", cat()),
            Err(PortSpecError::BadProto { .. })
        ));
        assert!(matches!(
            PortSet::parse("U:", cat()),
            Err(PortSpecError::EmptyItem { .. })
        ));
        assert!(matches!(
            PortSet::parse("0/udp", cat()),
            Err(PortSpecError::ZeroPort { .. })
        ));
    }

    #[test]
    fn empty_catalogue_still_parses_numbers() {
        let empty = Catalogue::default();
        assert_eq!(PortSet::parse("22,all", &empty).unwrap().len(), 65535);
        assert!(matches!(
            PortSet::parse("ssh", &empty),
            Err(PortSpecError::UnknownName { .. })
        ));
    }

    #[test]
    fn from_ports_sorts_and_dedups() {
        let s = PortSet::from_ports([443, 22, 443]);
        assert_eq!(s.tcp(), &[22, 443]);
        assert_eq!(s.len(), 2);
        assert!(s.contains(22, Proto::Tcp) && !s.contains(80, Proto::Tcp));
        let u = PortSet::from_pairs([(161, Proto::Udp), (22, Proto::Tcp), (161, Proto::Udp)]);
        assert_eq!((u.tcp(), u.udp()), (&[22][..], &[161][..]));
        assert_eq!(s.union(&u).len(), 3);
        assert!(u.tcp_only().udp().is_empty());
    }
}
