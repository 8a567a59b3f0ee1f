use super::*;

fn mongo_reply(doc: &[u8]) -> Vec<u8> {
    let mut m = op_msg(9, doc);
    // responseTo is irrelevant to the parser; opCode stays OP_MSG.
    m[8..12].copy_from_slice(&1i32.to_le_bytes());
    m
}

#[test]
fn op_msg_round_trip_and_bson_lookup() {
    let doc = bson_doc(&[
        ("isWritablePrimary", BsonIn::Bool(true)),
        ("maxWireVersion", BsonIn::Int(21)),
        ("version", BsonIn::Str("7.0.5")),
        ("ok", BsonIn::Int(1)),
    ]);
    let reply = mongo_reply(&doc);
    assert!(mongo_complete(&reply));
    assert!(!mongo_complete(&reply[..reply.len() - 1]));
    let d = op_msg_doc(&reply).unwrap();
    assert_eq!(d, doc.as_slice());
    assert_eq!(bson_get(d, "maxWireVersion"), Some(Bson::Num(21.0)));
    assert_eq!(bson_get(d, "version"), Some(Bson::Str("7.0.5".into())));
    assert_eq!(bson_get(d, "isWritablePrimary"), Some(Bson::Bool(true)));
    assert_eq!(bson_ok(d), Some(true));
    assert_eq!(bson_get(d, "missing"), None);
}

#[test]
fn hello_request_bytes_are_exact() {
    let hello = bson_doc(&[("hello", BsonIn::Int(1)), ("$db", BsonIn::Str("admin"))]);
    let m = op_msg(1, &hello);
    assert_eq!(
        hex::encode(&m),
        concat!(
            "34000000",
            "01000000",
            "00000000",
            "dd070000", // header
            "00000000",
            "00", // flags, section 0
            "1f000000",
            "10",
            "68656c6c6f00",
            "01000000", // hello: 1
            "02",
            "24646200",
            "06000000",
            "61646d696e00", // $db: "admin"
            "00"
        )
    );
}

#[test]
fn truncated_bson_never_panics() {
    let doc = bson_doc(&[("version", BsonIn::Str("7.0.5")), ("ok", BsonIn::Int(0))]);
    for cut in 0..doc.len() {
        let _ = bson_get(&doc[..cut], "ok");
    }
    // A lying string length.
    let mut bad = doc.clone();
    bad[4 + 1 + 8..4 + 1 + 8 + 4].copy_from_slice(&1_000_000i32.to_le_bytes());
    assert_eq!(bson_get(&bad, "ok"), None);
    assert_eq!(bson_ok(&doc), Some(false));
}

