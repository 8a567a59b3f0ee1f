//! Identify layer, binary protocols: the request builders and checked
//! parsers for services that need more than a text pattern (MongoDB,
//! PostgreSQL, MS SQL, RDP, SMB, LDAP, AMQP, Kafka). Every parser reads
//! lengths before fields and returns `None` on anything malformed, since
//! the bytes come from whoever answers the port.

use tokio::net::TcpStream;

use super::{Ctx, Found, ProbeOutcome, ServiceInfo, Until, escape_bytes};
use crate::model::AuthStatus;
use crate::rules::probes::{Parser, Probe};

/// Runs a code-backed probe on `stream`.
pub(super) async fn probe(
    ctx: &Ctx<'_>,
    parser: Parser,
    probe: &Probe,
    mut stream: TcpStream,
) -> ProbeOutcome {
    let payload = probe.payload_for(&ctx.host_header());
    let (info, reply) = match parser {
        Parser::MongoDb => mongodb(ctx, &mut stream).await,
        Parser::Postgresql => postgresql(ctx, &mut stream, &payload).await,
        Parser::Mssql => simple(ctx, &mut stream, &payload, &tds_complete, parse_mssql).await,
        Parser::Rdp => simple(ctx, &mut stream, &payload, &tpkt_complete, parse_rdp).await,
        Parser::Smb => simple(ctx, &mut stream, &payload, &netbios_complete, parse_smb).await,
        Parser::Ldap => simple(ctx, &mut stream, &payload, &ber_complete, parse_ldap).await,
        Parser::Amqp => simple(ctx, &mut stream, &payload, &amqp_complete, parse_amqp).await,
        Parser::Kafka => simple(ctx, &mut stream, &payload, &kafka_complete, parse_kafka).await,
        // Dispatched elsewhere; listed so a new parser is not forgotten.
        Parser::Tls | Parser::Http => (None, Vec::new()),
    };
    match info {
        Some(mut info) => {
            if let Some(hit) = probe.match_response(&reply) {
                info.product = info.product.or(hit.product);
                info.version = info.version.or(hit.version);
            }
            ProbeOutcome::found(Found {
                info,
                first_bytes: reply,
            })
        }
        None => ProbeOutcome::nothing(reply),
    }
}

type ParseFn = fn(&[u8]) -> Option<ServiceInfo>;

async fn simple(
    ctx: &Ctx<'_>,
    s: &mut TcpStream,
    payload: &[u8],
    done: &(dyn Fn(&[u8]) -> bool + Sync),
    parse: ParseFn,
) -> (Option<ServiceInfo>, Vec<u8>) {
    let Some(reply) = ctx.exchange(s, payload, Until::Done(done)).await else {
        return (None, Vec::new());
    };
    (parse(&reply), reply)
}

fn svc(name: &str, product: Option<&str>, confidence: f32) -> ServiceInfo {
    ServiceInfo {
        name: name.into(),
        product: product.map(str::to_string),
        confidence,
        ..ServiceInfo::default()
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

// --- MongoDB ---------------------------------------------------------------

const OP_MSG: u32 = 2013;

/// A BSON document of int32, string and boolean fields.
fn bson_doc(fields: &[(&str, BsonIn<'_>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        match v {
            BsonIn::Int(i) => {
                body.push(0x10);
                body.extend_from_slice(k.as_bytes());
                body.push(0);
                body.extend_from_slice(&i.to_le_bytes());
            }
            BsonIn::Str(s) => {
                body.push(0x02);
                body.extend_from_slice(k.as_bytes());
                body.push(0);
                body.extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
                body.extend_from_slice(s.as_bytes());
                body.push(0);
            }
            BsonIn::Bool(b) => {
                body.push(0x08);
                body.extend_from_slice(k.as_bytes());
                body.push(0);
                body.push(u8::from(*b));
            }
        }
    }
    let mut doc = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    doc.extend_from_slice(&body);
    doc.push(0);
    doc
}

enum BsonIn<'a> {
    Int(i32),
    Str(&'a str),
    Bool(bool),
}

/// An OP_MSG carrying one command document.
pub(super) fn op_msg(request_id: i32, doc: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + 1 + doc.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as i32).to_le_bytes());
    m.extend_from_slice(&request_id.to_le_bytes());
    m.extend_from_slice(&0i32.to_le_bytes());
    m.extend_from_slice(&OP_MSG.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.push(0);
    m.extend_from_slice(doc);
    m
}

fn mongo_complete(b: &[u8]) -> bool {
    le32(b, 0).is_some_and(|n| b.len() >= n as usize)
}

/// The body document of an OP_MSG reply.
pub(super) fn op_msg_doc(b: &[u8]) -> Option<&[u8]> {
    let len = le32(b, 0)? as usize;
    if le32(b, 12)? != OP_MSG || len > b.len() || b.get(20)? != &0 {
        return None;
    }
    let doc = b.get(21..len)?;
    let dlen = le32(doc, 0)? as usize;
    doc.get(..dlen)
}

/// A top-level BSON value we care about.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bson {
    Num(f64),
    Str(String),
    Bool(bool),
    Other,
}

