//! Scan layer, packet codec of the SYN engine: builds TCP SYN probes (IPv4
//! and IPv6) from a fixed template and parses what comes back.
//!
//! It exists apart from the engine so every byte offset is pinned by
//! fixtures. Probes carry the options an ordinary Linux client sends (MSS,
//! SACK-permitted, timestamps, window scale) because some networks drop
//! option-less SYNs as scanner traffic. Per packet only the addresses, ports,
//! sequence number, IP ID and checksums change. Replies are untrusted
//! network input: every read is length-checked and a parse either yields a
//! [`Reply`] or `None`, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::Reason;

/// TCP header with options: 20 bytes fixed + 20 bytes options.
pub const TCP_LEN: usize = 40;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
/// Length of an IPv4 SYN probe.
pub const SYN4_LEN: usize = IPV4_LEN + TCP_LEN;
/// Length of an IPv6 SYN probe.
pub const SYN6_LEN: usize = IPV6_LEN + TCP_LEN;
/// Longest probe we build (IPv6 SYN).
pub const MAX_PROBE_LEN: usize = SYN6_LEN;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// TCP options in Linux's order: MSS 1460, SACK permitted, timestamps
/// (TSval patched per probe, TSecr 0), NOP, window scale 7.
const TCP_TEMPLATE: [u8; TCP_LEN] = [
    0, 0, 0, 0, // source port, destination port
    0, 0, 0, 0, // sequence number
    0, 0, 0, 0, // acknowledgment number
    0xa0, TCP_SYN, // data offset 10 words, flags SYN
    0xfa, 0xf0, // window 64240
    0, 0, // checksum
    0, 0, // urgent pointer
    0x02, 0x04, 0x05, 0xb4, // MSS 1460
    0x04, 0x02, // SACK permitted
    0x08, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0,    // timestamps
    0x01, // NOP
    0x03, 0x03, 0x07, // window scale 7
];

/// Fields that vary per probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeFields {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    /// IPv4 identification (ignored for IPv6).
    pub ip_id: u16,
    /// TCP timestamp value.
    pub tsval: u32,
}

/// Writes a SYN probe into `buf` and returns its length, or `None` when the
/// two addresses are of different families or `buf` is too short.
pub fn build_syn(buf: &mut [u8], p: &ProbeFields) -> Option<usize> {
    build_tcp(buf, p, TCP_SYN, 0, true)
}

/// Writes a bare RST (no options) that tears down the half-open connection a
/// SYN-ACK announced: `seq` must be the SYN-ACK's acknowledgment number.
pub fn build_rst(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
) -> Option<usize> {
    let p = ProbeFields {
        src,
        dst,
        sport,
        dport,
        seq,
        ip_id: 0,
        tsval: 0,
    };
    build_tcp(buf, &p, TCP_RST, 0, false)
}

fn build_tcp(buf: &mut [u8], p: &ProbeFields, flags: u8, ack: u32, options: bool) -> Option<usize> {
    let tcp_len = if options { TCP_LEN } else { 20 };
    let ip_len = match (p.src, p.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => IPV4_LEN,
        (IpAddr::V6(_), IpAddr::V6(_)) => IPV6_LEN,
        _ => return None,
    };
    let total = ip_len + tcp_len;
    let buf = buf.get_mut(..total)?;
    let (ip, tcp) = buf.split_at_mut(ip_len);
    tcp.copy_from_slice(&TCP_TEMPLATE[..tcp_len]);
    tcp[0..2].copy_from_slice(&p.sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&p.dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&p.seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = ((tcp_len / 4) as u8) << 4;
    tcp[13] = flags;
    if !options {
        tcp[14] = 0;
        tcp[15] = 0;
    } else {
        tcp[28..32].copy_from_slice(&p.tsval.to_be_bytes());
    }
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ip.copy_from_slice(&[
                0x45, 0, 0, 0, 0, 0, 0x40, 0, // version/IHL, TOS, length, ID, DF
                64, 6, 0, 0, // TTL, TCP, checksum
                0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&p.ip_id.to_be_bytes());
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = fold(sum(ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let pseudo = sum(&s.octets(), 0) + sum(&d.octets(), 0) + 6 + tcp_len as u32;
            let c = fold(sum(tcp, pseudo));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, 6, 64]);
            ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            let pseudo = sum(&s.octets(), 0) + sum(&d.octets(), 0) + 6 + tcp_len as u32;
            let c = fold(sum(tcp, pseudo));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
        }
        _ => return None,
    }
    Some(total)
}

