//! Service identification against REAL servers from Debian packages,
//! started by the tests on 127.0.0.1 only, on standard ports when free and
//! on non-standard ones (SSH on 8022, Redis on 16379), and killed on drop.
//!
//! A test whose server binary is missing is skipped with a message naming
//! the package, or fails under `CI=true` (`crate::prereq`); the packages are: openssh-server, nginx-light (or nginx),
//! redis-server, memcached, busybox-static (for `busybox telnetd`), vsftpd,
//! openssl, etcd-server, influxdb, prometheus. HTTP-speaking infrastructure Debian does not ship
//! (Elasticsearch, CouchDB) is replayed from recorded responses.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portwarden::identify::{Identifier, IdentifyConfig};
use portwarden::model::{AuthStatus, ServiceInfo};
use portwarden::rules::ProbeSet;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pw-identify-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, killed (and reaped) on drop.
struct Server {
    child: Child,
    _dir: Scratch,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first existing path among `candidates`, or a skip message (a
/// failure under `CI=true`).
fn binary(candidates: &[&str], package: &str) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        crate::prereq::missing(&format!(
            "none of {candidates:?} found; install the Debian package '{package}' to run this test"
        ));
    }
    found
}

/// `preferred` when it is free on 127.0.0.1, else an ephemeral port (other
/// tests on this machine may hold the standard one).
fn port(preferred: u16) -> u16 {
    if TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return preferred;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    eprintln!("note: 127.0.0.1:{preferred} is busy; using {p}");
    p
}

/// Starts `cmd` and waits until it accepts on `port`.
fn start(mut cmd: Command, port: u16, dir: Scratch) -> Server {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .expect("server binary exists but does not start");
    let mut server = Server { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("server exited early with {status}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.child.kill();
    panic!("server did not listen on 127.0.0.1:{port} within 15 s: {cmd:?}");
}

fn engine() -> Arc<Identifier> {
    let cfg = IdentifyConfig {
        concurrency: 8,
        connect_timeout: Duration::from_secs(2),
        banner_timeout: Duration::from_millis(800),
        read_timeout: Duration::from_secs(2),
        max_bytes: 4096,
        port_deadline: Duration::from_secs(15),
    };
    Arc::new(Identifier::new(cfg, ProbeSet::embedded().unwrap()).unwrap())
}

/// Registered services as a catalogue would give them (IANA names).
fn registered(port: u16) -> Option<&'static str> {
    Some(match port {
        21 => "ftp",
        22 => "ssh",
        23 => "telnet",
        80 => "http",
        443 => "https",
        6379 => "redis",
        8022 => "oa-system",
        8080 => "http-alt",
        8443 => "https-alt",
        11211 => "memcached",
        _ => return None,
    })
}

async fn identify(port: u16) -> ServiceInfo {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    engine().identify(addr, None, registered(port)).await
}

fn openssl_cert(dir: &Scratch) -> Option<(PathBuf, PathBuf)> {
    let openssl = binary(&["/usr/bin/openssl"], "openssl")?;
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let ok = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=localhost/O=portwarden-test"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl could not make a test certificate");
    Some((cert, key))
}

fn sshd(port: u16) -> Option<Server> {
    let sshd = binary(&["/usr/sbin/sshd"], "openssh-server")?;
    let keygen = binary(&["/usr/bin/ssh-keygen"], "openssh-client")?;
    let dir = Scratch::new("sshd");
    let key = dir.path("host_ed25519");
    let ok = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ssh-keygen failed");
    // sshd refuses to start without its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut cmd = Command::new(sshd);
    cmd.args(["-D", "-e", "-f", "/dev/null", "-h"])
        .arg(&key)
        .args([
            "-o",
            &format!("Port={port}"),
            "-o",
            "ListenAddress=127.0.0.1",
        ])
        .args(["-o", "PidFile=none"]);
    Some(start(cmd, port, dir))
}

#[tokio::test]
async fn ssh_on_standard_and_nonstandard_ports() {
    for want in [8022, 22] {
        let p = port(want);
        let Some(_server) = sshd(p) else { return };
        let info = identify(p).await;
        assert_eq!(info.name, "ssh", "{info:?}");
        assert_eq!(info.product.as_deref(), Some("OpenSSH"));
        assert_eq!(info.auth, AuthStatus::Required);
        assert!(
            info.banner
                .as_deref()
                .unwrap()
                .starts_with("SSH-2.0-OpenSSH_")
        );
        // SSH on 8022 (registered oa-system) is a surprise; on 22 it is not.
        assert_eq!(info.unexpected, p == 8022, "port {p}: {info:?}");
    }
}

