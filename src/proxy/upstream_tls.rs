//! TLS to backends: the rustls client config of a cluster's UpstreamTlsContext (ALPN as it
//! names it; no verification of the backend's certificate, as Envoy does without a
//! validation context, which Switchyard does not send), the SNI a connection sends (the
//! context's, else the request's host with auto_sni), and the connector the upstream pools
//! use, which opens TCP through the endpoint resolver and then TLS when the pool asks for it.
//!
//! Must not: choose endpoints or pools (proxy/http.rs and proxy/forward.rs do).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use super::endpoint_names::EndpointNames;
use super::resources::tls::UpstreamTls;
use crate::unverified_tls;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a pool's connections do on top of TCP: TLS with this config and SNI.
#[derive(Clone)]
pub struct TlsOrigination {
    pub config: Arc<ClientConfig>,
    /// None: no SNI is sent.
    pub sni: Option<String>,
}

impl TlsOrigination {
    /// TLS as `tls` asks, sending `sni`.
    pub fn new(tls: &UpstreamTls, sni: Option<String>) -> TlsOrigination {
        TlsOrigination {
            config: client_config(tls, sni.is_some()),
            sni,
        }
    }

    /// TLS over `tcp` to the endpoint at `host` (an address, used when no SNI is sent).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = self.sni.as_deref().unwrap_or(host.trim_matches(['[', ']']));
        let name = ServerName::try_from(name.to_string())
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

/// The host a request to a backend names (its Host, without a port): the SNI under
/// auto_sni.
pub fn request_host(parts: &http::request::Parts) -> &str {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| parts.uri.host())
        .unwrap_or_default();
    match host.rsplit_once(':') {
        // `name:port`; a bare IPv6 address has colons but no digits-only port after `]`.
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        Some((name, port)) if name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

fn client_config(tls: &UpstreamTls, send_sni: bool) -> Arc<ClientConfig> {
    let mut config = unverified_tls::client_config(tls.alpn.clone());
    config.enable_sni = send_sni;
    Arc::new(config)
}

/// The upstream pools' connector: TCP through the endpoint resolver, then TLS when set.
#[derive(Clone)]
pub struct UpstreamConnector {
    pub tcp: HttpConnector<EndpointNames>,
    pub tls: Option<TlsOrigination>,
    /// Where every connection goes, whatever the pool asks for: an HTTP/2 endpoint's own
    /// pool, whose requests' targets name the Host rather than the endpoint.
    pub endpoint: Option<http::Uri>,
}

impl tower_service::Service<http::Uri> for UpstreamConnector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let uri = self.endpoint.clone().unwrap_or(uri);
        let host = uri.host().unwrap_or_default().to_string();
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            let stream = match tls {
                None => UpstreamStream::Plain(tcp.into_inner()),
                Some(tls) => {
                    let stream = tls.connect(tcp.into_inner(), &host).await?;
                    UpstreamStream::Tls(Box::new(stream))
                }
            };
            Ok(UpstreamIo { stream })
        })
    }
}

/// A connection to a backend, read and written through tokio's traits (hyper's client takes
/// it in a `TokioIo`; the sidecar's own HTTP/1.1 exchanges, proxy/http1_exchange.rs, as it is).
pub struct UpstreamIo {
    stream: UpstreamStream,
}

/// A connection to a backend, in clear or over TLS.
enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_write(cx, data),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
