//! Engine tests against in-process fake servers on 127.0.0.1 ephemeral
//! ports: each protocol's happy path, and the bounds (endless writer,
//! silent server, slow drip) that keep hostile services from stalling us.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;

use super::*;
use crate::model::Reason;

fn cfg() -> IdentifyConfig {
    IdentifyConfig {
        concurrency: 16,
        connect_timeout: Duration::from_secs(1),
        banner_timeout: Duration::from_millis(300),
        read_timeout: Duration::from_millis(700),
        max_bytes: 2048,
        port_deadline: Duration::from_secs(4),
    }
}

fn engine() -> Arc<Identifier> {
    Arc::new(Identifier::new(cfg(), ProbeSet::embedded().unwrap()).unwrap())
}

/// Serves every connection with `f` on a fresh loopback port.
async fn fake<F, Fut>(f: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(f(s));
        }
    });
    addr
}

/// Identification must finish; this guard turns a hang into a failure
/// instead of a stuck test run (it is not a timing assertion).
async fn ident(addr: SocketAddr, registered: Option<&str>) -> ServiceInfo {
    let e = engine();
    tokio::time::timeout(Duration::from_secs(60), e.identify(addr, None, registered))
        .await
        .expect("identification did not finish")
}

async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 8192 {
            break;
        }
    }
    buf
}

