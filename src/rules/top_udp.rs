//! Rules layer: portwarden's ranked UDP and TCP lists (`rules/top-udp.txt`,
//! `rules/top-tcp.txt`; the TCP one serves nmap's `--top-ports N`).
//!
//! UDP scanning is paced by the targets' ICMP limiters, so which UDP ports
//! to probe matters more than for TCP: the list ranks 1,000 ports, most
//! important first (how it was made is the file's header), and port specs
//! select its head with `top-udp:N`. A line-oriented text file keeps the
//! rank visible as the line order; errors name the file and line.

use super::RulesError;

/// File name of the list inside a rules directory.
pub const FILE_NAME: &str = "top-udp.txt";

pub(crate) const EMBEDDED_TEXT: &str = include_str!("../../rules/top-udp.txt");
pub(crate) const EMBEDDED_ORIGIN: &str = "<embedded>/top-udp.txt";

/// File name of the ranked TCP list inside a rules directory.
pub const TCP_FILE_NAME: &str = "top-tcp.txt";

pub(crate) const TCP_EMBEDDED_TEXT: &str = include_str!("../../rules/top-tcp.txt");
pub(crate) const TCP_EMBEDDED_ORIGIN: &str = "<embedded>/top-tcp.txt";

/// Parses the list: one port per line (1-65535), optionally followed by a
/// service name for the reader; `#` starts a comment. Returns the ports in
/// rank order. A duplicate, a bad number, extra words or an empty list is
/// an error naming `origin`, line and column.
pub fn parse(text: &str, origin: &str) -> Result<Vec<u16>, RulesError> {
    parse_list(text, origin, "UDP")
}

/// [`parse`] for the ranked TCP list.
pub fn parse_tcp(text: &str, origin: &str) -> Result<Vec<u16>, RulesError> {
    parse_list(text, origin, "TCP")
}

fn parse_list(text: &str, origin: &str, proto: &str) -> Result<Vec<u16>, RulesError> {
    let mut ports = Vec::new();
    // Port → line it first appeared on.
    let mut seen = std::collections::HashMap::new();
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += raw.len();
        let content = raw.split('#').next().unwrap_or("");
        let mut words = content.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        // Byte offset of a word of this line, for the column.
        let at = |w: &str| line_start + (w.as_ptr() as usize - raw.as_ptr() as usize);
        let port = match first.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => p as u16,
            Ok(_) => {
                return Err(RulesError::at(
                    origin,
                    text,
                    at(first),
                    format!("port {first} is not a valid port: ports are 1-65535"),
                ));
            }
            Err(_) => {
                return Err(RulesError::at(
                    origin,
                    text,
                    at(first),
                    format!("expected a port number at the start of the line, found '{first}'"),
                ));
            }
        };
        let name = words.next();
        if let Some(extra) = words.next() {
            return Err(RulesError::at(
                origin,
                text,
                at(extra),
                format!(
                    "unexpected '{extra}': a line holds a port and at most one service name (start a comment with #)"
                ),
            ));
        }
        if let Some(name) = name
            && !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(RulesError::at(
                origin,
                text,
                at(name),
                format!("service name '{name}' may hold only letters, digits, '-', '_' and '.'"),
            ));
        }
        if let Some(prev) = seen.insert(port, i + 1) {
            return Err(RulesError::at(
                origin,
                text,
                at(first),
                format!("port {port} is listed twice (first at line {prev}); keep one"),
            ));
        }
        ports.push(port);
    }
    if ports.is_empty() {
        return Err(RulesError::Invalid {
            origin: origin.to_string(),
            line: 1,
            column: 1,
            message: format!(
                "the {proto} top list holds no port; list at least one, or remove the file to use the built-in list"
            ),
        });
    }
    Ok(ports)
}

/// The built-in list, parsed once per process.
pub fn embedded() -> &'static [u16] {
    static LIST: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        // Cannot fail at run time: `embedded_list_is_1000_unique_ports`
        // checks this exact text at test time.
        parse(EMBEDDED_TEXT, EMBEDDED_ORIGIN)
            .unwrap_or_else(|e| panic!("built-in UDP top list is invalid: {e}"))
    })
}