fn nginx(http: u16, https: u16, redirect: u16) -> Option<Server> {
    let nginx = binary(&["/usr/sbin/nginx"], "nginx-light")?;
    let dir = Scratch::new("nginx");
    let (cert, key) = openssl_cert(&dir)?;
    let d = dir.0.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{http};
        location / {{ default_type text/html; return 200 "<html><head><title>portwarden plain</title></head></html>"; }}
    }}
    server {{
        listen 127.0.0.1:{redirect};
        return 301 https://localhost:{https}/;
    }}
    server {{
        listen 127.0.0.1:{https} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ default_type text/html; return 200 "<html><head><title>portwarden tls</title></head></html>"; }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
    );
    let conf_path = dir.path("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(&dir.0)
        .arg("-e")
        .arg(dir.path("error.log"));
    let server = start(cmd, http, dir);
    for p in [https, redirect] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", p)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(server)
}

#[tokio::test]
async fn nginx_http_https_and_redirect() {
    let (http, https, redirect) = (port(8080), port(8443), port(18081));
    let Some(_server) = nginx(http, https, redirect) else {
        return;
    };
    let tls_unlisted = port(18443);
    let Some(_server2) = nginx(port(18080), tls_unlisted, port(18082)) else {
        return;
    };
    // HTTPS where nothing is registered: the plain GET is refused first.
    let info = identify(tls_unlisted).await;
    assert_eq!(info.name, "https", "{info:?}");
    assert!(info.tls.is_some());

    let info = identify(http).await;
    assert_eq!(info.name, "http", "{info:?}");
    assert_eq!(info.product.as_deref(), Some("nginx"));
    assert_eq!(
        info.extra.get("title").map(String::as_str),
        Some("portwarden plain")
    );
    assert!(info.tls.is_none());
    assert!(!info.unexpected);

    let info = identify(https).await;
    assert_eq!(info.name, "https", "{info:?}");
    assert_eq!(info.product.as_deref(), Some("nginx"));
    assert_eq!(
        info.extra.get("title").map(String::as_str),
        Some("portwarden tls")
    );
    let tls = info.tls.expect("TLS facts");
    assert!(tls.self_signed);
    assert!(!tls.expired);
    assert_eq!(
        tls.subject.as_deref(),
        Some("CN=localhost, O=portwarden-test")
    );
    assert_eq!(tls.sans, vec!["DNS:localhost", "IP:127.0.0.1"]);
    assert!(matches!(
        tls.version.as_deref(),
        Some("TLSv1.3" | "TLSv1.2")
    ));
    assert!(!info.unexpected);

    let info = identify(redirect).await;
    assert_eq!(info.name, "http", "{info:?}");
    assert_eq!(info.extra.get("status").map(String::as_str), Some("301"));
    assert_eq!(
        info.extra.get("redirects_to_https").map(String::as_str),
        Some("true")
    );
}

fn redis(port: u16, password: Option<&str>) -> Option<Server> {
    let redis = binary(&["/usr/bin/redis-server"], "redis-server")?;
    let dir = Scratch::new("redis");
    let mut cmd = Command::new(redis);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir.0);
    if let Some(pw) = password {
        cmd.args(["--requirepass", pw]);
    }
    Some(start(cmd, port, dir))
}

#[tokio::test]
async fn redis_with_and_without_a_password() {
    let open_port = port(16379);
    let Some(_open) = redis(open_port, None) else {
        return;
    };
    let info = identify(open_port).await;
    assert_eq!(info.name, "redis", "{info:?}");
    assert_eq!(info.auth, AuthStatus::None);
    assert!(
        info.version
            .as_deref()
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    );
    // Nothing is registered for 16379: not a surprise, just unlisted.
    assert!(!info.unexpected);

    let locked_port = port(6379);
    let Some(_locked) = redis(locked_port, Some("s3cret-test")) else {
        return;
    };
    let info = identify(locked_port).await;
    assert_eq!(info.name, "redis", "{info:?}");
    assert_eq!(info.auth, AuthStatus::Required);
    assert!(!info.unexpected);
}

#[tokio::test]
async fn memcached_answers_without_credentials() {
    let Some(bin) = binary(&["/usr/bin/memcached"], "memcached") else {
        return;
    };
    for want in [11211, 21211] {
        let p = port(want);
        let mut cmd = Command::new(&bin);
        cmd.args([
            "-l",
            "127.0.0.1",
            "-p",
            &p.to_string(),
            "-U",
            "0",
            "-u",
            "nobody",
        ]);
        let _server = start(cmd, p, Scratch::new("memcached"));
        let info = identify(p).await;
        assert_eq!(info.name, "memcached", "{info:?}");
        assert_eq!(info.auth, AuthStatus::None);
        assert_eq!(info.product.as_deref(), Some("memcached"));
        assert!(!info.unexpected);
    }
}