#[test]
fn postgres_startup_and_auth_answers() {
    let s = pg_startup();
    assert_eq!(be32(&s, 0), Some(s.len() as u32));
    assert_eq!(be32(&s, 4), Some(0x0003_0000));
    assert!(s.ends_with(b"database\0postgres\0\0"));
    assert_eq!(pg_auth(b"R\0\0\0\x08\0\0\0\0"), Some(AuthStatus::None));
    assert_eq!(
        pg_auth(b"R\0\0\0\x0c\0\0\0\x05salt"),
        Some(AuthStatus::Required)
    );
    assert_eq!(
        pg_auth(b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"),
        Some(AuthStatus::Required)
    );
    assert_eq!(
        pg_auth(b"EFATAL no pg_hba.conf entry"),
        Some(AuthStatus::Required)
    );
    assert_eq!(pg_auth(b"R\0\0"), None);
    assert_eq!(pg_auth(b"X"), None);
    assert!(pg_msg_complete(b"R\0\0\0\x08\0\0\0\0"));
    assert!(!pg_msg_complete(b"R\0\0\0\x08\0\0"));
}

#[test]
fn mssql_prelogin_response() {
    // VERSION 16.0.1000, ENCRYPTION off, terminator.
    let payload: Vec<u8> = [
        &[0x00, 0x00, 0x0b, 0x00, 0x06][..],
        &[0x01, 0x00, 0x11, 0x00, 0x01],
        &[0xff],
        &[16, 0, 0x03, 0xe8, 0, 0],
        &[0x00],
    ]
    .concat();
    let mut pkt = vec![0x04, 0x01];
    pkt.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
    pkt.extend_from_slice(&[0, 0, 1, 0]);
    pkt.extend_from_slice(&payload);
    assert!(tds_complete(&pkt));
    let info = parse_mssql(&pkt).unwrap();
    assert_eq!(info.name, "mssql");
    assert_eq!(info.version.as_deref(), Some("16.0.1000"));
    assert_eq!(
        info.extra.get("encryption").map(String::as_str),
        Some("off")
    );
    // An option pointing past the end is rejected, not read.
    let mut bad = pkt.clone();
    bad[8 + 2] = 0xf0;
    assert!(parse_mssql(&bad).is_none());
    assert!(parse_mssql(b"\x04\x01\x00").is_none());
}

#[test]
fn rdp_connection_confirm() {
    let cc_nla = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x1f\x08\x00\x02\x00\x00\x00";
    assert!(tpkt_complete(cc_nla));
    let info = parse_rdp(cc_nla).unwrap();
    assert_eq!(info.name, "rdp");
    assert_eq!(
        info.extra.get("security").map(String::as_str),
        Some("credssp")
    );
    assert_eq!(info.auth, AuthStatus::Required);
    let cc_std = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x00\x08\x00\x00\x00\x00\x00";
    let info = parse_rdp(cc_std).unwrap();
    assert_eq!(info.extra.get("nla").map(String::as_str), Some("false"));
    assert_eq!(info.auth, AuthStatus::Unknown);
    assert!(parse_rdp(b"\x03\x00\x00\x0b\x06\xe0").is_none());
    assert!(parse_rdp(b"HTTP/1.1 400").is_none());
}

pub(crate) fn smb2_negotiate_response(dialect: u16, mode: u16) -> Vec<u8> {
    let mut hdr = b"\xfeSMB".to_vec();
    hdr.extend_from_slice(&64u16.to_le_bytes());
    hdr.resize(64, 0);
    let mut resp = 65u16.to_le_bytes().to_vec();
    resp.extend_from_slice(&mode.to_le_bytes());
    resp.extend_from_slice(&dialect.to_le_bytes());
    resp.resize(64, 0);
    let msg = [hdr, resp].concat();
    let mut out = (msg.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&msg);
    out
}

#[test]
fn smb2_negotiate_dialect_and_signing() {
    let r = smb2_negotiate_response(0x0302, 0x03);
    assert!(netbios_complete(&r));
    let info = parse_smb(&r).unwrap();
    assert_eq!(info.extra.get("dialect").map(String::as_str), Some("3.0.2"));
    assert_eq!(
        info.extra.get("signing_required").map(String::as_str),
        Some("true")
    );
    let info = parse_smb(&smb2_negotiate_response(0x0210, 0x01)).unwrap();
    assert_eq!(info.extra.get("dialect").map(String::as_str), Some("2.1"));
    assert_eq!(
        info.extra.get("signing_required").map(String::as_str),
        Some("false")
    );
    let smb1 = b"\x00\x00\x00\x05\xffSMBr";
    assert_eq!(
        parse_smb(smb1)
            .unwrap()
            .extra
            .get("smb1")
            .map(String::as_str),
        Some("true")
    );
    assert!(parse_smb(b"\x00\x00\x00\x04\xfeSMB").is_none());
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    if content.len() < 128 {
        v.push(content.len() as u8);
    } else {
        v.push(0x82);
        v.extend_from_slice(&(content.len() as u16).to_be_bytes());
    }
    v.extend_from_slice(content);
    v
}

#[test]
fn ldap_rootdse_entry_and_refusal() {
    let attr = |name: &str, vals: &[&str]| {
        let set: Vec<u8> = vals.iter().flat_map(|v| tlv(0x04, v.as_bytes())).collect();
        tlv(
            0x30,
            &[tlv(0x04, name.as_bytes()), tlv(0x31, &set)].concat(),
        )
    };
    let attrs = [
        attr("namingContexts", &["dc=example,dc=org"]),
        attr("supportedLDAPVersion", &["3"]),
        attr("vendorName", &["OpenLDAP"]),
    ]
    .concat();
    let entry = tlv(0x64, &[tlv(0x04, b""), tlv(0x30, &attrs)].concat());
    let msg = tlv(0x30, &[tlv(0x02, &[1]), entry].concat());
    assert!(ber_complete(&msg));
    assert!(!ber_complete(&msg[..msg.len() - 1]));
    let info = parse_ldap(&msg).unwrap();
    assert_eq!(info.name, "ldap");
    assert_eq!(info.auth, AuthStatus::None);
    assert_eq!(info.product.as_deref(), Some("OpenLDAP"));
    assert_eq!(
        info.extra.get("naming_contexts").map(String::as_str),
        Some("dc=example,dc=org")
    );
    let done = tlv(
        0x65,
        &[tlv(0x0a, &[50]), tlv(0x04, b""), tlv(0x04, b"")].concat(),
    );
    let msg = tlv(0x30, &[tlv(0x02, &[1]), done].concat());
    let info = parse_ldap(&msg).unwrap();
    assert_eq!(info.auth, AuthStatus::Required);
    assert_eq!(
        info.extra.get("result_code").map(String::as_str),
        Some("50")
    );
    assert!(parse_ldap(b"\x30\x84\xff\xff\xff\xff").is_none());
    assert!(parse_ldap(b"HTTP/1.1 400 Bad").is_none());
}

#[test]
fn ldap_request_in_probe_file_is_well_formed() {
    let set = crate::rules::ProbeSet::embedded().unwrap();
    let p = set.probes.iter().find(|p| p.name == "ldap").unwrap();
    let (tag, content, used) = ber(&p.payload).unwrap();
    assert_eq!((tag, used), (0x30, p.payload.len()));
    let (_, _, id_len) = ber(content).unwrap();
    let (op, _, _) = ber(&content[id_len..]).unwrap();
    assert_eq!(op, 0x63);
}

pub(crate) fn amqp_start(mechs: &str) -> Vec<u8> {
    let mut table = Vec::new();
    for (k, v) in [("product", "RabbitMQ"), ("version", "3.12.1")] {
        table.push(k.len() as u8);
        table.extend_from_slice(k.as_bytes());
        table.push(b'S');
        table.extend_from_slice(&(v.len() as u32).to_be_bytes());
        table.extend_from_slice(v.as_bytes());
    }
    table.push(4);
    table.extend_from_slice(b"cap!");
    table.push(b't');
    table.push(1);
    let mut p = vec![0, 10, 0, 10, 0, 9];
    p.extend_from_slice(&(table.len() as u32).to_be_bytes());
    p.extend_from_slice(&table);
    p.extend_from_slice(&(mechs.len() as u32).to_be_bytes());
    p.extend_from_slice(mechs.as_bytes());
    p.extend_from_slice(&5u32.to_be_bytes());
    p.extend_from_slice(b"en_US");
    let mut f = vec![1, 0, 0];
    f.extend_from_slice(&(p.len() as u32).to_be_bytes());
    f.extend_from_slice(&p);
    f.push(0xce);
    f
}

#[test]
fn amqp_connection_start() {
    let f = amqp_start("AMQPLAIN PLAIN");
    assert!(amqp_complete(&f));
    let info = parse_amqp(&f).unwrap();
    assert_eq!(info.product.as_deref(), Some("RabbitMQ"));
    assert_eq!(info.version.as_deref(), Some("3.12.1"));
    assert_eq!(info.auth, AuthStatus::Required);
    assert_eq!(
        parse_amqp(&amqp_start("PLAIN ANONYMOUS")).unwrap().auth,
        AuthStatus::None
    );
    let hdr = parse_amqp(b"AMQP\x00\x00\x09\x01").unwrap();
    assert_eq!(hdr.extra.get("protocol").map(String::as_str), Some("0-9-1"));
    for cut in 0..f.len() {
        let _ = parse_amqp(&f[..cut]);
    }
}

#[test]
fn kafka_api_versions() {
    let mut body = KAFKA_CORRELATION.to_be_bytes().to_vec();
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&2u32.to_be_bytes());
    body.extend_from_slice(&[0, 0, 0, 0, 0, 9, 0, 18, 0, 0, 0, 3]);
    let mut r = (body.len() as u32).to_be_bytes().to_vec();
    r.extend_from_slice(&body);
    assert!(kafka_complete(&r));
    let info = parse_kafka(&r).unwrap();
    assert_eq!(info.name, "kafka");
    assert_eq!(info.extra.get("api_keys").map(String::as_str), Some("2"));
    let mut wrong = r.clone();
    wrong[7] = 2;
    assert!(parse_kafka(&wrong).is_none());
    let mut huge = r.clone();
    huge[10..14].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert!(parse_kafka(&huge).is_none());
}

#[test]
fn kafka_request_in_probe_file_matches_the_correlation_id() {
    let set = crate::rules::ProbeSet::embedded().unwrap();
    let p = set.probes.iter().find(|p| p.name == "kafka").unwrap();
    assert_eq!(be32(&p.payload, 0), Some(p.payload.len() as u32 - 4));
    assert_eq!(be16(&p.payload, 4), Some(18));
    assert_eq!(be32(&p.payload, 8), Some(KAFKA_CORRELATION));
}

#[test]
fn parsers_survive_arbitrary_prefixes() {
    let fixtures: Vec<Vec<u8>> = vec![
        smb2_negotiate_response(0x0311, 0),
        amqp_start("PLAIN"),
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x1f\x08\x00\x02\x00\x00\x00".to_vec(),
        vec![0xff; 64],
        vec![0x00; 64],
    ];
    for f in &fixtures {
        for cut in 0..=f.len() {
            let b = &f[..cut];
            let _ = (
                parse_mssql(b),
                parse_rdp(b),
                parse_smb(b),
                parse_ldap(b),
                parse_amqp(b),
                parse_kafka(b),
                op_msg_doc(b),
                pg_auth(b),
            );
        }
    }
}
