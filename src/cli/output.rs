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
    Csv {
        header_done: bool,
    },
    NmapXml(Vec<Observation>, chrono::DateTime<chrono::Utc>),
    Grepable(Vec<Observation>, chrono::DateTime<chrono::Utc>),
    /// A signed bundle's observations, framed when the scan ends (`scan --vantage`).
    Bundle(Box<portwarden::import::bundle::BundleWriter>),
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
            Format::Grepable => Kind::Grepable(Vec::new(), chrono::Utc::now()),
        };
        Output {
            w,
            kind,
            open_only,
            engine: portwarden::model::ScanKind::Connect,
        }
    }

    /// A bundle's output (`scan --vantage`): see [`Output::finish_bundle`].
    /// The same sink, writing a bundle's body instead (`scan --vantage`).
    pub fn into_bundle(self, body: portwarden::import::bundle::BundleWriter) -> Output {
        Output {
            kind: Kind::Bundle(Box::new(body)),
            open_only: false,
            ..self
        }
    }

    /// Writes a bundle: the header `frame` makes from what was collected,
    /// the observations, the summary. Returns the SHA-256 of its bytes.
    pub fn finish_bundle(
        mut self,
        frame: impl FnOnce(
            &portwarden::import::bundle::BundleWriter,
        ) -> (
            portwarden::import::bundle::Header,
            portwarden::import::bundle::Summary,
        ),
    ) -> io::Result<[u8; 32]> {
        let Kind::Bundle(body) = std::mem::replace(&mut self.kind, Kind::Jsonl) else {
            return Err(io::Error::other("not a bundle output"));
        };
        let (header, summary) = frame(&body);
        let digest = body.finish(&header, summary, &mut self.w)?;
        self.w.flush()?;
        Ok(digest)
    }

    /// Records the engine the scan runs with.
    pub fn with_engine(mut self, engine: portwarden::model::ScanKind) -> Output {
        self.engine = engine;
        self
    }

    /// Continues an earlier output already written to the sink (a resumed
    /// scan): a CSV header is not written again.
    pub fn continuing(mut self, yes: bool) -> Output {
        if yes && let Kind::Csv { header_done } = &mut self.kind {
            *header_done = true;
        }
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
            Kind::Json(all) | Kind::NmapXml(all, _) | Kind::Grepable(all, _) => all.push(o.clone()),
            Kind::Bundle(body) => body.observation(o)?,
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

    /// Writes what was held back (table, JSON) and flushes. An interrupted
    /// scan's output says it is incomplete, in each format's own way.
    pub fn finish(mut self, summary: &ScanSummary, catalogue: &Catalogue) -> io::Result<()> {
        const INCOMPLETE: &str = "scan interrupted: results are incomplete";
        let incomplete = summary.interrupted;
        match std::mem::replace(&mut self.kind, Kind::Jsonl) {
            Kind::Table(by_host) => {
                write_table(&mut self.w, &by_host, catalogue)?;
                if incomplete {
                    writeln!(self.w, "INCOMPLETE: {INCOMPLETE}")?;
                }
            }
            Kind::Json(mut all) => {
                all.sort_by_key(|a| (a.ip, a.port, a.proto));
                let doc = serde_json::json!({
                    "summary": {
                        "probed": summary.probed,
                        "sent": summary.sent,
                        "open": summary.open,
                        "closed": summary.closed,
                        "filtered": summary.filtered,
                        "local_errors": summary.local_errors,
                        "open_filtered": summary.open_filtered,
                        "udp_undecided": summary.udp_undecided,
                        "elapsed_s": summary.elapsed.as_secs_f64(),
                        "rate": summary.rate,
                        "interrupted": summary.interrupted,
                        "complete": !incomplete,
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
                let xml = if incomplete {
                    // nmap's own way to say a run did not finish.
                    xml.replacen(
                        "exit=\"success\"",
                        &format!("exit=\"error\" errormsg=\"{INCOMPLETE}\""),
                        1,
                    )
                } else {
                    xml
                };
                self.w.write_all(xml.as_bytes())?;
            }
            Kind::Grepable(all, started) => {
                write_grepable(&mut self.w, all, started, summary, catalogue)?;
                if incomplete {
                    writeln!(self.w, "# INCOMPLETE: {INCOMPLETE}")?;
                }
            }
            Kind::Jsonl => {
                if incomplete {
                    // A final record no observation parser takes for a port.
                    let rec = serde_json::json!({
                        "type": "summary",
                        "complete": false,
                        "interrupted": true,
                        "probed": summary.probed,
                        "open": summary.open,
                        "closed": summary.closed,
                        "filtered": summary.filtered,
                        "message": INCOMPLETE,
                    });
                    serde_json::to_writer(&mut self.w, &rec)?;
                    self.w.write_all(b"\n")?;
                }
            }
            Kind::Bundle(_) => {}
            Kind::Csv { .. } => {
                if incomplete {
                    writeln!(self.w, "# INCOMPLETE: {INCOMPLETE}")?;
                }
            }
        }
        self.w.flush()
    }
}

/// The identified service, else the catalogue's name for the port.
fn service_name(o: &Observation, catalogue: &Catalogue) -> String {
    match &o.service {
        Some(s) => s.name.clone(),
        None => catalogue
            .entry(o.port, o.proto)
            .map(|e| e.service.clone())
            .unwrap_or_default(),
    }
}

/// A greppable field: nmap's `-oG` separators (`/`, `,`) and control
/// characters cannot come from a network-supplied name.
fn grep_field(s: &str) -> String {
    terminal_safe(s)
        .chars()
        .map(|c| match c {
            '/' => '|',
            ',' | '\t' => ' ',
            c => c,
        })
        .collect()
}

/// nmap's greppable output (`-oG`): a comment header, one `Host:` line per
/// host with every reported port as `port/state/proto//service///`, and a
/// closing comment.
fn write_grepable(
    w: &mut dyn Write,
    mut all: Vec<Observation>,
    started: chrono::DateTime<chrono::Utc>,
    summary: &ScanSummary,
    catalogue: &Catalogue,
) -> io::Result<()> {
    all.sort_by_key(|a| (a.ip, a.port, a.proto));
    let args: Vec<String> = std::env::args().map(|a| grep_field(&a)).collect();
    writeln!(
        w,
        "# portwarden {} scan initiated {} as: {}",
        env!("CARGO_PKG_VERSION"),
        started.to_rfc2822(),
        args.join(" ")
    )?;
    let mut hosts = 0;
    for chunk in all.chunk_by(|a, b| a.ip == b.ip) {
        hosts += 1;
        let first = &chunk[0];
        let ports: Vec<String> = chunk
            .iter()
            .map(|o| {
                let service = service_name(o, catalogue);
                format!(
                    "{}/{}/{}//{}///",
                    o.port,
                    o.state,
                    o.proto,
                    grep_field(&service)
                )
            })
            .collect();
        writeln!(
            w,
            "Host: {} ({})\tPorts: {}",
            first.ip,
            grep_field(&first.hostnames.join(" ")),
            ports.join(", ")
        )?;
    }
    writeln!(
        w,
        "# portwarden done: {hosts} IP address{} with reported ports, scanned in {:.2} seconds",
        if hosts == 1 { "" } else { "es" },
        summary.elapsed.as_secs_f64()
    )
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
            let service = service_name(o, catalogue);
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
/// cannot move the cursor or rewrite the terminal (the report's escaping).
pub fn terminal_safe(s: &str) -> String {
    portwarden::report::display_safe(s)
}

/// Finding lines the audit summary prints before pointing at the report.
pub const SUMMARY_ROWS: usize = 30;

/// How the audit summary is printed.
pub struct SummaryStyle<'a> {
    /// The report's language and labels.
    pub labels: &'a portwarden::report::Labels,
    /// ANSI colours (a terminal, and NO_COLOR unset).
    pub color: bool,
    /// The report's index.html, named in the last line.
    pub index: &'a std::path::Path,
}

/// Whether to colour stdout: a terminal, and NO_COLOR unset or empty.
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn sev_color(s: portwarden::model::Severity) -> &'static str {
    use portwarden::model::Severity;
    match s {
        Severity::Critical => "\x1b[1;35m",
        Severity::High => "\x1b[1;31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
        Severity::Info => "\x1b[2m",
    }
}

/// The audit's history lines on stderr: the run id, and the drift naming
/// the run it is measured from, its scope and the history database (the
/// default history is shared by everyone using the account).
pub fn print_audit_history(
    o: &portwarden::app::AuditOutcome,
    labels: &portwarden::report::Labels,
    store: Option<&std::path::Path>,
) {
    if let Some(why) = &o.previous_unreadable {
        eprintln!("warning: {}", terminal_safe(why));
    }
    let store = store
        .map(|p| terminal_safe(&p.display().to_string()))
        .unwrap_or_default();
    if let Some(id) = o.run_id {
        eprintln!(
            "{}",
            labels.fmt(
                "term.recorded",
                &[("id", &id.to_string()), ("store", &store)]
            )
        );
    }
    if let Some(d) = &o.drift {
        let run = d
            .from
            .id
            .map(|i| i.to_string())
            .unwrap_or_else(|| "?".into());
        eprintln!(
            "{}",
            labels.fmt(
                "term.drift",
                &[
                    ("run", &run),
                    (
                        "started",
                        &d.from.started.format("%Y-%m-%d %H:%M UTC").to_string()
                    ),
                    ("scope", &terminal_safe(&d.from.scope_key)),
                    ("store", &store),
                    ("opened", &d.opened.len().to_string()),
                    ("closed", &d.closed.len().to_string()),
                    ("changed", &d.services_changed.len().to_string()),
                    ("new", &d.findings_new.len().to_string()),
                    ("resolved", &d.findings_resolved.len().to_string()),
                ],
            )
        );
    }
}

/// "1 port", "3 ports" (`what`: ports, hosts, findings) in the labels' language.
pub fn count(labels: &portwarden::report::Labels, what: &str, n: usize) -> String {
    let key = if n == 1 { "one" } else { "many" };
    labels.fmt(&format!("term.{what}_{key}"), &[("n", &n.to_string())])
}

/// Pads `s` to `width` terminal columns (CJK characters take two).
fn pad(s: &str, width: usize) -> String {
    let w = unicode_width::UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// One line per framework: its counts, and a percentage only where every
/// requirement was decided.
fn write_framework_lines(
    w: &mut dyn Write,
    ev: &portwarden::policy::Evaluation,
    labels: &portwarden::report::Labels,
) -> io::Result<()> {
    for p in &ev.profiles {
        // A percentage only where every requirement was decided (the
        // evaluator leaves `score` empty otherwise); else just the counts.
        let score = p
            .score
            .map(|s| format!("{:.0}% — ", s * 100.0))
            .unwrap_or_default();
        writeln!(
            w,
            "{}",
            labels.fmt(
                "term.framework",
                &[
                    ("name", &p.profile),
                    ("score", &score),
                    ("pass", &p.passed.to_string()),
                    ("total", &p.requirements.len().to_string()),
                    ("fail", &p.failed.to_string()),
                    ("partial", &p.partial.to_string()),
                    ("accepted", &p.accepted.to_string()),
                    ("na", &p.not_assessed.to_string()),
                    // Unconfirmed mappings are in no status count: shown
                    // apart, so the counts add up to the total.
                    ("unconfirmed", &p.unconfirmed.to_string()),
                ]
            )
        )?;
    }
    Ok(())
}

/// The audit's terminal summary: a header row, one line per host:port (all
/// its checks on it, at most [`SUMMARY_ROWS`]), one total line per
/// severity, each framework's verdict counts, and the report's index.html.
pub fn write_audit_summary(
    w: &mut dyn Write,
    ev: &portwarden::policy::Evaluation,
    style: &SummaryStyle<'_>,
) -> io::Result<()> {
    use portwarden::model::{Finding, Severity};
    let labels = style.labels;
    let t = |k: &str| labels.get(k);
    let paint = |s: Severity, text: String| -> String {
        if style.color {
            format!("{}{text}\x1b[0m", sev_color(s))
        } else {
            text
        }
    };
    type Key = (IpAddr, Option<u16>, Option<portwarden::model::Proto>);
    let mut rows: BTreeMap<Key, Vec<&Finding>> = BTreeMap::new();
    for f in &ev.findings {
        rows.entry((f.ip, f.port, f.proto)).or_default().push(f);
    }
    // (failing, severity, key, findings), most severe first.
    let mut rows: Vec<(bool, Severity, Key, Vec<&Finding>)> = rows
        .into_iter()
        .map(|(k, fs)| {
            let failing = fs.iter().any(|f| f.status.is_failing());
            let sev = fs
                .iter()
                .filter(|f| !failing || f.status.is_failing())
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Info);
            (failing, sev, k, fs)
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    if rows.is_empty() {
        writeln!(w, "{}", t("term.no_findings"))?;
    } else {
        writeln!(w, "{}", t("term.header"))?;
    }
    for (failing, sev, (ip, port, proto), fs) in rows.iter().take(SUMMARY_ROWS) {
        let place = match (port, proto) {
            (Some(p), Some(proto)) => format!("{ip}:{p}/{proto}"),
            _ => ip.to_string(),
        };
        let status = if *failing {
            t("status.fail")
        } else {
            t("status.waived")
        };
        let service = fs
            .iter()
            .find_map(|f| f.service.as_deref())
            .map(terminal_safe)
            .unwrap_or_default();
        let checks: Vec<String> = fs
            .iter()
            .map(|f| t(&format!("check.{}", f.check)))
            .collect();
        writeln!(
            w,
            "{} {} {} {} {}",
            paint(*sev, pad(&t(&format!("severity.{sev}")), 9)),
            pad(&status, 8),
            pad(&place, 22),
            pad(&service, 16),
            checks.join(", ")
        )?;
    }
    if rows.len() > SUMMARY_ROWS {
        writeln!(
            w,
            "{}",
            labels.fmt(
                "term.more",
                &[
                    ("n", &(rows.len() - SUMMARY_ROWS).to_string()),
                    ("path", &style.index.display().to_string()),
                ]
            )
        )?;
    }
    for sev in Severity::ALL.iter().rev() {
        let failing: Vec<_> = rows.iter().filter(|r| r.0 && r.1 == *sev).collect();
        // A host-level finding (no port) is counted as a host, not a port.
        let ports = failing.iter().filter(|r| r.2.1.is_some()).count();
        let hosts = failing.len() - ports;
        let findings = ev
            .findings
            .iter()
            .filter(|f| f.status.is_failing() && f.severity == *sev)
            .count();
        let mut places = Vec::new();
        if ports > 0 || hosts == 0 {
            places.push(count(labels, "ports", ports));
        }
        if hosts > 0 {
            places.push(count(labels, "hosts", hosts));
        }
        let line = labels.fmt(
            "term.total",
            &[
                ("severity", &t(&format!("severity.{sev}"))),
                ("places", &places.join(&t("term.list_sep"))),
                ("findings", &count(labels, "findings", findings)),
            ],
        );
        writeln!(
            w,
            "{}",
            if failing.is_empty() {
                line
            } else {
                paint(*sev, line)
            }
        )?;
    }
    write_framework_lines(w, ev, labels)?;
    writeln!(
        w,
        "{}",
        labels.fmt(
            "term.report",
            &[("path", &style.index.display().to_string())]
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use portwarden::model::{Finding, FindingStatus, Severity};

    /// A failing finding on 198.18.0.1 (`port` None: a host-level one).
    fn finding(port: Option<u16>, severity: Severity) -> Finding {
        Finding {
            id: format!("id{port:?}"),
            check: "not-allowed".into(),
            severity,
            ip: "198.18.0.1".parse().unwrap(),
            port,
            proto: port.map(|_| portwarden::model::Proto::Tcp),
            service: port.map(|_| "x\x1b[2J".into()),
            group: None,
            evidence: None,
            status: FindingStatus::Fail,
            exception: None,
            controls: Default::default(),
            remediation: "close-port".into(),
            message: String::new(),
            msg: Default::default(),
            allowed_by: None,
        }
    }

    #[test]
    fn audit_summary_has_a_header_totals_a_cap_and_names_the_report() {
        let finding = |i: u16, sev: Severity| finding(Some(1000 + i), sev);
        let ev = portwarden::policy::Evaluation {
            findings: (0..40)
                .map(|i| {
                    finding(
                        i,
                        if i < 5 {
                            Severity::Critical
                        } else {
                            Severity::Low
                        },
                    )
                })
                .collect(),
            profiles: vec![],
            assets: vec![],
            ports: vec![],
            coverage: vec![],
            exceptions: vec![],
            policy_given: false,
        };
        let index = std::path::Path::new("out/index.html");
        let mut buf = Vec::new();
        let labels = portwarden::report::Labels::embedded(portwarden::report::Lang::En).unwrap();
        let style = SummaryStyle {
            labels: &labels,
            color: false,
            index,
        };
        write_audit_summary(&mut buf, &ev, &style).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SEVERITY"));
        assert!(lines[1].starts_with("Critical "), "{}", lines[1]);
        assert!(lines[1].contains("198.18.0.1:1000/tcp"));
        assert_eq!(lines[SUMMARY_ROWS + 1], "… and 10 more in out/index.html");
        assert!(lines.contains(&"Critical: 5 ports, 5 findings"));
        assert!(lines.contains(&"Low: 35 ports, 35 findings"));
        assert!(lines.contains(&"High: 0 ports, 0 findings"));
        assert_eq!(*lines.last().unwrap(), "Report: out/index.html");
        assert!(!text.contains('\x1b'));

        let mut buf = Vec::new();
        let labels = portwarden::report::Labels::embedded(portwarden::report::Lang::ZhCn).unwrap();
        let style = SummaryStyle {
            labels: &labels,
            color: true,
            index,
        };
        write_audit_summary(&mut buf, &ev, &style).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("\x1b[1;35m严重"), "{text}");
        assert!(text.contains("端口开放但未获批准"));
        assert!(text.ends_with("报告：out/index.html\n"));
    }

    #[test]
    fn a_host_level_finding_counts_as_a_host_not_as_ports() {
        let f = finding(None, Severity::High);
        let ev = portwarden::policy::Evaluation {
            findings: vec![f],
            profiles: vec![],
            assets: vec![],
            ports: vec![],
            coverage: vec![],
            exceptions: vec![],
            policy_given: false,
        };
        for (lang, want) in [
            (portwarden::report::Lang::En, "High: 1 host, 1 finding"),
            (portwarden::report::Lang::ZhCn, "高危：1 台主机，1 条发现"),
        ] {
            let labels = portwarden::report::Labels::embedded(lang).unwrap();
            let style = SummaryStyle {
                labels: &labels,
                color: false,
                index: std::path::Path::new("r/index.html"),
            };
            let mut buf = Vec::new();
            write_audit_summary(&mut buf, &ev, &style).unwrap();
            let text = String::from_utf8(buf).unwrap();
            assert!(text.lines().any(|l| l == want), "{text}");
        }
    }

    #[test]
    fn terminal_text_loses_control_characters() {
        assert_eq!(
            terminal_safe("a\x1b[2Jb\r\n"),
            "a\u{FFFD}[2Jb\u{FFFD}\u{FFFD}"
        );
    }
}
