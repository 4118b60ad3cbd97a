//! TLS for probes of HTTPS, HTTP2 and SSL health checks. As the cloud's checkers do, a probe
//! does not verify the backend's certificate (backends commonly serve self-signed ones); it
//! only needs the handshake to succeed. Must not: be used for anything but health probes.

use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::unverified_tls;

/// The connector for `alpn` (HTTP2 checks offer h2; the others nothing), built once.
fn connector(http2: bool) -> TlsConnector {
    static PLAIN: OnceLock<TlsConnector> = OnceLock::new();
    static H2: OnceLock<TlsConnector> = OnceLock::new();
    let cell = if http2 { &H2 } else { &PLAIN };
    cell.get_or_init(|| {
        let alpn = if http2 {
            vec![b"h2".to_vec()]
        } else {
            Vec::new()
        };
        TlsConnector::from(Arc::new(unverified_tls::client_config(alpn)))
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
