//! Import layer: nmap's XML output (`nmap -oX`), read and written.
//!
//! Reading keeps what an audit needs: each `<host>`'s addresses, host
//! names and times, every `<port>` with its state, reason and `<service>`,
//! and the closed ports nmap folds into `<extraports>` when it lists them
//! (`<extrareasons ports="…">`, nmap 7.9x), and the run's provenance (the
//! scanner, its version and command line, start and end, the port list of
//! each `<scaninfo>`) for the report's scope. nmap's states `open|filtered`
//! and `closed|filtered` are uncertain and become `filtered`. Writing emits
//! the same structure, so nmap-reading tools (and this reader) take
//! portwarden's results.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Read};
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{
    Folded, ImportError, MAX_ARGS, MAX_NAME, MAX_PORT_LIST, MAX_PORT_LISTS, PortList, PortRanges,
    Provenance, inert, line_col,
};
use crate::model::{Observation, PortState, Proto, Reason, ServiceInfo};

/// What one nmap XML file holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NmapRun {
    /// What the file says about its scan: scanner, version, command line,
    /// start and end, the port list per protocol.
    pub provenance: Provenance,
    /// The ports nmap listed, one per (address, port, protocol).
    pub observations: Vec<Observation>,
    /// The ports nmap folded into `<extraports>`, kept as ranges.
    pub folded: Vec<Folded>,
    /// Why the file looks cut short (no `</nmaprun>`, no `<finished>`, or
    /// nmap's own error exit); `None` for a complete file. What it holds is
    /// still read, host by complete host.
    pub truncated: Option<String>,
}

/// Confidence given to nmap's `method="table"` service names: a guess from
/// the port number, below identification's 0.5 threshold on purpose.
const TABLE_GUESS: f32 = 0.3;

/// Most attributes read from one element: nmap writes at most about 15.
const MAX_ATTRIBUTES: usize = 256;

/// Longest run of bytes accepted without a `<` or `>`: one element or one
/// text node. nmap's longest (a script output) is far below it.
const MAX_ELEMENT: usize = 16 << 20;

fn reason_for(state: PortState, reason: &str, connect: bool, proto: Proto) -> Reason {
    let r = match reason {
        "syn-ack" => Some(if connect {
            Reason::Connected
        } else {
            Reason::SynAck
        }),
        "conn-refused" => Some(Reason::ConnRefused),
        "reset" | "rst" => Some(Reason::Reset),
        "no-response" => Some(Reason::NoResponse),
        "udp-response" => Some(Reason::UdpResponse),
        "host-unreach" => Some(Reason::HostUnreach),
        "net-unreach" => Some(Reason::NetUnreach),
        "port-unreach" => Some(Reason::PortUnreach),
        "proto-unreach" => Some(Reason::ProtoUnreach),
        "admin-prohibited" | "host-prohibited" | "net-prohibited" => Some(Reason::AdminProhibited),
        _ => None,
    };
    if proto == Proto::Udp {
        // UDP reads nmap's states its own way: an ICMP port unreachable is
        // the "closed" answer, and silence is open|filtered.
        return match (state, r) {
            (PortState::Open, _) => Reason::UdpResponse,
            (PortState::Closed, _) => Reason::PortUnreach,
            (PortState::OpenFiltered, _) => Reason::NoResponse,
            (PortState::Filtered, Some(r)) if r.state() == PortState::Filtered => r,
            (PortState::Filtered, _) => Reason::NoResponse,
        };
    }
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

/// nmap's port state. `closed|filtered` and `unfiltered` (ACK scans) say
/// nothing about a service: `filtered`. `open|filtered` is kept for UDP,
/// where it is the normal answer of a silent port; for TCP (FIN/NULL/Xmas
/// scans) it stays `filtered`, as the TCP engines have no such state.
fn state_of(s: &str, proto: Proto) -> Option<PortState> {
    match s {
        "open" => Some(PortState::Open),
        "closed" => Some(PortState::Closed),
        "open|filtered" if proto == Proto::Udp => Some(PortState::OpenFiltered),
        "filtered" | "open|filtered" | "closed|filtered" | "unfiltered" => {
            Some(PortState::Filtered)
        }
        _ => None,
    }
}

fn proto_of(v: Option<&String>) -> Option<Proto> {
    match v.map(String::as_str) {
        Some("udp") => Some(Proto::Udp),
        Some("tcp") | None => Some(Proto::Tcp),
        // SCTP and IP-protocol scans have no place in the model.
        Some(_) => None,
    }
}

/// One `<host>` being read. Its ports are keyed, so a repeated `<port>`
/// replaces the earlier one instead of adding to the count.
#[derive(Default)]
struct Host {
    addr: Option<IpAddr>,
    hostnames: Vec<String>,
    time: Option<DateTime<Utc>>,
    ports: BTreeMap<(u16, Proto), (PortState, Reason, Option<ServiceInfo>)>,
    /// Folded ports by (protocol, state, reason).
    folded: BTreeMap<(Proto, PortState, Reason), PortRanges>,
    /// The state of the `<extraports>` being read.
    extra_state: Option<PortState>,
}

/// The `<port>` being read: number, protocol, state, nmap's reason, service.
type PortRead = (u16, Proto, Option<PortState>, String, Option<ServiceInfo>);

struct Parser<'a> {
    file: &'a str,
    pos: &'a dyn Fn(u64) -> (usize, usize),
}

