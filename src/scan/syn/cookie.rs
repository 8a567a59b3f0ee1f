//! Scan layer, stateless reply validation of the SYN engine.
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

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

use super::packet::Reply;

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

    /// The try a reply answers, or `None` when it does not answer any of
    /// our probes.
    pub fn check(&self, r: &Reply) -> Option<u8> {
        let (off, seq) = self.base(r.local, r.target, r.target_port);
        let t = r.probe_seq.wrapping_sub(seq);
        if t >= MAX_TRIES as u32 {
            return None;
        }
        let got = (r.local_port as u32).checked_sub(self.sport_first as u32)?;
        (got < self.sport_count && got == (off + t) % self.sport_count).then_some(t as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::syn::packet::ReplyKind;

    fn reply(c: &Cookie, t: u32) -> Reply {
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        let target: IpAddr = "198.18.0.7".parse().unwrap();
        let (sport, seq) = c.probe(local, target, 443, t as u8);
        Reply {
            kind: ReplyKind::SynAck,
            local,
            target,
            local_port: sport,
            target_port: 443,
            probe_seq: seq,
            ack: seq.wrapping_add(1),
        }
    }

    #[test]
    fn validates_its_own_probes_and_names_the_try() {
        let c = Cookie::new((1, 2), (61000, 65535));
        assert_eq!(c.check(&reply(&c, 0)), Some(0));
        assert_eq!(c.check(&reply(&c, 3)), Some(3));
        assert_eq!(c.check(&reply(&c, MAX_TRIES as u32)), None);
        // Port of try 1 with the sequence of try 2: not ours.
        let mut r = reply(&c, 1);
        r.probe_seq = reply(&c, 2).probe_seq;
        assert_eq!(c.check(&r), None);
        let mut r = reply(&c, 0);
        r.local_port = r.local_port.wrapping_add(1);
        assert_eq!(c.check(&r), None);
        let mut r = reply(&c, 0);
        r.target_port = 444;
        assert_eq!(c.check(&r), None);
    }

    #[test]
    fn another_key_rejects() {
        let a = Cookie::new((1, 2), (61000, 65535));
        let b = Cookie::new((1, 3), (61000, 65535));
        assert_eq!(b.check(&reply(&a, 0)), None);
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
