//! Scan layer, raw packets: the IPv4 / IPv6 / ICMP wire format the probe
//! engines share (header building, checksums, checked parsing).
//!
//! It depends on nothing but `std`, like smoltcp's `wire`: the transport
//! layers (TCP in `syn`, UDP in `udp`) build on it. Bytes from the network
//! are hostile: every read is length-checked and a parse either yields a
//! view or `None`, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
/// ICMP "destination unreachable" type (IPv4, IPv6).
const ICMP4_UNREACH: u8 = 3;
const ICMP6_UNREACH: u8 = 1;

/// Ones'-complement sum of 16-bit big-endian words (odd tail padded).
pub fn sum(data: &[u8], init: u32) -> u32 {
    let mut acc = init as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a sum to 16 bits and complements it: the Internet checksum.
pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The sum of the transport pseudo header (addresses, protocol, length).
pub fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let addr = |a: IpAddr| match a {
        IpAddr::V4(a) => sum(&a.octets(), 0),
        IpAddr::V6(a) => sum(&a.octets(), 0),
    };
    addr(src) + addr(dst) + proto as u32 + len as u32
}

/// Length of the IP header between `src` and `dst`; `None` when their
/// families differ.
pub fn ip_header_len(src: IpAddr, dst: IpAddr) -> Option<usize> {
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(IPV4_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => Some(IPV6_LEN),
        _ => None,
    }
}

/// Writes the IP header of a datagram carrying `payload_len` bytes of
/// `proto` into `ip` (exactly [`ip_header_len`] bytes): IPv4 with DF, TTL
/// 64, `ip_id` and its checksum; IPv6 with hop limit 64.
pub fn write_ip_header(
    ip: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload_len: usize,
    ip_id: u16,
) -> Option<()> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = ip.get_mut(..IPV4_LEN)?;
            // Version/IHL, TOS, length, ID, DF, TTL, protocol, checksum.
            ip[..12].copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]);
            ip[2..4].copy_from_slice(&((IPV4_LEN + payload_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = fold(sum(ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = ip.get_mut(..IPV6_LEN)?;
            ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, proto, 64]);
            ip[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
        }
        _ => return None,
    }
    Some(())
}

/// A big-endian u16 at `at`, or `None` past the end.
pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// A big-endian u32 at `at`, or `None` past the end.
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn v4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn v6(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

/// An IP header's addresses, transport protocol and payload.
pub struct IpView<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub payload: &'a [u8],
}

/// Parses an IPv4 or IPv6 header. `truncated_ok` accepts a total length
/// longer than the bytes at hand (the header embedded in an ICMP error).
pub fn parse_ip(pkt: &[u8], truncated_ok: bool) -> Option<IpView<'_>> {
    match pkt.first()? >> 4 {
        4 => {
            let ihl = (*pkt.first()? & 0x0f) as usize * 4;
            if ihl < IPV4_LEN || pkt.len() < ihl {
                return None;
            }
            let total = be16(pkt, 2)? as usize;
            if total < ihl || (!truncated_ok && total > pkt.len()) {
                return None;
            }
            // Only first fragments carry the transport header.
            if be16(pkt, 6)? & 0x1fff != 0 {
                return None;
            }
            let end = total.min(pkt.len());
            Some(IpView {
                src: IpAddr::V4(v4(pkt, 12)?),
                dst: IpAddr::V4(v4(pkt, 16)?),
                proto: *pkt.get(9)?,
                payload: pkt.get(ihl..end)?,
            })
        }
        6 => {
            let plen = be16(pkt, 4)? as usize;
            if pkt.len() < IPV6_LEN || (!truncated_ok && IPV6_LEN + plen > pkt.len()) {
                return None;
            }
            let end = (IPV6_LEN + plen).min(pkt.len());
            let mut next = *pkt.get(6)?;
            let mut off = IPV6_LEN;
            // Skip the extension headers a reply may plausibly carry
            // (hop-by-hop, routing, destination options); bounded loop.
            for _ in 0..4 {
                match next {
                    0 | 43 | 60 => {
                        next = *pkt.get(off)?;
                        off += (*pkt.get(off + 1)? as usize + 1) * 8;
                    }
                    _ => break,
                }
            }
            Some(IpView {
                src: IpAddr::V6(v6(pkt, 8)?),
                dst: IpAddr::V6(v6(pkt, 24)?),
                proto: next,
                payload: pkt.get(off..end)?,
            })
        }
        _ => None,
    }
}

/// An ICMP or ICMPv6 destination unreachable: its code and the header of
/// the packet it quotes (truncation allowed: RFC 792 promises only the IP
/// header and 8 bytes).
pub struct Unreachable<'a> {
    /// ICMPv6 (codes of RFC 4443) rather than ICMPv4 (RFC 792).
    pub v6: bool,
    pub code: u8,
    /// The sender of the error (the target, or a router on the way).
    pub from: IpAddr,
    pub quoted: IpView<'a>,
}

