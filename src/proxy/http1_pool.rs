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

use super::http1_codec::has_token;
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
    /// is sent (the futures that lead here hold a pointer to it, not a copy each). One that
    /// [`sends_in_place`] is left where it is, but for its target in origin-form and a Host
    /// when it had none, whichever connection it takes (hyper's then gets a copy).
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
            let sent = match inline {
                true => sender.try_send_request(copy_without_body(request)),
                false => sender.try_send_request(std::mem::take(request)),
            };
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
        let most_bytes = self.0.max_bytes_buffered;
        let (response, framing, keep_alive) = connection
            .exchange(request, most_bytes)
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
            .handshake(hyper_util::rt::TokioIo::new(io))
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
    sends_in_place(request.method(), request.headers(), request.body())
}

/// Whether a request with this method, headers and body is sent without being taken: one
/// without a body or an upgrade (see [`Http1Pool::request`]).
pub fn sends_in_place(method: &Method, headers: &http::HeaderMap, body: &UpstreamBody) -> bool {
    use http_body::Body;
    body.is_end_stream()
        && method != Method::CONNECT
        && !headers.contains_key(header::UPGRADE)
        && !headers.contains_key(header::TRANSFER_ENCODING)
}

/// A copy of `request`, which has no body, for hyper's client to take.
fn copy_without_body(request: &Request<UpstreamBody>) -> Request<UpstreamBody> {
    let mut copy = Request::new(super::request_body::empty());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

/// Whether `request` asks for its connection to close after the answer.
fn closes(request: &Request<UpstreamBody>) -> bool {
    request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| has_token(value, "close"))
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
#[path = "http1_pool_tests.rs"]
mod tests;
