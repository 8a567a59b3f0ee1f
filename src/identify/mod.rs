//! Identify layer: learns what really answers on each open TCP port.
//!
//! A port number only says what *should* listen there; auditors need what
//! does (SSH on 8022, an unauthenticated Redis on 16379). For every open TCP
//! observation we first listen for what the service says on its own, match
//! that against the banner rules of `rules/probes.toml`, then, if it stays
//! silent, send small probes ordered by likelihood (the port's registered
//! service first). Payloads and text patterns are data; TLS, binary protocols
//! and multi-step exchanges (EHLO, listDatabases, security types) are code.
//!
//! Everything read is untrusted and bounded: a global concurrency cap, a
//! connect and a read time-out per exchange, at most `max_bytes` kept per
//! read, and a deadline per port, so tarpits, endless banners and servers
//! that never close cannot stall or bloat a scan.

pub(crate) mod udp;

mod http;
mod text;
mod tls;
mod wire;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::model::{AuthStatus, Observation, PortState, Proto, ServiceInfo};

use crate::rules::probes;
use crate::rules::{ProbeError, ProbeSet};

/// Longest banner excerpt kept in [`ServiceInfo::banner`], in output chars.
pub const BANNER_MAX: usize = 256;

/// How long a service that has started talking may pause before we take
/// its answer as complete.
const SETTLE: Duration = Duration::from_millis(150);

/// Limits for identification. All of them bound work per port, so a
/// hostile service can cost at most `port_deadline` and `max_bytes`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyConfig {
    /// Ports identified at the same time.
    pub concurrency: usize,
    /// Time-out of one TCP connect.
    pub connect_timeout: Duration,
    /// How long to wait for a service to speak first.
    pub banner_timeout: Duration,
    /// How long to wait for the answer to one probe (and for a TLS
    /// handshake).
    pub read_timeout: Duration,
    /// Bytes kept from one answer; the rest is never read.
    pub max_bytes: usize,
    /// Overall time for one port, all probes included.
    pub port_deadline: Duration,
}

impl Default for IdentifyConfig {
    fn default() -> Self {
        IdentifyConfig {
            concurrency: 256,
            connect_timeout: Duration::from_secs(3),
            banner_timeout: Duration::from_millis(1000),
            read_timeout: Duration::from_secs(2),
            max_bytes: 4096,
            port_deadline: Duration::from_secs(10),
        }
    }
}

impl IdentifyConfig {
    pub fn validate(&self) -> Result<(), IdentifyError> {
        let bad = |m: &str| Err(IdentifyError::Config(m.to_string()));
        if self.concurrency == 0 {
            return bad("identify concurrency must be at least 1");
        }
        if self.max_bytes < 64 {
            return bad("identify max_bytes must be at least 64 (a greeting must fit)");
        }
        if self.connect_timeout.is_zero()
            || self.read_timeout.is_zero()
            || self.banner_timeout.is_zero()
            || self.port_deadline.is_zero()
        {
            return bad("identify time-outs and the port deadline must be longer than zero");
        }
        Ok(())
    }
}

/// Errors of the identify layer. Per-port failures are not errors: a port
/// that cannot be identified gets a low-confidence [`ServiceInfo`].
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    #[error("invalid identify configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Probes(#[from] ProbeError),
    #[error("cannot set up TLS for identification: {0}")]
    Tls(String),
}

/// Counts of one identification run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentifyStats {
    /// Open TCP observations looked at.
    pub attempted: usize,
    /// Those whose service was recognised by a banner or a probe.
    pub identified: usize,
    /// Those identified as something other than the registered service.
    pub unexpected: usize,
}

/// The identification engine: configuration, compiled probes and the TLS
/// client configuration, shared by every port.
#[derive(Debug)]
pub struct Identifier {
    cfg: IdentifyConfig,
    probes: ProbeSet,
    tls: Arc<rustls::ClientConfig>,
}

/// Identifies every open TCP observation in place (`service` is filled).
/// `registered` gives the catalogue's service name for a port.
pub async fn run<F>(
    observations: &mut [Observation],
    cfg: IdentifyConfig,
    probes: ProbeSet,
    registered: F,
) -> Result<IdentifyStats, IdentifyError>
where
    F: Fn(u16) -> Option<String>,
{
    let id = Arc::new(Identifier::new(cfg, probes)?);
    Ok(id.run(observations, registered).await)
}