fn path_of(req: &[u8]) -> String {
    String::from_utf8_lossy(req)
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// An HTTP server answering `route(path)` = (status line, headers, body).
async fn http_fake(route: fn(&str) -> (&'static str, &'static str, &'static str)) -> SocketAddr {
    fake(move |mut s| async move {
        let req = read_request(&mut s).await;
        let (status, headers, body) = route(&path_of(&req));
        let resp = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
    })
    .await
}

#[test]
fn escape_is_printable_and_bounded() {
    assert_eq!(
        escape_bytes(b"SSH-2.0\r\n\x00\xff\\", 100),
        "SSH-2.0\\r\\n\\x00\\xff\\\\"
    );
    let e = escape_bytes(&[0u8; 1000], 256);
    assert!(e.len() <= 256 && e.len().is_multiple_of(4), "{}", e.len());
    assert!(
        escape_bytes(&(0..=255u8).collect::<Vec<_>>(), 2000)
            .bytes()
            .all(|c| (0x20..0x7f).contains(&c))
    );
}

#[test]
fn same_service_aliases() {
    assert!(same_service("https", "http"));
    assert!(same_service("http-alt", "http"));
    assert!(same_service("microsoft-ds", "smb"));
    assert!(same_service("imaps", "imap"));
    assert!(!same_service("http", "ssh"));
    assert!(!same_service("redis", "memcached"));
}

#[test]
fn config_is_validated() {
    let mut c = cfg();
    c.concurrency = 0;
    assert!(
        Identifier::new(c, ProbeSet::embedded().unwrap())
            .unwrap_err()
            .to_string()
            .contains("concurrency")
    );
    let mut c = cfg();
    c.max_bytes = 10;
    assert!(c.validate().is_err());
}

#[tokio::test]
async fn ssh_banner_and_unexpected_port() {
    let addr = fake(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let info = ident(addr, Some("ssh")).await;
    assert_eq!(info.name, "ssh");
    assert_eq!(info.product.as_deref(), Some("OpenSSH"));
    assert_eq!(info.version.as_deref(), Some("9.2p1"));
    assert_eq!(info.auth, AuthStatus::Required);
    assert_eq!(
        info.banner.as_deref(),
        Some("SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n")
    );
    assert!(!info.unexpected);
    let info = ident(addr, Some("http-alt")).await;
    assert_eq!(info.name, "ssh");
    assert!(info.unexpected);
}

#[tokio::test]
async fn endless_writer_is_cut_at_max_bytes() {
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let addr = fake(move |mut s| {
        let w = w.clone();
        async move {
            let chunk = [0u8, 0xff, b'A', b'\n'].repeat(4096);
            // Up to 1 GiB, as a hostile banner would.
            while w.load(Ordering::Relaxed) < 1 << 30 {
                match s.write(&chunk).await {
                    Ok(n) => {
                        w.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
        }
    })
    .await;
    let info = ident(addr, None).await;
    let banner = info.banner.unwrap();
    assert!(banner.len() <= BANNER_MAX);
    assert!(banner.starts_with("\\x00\\xffA\\n"));
    assert!(banner.bytes().all(|c| (0x20..0x7f).contains(&c)));
    // Once we hung up the writer stops; only socket buffers took more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(written.load(Ordering::Relaxed) < 64 << 20);
}

#[tokio::test]
async fn silent_server_falls_back_to_the_registered_name() {
    let addr = fake(|s| async move {
        // Holds the connection open and never says or reads anything.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let info = ident(addr, Some("redis")).await;
    assert_eq!(info.name, "redis");
    assert!(info.confidence < IDENTIFIED);
    assert_eq!(info.auth, AuthStatus::Unknown);
    assert!(!info.unexpected);
    let info = ident(addr, None).await;
    assert_eq!(info.name, "unknown");
    assert_eq!(info.confidence, 0.0);
}

#[tokio::test]
async fn slow_drip_is_bounded_by_the_deadline() {
    let addr = fake(|mut s| async move {
        for i in 0..100_000u32 {
            if s.write_all(&[b'a' + (i % 26) as u8]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let info = ident(addr, Some("ftp")).await;
    // It said something we do not know: keep the excerpt, do not guess.
    assert_eq!(info.name, "ftp");
    assert!(info.confidence < IDENTIFIED);
    assert!(info.banner.unwrap().starts_with("abc"));
}

#[tokio::test]
async fn immediate_close_is_not_an_error() {
    let addr = fake(|s| async move { drop(s) }).await;
    let info = ident(addr, Some("http")).await;
    assert_eq!(info.name, "http");
    assert!(info.confidence < IDENTIFIED);
}

#[tokio::test]
async fn redis_auth_none_and_required() {
    let open = fake(|mut s| async move {
        let mut b = [0u8; 256];
        let _ = s.read(&mut b).await;
        let _ = s
            .write_all(b"+PONG\r\n$40\r\n# Server\r\nredis_version:7.0.15\r\nmode:x\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let info = ident(open, None).await;
    assert_eq!(
        (info.name.as_str(), info.version.as_deref(), info.auth),
        ("redis", Some("7.0.15"), AuthStatus::None)
    );
    let locked = fake(|mut s| async move {
        let mut b = [0u8; 256];
        let _ = s.read(&mut b).await;
        let _ = s
            .write_all(b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let info = ident(locked, Some("redis")).await;
    assert_eq!(
        (info.name.as_str(), info.auth),
        ("redis", AuthStatus::Required)
    );
}

#[tokio::test]
async fn memcached_version() {
    let addr = fake(|mut s| async move {
        let mut b = [0u8; 64];
        let n = s.read(&mut b).await.unwrap_or(0);
        if &b[..n] == b"version\r\n" {
            let _ = s.write_all(b"VERSION 1.6.18\r\n").await;
        } else {
            let _ = s.write_all(b"ERROR\r\n").await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let info = ident(addr, Some("memcached")).await;
    assert_eq!(
        (info.name.as_str(), info.version.as_deref(), info.auth),
        ("memcached", Some("1.6.18"), AuthStatus::None)
    );
}

#[tokio::test]
async fn http_redirect_title_and_server() {
    let addr = http_fake(|_| {
        (
            "301 Moved Permanently",
            "Server: nginx/1.22.1\r\nLocation: https://example.org/\r\n",
            "<html><title>301 Moved</title></html>",
        )
    })
    .await;
    let info = ident(addr, Some("http")).await;
    assert_eq!(info.name, "http");
    assert_eq!(info.product.as_deref(), Some("nginx"));
    assert_eq!(
        info.extra.get("redirects_to_https").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        info.extra.get("title").map(String::as_str),
        Some("301 Moved")
    );
    assert!(!info.unexpected);
}

#[tokio::test]
async fn elasticsearch_open_and_locked() {
    let open = http_fake(|_| {
        (
            "200 OK",
            "Content-Type: application/json\r\n",
            r#"{"name":"n1","cluster_name":"prod-logs","version":{"number":"8.11.1"},"tagline":"You Know, for Search"}"#,
        )
    })
    .await;
    let info = ident(open, Some("elasticsearch")).await;
    assert_eq!(
        (info.name.as_str(), info.version.as_deref(), info.auth),
        ("elasticsearch", Some("8.11.1"), AuthStatus::None)
    );
    assert_eq!(
        info.extra.get("cluster_name").map(String::as_str),
        Some("prod-logs")
    );
    let locked = http_fake(|_| {
        (
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"security\" charset=\"UTF-8\"\r\n",
            r#"{"error":{"type":"security_exception"},"status":401}"#,
        )
    })
    .await;
    let info = ident(locked, Some("elasticsearch")).await;
    assert_eq!(
        (info.name.as_str(), info.auth),
        ("elasticsearch", AuthStatus::Required)
    );
}

#[tokio::test]
async fn docker_api_without_tls() {
    let addr = http_fake(|p| match p {
        "/version" => (
            "200 OK",
            "Api-Version: 1.43\r\nServer: Docker/24.0.7 (linux)\r\n",
            r#"{"Version":"24.0.7","ApiVersion":"1.43","Os":"linux"}"#,
        ),
        _ => (
            "404 Not Found",
            "Api-Version: 1.43\r\nServer: Docker/24.0.7 (linux)\r\n",
            r#"{"message":"page not found"}"#,
        ),
    })
    .await;
    let info = ident(addr, None).await;
    assert_eq!(
        (info.name.as_str(), info.version.as_deref(), info.auth),
        ("docker", Some("24.0.7"), AuthStatus::None)
    );
}

#[tokio::test]
async fn kubernetes_api_and_kubelet() {
    let api = http_fake(|p| match p {
        "/version" => ("200 OK", "", r#"{"major":"1","minor":"29","gitVersion":"v1.29.2"}"#),
        _ => (
            "403 Forbidden",
            "Content-Type: application/json\r\n",
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}"#,
        ),
    })
    .await;
    let info = ident(api, None).await;
    assert_eq!(
        (info.name.as_str(), info.version.as_deref(), info.auth),
        ("kubernetes", Some("v1.29.2"), AuthStatus::Required)
    );
    let kubelet = http_fake(|p| match p {
        "/pods" => (
            "200 OK",
            "",
            r#"{"kind":"PodList","apiVersion":"v1","items":[]}"#,
        ),
        _ => (
            "404 Not Found",
            "Content-Type: text/plain\r\n",
            "404 page not found\n",
        ),
    })
    .await;
    let info = ident(kubelet, None).await;
    assert_eq!(
        (info.name.as_str(), info.auth),
        ("kubelet", AuthStatus::None)
    );
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = CertificateDer::from(include_bytes!("testdata/cert.der").to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        include_bytes!("testdata/key.der").to_vec(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

#[tokio::test]
async fn https_with_self_signed_certificate() {
    let acceptor = tls_acceptor();
    let addr = fake(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut t) = acceptor.accept(s).await else {
                return;
            };
            let _ = read_request_tls(&mut t).await;
            let body = "<title>secure</title>";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nServer: test/1.0\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = t.write_all(resp.as_bytes()).await;
            let _ = t.shutdown().await;
        }
    })
    .await;
    let info = ident(addr, Some("https")).await;
    assert_eq!(info.name, "https");
    assert_eq!(info.extra.get("title").map(String::as_str), Some("secure"));
    let tls = info.tls.unwrap();
    assert_eq!(tls.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(
        tls.subject.as_deref(),
        Some("CN=portwarden.test, O=Portwarden Test")
    );
    assert!(tls.self_signed);
    assert!(!tls.expired);
    assert!(tls.sans.contains(&"DNS:portwarden.test".to_string()));
    // Plain HTTP was never tried first on an https port: no unexpected.
    assert!(!info.unexpected);
}

async fn read_request_tls<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

#[tokio::test]
async fn imaps_greeting_inside_tls() {
    let acceptor = tls_acceptor();
    let addr = fake(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut t) = acceptor.accept(s).await else {
                return;
            };
            let _ = t
                .write_all(b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n")
                .await;
            let mut b = [0u8; 256];
            if let Ok(n) = t.read(&mut b).await
                && b[..n].starts_with(b"pw1 CAPABILITY")
            {
                let _ = t
                    .write_all(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\npw1 OK done\r\n")
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let info = ident(addr, Some("imaps")).await;
    assert_eq!(
        (info.name.as_str(), info.auth),
        ("imaps", AuthStatus::Required)
    );
    assert_eq!(
        info.extra.get("starttls").map(String::as_str),
        Some("false")
    );
    assert!(info.tls.is_some());
}

#[tokio::test]
async fn smtp_ehlo_reports_starttls() {
    let addr = fake(|mut s| async move {
        let _ = s.write_all(b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n").await;
        let mut b = [0u8; 256];
        if let Ok(n) = s.read(&mut b).await
            && b[..n].starts_with(b"EHLO")
        {
            let _ = s
                .write_all(b"250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n")
                .await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let info = ident(addr, Some("smtp")).await;
    assert_eq!(
        (info.name.as_str(), info.product.as_deref()),
        ("smtp", Some("Postfix"))
    );
    assert_eq!(info.extra.get("starttls").map(String::as_str), Some("true"));
    assert_eq!(
        info.extra.get("auth_methods").map(String::as_str),
        Some("PLAIN LOGIN")
    );
}

#[tokio::test]
async fn ftp_anonymous_login_is_detected() {
    let addr = fake(|mut s| async move {
        let _ = s.write_all(b"220 (vsFTPd 3.0.3)\r\n").await;
        let mut b = [0u8; 256];
        loop {
            let n = match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let reply: &[u8] = match &b[..4.min(n)] {
                b"FEAT" => b"211-Features:\r\n AUTH TLS\r\n PASV\r\n211 End\r\n",
                b"USER" => b"331 Please specify the password.\r\n",
                b"PASS" => b"230 Login successful.\r\n",
                _ => b"221 Goodbye.\r\n",
            };
            if s.write_all(reply).await.is_err() {
                break;
            }
        }
    })
    .await;
    let info = ident(addr, Some("ftp")).await;
    assert_eq!(
        (info.name.as_str(), info.product.as_deref(), info.auth),
        ("ftp", Some("vsFTPd"), AuthStatus::None)
    );
    assert_eq!(
        info.extra.get("anonymous_login").map(String::as_str),
        Some("true")
    );
    assert_eq!(info.extra.get("starttls").map(String::as_str), Some("true"));
}

#[tokio::test]
async fn vnc_security_type_none() {
    let addr = fake(|mut s| async move {
        let _ = s.write_all(b"RFB 003.008\n").await;
        let mut b = [0u8; 12];
        if s.read_exact(&mut b).await.is_ok() {
            let _ = s.write_all(&[2, 1, 2]).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let info = ident(addr, Some("vnc")).await;
    assert_eq!((info.name.as_str(), info.auth), ("vnc", AuthStatus::None));
    assert_eq!(
        info.extra.get("security_types").map(String::as_str),
        Some("1,2")
    );
}

#[tokio::test]
async fn telnet_negotiation() {
    let addr = fake(|mut s| async move {
        let _ = s.write_all(b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let info = ident(addr, Some("telnet")).await;
    assert_eq!(info.name, "telnet");
    assert_eq!(
        info.banner.as_deref(),
        Some("\\xff\\xfd\\x18\\xff\\xfd \\xff\\xfd#")
    );
}

#[tokio::test]
async fn mongodb_hello_then_listdatabases_refused() {
    use super::wire::tests_support::mongo_reply_doc;
    let addr = fake(|mut s| async move {
        let mut b = vec![0u8; 1024];
        for _ in 0..3 {
            let Ok(n) = s.read(&mut b).await else { return };
            if n < 21 {
                return;
            }
            let req = String::from_utf8_lossy(&b[21..n]).to_string();
            let reply = if req.contains("hello") {
                mongo_reply_doc(&[("maxWireVersion", 21, ""), ("ok", 1, "")])
            } else if req.contains("buildInfo") {
                mongo_reply_doc(&[("version", 0, "7.0.5"), ("ok", 1, "")])
            } else {
                mongo_reply_doc(&[("ok", 0, ""), ("codeName", 0, "Unauthorized")])
            };
            if s.write_all(&reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let info = ident(addr, Some("mongodb")).await;
    assert_eq!(
        (info.name.as_str(), info.version.as_deref(), info.auth),
        ("mongodb", Some("7.0.5"), AuthStatus::Required)
    );
}

#[tokio::test]
async fn postgresql_ssl_refused_and_password_required() {
    let addr = fake(|mut s| async move {
        let mut b = [0u8; 256];
        let Ok(n) = s.read(&mut b).await else { return };
        if b[..n] == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
            let _ = s.write_all(b"N").await;
        } else if n > 8 {
            // MD5 password request.
            let _ = s.write_all(b"R\0\0\0\x0c\0\0\0\x05abcd").await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let info = ident(addr, Some("postgresql")).await;
    assert_eq!(
        (info.name.as_str(), info.auth),
        ("postgresql", AuthStatus::Required)
    );
    assert_eq!(info.extra.get("ssl").map(String::as_str), Some("false"));
}

#[tokio::test]
async fn run_fills_open_tcp_observations_only() {
    let ssh = fake(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-dropbear_2022.83\r\n").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let ip = ssh.ip();
    let mut obs = vec![
        Observation::new(ip, ssh.port(), Proto::Tcp, Reason::Connected, Some(0.1)),
        Observation::new(ip, 1, Proto::Tcp, Reason::ConnRefused, None),
        Observation::new(ip, 53, Proto::Udp, Reason::NoResponse, None),
    ];
    let port = ssh.port();
    let stats = run(&mut obs, cfg(), ProbeSet::embedded().unwrap(), move |p| {
        (p == port).then(|| "http-alt".to_string())
    })
    .await
    .unwrap();
    assert_eq!(
        stats,
        IdentifyStats {
            attempted: 1,
            identified: 1,
            unexpected: 1
        }
    );
    let s = obs[0].service.as_ref().unwrap();
    assert_eq!(
        (s.name.as_str(), s.product.as_deref()),
        ("ssh", Some("dropbear"))
    );
    assert!(obs[1].service.is_none() && obs[2].service.is_none());
}

#[tokio::test]
async fn run_stream_passes_everything_on() {
    let ssh = fake(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let (in_tx, in_rx) = mpsc::channel(4);
    let (out_tx, mut out_rx) = mpsc::channel(4);
    let e = engine();
    let worker = tokio::spawn(async move { e.run_stream(in_rx, out_tx, |_| None).await });
    in_tx
        .send(Observation::new(
            ssh.ip(),
            ssh.port(),
            Proto::Tcp,
            Reason::SynAck,
            None,
        ))
        .await
        .unwrap();
    in_tx
        .send(Observation::new(
            ssh.ip(),
            1,
            Proto::Tcp,
            Reason::Reset,
            None,
        ))
        .await
        .unwrap();
    drop(in_tx);
    let mut got = Vec::new();
    while let Some(o) = out_rx.recv().await {
        got.push(o);
    }
    let stats = worker.await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((stats.attempted, stats.identified), (1, 1));
    let open = got.iter().find(|o| o.port == ssh.port()).unwrap();
    assert_eq!(open.service.as_ref().unwrap().name, "ssh");
}

/// The performance experiment of the brief, run by hand:
/// `cargo test --release --lib perf_500 -- --ignored --nocapture`.
/// It only reports (wall time, peak RSS of the whole process, servers
/// included); nothing here passes or fails on timing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, run by hand"]
async fn perf_500_ports() {
    for kind in ["ssh-banner", "http-silent"] {
        let mut obs = Vec::new();
        for _ in 0..500 {
            let addr = if kind == "ssh-banner" {
                fake(|mut s| async move {
                    let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                })
                .await
            } else {
                http_fake(|_| ("200 OK", "Server: fake/1.0\r\n", "<title>x</title>")).await
            };
            obs.push(Observation::new(
                addr.ip(),
                addr.port(),
                Proto::Tcp,
                Reason::Connected,
                None,
            ));
        }
        let t = std::time::Instant::now();
        let stats = run(
            &mut obs,
            IdentifyConfig::default(),
            ProbeSet::embedded().unwrap(),
            |_| None,
        )
        .await
        .unwrap();
        let took = t.elapsed();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("VmHWM: ?");
        println!(
            "{kind}: {} ports in {took:?}, identified {}, {hwm}",
            stats.attempted, stats.identified
        );
    }
}

/// A server that reads one request and answers `reply` whatever it was.
async fn reply_fake(reply: Vec<u8>) -> SocketAddr {
    let reply = Arc::new(reply);
    fake(move |mut s| {
        let reply = reply.clone();
        async move {
            let mut b = [0u8; 1024];
            if matches!(s.read(&mut b).await, Ok(n) if n > 0) {
                let _ = s.write_all(&reply).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
}

#[tokio::test]
async fn binary_protocols_through_the_engine() {
    use super::wire::tests::{amqp_start, smb2_negotiate_response};
    let rdp =
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x1f\x08\x00\x02\x00\x00\x00".to_vec();
    let mut kafka = vec![
        0, 0, 0, 12, 0x70, 0x77, 0, 1, 0, 0, 0, 0, 0, 1, 0, 18, 0, 0, 0, 3,
    ];
    kafka[3] = (kafka.len() - 4) as u8;
    let mut ldap_done = b"\x30\x0c\x02\x01\x01\x65\x07\x0a\x01\x32\x04\x00\x04\x00".to_vec();
    ldap_done[1] = (ldap_done.len() - 2) as u8;
    let cases: Vec<(&str, Vec<u8>, &str, AuthStatus)> = vec![
        ("ms-wbt-server", rdp, "rdp", AuthStatus::Required),
        (
            "microsoft-ds",
            smb2_negotiate_response(0x0302, 1),
            "smb",
            AuthStatus::Unknown,
        ),
        (
            "amqp",
            amqp_start("PLAIN AMQPLAIN"),
            "amqp",
            AuthStatus::Required,
        ),
        ("kafka", kafka, "kafka", AuthStatus::Unknown),
        ("ldap", ldap_done, "ldap", AuthStatus::Required),
    ];
    for (registered, reply, name, auth) in cases {
        let addr = reply_fake(reply).await;
        let info = ident(addr, Some(registered)).await;
        assert_eq!(
            (info.name.as_str(), info.auth),
            (name, auth),
            "{registered}: {info:?}"
        );
        assert!(!info.unexpected, "{registered}");
        assert!(info.confidence >= IDENTIFIED);
    }
}

#[tokio::test]
async fn mysql_greeting_and_pop3_capabilities() {
    let mut greeting = vec![0, 0, 0, 0, 0x0a];
    greeting.extend_from_slice(b"8.0.36\0\x08\0\0\0abcdefgh\0");
    greeting[0] = (greeting.len() - 4) as u8;
    let addr = fake(move |mut s| {
        let g = greeting.clone();
        async move {
            let _ = s.write_all(&g).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    // MySQL on the PostgreSQL port is worth a flag.
    let info = ident(addr, Some("postgresql")).await;
    assert_eq!(
        (
            info.name.as_str(),
            info.product.as_deref(),
            info.version.as_deref()
        ),
        ("mysql", Some("MySQL"), Some("8.0.36"))
    );
    assert!(info.unexpected);
    assert!(info.banner.unwrap().contains("8.0.36\\x00"));

    let pop = fake(|mut s| async move {
        let _ = s.write_all(b"+OK Dovecot ready.\r\n").await;
        let mut b = [0u8; 64];
        if matches!(s.read(&mut b).await, Ok(n) if b[..n].starts_with(b"CAPA")) {
            let _ = s.write_all(b"+OK\r\nCAPA\r\nSTLS\r\nUSER\r\n.\r\n").await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let info = ident(pop, Some("pop3")).await;
    assert_eq!(
        (info.name.as_str(), info.auth),
        ("pop3", AuthStatus::Required)
    );
    assert_eq!(info.product.as_deref(), Some("Dovecot"));
    assert_eq!(info.extra.get("starttls").map(String::as_str), Some("true"));
}

/// Issue 27 item 10: a certificate larger than rustls reads (10,000 SANs,
/// made by the real openssl) still names the service from the handshake,
/// and says its certificate was too large to parse.
#[tokio::test]
async fn an_oversized_certificate_still_names_tls_and_says_why() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let dir = std::env::temp_dir().join(format!("pw-bigcert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 10,000 SANs do not fit one argument: an openssl config file.
    let mut conf = String::from(
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = big.test\n[ext]\nsubjectAltName = @alt\n[alt]\n",
    );
    for i in 0..10_000 {
        conf.push_str(&format!("DNS.{} = h{i}.example\n", i + 1));
    }
    std::fs::write(dir.join("req.cnf"), conf).unwrap();
    let (key, cert) = (dir.join("key.der"), dir.join("cert.der"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .args(["-outform", "DER", "-config"])
        .arg(dir.join("req.cnf"))
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(&cert)
        .status()
        .expect("openssl (tests/setup.sh installs it)");
    assert!(ok.success());
    let ok = std::process::Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let der = std::fs::read(&cert).unwrap();
    assert!(der.len() > 64 << 10, "{} bytes", der.len());
    // rustls (webpki) will not load a certificate this large the usual
    // way: hand it over as is.
    #[derive(Debug)]
    struct Always(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Always {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signer = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            std::fs::read(&key).unwrap(),
        )))
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![CertificateDer::from(der)], signer);
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Always(Arc::new(certified))));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let addr = fake(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let _ = acceptor.accept(s).await;
        }
    })
    .await;
    let info = ident(addr, Some("https")).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(info.name, "tls");
    assert_eq!(
        info.extra.get("tls_certificate").map(String::as_str),
        Some("too large to parse (over 64 KiB): not checked")
    );
}
