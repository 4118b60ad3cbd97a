//! Accepted HTTP connections: HTTP/2 by prior knowledge (the client preface) or HTTP/1.1 with
//! keep-alive, each request handed to the request handler in proxy/http.rs.
//!
//! An idle HTTP/1.1 connection holds no buffers, plain or TLS. hyper keeps a read and a write
//! buffer (8 KiB or more each) for as long as its connection object lives, so a connection
//! here is served by a hyper connection per run of exchanges: once a body-less request has
//! been answered and the client has sent nothing more for 20 ms (proxy/lingering.rs), hyper is
//! asked to stop, hands the socket back with any bytes it had already read, and the socket
//! waits for the client's next request with nothing allocated but itself
//! (proxy/between_exchanges.rs). A busy client keeps its hyper connection. Requests with a body, pipelined requests
//! and upgrades stay inside one hyper connection until a plain exchange ends. A request whose
//! head asks for an upgrade the listener allows (WebSocket) is served by a hyper connection
//! that owns the socket, since the upgraded exchange takes the socket over.
//!
//! A listener that sets the connection manager's timeouts gets its clocks here
//! (proxy/timeouts.rs): each request races its stream idle clock, a request head that stops
//! arriving is answered 408 on the socket, and a connection with an idle timeout or a max
//! duration is served beside its clock, which drains and then closes it.
//!
//! Must not: route or forward; that is proxy/http.rs.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::{header, Request, Response, Version};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::access_log_http;
use super::between_exchanges::{Idle, Rewind};
use super::config::ProxyConfig;
use super::http::{handle, Upstreams};
use super::lingering::{Exchanges, Watched, LINGER};
use super::request_body::{BodyFailure, DownstreamBody};
use super::resources::listener::HttpManager;
use super::rewrite::Connection;
use super::stats::STATS;
use super::timeouts::{head_timed_out_reply, ClientBody, ConnectionClock, StreamClock};
use super::tls_unbuffered::UnbufferedTlsStream;

type Handling = Pin<Box<dyn Future<Output = Result<Response<ClientBody>, Infallible>> + Send>>;

/// What a connection's requests need, shared by its exchanges.
#[derive(Clone)]
struct Handler {
    connection: Connection,
    manager: Arc<HttpManager>,
    config: watch::Receiver<Arc<ProxyConfig>>,
    upstreams: Upstreams,
    exchanges: Arc<Exchanges>,
    /// Where an HTTP/1 request body that fails to arrive is noted.
    body_failure: Arc<BodyFailure>,
    /// The connection's clock, when its listener limits connections.
    clock: Option<Arc<ConnectionClock>>,
}

impl hyper::service::Service<Request<Incoming>> for Handler {
    type Response = Response<ClientBody>;
    type Error = Infallible;
    type Future = Handling;

    fn call(&self, request: Request<Incoming>) -> Handling {
        let number = self.exchanges.started.fetch_add(1, Ordering::Relaxed) + 1;
        let plain = is_plain_exchange(&request);
        let http1 = request.version() <= Version::HTTP_11;
        let watched = http1 && !request.body().is_end_stream();
        let failure = watched.then(|| self.body_failure.clone());
        let open = self.clock.as_ref().map(ConnectionClock::stream_opened);
        let stream_clock = self.manager.timeouts.stream_idle.map(StreamClock::start);
        // Counted only for a listener that logs.
        let received = (!self.manager.access_logs.is_empty()).then(Default::default);
        let mut request = request.map(|body| {
            DownstreamBody::new(body, failure, stream_clock.clone()).counting(received.clone())
        });
        if let Some(clock) = stream_clock.as_ref().filter(|_| self.manager.websocket) {
            // A WebSocket tunnel idles out on the same clock.
            if super::upgrade::is_websocket_request(request.headers()) {
                request.extensions_mut().insert(clock.clone());
            }
        }
        let snapshot = self.config.borrow().clone();
        let handler = self.clone();
        // Boxed: the routing and forwarding state (about 4 KB) lives only per request.
        Box::pin(async move {
            // Pinned where it is made: awaited or raced by reference, not moved again (the
            // future is some KB, and each move is a copy of all of it).
            let handling = std::pin::pin!(handle(
                request,
                handler.connection.clone(),
                &handler.manager,
                &snapshot,
                &handler.upstreams,
            ));
            let mut response = match &stream_clock {
                None => handling.await,
                Some(clock) => tokio::select! {
                    response = handling => response,
                    () = clock.expired() => {
                        clock.timed_out_reply(http1, handler.manager.via.as_deref())
                    }
                },
            };
            if let Some(clock) = &stream_clock {
                clock.touch();
            }
            if let Some(received) = received {
                response = access_log_http::logged(response, handler.manager.clone(), received);
            }
            if http1
                && handler.draining()
                && response.status() != http::StatusCode::SWITCHING_PROTOCOLS
            {
                // As Envoy's connection manager tells an HTTP/1.1 client of a draining
                // connection.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            if plain && !asks_to_close(response.headers()) {
                handler
                    .exchanges
                    .releasable_after
                    .store(number, Ordering::Relaxed);
            }
            let deadline = response
                .extensions()
                .get::<super::stream_deadline::StreamDeadline>()
                .map(|deadline| deadline.0);
            Ok(response.map(|body| ClientBody::new(body, stream_clock, open).ending_by(deadline)))
        })
    }
}