fn wants_identification(o: &Observation) -> bool {
    o.proto == Proto::Tcp && o.state == PortState::Open
}

impl Identifier {
    pub fn new(cfg: IdentifyConfig, probes: ProbeSet) -> Result<Identifier, IdentifyError> {
        cfg.validate()?;
        let tls = tls::client_config().map_err(IdentifyError::Tls)?;
        Ok(Identifier { cfg, probes, tls })
    }

    pub fn config(&self) -> &IdentifyConfig {
        &self.cfg
    }

    /// Identifies the open TCP observations of a slice, at most
    /// `concurrency` at a time.
    pub async fn run<F>(
        self: &Arc<Self>,
        observations: &mut [Observation],
        registered: F,
    ) -> IdentifyStats
    where
        F: Fn(u16) -> Option<String>,
    {
        let sem = Arc::new(Semaphore::new(self.cfg.concurrency));
        let mut set: JoinSet<(usize, ServiceInfo)> = JoinSet::new();
        let mut stats = IdentifyStats::default();
        let mut results = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            if !wants_identification(o) {
                continue;
            }
            stats.attempted += 1;
            // Taking the permit before spawning keeps at most `concurrency`
            // tasks alive, however many observations there are.
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            while let Some(done) = set.try_join_next() {
                if let Ok(r) = done {
                    results.push(r);
                }
            }
            let me = Arc::clone(self);
            let addr = SocketAddr::new(o.ip, o.port);
            let host = o.hostnames.first().cloned();
            let reg = registered(o.port);
            set.spawn(async move {
                let info = me.identify(addr, host.as_deref(), reg.as_deref()).await;
                drop(permit);
                (i, info)
            });
        }
        while let Some(done) = set.join_next().await {
            if let Ok(r) = done {
                results.push(r);
            }
        }
        for (i, info) in results {
            if info.confidence >= IDENTIFIED {
                stats.identified += 1;
            }
            if info.unexpected {
                stats.unexpected += 1;
            }
            if let Some(o) = observations.get_mut(i) {
                o.service = Some(info);
            }
        }
        stats
    }

    /// Streaming form for pipelines: every observation read from `rx` is
    /// passed on to `tx`, open TCP ones with `service` filled in. Order is
    /// not kept. Returns when `rx` is closed and all work is done.
    pub async fn run_stream<F>(
        self: &Arc<Self>,
        mut rx: mpsc::Receiver<Observation>,
        tx: mpsc::Sender<Observation>,
        registered: F,
    ) -> IdentifyStats
    where
        F: Fn(u16) -> Option<String>,
    {
        let sem = Arc::new(Semaphore::new(self.cfg.concurrency));
        let mut set: JoinSet<Option<(bool, bool)>> = JoinSet::new();
        let mut stats = IdentifyStats::default();
        let tally = |stats: &mut IdentifyStats, r: Option<(bool, bool)>| {
            if let Some((identified, unexpected)) = r {
                stats.identified += usize::from(identified);
                stats.unexpected += usize::from(unexpected);
            }
        };
        while let Some(mut o) = rx.recv().await {
            if !wants_identification(&o) {
                if tx.send(o).await.is_err() {
                    break;
                }
                continue;
            }
            stats.attempted += 1;
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            while let Some(done) = set.try_join_next() {
                tally(&mut stats, done.ok().flatten());
            }
            let me = Arc::clone(self);
            let reg = registered(o.port);
            let tx = tx.clone();
            set.spawn(async move {
                let addr = SocketAddr::new(o.ip, o.port);
                let host = o.hostnames.first().cloned();
                let info = me.identify(addr, host.as_deref(), reg.as_deref()).await;
                drop(permit);
                let r = (info.confidence >= IDENTIFIED, info.unexpected);
                o.service = Some(info);
                tx.send(o).await.ok().map(|_| r)
            });
        }
        while let Some(done) = set.join_next().await {
            tally(&mut stats, done.ok().flatten());
        }
        stats
    }

    /// Identifies one TCP service. `host` is the name used for SNI and the
    /// HTTP Host header (the address when `None`); `registered` is the
    /// catalogue's service for the port. Never takes longer than about
    /// `port_deadline`.
    pub async fn identify(
        &self,
        addr: SocketAddr,
        host: Option<&str>,
        registered: Option<&str>,
    ) -> ServiceInfo {
        let host = host
            .map(str::to_string)
            .unwrap_or_else(|| addr.ip().to_string());
        let ctx = Ctx {
            id: self,
            addr,
            host,
            registered,
            deadline: Instant::now() + self.cfg.port_deadline,
        };
        // The inner steps honour the deadline themselves; this outer cap is
        // the guarantee if one of them forgets.
        let grace = self.cfg.port_deadline + Duration::from_millis(500);
        let (found, note) = match tokio::time::timeout(grace, ctx.identify()).await {
            Ok(Some(f)) => (Some(f), None),
            Ok(None) => (None, Some("could not connect to identify")),
            Err(_) => (None, Some("identification ran out of time")),
        };
        let mut info = finish(found, registered);
        if let Some(n) = note {
            info.extra.insert("note".into(), n.into());
        }
        info
    }
}

