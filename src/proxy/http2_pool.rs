//! HTTP/2 upstream connections: one per endpoint (of a cluster's pool), shared by every worker,
//! carrying each request as a stream. A request takes the endpoint's current connection, or
//! opens one (one at a time: requests that arrive meanwhile wait for it, and fail with it
//! if it fails, as Envoy fails the requests pending on a connection); a connection that
//! closed before it took the request gets it again on a new one. `max_requests_per_connection`
//! is counted as requests start, as Envoy counts; a connection that has carried its share, or
//! on which no request started for the pool's idle timeout, is no longer handed out and
//! closes once its last stream ends.
//!
//! In place of hyper-util's pooled client, which cloned itself and its connector, looked the
//! pool up by key and boxed a large future for every request: here a request clones one
//! handle under a short lock.
//!
//! Must not: choose the endpoint (the balancer did), or change the request.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;
use tower_service::Service;

use super::request_body::{BoxError, UpstreamBody};
use super::upstream_tls::UpstreamConnector;

/// One endpoint's HTTP/2 connection and how to open the next.
pub struct Http2Endpoint {
    connector: UpstreamConnector,
    settings: Settings,
    /// The connection requests take now, if any.
    current: Arc<Mutex<Option<Current>>>,
    /// Held while a connection is being opened: one handshake at a time per endpoint.
    opening: tokio::sync::Mutex<()>,
    /// When the last attempt to open one failed, and why.
    failed: Mutex<Option<(Instant, String)>>,
}

/// What every connection of an endpoint is opened with.
#[derive(Clone, Copy)]
pub struct Settings {
    pub idle_timeout: Duration,
    pub max_requests: Option<u32>,
    pub max_header_list_bytes: u32,
}

/// The connection requests take now.
struct Current {
    sender: http2::SendRequest<UpstreamBody>,
    /// Which connection this is (its idle watch looks for its own).
    number: u64,
    /// Requests it may still carry, under a limit.
    left: Option<u32>,
    last_started: Instant,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum Http2Error {
    /// No connection could be opened (TCP, TLS or the HTTP/2 handshake).
    Connect(BoxError),
    /// The connection failed or the stream was reset.
    Exchange(hyper::Error),
}

impl std::fmt::Display for Http2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Http2Error::Connect(error) => write!(f, "connect: {error}"),
            Http2Error::Exchange(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Http2Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Http2Error::Connect(error) => Some(error.as_ref()),
            Http2Error::Exchange(error) => Some(error),
        }
    }
}

impl Http2Endpoint {
    /// An endpoint whose connections `connector` opens (it names the endpoint).
    pub fn new(connector: UpstreamConnector, settings: Settings) -> Http2Endpoint {
        Http2Endpoint {
            connector,
            settings,
            current: Arc::default(),
            opening: tokio::sync::Mutex::new(()),
            failed: Mutex::default(),
        }
    }