/// Looks a top-level field up in a BSON document.
pub(super) fn bson_get(doc: &[u8], key: &str) -> Option<Bson> {
    let end = (le32(doc, 0)? as usize).min(doc.len());
    let mut i = 4;
    while i < end {
        let t = *doc.get(i)?;
        if t == 0 {
            return None;
        }
        let name_len = doc.get(i + 1..end)?.iter().position(|&c| c == 0)?;
        let name = doc.get(i + 1..i + 1 + name_len)?;
        let v = i + 2 + name_len;
        let (val, size) = match t {
            0x01 => (
                Bson::Num(f64::from_le_bytes(doc.get(v..v + 8)?.try_into().ok()?)),
                8,
            ),
            0x02 => {
                let n = le32(doc, v)? as usize;
                let s = doc.get(v + 4..(v + 4).checked_add(n)?)?;
                let s = s.strip_suffix(&[0]).unwrap_or(s);
                (Bson::Str(String::from_utf8_lossy(s).into_owned()), 4 + n)
            }
            0x03 | 0x04 => (Bson::Other, le32(doc, v)? as usize),
            0x05 => (Bson::Other, 5 + le32(doc, v)? as usize),
            0x07 => (Bson::Other, 12),
            0x08 => (Bson::Bool(*doc.get(v)? != 0), 1),
            0x09 | 0x11 => (Bson::Other, 8),
            0x0A => (Bson::Other, 0),
            0x10 => (Bson::Num(f64::from(le32(doc, v)? as i32)), 4),
            0x12 => (
                Bson::Num(i64::from_le_bytes(doc.get(v..v + 8)?.try_into().ok()?) as f64),
                8,
            ),
            0x13 => (Bson::Other, 16),
            _ => return None,
        };
        if name == key.as_bytes() {
            return Some(val);
        }
        i = v.checked_add(size)?;
    }
    None
}

fn bson_ok(doc: &[u8]) -> Option<bool> {
    match bson_get(doc, "ok")? {
        Bson::Num(n) => Some(n == 1.0),
        Bson::Bool(b) => Some(b),
        _ => None,
    }
}

async fn mongo_command(ctx: &Ctx<'_>, s: &mut TcpStream, id: i32, doc: &[u8]) -> Option<Vec<u8>> {
    let reply = ctx
        .exchange(s, &op_msg(id, doc), Until::Done(&mongo_complete))
        .await?;
    op_msg_doc(&reply).map(<[u8]>::to_vec)
}

async fn mongodb(ctx: &Ctx<'_>, s: &mut TcpStream) -> (Option<ServiceInfo>, Vec<u8>) {
    let hello = bson_doc(&[("hello", BsonIn::Int(1)), ("$db", BsonIn::Str("admin"))]);
    let Some(reply) = ctx
        .exchange(s, &op_msg(1, &hello), Until::Done(&mongo_complete))
        .await
    else {
        return (None, Vec::new());
    };
    let Some(doc) = op_msg_doc(&reply) else {
        return (None, reply);
    };
    if bson_get(doc, "maxWireVersion").is_none() && bson_ok(doc).is_none() {
        return (None, reply);
    }
    let mut info = svc("mongodb", Some("MongoDB"), 0.95);
    if let Some(b) = mongo_command(
        ctx,
        s,
        2,
        &bson_doc(&[("buildInfo", BsonIn::Int(1)), ("$db", BsonIn::Str("admin"))]),
    )
    .await
        && let Some(Bson::Str(v)) = bson_get(&b, "version")
    {
        info.version = Some(escape_bytes(v.as_bytes(), 32));
    }
    let list = bson_doc(&[
        ("listDatabases", BsonIn::Int(1)),
        ("nameOnly", BsonIn::Bool(true)),
        ("$db", BsonIn::Str("admin")),
    ]);
    if let Some(d) = mongo_command(ctx, s, 3, &list).await {
        info.auth = match bson_ok(&d) {
            Some(true) => AuthStatus::None,
            Some(false) => AuthStatus::Required,
            None => AuthStatus::Unknown,
        };
    }
    (Some(info), reply)
}

