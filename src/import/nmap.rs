//! Import layer: nmap's XML output (`nmap -oX`), read and written.
//!
//! Reading keeps what an audit needs: each `<host>`'s addresses, host
//! names and times, every `<port>` with its state, reason and `<service>`,
//! and the closed ports nmap folds into `<extraports>` when it lists them
//! (`<extrareasons ports="…">`, nmap 7.9x). nmap's states `open|filtered`
//! and `closed|filtered` are uncertain and become `filtered`. Writing emits
//! the same structure, so nmap-reading tools (and this reader) take
//! portwarden's results.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{ImportError, line_col};
use crate::model::{Observation, PortState, Proto, Reason, ServiceInfo};

/// What one nmap XML file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct NmapRun {
    /// The command line nmap recorded.
    pub args: Option<String>,
    pub observations: Vec<Observation>,
}

/// Confidence given to nmap's `method="table"` service names: a guess from
/// the port number, below identification's 0.5 threshold on purpose.
const TABLE_GUESS: f32 = 0.3;

fn reason_for(state: PortState, reason: &str, connect: bool) -> Reason {
    let r = match reason {
        "syn-ack" => Some(if connect {
            Reason::Connected
        } else {
            Reason::SynAck
        }),
        "conn-refused" => Some(Reason::ConnRefused),
        "reset" | "rst" => Some(Reason::Reset),
        "no-response" => Some(Reason::NoResponse),
        "host-unreach" => Some(Reason::HostUnreach),
        "net-unreach" => Some(Reason::NetUnreach),
        "port-unreach" => Some(Reason::PortUnreach),
        "proto-unreach" => Some(Reason::ProtoUnreach),
        "admin-prohibited" | "host-prohibited" | "net-prohibited" => Some(Reason::AdminProhibited),
        _ => None,
    };
    // nmap's own reasons sometimes disagree with our one-state-per-reason
    // model (`user-set`, `echo-reply`…): the state nmap concluded wins.
    match r.filter(|r| r.state() == state) {
        Some(r) => r,
        None => match state {
            PortState::Open if connect => Reason::Connected,
            PortState::Open => Reason::SynAck,
            PortState::Closed if connect => Reason::ConnRefused,
            PortState::Closed => Reason::Reset,
            PortState::Filtered | PortState::OpenFiltered => Reason::NoResponse,
        },
    }
}

fn state_of(s: &str) -> Option<PortState> {
    match s {
        "open" => Some(PortState::Open),
        "closed" => Some(PortState::Closed),
        "filtered" | "open|filtered" | "closed|filtered" | "unfiltered" => {
            Some(PortState::Filtered)
        }
        _ => None,
    }
}

/// `1-3,7` → 1, 2, 3, 7 (at most 65,536 ports; malformed parts skipped).
fn expand_ports(spec: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>())
            && lo <= hi
        {
            out.extend(lo..=hi);
        }
    }
    out
}

#[derive(Default)]
struct Host {
    addrs: Vec<IpAddr>,
    hostnames: Vec<String>,
    time: Option<DateTime<Utc>>,
    ports: Vec<(u16, Proto, PortState, Reason, Option<ServiceInfo>)>,
}

/// The `<port>` being read: number, protocol, state, nmap's reason, service.
type PortRead = (u16, Proto, Option<PortState>, String, Option<ServiceInfo>);

struct Parser<'a> {
    text: &'a str,
    file: &'a str,
}

impl Parser<'_> {
    fn err(&self, offset: u64, message: String, hint: &str) -> ImportError {
        let (line, col) = line_col(self.text, usize::try_from(offset).unwrap_or(usize::MAX));
        ImportError::Parse {
            file: self.file.to_string(),
            line,
            col,
            message,
            hint: hint.to_string(),
        }
    }

    fn attrs(&self, e: &BytesStart, at: u64) -> Result<BTreeMap<String, String>, ImportError> {
        let mut m = BTreeMap::new();
        for a in e.attributes() {
            let a = a.map_err(|x| self.err(at, format!("bad attribute: {x}"), XML_HINT))?;
            let v = a
                .unescape_value()
                .map_err(|x| self.err(at, format!("bad attribute value: {x}"), XML_HINT))?;
            m.insert(
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                Cow::into_owned(v),
            );
        }
        Ok(m)
    }
}

const XML_HINT: &str = "give the file nmap wrote with -oX (XML), not its normal or grepable output";

fn unix_time(s: Option<&String>) -> Option<DateTime<Utc>> {
    s.and_then(|v| v.parse::<i64>().ok())
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
}

