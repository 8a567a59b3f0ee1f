//! Target layer: the grammar of one target spec (address, CIDR, range, host
//! name or `@file`). Kept apart from resolution so every malformed form gets
//! its own error naming the value, and so the parser can be tested without
//! files or DNS.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// What is wrong with one target or exclude spec. Every variant quotes the
/// value as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty target spec; give an address, CIDR, range, host name or @file")]
    Empty,
    #[error("`@` needs a file name, e.g. @targets.txt")]
    EmptyFileName,
    #[error("`{value}`: @file lists cannot include other @file lists")]
    NestedFile { value: String },
    #[error("bad prefix length `/{prefix}` in `{value}`: IPv4 takes /0 to /32, IPv6 /0 to /128")]
    BadPrefix { value: String, prefix: String },
    #[error("`{addr}` in `{value}` is not an IP address; a CIDR is like 198.18.0.0/24")]
    BadCidrAddress { value: String, addr: String },
    #[error("octet `{octet}` in `{value}` is out of range: each octet is 0 to 255")]
    Octet { value: String, octet: String },
    #[error("`{value}` is not a valid IPv4 address (expected four octets like 198.18.0.1)")]
    BadIpv4 { value: String },
    #[error("`{value}` is not a valid IPv6 address")]
    BadIpv6 { value: String },
    #[error(
        "bad range end `{end}` in `{value}`: expected an address of the same family, \
         or for IPv4 a last octet 0 to 255 (198.18.0.1-20)"
    )]
    BadRangeEnd { value: String, end: String },
    #[error("range `{value}` mixes IPv4 and IPv6")]
    MixedRange { value: String },
    #[error("range `{value}` is reversed: its start is after its end; write it low-high")]
    Reversed { value: String },
    #[error("`{value}` is not an address, CIDR, range, host name or @file")]
    Garbage { value: String },
}

/// One parsed spec. Ranges are inclusive, of one family and `start <= end`;
/// networks are truncated to their prefix (host bits dropped, as nmap does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spec {
    Addr(IpAddr),
    Net(IpNet),
    Range(IpAddr, IpAddr),
    Name(String),
    File(String),
}

pub(crate) fn parse(raw: &str) -> Result<Spec, SpecError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(SpecError::Empty);
    }
    if let Some(path) = value.strip_prefix('@') {
        let path = path.trim();
        if path.is_empty() {
            return Err(SpecError::EmptyFileName);
        }
        return Ok(Spec::File(path.to_string()));
    }
    if let Some((addr, prefix)) = value.split_once('/') {
        return parse_cidr(value, addr, prefix);
    }
    if let Some((left, right)) = value.split_once('-')
        && let Ok(start) = left.parse::<IpAddr>()
    {
        return parse_range(value, start, right);
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(Spec::Addr(ip));
    }
    if value.contains(':') {
        return Err(SpecError::BadIpv6 {
            value: value.to_string(),
        });
    }
    if looks_numeric(value) {
        // A numeric range whose start is malformed: blame the start.
        let part = value.split_once('-').map_or(value, |(l, _)| l);
        return Err(ipv4_problem(value, part));
    }
    if is_host_name(value) {
        return Ok(Spec::Name(value.to_string()));
    }
    Err(SpecError::Garbage {
        value: value.to_string(),
    })
}

fn parse_cidr(value: &str, addr: &str, prefix: &str) -> Result<Spec, SpecError> {
    let ip: IpAddr = addr.parse().map_err(|_| {
        if looks_numeric(addr) {
            ipv4_problem(value, addr)
        } else {
            SpecError::BadCidrAddress {
                value: value.to_string(),
                addr: addr.to_string(),
            }
        }
    })?;
    let bad_prefix = || SpecError::BadPrefix {
        value: value.to_string(),
        prefix: prefix.to_string(),
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_prefix());
    }
    let len: u8 = prefix.parse().map_err(|_| bad_prefix())?;
    let net = IpNet::new(ip, len).map_err(|_| bad_prefix())?;
    Ok(Spec::Net(net.trunc()))
}