// --- PostgreSQL ------------------------------------------------------------

/// A protocol 3.0 StartupMessage for user and database `postgres`.
pub(super) fn pg_startup() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x0003_0000u32.to_be_bytes());
    for kv in ["user", "postgres", "database", "postgres"] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

/// What the answer to a StartupMessage says about authentication.
pub(super) fn pg_auth(reply: &[u8]) -> Option<AuthStatus> {
    match reply.first()? {
        b'R' => {
            let code = be32(reply, 5)?;
            Some(if code == 0 {
                AuthStatus::None
            } else {
                AuthStatus::Required
            })
        }
        // An error here is pg_hba refusing us: no way in without changes.
        b'E' => Some(AuthStatus::Required),
        _ => None,
    }
}

fn pg_msg_complete(b: &[u8]) -> bool {
    be32(b, 1).is_some_and(|n| b.len() > n as usize)
}

async fn postgresql(
    ctx: &Ctx<'_>,
    s: &mut TcpStream,
    ssl_request: &[u8],
) -> (Option<ServiceInfo>, Vec<u8>) {
    let Some(reply) = ctx
        .exchange(s, ssl_request, Until::Done(&|b: &[u8]| !b.is_empty()))
        .await
    else {
        return (None, Vec::new());
    };
    let ssl = match reply.as_slice() {
        b"S" => true,
        b"N" => false,
        _ => return (None, reply),
    };
    let mut info = svc("postgresql", Some("PostgreSQL"), 0.9);
    info.extra.insert("ssl".into(), ssl.to_string());
    // Whether a login as `postgres` is let in without a password tells
    // "trust" authentication apart; a fresh connection skips the TLS the
    // server may have agreed to.
    if let Ok(mut s2) = ctx.connect().await
        && let Some(r) = ctx
            .exchange(&mut s2, &pg_startup(), Until::Done(&pg_msg_complete))
            .await
        && let Some(a) = pg_auth(&r)
    {
        info.auth = a;
        info.confidence = 0.97;
    }
    (Some(info), reply)
}

// --- MS SQL (TDS) ------------------------------------------------------------

fn tds_complete(b: &[u8]) -> bool {
    be16(b, 2).is_some_and(|n| b.len() >= n as usize)
}

/// A TDS PRELOGIN response: version from the VERSION option.
pub(super) fn parse_mssql(b: &[u8]) -> Option<ServiceInfo> {
    if *b.first()? != 0x04 {
        return None;
    }
    let len = (be16(b, 2)? as usize).min(b.len());
    let payload = b.get(8..len)?;
    let mut info = svc("mssql", Some("Microsoft SQL Server"), 0.9);
    let mut i = 0;
    let mut saw_version = false;
    while let Some(&token) = payload.get(i) {
        if token == 0xff {
            break;
        }
        let off = be16(payload, i + 1)? as usize;
        let olen = be16(payload, i + 3)? as usize;
        let data = payload.get(off..off.checked_add(olen)?)?;
        match token {
            0 if olen >= 4 => {
                info.version = Some(format!("{}.{}.{}", data[0], data[1], be16(data, 2)?));
                saw_version = true;
            }
            1 if olen >= 1 => {
                let e = match data[0] {
                    0 => "off",
                    1 => "on",
                    2 => "not-supported",
                    3 => "required",
                    _ => "other",
                };
                info.extra.insert("encryption".into(), e.into());
            }
            _ => {}
        }
        i += 5;
    }
    saw_version.then(|| {
        info.confidence = 0.95;
        info
    })
}

// --- RDP -------------------------------------------------------------------

fn tpkt_complete(b: &[u8]) -> bool {
    be16(b, 2).is_some_and(|n| b.len() >= n as usize)
}