impl Parser<'_> {
    fn err(&self, offset: u64, message: String, hint: &str) -> ImportError {
        let (line, col) = (self.pos)(offset);
        ImportError::Parse {
            file: self.file.to_string(),
            line,
            col,
            message,
            hint: hint.to_string(),
        }
    }

    /// The attributes of `e`. quick-xml's duplicate check compares each
    /// attribute with every earlier one (quadratic: 100,000 attributes took
    /// 29 s), so it is off, and an element with more attributes than nmap
    /// ever writes is refused; a repeated name keeps its last value.
    fn attrs(&self, e: &BytesStart, at: u64) -> Result<BTreeMap<String, String>, ImportError> {
        let mut m = BTreeMap::new();
        for (n, a) in e.attributes().with_checks(false).enumerate() {
            if n == MAX_ATTRIBUTES {
                return Err(self.err(
                    at,
                    format!(
                        "more than {MAX_ATTRIBUTES} attributes in one <{}> element",
                        inert(&String::from_utf8_lossy(e.name().as_ref()), MAX_NAME)
                    ),
                    XML_HINT,
                ));
            }
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

/// A reader that refuses a run of more than `max` bytes without a tag
/// boundary, so one endless element or text node cannot fill memory.
struct ElementGuard<R> {
    inner: R,
    since: usize,
    max: usize,
}

impl<R: BufRead> Read for ElementGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        super::read_through(self, out)
    }
}

impl<R: BufRead> BufRead for ElementGuard<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.since > self.max {
            return Err(std::io::Error::other(format!(
                "more than {} MiB without a tag: not an nmap XML file, or a damaged one",
                self.max >> 20
            )));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(b) = self.inner.fill_buf() {
            let seen = &b[..amt.min(b.len())];
            match seen.iter().rposition(|&c| c == b'<' || c == b'>') {
                Some(i) => self.since = seen.len() - i - 1,
                None => self.since += seen.len(),
            }
        }
        self.inner.consume(amt);
    }
}

/// Parses nmap XML held in memory; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<NmapRun, ImportError> {
    let pos = |offset: u64| line_col(text, usize::try_from(offset).unwrap_or(usize::MAX));
    parse_reader(text.as_bytes(), file, &pos)
}