/// The built-in TCP list, parsed once per process.
pub fn embedded_tcp() -> &'static [u16] {
    static LIST: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        // Cannot fail at run time: `embedded_tcp_list_is_the_common_set`
        // checks this exact text at test time.
        parse_tcp(TCP_EMBEDDED_TEXT, TCP_EMBEDDED_ORIGIN)
            .unwrap_or_else(|e| panic!("built-in TCP top list is invalid: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Catalogue;

    #[test]
    fn a_huge_token_is_not_echoed_whole() {
        let e = parse(&"x".repeat(10 << 20), "top-udp.txt")
            .unwrap_err()
            .to_string();
        assert!(e.len() < 1024, "{} bytes", e.len());
        assert!(e.contains("top-udp.txt:1:1"), "{}", &e[..100]);
        assert!(e.contains("found 'xxx"), "{}", &e[..200]);
    }

    #[test]
    fn embedded_list_is_1000_unique_ports() {
        let list = embedded();
        assert_eq!(list.len(), 1000);
        let mut sorted = list.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
        assert_eq!(&list[..3], &[623, 11211, 19]);
        assert_eq!(list[999], 892);
    }

    #[test]
    fn embedded_tcp_list_is_the_common_set_high_risk_first() {
        let list = embedded_tcp();
        assert_eq!(list.len(), 1000);
        let cat = Catalogue::embedded_ref();
        let mut sorted = list.to_vec();
        sorted.sort_unstable();
        let mut common = cat.named_set("common").unwrap().ports.clone();
        common.sort_unstable();
        assert_eq!(sorted, common);
        let hr = &cat.named_set("high-risk").unwrap().ports;
        let head: Vec<u16> = list[..hr.len()].to_vec();
        for p in hr {
            assert!(head.contains(p), "high-risk port {p} is not at the head");
        }
        assert_eq!(&list[..3], &[23, 445, 2375]);
        assert_eq!(
            parse_tcp("# none\n", "x/top-tcp.txt")
                .unwrap_err()
                .to_string(),
            "x/top-tcp.txt:1:1: the TCP top list holds no port; list at least one, or remove the file to use the built-in list"
        );
    }

    #[test]
    fn high_risk_udp_is_in_the_top_100() {
        let hr = Catalogue::embedded_ref()
            .named_set("high-risk-udp")
            .unwrap();
        let top: Vec<u16> = embedded()[..100].to_vec();
        for p in &hr.ports {
            assert!(
                top.contains(p),
                "high-risk-udp port {p} is not in the top 100"
            );
        }
        // Every port with a default payload is in the top 100 too.
        let payloads = crate::rules::udp_payloads::Payloads::embedded();
        for p in payloads.all().iter().filter(|p| !p.opt_in) {
            for port in &p.ports {
                assert!(
                    top.contains(port),
                    "payload port {port} is not in the top 100"
                );
            }
        }
    }

    #[test]
    fn parses_ports_names_and_comments() {
        let text = "# head\n\n161 snmp\n53   # dns\n  11211 memcached # amplifier\n";
        assert_eq!(parse(text, "t").unwrap(), vec![161, 53, 11211]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cases = [
            (
                "161 snmp\n53\n161 again\n",
                "x/top-udp.txt:3:1: port 161 is listed twice (first at line 1); keep one",
            ),
            (
                "161\n  0 zero\n",
                "x/top-udp.txt:2:3: port 0 is not a valid port: ports are 1-65535",
            ),
            (
                "65536\n",
                "x/top-udp.txt:1:1: port 65536 is not a valid port: ports are 1-65535",
            ),
            (
                "53\nsnmp 161\n",
                "x/top-udp.txt:2:1: expected a port number at the start of the line, found 'snmp'",
            ),
            (
                "53 dns extra\n",
                "x/top-udp.txt:1:8: unexpected 'extra': a line holds a port and at most one service name (start a comment with #)",
            ),
            (
                "53 d/ns\n",
                "x/top-udp.txt:1:4: service name 'd/ns' may hold only letters, digits, '-', '_' and '.'",
            ),
            (
                "# only comments\n",
                "x/top-udp.txt:1:1: the UDP top list holds no port; list at least one, or remove the file to use the built-in list",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse(text, "x/top-udp.txt").unwrap_err().to_string(),
                want,
                "{text:?}"
            );
        }
    }
}