/// An X.224 Connection Confirm, with the negotiated security protocol.
pub(super) fn parse_rdp(b: &[u8]) -> Option<ServiceInfo> {
    if b.get(..2)? != [3, 0] || b.get(5)? & 0xf0 != 0xd0 {
        return None;
    }
    let mut info = svc("rdp", Some("Microsoft Terminal Services"), 0.9);
    match b.get(11) {
        Some(2) => {
            let proto = le32(b, 15)?;
            let name = match proto {
                0 => "rdp",
                1 => "tls",
                2 | 3 => "credssp",
                8 => "rdstls",
                _ => "other",
            };
            info.extra.insert("security".into(), name.into());
            // With CredSSP (NLA) credentials are checked before a session
            // exists; otherwise anyone gets a login screen.
            info.extra
                .insert("nla".into(), matches!(proto, 2 | 3 | 8).to_string());
            if matches!(proto, 2 | 3 | 8) {
                info.auth = AuthStatus::Required;
            }
            info.confidence = 0.97;
        }
        Some(3) => {
            info.extra.insert(
                "negotiation_failure".into(),
                le32(b, 15).unwrap_or(0).to_string(),
            );
            info.confidence = 0.95;
        }
        _ => {}
    }
    Some(info)
}

// --- SMB -------------------------------------------------------------------

fn netbios_complete(b: &[u8]) -> bool {
    be32(b, 0).is_some_and(|n| b.len() >= 4 + (n & 0x00ff_ffff) as usize)
}

/// An SMB2 NEGOTIATE response (or an SMB1 one from an old server).
pub(super) fn parse_smb(b: &[u8]) -> Option<ServiceInfo> {
    let msg = b.get(4..)?;
    let mut info = svc("smb", None, 0.95);
    if msg.starts_with(b"\xffSMB") {
        info.extra
            .insert("dialect".into(), "NT LM 0.12 (SMB1)".into());
        info.extra.insert("smb1".into(), "true".into());
        return Some(info);
    }
    if !msg.starts_with(b"\xfeSMB") {
        return None;
    }
    let resp = msg.get(64..)?;
    if le16(resp, 0)? != 65 {
        return None;
    }
    let mode = le16(resp, 2)?;
    let dialect = le16(resp, 4)?;
    let d = match dialect {
        0x0202 => "2.0.2".to_string(),
        0x0210 => "2.1".to_string(),
        0x0300 => "3.0".to_string(),
        0x0302 => "3.0.2".to_string(),
        0x0311 => "3.1.1".to_string(),
        o => format!("0x{o:04x}"),
    };
    info.extra.insert("dialect".into(), d);
    info.extra
        .insert("signing_required".into(), (mode & 0x02 != 0).to_string());
    Some(info)
}

// --- LDAP ------------------------------------------------------------------

/// One BER element: (tag, content, total length).
pub(super) fn ber(b: &[u8]) -> Option<(u8, &[u8], usize)> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let content = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, content, hdr + len))
}

fn ber_complete(b: &[u8]) -> bool {
    ber(b).is_some()
}

/// The answer to our rootDSE search: an entry (anonymous read allowed) or a
/// result with an error code.
pub(super) fn parse_ldap(b: &[u8]) -> Option<ServiceInfo> {
    let (tag, msg, _) = ber(b)?;
    if tag != 0x30 {
        return None;
    }
    let (t_id, _, id_len) = ber(msg)?;
    if t_id != 0x02 {
        return None;
    }
    let (op, body, _) = ber(msg.get(id_len..)?)?;
    let mut info = svc("ldap", None, 0.95);
    match op {
        // SearchResultEntry: objectName, then a sequence of attributes.
        0x64 => {
            info.auth = AuthStatus::None;
            info.extra.insert("anonymous_rootdse".into(), "true".into());
            let (_, _, name_len) = ber(body)?;
            let (_, mut attrs, _) = ber(body.get(name_len..)?)?;
            while let Some((_, attr, used)) = ber(attrs) {
                attrs = &attrs[used..];
                let Some((_, ty, ty_len)) = ber(attr) else {
                    continue;
                };
                let Some((_, mut vals, _)) = attr.get(ty_len..).and_then(ber) else {
                    continue;
                };
                let mut values = Vec::new();
                while let Some((_, v, used)) = ber(vals) {
                    vals = &vals[used..];
                    values.push(escape_bytes(v, 96));
                }
                let joined = values.join(";");
                match ty {
                    b"vendorName" => info.product = Some(joined),
                    b"vendorVersion" => info.version = Some(joined),
                    b"namingContexts" => {
                        info.extra.insert(
                            "naming_contexts".into(),
                            escape_bytes(joined.as_bytes(), 200),
                        );
                    }
                    b"supportedLDAPVersion" => {
                        info.extra.insert("ldap_versions".into(), joined);
                    }
                    _ => {}
                }
            }
        }
        // SearchResultDone without an entry: the resultCode says why.
        0x65 => {
            let (_, code, _) = ber(body)?;
            let code = *code.first()?;
            info.extra.insert("result_code".into(), code.to_string());
            if matches!(code, 1 | 8 | 13 | 48 | 49 | 50) {
                info.auth = AuthStatus::Required;
            }
        }
        // A notice of disconnection, or another LDAP op: still LDAP.
        0x78 | 0x61 => {}
        _ => return None,
    }
    Some(info)
}