    /// Sends `request` (taken from behind the reference as it goes) on the endpoint's
    /// connection; the backend's answer, its body still to come.
    pub async fn request(
        &self,
        request: &mut Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Http2Error> {
        let mut fresh_only = false;
        loop {
            let taken = match fresh_only {
                true => None,
                false => self.take_current(),
            };
            let (mut sender, reused) = match taken {
                Some(sender) => (sender, true),
                None => (self.open(fresh_only).await?, false),
            };
            match sender.try_send_request(std::mem::take(request)).await {
                Ok(response) => return Ok(response),
                // The connection closed before it took the request: again on a new one.
                Err(mut error) if reused => match error.take_message() {
                    Some(unsent) => {
                        *request = unsent;
                        fresh_only = true;
                    }
                    None => return Err(Http2Error::Exchange(error.into_error())),
                },
                Err(error) => return Err(Http2Error::Exchange(error.into_error())),
            }
        }
    }

    /// A handle on the current connection, counted as one request started on it; None when
    /// there is none open.
    fn take_current(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        let mut current = lock(&self.current);
        let open = current.as_mut()?;
        if open.sender.is_closed() {
            *current = None;
            return None;
        }
        let sender = open.sender.clone();
        open.last_started = Instant::now();
        if let Some(left) = &mut open.left {
            *left -= 1;
            if *left == 0 {
                // Its share is carried: the next request opens another.
                *current = None;
            }
        }
        Some(sender)
    }

    /// A new connection, made current (this request counted on it), unless another request
    /// opened one meanwhile and `fresh_only` is not asked; then that one. When an attempt to
    /// open one failed while this request waited for its turn, the request fails with it, as
    /// Envoy fails the requests pending on a connection it could not open: requests queued
    /// behind an endpoint that does not answer do not each wait out a connect timeout in turn.
    async fn open(&self, fresh_only: bool) -> Result<http2::SendRequest<UpstreamBody>, Http2Error> {
        let asked = Instant::now();
        let _opening = self.opening.lock().await;
        if !fresh_only {
            if let Some(sender) = self.take_current() {
                return Ok(sender);
            }
        }
        if let Some(failure) = lock(&self.failed)
            .as_ref()
            .filter(|(when, _)| *when >= asked)
        {
            return Err(Http2Error::Connect(failure.1.clone().into()));
        }
        let (sender, connection) = match self.handshake().await {
            Ok(opened) => opened,
            Err(error) => {
                *lock(&self.failed) = Some((Instant::now(), error.to_string()));
                return Err(Http2Error::Connect(error));
            }
        };
        let number = next_number();
        let left = self
            .settings
            .max_requests
            .map(|limit| limit.saturating_sub(1));
        if left != Some(0) {
            *lock(&self.current) = Some(Current {
                sender: sender.clone(),
                number,
                left,
                last_started: Instant::now(),
            });
        }
        let current = self.current.clone();
        let idle_timeout = self.settings.idle_timeout;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                result = &mut connection => result,
                // No longer handed out: driven on until its last stream ends (it closes
                // once every handle on it is gone).
                () = retire_when_idle(&current, number, idle_timeout) => connection.await,
            };
            if let Err(error) = ended {
                tracing::debug!(%error, "upstream HTTP/2 connection ended");
            }
        });
        Ok(sender)
    }

    /// A connection to the endpoint, TCP (and TLS) then HTTP/2's preface.
    async fn handshake(&self) -> Result<Handshaken, BoxError> {
        // The connector names the endpoint whatever target it is given.
        let io = self
            .connector
            .clone()
            .call(http::Uri::from_static("http://endpoint/"))
            .await?;
        let handshaken = http2::Builder::new(TokioExecutor::new())
            .max_header_list_size(self.settings.max_header_list_bytes)
            .handshake(TokioIo::new(io))
            .await?;
        Ok(handshaken)
    }
}

/// A new connection: the handle requests take, and the connection's own future.
type Handshaken = (
    http2::SendRequest<UpstreamBody>,
    http2::Connection<TokioIo<super::upstream_tls::UpstreamIo>, UpstreamBody, TokioExecutor>,
);

/// Returns once connection `number` is no longer current: taken out for its idle timeout
/// here, or replaced. (The connection task then drives it until its last stream ends.)
async fn retire_when_idle(current: &Mutex<Option<Current>>, number: u64, idle_timeout: Duration) {
    loop {
        let due = {
            let mut current = lock(current);
            let Some(open) = current.as_ref().filter(|open| open.number == number) else {
                return;
            };
            let due = open.last_started + idle_timeout;
            if due <= Instant::now() {
                *current = None;
                return;
            }
            due
        };
        tokio::time::sleep_until(due).await;
    }
}

