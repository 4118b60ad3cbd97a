//! TLS on the sidecar's listeners: the rustls server config of each chain that terminates
//! TLS (versions, TLS 1.2 suites and ALPN as the DownstreamTlsContext gives them, the
//! certificate chosen by SNI among the chain's certificates, the first when none matches, as
//! Envoy chooses), and, for each accepted connection, the ClientHello read and the filter
//! chain chosen from what it says (and the session it settled, for header values). The
//! handshake then runs on proxy/tls_unbuffered.rs's stream, which keeps no buffer while a
//! connection is idle. A new snapshot (a renewed Secret) builds new configs that new
//! connections get; open connections keep theirs.
//!
//! Must not: serve HTTP or TCP (proxy/downstream.rs and proxy/tcp.rs do, on what this
//! returns).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use super::config::ProxyConfig;
use super::resources::filter_chain::{self, ConnectionFacts};
use super::resources::listener::Listener;
use super::resources::tls::{CertificateSource, DownstreamTls, ServedCertificate, TlsVersion};
use super::rewrite::TlsSession;
use super::tls_unbuffered::UnbufferedTlsStream;

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The server config of a TLS chain, or None while a certificate it names over SDS is
/// missing.
pub fn server_config(
    tls: &DownstreamTls,
    secrets: &BTreeMap<String, Arc<ServedCertificate>>,
) -> Option<Arc<ServerConfig>> {
    let certificates = tls
        .certificates
        .iter()
        .map(|source| match source {
            CertificateSource::Sds(name) => secrets.get(name).cloned(),
            CertificateSource::Inline(served) => Some(served.clone()),
        })
        .collect::<Option<Vec<_>>>()?;
    let provider = CryptoProvider {
        cipher_suites: cipher_suites(tls),
        ..ring::default_provider()
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&protocol_versions(tls))
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CertificatesByName { certificates }));
    config.alpn_protocols = tls.alpn.clone();
    // The suite is chosen by the listener's order, not the client's, as Envoy's BoringSSL
    // chooses it (and so the suite a header names is the same through both).
    config.ignore_client_order = true;
    Some(Arc::new(config))
}

fn protocol_versions(tls: &DownstreamTls) -> Vec<&'static SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if tls.min_version <= TlsVersion::Tls12 && tls.max_version >= TlsVersion::Tls12 {
        versions.push(&TLS12);
    }
    if tls.max_version >= TlsVersion::Tls13 {
        versions.push(&TLS13);
    }
    versions
}

/// TLS 1.3's suites (which Envoy's cipher list does not govern), then the TLS 1.2 suites the
/// context names in its order (all of rustls's when it names none).
fn cipher_suites(tls: &DownstreamTls) -> Vec<SupportedCipherSuite> {
    let all = ring::default_provider().cipher_suites;
    let openssl_name = |suite: &SupportedCipherSuite| openssl_name(suite);
    let mut suites: Vec<SupportedCipherSuite> = all
        .iter()
        .filter(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)))
        .copied()
        .collect();
    if tls.cipher_suites.is_empty() {
        suites.extend(
            all.iter()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_))),
        );
        return suites;
    }
    for name in &tls.cipher_suites {
        suites.extend(all.iter().filter(|s| openssl_name(s) == Some(*name)));
    }
    suites
}

/// What a terminated connection's handshake settled (its version, suite and the client's
/// SNI), named as Envoy names them.
pub fn session_named(
    version: Option<tokio_rustls::rustls::ProtocolVersion>,
    suite: Option<SupportedCipherSuite>,
    server_name: Option<String>,
) -> TlsSession {
    use tokio_rustls::rustls::ProtocolVersion;
    let version = match version {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        _ => "TLSv1.2",
    };
    let cipher = suite
        .and_then(|suite| openssl_name(&suite).or_else(|| tls13_name(&suite)))
        .unwrap_or_default();
    TlsSession {
        version,
        cipher,
        server_name,
    }
}

/// The name BoringSSL gives a TLS 1.3 suite (the RFC's).
fn tls13_name(suite: &SupportedCipherSuite) -> Option<&'static str> {
    use tokio_rustls::rustls::CipherSuite as Id;
    Some(match suite.suite() {
        Id::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        Id::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        Id::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        _ => return None,
    })
}

/// The OpenSSL name of a TLS 1.2 suite rustls implements.
fn openssl_name(suite: &SupportedCipherSuite) -> Option<&'static str> {
    use tokio_rustls::rustls::CipherSuite as Id;
    Some(match suite.suite() {
        Id::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        Id::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        Id::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        Id::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        Id::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        Id::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => return None,
    })
}

