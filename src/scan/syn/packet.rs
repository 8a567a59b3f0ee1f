//! Scan layer, packet codec of the SYN engine: builds TCP SYN probes (IPv4
//! and IPv6) from a fixed template and parses what comes back.
//!
//! It exists apart from the engine so every byte offset is pinned by
//! fixtures. Probes carry the options an ordinary Linux client sends (MSS,
//! SACK-permitted, timestamps, window scale) because some networks drop
//! option-less SYNs as scanner traffic. Per packet only the addresses, ports,
//! sequence number, IP ID and checksums change. Replies are untrusted
//! network input: every read is length-checked and a parse either yields a
//! [`Reply`] or `None`, never a panic. The IP and ICMP layers are
//! [`crate::scan::raw::wire`]'s.

use std::net::IpAddr;

use crate::model::Reason;
pub use crate::scan::raw::wire::IPV6_LEN;
#[cfg(test)]
use crate::scan::raw::wire::{IPV4_LEN, build_unreachable};
use crate::scan::raw::wire::{
    PROTO_TCP, be16, be32, fold, ip_header_len, parse_ip, parse_unreachable, pseudo_sum, sum,
    write_ip_header,
};
use crate::scan::raw::{io::FromWire, unreachable_reason};

/// TCP header with options: 20 bytes fixed + 20 bytes options.
pub const TCP_LEN: usize = 40;
#[cfg(test)]
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
    let ip_len = ip_header_len(p.src, p.dst)?;
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
    write_ip_header(ip, p.src, p.dst, PROTO_TCP, tcp_len, p.ip_id)?;
    let c = fold(sum(tcp, pseudo_sum(p.src, p.dst, PROTO_TCP, tcp_len)));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    Some(total)
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

/// Parses a reply packet starting at its IP header. Anything that is not a
/// SYN-ACK, RST-ACK or an ICMP unreachable quoting a TCP packet is `None`.
pub fn parse_reply(pkt: &[u8]) -> Option<Reply> {
    let ip = parse_ip(pkt, false)?;
    match ip.proto {
        PROTO_TCP => {
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
        _ => {
            // The probe quoted in an ICMP error: its IP header plus at
            // least 8 bytes of TCP (ports and sequence number), which is all
            // RFC 792 promises.
            let u = parse_unreachable(&ip, PROTO_TCP)?;
            let (local, target, local_port, target_port) = u.probe()?;
            Some(Reply {
                kind: ReplyKind::Unreachable(unreachable_reason(u.v6, u.code)),
                local,
                target,
                local_port,
                target_port,
                probe_seq: be32(u.quoted.payload, 4)?,
                ack: 0,
            })
        }
    }
}

impl FromWire for Reply {
    fn parse(pkt: &[u8]) -> Option<Reply> {
        parse_reply(pkt)
    }
}

#[cfg(test)]
/// A SYN as the target sees it (used by the fake network and by tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
}

#[cfg(test)]
/// Parses a SYN probe (flags exactly SYN).
pub fn parse_syn(pkt: &[u8]) -> Option<Syn> {
    parse_segment(pkt, |flags| flags == TCP_SYN)
}

#[cfg(test)]
/// Parses a RST (flags RST, optionally with ACK); `src`/`sport` are the
/// sender's. Used by the fake network.
pub fn parse_rst(pkt: &[u8]) -> Option<Syn> {
    parse_segment(pkt, |flags| flags & !TCP_ACK == TCP_RST)
}

#[cfg(test)]
/// A TCP segment whose flags pass `flags_ok`.
fn parse_segment(pkt: &[u8], flags_ok: impl Fn(u8) -> bool) -> Option<Syn> {
    let ip = parse_ip(pkt, false)?;
    if ip.proto != PROTO_TCP || ip.payload.len() < 20 || !flags_ok(*ip.payload.get(13)?) {
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

#[cfg(test)]
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
            let quote_len = syn_pkt.len().min(ip_header_len(s.src, s.dst)? + 8);
            build_unreachable(buf, s.dst, s.src, code, syn_pkt.get(..quote_len)?)
        }
    }
}

#[cfg(test)]
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
    use std::net::Ipv6Addr;

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