fn next_number() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::proxy::endpoint_names::{name_of, EndpointNames};
    use crate::proxy::resources::tls::UpstreamTls;
    use crate::proxy::test_backends;
    use crate::proxy::upstream_tls::TlsOrigination;

    /// A service answering `ok` to every request.
    async fn ok(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }

    /// An HTTP/2 backend on loopback answering `ok`, counting the connections it accepted and
    /// the ones that ended.
    async fn backend() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (address, counts) = test_backends::counting(|stream| async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(ok))
                .await;
        })
        .await;
        (address, counts.accepted, counts.ended)
    }

    /// An HTTP/2 backend that answers one request per connection, then says GOAWAY; counts
    /// the connections it accepted.
    async fn one_request_backend() -> (SocketAddr, Arc<AtomicUsize>) {
        let (address, counts) = test_backends::counting(|stream| async move {
            let (answered, mut done) = tokio::sync::mpsc::unbounded_channel::<()>();
            let answer = hyper::service::service_fn(move |request| {
                let _ = answered.send(());
                ok(request)
            });
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), answer);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = &mut connection => return,
                _ = done.recv() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        })
        .await;
        (address, counts.accepted)
    }

    fn endpoint(
        address: SocketAddr,
        idle_timeout: Duration,
        max_requests: Option<u32>,
    ) -> Http2Endpoint {
        let target = format!("http://{}/", name_of(&[address]));
        let connector = UpstreamConnector {
            tcp: HttpConnector::new_with_resolver(EndpointNames),
            tls: None,
            endpoint: Some(target.parse().unwrap()),
        };
        let settings = Settings {
            idle_timeout,
            max_requests,
            max_header_list_bytes: 65536,
        };
        Http2Endpoint::new(connector, settings)
    }

    async fn get(endpoint: &Http2Endpoint) -> String {
        let mut request = Request::get("http://example.test/")
            .version(http::Version::HTTP_2)
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        let response = endpoint.request(&mut request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_share_one_connection_up_to_its_request_limit() {
        let (address, accepted, _) = backend().await;
        let unlimited = endpoint(address, Duration::from_secs(600), None);
        let answers = futures_util::future::join_all((0..6).map(|_| get(&unlimited))).await;
        assert!(answers.iter().all(|answer| answer == "ok"));
        for _ in 0..4 {
            assert_eq!(get(&unlimited).await, "ok");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection, 10 requests"
        );
        let limited = endpoint(address, Duration::from_secs(600), Some(2));
        for _ in 0..5 {
            assert_eq!(get(&limited).await, "ok");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1 + 3,
            "5 requests at 2 a connection: 3 more connections"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_idle_past_its_timeout_is_closed_and_replaced() {
        let (address, accepted, ended) = backend().await;
        let idle = Duration::from_millis(200);
        let quick = endpoint(address, idle, None);
        assert_eq!(get(&quick).await, "ok");
        test_backends::closed_after_idle(&ended, idle, std::time::Instant::now()).await;
        assert_eq!(get(&quick).await, "ok", "a new one replaces it");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_after_a_goaway_go_on_new_connections_without_failing() {
        let (address, accepted) = one_request_backend().await;
        let pool = endpoint(address, Duration::from_secs(600), None);
        for _ in 0..4 {
            assert_eq!(get(&pool).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_waiting_on_a_connection_that_fails_fail_with_it() {
        // The backend closes each connection at once: the TLS handshake fails.
        let (address, counts) = test_backends::counting(|stream| async move { drop(stream) }).await;
        let target = format!("http://{}/", name_of(&[address]));
        let tls = UpstreamTls {
            sni: None,
            alpn: vec![b"h2".to_vec()],
        };
        let connector = UpstreamConnector {
            tcp: HttpConnector::new_with_resolver(EndpointNames),
            tls: Some(TlsOrigination::new(&tls, Some("example.test".into()))),
            endpoint: Some(target.parse().unwrap()),
        };
        let settings = Settings {
            idle_timeout: Duration::from_secs(600),
            max_requests: None,
            max_header_list_bytes: 65536,
        };
        let pool = Http2Endpoint::new(connector, settings);
        let attempts = (0..4).map(|_| async {
            let mut request = Request::get("https://example.test/")
                .version(http::Version::HTTP_2)
                .body(Empty::new().map_err(|never| match never {}).boxed())
                .unwrap();
            pool.request(&mut request).await
        });
        let failed = futures_util::future::join_all(attempts).await;
        assert!(failed
            .iter()
            .all(|result| matches!(result, Err(Http2Error::Connect(_)))));
        assert_eq!(
            counts.accepted.load(Ordering::SeqCst),
            1,
            "the three waiting behind the first attempt fail with it, not each on its own"
        );
        // A request that comes after the failure tries again.
        let mut request = Request::get("https://example.test/")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        assert!(pool.request(&mut request).await.is_err());
        assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    }
}