// --- AMQP ------------------------------------------------------------------

fn amqp_complete(b: &[u8]) -> bool {
    b.starts_with(b"AMQP") && b.len() >= 8 || be32(b, 3).is_some_and(|n| b.len() >= 8 + n as usize)
}

/// Connection.Start (product, version, SASL mechanisms) or the protocol
/// header a server sends back when it wants another version.
pub(super) fn parse_amqp(b: &[u8]) -> Option<ServiceInfo> {
    let mut info = svc("amqp", None, 0.9);
    if b.starts_with(b"AMQP") && b.len() >= 8 {
        info.extra
            .insert("protocol".into(), format!("{}-{}-{}", b[5], b[6], b[7]));
        return Some(info);
    }
    if *b.first()? != 1 || be16(b, 1)? != 0 {
        return None;
    }
    let size = be32(b, 3)? as usize;
    let p = b.get(7..7usize.checked_add(size)?)?;
    if be16(p, 0)? != 10 || be16(p, 2)? != 10 {
        return None;
    }
    info.extra
        .insert("protocol".into(), format!("0-{}-{}", p.get(4)?, p.get(5)?));
    let tlen = be32(p, 6)? as usize;
    let table = p.get(10..10usize.checked_add(tlen)?)?;
    let mut i = 0;
    while i < table.len() {
        let klen = *table.get(i)? as usize;
        let key = table.get(i + 1..i + 1 + klen)?;
        let ty = *table.get(i + 1 + klen)?;
        let v = i + 2 + klen;
        let vlen = match ty {
            b'S' | b'x' | b'F' => 4 + be32(table, v)? as usize,
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'D' => 5,
            b'V' => 0,
            _ => break,
        };
        if ty == b'S' {
            let s = table.get(v + 4..v + vlen)?;
            match key {
                b"product" => info.product = Some(escape_bytes(s, 64)),
                b"version" => info.version = Some(escape_bytes(s, 32)),
                _ => {}
            }
        }
        i = v + vlen;
    }
    let after = 10 + tlen;
    if let Some(mlen) = be32(p, after)
        && let Some(m) = p.get(after + 4..after + 4 + mlen as usize)
    {
        let mechs = String::from_utf8_lossy(m).to_string();
        info.auth = if mechs.split_whitespace().any(|x| x == "ANONYMOUS") {
            AuthStatus::None
        } else {
            AuthStatus::Required
        };
        info.extra
            .insert("mechanisms".into(), escape_bytes(mechs.as_bytes(), 96));
    }
    info.confidence = 0.97;
    Some(info)
}

// --- Kafka -----------------------------------------------------------------

const KAFKA_CORRELATION: u32 = 0x7077_0001;

fn kafka_complete(b: &[u8]) -> bool {
    be32(b, 0).is_some_and(|n| b.len() >= 4 + n as usize)
}

/// An ApiVersions v0 response carrying our correlation id.
pub(super) fn parse_kafka(b: &[u8]) -> Option<ServiceInfo> {
    let size = be32(b, 0)? as usize;
    if size < 10 || be32(b, 4)? != KAFKA_CORRELATION {
        return None;
    }
    let error = be16(b, 8)?;
    let count = be32(b, 10)? as usize;
    if count > 1000 || count * 6 > size.saturating_sub(10) {
        return None;
    }
    let mut info = svc("kafka", Some("Apache Kafka"), 0.95);
    info.extra.insert("api_keys".into(), count.to_string());
    if error != 0 {
        info.extra.insert("error_code".into(), error.to_string());
    }
    Some(info)
}

#[cfg(test)]
pub(super) mod tests;

#[cfg(test)]
pub(super) mod tests_support {
    use super::*;

    /// An OP_MSG reply whose fields are (name, int, text): text when not
    /// empty, else the int.
    pub fn mongo_reply_doc(fields: &[(&str, i32, &str)]) -> Vec<u8> {
        let f: Vec<(&str, BsonIn<'_>)> = fields
            .iter()
            .map(|(k, i, s)| {
                (
                    *k,
                    if s.is_empty() {
                        BsonIn::Int(*i)
                    } else {
                        BsonIn::Str(s)
                    },
                )
            })
            .collect();
        op_msg(7, &bson_doc(&f))
    }
}