#[tokio::test]
async fn telnet_daemon_is_recognised() {
    let Some(bb) = binary(&["/bin/busybox", "/usr/bin/busybox"], "busybox-static") else {
        return;
    };
    let has_telnetd = Command::new(&bb).arg("--list").output().is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == "telnetd")
    });
    if !has_telnetd {
        crate::prereq::missing(&format!(
            "{bb:?} has no telnetd applet; install the Debian package 'busybox-static'"
        ));
        return;
    }
    let p = port(2323);
    let mut cmd = Command::new(&bb);
    cmd.args([
        "telnetd",
        "-F",
        "-p",
        &p.to_string(),
        "-b",
        "127.0.0.1",
        "-l",
        "/bin/false",
    ]);
    let _server = start(cmd, p, Scratch::new("telnetd"));
    let info = identify(p).await;
    assert_eq!(info.name, "telnet", "{info:?}");
    assert!(info.banner.as_deref().unwrap().starts_with("\\xff\\xf"));
}

fn vsftpd(port: u16, anonymous: bool) -> Option<Server> {
    let bin = binary(&["/usr/sbin/vsftpd"], "vsftpd")?;
    // Anonymous sessions run as the `ftp` user the package creates.
    let dir = Scratch::new("vsftpd");
    let empty = dir.path("empty");
    let anon_root = dir.path("anon");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&anon_root).unwrap();
    set_mode(&anon_root, 0o555);
    let conf = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
         background=NO\nanonymous_enable={}\nlocal_enable={}\nwrite_enable=NO\n\
         anon_root={}\nsecure_chroot_dir={}\nseccomp_sandbox=NO\nftp_username=ftp\n\
         pasv_enable=NO\nport_enable=NO\nxferlog_enable=NO\n",
        if anonymous { "YES" } else { "NO" },
        // vsftpd refuses to run with both kinds of login off.
        if anonymous { "NO" } else { "YES" },
        anon_root.display(),
        empty.display(),
    );
    let conf_path = dir.path("vsftpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(&conf_path);
    Some(start(cmd, port, dir))
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn vsftpd_anonymous_allowed_and_refused() {
    for (want, anonymous) in [(2121, true), (21, false)] {
        let p = port(want);
        let Some(_server) = vsftpd(p, anonymous) else {
            return;
        };
        let info = identify(p).await;
        assert_eq!(info.name, "ftp", "{info:?}");
        assert_eq!(info.product.as_deref(), Some("vsFTPd"));
        assert_eq!(
            info.extra.get("anonymous_login").map(String::as_str),
            Some(if anonymous { "true" } else { "false" }),
            "{info:?}"
        );
        assert_eq!(
            info.auth,
            if anonymous {
                AuthStatus::None
            } else {
                AuthStatus::Required
            }
        );
    }
}

/// A fake HTTP server on 127.0.0.1:`port` that replays recorded responses
/// (tests/fixtures/http) by request path; stopped on drop.
struct Replay {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/http")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn replay(port: u16, routes: &[(&str, &str)]) -> Replay {
    use std::io::{Read, Write};
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        panic!("127.0.0.1:{port} is busy ({e}); another helper may be running identification tests: retry later")
    });
    listener.set_nonblocking(true).unwrap();
    let routes: Vec<(String, Vec<u8>)> = routes
        .iter()
        .map(|(path, file)| (path.to_string(), fixture(file)))
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while req.len() < 8192 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let answer = routes
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec());
            let _ = s.write_all(&answer);
        }
    });
    Replay {
        stop,
        thread: Some(thread),
    }
}

/// The real etcd from Debian's etcd-server on its registered ports.
fn etcd() -> Option<Server> {
    // `binary` fails the test under CI=true, else says it is skipped.
    let bin = binary(&["/usr/bin/etcd"], "etcd-server")?;
    let dir = Scratch::new("etcd");
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir").arg(dir.path("data")).args([
        "--listen-client-urls",
        "http://127.0.0.1:2379",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
        "--listen-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-cluster",
        "default=http://127.0.0.1:2380",
    ]);
    Some(start(cmd, 2379, dir))
}