fn parse_range(value: &str, start: IpAddr, right: &str) -> Result<Spec, SpecError> {
    let end = match (start, right.parse::<IpAddr>()) {
        (IpAddr::V4(_), Ok(IpAddr::V4(e))) => IpAddr::V4(e),
        (IpAddr::V6(_), Ok(IpAddr::V6(e))) => IpAddr::V6(e),
        (_, Ok(_)) => {
            return Err(SpecError::MixedRange {
                value: value.to_string(),
            });
        }
        (IpAddr::V4(s), Err(_))
            if !right.is_empty() && right.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let octet: u8 = right.parse().map_err(|_| SpecError::Octet {
                value: value.to_string(),
                octet: right.to_string(),
            })?;
            let [a, b, c, _] = s.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, octet))
        }
        (IpAddr::V4(_), Err(_)) if looks_numeric(right) && right.contains('.') => {
            return Err(ipv4_problem(value, right));
        }
        (_, Err(_)) => {
            return Err(SpecError::BadRangeEnd {
                value: value.to_string(),
                end: right.to_string(),
            });
        }
    };
    if end < start {
        return Err(SpecError::Reversed {
            value: value.to_string(),
        });
    }
    Ok(Spec::Range(start, end))
}

/// Digits, dots and dashes only: the operator meant an IPv4 form, so a
/// failure is reported as a bad address, never tried as a host name (a real
/// top-level domain is never all digits).
fn looks_numeric(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn ipv4_problem(value: &str, part: &str) -> SpecError {
    let big = part.split('.').find(|o| {
        !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()) && o.parse::<u8>().is_err()
    });
    match big {
        Some(octet) => SpecError::Octet {
            value: value.to_string(),
            octet: octet.to_string(),
        },
        None => SpecError::BadIpv4 {
            value: value.to_string(),
        },
    }
}

