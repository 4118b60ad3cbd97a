//! The xDS port's accept loop: connections counted per peer address and in total (over a
//! limit, a connection is closed at once and the refusal counted), an idle timeout (a
//! connection from which nothing is read — not even the answer to the server's keepalive
//! pings — is closed), and backoff when accepting fails (running out of file descriptors
//! must not spin a core). Each connection carries [`ConnectionInfo`] to the services: its
//! addresses and a count of its open streams.
//! Must not: look inside the bytes (HTTP/2 and gRPC are hyper's and tonic's).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::limits::{Refusal, Refusals, XdsLimits};

/// What the services know of a stream's connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
    /// Streams open on this connection.
    pub streams: Arc<AtomicUsize>,
}

/// Open connections, by peer address.
#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// A connection's place in the counts, given back when it closes.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(count) = counts.per_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                counts.per_peer.remove(&self.peer);
            }
        }
    }
}

/// An accepted connection.
pub struct XdsConnection {
    stream: TcpStream,
    info: ConnectionInfo,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    refusals: Arc<Refusals>,
    _slot: Slot,
}

impl Connected for XdsConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for XdsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > filled => {
                let deadline = Instant::now() + self.idle_timeout;
                self.idle.as_mut().reset(deadline);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.idle.as_mut().poll(cx).is_ready() => {
                self.refusals.count(Refusal::IdleConnections);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing was read from the connection for the idle timeout",
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for XdsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` within `limits` until `shutdown`; the stream of
/// accepted connections never yields an error (failures are handled here).
pub fn accept(
    listener: TcpListener,
    limits: XdsLimits,
    refusals: Arc<Refusals>,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<XdsConnection, io::Error>> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let mut backoff = Duration::ZERO;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => {
                    backoff = Duration::ZERO;
                    accepted
                }
                Err(error) => {
                    refusals.count(Refusal::AcceptErrors);
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tracing::debug!(%error, ?backoff, "accepting a connection failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let Some(slot) = take_slot(&counts, peer.ip(), &limits, &refusals) else {
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = XdsConnection {
                info: ConnectionInfo {
                    local_addr: stream.local_addr().ok(),
                    remote_addr: Some(peer),
                    streams: Arc::new(AtomicUsize::new(0)),
                },
                stream,
                idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                idle_timeout: limits.idle_timeout,
                refusals: refusals.clone(),
                _slot: slot,
            };
            if sender.send(Ok(connection)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}

fn take_slot(
    counts: &Arc<Mutex<Counts>>,
    peer: IpAddr,
    limits: &XdsLimits,
    refusals: &Refusals,
) -> Option<Slot> {
    let mut locked = counts.lock().unwrap_or_else(|e| e.into_inner());
    if locked.total >= limits.max_connections {
        refusals.count(Refusal::Connections);
        return None;
    }
    let per_peer = locked.per_peer.entry(peer).or_default();
    if *per_peer >= limits.max_connections_per_peer {
        refusals.count(Refusal::ConnectionsPerPeer);
        return None;
    }
    *per_peer += 1;
    locked.total += 1;
    Some(Slot {
        counts: counts.clone(),
        peer,
    })
}
