//! The sidecar's HTTP/1.1 upstream connections, kept by the worker thread that made them
//! (each worker runs its own single-threaded runtime, proxy/workers.rs): a request takes a
//! connection of its pool to its endpoint that is free, else opens one, and the connection
//! stays listed while it serves, so that it is free again as soon as its answer is read,
//! without the task hyper-util's shared pool spawns per request to hand it back. A kept
//! connection that closed while free gets the request again on a new one, as hyper-util's
//! pool retries a request it never sent.
//!
//! A request without a body or an upgrade goes out on a connection driven from its own task
//! (proxy/http1_exchange.rs), which is out of the list while its answer is read and comes
//! back when the answer's body has been read; other requests go through hyper's client, whose
//! connection task drives them. A free connection of either kind takes a request of either
//! kind: one of the sidecar's own goes to hyper's client for a request that needs hyper.
//!
//! A pool's connections carry at most `max_requests` requests (proxy/http2_pool.rs keeps
//! that count for HTTP/2) and close after `idle_timeout` free, checked by one sweep per
//! thread while it holds any.
//!
//! Must not: pick endpoints or change requests beyond their target's form (origin-form, the
//! endpoint's name kept to connect to); HTTP/2 has its own (proxy/http2_pool.rs).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use http::{header, HeaderValue, Method, Request, Response, Uri};
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;
use tower_service::Service;

use super::http1_codec::encode_request_head;
use super::http1_exchange::{
    ExchangeError, Homecoming, InlineBody, InlineConnection, UpstreamResponseBody,
};
use super::request_body::UpstreamBody;
use super::upstream_tls::{UpstreamConnector, UpstreamIo};

/// An upstream answer's body, from either kind of connection.
pub type ResponseBody = UpstreamResponseBody<Home>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One pool's settings; its connections are kept by each worker thread apart.
#[derive(Clone)]
pub struct Http1Pool(Arc<Settings>);

struct Settings {
    /// Tells this pool's connections from another's in a thread's list.
    id: u64,
    connector: UpstreamConnector,
    idle_timeout: Duration,
    max_bytes_buffered: usize,
    max_requests: Option<u32>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum Http1Error {
    /// No connection could be opened.
    Connect(BoxError),
    /// The connection failed before the answer's head was read.
    Exchange(hyper::Error),
    /// The same, on a connection driven here.
    Inline(ExchangeError),
    /// The request had no endpoint to go to.
    NoEndpoint,
}

impl std::fmt::Display for Http1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Http1Error::Connect(error) => write!(f, "connect: {error}"),
            Http1Error::Exchange(error) => write!(f, "{error}"),
            Http1Error::Inline(error) => write!(f, "{error}"),
            Http1Error::NoEndpoint => f.write_str("no endpoint in the request's target"),
        }
    }
}

impl std::error::Error for Http1Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Http1Error::Connect(error) => Some(error.as_ref()),
            Http1Error::Exchange(error) => Some(error),
            Http1Error::Inline(error) => Some(error),
            Http1Error::NoEndpoint => None,
        }
    }
}

/// A connection kept by a thread.
struct Kept {
    link: Link,
    /// The requests it may still carry, when its pool limits them.
    left: Option<u32>,
    /// When it last took a request.
    last_used: Instant,
    idle_timeout: Duration,
}

/// How a kept connection is driven.
enum Link {
    /// By hyper's client, from a task of its own; listed while busy.
    Hyper(SendRequest<UpstreamBody>),
    /// From the task of the request it carries; listed only while free.
    Inline(InlineConnection),
}

impl Link {
    /// Whether the connection has closed (for one of the sidecar's own, while free).
    fn is_closed(&mut self) -> bool {
        match self {
            Link::Hyper(sender) => sender.is_closed(),
            Link::Inline(connection) => connection.closed_while_free(),
        }
    }

    /// Whether it can take a request now.
    fn is_free(&self) -> bool {
        match self {
            Link::Hyper(sender) => sender.is_ready(),
            Link::Inline(_) => true,
        }
    }
}

/// Where a connection of the sidecar's own goes back once its answer's body is read.
pub struct Home {
    key: EndpointKey,
    left: Option<u32>,
    idle_timeout: Duration,
}

