//! Scan layer, UDP probe building and reply parsing of the UDP engine.
//!
//! Probes are whole IP datagrams (IPv4 or IPv6 header, UDP header,
//! payload) for the header-included raw socket. Replies are parsed with
//! length checks before any field is read: a UDP datagram from a target,
//! or an ICMP / ICMPv6 destination unreachable that quotes one of our UDP
//! probes. Everything else is `None`. The IP and ICMP layers are
//! [`crate::scan::raw::wire`]'s.

use std::net::IpAddr;

use crate::model::Reason;
#[cfg(test)]
use crate::scan::raw::wire::{IPV4_LEN, build_unreachable};
use crate::scan::raw::wire::{
    IPV6_LEN, PROTO_UDP, be16, fold, ip_header_len, parse_ip, parse_unreachable, pseudo_sum, sum,
    write_ip_header,
};
use crate::scan::raw::{io::FromWire, unreachable_reason};

pub const UDP_LEN: usize = 8;
/// Largest payload a probe carries (well under any path MTU), as the
/// rulebook checks it.
pub use crate::rules::udp_payloads::MAX_PAYLOAD;
/// Room for the largest probe.
pub const MAX_PROBE_LEN: usize = IPV6_LEN + UDP_LEN + MAX_PAYLOAD;
/// Bytes of a reply's payload kept for identification.
pub const MAX_REPLY_DATA: usize = 1500;

/// The fields of one UDP probe.
#[derive(Debug, Clone, Copy)]
pub struct UdpProbe<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub ip_id: u16,
    pub payload: &'a [u8],
}

