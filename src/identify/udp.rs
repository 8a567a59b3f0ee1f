//! Identify layer: what a UDP answer says about its service.
//!
//! The UDP engine sends each port a request of its protocol
//! (`rules/udp-payloads.toml`), so the answer is already the identification
//! exchange: this module reads it. It records facts, never verdicts:
//! SNMP's sysDescr and the community that was accepted, whether a DNS
//! server offers recursion, NTP's version and stratum (and whether it
//! answered monlist), memcached's version, the SSDP SERVER header. The
//! policy layer decides what they mean (open resolver, amplifier, default
//! community). Every answer is hostile input: each parser checks lengths
//! before reading, and everything kept is escaped and bounded.

use std::collections::BTreeMap;

use crate::model::{AuthStatus, ServiceInfo};

use super::{BANNER_MAX, escape_bytes};

/// Longest product / version text kept.
const FIELD_MAX: usize = 160;

/// Reads the answer `reply` to a UDP probe; `hint` is the service the
/// probe's payload spoke to (`None`: an empty datagram was sent).
pub fn describe(hint: Option<&str>, reply: &[u8]) -> ServiceInfo {
    let mut info = ServiceInfo {
        name: hint.unwrap_or("unknown").to_string(),
        banner: (!reply.is_empty()).then(|| escape_bytes(reply, BANNER_MAX)),
        confidence: 0.5,
        ..ServiceInfo::default()
    };
    let found = match hint {
        Some("dns") | Some("mdns") => dns(reply, &mut info),
        Some("snmp") => snmp(reply, &mut info),
        Some("ntp") => ntp(reply, &mut info),
        Some("memcached") => memcached(reply, &mut info),
        Some("ssdp") => ssdp(reply, &mut info),
        Some("ldap") => cldap(reply, &mut info),
        Some("chargen") | Some("qotd") | Some("echo") => {
            info.extra
                .insert("reply_bytes".into(), reply.len().to_string());
            true
        }
        _ => false,
    };
    if found {
        info.confidence = 0.9;
    }
    info
}

/// DNS: a well-formed response to our query; RA says recursion is offered.
fn dns(reply: &[u8], info: &mut ServiceInfo) -> bool {
    use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
    let Ok(m) = Message::from_vec(reply) else {
        return false;
    };
    if m.metadata.message_type != MessageType::Response {
        return false;
    }
    let ra = m.metadata.recursion_available;
    info.extra.insert(
        "recursion".into(),
        if ra { "available" } else { "not-available" }.into(),
    );
    let rcode = m.metadata.response_code;
    info.extra.insert("rcode".into(), rcode.to_str().into());
    // An open resolver: recursion offered, and the query answered (not
    // refused) for a stranger.
    let answered = matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain);
    info.extra.insert(
        "resolves".into(),
        if ra && answered { "yes" } else { "no" }.into(),
    );
    true
}

/// NTP: mode 4 (server) answers carry version and stratum; a mode 7
/// answer to monlist (request 42) means the server lists its clients.
fn ntp(reply: &[u8], info: &mut ServiceInfo) -> bool {
    let Some(&b0) = reply.first() else {
        return false;
    };
    let (version, mode) = ((b0 >> 3) & 7, b0 & 7);
    match mode {
        4 if reply.len() >= 48 => {
            info.version = Some(format!("NTPv{version}"));
            info.extra.insert("stratum".into(), reply[1].to_string());
            true
        }
        7 if reply.len() >= 8 && reply[3] == 42 => {
            info.extra.insert("monlist".into(), "answered".into());
            true
        }
        _ => false,
    }
}

/// memcached over UDP: 8-byte frame header, then text (`STAT version …`).
fn memcached(reply: &[u8], info: &mut ServiceInfo) -> bool {
    let Some(text) = reply.get(8..) else {
        return false;
    };
    let text = String::from_utf8_lossy(text);
    if !text.starts_with("STAT ") {
        return false;
    }
    if let Some(v) = text
        .lines()
        .find_map(|l| l.strip_prefix("STAT version "))
        .map(|v| escape_bytes(v.trim().as_bytes(), FIELD_MAX))
    {
        info.version = Some(v);
    }
    info.product = Some("memcached".into());
    info.auth = AuthStatus::None;
    true
}