/// Ones'-complement sum of 16-bit big-endian words (odd tail padded).
pub(crate) fn sum(data: &[u8], init: u32) -> u32 {
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

pub(crate) fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// What kind of answer a reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    SynAck,
    /// RST with ACK: the port is closed.
    Reset,
    /// ICMP / ICMPv6 destination unreachable, mapped to a reason.
    Unreachable(Reason),
}

/// A parsed reply, seen from the scanner: `target` answered (or an ICMP
/// error names it), `probe_seq` is the sequence number of the probe it
/// answers (SYN-ACK/RST: ack − 1; ICMP: the embedded SYN's sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub local: IpAddr,
    pub target: IpAddr,
    pub local_port: u16,
    pub target_port: u16,
    pub probe_seq: u32,
    /// The reply's own sequence number (SYN-ACK: needed for nothing but
    /// the RST we answer with, whose seq is our ack).
    pub ack: u32,
}

/// A big-endian u16 at `at`, or `None` past the end.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
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
pub(crate) struct IpView<'a> {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) proto: u8,
    pub(crate) payload: &'a [u8],
}

/// Parses an IPv4 or IPv6 header. `truncated_ok` accepts a total length
/// longer than the bytes at hand (the header embedded in an ICMP error).
pub(crate) fn parse_ip(pkt: &[u8], truncated_ok: bool) -> Option<IpView<'_>> {
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

/// Parses a reply packet starting at its IP header. Anything that is not a
/// SYN-ACK, RST-ACK or an ICMP unreachable quoting a TCP packet is `None`.
pub fn parse_reply(pkt: &[u8]) -> Option<Reply> {
    let ip = parse_ip(pkt, false)?;
    match (ip.src, ip.proto) {
        (_, 6) => {
            let t = ip.payload;
            if t.len() < 20 {
                return None;
            }
            let flags = *t.get(13)?;
            if flags & TCP_ACK == 0 {
                return None;
            }
            let kind = if flags & TCP_RST != 0 {
                ReplyKind::Reset
            } else if flags & (TCP_SYN | TCP_FIN) == TCP_SYN {
                ReplyKind::SynAck
            } else {
                return None;
            };
            let ack = be32(t, 8)?;
            Some(Reply {
                kind,
                local: ip.dst,
                target: ip.src,
                local_port: be16(t, 2)?,
                target_port: be16(t, 0)?,
                probe_seq: ack.wrapping_sub(1),
                ack,
            })
        }
        (IpAddr::V4(_), 1) => {
            let m = ip.payload;
            if *m.first()? != 3 {
                return None;
            }
            let reason = icmp4_reason(*m.get(1)?);
            quoted(m.get(8..)?, reason)
        }
        (IpAddr::V6(_), 58) => {
            let m = ip.payload;
            if *m.first()? != 1 {
                return None;
            }
            let reason = icmp6_reason(*m.get(1)?);
            quoted(m.get(8..)?, reason)
        }
        _ => None,
    }
}

