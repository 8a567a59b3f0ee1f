//! Import layer: masscan's JSON output (`masscan -oJ`).
//!
//! masscan writes one record per line inside a JSON array, and its older
//! versions leave a comma before the closing `]` (or no array at all), so
//! the reader takes the records line by line rather than as one document.
//! A record with a `status` is a port state; one with a `service` (from
//! `--banners`) adds a banner to the open port it names.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::ImportError;
use crate::model::{Observation, PortState, Proto, Reason, ServiceInfo};

#[derive(Deserialize)]
struct Record {
    ip: String,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
    #[serde(default)]
    ports: Vec<PortRec>,
}

#[derive(Deserialize)]
struct PortRec {
    port: u16,
    #[serde(default)]
    proto: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    service: Option<ServiceRec>,
}

#[derive(Deserialize)]
struct ServiceRec {
    name: String,
    #[serde(default)]
    banner: Option<String>,
}

const HINT: &str =
    "give the file masscan wrote with -oJ (one {\"ip\":…,\"ports\":[…]} record a line)";

fn time_of(v: &Option<serde_json::Value>) -> Option<DateTime<Utc>> {
    let secs = match v.as_ref()? {
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok()?,
        serde_json::Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    Utc.timestamp_opt(secs, 0).single()
}

/// Escapes a banner the way identification does: printable ASCII, `\xNN`
/// for the rest, bounded.
fn printable(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes().take(256) {
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Parses masscan JSON; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Observation>, ImportError> {
    let mut obs: BTreeMap<(IpAddr, u16, Proto), Observation> = BTreeMap::new();
    let mut banners: Vec<(IpAddr, u16, Proto, ServiceRec)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim().trim_end_matches(',').trim();
        let line = line.trim_start_matches('[').trim_end_matches(']').trim();
        if line.is_empty() || line.starts_with("{finished") {
            continue;
        }
        let err = |col: usize, message: String| ImportError::Parse {
            file: file.to_string(),
            line: i + 1,
            col,
            message,
            hint: HINT.into(),
        };
        let rec: Record = serde_json::from_str(line).map_err(|e| err(e.column(), e.to_string()))?;
        let ip: IpAddr = rec
            .ip
            .trim()
            .parse()
            .map_err(|_| err(1, format!("'{}' is not an IP address", rec.ip)))?;
        let time = time_of(&rec.timestamp).unwrap_or_else(Utc::now);
        for p in rec.ports {
            let proto = match p.proto.as_deref() {
                Some("udp") => Proto::Udp,
                Some("tcp") | None => Proto::Tcp,
                Some(_) => continue,
            };
            if let Some(s) = p.service {
                banners.push((ip, p.port, proto, s));
            }
            let Some(status) = p.status.as_deref() else {
                continue;
            };
            let state = match status {
                "open" => PortState::Open,
                "closed" => PortState::Closed,
                other => return Err(err(1, format!("unknown port status '{other}'"))),
            };
            let reason = match (state, p.reason.as_deref()) {
                (PortState::Open, _) => Reason::SynAck,
                (_, Some("rst") | Some("rst-ack") | Some("reset") | None) => Reason::Reset,
                _ => Reason::Reset,
            };
            let o = Observation {
                ip,
                port: p.port,
                proto,
                state,
                reason,
                rtt_ms: None,
                time,
                hostnames: Vec::new(),
                tries: 1,
                service: None,
            };
            let key = (ip, p.port, proto);
            match obs.get(&key) {
                Some(e) if e.time > time => {}
                _ => {
                    obs.insert(key, o);
                }
            }
        }
    }
    for (ip, port, proto, s) in banners {
        if let Some(o) = obs.get_mut(&(ip, port, proto)) {
            let svc = o.service.get_or_insert_with(|| ServiceInfo {
                name: s.name.clone(),
                // masscan names the probe it sent, not a verified protocol.
                confidence: 0.3,
                ..ServiceInfo::default()
            });
            if svc.banner.is_none() {
                svc.banner = s.banner.as_deref().map(printable);
            }
        }
    }
    Ok(obs.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_masscan_json_old_and_new() {
        let text = r#"[
{   "ip": "198.18.0.5",   "timestamp": "1764000000", "ports": [ {"port": 80, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] }
,
{   "ip": "198.18.0.5",   "timestamp": "1764000001", "ports": [ {"port": 80, "proto": "tcp", "service": {"name": "http", "banner": "HTTP/1.0 200 OK\r\n"} } ] }
,
{   "ip": "198.18.0.6",   "timestamp": "1764000002", "ports": [ {"port": 23, "proto": "tcp", "status": "closed", "reason": "rst", "ttl": 64} ] },
]
"#;
        let o = parse(text, "m.json").unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].port, 80);
        assert_eq!(o[0].state, PortState::Open);
        assert_eq!(o[0].reason, Reason::SynAck);
        let s = o[0].service.as_ref().unwrap();
        assert_eq!(s.name, "http");
        assert_eq!(s.banner.as_deref(), Some("HTTP/1.0 200 OK\\x0d\\x0a"));
        assert_eq!(o[1].state, PortState::Closed);
        assert_eq!(o[1].time, Utc.timestamp_opt(1764000002, 0).unwrap());
        let e = parse("[\n{\"ip\": \"1.2.3\", \"ports\": []}\n]", "m.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.json:2:1: '1.2.3' is not an IP address"),
            "{e}"
        );
        let e = parse("{\"ip\": 5}", "m.json").unwrap_err().to_string();
        assert!(e.starts_with("m.json:1:"), "{e}");
        assert!(
            e.contains("hint: give the file masscan wrote with -oJ"),
            "{e}"
        );
    }
}
