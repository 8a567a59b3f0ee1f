//! The UDP probe payloads (`rules/udp-payloads.toml`), for the scan layer.
//!
//! A UDP service answers only a request it understands, so the payload per
//! port is what finds it. The table is data, embedded in the binary and
//! overridable from `--rules DIR`; it is parsed and checked once (hex
//! digits, sizes, unique names, ports 1-65535) and looked up per probe.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

/// The largest payload one UDP probe carries (the scan layer's packet
/// builder sizes its buffers from it).
pub const MAX_PAYLOAD: usize = 1200;

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    payload: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    service: String,
    ports: Vec<u32>,
    hex: Option<String>,
    text: Option<String>,
    #[serde(default)]
    opt_in: bool,
    #[serde(default)]
    description: String,
}

/// One payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub name: String,
    pub service: String,
    pub ports: Vec<u16>,
    pub bytes: Vec<u8>,
    pub opt_in: bool,
    pub description: String,
}

/// The payload table, looked up by port.
#[derive(Debug, Clone, Default)]
pub struct Payloads {
    all: Vec<Payload>,
    /// Port → index in `all` of the payload sent by default.
    by_port: BTreeMap<u16, usize>,
}

impl Payloads {
    /// The embedded table.
    pub fn embedded() -> Payloads {
        Payloads::parse(
            super::embedded::UDP_PAYLOADS,
            "rules/udp-payloads.toml (embedded)",
        )
        .expect("the embedded udp-payloads.toml is valid (checked by tests)")
    }

    pub fn parse(text: &str, origin: &str) -> Result<Payloads, PayloadError> {
        let bad = |message: String| PayloadError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut names = HashSet::new();
        let mut out = Payloads::default();
        for e in file.payload {
            if !names.insert(e.name.clone()) {
                return Err(bad(format!("payload '{}' is declared twice", e.name)));
            }
            let bytes = match (&e.hex, &e.text) {
                (Some(h), None) => {
                    let digits: String = h.chars().filter(|c| !c.is_whitespace()).collect();
                    hex::decode(&digits).map_err(|err| {
                        bad(format!("payload '{}': hex is not valid ({err})", e.name))
                    })?
                }
                (None, Some(t)) => t.as_bytes().to_vec(),
                _ => {
                    return Err(bad(format!(
                        "payload '{}': give exactly one of hex or text",
                        e.name
                    )));
                }
            };
            if bytes.len() > MAX_PAYLOAD {
                return Err(bad(format!(
                    "payload '{}' is {} bytes; at most {MAX_PAYLOAD} fit a probe",
                    e.name,
                    bytes.len()
                )));
            }
            let mut ports = Vec::new();
            for p in &e.ports {
                match u16::try_from(*p) {
                    Ok(p) if p > 0 => ports.push(p),
                    _ => {
                        return Err(bad(format!(
                            "payload '{}': port {p} is not 1-65535",
                            e.name
                        )));
                    }
                }
            }
            let idx = out.all.len();
            if !e.opt_in {
                for &p in &ports {
                    if out.by_port.insert(p, idx).is_some() {
                        return Err(bad(format!(
                            "payload '{}': port {p} already has a default payload",
                            e.name
                        )));
                    }
                }
            }
            out.all.push(Payload {
                name: e.name,
                service: e.service,
                ports,
                bytes,
                opt_in: e.opt_in,
                description: e.description,
            });
        }
        Ok(out)
    }

    /// The payload sent to `port` by default (`None`: an empty datagram).
    pub fn for_port(&self, port: u16) -> Option<&Payload> {
        self.by_port.get(&port).map(|&i| &self.all[i])
    }

    /// The bytes sent to `port` (empty when no payload is known).
    pub fn bytes(&self, port: u16) -> &[u8] {
        self.for_port(port).map_or(&[], |p| p.bytes.as_slice())
    }

    pub fn by_name(&self, name: &str) -> Option<&Payload> {
        self.all.iter().find(|p| p.name == name)
    }

    pub fn all(&self) -> &[Payload] {
        &self.all
    }

    /// Ports that get a service payload by default (sorted): their answers,
    /// or silence, are evidence about the service (the UDP checks read it).
    pub fn payload_ports(&self) -> Vec<u16> {
        self.by_port.keys().copied().collect()
    }