/// The probe quoted in an ICMP error: its IP header plus at least the first
/// 8 bytes of TCP (ports and sequence number), which is all RFC 792 promises.
fn quoted(inner: &[u8], reason: Reason) -> Option<Reply> {
    let ip = parse_ip(inner, true)?;
    if ip.proto != 6 {
        return None;
    }
    let t = ip.payload;
    let seq = be32(t, 4)?;
    Some(Reply {
        kind: ReplyKind::Unreachable(reason),
        local: ip.src,
        target: ip.dst,
        local_port: be16(t, 0)?,
        target_port: be16(t, 2)?,
        probe_seq: seq,
        ack: 0,
    })
}

/// ICMPv4 destination-unreachable code → reason (nmap's vocabulary).
pub fn icmp4_reason(code: u8) -> Reason {
    match code {
        0 => Reason::NetUnreach,
        1 => Reason::HostUnreach,
        2 => Reason::ProtoUnreach,
        3 => Reason::PortUnreach,
        9 | 10 | 13 => Reason::AdminProhibited,
        _ => Reason::IcmpUnreach,
    }
}

/// ICMPv6 destination-unreachable code → reason (RFC 4443 §3.1).
pub fn icmp6_reason(code: u8) -> Reason {
    match code {
        0 => Reason::NetUnreach,
        1 | 5 | 6 => Reason::AdminProhibited,
        3 => Reason::HostUnreach,
        4 => Reason::PortUnreach,
        _ => Reason::IcmpUnreach,
    }
}

/// A SYN as the target sees it (used by the fake network and by tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
}

/// Parses a SYN probe (flags exactly SYN).
pub fn parse_syn(pkt: &[u8]) -> Option<Syn> {
    let ip = parse_ip(pkt, false)?;
    if ip.proto != 6 || ip.payload.len() < 20 || *ip.payload.get(13)? != TCP_SYN {
        return None;
    }
    Some(Syn {
        src: ip.src,
        dst: ip.dst,
        sport: be16(ip.payload, 0)?,
        dport: be16(ip.payload, 2)?,
        seq: be32(ip.payload, 4)?,
    })
}

/// Parses a RST (flags RST, optionally with ACK); `src`/`sport` are the
/// sender's. Used by the fake network.
pub fn parse_rst(pkt: &[u8]) -> Option<Syn> {
    let ip = parse_ip(pkt, false)?;
    if ip.proto != 6 || ip.payload.len() < 20 || *ip.payload.get(13)? & !TCP_ACK != TCP_RST {
        return None;
    }
    Some(Syn {
        src: ip.src,
        dst: ip.dst,
        sport: be16(ip.payload, 0)?,
        dport: be16(ip.payload, 2)?,
        seq: be32(ip.payload, 4)?,
    })
}

