//! Policy layer: address specs of asset groups and exceptions.
//!
//! A policy names hosts as an address, a CIDR or a range; this small matcher
//! turns each into one inclusive interval so membership and group overlap
//! are plain comparisons. Host names are refused: a policy must not change
//! meaning when DNS does.

use std::fmt;
use std::net::IpAddr;

use crate::target::{self, spec::Spec};

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
    /// `198.18.0.10-20` (last octet) and the IPv6 forms of the first three,
    /// with the target layer's parser so both read specs alike. A CIDR
    /// covers its whole prefix, network and broadcast addresses included.
    pub fn parse(spec: &str) -> Result<AddrRange, String> {
        let (lo, hi) = match target::spec::parse(spec).map_err(|e| e.to_string())? {
            Spec::Addr(ip) => (ip, ip),
            Spec::Net(net) => (net.network(), net.broadcast()),
            Spec::Range(lo, hi) => (lo, hi),
            Spec::Name(_) | Spec::File(_) => {
                return Err(format!(
                    "'{}' is not an address, CIDR or range (host names and @files are not accepted in a policy)",
                    spec.trim()
                ));
            }
        };
        let ((v6, lo), (_, hi)) = (key(lo), key(hi));
        Ok(AddrRange { v6, lo, hi })
    }

    /// How many addresses the range covers (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        (self.hi - self.lo).saturating_add(1)
    }

    /// How many hosts a scan of the range probes: an IPv4 CIDR shorter than
    /// /31 without its network and broadcast addresses (as the target layer
    /// expands it), else every address.
    pub fn hosts(&self) -> u128 {
        let n = self.size();
        let cidr = n.is_power_of_two() && self.lo.is_multiple_of(n);
        if !self.v6 && cidr && n >= 4 { n - 2 } else { n }
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
