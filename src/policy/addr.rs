//! Policy layer: address specs of asset groups and exceptions.
//!
//! A policy names hosts as an address, a CIDR or a range; this small matcher
//! turns each into one inclusive interval so membership and group overlap
//! are plain comparisons. Host names are refused: a policy must not change
//! meaning when DNS does.

use std::fmt;
use std::net::IpAddr;

/// One inclusive address interval of a single family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    v6: bool,
    lo: u128,
    hi: u128,
}

fn key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (false, u128::from(u32::from(v4))),
            None => (true, u128::from(a)),
        },
    }
}

fn from_key(v6: bool, k: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(k.into())
    } else {
        IpAddr::V4((k as u32).into())
    }
}

impl AddrRange {
    /// Parses `198.18.0.5`, `198.18.0.0/24`, `198.18.0.10-198.18.0.20`,
    /// `198.18.0.10-20` (last octet) and the IPv6 forms of the first three.
    pub fn parse(spec: &str) -> Result<AddrRange, String> {
        let s = spec.trim();
        if let Some((addr, len)) = s.split_once('/') {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("'{spec}': '{addr}' is not an IP address"))?;
            let (v6, k) = key(ip);
            let bits = if v6 { 128 } else { 32 };
            let len: u32 = len
                .parse()
                .ok()
                .filter(|l| *l <= bits)
                .ok_or_else(|| format!("'{spec}': prefix length must be 0-{bits}"))?;
            let host_bits = bits - len;
            let mask: u128 = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            return Ok(AddrRange {
                v6,
                lo: k & !mask,
                hi: (k & !mask) | mask,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            let lo: IpAddr = a
                .parse()
                .map_err(|_| format!("'{spec}': '{a}' is not an IP address"))?;
            let hi: IpAddr = match b.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => match (lo, b.parse::<u8>()) {
                    (IpAddr::V4(l), Ok(last)) => {
                        let o = l.octets();
                        IpAddr::V4([o[0], o[1], o[2], last].into())
                    }
                    _ => {
                        return Err(format!(
                            "'{spec}': '{b}' is neither an address nor a last octet"
                        ));
                    }
                },
            };
            let (v6a, ka) = key(lo);
            let (v6b, kb) = key(hi);
            if v6a != v6b {
                return Err(format!("'{spec}': a range cannot mix IPv4 and IPv6"));
            }
            if ka > kb {
                return Err(format!("'{spec}': the range ends before it starts"));
            }
            return Ok(AddrRange {
                v6: v6a,
                lo: ka,
                hi: kb,
            });
        }
        let ip: IpAddr = s.parse().map_err(|_| {
            format!("'{spec}' is not an address, CIDR or range (host names are not accepted in a policy)")
        })?;
        let (v6, k) = key(ip);
        Ok(AddrRange { v6, lo: k, hi: k })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, k) = key(ip);
        v6 == self.v6 && self.lo <= k && k <= self.hi
    }

    /// The first address both ranges hold, if any.
    pub fn intersection(&self, other: &AddrRange) -> Option<IpAddr> {
        if self.v6 != other.v6 {
            return None;
        }
        let lo = self.lo.max(other.lo);
        let hi = self.hi.min(other.hi);
        (lo <= hi).then(|| from_key(self.v6, lo))
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lo = from_key(self.v6, self.lo);
        if self.lo == self.hi {
            write!(f, "{lo}")
        } else {
            write!(f, "{lo}-{}", from_key(self.v6, self.hi))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forms() {
        let c = AddrRange::parse("198.18.0.0/28").unwrap();
        assert!(c.contains(ip("198.18.0.15")));
        assert!(!c.contains(ip("198.18.0.16")));
        assert!(c.contains(ip("::ffff:198.18.0.3")));
        let r = AddrRange::parse("198.18.0.10-20").unwrap();
        assert_eq!(r.to_string(), "198.18.0.10-198.18.0.20");
        assert!(r.contains(ip("198.18.0.20")) && !r.contains(ip("198.18.0.21")));
        let s = AddrRange::parse("198.18.0.7").unwrap();
        assert!(s.contains(ip("198.18.0.7")) && !s.contains(ip("198.18.0.8")));
        let v6 = AddrRange::parse("2001:2::/64").unwrap();
        assert!(v6.contains(ip("2001:2::5")) && !v6.contains(ip("198.18.0.5")));
        assert_eq!(
            AddrRange::parse("0.0.0.0/0").unwrap().to_string(),
            "0.0.0.0-255.255.255.255"
        );
        assert!(AddrRange::parse("::/0").unwrap().contains(ip("2001:2::1")));
    }

    #[test]
    fn errors() {
        assert!(AddrRange::parse("198.18.0.0/33").is_err());
        assert!(AddrRange::parse("198.18.0.9-3").is_err());
        assert!(
            AddrRange::parse("db.example")
                .unwrap_err()
                .contains("host names")
        );
        assert!(AddrRange::parse("198.18.0.1-2001:2::1").is_err());
    }

    #[test]
    fn overlap() {
        let a = AddrRange::parse("198.18.0.0/28").unwrap();
        let b = AddrRange::parse("198.18.0.10-40").unwrap();
        let c = AddrRange::parse("198.18.0.16/28").unwrap();
        assert_eq!(a.intersection(&b), Some(ip("198.18.0.10")));
        assert_eq!(a.intersection(&c), None);
    }
}