/// SSDP: an HTTP-like answer; SERVER names the device stack.
fn ssdp(reply: &[u8], info: &mut ServiceInfo) -> bool {
    let text = String::from_utf8_lossy(&reply[..reply.len().min(4096)]);
    if !text.starts_with("HTTP/1.1 200") {
        return false;
    }
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("server")
        {
            info.product = Some(escape_bytes(v.trim().as_bytes(), FIELD_MAX));
        }
    }
    true
}

/// CLDAP: any LDAP message (a SEQUENCE holding a message id) in return.
fn cldap(reply: &[u8], info: &mut ServiceInfo) -> bool {
    let Some((0x30, body, _)) = tlv(reply) else {
        return false;
    };
    matches!(tlv(body), Some((0x02, _, _))) && {
        info.extra.insert("cldap".into(), "answered".into());
        true
    }
}

/// SNMP: `SEQUENCE { version, community, GetResponse { id, status, index,
/// SEQUENCE { SEQUENCE { OID, value } } } }`. An answer without error
/// proves the community; the first varbind's OCTET STRING is sysDescr.
fn snmp(reply: &[u8], info: &mut ServiceInfo) -> bool {
    let parsed = (|| {
        let (0x30, msg, _) = tlv(reply)? else {
            return None;
        };
        let (0x02, version, rest) = tlv(msg)? else {
            return None;
        };
        let (0x04, community, rest) = tlv(rest)? else {
            return None;
        };
        let (0xa2, pdu, _) = tlv(rest)? else {
            return None;
        };
        let (0x02, _id, rest) = tlv(pdu)? else {
            return None;
        };
        let (0x02, status, rest) = tlv(rest)? else {
            return None;
        };
        let (0x02, _index, rest) = tlv(rest)? else {
            return None;
        };
        let (0x30, list, _) = tlv(rest)? else {
            return None;
        };
        let (0x30, bind, _) = tlv(list)? else {
            return None;
        };
        let (0x06, _oid, rest) = tlv(bind)? else {
            return None;
        };
        let (tag, value, _) = tlv(rest)?;
        let descr = (tag == 0x04).then_some(value);
        Some((
            version.to_vec(),
            community,
            status.iter().all(|&b| b == 0),
            descr,
        ))
    })();
    let Some((version, community, ok, descr)) = parsed else {
        return false;
    };
    info.version = Some(match version.as_slice() {
        [0] => "v1".into(),
        [1] => "v2c".into(),
        _ => "v3".into(),
    });
    if ok {
        info.extra
            .insert("community".into(), escape_bytes(community, FIELD_MAX));
        info.auth = AuthStatus::None;
    }
    if let Some(d) = descr {
        info.product = Some(escape_bytes(d, FIELD_MAX));
    }
    true
}

/// One BER tag-length-value: (tag, value, rest), through the TCP probes'
/// BER reader (single-byte tags, definite lengths up to 4 bytes).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (tag, value, total) = super::wire::ber(b)?;
    Some((tag, value, b.get(total..)?))
}