impl Handler {
    /// Whether the connection's clock has started draining it.
    fn draining(&self) -> bool {
        self.clock
            .as_ref()
            .is_some_and(|clock| clock.draining.is_cancelled())
    }
}

/// An HTTP/1.1 request without a body, upgrade or `Connection: close`: once its response is
/// written, the connection is exactly between two requests.
fn is_plain_exchange(request: &Request<Incoming>) -> bool {
    request.version() == Version::HTTP_11
        && request.body().is_end_stream()
        && request.method() != http::Method::CONNECT
        && !request.headers().contains_key(header::UPGRADE)
        && !asks_to_close(request.headers())
}

fn asks_to_close(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// Serves one accepted connection until it closes, or until `drain` (the listener went away,
/// or the sidecar is stopping): then requests in flight finish, idle connections close and
/// HTTP/2 clients get a GOAWAY.
pub async fn serve_connection(
    stream: TcpStream,
    (peer, original_destination): (SocketAddr, Option<SocketAddr>),
    manager: Arc<HttpManager>,
    config: watch::Receiver<Arc<ProxyConfig>>,
    upstreams: Upstreams,
    drain: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let connection = Connection {
        original_destination,
        ..Connection::plain(peer, local)
    };
    let handler = Handler::new(connection, manager, config, upstreams);
    serve_with_clock(handler, drain, |handler, drain| {
        serve(stream, handler, drain)
    })
    .await;
}

/// Serves one connection whose TLS the listener terminated, as [`serve_connection`] does: HTTP/2
/// when the client chose `h2` by ALPN, else HTTP/1.1 with the socket handed back between
/// exchanges as a plain one is (hyper's 16 KiB of buffers are not kept by idle TLS clients).
pub async fn serve_tls_connection(
    stream: Box<UnbufferedTlsStream>,
    (peer, original_destination): (SocketAddr, Option<SocketAddr>),
    manager: Arc<HttpManager>,
    config: watch::Receiver<Arc<ProxyConfig>>,
    upstreams: Upstreams,
    drain: CancellationToken,
) {
    let tcp = stream.tcp();
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().unwrap_or(peer);
    let connection = Connection {
        original_destination,
        tls: true,
        session: Some(stream.session()),
        ..Connection::plain(peer, local)
    };
    let handler = Handler::new(connection, manager, config, upstreams);
    serve_with_clock(handler, drain, |handler, drain| async move {
        // The handshake is the client speaking.
        if let Some(clock) = &handler.clock {
            clock.note_client_spoke();
        }
        if stream.alpn_protocol() == Some(b"h2") {
            Box::pin(serve_http2(stream, handler, drain)).await
        } else {
            serve_http1_then_upgrade(stream, handler, drain).await
        }
    })
    .await;
}

impl Handler {
    fn new(
        connection: Connection,
        manager: Arc<HttpManager>,
        config: watch::Receiver<Arc<ProxyConfig>>,
        upstreams: Upstreams,
    ) -> Handler {
        Handler {
            connection,
            manager,
            config,
            upstreams,
            exchanges: Arc::default(),
            body_failure: Arc::default(),
            clock: None,
        }
    }
}

/// Runs `serve` on the connection, beside its clock when its listener limits connections
/// (the clock drains the connection, then closes it).
async fn serve_with_clock<F, Fut>(mut handler: Handler, drain: CancellationToken, serve: F)
where
    F: FnOnce(Handler, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let _counted = STATS.connection();
    if !handler.manager.timeouts.limit_connections() {
        return serve(handler, drain).await;
    }
    // Boxed: only a connection whose listener limits it carries room for its clock.
    let clock = ConnectionClock::start(handler.manager.timeouts, &drain);
    handler.clock = Some(clock.clone());
    Box::pin(async move {
        tokio::select! {
            () = serve(handler, clock.closing.clone()) => {}
            () = clock.run() => {}
        }
    })
    .await;
}

/// Serves the connection until it closes or `drain` is cancelled.
async fn serve(stream: TcpStream, handler: Handler, drain: CancellationToken) {
    let preface = starts_with_http2_preface(&stream, &drain).await;
    if let (Some(_), Some(clock)) = (preface, &handler.clock) {
        clock.note_client_spoke();
    }
    match preface {
        // Boxed: an HTTP/2 connection's state is large, and an HTTP/1 one should not carry
        // room for it.
        Some(true) => Box::pin(serve_http2(stream, handler, drain)).await,
        Some(false) => serve_http1_then_upgrade(stream, handler, drain).await,
        None => {}
    }
}

/// HTTP/1.1 with the socket handed back between exchanges, until a request asks for an
/// upgrade: the rest of the connection is then one hyper connection that owns the socket.
async fn serve_http1_then_upgrade<Io>(mut stream: Io, handler: Handler, drain: CancellationToken)
where
    Io: Idle + 'static,
{
    let upgrading = serve_http1(&mut stream, handler.clone(), drain.clone()).await;
    match upgrading {
        // Boxed, as HTTP/2 is: an idle connection's future should not carry room for a
        // hyper connection it does not have.
        Some(already_read) => {
            Box::pin(serve_upgradeable(stream, already_read, handler, drain)).await;
        }
        // hyper let go of the socket without shutting it down: a TLS client is owed its
        // close_notify before the FIN, or it sees a truncated stream.
        None => {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        }
    }
}

/// Resolves when the connection's clock starts draining it; never without a clock.
async fn clock_drains(clock: Option<Arc<ConnectionClock>>) {
    match clock {
        Some(clock) => clock.draining.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Whether the client opens with HTTP/2's preface (`PRI * HTTP/2.0…`; no HTTP/1 method is
/// PRI); None when it closes or the connection drains before saying anything.
async fn starts_with_http2_preface(stream: &TcpStream, drain: &CancellationToken) -> Option<bool> {
    const PREFACE: &[u8] = b"PRI ";
    let mut first = [0u8; 4];
    loop {
        let seen = tokio::select! {
            peeked = stream.peek(&mut first) => peeked.ok()?,
            _ = drain.cancelled() => return None,
        };
        if seen == 0 {
            return None;
        }
        if first[..seen] != PREFACE[..seen] {
            return Some(false);
        }
        if seen == PREFACE.len() {
            return Some(true);
        }
        // A few bytes of what may be the preface: wait for the rest.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

async fn serve_http2<Io>(stream: Io, handler: Handler, drain: CancellationToken)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    let draining = clock_drains(handler.clock.clone());
    let connection = builder.serve_connection(TokioIo::new(stream), handler);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = drain.cancelled() => {}
        // A GOAWAY, as Envoy's drain sequence starts for an HTTP/2 client.
        () = draining => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// HTTP/1.1: one hyper connection per run of exchanges, the socket alone between them. A run
/// lasts while the client's next request follows within [`LINGER`] (proxy/lingering.rs).
/// Returns the bytes already read when the next request asks for an upgrade the listener
/// allows: that request needs a hyper connection that owns the socket.
async fn serve_http1<Io: Idle>(
    stream: &mut Io,
    handler: Handler,
    drain: CancellationToken,
) -> Option<Bytes> {
    let mut already_read = Bytes::new();
    loop {
        if already_read.is_empty() {
            already_read = stream.next_request(&drain).await?;
        }
        if handler.manager.websocket && stream.next_head_asks_upgrade(&mut already_read).await {
            return Some(already_read);
        }
        let exchanges = handler.exchanges.clone();
        let watched = Watched::new(
            std::mem::take(&mut already_read),
            &mut *stream,
            &exchanges,
            handler.manager.websocket,
        );
        let before = watched.before();
        let mut connection = Box::pin(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(watched), handler.clone()),
        );
        let mut stopping = false;
        let mut draining = false;
        let cancelled = drain.cancelled();
        tokio::pin!(cancelled);
        // The stream idle clock of a request whose head is arriving (its first byte is in).
        let mut head_clock = handler
            .manager
            .timeouts
            .stream_idle
            .map(|timeout| Box::pin(tokio::time::sleep(timeout)));
        let mut head_timed_out = false;
        // How long the connection has waited past its last plain exchange, and for which one.
        let mut linger: Option<(u64, Pin<Box<tokio::time::Sleep>>)> = None;
        let finished = std::future::poll_fn(|cx| {
            if let Some(clock) = head_clock.as_mut() {
                if exchanges.started.load(Ordering::Relaxed) > before {
                    head_clock = None;
                } else if clock.as_mut().poll(cx).is_ready() {
                    head_timed_out = true;
                    return Poll::Ready(Ok(()));
                }
            }
            if !draining && cancelled.as_mut().poll(cx).is_ready() {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            let polled = connection.as_mut().get_mut().poll_without_shutdown(cx);
            if polled.is_pending() && !stopping && !draining {
                let held = exchanges.head_held.load(Ordering::Relaxed);
                // Only when the plain exchange is the last one hyper started: a pipelined
                // request behind it would otherwise be answered with `Connection: close`.
                if held || lingered(&mut linger, exchanges.past(before), cx) {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                    cx.waker().wake_by_ref();
                }
            }
            polled
        })
        .await;
        if head_timed_out {
            drop(connection);
            // Boxed: rare, and its reply need not be room in every idle connection.
            Box::pin(answer_head_timeout(stream, handler.manager.via.as_deref())).await;
            return None;
        }
        if finished.is_err() || !stopping || draining {
            return None;
        }
        let parts = Pin::into_inner(connection).into_parts();
        let held = parts.io.into_inner().into_held();
        // Copied out: even empty, hyper's bytes keep its whole read buffer alive.
        already_read = match held {
            None => Bytes::copy_from_slice(&parts.read_buf),
            Some(held) => [&parts.read_buf[..], &held[..]].concat().into(),
        };
    }
}

/// Whether the connection has waited [`LINGER`] past the plain exchange `past` (the last one
/// hyper started) with nothing more from its client. The clock is made once per hyper
/// connection and pushed on at each exchange (which only moves its deadline later).
fn lingered(
    linger: &mut Option<(u64, Pin<Box<tokio::time::Sleep>>)>,
    past: Option<u64>,
    cx: &mut std::task::Context<'_>,
) -> bool {
    let Some(past) = past else {
        return false;
    };
    match linger {
        Some((since, clock)) => {
            if *since != past {
                *since = past;
                clock.as_mut().reset(tokio::time::Instant::now() + LINGER);
            }
        }
        None => *linger = Some((past, Box::pin(tokio::time::sleep(LINGER)))),
    }
    let (_, clock) = linger.as_mut().expect("set above");
    clock.as_mut().poll(cx).is_ready()
}

/// Answers a request head that stopped arriving as Envoy does (408 `stream timeout`), and
/// closes the connection: what follows on it cannot be read as requests.
async fn answer_head_timeout<Io: Idle>(stream: &mut Io, via: Option<&str>) {
    use tokio::io::AsyncWriteExt;
    let reply = head_timed_out_reply(via, std::time::SystemTime::now());
    STATS.response(408);
    if stream.write_all(&reply).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// Serves the rest of a connection whose next request asks for an upgrade: one hyper
/// connection that owns the socket, so an upgraded exchange can take it over.
async fn serve_upgradeable<Io>(
    stream: Io,
    already_read: Bytes,
    handler: Handler,
    drain: CancellationToken,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Rewind {
        prefix: already_read,
        inner: ShutDownWhenDropped(Some(stream)),
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, handler)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = drain.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// A socket shut down (a TLS one with its close_notify) when hyper lets go of it. hyper does
/// not shut a connection down when it ends after a request that offered an upgrade it did not
/// take (`Upgrade: h2c`, or a WebSocket the backend refused), nor when an upgraded tunnel ends.
struct ShutDownWhenDropped<Io: AsyncWrite + Unpin + Send + 'static>(Option<Io>);

impl<Io: AsyncWrite + Unpin + Send + 'static> Drop for ShutDownWhenDropped<Io> {
    fn drop(&mut self) {
        if let Some(mut stream) = self.0.take() {
            tokio::spawn(async move {
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            });
        }
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for ShutDownWhenDropped<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut().expect("taken only when dropped")).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin + Send + 'static> AsyncWrite for ShutDownWhenDropped<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.0.as_mut().expect("taken only when dropped")).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.0.as_mut().expect("taken only when dropped")).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut().expect("taken only when dropped")).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut().expect("taken only when dropped")).poll_shutdown(cx)
    }
}
