//! Scan layer, raw packets: stateless reply validation for every probe
//! engine.
//!
//! A keyed SipHash of (local address, target address, target port) chosen
//! per scan gives each pair a base source port and a base sequence number;
//! try `t` of a pair is sent from source port `base_port + t` (wrapping in
//! the range) with sequence `base + t`. A reply is believed only when its
//! port offset and its sequence (ack − 1, or the sequence quoted in an ICMP
//! error) name the same try below `MAX_TRIES`, so stray or forged packets
//! are dropped without any per-probe lookup, and the try number tells which
//! probe was answered (for RTTs and loss). A retry needs a fresh source
//! port: a target whose SYN-ACK was lost still holds the old connection
//! half-open and silently ignores a second SYN with another sequence.
//! Protocols without a sequence number (UDP) check the port alone.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

/// Most probes ever sent for one pair; bounds the sequence window.
pub const MAX_TRIES: u8 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    k0: u64,
    k1: u64,
    sport_first: u16,
    sport_count: u32,
}

impl Cookie {
    /// `sports` is the inclusive source-port range to draw from.
    pub fn new(key: (u64, u64), sports: (u16, u16)) -> Cookie {
        let (lo, hi) = if sports.0 <= sports.1 {
            sports
        } else {
            (sports.1, sports.0)
        };
        Cookie {
            k0: key.0,
            k1: key.1,
            sport_first: lo,
            sport_count: (hi - lo) as u32 + 1,
        }
    }

    fn hash(&self, local: IpAddr, target: IpAddr, port: u16) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        match local {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        match target {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        h.write_u16(port);
        h.finish()
    }

    /// Source-port offset (in the range) and base sequence of one pair.
    fn base(&self, local: IpAddr, target: IpAddr, port: u16) -> (u32, u32) {
        let h = self.hash(local, target, port);
        (((h >> 32) % self.sport_count as u64) as u32, h as u32)
    }

    /// Source port and sequence number of try `t` (0-based) of one pair.
    pub fn probe(&self, local: IpAddr, target: IpAddr, port: u16, t: u8) -> (u16, u32) {
        let (off, seq) = self.base(local, target, port);
        let off = (off + t as u32) % self.sport_count;
        (
            (self.sport_first as u32 + off) as u16,
            seq.wrapping_add(t as u32),
        )
    }

    /// The try a reply from `target`:`port` to `local`:`local_port` that
    /// names the probe sequence `probe_seq` answers, or `None` when it does
    /// not answer any of our probes.
    pub fn check(
        &self,
        local: IpAddr,
        target: IpAddr,
        port: u16,
        local_port: u16,
        probe_seq: u32,
    ) -> Option<u8> {
        let (off, seq) = self.base(local, target, port);
        let t = probe_seq.wrapping_sub(seq);
        if t >= MAX_TRIES as u32 {
            return None;
        }
        let got = (local_port as u32).checked_sub(self.sport_first as u32)?;
        (got < self.sport_count && got == (off + t) % self.sport_count).then_some(t as u8)
    }

    /// The first of the tries `0..sent` whose source port is `local_port`
    /// (for replies that carry no sequence number).
    pub fn check_port(
        &self,
        local: IpAddr,
        target: IpAddr,
        port: u16,
        local_port: u16,
        sent: u8,
    ) -> Option<u8> {
        let (off, _) = self.base(local, target, port);
        (0..sent.min(MAX_TRIES)).find(|&t| {
            let o = (off + t as u32) % self.sport_count;
            (self.sport_first as u32 + o) as u16 == local_port
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "198.18.0.1";
    const TARGET: &str = "198.18.0.7";

    /// (local port, probe sequence) of try `t` to TARGET:443.
    fn reply(c: &Cookie, t: u32) -> (u16, u32) {
        c.probe(
            LOCAL.parse().unwrap(),
            TARGET.parse().unwrap(),
            443,
            t as u8,
        )
    }

    fn check(c: &Cookie, (lport, seq): (u16, u32), port: u16) -> Option<u8> {
        c.check(
            LOCAL.parse().unwrap(),
            TARGET.parse().unwrap(),
            port,
            lport,
            seq,
        )
    }

    #[test]
    fn validates_its_own_probes_and_names_the_try() {
        let c = Cookie::new((1, 2), (61000, 65535));
        assert_eq!(check(&c, reply(&c, 0), 443), Some(0));
        assert_eq!(check(&c, reply(&c, 3), 443), Some(3));
        assert_eq!(check(&c, reply(&c, MAX_TRIES as u32), 443), None);
        // Port of try 1 with the sequence of try 2: not ours.
        assert_eq!(check(&c, (reply(&c, 1).0, reply(&c, 2).1), 443), None);
        let (p, s) = reply(&c, 0);
        assert_eq!(check(&c, (p.wrapping_add(1), s), 443), None);
        assert_eq!(check(&c, reply(&c, 0), 444), None);
        // By port alone: only the tries sent count.
        let (l, t) = (LOCAL.parse().unwrap(), TARGET.parse().unwrap());
        assert_eq!(c.check_port(l, t, 443, reply(&c, 2).0, 3), Some(2));
        assert_eq!(c.check_port(l, t, 443, reply(&c, 2).0, 2), None);
        assert_eq!(
            c.check_port(l, t, 443, reply(&c, 0).0.wrapping_add(1000), 9),
            None
        );
    }

    #[test]
    fn another_key_rejects() {
        let a = Cookie::new((1, 2), (61000, 65535));
        let b = Cookie::new((1, 3), (61000, 65535));
        assert_eq!(check(&b, reply(&a, 0), 443), None);
    }
    #[test]
    fn source_ports_stay_in_range() {
        let c = Cookie::new((5, 6), (40000, 40003));
        let local: IpAddr = "2001:2::1".parse().unwrap();
        let mut seen = [false; 4];
        for p in 0..200u16 {
            let (s, _) = c.probe(local, "2001:2::5".parse().unwrap(), p, 0);
            assert!((40000..=40003).contains(&s));
            seen[(s - 40000) as usize] = true;
            // Later tries move to the next port, wrapping inside the range.
            let (s3, _) = c.probe(local, "2001:2::5".parse().unwrap(), p, 3);
            assert_eq!(s3, 40000 + (s - 40000 + 3) % 4);
        }
        assert_eq!(seen, [true; 4]);
    }
}
