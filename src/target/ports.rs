//! Target layer: port specs. Turns what the operator typed after `--ports`
//! (`22,80,443`, `1-1024`, `-`/`all`, open ranges `-1024` and `60000-`,
//! service names such as `ssh`, named sets such as `common` or `high-risk`,
//! catalogue tags such as `database`, or any mix) into the sorted TCP port
//! list the scan engine iterates. Names are resolved through the port
//! catalogue, so a `--rules` override changes what `common` means too.
//! Every error quotes the offending item; an unknown name comes with the
//! closest names the catalogue knows.

use crate::model::Proto;
use crate::rules::Catalogue;

/// Why a port spec was rejected. Each variant quotes what the operator typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSpecError {
    #[error(
        "empty port spec: give ports (22,80), ranges (1-1024), service names (ssh), sets (common, high-risk) or 'all'"
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
        "'{name}' names only UDP ports in the catalogue ({ports}); port specs select TCP ports"
    )]
    UdpOnly { name: String, ports: String },
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "use a port number, a range, a service name or a set such as 'common' or 'high-risk'"
            .to_string()
    } else {
        format!("did you mean: {}?", suggestions.join(", "))
    }
}

/// A sorted, de-duplicated, non-empty set of TCP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet {
    ports: Vec<u16>,
}

impl PortSet {
    /// Parses a comma-separated port spec. Items may be mixed
    /// (`ssh,8000-8100,high-risk`) and surrounded by spaces. A name is
    /// looked up as a declared set, then as a service name or alias, then
    /// as a catalogue tag.
    pub fn parse(spec: &str, catalogue: &Catalogue) -> Result<PortSet, PortSpecError> {
        if spec.trim().is_empty() {
            return Err(PortSpecError::Empty);
        }
        // A bitmap keeps `all` (65,535 ports) and overlapping items cheap.
        let mut chosen = vec![false; 65536];
        for raw in spec.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                return Err(PortSpecError::EmptyItem {
                    spec: spec.to_string(),
                });
            }
            let looks_numeric = item
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c.is_whitespace());
            if looks_numeric {
                let (lo, hi) = parse_numeric(item)?;
                chosen[usize::from(lo)..=usize::from(hi)].fill(true);
            } else {
                for p in resolve_name(item, catalogue)? {
                    chosen[usize::from(p)] = true;
                }
            }
        }
        let ports: Vec<u16> = (1..=u16::MAX).filter(|&p| chosen[usize::from(p)]).collect();
        if ports.is_empty() {
            return Err(PortSpecError::Empty);
        }
        Ok(PortSet { ports })
    }

    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> PortSet {
        let mut ports: Vec<u16> = ports.into_iter().collect();
        ports.sort_unstable();
        ports.dedup();
        PortSet { ports }
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.ports
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    pub fn contains(&self, port: u16) -> bool {
        self.ports.binary_search(&port).is_ok()
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

fn resolve_name(item: &str, catalogue: &Catalogue) -> Result<Vec<u16>, PortSpecError> {
    let name = item.to_ascii_lowercase();
    if name == "all" {
        return Ok((1..=u16::MAX).collect());
    }
    let udp_only = |ports: &mut dyn Iterator<Item = u16>| PortSpecError::UdpOnly {
        name: item.to_string(),
        ports: ports
            .map(|p| format!("{p}/udp"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    if let Some(set) = catalogue.named_set(&name) {
        if set.proto != Proto::Tcp {
            return Err(udp_only(&mut set.ports.iter().copied()));
        }
        return Ok(set.ports.clone());
    }
    let entries = catalogue.by_service(&name);
    if !entries.is_empty() {
        let tcp: Vec<u16> = entries
            .iter()
            .filter(|e| e.proto == Proto::Tcp)
            .map(|e| e.port)
            .collect();
        if tcp.is_empty() {
            return Err(udp_only(&mut entries.iter().map(|e| e.port)));
        }
        return Ok(tcp);
    }
    if let Some(ports) = catalogue.set(&name) {
        if ports.is_empty() {
            // A tag carried only by UDP entries.
            let udp: Vec<u16> = catalogue
                .entries()
                .iter()
                .filter(|e| e.has_tag(&name))
                .map(|e| e.port)
                .collect();
            return Err(udp_only(&mut udp.into_iter()));
        }
        return Ok(ports);
    }
    Err(PortSpecError::UnknownName {
        name: item.to_string(),
        suggestions: closest_names(&name, catalogue),
    })
}

/// Up to three known names that look like `name`, best first. Edit
/// distance catches typos (`shh`, `comon`); Jaro-Winkler catches
/// truncations and shared prefixes (`postgre`, `elastic`).
fn closest_names(name: &str, catalogue: &Catalogue) -> Vec<String> {
    let mut candidates: Vec<&str> = catalogue.service_names();
    candidates.extend(catalogue.set_names());
    candidates.push("all");
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
        PortSet::parse(spec, cat()).map(|s| s.as_slice().to_vec())
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

    #[test]
    fn udp_only_names_are_explained() {
        assert_eq!(
            err("snmp"),
            "'snmp' names only UDP ports in the catalogue (161/udp); port specs select TCP ports"
        );
        assert!(err("high-risk-udp").contains("123/udp"));
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
        assert_eq!(s.as_slice(), &[22, 443]);
        assert_eq!(s.len(), 2);
        assert!(s.contains(22) && !s.contains(80));
    }
}