/// Parses nmap XML as a stream: memory grows with the ports nmap listed,
/// never with the size of one element or of a folded range. `pos` turns a
/// byte offset into a line and column for error messages.
pub fn parse_reader<R: BufRead>(
    input: R,
    file: &str,
    pos: &dyn Fn(u64) -> (usize, usize),
) -> Result<NmapRun, ImportError> {
    let p = Parser { file, pos };
    let mut reader = Reader::from_reader(ElementGuard {
        inner: input,
        since: 0,
        max: MAX_ELEMENT,
    });
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut st = ReadState::default();
    let mut cut: Option<String> = None;
    loop {
        buf.clear();
        let ev = match reader.read_event_into(&mut buf) {
            Ok(ev) => ev,
            // Input that ends inside a tag, comment or declaration: a cut file.
            Err(quick_xml::Error::Syntax(e)) if st.seen_root => {
                cut = Some(format!("it ends inside markup ({e})"));
                break;
            }
            Err(e) => {
                return Err(p.err(
                    reader.buffer_position(),
                    format!("not well-formed XML: {e}"),
                    XML_HINT,
                ));
            }
        };
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                st.end(e.name().as_ref());
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        // Where the element starts (`<`), for messages: the reader is past
        // its `>` (or `/>`), and skipped text may come before it.
        let at = reader
            .buffer_position()
            .saturating_sub(e.len() as u64 + 2 + u64::from(empty));
        let a = p.attrs(e, at)?;
        st.start(&p, e.name().as_ref(), &a, at, empty)?;
    }
    if !st.seen_root {
        return Err(p.err(
            0,
            "no <nmaprun> element: not an nmap XML file".into(),
            XML_HINT,
        ));
    }
    let mut out = st.out;
    out.provenance = st.provenance;
    out.truncated = cut.or_else(|| match (&st.finished, st.closed_root) {
        (Some(Err(msg)), _) => Some(format!("nmap reported an error exit: {msg}")),
        (None, _) => Some("it has no <runstats><finished>: nmap did not finish writing it".into()),
        (_, false) => Some("it ends before </nmaprun>".into()),
        (Some(Ok(())), true) => None,
    });
    Ok(out)
}

/// What the reader has seen so far of one nmap XML file.
#[derive(Default)]
struct ReadState {
    provenance: Provenance,
    /// The TCP scan was a connect scan (replies then carry no TTL reason).
    connect: bool,
    run_time: Option<DateTime<Utc>>,
    seen_root: bool,
    closed_root: bool,
    finished: Option<Result<(), String>>,
    host: Option<Host>,
    port: Option<PortRead>,
    out: NmapRun,
}

impl ReadState {
    /// An end tag.
    fn end(&mut self, name: &[u8]) {
        match name {
            b"port" => {
                if let (Some(h), Some((n, proto, Some(state), reason, svc))) =
                    (self.host.as_mut(), self.port.take())
                {
                    let r = reason_for(state, &reason, self.connect, proto);
                    h.ports.insert((n, proto), (state, r, svc));
                }
            }
            b"extraports" => {
                if let Some(h) = self.host.as_mut() {
                    h.extra_state = None;
                }
            }
            b"host" => {
                if let Some(h) = self.host.take() {
                    flush_host(h, self.run_time, &mut self.out);
                }
            }
            b"nmaprun" => self.closed_root = true,
            _ => {}
        }
    }