/// Parses nmap XML; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<NmapRun, ImportError> {
    let p = Parser { text, file };
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut args = None;
    let mut connect = false;
    let mut run_time: Option<DateTime<Utc>> = None;
    let mut seen_root = false;
    let mut host: Option<Host> = None;
    let mut port: Option<PortRead> = None;
    let mut observations = Vec::new();
    loop {
        let at = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| {
            p.err(
                reader.buffer_position(),
                format!("not well-formed XML: {e}"),
                XML_HINT,
            )
        })?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                match e.name().as_ref() {
                    b"port" => {
                        if let (Some(h), Some((n, proto, Some(state), reason, svc))) =
                            (host.as_mut(), port.take())
                        {
                            let r = reason_for(state, &reason, connect);
                            h.ports.push((n, proto, state, r, svc));
                        }
                    }
                    b"host" => {
                        if let Some(h) = host.take() {
                            let time = h.time.or(run_time).unwrap_or_else(Utc::now);
                            for ip in &h.addrs {
                                for (n, proto, state, reason, svc) in &h.ports {
                                    observations.push(Observation {
                                        ip: *ip,
                                        port: *n,
                                        proto: *proto,
                                        state: *state,
                                        reason: *reason,
                                        rtt_ms: None,
                                        time,
                                        hostnames: h.hostnames.clone(),
                                        tries: 1,
                                        service: svc.clone(),
                                    });
                                }
                            }
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = e.name();
        let a = p.attrs(e, at)?;
        match name.as_ref() {
            b"nmaprun" => {
                seen_root = true;
                args = a.get("args").cloned();
                run_time = unix_time(a.get("start"));
            }
            b"scaninfo" => connect = a.get("type").is_some_and(|t| t == "connect"),
            b"host" => {
                host = Some(Host {
                    time: unix_time(a.get("endtime")).or(unix_time(a.get("starttime"))),
                    ..Host::default()
                });
            }
            b"address" => {
                if let Some(h) = host.as_mut()
                    && matches!(a.get("addrtype").map(String::as_str), Some("ipv4" | "ipv6"))
                {
                    let v = a.get("addr").map(String::as_str).unwrap_or_default();
                    let ip = v.parse::<IpAddr>().map_err(|_| {
                        p.err(at, format!("address '{v}' is not an IP address"), XML_HINT)
                    })?;
                    h.addrs.push(ip);
                }
            }
            b"hostname" => {
                if let (Some(h), Some(n)) = (host.as_mut(), a.get("name"))
                    && !h.hostnames.contains(n)
                {
                    h.hostnames.push(n.clone());
                }
            }
            b"port" => {
                let n = a
                    .get("portid")
                    .and_then(|v| v.parse::<u16>().ok())
                    .ok_or_else(|| p.err(at, "a <port> without a valid portid".into(), XML_HINT))?;
                let proto = match a.get("protocol").map(String::as_str) {
                    Some("udp") => Proto::Udp,
                    Some("tcp") | None => Proto::Tcp,
                    // SCTP and IP-protocol scans have no place in the model.
                    Some(_) => {
                        port = None;
                        continue;
                    }
                };
                port = Some((n, proto, None, String::new(), None));
                if empty {
                    port = None;
                }
            }
            b"state" => {
                if let Some(pt) = port.as_mut() {
                    let s = a.get("state").map(String::as_str).unwrap_or_default();
                    pt.2 =
                        Some(state_of(s).ok_or_else(|| {
                            p.err(at, format!("unknown port state '{s}'"), XML_HINT)
                        })?);
                    pt.3 = a.get("reason").cloned().unwrap_or_default();
                }
            }
            b"service" => {
                if let Some(pt) = port.as_mut()
                    && let Some(n) = a.get("name").filter(|n| !n.is_empty())
                {
                    let probed = a.get("method").is_some_and(|m| m == "probed");
                    let conf = a
                        .get("conf")
                        .and_then(|c| c.parse::<f32>().ok())
                        .map(|c| (c / 10.0).clamp(0.0, 1.0));
                    let mut extra = BTreeMap::new();
                    if let Some(x) = a.get("extrainfo") {
                        extra.insert("extrainfo".to_string(), x.clone());
                    }
                    if let Some(t) = a.get("tunnel") {
                        extra.insert("tunnel".to_string(), t.clone());
                    }
                    let name = match a.get("tunnel").map(String::as_str) {
                        Some("ssl") if n == "http" => "https".to_string(),
                        _ => n.clone(),
                    };
                    pt.4 = Some(ServiceInfo {
                        name,
                        product: a.get("product").cloned(),
                        version: a.get("version").cloned(),
                        confidence: if probed {
                            conf.unwrap_or(1.0)
                        } else {
                            TABLE_GUESS
                        },
                        extra,
                        ..ServiceInfo::default()
                    });
                }
            }
            b"extrareasons" => {
                // Folded ports, listed only by recent nmap versions.
                if let (Some(h), Some(list)) = (host.as_mut(), a.get("ports")) {
                    let proto = match a.get("proto").map(String::as_str) {
                        Some("udp") => Proto::Udp,
                        _ => Proto::Tcp,
                    };
                    let reason = a.get("reason").cloned().unwrap_or_default();
                    let state = match reason.as_str() {
                        "conn-refused" | "reset" | "resets" => PortState::Closed,
                        _ => PortState::Filtered,
                    };
                    let r = reason_for(state, reason.trim_end_matches('s'), connect);
                    for n in expand_ports(list) {
                        h.ports.push((n, proto, state, r, None));
                    }
                }
            }
            _ => {}
        }
    }
    if !seen_root {
        return Err(p.err(
            0,
            "no <nmaprun> element: not an nmap XML file".into(),
            XML_HINT,
        ));
    }
    Ok(NmapRun { args, observations })
}

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// Writes observations as nmap XML. `args` is recorded as the command line
/// (portwarden's own); `kind` is `connect` or `syn`.
pub fn to_nmap_xml(
    observations: &[Observation],
    args: &str,
    kind: &str,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> String {
    let mut hosts: BTreeMap<IpAddr, Vec<&Observation>> = BTreeMap::new();
    for o in observations {
        hosts.entry(o.ip).or_default().push(o);
    }
    let mut ports: Vec<u16> = observations.iter().map(|o| o.port).collect();
    ports.sort_unstable();
    ports.dedup();
    let scan_type = if kind == "syn" { "syn" } else { "connect" };
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n");
    let _ = writeln!(
        x,
        "<nmaprun scanner=\"portwarden\" args=\"{}\" start=\"{}\" startstr=\"{}\" version=\"{}\" xmloutputversion=\"1.05\">",
        esc(args),
        started.timestamp(),
        started.format("%a %b %e %H:%M:%S %Y"),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        x,
        "<scaninfo type=\"{scan_type}\" protocol=\"tcp\" numservices=\"{}\" services=\"{}\"/>",
        ports.len(),
        compress(&ports)
    );
    let mut up = 0;
    for (ip, obs) in &hosts {
        let answered = obs
            .iter()
            .any(|o| matches!(o.state, PortState::Open | PortState::Closed));
        if answered {
            up += 1;
        }
        let first = obs.iter().map(|o| o.time).min().unwrap_or(started);
        let last = obs.iter().map(|o| o.time).max().unwrap_or(finished);
        let _ = writeln!(
            x,
            "<host starttime=\"{}\" endtime=\"{}\"><status state=\"{}\" reason=\"{}\" reason_ttl=\"0\"/>",
            first.timestamp(),
            last.timestamp(),
            if answered { "up" } else { "down" },
            if answered { "user-set" } else { "no-response" }
        );
        let _ = writeln!(
            x,
            "<address addr=\"{ip}\" addrtype=\"{}\"/>",
            if ip.is_ipv4() { "ipv4" } else { "ipv6" }
        );
        let mut names: Vec<&str> = obs
            .iter()
            .flat_map(|o| o.hostnames.iter().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            x.push_str("<hostnames>\n</hostnames>\n");
        } else {
            x.push_str("<hostnames>\n");
            for n in names {
                let _ = writeln!(x, "<hostname name=\"{}\" type=\"user\"/>", esc(n));
            }
            x.push_str("</hostnames>\n");
        }
        x.push_str("<ports>");
        for o in obs {
            let reason = match o.reason {
                Reason::Connected => "syn-ack",
                r => r.as_str(),
            };
            let _ = write!(
                x,
                "<port protocol=\"{}\" portid=\"{}\"><state state=\"{}\" reason=\"{reason}\" reason_ttl=\"0\"/>",
                o.proto, o.port, o.state
            );
            if let Some(s) = &o.service {
                let identified = s.confidence >= 0.5;
                let _ = write!(
                    x,
                    "<service name=\"{}\"{}{} method=\"{}\" conf=\"{}\"/>",
                    esc(&s.name),
                    s.product
                        .as_deref()
                        .map(|p| format!(" product=\"{}\"", esc(p)))
                        .unwrap_or_default(),
                    s.version
                        .as_deref()
                        .map(|v| format!(" version=\"{}\"", esc(v)))
                        .unwrap_or_default(),
                    if identified { "probed" } else { "table" },
                    (s.confidence * 10.0).round().clamp(0.0, 10.0) as u8
                );
            }
            x.push_str("</port>\n");
        }
        x.push_str("</ports>\n</host>\n");
    }
    let _ = writeln!(
        x,
        "<runstats><finished time=\"{}\" timestr=\"{}\" elapsed=\"{:.2}\" exit=\"success\"/><hosts up=\"{up}\" down=\"{}\" total=\"{}\"/>\n</runstats>\n</nmaprun>",
        finished.timestamp(),
        finished.format("%a %b %e %H:%M:%S %Y"),
        (finished - started).num_milliseconds() as f64 / 1000.0,
        hosts.len() - up,
        hosts.len()
    );
    x
}

/// 1,2,3,7 → `1-3,7`.
fn compress(ports: &[u16]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let mut j = i;
        while j + 1 < ports.len() && ports[j + 1] == ports[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            ports[i].to_string()
        } else {
            format!("{}-{}", ports[i], ports[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -sT -sV -p 22,23,80,443 198.18.0.5" start="1764000000" version="7.94" xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="4" services="22-23,80,443"/>
<host starttime="1764000000" endtime="1764000003"><status state="up" reason="conn-refused" reason_ttl="0"/>
<address addr="198.18.0.5" addrtype="ipv4"/>
<address addr="02:00:00:00:00:02" addrtype="mac"/>
<hostnames><hostname name="web&amp;1.lab" type="user"/></hostnames>
<ports><extraports state="closed" count="2"><extrareasons reason="conn-refused" count="2" proto="tcp" ports="80,443"/></extraports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="0"/><service name="ssh" product="OpenSSH" version="9.6p1" method="probed" conf="10"/></port>
<port protocol="tcp" portid="23"><state state="open|filtered" reason="no-response" reason_ttl="0"/><service name="telnet" method="table" conf="3"/></port>
</ports>
</host>
<runstats><finished time="1764000003"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"#;

    #[test]
    fn reads_ports_services_and_folded_closed_ports() {
        let run = parse(SAMPLE, "s.xml").unwrap();
        assert_eq!(
            run.args.as_deref(),
            Some("nmap -sT -sV -p 22,23,80,443 198.18.0.5")
        );
        let brief: Vec<String> = run
            .observations
            .iter()
            .map(|o| format!("{}:{} {} {}", o.ip, o.port, o.state, o.reason))
            .collect();
        assert_eq!(
            brief,
            [
                "198.18.0.5:80 closed conn-refused",
                "198.18.0.5:443 closed conn-refused",
                "198.18.0.5:22 open connected",
                "198.18.0.5:23 filtered no-response",
            ]
        );
        let ssh = run.observations[2].service.as_ref().unwrap();
        assert_eq!(ssh.name, "ssh");
        assert_eq!(ssh.product.as_deref(), Some("OpenSSH"));
        assert_eq!(ssh.version.as_deref(), Some("9.6p1"));
        assert_eq!(ssh.confidence, 1.0);
        assert_eq!(
            run.observations[3].service.as_ref().unwrap().confidence,
            TABLE_GUESS
        );
        assert_eq!(run.observations[2].hostnames, ["web&1.lab"]);
        assert_eq!(
            run.observations[2].time,
            Utc.timestamp_opt(1764000003, 0).unwrap()
        );
    }

    #[test]
    fn errors_point_at_the_place() {
        let e = parse(
            "<nmaprun>\n<host><address addr=\"nope\" addrtype=\"ipv4\"/></host></nmaprun>",
            "x.xml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("x.xml:2:7: address 'nope' is not an IP address"),
            "{e}"
        );
        let e = parse("Starting Nmap 7.94\nNmap scan report", "n.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no <nmaprun> element"), "{e}");
        assert!(e.contains("hint: give the file nmap wrote with -oX"), "{e}");
        let e = parse("<nmaprun><host></nmaprun>", "b.xml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("b.xml:1:"), "{e}");
        assert!(e.contains("not well-formed XML"), "{e}");
    }

    #[test]
    fn writes_what_it_reads() {
        let run = parse(SAMPLE, "s.xml").unwrap();
        let t = Utc.timestamp_opt(1764000000, 0).unwrap();
        let xml = to_nmap_xml(&run.observations, "portwarden scan <x>", "connect", t, t);
        assert!(xml.contains("args=\"portwarden scan &lt;x&gt;\""), "{xml}");
        assert!(xml.contains("services=\"22-23,80,443\""), "{xml}");
        let back = parse(&xml, "out.xml").unwrap();
        assert_eq!(back.observations, run.observations);
    }

    #[test]
    fn port_lists() {
        assert_eq!(expand_ports("1-3,7,x,9-8"), [1, 2, 3, 7]);
        assert_eq!(compress(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
    }
}