/// Confidence at or above which a service counts as identified rather than
/// guessed from the port number.
const IDENTIFIED: f32 = 0.5;

/// What one port's steps found, before the final touches.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub info: ServiceInfo,
    /// First bytes the service sent (for the banner excerpt).
    pub first_bytes: Vec<u8>,
}

fn finish(found: Option<Found>, registered: Option<&str>) -> ServiceInfo {
    match found {
        Some(f) => {
            let mut info = f.info;
            if info.banner.is_none() && !f.first_bytes.is_empty() {
                info.banner = Some(escape_bytes(&f.first_bytes, BANNER_MAX));
            }
            if info.name.is_empty() {
                info.name = registered.unwrap_or("unknown").to_string();
                info.confidence = info.confidence.min(0.2);
            }
            info.unexpected = info.confidence >= IDENTIFIED
                && registered.is_some_and(|r| !same_service(r, &info.name));
            info
        }
        None => ServiceInfo {
            name: registered.unwrap_or("unknown").to_string(),
            confidence: if registered.is_some() { 0.1 } else { 0.0 },
            ..ServiceInfo::default()
        },
    }
}

/// Whether an identified name agrees with the registered one. TLS variants
/// (`https`/`http`, `imaps`/`imap`) and `-alt` names count as the same, and
/// so do a few common aliases, so only real surprises are flagged.
pub fn same_service(registered: &str, identified: &str) -> bool {
    // TLS that would not let us see inside cannot contradict anything.
    if identified == "tls" {
        return true;
    }
    fn norm(s: &str) -> String {
        let s = s.to_ascii_lowercase();
        let s = s
            .trim_end_matches("-alt")
            .trim_end_matches("-proxy")
            .trim_end_matches("-ssl")
            .trim_end_matches("-tls")
            .to_string();
        let s = match s.as_str() {
            "https" | "www" | "www-http" => "http",
            "imaps" => "imap",
            "pop3s" => "pop3",
            "smtps" | "submission" | "submissions" => "smtp",
            "ftps" | "ftp-data" => "ftp",
            "ldaps" => "ldap",
            "ms-sql-s" | "ms-sql" => "mssql",
            "postgres" => "postgresql",
            "ms-wbt-server" => "rdp",
            "microsoft-ds" | "netbios-ssn" | "cifs" => "smb",
            "memcache" => "memcached",
            "mongod" => "mongodb",
            "mariadb" => "mysql",
            "rabbitmq" => "amqp",
            "docker-tls" | "docker-api" => "docker",
            "kube-apiserver" | "k8s" => "kubernetes",
            o => o,
        };
        s.to_string()
    }
    norm(registered) == norm(identified)
}

pub use crate::lines::escape_bytes;

/// A byte stream we can identify over: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a read ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The completion test said the answer is whole.
    Complete,
    /// The peer closed (or reset) the connection.
    Closed,
    /// The wait ran out.
    TimedOut,
    /// `max_bytes` were read; the rest is left unread.
    Full,
}