/// Writes the probe into `buf`; returns its length, or `None` when the
/// address families differ, the payload is too long or `buf` too short.
pub fn build_udp(buf: &mut [u8], p: &UdpProbe<'_>) -> Option<usize> {
    if p.payload.len() > MAX_PAYLOAD {
        return None;
    }
    let ip_len = ip_header_len(p.src, p.dst)?;
    let udp_len = UDP_LEN + p.payload.len();
    let total = ip_len + udp_len;
    let buf = buf.get_mut(..total)?;
    let (ip, udp) = buf.split_at_mut(ip_len);
    udp[0..2].copy_from_slice(&p.sport.to_be_bytes());
    udp[2..4].copy_from_slice(&p.dport.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp[8..].copy_from_slice(p.payload);
    write_ip_header(ip, p.src, p.dst, PROTO_UDP, udp_len, p.ip_id)?;
    let c = udp_checksum(fold(sum(udp, pseudo_sum(p.src, p.dst, PROTO_UDP, udp_len))));
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

/// A computed checksum of zero is sent as all ones (RFC 768): zero means
/// "no checksum", which IPv6 forbids.
fn udp_checksum(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpReplyKind {
    /// The target's service answered; its first bytes (bounded).
    Data(Vec<u8>),
    /// ICMP / ICMPv6 destination unreachable quoting our probe.
    Unreachable(Reason),
}

/// A parsed reply, seen from the scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpReply {
    pub kind: UdpReplyKind,
    pub local: IpAddr,
    pub target: IpAddr,
    pub local_port: u16,
    pub target_port: u16,
}

/// Parses a received packet starting at its IP header.
pub fn parse_udp_reply(pkt: &[u8]) -> Option<UdpReply> {
    let ip = parse_ip(pkt, false)?;
    if ip.proto != PROTO_UDP {
        // The UDP probe quoted in an ICMP error (its IP header and the
        // 8-byte UDP header, all RFC 792 promises). A port unreachable only
        // counts when the target itself sent it: from a router on the way
        // it means the path, not the port, refuses (filtered).
        let u = parse_unreachable(&ip, PROTO_UDP)?;
        let (local, target, local_port, target_port) = u.probe()?;
        let reason = match unreachable_reason(u.v6, u.code) {
            Reason::PortUnreach if u.from != target => Reason::IcmpUnreach,
            r => r,
        };
        return Some(UdpReply {
            kind: UdpReplyKind::Unreachable(reason),
            local,
            target,
            local_port,
            target_port,
        });
    }
    let u = ip.payload;
    let len = be16(u, 4)? as usize;
    if len < UDP_LEN || len > u.len() {
        return None;
    }
    let data = &u[UDP_LEN..len];
    Some(UdpReply {
        kind: UdpReplyKind::Data(data[..data.len().min(MAX_REPLY_DATA)].to_vec()),
        local: ip.dst,
        target: ip.src,
        local_port: be16(u, 2)?,
        target_port: be16(u, 0)?,
    })
}

impl FromWire for UdpReply {
    fn parse(pkt: &[u8]) -> Option<UdpReply> {
        parse_udp_reply(pkt)
    }
}

#[cfg(test)]
/// Builds the reply a target would send (for the fake network and tests):
/// a UDP datagram with `data`, or an ICMP unreachable of `code` quoting
/// the probe. IPv4 only needs to be exact here; IPv6 answers are built the
/// same way with ICMPv6 type 1.
pub fn build_answer(buf: &mut Vec<u8>, probe: &[u8], answer: &FakeAnswer) -> Option<()> {
    let ip = parse_ip(probe, false)?;
    if ip.proto != PROTO_UDP {
        return None;
    }
    let sport = be16(ip.payload, 0)?;
    let dport = be16(ip.payload, 2)?;
    buf.clear();
    match answer {
        FakeAnswer::Data(data) => {
            buf.resize(MAX_PROBE_LEN.max(IPV6_LEN + UDP_LEN + data.len()), 0);
            let p = UdpProbe {
                src: ip.dst,
                dst: ip.src,
                sport: dport,
                dport: sport,
                ip_id: 1,
                payload: data,
            };
            let n = build_udp(buf, &p)?;
            buf.truncate(n);
        }
        FakeAnswer::Icmp(code) => {
            let quote_len = match ip.src {
                IpAddr::V4(_) => IPV4_LEN + UDP_LEN,
                IpAddr::V6(_) => IPV6_LEN + UDP_LEN + 8,
            };
            let quote = &probe[..probe.len().min(quote_len)];
            buf.resize(IPV6_LEN + 8 + quote.len(), 0);
            let n = build_unreachable(buf, ip.dst, ip.src, *code, quote)?;
            buf.truncate(n);
        }
    }
    Some(())
}

#[cfg(test)]
/// How the fake network answers a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeAnswer {
    Data(Vec<u8>),
    /// ICMP destination unreachable with this code (3: port unreachable).
    Icmp(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; MAX_PROBE_LEN];
        let n = build_udp(
            &mut b,
            &UdpProbe {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                sport: 61234,
                dport: 161,
                ip_id: 0x1234,
                payload,
            },
        )
        .unwrap();
        b.truncate(n);
        b
    }

    #[test]
    fn ipv4_probe_bytes_are_exact() {
        let b = probe("198.18.0.1", "198.18.0.7", b"ab");
        // Everything but the two checksums, byte for byte.
        assert_eq!(b.len(), 30);
        assert_eq!(b[..10], [0x45, 0, 0, 30, 0x12, 0x34, 0x40, 0, 64, 17]);
        assert_eq!(
            b[12..26],
            [198, 18, 0, 1, 198, 18, 0, 7, 0xef, 0x32, 0, 161, 0, 10]
        );
        assert_eq!(b[28..], *b"ab");
        // Both checksums verify: the ones'-complement sum over the header
        // (IP) and over pseudo header + datagram (UDP) is all ones.
        assert_eq!(fold(sum(&b[..20], 0)), 0);
        let pseudo = sum(&b[12..20], 0) + 17 + 10;
        assert_eq!(fold(sum(&b[20..], pseudo)), 0);
    }

    #[test]
    fn ipv6_probe_checksum_verifies() {
        let b = probe("2001:2::1", "2001:2::7", b"xyz");
        assert_eq!(b.len(), 40 + 8 + 3);
        assert_eq!((b[0] >> 4, b[6], b[5]), (6, 17, 11));
        let pseudo = sum(&b[8..40], 0) + 17 + 11;
        assert_eq!(fold(sum(&b[40..], pseudo)), 0);
    }

    #[test]
    fn replies_parse_from_both_directions() {
        let p = probe("198.18.0.1", "198.18.0.7", b"q");
        let mut a = Vec::new();
        build_answer(&mut a, &p, &FakeAnswer::Data(b"hello".to_vec())).unwrap();
        let r = parse_udp_reply(&a).unwrap();
        assert_eq!(r.kind, UdpReplyKind::Data(b"hello".to_vec()));
        assert_eq!((r.local_port, r.target_port), (61234, 161));
        assert_eq!(r.target, "198.18.0.7".parse::<IpAddr>().unwrap());
        build_answer(&mut a, &p, &FakeAnswer::Icmp(3)).unwrap();
        let r = parse_udp_reply(&a).unwrap();
        assert_eq!(r.kind, UdpReplyKind::Unreachable(Reason::PortUnreach));
        assert_eq!((r.local_port, r.target_port), (61234, 161));
        build_answer(&mut a, &p, &FakeAnswer::Icmp(13)).unwrap();
        let r = parse_udp_reply(&a).unwrap();
        assert_eq!(r.kind, UdpReplyKind::Unreachable(Reason::AdminProhibited));
        let p6 = probe("2001:2::1", "2001:2::7", b"q");
        build_answer(&mut a, &p6, &FakeAnswer::Icmp(4)).unwrap();
        let r = parse_udp_reply(&a).unwrap();
        assert_eq!(r.kind, UdpReplyKind::Unreachable(Reason::PortUnreach));
        build_answer(&mut a, &p6, &FakeAnswer::Data(vec![7; 40])).unwrap();
        assert_eq!(
            parse_udp_reply(&a).unwrap().kind,
            UdpReplyKind::Data(vec![7; 40])
        );
    }

    #[test]
    fn port_unreachable_from_a_router_is_not_closed() {
        let p = probe("198.18.0.1", "198.18.0.7", b"q");
        let mut a = Vec::new();
        build_answer(&mut a, &p, &FakeAnswer::Icmp(3)).unwrap();
        // Rewrite the ICMP sender (a router) and fix the IP checksum.
        a[12..16].copy_from_slice(&[198, 18, 0, 254]);
        a[10..12].copy_from_slice(&[0, 0]);
        let c = fold(sum(&a[..20], 0));
        a[10..12].copy_from_slice(&c.to_be_bytes());
        let r = parse_udp_reply(&a).unwrap();
        assert_eq!(r.kind, UdpReplyKind::Unreachable(Reason::IcmpUnreach));
    }

    #[test]
    fn hostile_bytes_never_panic_and_lengths_are_checked() {
        let p = probe("198.18.0.1", "198.18.0.7", b"q");
        let mut a = Vec::new();
        build_answer(&mut a, &p, &FakeAnswer::Data(b"hello".to_vec())).unwrap();
        // A UDP length beyond the datagram is refused.
        let mut bad = a.clone();
        bad[24..26].copy_from_slice(&500u16.to_be_bytes());
        assert!(parse_udp_reply(&bad).is_none());
        let mut bad = a.clone();
        bad[24..26].copy_from_slice(&3u16.to_be_bytes());
        assert!(parse_udp_reply(&bad).is_none());
        // Every truncation and random bytes: no panic.
        for n in 0..a.len() {
            let _ = parse_udp_reply(&a[..n]);
        }
        let mut rng = crate::scan::raw::faulty::SplitMix::new(7);
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 120) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let Some(f) = b.first_mut() {
                *f = if rng.chance(0.5) { 0x45 } else { 0x60 };
            }
            let _ = parse_udp_reply(&b);
        }
    }
}
