//! TLS for probes of HTTPS, HTTP2 and SSL health checks. As the cloud's checkers do, a probe
//! does not verify the backend's certificate (backends commonly serve self-signed ones); it
//! only needs the handshake to succeed. Must not: be used for anything but health probes.

use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error, SignatureScheme};
use tokio_rustls::TlsConnector;

/// Accepts any certificate, checking only that the handshake's signatures are sound.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connector for `alpn` (HTTP2 checks offer h2; the others nothing), built once.
fn connector(http2: bool) -> TlsConnector {
    static PLAIN: OnceLock<TlsConnector> = OnceLock::new();
    static H2: OnceLock<TlsConnector> = OnceLock::new();
    let cell = if http2 { &H2 } else { &PLAIN };
    cell.get_or_init(|| {
        let provider = Arc::new(crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        if http2 {
            config.alpn_protocols = vec![b"h2".to_vec()];
        }
        TlsConnector::from(Arc::new(config))
    })
    .clone()
}

/// Runs a TLS handshake over `stream`, sending `host` as SNI when it is a name.
pub async fn handshake(
    stream: TcpStream,
    host: Option<&str>,
    http2: bool,
) -> Result<TlsStream<TcpStream>, String> {
    let peer = stream
        .peer_addr()
        .map_err(|error| format!("connect: {error}"))?;
    let name = host
        .and_then(|host| ServerName::try_from(host.to_string()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(peer.ip().into()));
    connector(http2)
        .connect(name, stream)
        .await
        .map_err(|error| format!("TLS handshake: {error}"))
}
