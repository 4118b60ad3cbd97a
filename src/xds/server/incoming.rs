//! The xDS port's accept loop: connections counted per peer address and in total (over a
//! limit, a connection is closed at once and the refusal counted), an idle timeout (a
//! connection from which nothing is read — not even the answer to the server's keepalive
//! pings — is closed), and backoff when accepting fails (running out of file descriptors
//! must not spin a core), and the TLS handshake when the port has mTLS (done off the accept
//! loop, within [`HANDSHAKE_TIMEOUT`]). Each connection carries [`ConnectionInfo`] to the
//! services: its addresses, its client's identity and a count of its open streams.
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
use super::tls::{identity_of, TlsSettings};

/// What the services know of a stream's connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
    /// The identity in the client's certificate (mTLS only).
    pub identity: Option<Arc<str>>,
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

/// The bytes of a connection: plain, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection.
pub struct XdsConnection {
    stream: Transport,
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
        let read = match &mut self.stream {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        };
        match read {
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
        match &mut self.stream {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, data),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, data),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, data),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The most a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` within `limits` (with mTLS when `tls` is given) until
/// `shutdown`; the stream of accepted connections never yields an error (failures are
/// handled here).
pub fn accept(
    listener: TcpListener,
    limits: XdsLimits,
    refusals: Arc<Refusals>,
    tls: Option<Arc<TlsSettings>>,
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
            let info = ConnectionInfo {
                local_addr: stream.local_addr().ok(),
                remote_addr: Some(peer),
                identity: None,
                streams: Arc::new(AtomicUsize::new(0)),
            };
            let connection = XdsConnection {
                info,
                stream: Transport::Plain(stream),
                idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                idle_timeout: limits.idle_timeout,
                refusals: refusals.clone(),
                _slot: slot,
            };
            match &tls {
                None => {
                    if sender.send(Ok(connection)).await.is_err() {
                        return;
                    }
                }
                Some(tls) => {
                    let acceptor = tls.acceptor();
                    let sender = sender.clone();
                    let refusals = refusals.clone();
                    tokio::spawn(async move {
                        match handshake(connection, acceptor).await {
                            Ok(connection) => {
                                let _ = sender.send(Ok(connection)).await;
                            }
                            Err(error) => {
                                refusals.count(Refusal::TlsHandshakes);
                                tracing::debug!(%peer, %error, "a TLS handshake failed");
                            }
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// Completes the TLS handshake of a plain `connection` and reads its client's identity.
async fn handshake(
    mut connection: XdsConnection,
    acceptor: tokio_rustls::TlsAcceptor,
) -> io::Result<XdsConnection> {
    let Transport::Plain(stream) = connection.stream else {
        return Ok(connection);
    };
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake timed out"))??;
    connection.info.identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(identity_of);
    connection.stream = Transport::Tls(Box::new(tls));
    Ok(connection)
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