/// Builds the answer a target would send to `syn` (fake network, tests).
/// `icmp` is an unreachable code sent from `syn.dst` quoting the probe.
pub fn build_answer(buf: &mut [u8], syn_pkt: &[u8], answer: Answer) -> Option<usize> {
    let s = parse_syn(syn_pkt)?;
    match answer {
        Answer::SynAck | Answer::Reset => {
            let p = ProbeFields {
                src: s.dst,
                dst: s.src,
                sport: s.dport,
                dport: s.sport,
                seq: 0x1000_0000 ^ s.seq.rotate_left(7),
                ip_id: 1,
                tsval: 0,
            };
            let flags = if answer == Answer::SynAck {
                TCP_SYN | TCP_ACK
            } else {
                TCP_RST | TCP_ACK
            };
            build_tcp(
                buf,
                &p,
                flags,
                s.seq.wrapping_add(1),
                answer == Answer::SynAck,
            )
        }
        Answer::Unreachable(code) => {
            let quote_len = syn_pkt.len().min(match s.src {
                IpAddr::V4(_) => IPV4_LEN + 8,
                IpAddr::V6(_) => IPV6_LEN + 8,
            });
            let quote = syn_pkt.get(..quote_len)?;
            match (s.dst, s.src) {
                (IpAddr::V4(from), IpAddr::V4(to)) => {
                    let total = IPV4_LEN + 8 + quote.len();
                    let b = buf.get_mut(..total)?;
                    b.fill(0);
                    b[0] = 0x45;
                    b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                    b[8] = 64;
                    b[9] = 1;
                    b[12..16].copy_from_slice(&from.octets());
                    b[16..20].copy_from_slice(&to.octets());
                    let c = fold(sum(&b[..IPV4_LEN], 0));
                    b[10..12].copy_from_slice(&c.to_be_bytes());
                    b[20] = 3;
                    b[21] = code;
                    b[28..].copy_from_slice(quote);
                    let c = fold(sum(&b[20..], 0));
                    b[22..24].copy_from_slice(&c.to_be_bytes());
                    Some(total)
                }
                (IpAddr::V6(from), IpAddr::V6(to)) => {
                    let total = IPV6_LEN + 8 + quote.len();
                    let b = buf.get_mut(..total)?;
                    b.fill(0);
                    b[0] = 0x60;
                    b[4..6].copy_from_slice(&((8 + quote.len()) as u16).to_be_bytes());
                    b[6] = 58;
                    b[7] = 64;
                    b[8..24].copy_from_slice(&from.octets());
                    b[24..40].copy_from_slice(&to.octets());
                    b[40] = 1;
                    b[41] = code;
                    b[48..].copy_from_slice(quote);
                    let pseudo = sum(&from.octets(), 0)
                        + sum(&to.octets(), 0)
                        + 58
                        + (8 + quote.len()) as u32;
                    let c = fold(sum(&b[40..], pseudo));
                    b[42..44].copy_from_slice(&c.to_be_bytes());
                    Some(total)
                }
                _ => None,
            }
        }
    }
}

