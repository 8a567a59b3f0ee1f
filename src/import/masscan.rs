//! Import layer: masscan's JSON output (`masscan -oJ`).
//!
//! masscan writes one record per line inside a JSON array, and its older
//! versions leave a comma before the closing `]` (or no array at all), so
//! the reader takes the records line by line rather than as one document.
//! A record with a `status` is a port state; one with a `service` (from
//! `--banners`) adds a banner to the open port it names.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::{ImportError, Provenance, line_error};
use crate::lines::{BoundedLines, MAX_LINE};
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
    service: Option<ServiceRec>,
}

#[derive(Deserialize)]
struct ServiceRec {
    name: String,
    #[serde(default)]
    banner: Option<String>,
}

/// Ports whose banner is kept, at most (masscan writes one record per banner).
const MAX_BANNERS: usize = 1 << 20;

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

/// What one masscan file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MasscanRun {
    pub observations: Vec<Observation>,
    /// `masscan`, and the first and last record's times. masscan's JSON
    /// names neither its version, its command line nor its port list.
    pub provenance: Provenance,
    /// Why the file looks cut short (an opening `[` never closed, or a
    /// last record cut in the middle); `None` for a complete file.
    pub truncated: Option<String>,
}

/// Parses masscan JSON line by line (each line bounded), so memory grows
/// with the results, never with the file's shape.
pub fn parse_reader<R: BufRead>(input: R, file: &str) -> Result<MasscanRun, ImportError> {
    let mut obs: BTreeMap<(IpAddr, u16, Proto), Observation> = BTreeMap::new();
    // The first banner of each port, cut and escaped as it is read: a
    // raw banner (up to a line, 1 MiB) is never kept.
    let mut banners: BTreeMap<(IpAddr, u16, Proto), (String, Option<String>)> = BTreeMap::new();
    let mut lines = BoundedLines::new(input, MAX_LINE);
    // masscan opens the array on the first line and closes it on the last.
    let mut opened = false;
    let mut closed = false;
    let mut cut: Option<String> = None;
    let mut span: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    while let Some(l) = lines.next_line().map_err(|e| line_error(file, e, HINT))? {
        let i = l.no - 1;
        let trimmed = l.text.trim();
        if trimmed.starts_with('[') {
            opened = true;
        }
        if trimmed.ends_with(']') {
            closed = true;
        }
        let line = trimmed.trim_end_matches(',').trim();
        let line = line.trim_start_matches('[').trim_end_matches(']').trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("{finished") {
            closed = true;
            continue;
        }
        let err = |col: usize, message: String| ImportError::Parse {
            file: file.to_string(),
            line: i + 1,
            col,
            message,
            hint: HINT.into(),
        };
        let rec: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            // The last line, cut in the middle of a record.
            Err(e) if !l.terminated && e.is_eof() => {
                cut = Some(format!("its last line ({}) ends inside a record", i + 1));
                break;
            }
            Err(e) => return Err(err(e.column(), e.to_string())),
        };
        let ip: IpAddr = rec
            .ip
            .trim()
            .parse()
            .map_err(|_| err(1, format!("'{}' is not an IP address", printable(&rec.ip))))?;
        let recorded = time_of(&rec.timestamp);
        if let Some(t) = recorded {
            span = Some(span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        }
        let time = recorded.unwrap_or_else(Utc::now);
        for p in rec.ports {
            let proto = match p.proto.as_deref() {
                Some("udp") => Proto::Udp,
                Some("tcp") | None => Proto::Tcp,
                Some(_) => continue,
            };
            if let Some(s) = p.service
                && banners.len() < MAX_BANNERS
            {
                banners
                    .entry((ip, p.port, proto))
                    .or_insert_with(|| (printable(&s.name), s.banner.as_deref().map(printable)));
            }
            let Some(status) = p.status.as_deref() else {
                continue;
            };
            let state = match status {
                "open" => PortState::Open,
                "closed" => PortState::Closed,
                other => {
                    return Err(err(
                        1,
                        format!("unknown port status '{}'", printable(other)),
                    ));
                }
            };
            let reason = match (state, proto) {
                // A UDP answer (masscan sends protocol payloads).
                (PortState::Open, Proto::Udp) => Reason::UdpResponse,
                (PortState::Open, _) => Reason::SynAck,
                (_, Proto::Udp) => Reason::PortUnreach,
                _ => Reason::Reset,
            };
            let mut o = Observation::new(ip, p.port, proto, reason, None);
            o.state = state;
            o.time = time;
            let key = (ip, p.port, proto);
            match obs.get(&key) {
                Some(e) if e.time > time => {}
                _ => {
                    obs.insert(key, o);
                }
            }
        }
    }
    for (key, (name, banner)) in banners {
        if let Some(o) = obs.get_mut(&key) {
            let svc = o.service.get_or_insert_with(|| ServiceInfo {
                name,
                // masscan names the probe it sent, not a verified protocol.
                confidence: 0.3,
                ..ServiceInfo::default()
            });
            if svc.banner.is_none() {
                svc.banner = banner;
            }
        }
    }
    let truncated = cut.or_else(|| {
        (opened && !closed).then(|| "it opens a JSON array (`[`) that never closes".to_string())
    });
    Ok(MasscanRun {
        observations: obs.into_values().collect(),
        truncated,
        provenance: Provenance {
            scanner: Some("masscan".into()),
            started: span.map(|s| s.0),
            finished: span.map(|s| s.1),
            ..Provenance::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses masscan JSON held in memory.
    fn parse(text: &str, file: &str) -> Result<Vec<Observation>, ImportError> {
        Ok(parse_reader(text.as_bytes(), file)?.observations)
    }

    #[test]
    fn provenance_spans_the_records_in_any_order() {
        // masscan writes records as answers come; times need not be sorted.
        let text = r#"[
{"ip": "198.18.0.9", "timestamp": "1764000100", "ports": [{"port": 22, "proto": "tcp", "status": "open"}]},
{"ip": "198.18.0.8", "timestamp": 1764000050, "ports": [{"port": 53, "proto": "udp", "status": "open"}]},
{"ip": "198.18.0.7", "ports": [{"port": 80, "proto": "tcp", "status": "open"}]},
{"ip": "198.18.0.6", "timestamp": "1764000070", "ports": [{"port": 443, "proto": "tcp", "status": "open"}]}
]
"#;
        let p = parse_reader(text.as_bytes(), "m.json").unwrap().provenance;
        assert_eq!(
            p,
            Provenance {
                scanner: Some("masscan".into()),
                started: Utc.timestamp_opt(1764000050, 0).single(),
                finished: Utc.timestamp_opt(1764000100, 0).single(),
                ..Provenance::default()
            }
        );
    }

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
        let run = parse_reader(text.as_bytes(), "m.json").unwrap();
        let p = &run.provenance;
        assert_eq!(p.scanner.as_deref(), Some("masscan"));
        assert_eq!(p.scanner_version, None);
        assert_eq!(p.started, Utc.timestamp_opt(1764000000, 0).single());
        assert_eq!(p.finished, Utc.timestamp_opt(1764000002, 0).single());
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