/// When to stop reading an answer.
pub(crate) enum Until<'f> {
    /// Once data has come and then paused for [`SETTLE`].
    Settle,
    /// Once the test returns true for what was read so far.
    Done(&'f (dyn Fn(&[u8]) -> bool + Sync)),
}

/// Per-port state shared by the steps of one identification.
pub(crate) struct Ctx<'a> {
    pub id: &'a Identifier,
    pub addr: SocketAddr,
    pub host: String,
    pub registered: Option<&'a str>,
    pub deadline: Instant,
}

impl Ctx<'_> {
    pub fn cfg(&self) -> &IdentifyConfig {
        &self.id.cfg
    }

    /// The host as it goes into `{host}` and HTTP `Host:` (IPv6
    /// literals in brackets).
    pub fn host_header(&self) -> String {
        if self.host.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// Time left before the port's deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub async fn connect(&self) -> io::Result<TcpStream> {
        let wait = self.cfg().connect_timeout.min(self.left());
        match tokio::time::timeout(wait, TcpStream::connect(self.addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(s)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }

    /// A new connection, TLS-wrapped when `tls`.
    pub async fn open(&self, tls: bool) -> Option<Box<dyn Io>> {
        let tcp = self.connect().await.ok()?;
        if tls {
            let (s, _) = tls::handshake(self, tcp).await.ok()?;
            Some(Box::new(s))
        } else {
            Some(Box::new(tcp))
        }
    }

    pub async fn send<S: Io + ?Sized>(&self, s: &mut S, data: &[u8]) -> io::Result<()> {
        let wait = self.cfg().read_timeout.min(self.left());
        match tokio::time::timeout(wait, async {
            s.write_all(data).await?;
            s.flush().await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    /// Reads into `buf` (which keeps at most `max_bytes`) for at most
    /// `wait` (and never past the port deadline).
    pub async fn read<S: Io + ?Sized>(
        &self,
        s: &mut S,
        buf: &mut Vec<u8>,
        wait: Duration,
        until: Until<'_>,
    ) -> ReadEnd {
        let max = self.cfg().max_bytes;
        let hard = Instant::now() + wait.min(self.left());
        let mut chunk = [0u8; 2048];
        loop {
            if buf.len() >= max {
                return ReadEnd::Full;
            }
            let limit = match until {
                Until::Settle if !buf.is_empty() => hard.min(Instant::now() + SETTLE),
                _ => hard,
            };
            let room = (max - buf.len()).min(chunk.len());
            match tokio::time::timeout_at(limit, s.read(&mut chunk[..room])).await {
                Ok(Ok(0)) | Ok(Err(_)) => return ReadEnd::Closed,
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Until::Done(f) = until
                        && f(buf)
                    {
                        return ReadEnd::Complete;
                    }
                }
                Err(_) => {
                    return if matches!(until, Until::Settle) && !buf.is_empty() {
                        ReadEnd::Complete
                    } else {
                        ReadEnd::TimedOut
                    };
                }
            }
        }
    }

    /// Sends `data` and reads the answer with `read_timeout`.
    pub async fn exchange<S: Io + ?Sized>(
        &self,
        s: &mut S,
        data: &[u8],
        until: Until<'_>,
    ) -> Option<Vec<u8>> {
        self.exchange_wait(s, data, self.cfg().read_timeout, until)
            .await
    }

    /// [`Ctx::exchange`] with its own wait.
    pub async fn exchange_wait<S: Io + ?Sized>(
        &self,
        s: &mut S,
        data: &[u8],
        wait: Duration,
        until: Until<'_>,
    ) -> Option<Vec<u8>> {
        self.send(s, data).await.ok()?;
        let mut buf = Vec::new();
        self.read(s, &mut buf, wait, until).await;
        (!buf.is_empty()).then_some(buf)
    }

    async fn identify(&self) -> Option<Found> {
        let mut first = self.connect().await.ok()?;
        let mut banner = Vec::new();
        let end = self
            .read(
                &mut first,
                &mut banner,
                self.cfg().banner_timeout,
                Until::Settle,
            )
            .await;
        if !banner.is_empty() {
            return Some(self.banner_service(&mut first, banner, None).await);
        }
        // A service that closed on us without a word cannot take a probe on
        // this connection; every probe then gets a fresh one.
        let mut reuse = (end == ReadEnd::TimedOut).then_some(first);
        let mut first_reply: Vec<u8> = Vec::new();
        for probe in self.id.probes.ordered(self.addr.port(), self.registered) {
            if self.left() < Duration::from_millis(50) {
                break;
            }
            let stream = match reuse.take() {
                Some(s) => s,
                None => match self.connect().await {
                    Ok(s) => s,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(_) => continue,
                },
            };
            let out = self.run_probe(probe, stream).await;
            if let Some(found) = out.found {
                return Some(found);
            }
            if first_reply.is_empty() {
                first_reply = out.reply;
            }
        }
        Some(Found {
            first_bytes: first_reply,
            ..Found::default()
        })
    }

    async fn run_probe(&self, probe: &probes::Probe, mut stream: TcpStream) -> ProbeOutcome {
        use probes::Parser;
        match probe.parser {
            Some(Parser::Tls) => tls::probe(self, stream).await,
            Some(Parser::Http) => {
                let payload = probe.payload_for(&self.host_header());
                http::probe(self, &mut stream, &payload, false).await
            }
            Some(p) => wire::probe(self, p, probe, stream).await,
            None => {
                let payload = probe.payload_for(&self.host_header());
                let Some(reply) = self.exchange(&mut stream, &payload, Until::Settle).await else {
                    return ProbeOutcome::default();
                };
                let hit = probe
                    .match_response(&reply)
                    .or_else(|| self.id.probes.match_banner(&reply));
                match hit {
                    Some(hit) => ProbeOutcome::found(Found {
                        info: info_from_hit(hit),
                        first_bytes: reply,
                    }),
                    None => ProbeOutcome::nothing(reply),
                }
            }
        }
    }

    /// Identifies a service that spoke first; `tls` holds the handshake facts
    /// when the banner came through TLS.
    pub async fn banner_service<S: Io + ?Sized>(
        &self,
        s: &mut S,
        banner: Vec<u8>,
        tls: Option<crate::model::TlsInfo>,
    ) -> Found {
        let Some(hit) = self.id.probes.match_banner(&banner) else {
            return Found {
                info: ServiceInfo {
                    tls,
                    confidence: 0.2,
                    ..ServiceInfo::default()
                },
                first_bytes: banner,
            };
        };
        let mut info = info_from_hit(hit);
        text::follow_up(self, s, &banner, &mut info).await;
        if let Some(t) = tls {
            info.name = tls_name(&info.name);
            info.tls = Some(t);
        }
        Found {
            info,
            first_bytes: banner,
        }
    }
}

/// Name of a service when it runs inside TLS.
pub(crate) fn tls_name(plain: &str) -> String {
    match plain {
        "http" => "https",
        "imap" => "imaps",
        "pop3" => "pop3s",
        "smtp" => "smtps",
        "ftp" => "ftps",
        "ldap" => "ldaps",
        o => o,
    }
    .to_string()
}

/// The status code of a raw HTTP response (for tests and callers that
/// keep raw answers).
#[cfg(test)]
pub(crate) fn http_status(raw: &[u8]) -> Option<u16> {
    http::parse(raw).map(|r| r.status)
}

pub(crate) fn info_from_hit(hit: probes::RuleHit) -> ServiceInfo {
    ServiceInfo {
        name: hit.service,
        product: hit.product,
        version: hit.version,
        auth: hit.auth,
        confidence: hit.confidence,
        ..ServiceInfo::default()
    }
}

/// What one probe produced.
#[derive(Debug, Default)]
pub(crate) struct ProbeOutcome {
    pub found: Option<Found>,
    /// The raw answer when nothing matched (kept as a banner excerpt).
    pub reply: Vec<u8>,
}

impl ProbeOutcome {
    pub fn found(f: Found) -> Self {
        ProbeOutcome {
            found: Some(f),
            reply: Vec::new(),
        }
    }
    pub fn nothing(reply: Vec<u8>) -> Self {
        ProbeOutcome { found: None, reply }
    }
}

/// Sets `auth` unless something surer already did.
pub(crate) fn set_auth(info: &mut ServiceInfo, auth: AuthStatus) {
    if info.auth == AuthStatus::Unknown {
        info.auth = auth;
    }
}

#[cfg(test)]
mod tests;
