//! Output writers for `scan`: a table of open ports per host for people,
//! and JSON, streamed JSONL and CSV for machines. Everything that came from
//! the network (host names, banners) is made inert before it is written:
//! control characters never reach the terminal, and CSV cells that a
//! spreadsheet would run as formulas are neutralised.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;

use portwarden::model::{Observation, PortState};
use portwarden::report::csv_inert;
use portwarden::rules::Catalogue;
use portwarden::scan::ScanSummary;

use super::args::Format;

pub struct Output {
    w: Box<dyn Write + Send>,
    kind: Kind,
    open_only: bool,
    /// The probe engine, for formats that record it (nmap XML).
    engine: portwarden::model::ScanKind,
}

enum Kind {
    Table(BTreeMap<IpAddr, Vec<Observation>>),
    Json(Vec<Observation>),
    Jsonl,
    Csv { header_done: bool },
    NmapXml(Vec<Observation>, chrono::DateTime<chrono::Utc>),
}

const CSV_HEADER: [&str; 10] = [
    "ip",
    "port",
    "proto",
    "state",
    "reason",
    "rtt_ms",
    "time",
    "tries",
    "hostnames",
    "service",
];

impl Output {
    pub fn new(format: Format, w: Box<dyn Write + Send>, open_only: bool) -> Output {
        let kind = match format {
            Format::Table => Kind::Table(BTreeMap::new()),
            Format::Json => Kind::Json(Vec::new()),
            Format::Jsonl => Kind::Jsonl,
            Format::Csv => Kind::Csv { header_done: false },
            Format::NmapXml => Kind::NmapXml(Vec::new(), chrono::Utc::now()),
        };
        Output {
            w,
            kind,
            open_only,
            engine: portwarden::model::ScanKind::Connect,
        }
    }

    /// Records the engine the scan runs with.
    pub fn with_engine(mut self, engine: portwarden::model::ScanKind) -> Output {
        self.engine = engine;
        self
    }

    /// Takes one observation; streaming formats write it at once.
    pub fn observation(&mut self, o: &Observation) -> io::Result<()> {
        if self.open_only && o.state != PortState::Open {
            return Ok(());
        }
        match &mut self.kind {
            Kind::Table(by_host) => {
                if o.state == PortState::Open {
                    by_host.entry(o.ip).or_default().push(o.clone());
                }
            }
            Kind::Json(all) | Kind::NmapXml(all, _) => all.push(o.clone()),
            Kind::Jsonl => {
                serde_json::to_writer(&mut self.w, o)?;
                self.w.write_all(b"\n")?;
            }
            Kind::Csv { header_done } => {
                let mut csv = csv::WriterBuilder::new().from_writer(&mut self.w);
                if !*header_done {
                    csv.write_record(CSV_HEADER)?;
                    *header_done = true;
                }
                let rtt = o.rtt_ms.map(|r| format!("{r:.3}")).unwrap_or_default();
                let row = [
                    o.ip.to_string(),
                    o.port.to_string(),
                    o.proto.to_string(),
                    o.state.to_string(),
                    o.reason.to_string(),
                    rtt,
                    o.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    o.tries.to_string(),
                    o.hostnames.join(" "),
                    o.service
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                ];
                csv.write_record(row.iter().map(|c| csv_inert(c).into_owned()))?;
                csv.flush()?;
            }
        }
        Ok(())
    }

    /// Writes what was held back (table, JSON) and flushes.
    pub fn finish(mut self, summary: &ScanSummary, catalogue: &Catalogue) -> io::Result<()> {
        match std::mem::replace(&mut self.kind, Kind::Jsonl) {
            Kind::Table(by_host) => write_table(&mut self.w, &by_host, catalogue)?,
            Kind::Json(mut all) => {
                all.sort_by_key(|a| (a.ip, a.port, a.proto));
                let doc = serde_json::json!({
                    "summary": {
                        "probed": summary.probed,
                        "sent": summary.sent,
                        "open": summary.open,
                        "closed": summary.closed,
                        "filtered": summary.filtered,
                        "open_filtered": summary.open_filtered,
                        "elapsed_s": summary.elapsed.as_secs_f64(),
                        "rate": summary.rate,
                        "interrupted": summary.interrupted,
                    },
                    "observations": all,
                });
                serde_json::to_writer_pretty(&mut self.w, &doc)?;
                self.w.write_all(b"\n")?;
            }
            Kind::NmapXml(mut all, started) => {
                all.sort_by_key(|a| (a.ip, a.port, a.proto));
                let args: Vec<String> = std::env::args().collect();
                let finished =
                    started + chrono::Duration::from_std(summary.elapsed).unwrap_or_default();
                let xml = portwarden::import::to_nmap_xml(
                    &all,
                    &args.join(" "),
                    &self.engine.to_string(),
                    started,
                    finished,
                );
                self.w.write_all(xml.as_bytes())?;
            }
            Kind::Jsonl | Kind::Csv { .. } => {}
        }
        self.w.flush()
    }
}

fn write_table(
    w: &mut dyn Write,
    by_host: &BTreeMap<IpAddr, Vec<Observation>>,
    catalogue: &Catalogue,
) -> io::Result<()> {
    if by_host.is_empty() {
        return writeln!(w, "no open ports found");
    }
    for (ip, obs) in by_host {
        let names = &obs[0].hostnames;
        if names.is_empty() {
            writeln!(w, "{ip}")?;
        } else {
            writeln!(w, "{ip} ({})", terminal_safe(&names.join(", ")))?;
        }
        let mut obs: Vec<&Observation> = obs.iter().collect();
        obs.sort_by_key(|o| (o.port, o.proto));
        for o in obs {
            let service = match &o.service {
                Some(s) => s.name.clone(),
                None => catalogue
                    .entry(o.port, o.proto)
                    .map(|e| e.service.clone())
                    .unwrap_or_default(),
            };
            let rtt = o.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_default();
            let port = format!("{}/{}", o.port, o.proto);
            writeln!(
                w,
                "  {port:<12} {:<6} {:<16} {rtt}",
                o.state,
                terminal_safe(&service)
            )?;
        }
    }
    Ok(())
}

/// Replaces control characters (ESC, CR, BEL, …) so network-supplied text
/// cannot move the cursor or rewrite the terminal.
pub fn terminal_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_loses_control_characters() {
        assert_eq!(
            terminal_safe("a\x1b[2Jb\r\n"),
            "a\u{FFFD}[2Jb\u{FFFD}\u{FFFD}"
        );
    }
}