/// (c) HTTP-speaking infrastructure keeps its catalogue risk with
/// identification on: Elasticsearch (9200) and CouchDB (5984) as fakes that
/// replay recorded responses, etcd (2379) as the real server. Identification
/// names each by what it is (not `http`), and the open data stores give
/// `unauth-service`.
#[test]
fn http_infrastructure_keeps_its_risk_in_an_audit() {
    let _es = replay(
        9200,
        &[
            ("/", "elasticsearch--.http"),
            ("/_cat/indices", "elasticsearch--_cat-indices.http"),
        ],
    );
    let _couch = replay(
        5984,
        &[
            ("/", "couchdb--.http"),
            ("/_all_dbs", "couchdb--_all_dbs.http"),
        ],
    );
    let Some(_etcd) = etcd() else { return };
    let out_dir = Scratch::new("infra-audit");
    let out = Command::new(env!("CARGO_BIN_EXE_portwarden"))
        .args([
            "audit",
            "127.0.0.1",
            "-p",
            "9200,5984,2379",
            "--scan",
            "connect",
            "--no-store",
        ])
        .arg("--out")
        .arg(out_dir.path("report"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.path("report").join("findings.json")).unwrap(),
    )
    .unwrap();
    let mut got: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["port"].is_u64())
        .map(|f| {
            format!(
                "{} {} {} {}",
                f["port"],
                f["service"].as_str().unwrap_or("-"),
                f["check"].as_str().unwrap(),
                f["severity"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "2379 etcd high-risk-exposed critical",
            "5984 couchdb high-risk-exposed high",
            "5984 couchdb unauth-service critical",
            "9200 elasticsearch high-risk-exposed critical",
            "9200 elasticsearch unauth-service critical",
        ]
    );
    // Named by identification itself, not only kept from the catalogue.
    for p in doc["ports"].as_array().unwrap() {
        assert_eq!(p["effective_risk"], p["catalogue_risk"], "{p}");
        assert_eq!(p["identified_service"], p["service"], "{p}");
    }
}

/// The real InfluxDB 1.x from Debian's influxdb, with or without
/// authentication, on a free port of 127.0.0.1.
fn influxdb(port: u16, auth: bool) -> Option<Server> {
    // `binary` fails the test under CI=true, else says it is skipped.
    let bin = binary(&["/usr/bin/influxd"], "influxdb")?;
    let dir = Scratch::new("influxdb");
    // Its RPC service needs a port too: any free one.
    let rpc = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[monitor]\n  store-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{port}\"\n  auth-enabled = {auth}\n  log-enabled = false\n",
        d = dir.0.display()
    );
    std::fs::write(dir.path("influxdb.conf"), conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-config").arg(dir.path("influxdb.conf"));
    Some(start(cmd, port, dir))
}

#[tokio::test]
async fn influxdb_named_with_and_without_authentication() {
    for auth in [false, true] {
        let p = port(18086);
        let Some(_s) = influxdb(p, auth) else { return };
        let addr: SocketAddr = ([127, 0, 0, 1], p).into();
        let info = engine().identify(addr, None, Some("influxdb")).await;
        assert_eq!(info.name, "influxdb", "{info:?}");
        assert_eq!(info.product.as_deref(), Some("InfluxDB"));
        assert!(
            info.version.as_deref().is_some_and(|v| v.starts_with("1.")),
            "{info:?}"
        );
        let want = if auth {
            AuthStatus::Required
        } else {
            AuthStatus::None
        };
        assert_eq!(info.auth, want, "auth-enabled = {auth}: {info:?}");
    }
}

/// The real Prometheus from Debian's prometheus (no authentication exists
/// in its own server), on a free port of 127.0.0.1.
#[tokio::test]
async fn prometheus_is_named_and_open() {
    // `binary` fails the test under CI=true, else says it is skipped.
    let Some(bin) = binary(&["/usr/bin/prometheus"], "prometheus") else {
        return;
    };
    let p = port(19090);
    let dir = Scratch::new("prometheus");
    std::fs::write(
        dir.path("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!(
        "--config.file={}",
        dir.path("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.path("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{p}"));
    let _s = start(cmd, p, dir);
    let addr: SocketAddr = ([127, 0, 0, 1], p).into();
    // Its HTTP server may listen a moment before it is ready.
    let mut info = engine().identify(addr, None, Some("prometheus")).await;
    for _ in 0..20 {
        if info.name == "prometheus" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        info = engine().identify(addr, None, Some("prometheus")).await;
    }
    assert_eq!(info.name, "prometheus", "{info:?}");
    assert_eq!(info.auth, AuthStatus::None, "{info:?}");
    assert_eq!(
        info.extra.get("unauthenticated").map(String::as_str),
        Some("GET /api/v1/status/config")
    );
}