    /// Turns an opt-in payload on (`--udp-monlist`: `ntp-monlist`): it
    /// becomes the default of its ports. `false` when no opt-in payload has
    /// that name.
    pub fn enable(&mut self, name: &str) -> bool {
        let Some(idx) = self.all.iter().position(|p| p.name == name && p.opt_in) else {
            return false;
        };
        for &p in &self.all[idx].ports {
            self.by_port.insert(p, idx);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Vec<u8> {
        Payloads::embedded()
            .by_name(name)
            .unwrap_or_else(|| panic!("no payload {name}"))
            .bytes
            .clone()
    }

    /// DER/BER tag-length-value with a short length.
    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        assert!(value.len() < 128);
        let mut v = vec![tag, value.len() as u8];
        v.extend_from_slice(value);
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn embedded_table_is_valid_and_covers_the_issue_list() {
        let t = Payloads::embedded();
        for port in [
            7, 17, 19, 53, 69, 123, 137, 161, 389, 500, 623, 1194, 1434, 1900, 3702, 5353, 5683,
            11211,
        ] {
            assert!(t.for_port(port).is_some(), "no payload for {port}");
        }
        assert!(t.for_port(9).is_none());
        assert!(t.bytes(9).is_empty());
        // monlist is opt-in: never the default of 123.
        assert_eq!(t.for_port(123).unwrap().name, "ntp-client");
        assert!(t.by_name("ntp-monlist").unwrap().opt_in);
    }

    // Each payload against a reference built field by field from its
    // protocol's specification.

    #[test]
    fn dns_root_ns_query() {
        let reference = cat(&[
            &[0x50, 0x57],             // id
            &[0x01, 0x00],             // flags: RD
            &[0, 1, 0, 0, 0, 0, 0, 0], // 1 question
            &[0],                      // root name
            &[0, 2],                   // NS
            &[0, 1],                   // IN
        ]);
        assert_eq!(p("dns-root-ns"), reference);
        // And a real DNS implementation reads it as that question.
        use hickory_resolver::proto::op::Message;
        let m = Message::from_vec(&reference).unwrap();
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_string(), ".");
    }

    #[test]
    fn mdns_service_enumeration() {
        let mut name = Vec::new();
        for label in ["_services", "_dns-sd", "_udp", "local"] {
            name.push(label.len() as u8);
            name.extend_from_slice(label.as_bytes());
        }
        name.push(0);
        let reference = cat(&[&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], &name, &[0, 12, 0, 1]]);
        assert_eq!(p("mdns-services"), reference);
        use hickory_resolver::proto::op::Message;
        let m = Message::from_vec(&reference).unwrap();
        assert_eq!(
            m.queries[0].name().to_string(),
            "_services._dns-sd._udp.local."
        );
    }

    #[test]
    fn snmp_get_sysdescr_public() {
        let oid = [0x2b, 6, 1, 2, 1, 1, 1, 0]; // 1.3.6.1.2.1.1.1.0
        let varbind = tlv(0x30, &cat(&[&tlv(0x06, &oid), &[0x05, 0x00]]));
        let pdu = tlv(
            0xa0,
            &cat(&[
                &tlv(0x02, &[0x70, 0x77, 0x00, 0x01]),
                &tlv(0x02, &[0]),
                &tlv(0x02, &[0]),
                &tlv(0x30, &varbind),
            ]),
        );
        let reference = tlv(0x30, &cat(&[&tlv(0x02, &[1]), &tlv(0x04, b"public"), &pdu]));
        assert_eq!(p("snmp-v2c-sysdescr"), reference);
    }

    #[test]
    fn cldap_rootdse_search() {
        let search = tlv(
            0x63,
            &cat(&[
                &tlv(0x04, b""),
                &tlv(0x0a, &[0]),
                &tlv(0x0a, &[0]),
                &tlv(0x02, &[0]),
                &tlv(0x02, &[0]),
                &tlv(0x01, &[0]),
                &tlv(0x87, b"objectclass"),
                &tlv(0x30, b""),
            ]),
        );
        assert_eq!(
            p("cldap-rootdse"),
            tlv(0x30, &cat(&[&tlv(0x02, &[1]), &search]))
        );
    }

    #[test]
    fn monlist_is_turned_on_only_by_name() {
        let mut t = Payloads::embedded();
        assert_ne!(t.for_port(123).unwrap().name, "ntp-monlist");
        assert!(t.payload_ports().contains(&123));
        assert!(!t.enable("ntp-nope"));
        assert!(t.enable("ntp-monlist"));
        assert_eq!(t.for_port(123).unwrap().name, "ntp-monlist");
    }

