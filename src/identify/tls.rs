//! Identify layer, TLS: handshakes with any server to learn its protocol
//! version and certificate facts, then identifies what runs inside.
//!
//! An auditor must see self-signed and expired certificates rather than be
//! stopped by them, so the verifier here accepts every certificate: nothing
//! sent over these connections is secret, and the certificate is reported,
//! not trusted.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{Ctx, Found, ProbeOutcome, ServiceInfo, Until, escape_bytes};
use crate::model::TlsInfo;

/// Accepts any certificate (see the module comment for why).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration shared by every handshake.
pub(super) fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Why a handshake failed.
#[derive(Debug)]
pub(super) enum HandshakeFail {
    /// The peer speaks TLS but refused us (an alert: old versions only,
    /// client certificate required, …).
    Refused(String),
    /// The peer speaks TLS, but its certificate chain is larger than
    /// rustls reads (64 KiB: thousands of SANs, a huge name).
    CertTooLarge,
    /// Not TLS, closed, or too slow.
    NotTls,
}

/// Handshakes over `tcp` and returns the stream and certificate facts.
pub(super) async fn handshake(
    ctx: &Ctx<'_>,
    tcp: TcpStream,
) -> Result<(TlsStream<TcpStream>, TlsInfo), HandshakeFail> {
    let name = ServerName::try_from(ctx.host.clone())
        .unwrap_or_else(|_| ServerName::IpAddress(ctx.addr.ip().into()));
    let connector = TlsConnector::from(ctx.id.tls.clone());
    let wait = ctx.cfg().read_timeout.min(ctx.left());
    let stream = match tokio::time::timeout(wait, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let tls_err = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
            return Err(match tls_err {
                Some(rustls::Error::AlertReceived(a)) => {
                    HandshakeFail::Refused(format!("alert {a:?}"))
                }
                Some(rustls::Error::PeerIncompatible(p)) => {
                    HandshakeFail::Refused(format!("{p:?}"))
                }
                Some(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::CertificatePayloadTooLarge
                    | rustls::InvalidMessage::HandshakePayloadTooLarge,
                )) => HandshakeFail::CertTooLarge,
                _ => HandshakeFail::NotTls,
            });
        }
        Err(_) => return Err(HandshakeFail::NotTls),
    };
    let (_, conn) = stream.get_ref();
    let mut info = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| cert_facts(c.as_ref(), Utc::now()))
        .unwrap_or_default();
    info.version = conn.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        o => format!("{o:?}"),
    });
    Ok((stream, info))
}

/// Facts from a DER certificate; `None` when it does not parse.
pub(super) fn cert_facts(der: &[u8], now: DateTime<Utc>) -> Option<TlsInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let bounded = |s: String| escape_bytes(s.as_bytes(), 256);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for gn in &ext.value.general_names {
            let s = match gn {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::RFC822Name(m) => format!("email:{m}"),
                GeneralName::URI(u) => format!("URI:{u}"),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        format!("IP:{}", std::net::Ipv6Addr::from(a))
                    }
                    _ => continue,
                },
                _ => continue,
            };
            if sans.len() < 64 {
                sans.push(bounded(s));
            }
        }
    }
    let not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0);
    Some(TlsInfo {
        version: None,
        subject: Some(bounded(cert.subject().to_string())),
        issuer: Some(bounded(cert.issuer().to_string())),
        sans,
        not_after,
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        expired: not_after.is_some_and(|t| t < now),
    })
}

/// A TLS service whose handshake did not complete: named from the
/// handshake, with why its certificate facts are missing.
fn tls_without_facts(key: &str, why: String) -> ProbeOutcome {
    let mut svc = ServiceInfo {
        name: "tls".into(),
        confidence: 0.7,
        ..ServiceInfo::default()
    };
    svc.extra.insert(key.into(), why);
    ProbeOutcome::found(Found {
        info: svc,
        first_bytes: Vec::new(),
    })
}

/// The TLS probe: handshake, then identify the service inside.
pub(super) async fn probe(ctx: &Ctx<'_>, tcp: TcpStream) -> ProbeOutcome {
    let (mut stream, info) = match handshake(ctx, tcp).await {
        Ok(x) => x,
        Err(HandshakeFail::Refused(why)) => {
            return tls_without_facts("tls_handshake", format!("refused: {why}"));
        }
        Err(HandshakeFail::CertTooLarge) => {
            return tls_without_facts(
                "tls_certificate",
                "too large to parse (over 64 KiB): not checked".into(),
            );
        }
        Err(HandshakeFail::NotTls) => return ProbeOutcome::default(),
    };
    // Inside TLS the same order applies: let the service speak first
    // (IMAPS, POP3S, SMTPS greet), then try HTTP.
    let mut banner = Vec::new();
    ctx.read(
        &mut stream,
        &mut banner,
        ctx.cfg().banner_timeout,
        Until::Settle,
    )
    .await;
    if !banner.is_empty() {
        return ProbeOutcome::found(ctx.banner_service(&mut stream, banner, Some(info)).await);
    }
    let payload = super::http::default_request(&ctx.host_header());
    let out = super::http::probe(ctx, &mut stream, &payload, true).await;
    if let Some(mut f) = out.found {
        f.info.tls = Some(info);
        return ProbeOutcome::found(f);
    }
    ProbeOutcome::found(Found {
        info: ServiceInfo {
            name: "tls".into(),
            tls: Some(info),
            confidence: 0.6,
            ..ServiceInfo::default()
        },
        first_bytes: out.reply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &[u8] = include_bytes!("testdata/cert.der");

    #[test]
    fn cert_facts_of_the_fixture() {
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        let t = cert_facts(CERT, now).unwrap();
        assert_eq!(
            t.subject.as_deref(),
            Some("CN=portwarden.test, O=Portwarden Test")
        );
        assert_eq!(t.issuer, t.subject);
        assert!(t.self_signed);
        assert!(!t.expired);
        assert_eq!(
            t.sans,
            vec![
                "DNS:portwarden.test",
                "DNS:www.portwarden.test",
                "IP:127.0.0.1"
            ]
        );
        assert_eq!(
            t.not_after.unwrap().format("%Y-%m-%d").to_string(),
            "2126-10-31"
        );
        let later = "2200-01-01T00:00:00Z".parse().unwrap();
        assert!(cert_facts(CERT, later).unwrap().expired);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(cert_facts(b"\x30\x03\x02\x01", Utc::now()).is_none());
        assert!(cert_facts(&CERT[..100], Utc::now()).is_none());
    }
}
