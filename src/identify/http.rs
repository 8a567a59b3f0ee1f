//! Identify layer, HTTP: status, Server, title and redirects of a web
//! service, and the HTTP APIs whose exposure matters most to an audit
//! (Elasticsearch, Docker, Kubernetes API server, kubelet), told apart by a
//! few follow-up requests that also reveal whether they demand credentials.

use serde_json::Value;

use super::{Ctx, Found, Io, ProbeOutcome, ServiceInfo, Until, escape_bytes, set_auth};
use crate::model::AuthStatus;

/// `GET /` as sent inside TLS (the plain probe's payload comes from the
/// probe file).
pub(super) fn default_request(host: &str) -> Vec<u8> {
    request("/", host)
}

fn request(path: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: portwarden\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A parsed (possibly truncated) HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    if let Some(i) = find(buf, b"\r\n\r\n") {
        return Some((i, i + 4));
    }
    find(buf, b"\n\n").map(|i| (i, i + 2))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a response; `None` unless it starts with an HTTP status line.
pub(super) fn parse(buf: &[u8]) -> Option<Response> {
    if !buf.starts_with(b"HTTP/") {
        return None;
    }
    let (end, body_start) = head_end(buf).unwrap_or((buf.len(), buf.len()));
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let status_line = lines.next()?;
    let mut parts = status_line.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    if !(100..=599).contains(&status) {
        return None;
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .take(100)
        .collect();
    let mut body = buf[body_start..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Joins the chunks of a chunked body, as far as they are present.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(b, b"\r\n") {
        let size_txt = String::from_utf8_lossy(&b[..eol]);
        let size_txt = size_txt.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_txt, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = start.saturating_add(size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        if end + 2 > b.len() {
            break;
        }
        b = &b[end + 2..];
    }
    out
}

/// Whether a response read so far is whole.
pub(super) fn complete(buf: &[u8]) -> bool {
    let Some((end, body_start)) = head_end(buf) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = buf.len() - body_start;
    let status_no_body = head
        .split_whitespace()
        .nth(1)
        .is_some_and(|s| s.starts_with('1') || s == "204" || s == "304");
    if status_no_body {
        return true;
    }
    for line in head.lines() {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return buf.ends_with(b"0\r\n\r\n");
        }
    }
    false
}

/// The `<title>` of an HTML body, whitespace collapsed and escaped.
pub(super) fn title(body: &[u8]) -> Option<String> {
    let lower: Vec<u8> = body.iter().map(u8::to_ascii_lowercase).collect();
    let open = find(&lower, b"<title")?;
    let start = open + find(&lower[open..], b">")? + 1;
    let len = find(&lower[start..], b"</title").unwrap_or(lower.len() - start);
    let raw = String::from_utf8_lossy(&body[start..start + len]);
    let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then(|| escape_bytes(text.as_bytes(), 128))
}

/// Splits `Server: nginx/1.22.1 (Debian)` into product and version.
fn server_product(server: &str) -> (Option<String>, Option<String>) {
    let first = server.split_whitespace().next().unwrap_or("");
    let (p, v) = match first.split_once('/') {
        Some((p, v)) => (p, Some(v)),
        None => (first, None),
    };
    let clean = |s: &str| {
        let e = escape_bytes(s.as_bytes(), 64);
        (!e.is_empty()).then_some(e)
    };
    (clean(p), v.and_then(clean))
}

/// Sends the request, reads the response and identifies what serves it.
pub(super) async fn probe<S: Io + ?Sized>(
    ctx: &Ctx<'_>,
    s: &mut S,
    payload: &[u8],
    tls: bool,
) -> ProbeOutcome {
    let Some(reply) = ctx.exchange(s, payload, Until::Done(&complete)).await else {
        return ProbeOutcome::default();
    };
    let Some(resp) = parse(&reply) else {
        // Some services answer any line with their banner or an error.
        return match ctx.id.probes.match_banner(&reply) {
            Some(hit) => ProbeOutcome::found(Found {
                info: super::info_from_hit(hit),
                first_bytes: reply,
            }),
            None => ProbeOutcome::nothing(reply),
        };
    };
    if !tls && plain_to_tls_port(&resp) {
        // The TLS probe will see the real service.
        return ProbeOutcome::nothing(reply);
    }
    let mut info = describe(&resp, tls);
    refine(ctx, &resp, &reply, &mut info, tls).await;
    ProbeOutcome::found(Found {
        info,
        first_bytes: reply,
    })
}

/// A TLS server's complaint about a plain request (nginx, Apache).
pub(super) fn plain_to_tls_port(resp: &Response) -> bool {
    if resp.status != 400 {
        return false;
    }
    let body = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
    body.contains("plain http request was sent to https port")
        || body.contains("speaking plain http to an ssl-enabled server")
}

/// The generic facts of a web response.
pub(super) fn describe(resp: &Response, tls: bool) -> ServiceInfo {
    let mut info = ServiceInfo {
        name: if tls { "https" } else { "http" }.into(),
        confidence: 0.9,
        ..ServiceInfo::default()
    };
    if let Some(server) = resp.header("server") {
        let (p, v) = server_product(server);
        info.product = p;
        info.version = v;
        info.extra
            .insert("server".into(), escape_bytes(server.as_bytes(), 128));
    }
    info.extra.insert("status".into(), resp.status.to_string());
    if let Some(t) = title(&resp.body) {
        info.extra.insert("title".into(), t);
    }
    if (300..400).contains(&resp.status)
        && let Some(loc) = resp.header("location")
    {
        info.extra
            .insert("location".into(), escape_bytes(loc.as_bytes(), 200));
        if !tls && loc.to_ascii_lowercase().starts_with("https://") {
            info.extra
                .insert("redirects_to_https".into(), "true".into());
        }
    }
    if matches!(resp.status, 401 | 407) {
        info.auth = AuthStatus::Required;
        if let Some(w) = resp.header("www-authenticate") {
            info.extra
                .insert("www_authenticate".into(), escape_bytes(w.as_bytes(), 128));
        }
    }
    info
}

/// One more GET on a fresh connection.
async fn get(ctx: &Ctx<'_>, path: &str, tls: bool) -> Option<Response> {
    parse(&get_raw(ctx, path, tls).await?)
}

/// One more GET on a fresh connection; the raw (bounded) answer.
async fn get_raw(ctx: &Ctx<'_>, path: &str, tls: bool) -> Option<Vec<u8>> {
    let mut s = ctx.open(tls).await?;
    ctx.exchange(
        &mut s,
        &request(path, &ctx.host_header()),
        Until::Done(&complete),
    )
    .await
}

/// The `[[http]]` fingerprints of the probe file: HTTP-speaking
/// infrastructure (CouchDB, etcd, Kibana, RabbitMQ, InfluxDB, Consul,
/// Prometheus, Grafana, Jenkins, Hadoop, MinIO…) named by what it is, with
/// whether it answers a privileged request without credentials.
async fn fingerprint(ctx: &Ctx<'_>, root_raw: &[u8], info: &mut ServiceInfo, tls: bool) -> bool {
    let port = ctx.addr.port();
    for fp in &ctx.id.probes.http {
        if !fp.applies(port, ctx.registered) {
            continue;
        }
        let fetched;
        let raw = if fp.path == "/" {
            root_raw
        } else {
            match get_raw(ctx, &fp.path, tls).await {
                Some(r) => {
                    fetched = r;
                    &fetched[..]
                }
                None => continue,
            }
        };
        let Some(hit) = fp.rule.apply(raw) else {
            continue;
        };
        info.name = hit.service;
        info.product = hit.product.or(info.product.take());
        info.version = hit.version;
        info.confidence = hit.confidence;
        info.auth = AuthStatus::Unknown;
        if let (Some(path), Some(open)) = (&fp.unauth_path, &fp.unauth) {
            let answer = if path == &fp.path {
                Some(raw.to_vec())
            } else {
                get_raw(ctx, path, tls).await
            };
            if let Some(a) = answer {
                if open.is_match(&a) {
                    info.auth = AuthStatus::None;
                    info.extra
                        .insert("unauthenticated".into(), format!("GET {path}"));
                } else if parse(&a).is_some_and(|r| matches!(r.status, 401 | 403)) {
                    info.auth = AuthStatus::Required;
                }
            }
        }
        return true;
    }
    false
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn bounded(s: &str) -> String {
    escape_bytes(s.as_bytes(), 64)
}

/// Elasticsearch / OpenSearch, from the root document or the headers;
/// true when it decided the service.
async fn elasticsearch(
    ctx: &Ctx<'_>,
    root: &Response,
    json: Option<&Value>,
    info: &mut ServiceInfo,
    tls: bool,
) -> bool {
    // Elasticsearch / OpenSearch answer `/` with their cluster facts.
    if let Some(j) = json
        && j.get("cluster_name").is_some()
    {
        info.name = "elasticsearch".into();
        let dist = str_at(j, &["version", "distribution"]);
        info.product = Some(
            if dist == Some("opensearch") {
                "OpenSearch"
            } else {
                "Elasticsearch"
            }
            .into(),
        );
        info.version = str_at(j, &["version", "number"]).map(bounded);
        if let Some(c) = str_at(j, &["cluster_name"]) {
            info.extra.insert("cluster_name".into(), bounded(c));
        }
        // The root answered without credentials; listing the indices is
        // what proves the data is open.
        info.auth = AuthStatus::None;
        if let Some(r) = get(ctx, "/_cat/indices", tls).await {
            match r.status {
                200 => {
                    info.extra
                        .insert("unauthenticated".into(), "GET /_cat/indices".into());
                }
                401 | 403 => info.auth = AuthStatus::Required,
                _ => {}
            }
        }
        info.confidence = 0.97;
        return true;
    }
    let elastic_header = root.header("x-elastic-product").is_some();
    let security_realm = root
        .header("www-authenticate")
        .is_some_and(|w| w.contains("realm=\"security\""));
    if elastic_header || (root.status == 401 && security_realm) {
        info.name = "elasticsearch".into();
        info.product = Some("Elasticsearch".into());
        info.version = None;
        if root.status == 401 {
            info.auth = AuthStatus::Required;
        }
        info.confidence = 0.9;
        return true;
    }
    false
}

/// Tells the well-known HTTP APIs apart from a plain web server.
async fn refine(ctx: &Ctx<'_>, root: &Response, raw: &[u8], info: &mut ServiceInfo, tls: bool) {
    let json = root.json();
    let registered = ctx.registered.unwrap_or("");
    let port = ctx.addr.port();

    if elasticsearch(ctx, root, json.as_ref(), info, tls).await {
        return;
    }

    if fingerprint(ctx, raw, info, tls).await {
        return;
    }

    // Docker Engine API: its headers give it away; /version proves access.
    let docker_hint = root.header("api-version").is_some()
        || root
            .header("server")
            .is_some_and(|s| s.starts_with("Docker/"))
        || registered.starts_with("docker");
    if docker_hint && let Some(v) = get(ctx, "/version", tls).await {
        let vj = v.json();
        if v.status == 200
            && let Some(j) = vj.as_ref().filter(|j| j.get("ApiVersion").is_some())
        {
            info.name = "docker".into();
            info.product = Some("Docker".into());
            info.version = str_at(j, &["Version"]).map(bounded);
            if let Some(a) = str_at(j, &["ApiVersion"]) {
                info.extra.insert("api_version".into(), bounded(a));
            }
            info.auth = AuthStatus::None;
            info.confidence = 0.97;
            return;
        }
        if matches!(v.status, 401 | 403) && root.header("api-version").is_some() {
            info.name = "docker".into();
            info.product = Some("Docker".into());
            info.auth = AuthStatus::Required;
            info.confidence = 0.85;
            return;
        }
    }

    // Kubernetes API server: a `Status` object or the list of API paths.
    let k8s_hint = json.as_ref().is_some_and(|j| {
        j.get("kind").and_then(Value::as_str) == Some("Status")
            || j.get("paths")
                .and_then(Value::as_array)
                .is_some_and(|p| p.iter().any(|x| x.as_str() == Some("/api")))
    }) || registered == "kubernetes";
    if k8s_hint && let Some(api) = get(ctx, "/api", tls).await {
        let is_versions = api
            .json()
            .is_some_and(|j| j.get("kind").and_then(Value::as_str) == Some("APIVersions"));
        let status_obj = api
            .json()
            .is_some_and(|j| j.get("kind").and_then(Value::as_str) == Some("Status"));
        if (api.status == 200 && is_versions) || (matches!(api.status, 401 | 403) && status_obj) {
            info.name = "kubernetes".into();
            info.product = Some("Kubernetes API server".into());
            info.version = None;
            info.auth = if api.status == 200 {
                AuthStatus::None
            } else {
                AuthStatus::Required
            };
            info.confidence = 0.95;
            if let Some(v) = get(ctx, "/version", tls).await
                && v.status == 200
                && let Some(g) = v
                    .json()
                    .as_ref()
                    .and_then(|j| str_at(j, &["gitVersion"]).map(bounded))
            {
                info.version = Some(g);
            }
            return;
        }
    }

    // Kubelet: Go's bare 404 on `/`; `/pods` lists the node's pods.
    let go_404 = root.status == 404 && root.body.starts_with(b"404 page not found");
    let kubelet_port = matches!(port, 10250 | 10255) || registered.starts_with("kubelet");
    if (go_404 || kubelet_port)
        && let Some(p) = get(ctx, "/pods", tls).await
    {
        let pod_list = p
            .json()
            .is_some_and(|j| j.get("kind").and_then(Value::as_str) == Some("PodList"));
        if p.status == 200 && pod_list {
            info.name = "kubelet".into();
            info.product = Some("Kubernetes kubelet".into());
            info.auth = AuthStatus::None;
            info.confidence = 0.95;
        } else if matches!(p.status, 401 | 403) && kubelet_port {
            info.name = "kubelet".into();
            info.product = Some("Kubernetes kubelet".into());
            info.auth = AuthStatus::Required;
            info.confidence = 0.8;
        }
    }
    if root.status == 200 {
        // A page served without credentials says little about the app
        // behind it, so a plain web server keeps `unknown`.
        set_auth(info, AuthStatus::Unknown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_title_and_redirect() {
        let raw = b"HTTP/1.1 301 Moved Permanently\r\nServer: nginx/1.22.1\r\nLocation: https://example.org/\r\nContent-Length: 52\r\n\r\n<html><head><title> Moved\n Here </title></head></html>";
        let r = parse(raw).unwrap();
        assert_eq!(r.status, 301);
        assert_eq!(r.header("LOCATION"), Some("https://example.org/"));
        let info = describe(&r, false);
        assert_eq!(info.name, "http");
        assert_eq!(info.product.as_deref(), Some("nginx"));
        assert_eq!(info.version.as_deref(), Some("1.22.1"));
        assert_eq!(
            info.extra.get("title").map(String::as_str),
            Some("Moved Here")
        );
        assert_eq!(
            info.extra.get("redirects_to_https").map(String::as_str),
            Some("true")
        );
        assert_eq!(info.auth, AuthStatus::Unknown);
    }

    #[test]
    fn plain_request_to_a_tls_port() {
        let r = parse(b"HTTP/1.1 400 Bad Request\r\n\r\n<center>The plain HTTP request was sent to HTTPS port</center>").unwrap();
        assert!(plain_to_tls_port(&r));
        let r = parse(b"HTTP/1.1 400 Bad Request\r\n\r\nbad").unwrap();
        assert!(!plain_to_tls_port(&r));
    }

    #[test]
    fn unauthorized_means_auth_required() {
        let r = parse(b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n")
            .unwrap();
        let info = describe(&r, true);
        assert_eq!(info.name, "https");
        assert_eq!(info.auth, AuthStatus::Required);
    }

    #[test]
    fn completeness() {
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"
        ));
        assert!(complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde"
        ));
        assert!(complete(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        ));
        assert!(complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        ));
        assert!(!complete(b"HTTP/1.0 200 OK\r\n\r\nuntil close"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5"));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"{\"a\":1}".to_vec());
        // Truncated or lying chunk sizes never panic.
        assert_eq!(dechunk(b"ff\r\nab"), b"ab".to_vec());
        assert_eq!(dechunk(b"zz\r\nab"), Vec::<u8>::new());
    }

    #[test]
    fn not_http_is_rejected() {
        assert!(parse(b"SSH-2.0-OpenSSH\r\n").is_none());
        assert!(parse(b"HTTP/1.1 abc\r\n\r\n").is_none());
        assert!(parse(b"HTTP/1.1 999 x\r\n\r\n").is_none());
        assert!(parse(b"HTTP/").is_none());
    }

    #[test]
    fn title_edge_cases() {
        assert_eq!(title(b"<TITLE lang=en>Hi</TITLE>").as_deref(), Some("Hi"));
        assert_eq!(
            title(b"<title>unterminated").as_deref(),
            Some("unterminated")
        );
        assert_eq!(title(b"<title></title>"), None);
        assert_eq!(
            title(b"<title>\x01bin</title>").as_deref(),
            Some("\\x01bin")
        );
    }
}