    #[test]
    fn ntp_client_and_monlist() {
        let b = p("ntp-client");
        assert_eq!(b.len(), 48);
        assert_eq!((b[0] >> 6, (b[0] >> 3) & 7, b[0] & 7), (0, 4, 3));
        assert_ne!(b[40..48], [0; 8], "a transmit timestamp is set");
        let m = p("ntp-monlist");
        assert_eq!(m[..8], [0x17, 0x00, 0x03, 42, 0, 0, 0, 0]);
        assert_eq!(((m[0] >> 3) & 7, m[0] & 7), (2, 7));
    }

    #[test]
    fn netbios_nbstat() {
        let mut name = vec![0x20, b'C', b'K'];
        name.extend([b'A'; 30]);
        name.push(0);
        let reference = cat(&[
            &[0x80, 0xf0, 0x00, 0x10, 0, 1, 0, 0, 0, 0, 0, 0],
            &name,
            &[0, 0x21, 0, 1],
        ]);
        assert_eq!(p("netbios-nbstat"), reference);
    }

    #[test]
    fn memcached_ipmi_mssql_tftp_coap_openvpn() {
        assert_eq!(
            p("memcached-stats"),
            b"\x00\x01\x00\x00\x00\x01\x00\x00stats\r\n"
        );
        assert_eq!(
            p("ipmi-rmcp-ping"),
            [6, 0, 0xff, 6, 0x00, 0x00, 0x11, 0xbe, 0x80, 0, 0, 0]
        );
        assert_eq!(p("mssql-browser"), [2]);
        let mut rrq = vec![0, 1];
        rrq.extend_from_slice(b"pw-7f3c9a1e.txt\0octet\0");
        assert_eq!(p("tftp-rrq"), rrq);
        assert_eq!(
            p("coap-well-known-core"),
            cat(&[
                &[0x40, 0x01, 0x01, 0xce, 0xbb],
                b".well-known",
                &[0x04],
                b"core"
            ])
        );
        assert_eq!(
            p("openvpn-reset"),
            cat(&[&[0x38], b"PWscan01", &[0], &[0, 0, 0, 0]])
        );
    }

    #[test]
    fn ike_main_mode_lengths_add_up() {
        let b = p("ike-main-mode");
        assert_eq!(b.len(), 80);
        assert_eq!(&b[..8], b"PWscan01");
        assert_eq!((b[16], b[17], b[18]), (1, 0x10, 2)); // SA, v1.0, main mode
        assert_eq!(u32::from_be_bytes(b[24..28].try_into().unwrap()), 80);
        assert_eq!(u16::from_be_bytes([b[30], b[31]]), 52); // SA payload
        assert_eq!(u16::from_be_bytes([b[42], b[43]]), 40); // proposal
        assert_eq!(u16::from_be_bytes([b[50], b[51]]), 32); // transform
    }

    #[test]
    fn text_payloads() {
        let s = String::from_utf8(p("ssdp-msearch")).unwrap();
        assert!(s.starts_with("M-SEARCH * HTTP/1.1\r\n") && s.ends_with("\r\n\r\n"));
        assert!(s.contains("MAN: \"ssdp:discover\"\r\n"));
        let w = String::from_utf8(p("ws-discovery-probe")).unwrap();
        assert!(w.contains("<wsd:Probe/>"));
        assert_eq!(p("chargen"), b"\r\n");
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let e = |t: &str| Payloads::parse(t, "x.toml").unwrap_err().to_string();
        assert_eq!(
            e("[[payload]]\nname='a'\nservice='s'\nports=[1]\nhex='zz'"),
            "x.toml: payload 'a': hex is not valid (Invalid character 'z' at position 0)"
        );
        assert!(
            e("[[payload]]\nname='a'\nservice='s'\nports=[70000]\nhex='00'").contains("port 70000")
        );
        assert!(
            e("[[payload]]\nname='a'\nservice='s'\nports=[1]")
                .contains("exactly one of hex or text")
        );
        assert!(
            e("[[payload]]\nname='a'\nservice='s'\nports=[1]\nhex='00'\n[[payload]]\nname='b'\nservice='s'\nports=[1]\nhex='00'")
                .contains("port 1 already has a default payload")
        );
    }
}