    /// A start (or empty) tag, with its attributes `a`, starting at byte `at`.
    fn start(
        &mut self,
        p: &Parser,
        name: &[u8],
        a: &BTreeMap<String, String>,
        at: u64,
        empty: bool,
    ) -> Result<(), ImportError> {
        match name {
            b"nmaprun" => {
                self.seen_root = true;
                self.run_time = unix_time(a.get("start"));
                self.provenance.scanner = a.get("scanner").map(|v| inert(v, MAX_NAME));
                self.provenance.scanner_version = a.get("version").map(|v| inert(v, MAX_NAME));
                self.provenance.args = a.get("args").map(|v| inert(v, MAX_ARGS));
                self.provenance.started = self.run_time;
            }
            // A combined -sS -sU run has one scaninfo per protocol.
            b"scaninfo" => {
                if a.get("protocol").is_none_or(|p| p == "tcp") {
                    self.connect = a.get("type").is_some_and(|t| t == "connect");
                }
                if self.provenance.ports.len() < MAX_PORT_LISTS {
                    self.provenance.ports.push(PortList {
                        protocol: inert(a.get("protocol").map_or("tcp", String::as_str), MAX_NAME),
                        scan_type: a.get("type").map(|v| inert(v, MAX_NAME)),
                        ports: inert(a.get("services").map_or("", String::as_str), MAX_PORT_LIST),
                    });
                }
            }
            b"finished" => {
                self.provenance.finished = unix_time(a.get("time"));
                self.finished = Some(match a.get("exit").map(String::as_str) {
                    Some("error") => Err(a
                        .get("errormsg")
                        .cloned()
                        .unwrap_or_else(|| "no message".into())),
                    _ => Ok(()),
                });
            }
            b"host" => {
                self.host = Some(Host {
                    time: unix_time(a.get("endtime")).or(unix_time(a.get("starttime"))),
                    ..Host::default()
                });
            }
            b"address" => self.address(p, a, at)?,
            b"hostname" => {
                if let (Some(h), Some(n)) = (self.host.as_mut(), a.get("name"))
                    && !h.hostnames.contains(n)
                    && h.hostnames.len() < 64
                {
                    h.hostnames.push(n.clone());
                }
            }
            b"port" => {
                let n = a
                    .get("portid")
                    .and_then(|v| v.parse::<u16>().ok())
                    .filter(|&n| n != 0)
                    .ok_or_else(|| {
                        p.err(
                            at,
                            "a <port> without a valid portid (1 to 65535)".into(),
                            XML_HINT,
                        )
                    })?;
                self.port = match proto_of(a.get("protocol")) {
                    Some(proto) if !empty => Some((n, proto, None, String::new(), None)),
                    _ => None,
                };
            }
            b"state" => {
                if let Some(pt) = self.port.as_mut() {
                    let s = a.get("state").map(String::as_str).unwrap_or_default();
                    pt.2 = Some(state_of(s, pt.1).ok_or_else(|| {
                        p.err(
                            at,
                            format!("unknown port state '{}'", inert(s, MAX_NAME)),
                            XML_HINT,
                        )
                    })?);
                    pt.3 = a.get("reason").cloned().unwrap_or_default();
                }
            }
            b"service" => {
                if let Some(pt) = self.port.as_mut()
                    && let Some(n) = a.get("name").filter(|n| !n.is_empty())
                {
                    pt.4 = Some(service_of(n, a).map_err(|m| {
                        p.err(at, m, "nmap writes conf as a whole number from 0 to 10")
                    })?);
                }
            }
            b"extraports" => {
                if let Some(h) = self.host.as_mut() {
                    h.extra_state = a.get("state").and_then(|s| state_of(s, Proto::Udp));
                }
            }
            b"extrareasons" => self.extrareasons(a),
            _ => {}
        }
        Ok(())
    }

    /// `<address>`: one IP address per host.
    fn address(
        &mut self,
        p: &Parser,
        a: &BTreeMap<String, String>,
        at: u64,
    ) -> Result<(), ImportError> {
        if let Some(h) = self.host.as_mut()
            && matches!(a.get("addrtype").map(String::as_str), Some("ipv4" | "ipv6"))
        {
            let v = a.get("addr").map(String::as_str).unwrap_or_default();
            let ip = v.parse::<IpAddr>().map_err(|_| {
                p.err(
                    at,
                    format!("address '{}' is not an IP address", inert(v, MAX_NAME)),
                    XML_HINT,
                )
            })?;
            if h.addr.is_some_and(|first| first != ip) {
                return Err(p.err(
                    at,
                    format!("a second IP address ({ip}) in one <host>"),
                    "nmap writes one IP address per <host>: this file was not written by nmap -oX, or was edited",
                ));
            }
            h.addr = Some(ip);
        }
        Ok(())
    }

    /// `<extrareasons>`: folded ports, listed only by recent nmap versions.
    fn extrareasons(&mut self, a: &BTreeMap<String, String>) {
        // Folded ports, listed only by recent nmap versions.
        if let (Some(h), Some(list)) = (self.host.as_mut(), a.get("ports"))
            && let Some(proto) = proto_of(a.get("proto"))
        {
            let reason = a.get("reason").cloned().unwrap_or_default();
            let reason = reason.trim_end_matches('s');
            let state = match h.extra_state {
                Some(PortState::OpenFiltered) if proto == Proto::Tcp => PortState::Filtered,
                Some(s) => s,
                None => match reason {
                    "conn-refused" | "reset" => PortState::Closed,
                    _ => PortState::Filtered,
                },
            };
            let r = reason_for(state, reason, self.connect, proto);
            h.folded
                .entry((proto, state, r))
                .or_default()
                .union(&PortRanges::parse(list));
        }
    }
}

