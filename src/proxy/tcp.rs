//! The TCP side of the data plane: each accepted connection goes to one endpoint of the
//! listener's cluster (by the client's address when the listener hashes on it), bytes copied
//! both ways until either side closes or the idle timeout passes. Either side may be TLS: the
//! client's when the listener's chain terminates it, the backend's when the cluster asks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::balancer::hash_text;
use super::config::ProxyConfig;
use super::resources::listener::TcpForward;
use super::upstream_tls::TlsOrigination;

/// Envoy's default idle timeout for TCP proxies.
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);

pub async fn serve_connection(
    downstream: impl AsyncRead + AsyncWrite + Unpin,
    peer: SocketAddr,
    forward: Arc<TcpForward>,
    config: watch::Receiver<Arc<ProxyConfig>>,
) {
    let _counted = super::stats::STATS.connection();
    let snapshot = config.borrow().clone();
    let Some(entry) = snapshot.clusters.get(&forward.cluster) else {
        return;
    };
    let hash = forward
        .hash_source_ip
        .then(|| hash_text(&peer.ip().to_string()));
    let Some(host) = entry.balancer.pick(hash) else {
        return;
    };
    let connect_timeout = entry.cluster.connect_timeout;
    let mut upstream = None;
    for address in std::iter::once(host.address).chain(host.fallback.iter().copied()) {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await
        {
            upstream = Some(stream);
            break;
        }
    }
    let Some(upstream) = upstream else {
        let mut downstream = downstream;
        let _ = downstream.shutdown().await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    let idle = forward
        .idle_timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_IDLE);
    match &entry.cluster.tls {
        None => copy_both_ways(downstream, upstream, idle).await,
        Some(tls) => {
            // An SSL backend: TLS to it, with the SNI the context names (if any).
            let origination = TlsOrigination::new(tls, tls.sni.clone());
            let host = host.address.ip().to_string();
            match origination.connect(upstream, &host).await {
                Ok(upstream) => copy_both_ways(downstream, upstream, idle).await,
                Err(error) => tracing::debug!(%error, "TLS to the backend failed"),
            }
        }
    }
}

/// Copies both ways until both directions end.
async fn copy_both_ways(
    downstream: impl AsyncRead + AsyncWrite + Unpin,
    upstream: impl AsyncRead + AsyncWrite + Unpin,
    idle: Duration,
) {
    let (mut down_read, mut down_write) = tokio::io::split(downstream);
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    let _ = tokio::join!(
        copy_until_idle(&mut down_read, &mut up_write, idle),
        copy_until_idle(&mut up_read, &mut down_write, idle),
    );
}

/// Copies until end of stream, an error, or `idle` without a byte; then closes the writer.
async fn copy_until_idle(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    idle: Duration,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(idle, reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                if writer.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = writer.shutdown().await;
}