impl Homecoming for Home {
    fn give_back(self, connection: InlineConnection) {
        let kept = Kept {
            link: Link::Inline(connection),
            left: self.left,
            last_used: Instant::now(),
            idle_timeout: self.idle_timeout,
        };
        list(&self.key, kept);
    }
}

/// A pool (its id) and an endpoint (its name, made by proxy/endpoint_names.rs, so always in
/// one case): hashed in one pass over the name, where `Authority` hashes byte by byte.
#[derive(Clone)]
struct EndpointKey(u64, Authority);

impl std::hash::Hash for EndpointKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
        state.write(self.1.as_str().as_bytes());
    }
}

impl PartialEq for EndpointKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.1.as_str() == other.1.as_str()
    }
}

impl Eq for EndpointKey {}

/// One thread's connections by pool and endpoint.
#[derive(Default)]
struct ThreadConnections {
    /// Least recently sent on first: the likeliest to be free again.
    by_endpoint: HashMap<EndpointKey, VecDeque<Kept>>,
    /// Whether this thread's sweep is running.
    sweeping: bool,
}

thread_local! {
    /// Shared only with this thread's sweep, which may run on another thread of a runtime
    /// with several (never under contention on a worker's own single-threaded runtime).
    static CONNECTIONS: Arc<Mutex<ThreadConnections>> = Arc::default();
}

/// This thread's connections.
fn thread_connections() -> Arc<Mutex<ThreadConnections>> {
    CONNECTIONS.with(Arc::clone)
}

impl Http1Pool {
    pub fn new(
        connector: UpstreamConnector,
        idle_timeout: Duration,
        max_bytes_buffered: usize,
        max_requests: Option<u32>,
    ) -> Http1Pool {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Http1Pool(Arc::new(Settings {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connector,
            idle_timeout,
            max_bytes_buffered,
            max_requests,
        }))
    }