/// A `<service>` element as identification facts. A `conf` that is not a
/// number from 0 to 10 (`NaN`, `inf`, `1e39`) is refused: it would be
/// recorded as a confidence nothing can read back.
fn service_of(n: &str, a: &BTreeMap<String, String>) -> Result<ServiceInfo, String> {
    let probed = a.get("method").is_some_and(|m| m == "probed");
    let conf = match a.get("conf") {
        None => None,
        Some(c) => match c.trim().parse::<f32>() {
            Ok(v) if (0.0..=10.0).contains(&v) => Some(v / 10.0),
            _ => {
                return Err(format!(
                    "<service conf=\"{}\">: not a number from 0 to 10",
                    inert(c, MAX_NAME)
                ));
            }
        },
    };
    let mut extra = BTreeMap::new();
    if let Some(x) = a.get("extrainfo") {
        extra.insert("extrainfo".to_string(), x.clone());
    }
    if let Some(t) = a.get("tunnel") {
        extra.insert("tunnel".to_string(), t.clone());
    }
    let name = match a.get("tunnel").map(String::as_str) {
        Some("ssl") if n == "http" => "https".to_string(),
        _ => n.to_string(),
    };
    Ok(ServiceInfo {
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
    })
}

/// A complete `<host>`: its listed ports become observations, its folded
/// ports stay ranges (minus any port it also listed).
fn flush_host(h: Host, run_time: Option<DateTime<Utc>>, out: &mut NmapRun) {
    let Some(ip) = h.addr else {
        return;
    };
    let time = h.time.or(run_time).unwrap_or_else(Utc::now);
    for ((proto, state, reason), ranges) in h.folded {
        let mut listed = PortRanges::new();
        for &(n, pr) in h.ports.keys() {
            if pr == proto {
                listed.insert(n, n);
            }
        }
        let ports = ranges.minus(&listed);
        if !ports.is_empty() {
            out.folded.push(Folded {
                ip,
                proto,
                state,
                reason,
                time,
                hostnames: h.hostnames.clone(),
                ports,
            });
        }
    }
    for ((n, proto), (state, reason, service)) in h.ports {
        let mut o = Observation::new(ip, n, proto, reason, None);
        o.state = state;
        o.time = time;
        o.hostnames = h.hostnames.clone();
        o.service = service;
        out.observations.push(o);
    }
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
            run.provenance.args.as_deref(),
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
                "198.18.0.5:22 open connected",
                "198.18.0.5:23 filtered no-response",
            ]
        );
        // The folded closed ports stay a range.
        assert_eq!(run.folded.len(), 1);
        let f = &run.folded[0];
        assert_eq!(
            (f.state, f.reason, f.proto),
            (PortState::Closed, Reason::ConnRefused, Proto::Tcp)
        );
        assert_eq!(f.ports.iter().collect::<Vec<_>>(), [80, 443]);
        assert_eq!(run.truncated, None);
        let ssh = run.observations[0].service.as_ref().unwrap();
        assert_eq!(ssh.name, "ssh");
        assert_eq!(ssh.product.as_deref(), Some("OpenSSH"));
        assert_eq!(ssh.version.as_deref(), Some("9.6p1"));
        assert_eq!(ssh.confidence, 1.0);
        assert_eq!(
            run.observations[1].service.as_ref().unwrap().confidence,
            TABLE_GUESS
        );
        assert_eq!(run.observations[0].hostnames, ["web&1.lab"]);
        assert_eq!(
            run.observations[0].time,
            Utc.timestamp_opt(1764000003, 0).unwrap()
        );
    }

    #[test]
    fn provenance_is_what_the_lab_file_records() {
        let text = include_str!("../../tests/fixtures/nmap-lab.xml");
        let p = parse(text, "nmap-lab.xml").unwrap().provenance;
        assert_eq!(p.scanner.as_deref(), Some("nmap"));
        assert_eq!(p.scanner_version.as_deref(), Some("7.93"));
        assert_eq!(
            p.args.as_deref(),
            Some("nmap -sT -Pn -n --reason -T4 -p 22,80,443,3306 -oX - 198.19.7.0/29")
        );
        assert_eq!(p.started, Utc.timestamp_opt(1795560387, 0).single());
        assert_eq!(p.finished, Utc.timestamp_opt(1795560388, 0).single());
        assert_eq!(
            p.ports,
            [PortList {
                protocol: "tcp".into(),
                scan_type: Some("connect".into()),
                ports: "22,80,443,3306".into(),
            }]
        );
    }

    #[test]
    fn provenance_keeps_one_port_list_per_protocol_and_is_bounded_and_inert() {
        let long = "1,".repeat(MAX_PORT_LIST);
        let args = format!(
            "nmap <script>alert(1)</script> \x1b[2J{}",
            "-v ".repeat(MAX_ARGS)
        );
        let x = format!(
            r#"<nmaprun scanner="nmap" args="{}" start="1764000000" version="7.94&#9;x">
<scaninfo type="syn" protocol="tcp" services="{long}"/>
<scaninfo type="udp" protocol="udp" services="53,161"/>
<host><address addr="198.18.0.7" addrtype="ipv4"/><ports>
<port protocol="udp" portid="53"><state state="open" reason="udp-response"/></port>
</ports></host></nmaprun>"#,
            quick_xml::escape::escape(&args)
        );
        let run = parse(&x, "p.xml").unwrap();
        let p = &run.provenance;
        // The file is cut short (no <finished>): no end time, the rest kept.
        assert!(run.truncated.is_some());
        assert_eq!(p.finished, None);
        assert_eq!(p.scanner_version.as_deref(), Some("7.94\u{FFFD}x"));
        let a = p.args.as_deref().unwrap();
        assert!(
            a.starts_with("nmap <script>alert(1)</script> \u{FFFD}[2J-v "),
            "{a}"
        );
        assert!(a.len() <= MAX_ARGS + '…'.len_utf8() && a.ends_with('…'));
        assert!(!a.chars().any(char::is_control));
        let brief: Vec<_> = p
            .ports
            .iter()
            .map(|l| (l.protocol.as_str(), l.scan_type.as_deref(), l.ports.len()))
            .collect();
        assert_eq!(
            brief,
            [
                ("tcp", Some("syn"), MAX_PORT_LIST + '…'.len_utf8()),
                ("udp", Some("udp"), 6)
            ]
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
    fn a_cut_file_says_so_and_keeps_whole_hosts() {
        // Cut right after the first </host>: no runstats, no </nmaprun>.
        let cut = &SAMPLE[..SAMPLE.find("</host>").unwrap() + "</host>".len()];
        let run = parse(cut, "c.xml").unwrap();
        assert_eq!(run.observations.len(), 2);
        assert!(
            run.truncated
                .as_deref()
                .unwrap()
                .contains("no <runstats><finished>"),
            "{:?}",
            run.truncated
        );
        // Cut inside a tag of the second host.
        let mid = format!(
            "{cut}\n<host><address addr=\"198.18.0.6\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" por"
        );
        let run = parse(&mid, "c.xml").unwrap();
        assert_eq!(run.observations.len(), 2, "the cut host is not kept");
        assert!(
            run.truncated
                .as_deref()
                .unwrap()
                .contains("ends inside markup"),
            "{:?}",
            run.truncated
        );
        // Runstats present but </nmaprun> missing.
        let noend = SAMPLE.replace("</nmaprun>", "");
        assert_eq!(
            parse(&noend, "c.xml").unwrap().truncated.as_deref(),
            Some("it ends before </nmaprun>")
        );
        // nmap's own error exit.
        let err = SAMPLE.replace(
            "<finished time=\"1764000003\"/>",
            "<finished time=\"1\" exit=\"error\" errormsg=\"boom\"/>",
        );
        assert_eq!(
            parse(&err, "c.xml").unwrap().truncated.as_deref(),
            Some("nmap reported an error exit: boom")
        );
    }

    #[test]
    fn folded_ranges_never_expand_per_address_and_hosts_have_one_address() {
        // The issue's 9 KB file: 200 <address> elements and a full range.
        let mut x = String::from("<nmaprun><host>");
        for i in 0..200 {
            x.push_str(&format!(
                "<address addr=\"198.18.{}.{}\" addrtype=\"ipv4\"/>",
                i / 250,
                i % 250 + 1
            ));
        }
        x.push_str("<ports><extraports state=\"closed\" count=\"65535\"><extrareasons reason=\"resets\" count=\"65535\" proto=\"tcp\" ports=\"1-65535\"/></extraports></ports></host></nmaprun>");
        let e = parse(&x, "a.xml").unwrap_err().to_string();
        assert!(
            e.contains("a second IP address (198.18.0.2) in one <host>"),
            "{e}"
        );
        // One address, the range repeated 2,000 times: one interval.
        let x = format!(
            "<nmaprun><host><address addr=\"198.18.0.1\" addrtype=\"ipv4\"/><ports><extraports state=\"filtered\"><extrareasons reason=\"no-responses\" proto=\"tcp\" ports=\"{}\"/></extraports><port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\"/></port></ports></host><runstats><finished time=\"1\"/></runstats></nmaprun>",
            "1-65535,".repeat(2000)
        );
        let run = parse(&x, "r.xml").unwrap();
        assert_eq!(run.observations.len(), 1);
        assert_eq!(run.folded.len(), 1);
        assert_eq!(run.folded[0].ports.intervals(), &[(1, 21), (23, 65535)]);
        assert_eq!(run.folded[0].state, PortState::Filtered);
        assert_eq!(run.folded[0].reason, Reason::NoResponse);
        assert_eq!(run.truncated, None);
    }

    #[test]
    fn an_element_without_end_is_refused_in_bounded_memory() {
        let mut input = b"<nmaprun><host><address addr=\"".to_vec();
        let endless = std::io::BufReader::new(std::io::Read::chain(
            &input[..],
            std::io::Read::take(std::io::repeat(b'a'), (MAX_ELEMENT as u64) * 4),
        ));
        let pos = |_| (1, 1);
        let e = parse_reader(endless, "z.xml", &pos)
            .unwrap_err()
            .to_string();
        assert!(e.contains("MiB without a tag"), "{e}");
        input.clear();
    }

    #[test]
    fn udp_results_import_as_udp() {
        let x = r#"<nmaprun scanner="nmap" args="nmap -sU -p 53,123,161,1900 198.18.0.7" start="1764000000">
<scaninfo type="udp" protocol="udp" numservices="4" services="53,123,161,1900"/>
<host><address addr="198.18.0.7" addrtype="ipv4"/><ports>
<extraports state="closed" count="1"><extrareasons reason="port-unreachs" count="1" proto="udp" ports="1900"/></extraports>
<port protocol="udp" portid="53"><state state="open" reason="udp-response" reason_ttl="64"/><service name="domain" method="table" conf="3"/></port>
<port protocol="udp" portid="123"><state state="open|filtered" reason="no-response" reason_ttl="0"/></port>
<port protocol="udp" portid="161"><state state="closed" reason="port-unreach" reason_ttl="64"/></port>
</ports></host><runstats><finished time="1764000009" exit="success"/></runstats></nmaprun>"#;
        let run = parse(x, "u.xml").unwrap();
        let brief: Vec<String> = run
            .observations
            .iter()
            .map(|o| format!("{}/{} {} {}", o.port, o.proto, o.state, o.reason))
            .collect();
        assert_eq!(
            brief,
            [
                "53/udp open udp-response",
                "123/udp open|filtered no-response",
                "161/udp closed port-unreach",
            ]
        );
        assert_eq!(run.folded.len(), 1);
        assert_eq!(
            (
                run.folded[0].proto,
                run.folded[0].state,
                run.folded[0].reason
            ),
            (Proto::Udp, PortState::Closed, Reason::PortUnreach)
        );
        let json = serde_json::to_string(&run.observations[1]).unwrap();
        assert!(
            json.contains(r#""proto":"udp","state":"open|filtered","reason":"no-response""#),
            "{json}"
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let run = parse(SAMPLE, "s.xml").unwrap();
        let t = Utc.timestamp_opt(1764000000, 0).unwrap();
        let xml = to_nmap_xml(&run.observations, "portwarden scan <x>", "connect", t, t);
        assert!(xml.contains("args=\"portwarden scan &lt;x&gt;\""), "{xml}");
        assert!(xml.contains("services=\"22-23\""), "{xml}");
        let back = parse(&xml, "out.xml").unwrap();
        assert_eq!(back.observations, run.observations);
    }

    #[test]
    fn port_lists() {
        assert_eq!(compress(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
    }
}
