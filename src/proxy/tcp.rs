//! The TCP side of the data plane: each accepted connection goes to one endpoint of the
//! listener's cluster (by the client's address when the listener hashes on it), bytes copied
//! both ways until either side closes or the idle timeout passes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::balancer::hash_text;
use super::config::ProxyConfig;
use super::resources::listener::TcpForward;

/// Envoy's default idle timeout for TCP proxies.
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);

pub async fn serve_connection(
    mut downstream: TcpStream,
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
    let Some(mut upstream) = upstream else {
        let _ = downstream.shutdown().await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    let idle = forward
        .idle_timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_IDLE);
    let (mut down_read, mut down_write) = downstream.split();
    let (mut up_read, mut up_write) = upstream.split();
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