/// How the fake network answers a SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    SynAck,
    Reset,
    /// ICMP / ICMPv6 destination unreachable with this code.
    Unreachable(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields4() -> ProbeFields {
        ProbeFields {
            src: "198.18.0.1".parse().unwrap(),
            dst: "198.18.0.20".parse().unwrap(),
            sport: 61000,
            dport: 22,
            seq: 0x11223344,
            ip_id: 0xbeef,
            tsval: 0x01020304,
        }
    }

    /// Laid out by hand from RFC 791 / RFC 793; the two checksums were
    /// computed independently (Python, RFC 1071 algorithm).
    #[test]
    fn ipv4_syn_matches_fixture() {
        let mut buf = [0u8; 128];
        let n = build_syn(&mut buf, &fields4()).unwrap();
        let expect: [u8; SYN4_LEN] = [
            0x45, 0x00, 0x00, 0x3c, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x06, 0xef, 0x92, 198, 18, 0, 1,
            198, 18, 0, 20, // IPv4
            0xee, 0x48, 0x00, 0x16, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0,
            0x8a, 0x0a, 0, 0, // TCP
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 1, 2, 3, 4, 0, 0, 0, 0, 0x01, 0x03,
            0x03, 0x07,
        ];
        assert_eq!(&buf[..n], &expect[..]);
        // A correct checksum sums to zero over the header.
        assert_eq!(fold(sum(&buf[..20], 0)), 0);
    }

    #[test]
    fn ipv6_syn_layout_and_checksum() {
        let mut buf = [0u8; 128];
        let src: Ipv6Addr = "2001:2::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:2::20".parse().unwrap();
        let p = ProbeFields {
            src: src.into(),
            dst: dst.into(),
            ..fields4()
        };
        let n = build_syn(&mut buf, &p).unwrap();
        assert_eq!(n, SYN6_LEN);
        assert_eq!(&buf[..8], &[0x60, 0, 0, 0, 0, 40, 6, 64]);
        assert_eq!(&buf[8..24], &src.octets());
        assert_eq!(&buf[24..40], &dst.octets());
        assert_eq!(&buf[40..44], &[0xee, 0x48, 0x00, 0x16]);
        let pseudo = sum(&src.octets(), 0) + sum(&dst.octets(), 0) + 6 + 40;
        assert_eq!(fold(sum(&buf[40..80], pseudo)), 0);
        assert_eq!(
            parse_syn(&buf[..n]),
            Some(Syn {
                src: src.into(),
                dst: dst.into(),
                sport: 61000,
                dport: 22,
                seq: 0x11223344
            })
        );
    }

    #[test]
    fn mixed_families_are_refused() {
        let mut buf = [0u8; 128];
        let p = ProbeFields {
            dst: "2001:2::1".parse().unwrap(),
            ..fields4()
        };
        assert_eq!(build_syn(&mut buf, &p), None);
        assert_eq!(build_syn(&mut buf[..59], &fields4()), None);
    }

    /// A hand-assembled SYN-ACK as a Linux target sends it (198.18.0.20:22
    /// → 198.18.0.1:61000, ack = 0x11223345); checksums are not checked on
    /// receive (the cookie is what authenticates a reply).
    const SYNACK4: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x53, 0x7e, 198, 18, 0, 20,
        198, 18, 0, 1, 0x00, 0x16, 0xee, 0x48, 0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x45,
        0xa0, 0x12, 0xfe, 0x88, 0x12, 0x34, 0, 0, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a,
        9, 9, 9, 9, 1, 2, 3, 4, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parses_synack_fixture() {
        let r = parse_reply(&SYNACK4).unwrap();
        assert_eq!(r.kind, ReplyKind::SynAck);
        assert_eq!(r.target, "198.18.0.20".parse::<IpAddr>().unwrap());
        assert_eq!(r.local, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((r.target_port, r.local_port), (22, 61000));
        assert_eq!(r.probe_seq, 0x11223344);
        assert_eq!(r.ack, 0x11223345);
    }

    #[test]
    fn rst_without_ack_and_plain_ack_are_ignored() {
        let mut p = SYNACK4;
        p[33] = 0x04; // RST alone
        assert_eq!(parse_reply(&p), None);
        p[33] = 0x10; // ACK alone
        assert_eq!(parse_reply(&p), None);
        p[33] = 0x14; // RST+ACK
        assert_eq!(parse_reply(&p).unwrap().kind, ReplyKind::Reset);
        p[6] = 0x20;
        p[7] = 0x01; // a non-first fragment
        assert_eq!(parse_reply(&p), None);
    }

    #[test]
    fn icmp4_unreachable_names_the_probe() {
        let mut syn = [0u8; 128];
        let n = build_syn(&mut syn, &fields4()).unwrap();
        for (code, reason) in [
            (0, Reason::NetUnreach),
            (1, Reason::HostUnreach),
            (2, Reason::ProtoUnreach),
            (3, Reason::PortUnreach),
            (9, Reason::AdminProhibited),
            (10, Reason::AdminProhibited),
            (13, Reason::AdminProhibited),
            (4, Reason::IcmpUnreach),
        ] {
            let mut buf = [0u8; 256];
            let m = build_answer(&mut buf, &syn[..n], Answer::Unreachable(code)).unwrap();
            assert_eq!(m, 20 + 8 + 28);
            let r = parse_reply(&buf[..m]).unwrap();
            assert_eq!(r.kind, ReplyKind::Unreachable(reason));
            assert_eq!(r.target, fields4().dst);
            assert_eq!(r.local, fields4().src);
            assert_eq!(
                (r.local_port, r.target_port, r.probe_seq),
                (61000, 22, 0x11223344)
            );
        }
    }

    /// ICMPv4 fixture: host unreachable from a router 198.18.0.254 quoting
    /// our probe's first 28 bytes (the RFC 792 minimum).
    #[test]
    fn icmp4_fixture_with_minimal_quote() {
        let mut syn = [0u8; 128];
        build_syn(&mut syn, &fields4()).unwrap();
        let mut pkt = vec![
            0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 254, 198, 18, 0, 1, // IP
            3, 1, 0, 0, 0, 0, 0, 0, // ICMP type 3 code 1
        ];
        pkt.extend_from_slice(&syn[..28]);
        let r = parse_reply(&pkt).unwrap();
        assert_eq!(r.kind, ReplyKind::Unreachable(Reason::HostUnreach));
        assert_eq!(r.target, "198.18.0.20".parse::<IpAddr>().unwrap());
        assert_eq!(r.probe_seq, 0x11223344);
        // One byte short of the quoted ports + sequence: rejected.
        assert_eq!(parse_reply(&pkt[..pkt.len() - 1]), None);
    }

    #[test]
    fn icmp6_codes_map() {
        let src: Ipv6Addr = "2001:2::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:2::20".parse().unwrap();
        let mut syn = [0u8; 128];
        let n = build_syn(
            &mut syn,
            &ProbeFields {
                src: src.into(),
                dst: dst.into(),
                ..fields4()
            },
        )
        .unwrap();
        let expect = [
            Reason::NetUnreach,
            Reason::AdminProhibited,
            Reason::IcmpUnreach,
            Reason::HostUnreach,
            Reason::PortUnreach,
            Reason::AdminProhibited,
            Reason::AdminProhibited,
        ];
        for (code, reason) in expect.into_iter().enumerate() {
            let mut buf = [0u8; 256];
            let m = build_answer(&mut buf, &syn[..n], Answer::Unreachable(code as u8)).unwrap();
            let r = parse_reply(&buf[..m]).unwrap();
            assert_eq!(r.kind, ReplyKind::Unreachable(reason), "code {code}");
            assert_eq!((r.target, r.local), (IpAddr::V6(dst), IpAddr::V6(src)));
            assert_eq!(r.probe_seq, 0x11223344);
        }
    }

    #[test]
    fn answers_round_trip_for_both_families() {
        for (s, d) in [("198.18.0.1", "198.18.0.9"), ("2001:2::1", "2001:2::9")] {
            let f = ProbeFields {
                src: s.parse().unwrap(),
                dst: d.parse().unwrap(),
                ..fields4()
            };
            let mut syn = [0u8; 128];
            let n = build_syn(&mut syn, &f).unwrap();
            for (a, k) in [
                (Answer::SynAck, ReplyKind::SynAck),
                (Answer::Reset, ReplyKind::Reset),
            ] {
                let mut buf = [0u8; 256];
                let m = build_answer(&mut buf, &syn[..n], a).unwrap();
                let r = parse_reply(&buf[..m]).unwrap();
                assert_eq!(r.kind, k);
                assert_eq!(
                    (r.target, r.target_port, r.local_port, r.probe_seq),
                    (f.dst, 22, 61000, f.seq)
                );
            }
        }
    }

    #[test]
    fn never_panics_on_garbage_or_truncation() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut syn = [0u8; 128];
        let n = build_syn(&mut syn, &fields4()).unwrap();
        let mut icmp = [0u8; 256];
        let m = build_answer(&mut icmp, &syn[..n], Answer::Unreachable(3)).unwrap();
        let seeds: Vec<Vec<u8>> = vec![SYNACK4.to_vec(), icmp[..m].to_vec(), syn[..n].to_vec()];
        for s in &seeds {
            for cut in 0..s.len() {
                let _ = parse_reply(&s[..cut]);
                let _ = parse_syn(&s[..cut]);
            }
        }
        for round in 0..20_000 {
            let mut p = seeds[round % seeds.len()].clone();
            let flips = (next() % 6) as usize;
            for _ in 0..flips {
                let i = (next() as usize) % p.len();
                p[i] = next() as u8;
            }
            let cut = (next() as usize) % (p.len() + 1);
            let _ = parse_reply(&p[..cut]);
            let len = (next() % 100) as usize;
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_reply(&junk);
            let _ = parse_syn(&junk);
        }
    }
}