/// Facts a policy reads back (kept in one place so their names agree).
pub fn fact<'a>(extra: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    extra.get(key).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_response_gives_sysdescr_and_community() {
        // GetResponse v2c, community public, sysDescr.0 = "Linux lab 6.1"
        let descr = b"Linux lab 6.1";
        let mut bind = vec![0x06, 8, 0x2b, 6, 1, 2, 1, 1, 1, 0, 0x04, descr.len() as u8];
        bind.extend_from_slice(descr);
        let mut list = vec![0x30, bind.len() as u8];
        list.extend(&bind);
        let mut vbl = vec![0x30, list.len() as u8];
        vbl.extend(&list);
        let mut pdu_body = vec![0x02, 4, 0x70, 0x77, 0, 1, 0x02, 1, 0, 0x02, 1, 0];
        pdu_body.extend(&vbl);
        let mut msg_body = vec![0x02, 1, 1, 0x04, 6];
        msg_body.extend(b"public");
        msg_body.push(0xa2);
        msg_body.push(pdu_body.len() as u8);
        msg_body.extend(&pdu_body);
        let mut msg = vec![0x30, msg_body.len() as u8];
        msg.extend(&msg_body);
        let i = describe(Some("snmp"), &msg);
        assert_eq!(i.name, "snmp");
        assert_eq!(i.product.as_deref(), Some("Linux lab 6.1"));
        assert_eq!(i.version.as_deref(), Some("v2c"));
        assert_eq!(fact(&i.extra, "community"), Some("public"));
        assert_eq!(i.auth, AuthStatus::None);
        // Every truncation is refused without panicking.
        for n in 0..msg.len() {
            let t = describe(Some("snmp"), &msg[..n]);
            assert!(fact(&t.extra, "community").is_none());
        }
    }

    #[test]
    fn dns_recursion_is_read_from_the_answer() {
        use hickory_resolver::proto::op::{Message, MessageType, Query, ResponseCode};
        use hickory_resolver::proto::rr::{Name, RecordType};
        let mut m = Message::query();
        m.metadata.message_type = MessageType::Response;
        m.metadata.recursion_available = true;
        m.add_query(Query::query(Name::root(), RecordType::NS));
        let bytes = m.to_vec().unwrap();
        let i = describe(Some("dns"), &bytes);
        assert_eq!(fact(&i.extra, "recursion"), Some("available"));
        assert_eq!(fact(&i.extra, "resolves"), Some("yes"));
        m.metadata.response_code = ResponseCode::Refused;
        let i = describe(Some("dns"), &m.to_vec().unwrap());
        assert_eq!(fact(&i.extra, "resolves"), Some("no"));
        assert_eq!(fact(&i.extra, "rcode"), Some("Query Refused"));
        m.metadata.response_code = ResponseCode::NoError;
        m.metadata.recursion_available = false;
        let i = describe(Some("dns"), &m.to_vec().unwrap());
        assert_eq!(fact(&i.extra, "recursion"), Some("not-available"));
        // A query echoed back is not an answer.
        let i = describe(Some("dns"), &Message::query().to_vec().unwrap());
        assert!(fact(&i.extra, "recursion").is_none());
    }

    #[test]
    fn ntp_memcached_ssdp() {
        let mut ntp = vec![0u8; 48];
        ntp[0] = 0x24; // v4, mode 4
        ntp[1] = 3;
        let i = describe(Some("ntp"), &ntp);
        assert_eq!(i.version.as_deref(), Some("NTPv4"));
        assert_eq!(fact(&i.extra, "stratum"), Some("3"));
        let i = describe(Some("ntp"), &[0x17, 0x80, 0x03, 42, 0, 0, 0, 0]);
        assert_eq!(fact(&i.extra, "monlist"), Some("answered"));
        assert!(describe(Some("ntp"), &ntp[..20]).version.is_none());

        let mut mc = vec![0, 1, 0, 0, 0, 1, 0, 0];
        mc.extend_from_slice(b"STAT pid 1\r\nSTAT version 1.6.21\r\nEND\r\n");
        let i = describe(Some("memcached"), &mc);
        assert_eq!(i.version.as_deref(), Some("1.6.21"));
        assert_eq!(i.auth, AuthStatus::None);

        let ssdp =
            b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nSERVER: Linux/6.1 UPnP/1.0 lab/1.0\r\n\r\n";
        let i = describe(Some("ssdp"), ssdp);
        assert_eq!(i.product.as_deref(), Some("Linux/6.1 UPnP/1.0 lab/1.0"));
        let i = describe(
            Some("ssdp"),
            b"HTTP/1.1 200 OK\r\nSERVER: \x1b[31mx\r\n\r\n",
        );
        assert_eq!(i.product.as_deref(), Some("\\x1b[31mx"));
    }

    #[test]
    fn unknown_answers_keep_an_escaped_banner() {
        let i = describe(None, b"hi\x00\xff");
        assert_eq!(i.name, "unknown");
        assert_eq!(i.banner.as_deref(), Some("hi\\x00\\xff"));
        assert!(describe(None, b"").banner.is_none());
    }

    #[test]
    fn ber_lengths_are_checked() {
        assert_eq!(
            tlv(&[0x04, 2, b'a', b'b', 9]),
            Some((0x04, &b"ab"[..], &[9][..]))
        );
        assert_eq!(tlv(&[0x04, 3, b'a']), None);
        assert_eq!(
            tlv(&[0x04, 0x81, 2, b'a', b'b']),
            Some((0x04, &b"ab"[..], &[][..]))
        );
        assert_eq!(tlv(&[0x04, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(tlv(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