impl Unreachable<'_> {
    /// Who sent the quoted probe and to whom: (local address, target,
    /// local port, target port), read from the quoted transport header.
    pub fn probe(&self) -> Option<(IpAddr, IpAddr, u16, u16)> {
        let t = self.quoted.payload;
        Some((self.quoted.src, self.quoted.dst, be16(t, 0)?, be16(t, 2)?))
    }
}

/// Reads `ip` as a destination unreachable quoting a packet of `proto`.
pub fn parse_unreachable<'a>(ip: &IpView<'a>, proto: u8) -> Option<Unreachable<'a>> {
    let m = ip.payload;
    let v6 = match (ip.src, ip.proto) {
        (IpAddr::V4(_), PROTO_ICMP) if *m.first()? == ICMP4_UNREACH => false,
        (IpAddr::V6(_), PROTO_ICMPV6) if *m.first()? == ICMP6_UNREACH => true,
        _ => return None,
    };
    let quoted = parse_ip(m.get(8..)?, true)?;
    if quoted.proto != proto {
        return None;
    }
    Some(Unreachable {
        v6,
        code: *m.get(1)?,
        from: ip.src,
        quoted,
    })
}

#[cfg(test)]
/// Writes the destination unreachable of `code` that `from` sends to `to`
/// quoting `quote` (for fake networks and tests); returns its length.
pub fn build_unreachable(
    buf: &mut [u8],
    from: IpAddr,
    to: IpAddr,
    code: u8,
    quote: &[u8],
) -> Option<usize> {
    let hl = ip_header_len(from, to)?;
    let icmp_len = 8 + quote.len();
    let b = buf.get_mut(..hl + icmp_len)?;
    b.fill(0);
    let (proto, kind) = if hl == IPV4_LEN {
        (PROTO_ICMP, ICMP4_UNREACH)
    } else {
        (PROTO_ICMPV6, ICMP6_UNREACH)
    };
    write_ip_header(&mut b[..hl], from, to, proto, icmp_len, 0)?;
    if hl == IPV4_LEN {
        b[6] = 0; // no DF on errors
        b[10..12].copy_from_slice(&[0, 0]);
        let c = fold(sum(&b[..hl], 0));
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let icmp = &mut b[hl..];
    icmp[0] = kind;
    icmp[1] = code;
    icmp[8..].copy_from_slice(quote);
    let init = if hl == IPV4_LEN {
        0
    } else {
        pseudo_sum(from, to, PROTO_ICMPV6, icmp_len)
    };
    let c = fold(sum(icmp, init));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(hl + icmp_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_unreachables_round_trip_with_valid_checksums() {
        for (s, d) in [("198.18.0.1", "198.18.0.9"), ("2001:2::1", "2001:2::9")] {
            let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let hl = ip_header_len(s, d).unwrap();
            let mut pkt = vec![0u8; hl + 8];
            write_ip_header(&mut pkt[..hl], s, d, PROTO_UDP, 8, 7).unwrap();
            pkt[hl..hl + 4].copy_from_slice(&[0xee, 0x48, 0, 53]);
            if hl == IPV4_LEN {
                assert_eq!(fold(sum(&pkt[..hl], 0)), 0);
            }
            let mut err = [0u8; 128];
            let n = build_unreachable(&mut err, d, s, 3, &pkt).unwrap();
            assert_eq!(n, hl + 8 + pkt.len());
            let ip = parse_ip(&err[..n], false).unwrap();
            let init = if hl == IPV4_LEN {
                0
            } else {
                pseudo_sum(d, s, PROTO_ICMPV6, n - hl)
            };
            assert_eq!(fold(sum(ip.payload, init)), 0);
            let u = parse_unreachable(&ip, PROTO_UDP).unwrap();
            assert_eq!((u.v6, u.code, u.from), (hl == IPV6_LEN, 3, d));
            assert_eq!((u.quoted.src, u.quoted.dst), (s, d));
            assert_eq!(be16(u.quoted.payload, 2), Some(53));
            assert!(parse_unreachable(&ip, PROTO_TCP).is_none());
        }
        let (a, b): (IpAddr, IpAddr) = ("198.18.0.1".parse().unwrap(), "::1".parse().unwrap());
        assert_eq!(ip_header_len(a, b), None);
    }

    #[test]
    fn truncated_and_garbage_headers_are_refused_without_panic() {
        let mut pkt = [0u8; 28];
        write_ip_header(
            &mut pkt[..20],
            "1.2.3.4".parse().unwrap(),
            "5.6.7.8".parse().unwrap(),
            17,
            8,
            1,
        )
        .unwrap();
        assert!(parse_ip(&pkt, false).is_some());
        for cut in 0..pkt.len() {
            assert!(parse_ip(&pkt[..cut], false).is_none(), "cut {cut}");
        }
        assert!(parse_ip(&pkt[..24], true).is_some());
        let mut junk = pkt;
        junk[0] = 0x41; // IHL below 5 words
        assert!(parse_ip(&junk, true).is_none());
    }
}