/// RFC 1123 host name syntax (underscores tolerated, as many internal zones
/// use them); an optional final dot marks a fully qualified name.
fn is_host_name(s: &str) -> bool {
    let body = s.strip_suffix('.').unwrap_or(s);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses() {
        assert_eq!(parse("198.18.0.1"), Ok(Spec::Addr(ip("198.18.0.1"))));
        assert_eq!(parse("  2001:db8::1 "), Ok(Spec::Addr(ip("2001:db8::1"))));
        assert_eq!(
            parse("::ffff:198.18.0.1"),
            Ok(Spec::Addr(ip("::ffff:198.18.0.1")))
        );
    }

    #[test]
    fn cidrs_are_truncated_to_their_network() {
        assert_eq!(
            parse("198.18.0.0/24"),
            Ok(Spec::Net("198.18.0.0/24".parse().unwrap()))
        );
        assert_eq!(
            parse("198.18.0.77/24"),
            Ok(Spec::Net("198.18.0.0/24".parse().unwrap()))
        );
        assert_eq!(
            parse("2001:db8::1234/120"),
            Ok(Spec::Net("2001:db8::1200/120".parse().unwrap()))
        );
        assert_eq!(
            parse("0.0.0.0/0"),
            Ok(Spec::Net("0.0.0.0/0".parse().unwrap()))
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse("198.18.0.1-20"),
            Ok(Spec::Range(ip("198.18.0.1"), ip("198.18.0.20")))
        );
        assert_eq!(
            parse("198.18.0.1-198.18.1.5"),
            Ok(Spec::Range(ip("198.18.0.1"), ip("198.18.1.5")))
        );
        assert_eq!(
            parse("2001:db8::1-2001:db8::ff"),
            Ok(Spec::Range(ip("2001:db8::1"), ip("2001:db8::ff")))
        );
        assert_eq!(
            parse("198.18.0.5-5"),
            Ok(Spec::Range(ip("198.18.0.5"), ip("198.18.0.5")))
        );
    }

    #[test]
    fn names_and_files() {
        assert_eq!(parse("localhost"), Ok(Spec::Name("localhost".into())));
        assert_eq!(
            parse("web-01.example.com."),
            Ok(Spec::Name("web-01.example.com.".into()))
        );
        assert_eq!(parse("my_host.lan"), Ok(Spec::Name("my_host.lan".into())));
        assert_eq!(parse("@ list.txt"), Ok(Spec::File("list.txt".into())));
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn malformed_forms_are_named() {
        assert_eq!(parse(""), Err(SpecError::Empty));
        assert_eq!(parse("   "), Err(SpecError::Empty));
        assert_eq!(parse("@"), Err(SpecError::EmptyFileName));
        assert_eq!(
            err("198.18.0.0/33"),
            "bad prefix length `/33` in `198.18.0.0/33`: IPv4 takes /0 to /32, IPv6 /0 to /128"
        );
        assert_eq!(
            parse("2001:db8::/129"),
            Err(SpecError::BadPrefix {
                value: "2001:db8::/129".into(),
                prefix: "129".into()
            })
        );
        for bad in [
            "198.18.0.0/",
            "198.18.0.0/x",
            "198.18.0.0/-1",
            "198.18.0.0/99999",
        ] {
            assert!(
                matches!(parse(bad), Err(SpecError::BadPrefix { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse("web/24"),
            Err(SpecError::BadCidrAddress {
                value: "web/24".into(),
                addr: "web".into()
            })
        );
        assert_eq!(
            err("198.18.0.256"),
            "octet `256` in `198.18.0.256` is out of range: each octet is 0 to 255"
        );
        assert_eq!(
            parse("198.18.300.0/24"),
            Err(SpecError::Octet {
                value: "198.18.300.0/24".into(),
                octet: "300".into()
            })
        );
        assert_eq!(
            parse("198.18.0.1-256"),
            Err(SpecError::Octet {
                value: "198.18.0.1-256".into(),
                octet: "256".into()
            })
        );
        assert_eq!(
            parse("198.18.0.1-198.18.0.999"),
            Err(SpecError::Octet {
                value: "198.18.0.1-198.18.0.999".into(),
                octet: "999".into()
            })
        );
        assert_eq!(
            parse("198.18.0.256-300"),
            Err(SpecError::Octet {
                value: "198.18.0.256-300".into(),
                octet: "256".into()
            })
        );
        assert_eq!(
            err("198.18.0"),
            "`198.18.0` is not a valid IPv4 address (expected four octets like 198.18.0.1)"
        );
        assert_eq!(
            parse("2001:db8::g"),
            Err(SpecError::BadIpv6 {
                value: "2001:db8::g".into()
            })
        );
        assert_eq!(
            err("198.18.0.20-1"),
            "range `198.18.0.20-1` is reversed: its start is after its end; write it low-high"
        );
        assert_eq!(
            parse("198.18.1.0-198.18.0.255"),
            Err(SpecError::Reversed {
                value: "198.18.1.0-198.18.0.255".into()
            })
        );
        assert_eq!(
            parse("2001:db8::ff-2001:db8::1"),
            Err(SpecError::Reversed {
                value: "2001:db8::ff-2001:db8::1".into()
            })
        );
        assert_eq!(
            parse("198.18.0.1-2001:db8::1"),
            Err(SpecError::MixedRange {
                value: "198.18.0.1-2001:db8::1".into()
            })
        );
        assert_eq!(
            parse("198.18.0.1-"),
            Err(SpecError::BadRangeEnd {
                value: "198.18.0.1-".into(),
                end: "".into()
            })
        );
        assert_eq!(
            parse("2001:db8::1-ff"),
            Err(SpecError::BadRangeEnd {
                value: "2001:db8::1-ff".into(),
                end: "ff".into()
            })
        );
        assert_eq!(
            err("not a host!"),
            "`not a host!` is not an address, CIDR, range, host name or @file"
        );
        for bad in ["-leading.example", "a..b", "trailing-.example", "x,y"] {
            assert!(
                matches!(parse(bad), Err(SpecError::Garbage { .. })),
                "{bad}"
            );
        }
    }
}
