//! The TCP side of the data plane: each accepted connection goes to one endpoint of the
//! listener's cluster (by the client's address when the listener hashes on it), bytes copied
//! both ways until either side closes or the idle timeout passes. Either side may be TLS: the
//! client's when the listener's chain terminates it, the backend's when the cluster asks, after
//! the PROXY protocol header when the cluster asks for one. Each connection is one access log
//! entry when the proxy logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::access_log::{self, Entry};
use super::balancer::hash_text;
use super::config::ProxyConfig;
use super::original_dst;
use super::proxy_protocol;
use super::resources::listener::TcpForward;
use super::upstream_tls::TlsOrigination;

/// Envoy's default idle timeout for TCP proxies.
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);

/// `addresses`: the client's, the one it reached, and where it was going when netfilter
/// redirected it (if it was, and the config has an ORIGINAL_DST cluster).
pub async fn serve_connection(
    downstream: impl AsyncRead + AsyncWrite + Unpin,
    addresses: (SocketAddr, SocketAddr, Option<SocketAddr>),
    forward: Arc<TcpForward>,
    config: watch::Receiver<Arc<ProxyConfig>>,
) {
    let _counted = super::stats::STATS.connection();
    let began = Instant::now();
    let mut entry = Entry {
        start: Some(SystemTime::now()),
        ..Default::default()
    };
    proxy(downstream, addresses, &forward, &config, &mut entry).await;
    if !forward.access_logs.is_empty() {
        entry.duration = began.elapsed();
        access_log::emit(&forward.access_logs, &entry);
    }
}

/// Connects the client at `addresses` (its own, the one it reached, where it was going) to
/// an endpoint and copies until the connection ends, noting in `entry` what the access log
/// says of it.
async fn proxy(
    downstream: impl AsyncRead + AsyncWrite + Unpin,
    (peer, local, original): (SocketAddr, SocketAddr, Option<SocketAddr>),
    forward: &TcpForward,
    config: &watch::Receiver<Arc<ProxyConfig>>,
    entry: &mut Entry,
) {
    let snapshot = config.borrow().clone();
    let Some(cluster) = snapshot.clusters.get(&forward.cluster) else {
        entry.flags = Some("NC");
        return;
    };
    entry.cluster = Some(forward.cluster.clone());
    let hash = forward
        .hash_source_ip
        .then(|| hash_text(&peer.ip().to_string()));
    let host = match &cluster.original_dst {
        None => cluster.balancer.pick(hash),
        // Where the client was going, unless that is this proxy (then the connection closes).
        Some(hosts) => original_dst::destination(original, local, &snapshot)
            .ok()
            .map(|destination| hosts.host_for(destination, Instant::now())),
    };
    let Some(host) = host else {
        entry.flags = Some("UH");
        return;
    };
    entry.upstream_host = Some(host.address);
    let connect_timeout = cluster.cluster.connect_timeout;
    let mut upstream = None;
    for address in std::iter::once(host.address).chain(host.fallback.iter().copied()) {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await
        {
            entry.upstream_host = Some(address);
            upstream = Some(stream);
            break;
        }
    }
    let Some(mut upstream) = upstream else {
        entry.flags = Some("UF");
        let mut downstream = downstream;
        let _ = downstream.shutdown().await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    if let Some(version) = cluster.cluster.proxy_protocol {
        // Before TLS or the client's bytes, as Envoy's upstream_proxy_protocol socket.
        let header = proxy_protocol::header(version, peer, local);
        if upstream.write_all(&header).await.is_err() {
            entry.flags = Some("UF");
            return;
        }
    }
    let idle = forward
        .idle_timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_IDLE);
    let (received, sent) = match &cluster.cluster.tls {
        None => copy_both_ways(downstream, upstream, idle).await,
        Some(tls) => {
            // An SSL backend: TLS to it, with the SNI the context names (if any).
            let origination = TlsOrigination::new(tls, tls.sni.clone());
            let host = host.address.ip().to_string();
            match origination.connect(upstream, &host).await {
                Ok(upstream) => copy_both_ways(downstream, upstream, idle).await,
                Err(error) => {
                    tracing::debug!(%error, "TLS to the backend failed");
                    entry.flags = Some("UF");
                    return;
                }
            }
        }
    };
    entry.bytes_received = received;
    entry.bytes_sent = sent;
}

/// Copies both ways until both directions end: the bytes from the client, and to it.
async fn copy_both_ways(
    downstream: impl AsyncRead + AsyncWrite + Unpin,
    upstream: impl AsyncRead + AsyncWrite + Unpin,
    idle: Duration,
) -> (u64, u64) {
    let (mut down_read, mut down_write) = tokio::io::split(downstream);
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    tokio::join!(
        copy_until_idle(&mut down_read, &mut up_write, idle),
        copy_until_idle(&mut up_read, &mut down_write, idle),
    )
}

/// Copies until end of stream, an error, or `idle` without a byte; then closes the writer.
/// Returns the bytes written.
async fn copy_until_idle(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    idle: Duration,
) -> u64 {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut copied = 0u64;
    loop {
        match tokio::time::timeout(idle, reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                if writer.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
                copied += n as u64;
            }
        }
    }
    let _ = writer.shutdown().await;
    copied
}