    /// Sends `request` (its target names the endpoint) on a free connection of this pool to
    /// that endpoint, else on a new one; the backend's answer, its body still to be read.
    /// A request that goes through hyper's client is taken from behind the reference as it
    /// is sent (the futures that lead here hold a pointer to it, not a copy each); one sent
    /// on a connection driven here is left where it is.
    pub async fn request(
        &self,
        request: &mut Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, Http1Error> {
        let endpoint = origin_form(request)?;
        let key = EndpointKey(self.0.id, endpoint);
        let inline = sendable_inline(request);
        // After a kept connection turned out closed, the request goes on a new one.
        let mut fresh_only = false;
        loop {
            let free = match fresh_only {
                true => None,
                false => self.take_free(&key),
            };
            let (mut kept, reused) = match free {
                Some(kept) => (kept, true),
                None => (self.open(&key.1, inline).await?, false),
            };
            if inline {
                if let Link::Inline(connection) = kept.link {
                    return self.send_inline(key, connection, kept.left, request).await;
                }
            }
            if let Link::Inline(connection) = kept.link {
                kept.link = Link::Hyper(self.handshake(connection.into_io()).await?);
            }
            let Link::Hyper(sender) = &mut kept.link else {
                unreachable!("made a hyper link just above");
            };
            let sent = sender.try_send_request(std::mem::take(request));
            self.keep(&key, kept);
            match sent.await {
                Ok(response) => return Ok(response.map(UpstreamResponseBody::Hyper)),
                // A kept connection that closed before it took the request: again on another.
                Err(mut error) if reused => match error.take_message() {
                    Some(unsent) => {
                        *request = unsent;
                        fresh_only = true;
                    }
                    None => return Err(Http1Error::Exchange(error.into_error())),
                },
                Err(error) => return Err(Http1Error::Exchange(error.into_error())),
            }
        }
    }

    /// Sends `request` (without a body) on `connection`, driven from this task; the
    /// connection comes back to the thread's list when the answer's body has been read.
    async fn send_inline(
        &self,
        key: EndpointKey,
        mut connection: InlineConnection,
        left: Option<u32>,
        request: &Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, Http1Error> {
        let left = left.map(|left| left - 1);
        let mut head = Vec::new();
        encode_request_head(request, &mut head);
        let most_bytes = self.0.max_bytes_buffered;
        let (response, framing, keep_alive) = connection
            .exchange(&head, request.method(), most_bytes)
            .await
            .map_err(Http1Error::Inline)?;
        let home = (keep_alive && left != Some(0) && !closes(request)).then(|| Home {
            key,
            left,
            idle_timeout: self.0.idle_timeout,
        });
        let body = InlineBody::new(connection, framing, home, most_bytes);
        Ok(response.map(|()| UpstreamResponseBody::Inline(body)))
    }

    /// A free connection of this pool to `key`'s endpoint, taken out of the thread's list
    /// (one of hyper's goes back with [`Self::keep`], one of the sidecar's own when its answer
    /// is read); closed ones met on the way are dropped, busy ones go to the back, so that the
    /// front stays the likeliest to be free.
    fn take_free(&self, key: &EndpointKey) -> Option<Kept> {
        CONNECTIONS.with(|connections| {
            let mut connections = connections.lock().unwrap_or_else(|e| e.into_inner());
            let list = connections.by_endpoint.get_mut(key)?;
            for _ in 0..list.len() {
                let mut kept = list.pop_front()?;
                if kept.link.is_closed() {
                    continue;
                }
                if kept.link.is_free() {
                    return Some(kept);
                }
                list.push_back(kept);
            }
            None
        })
    }

    /// Lists `kept`, one of hyper's which has just taken a request, unless that was the last
    /// it may carry (dropped, it closes once its answer is read).
    fn keep(&self, key: &EndpointKey, mut kept: Kept) {
        kept.last_used = Instant::now();
        if let Some(left) = &mut kept.left {
            *left -= 1;
            if *left == 0 {
                return;
            }
        }
        list(key, kept);
    }

    /// A new connection to `endpoint`: one driven here for a request that can be, else one
    /// whose exchanges hyper's client drives from a task of their own.
    async fn open(&self, endpoint: &Authority, inline: bool) -> Result<Kept, Http1Error> {
        let target = Uri::builder()
            .scheme("http")
            .authority(endpoint.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| Http1Error::NoEndpoint)?;
        let mut connector = self.0.connector.clone();
        let io = connector.call(target).await.map_err(Http1Error::Connect)?;
        let link = match inline {
            true => Link::Inline(InlineConnection::new(io)),
            false => Link::Hyper(self.handshake(io).await?),
        };
        Ok(Kept {
            link,
            left: self.0.max_requests,
            last_used: Instant::now(),
            idle_timeout: self.0.idle_timeout,
        })
    }

    /// Hands `io` to hyper's client, its exchanges driven by a task of their own.
    async fn handshake(&self, io: UpstreamIo) -> Result<SendRequest<UpstreamBody>, Http1Error> {
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(self.0.max_bytes_buffered)
            .handshake(io)
            .await
            .map_err(|error| Http1Error::Connect(Box::new(error)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// Lists `kept` in this thread's connections to `key`, starting the thread's sweep if it
/// was not running.
fn list(key: &EndpointKey, kept: Kept) {
    let start_sweep = CONNECTIONS.with(|connections| {
        let mut connections = connections.lock().unwrap_or_else(|e| e.into_inner());
        match connections.by_endpoint.get_mut(key) {
            Some(list) => list.push_back(kept),
            None => {
                connections
                    .by_endpoint
                    .insert(key.clone(), VecDeque::from([kept]));
            }
        }
        !std::mem::replace(&mut connections.sweeping, true)
    });
    if start_sweep {
        tokio::spawn(sweep(thread_connections()));
    }
}

/// Whether `request` can go out on a connection driven here: no body to send (hyper's
/// client writes none for it either) and nothing that may switch the connection to another
/// protocol.
fn sendable_inline(request: &Request<UpstreamBody>) -> bool {
    use http_body::Body;
    request.body().is_end_stream()
        && request.method() != Method::CONNECT
        && !request.headers().contains_key(header::UPGRADE)
        && !request.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Whether `request` asks for its connection to close after the answer.
fn closes(request: &Request<UpstreamBody>) -> bool {
    request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| {
            value
                .as_bytes()
                .split(|byte| *byte == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
        })
}

/// Puts `request`'s target in origin-form and returns the endpoint it named; a request
/// without a Host gets the endpoint's, as hyper-util's client gives it.
fn origin_form(request: &mut Request<UpstreamBody>) -> Result<Authority, Http1Error> {
    let mut target = std::mem::take(request.uri_mut()).into_parts();
    let endpoint = target.authority.take().ok_or(Http1Error::NoEndpoint)?;
    target.scheme = None;
    if target.path_and_query.is_none() {
        target.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *request.uri_mut() = Uri::from_parts(target).map_err(|_| Http1Error::NoEndpoint)?;
    if !request.headers().contains_key(header::HOST) {
        if let Ok(host) = HeaderValue::from_str(endpoint.as_str()) {
            request.headers_mut().insert(header::HOST, host);
        }
    }
    Ok(endpoint)
}

/// How often a thread's sweep looks for connections free past their idle timeout, at most.
const LONGEST_SWEEP: Duration = Duration::from_secs(30);

/// Closes a thread's connections that have been free past their pool's idle timeout and
/// forgets closed ones, as long as the thread keeps any; then ends (the next kept connection
/// starts it again).
async fn sweep(connections: Arc<Mutex<ThreadConnections>>) {
    loop {
        let next = {
            let mut connections = connections.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let mut next = now + LONGEST_SWEEP;
            connections.by_endpoint.retain(|_, list| {
                list.retain_mut(|kept| {
                    let expires = kept.last_used + kept.idle_timeout;
                    let free = kept.link.is_free();
                    let keep = !(kept.link.is_closed() || free && expires <= now);
                    if keep {
                        // A busy one is looked at again within its timeout of now.
                        next = next.min(if free {
                            expires
                        } else {
                            now + kept.idle_timeout
                        });
                    }
                    keep
                });
                !list.is_empty()
            });
            if connections.by_endpoint.is_empty() {
                connections.sweeping = false;
                None
            } else {
                Some(next)
            }
        };
        match next {
            Some(next) => tokio::time::sleep_until(next).await,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::proxy::endpoint_names::{name_of, EndpointNames};
    use crate::proxy::test_backends;

    /// A backend on loopback answering `ok` to each request head, counting the connections
    /// it accepted and the ones that were closed on it.
    async fn backend() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (address, counts) = test_backends::counting(|mut stream| async move {
            let mut buffer = [0u8; 4096];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        (address, counts.accepted, counts.ended)
    }

    fn pool(idle_timeout: Duration, max_requests: Option<u32>) -> Http1Pool {
        let connector = UpstreamConnector {
            tcp: HttpConnector::new_with_resolver(EndpointNames),
            tls: None,
            endpoint: None,
        };
        Http1Pool::new(connector, idle_timeout, 8192, max_requests)
    }

    /// GET / to the endpoint at `address` through `pool`, its body read to the end.
    async fn get(pool: &Http1Pool, address: SocketAddr) -> String {
        let target = format!("http://{}/", name_of(&[address]));
        let mut request = Request::get(target)
            .header(header::HOST, "example.test")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        let response = pool.request(&mut request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sequential_requests_share_a_connection_up_to_its_request_limit() {
        let (address, accepted, _) = backend().await;
        let unlimited = pool(Duration::from_secs(600), None);
        for _ in 0..5 {
            assert_eq!(get(&unlimited, address).await, "ok");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for 5 requests"
        );
        let limited = pool(Duration::from_secs(600), Some(2));
        for _ in 0..5 {
            assert_eq!(get(&limited, address).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1 + 3, "2 + 2 + 1 requests");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_free_past_its_idle_timeout_is_closed() {
        let (address, accepted, closed) = backend().await;
        let idle = Duration::from_millis(200);
        let quick = pool(idle, None);
        assert_eq!(get(&quick, address).await, "ok");
        test_backends::closed_after_idle(&closed, idle, std::time::Instant::now()).await;
        assert_eq!(get(&quick, address).await, "ok", "a new one replaces it");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// A backend on loopback that answers each request as its path says (see `answer`),
    /// reading a request body by its Content-Length.
    async fn scripted_backend() -> (SocketAddr, Arc<AtomicUsize>) {
        let (address, counts) = test_backends::counting(|mut stream| async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                    }
                    continue;
                };
                let (method, path, length) = {
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut request = httparse::Request::new(&mut headers);
                    request.parse(&buffer).unwrap();
                    let length = request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |h| {
                            std::str::from_utf8(h.value).unwrap().parse().unwrap()
                        });
                    let method = request.method.unwrap().to_string();
                    (method, request.path.unwrap().to_string(), length)
                };
                while buffer.len() < head_end + 4 + length {
                    let read = stream.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                }
                buffer.drain(..head_end + 4 + length);
                let (answer, then_close) = answer(&method, &path);
                if stream.write_all(answer.as_bytes()).await.is_err() || then_close {
                    return;
                }
            }
        })
        .await;
        (address, counts.accepted)
    }

    /// The answer to `method` `path`, and whether the backend closes the connection after it.
    fn answer(method: &str, path: &str) -> (String, bool) {
        match (method, path) {
            ("HEAD", _) => ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n".into(), false),
            (_, "/chunked") => (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n"
                    .into(),
                false,
            ),
            (_, "/until-close") => ("HTTP/1.0 200 OK\r\n\r\nbye".into(), true),
            (_, "/silent-close") => (
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into(),
                true,
            ),
            (_, "/extra") => (
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n".into(),
                false,
            ),
            (_, "/no-content") => ("HTTP/1.1 204 No Content\r\n\r\n".into(), false),
            _ => (
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into(),
                false,
            ),
        }
    }

    /// `method` `path` (with `body`) to the endpoint at `address` through `pool`: the status,
    /// the body and the trailers.
    async fn send(
        pool: &Http1Pool,
        address: SocketAddr,
        method: &str,
        path: &str,
        body: &'static str,
    ) -> (u16, String, Option<http::HeaderMap>) {
        use http_body_util::Full;
        let target = format!("http://{}{path}", name_of(&[address]));
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, "example.test");
        if !body.is_empty() {
            request = request.header(header::CONTENT_LENGTH, body.len());
        }
        let body = Full::new(bytes::Bytes::from_static(body.as_bytes()));
        let mut request = request
            .body(body.map_err(|never| match never {}).boxed())
            .unwrap();
        let response = pool.request(&mut request).await.unwrap();
        let status = response.status().as_u16();
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        let text = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
        (status, text, trailers)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_read_here_are_whole_and_their_connection_reused_only_when_it_may_be() {
        let (address, accepted) = scripted_backend().await;
        let pool = pool(Duration::from_secs(600), None);
        let connections = || accepted.load(Ordering::SeqCst);
        assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
        assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
        assert_eq!(
            connections(),
            1,
            "a Content-Length answer leaves it reusable"
        );
        let (_, body, trailers) = send(&pool, address, "GET", "/chunked", "").await;
        assert_eq!(body, "hello world");
        assert_eq!(trailers.unwrap()["x-sum"], "11");
        assert_eq!(send(&pool, address, "HEAD", "/", "").await.1, "");
        assert_eq!(send(&pool, address, "GET", "/no-content", "").await.0, 204);
        assert_eq!(
            connections(),
            1,
            "chunked, HEAD and 204 answers leave it reusable"
        );
        assert_eq!(
            send(&pool, address, "GET", "/until-close", "").await.1,
            "bye"
        );
        assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
        assert_eq!(
            connections(),
            2,
            "a body read until the close ends its connection"
        );
        assert_eq!(send(&pool, address, "GET", "/extra", "").await.1, "ok");
        assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
        assert_eq!(connections(), 3, "bytes past an answer's end: not reused");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_the_backend_closed_while_free_is_not_used() {
        let (address, accepted) = scripted_backend().await;
        let pool = pool(Duration::from_secs(600), None);
        assert_eq!(
            send(&pool, address, "GET", "/silent-close", "").await.1,
            "ok"
        );
        // Time for the backend's FIN to arrive and the runtime to see it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_with_a_body_takes_a_free_connection_for_hyper_to_drive() {
        let (address, accepted) = scripted_backend().await;
        let pool = pool(Duration::from_secs(600), None);
        assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
        assert_eq!(send(&pool, address, "POST", "/", "a body").await.1, "ok");
        assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection throughout"
        );
    }
}