/// A chain's certificates, chosen by the client's SNI: an exact name first, then a
/// wildcard, then the first certificate.
#[derive(Debug)]
struct CertificatesByName {
    certificates: Vec<Arc<ServedCertificate>>,
}

impl ResolvesServerCert for CertificatesByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .map(str::to_ascii_lowercase)
            .and_then(|name| {
                let serves = |exact: bool| {
                    self.certificates.iter().find(|c| {
                        c.names.iter().any(|pattern| match exact {
                            true => *pattern == name,
                            false => wildcard_matches(pattern, &name),
                        })
                    })
                };
                serves(true).or_else(|| serves(false))
            })
            .or_else(|| self.certificates.first())?;
        Some(chosen.key.clone())
    }
}

/// `*.example.test` serves `www.example.test` (one label), as certificates' wildcards do.
fn wildcard_matches(pattern: &str, name: &str) -> bool {
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(suffix), Some((_, rest))) => rest == suffix,
        _ => false,
    }
}

/// An accepted connection once its chain is known.
pub enum Accepted {
    Plain(TcpStream),
    Tls(Box<UnbufferedTlsStream>),
}

/// Reads what the listener's chains match on (the ClientHello when one may matter), chooses
/// the chain, and completes the TLS handshake when that chain terminates TLS. None: no chain
/// matches, the handshake failed, or the client left.
pub async fn accept(
    stream: TcpStream,
    name: &str,
    listener: &Listener,
    snapshot: &ProxyConfig,
) -> Option<(usize, Accepted)> {
    let destination_port = stream.local_addr().ok()?.port();
    let matches: Vec<_> = listener.chains.iter().map(|c| &c.matcher).collect();
    if !listener.reads_client_hello() || !starts_with_tls_record(&stream).await {
        let facts = ConnectionFacts {
            destination_port,
            server_name: None,
            transport_protocol: "raw_buffer",
        };
        let chain = filter_chain::select(&matches, facts)?;
        if listener.chains[chain].tls.is_some() {
            tracing::debug!(listener = %name, "a client that does not speak TLS; closed");
            return None;
        }
        return Some((chain, Accepted::Plain(stream)));
    }
    let mut stream = stream;
    let (hello, already_read) = read_client_hello(&mut stream)
        .await
        .map_err(|error| tracing::debug!(listener = %name, %error, "no ClientHello"))
        .ok()?;
    let server_name = hello.client_hello().server_name().map(str::to_string);
    // The parsed hello holds a buffered rustls connection: not kept through the handshake.
    drop(hello);
    let facts = ConnectionFacts {
        destination_port,
        server_name: server_name.as_deref(),
        transport_protocol: "tls",
    };
    let chain = filter_chain::select(&matches, facts)?;
    let Some(server) = snapshot.server_tls.get(&(name.to_string(), chain)) else {
        tracing::debug!(listener = %name, chain, "no TLS config for the chosen chain; closed");
        return None;
    };
    let stream = UnbufferedTlsStream::handshake(stream, server.clone(), already_read, server_name)
        .await
        .map_err(|error| tracing::debug!(listener = %name, %error, "TLS handshake failed"))
        .ok()?;
    Some((chain, Accepted::Tls(Box::new(stream))))
}

/// Reads the client's ClientHello, parsed (to choose the chain and its config), with every
/// byte read so far: the handshake starts over from them. A malformed one is answered with
/// rustls's alert.
async fn read_client_hello(
    stream: &mut TcpStream,
) -> std::io::Result<(tokio_rustls::rustls::server::Accepted, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut acceptor = Acceptor::default();
    let mut already_read = Vec::new();
    loop {
        let before = already_read.len();
        already_read.reserve(2048);
        if stream.read_buf(&mut already_read).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut fresh = &already_read[before..];
        while !fresh.is_empty() {
            if acceptor.read_tls(&mut fresh)? == 0 {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok((accepted, already_read)),
            Ok(None) => continue,
            Err((error, mut alert)) => {
                let mut bytes = Vec::new();
                let _ = alert.write_all(&mut bytes);
                let _ = stream.write_all(&bytes).await;
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error));
            }
        }
    }
}

/// Whether the client's first byte starts a TLS handshake record (waits for that byte).
async fn starts_with_tls_record(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE_RECORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_serves_one_label() {
        assert!(wildcard_matches("*.example.test", "www.example.test"));
        assert!(!wildcard_matches("*.example.test", "a.b.example.test"));
        assert!(!wildcard_matches("*.example.test", "example.test"));
        assert!(!wildcard_matches("www.example.test", "www.example.test"));
    }
}
