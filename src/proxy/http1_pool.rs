//! The sidecar's HTTP/1.1 upstream connections, kept by the worker thread that made them
//! (each worker runs its own single-threaded runtime, proxy/workers.rs): a request takes a
//! connection of its pool to its endpoint that is free, else opens one, and the connection
//! stays listed while it serves, so that it is free again as soon as its answer is read,
//! without the task hyper-util's shared pool spawns per request to hand it back. A kept
//! connection that closed while free gets the request again on a new one, as hyper-util's
//! pool retries a request it never sent.
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
use http::{header, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;
use tower_service::Service;

use super::request_body::UpstreamBody;
use super::upstream_tls::UpstreamConnector;

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
    /// The request had no endpoint to go to.
    NoEndpoint,
}

impl std::fmt::Display for Http1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Http1Error::Connect(error) => write!(f, "connect: {error}"),
            Http1Error::Exchange(error) => write!(f, "{error}"),
            Http1Error::NoEndpoint => f.write_str("no endpoint in the request's target"),
        }
    }
}

impl std::error::Error for Http1Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Http1Error::Connect(error) => Some(error.as_ref()),
            Http1Error::Exchange(error) => Some(error),
            Http1Error::NoEndpoint => None,
        }
    }
}

/// A connection kept by a thread.
struct Kept {
    sender: SendRequest<UpstreamBody>,
    /// The requests it may still carry, when its pool limits them.
    left: Option<u32>,
    /// When it last took a request.
    last_used: Instant,
    idle_timeout: Duration,
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
    /// The request is taken from behind the reference as it is sent: the futures that lead
    /// here hold a pointer to it, not a copy each.
    pub async fn request(
        &self,
        request: &mut Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Http1Error> {
        let endpoint = origin_form(request)?;
        let key = EndpointKey(self.0.id, endpoint);
        // After a kept connection turned out closed, the request goes on a new one.
        let mut fresh_only = false;
        loop {
            let free = match fresh_only {
                true => None,
                false => self.take_free(&key),
            };
            let (sent, reused) = match free {
                Some(mut kept) => {
                    let sent = kept.sender.try_send_request(std::mem::take(request));
                    self.keep(&key, kept);
                    (sent, true)
                }
                None => {
                    let mut kept = self.open(&key.1).await?;
                    let sent = kept.sender.try_send_request(std::mem::take(request));
                    self.keep(&key, kept);
                    (sent, false)
                }
            };
            match sent.await {
                Ok(response) => return Ok(response),
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

    /// A connection of this pool to `key`'s endpoint that can take a request now, taken out
    /// of the thread's list (it goes back with [`Self::keep`]); closed ones met on the way are
    /// dropped, busy ones go to the back, so that the front stays the likeliest to be free.
    fn take_free(&self, key: &EndpointKey) -> Option<Kept> {
        CONNECTIONS.with(|connections| {
            let mut connections = connections.lock().unwrap_or_else(|e| e.into_inner());
            let list = connections.by_endpoint.get_mut(key)?;
            for _ in 0..list.len() {
                let kept = list.pop_front()?;
                if kept.sender.is_closed() {
                    continue;
                }
                if kept.sender.is_ready() {
                    return Some(kept);
                }
                list.push_back(kept);
            }
            None
        })
    }

    /// Lists `kept`, which has just taken a request, unless that was the last it may carry
    /// (dropped, it closes once its answer is read).
    fn keep(&self, key: &EndpointKey, mut kept: Kept) {
        kept.last_used = Instant::now();
        if let Some(left) = &mut kept.left {
            *left -= 1;
            if *left == 0 {
                return;
            }
        }
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

    /// A new connection to `endpoint`, its exchanges driven by a task of their own.
    async fn open(&self, endpoint: &Authority) -> Result<Kept, Http1Error> {
        let target = Uri::builder()
            .scheme("http")
            .authority(endpoint.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| Http1Error::NoEndpoint)?;
        let mut connector = self.0.connector.clone();
        let io = connector.call(target).await.map_err(Http1Error::Connect)?;
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
        Ok(Kept {
            sender,
            left: self.0.max_requests,
            last_used: Instant::now(),
            idle_timeout: self.0.idle_timeout,
        })
    }
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
                list.retain(|kept| {
                    let expires = kept.last_used + kept.idle_timeout;
                    let free = kept.sender.is_ready();
                    let keep = !(kept.sender.is_closed() || free && expires <= now);
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
}
