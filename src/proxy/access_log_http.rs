//! An HTTP request's access log entry, put together along its way: what the request said once
//! the connection manager added its forwarding headers, the cluster and endpoint the router
//! reached and Envoy's response flag for a local answer (response extensions), the bytes of
//! the request body, and — counted as the response body goes out — the bytes sent; the entry
//! is emitted when the response body ends or is dropped, as Envoy logs at the stream's end.
//!
//! Must not: route, forward or change what is sent; it only looks.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use super::access_log::{self, Entry};
use super::http::Body;
use super::request_body::BoxError;
use super::resources::listener::HttpManager;

/// The upstream cluster a request went to (a response extension).
#[derive(Clone, Debug)]
pub struct UpstreamCluster(pub String);

/// The endpoint the last attempt reached (a response extension).
#[derive(Clone, Copy, Debug)]
pub struct UpstreamHost(pub SocketAddr);

/// Envoy's response flag for a local answer (`UH`, `UF`, `UR`, `UT`, `NR`; a response
/// extension).
#[derive(Clone, Copy, Debug)]
pub struct ResponseFlag(pub &'static str);

/// `response` marked with Envoy's response flag `flag`.
pub fn flagged<B>(mut response: Response<B>, flag: &'static str) -> Response<B> {
    response.extensions_mut().insert(ResponseFlag(flag));
    response
}

/// `response` marked with the endpoint that gave it (or was tried last), for the access log.
pub fn reached<B>(mut response: Response<B>, host: SocketAddr) -> Response<B> {
    response.extensions_mut().insert(UpstreamHost(host));
    response
}

/// The request half of an entry, taken when the request starts (a response extension on the
/// way back to the connection).
#[derive(Clone, Debug)]
pub struct RequestFacts {
    entry: Entry,
    began: Instant,
}

/// What the default format reads of `request`, as the connection manager passes it on.
pub fn request_facts<B>(request: &Request<B>) -> RequestFacts {
    let mut entry = Entry {
        start: Some(SystemTime::now()),
        method: Some(request.method().as_str().to_string()),
        protocol: Some(protocol_name(request.version())),
        ..Default::default()
    };
    read_headers(&mut entry, request.uri(), request.headers());
    RequestFacts {
        entry,
        began: Instant::now(),
    }
}

impl RequestFacts {
    /// The facts as the request goes upstream, after the router's header changes and
    /// rewrites: Envoy's router makes them in the request's own header map, which is what its
    /// access log reads (a rewritten path is read from X-Envoy-Original-Path).
    pub fn forwarded(mut self, parts: &http::request::Parts) -> RequestFacts {
        read_headers(&mut self.entry, &parts.uri, &parts.headers);
        self
    }
}

/// The fields of `entry` read from the request's target and headers.
fn read_headers(entry: &mut Entry, uri: &http::Uri, headers: &http::HeaderMap) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    entry.path = header("x-envoy-original-path")
        .or_else(|| uri.path_and_query().map(|p| p.as_str().to_string()));
    entry.authority = header("host").or_else(|| uri.authority().map(|a| a.as_str().to_string()));
    entry.forwarded_for = header("x-forwarded-for");
    entry.user_agent = header("user-agent");
    entry.request_id = header("x-request-id");
}

/// %PROTOCOL% as Envoy writes it.
fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `response` whose body emits the request's entry to `manager`'s access logs when it ends;
/// `received` counts the request body's bytes. A response without [`RequestFacts`] is
/// returned as it is.
pub fn logged(
    mut response: Response<Body>,
    manager: Arc<HttpManager>,
    received: Arc<AtomicU64>,
) -> Response<Body> {
    let status = response.status().as_u16();
    let extensions = response.extensions_mut();
    let Some(facts) = extensions.remove::<RequestFacts>() else {
        return response;
    };
    let mut entry = facts.entry;
    entry.status = status;
    entry.flags = extensions.get::<ResponseFlag>().map(|flag| flag.0);
    entry.cluster = extensions.get::<UpstreamCluster>().map(|c| c.0.clone());
    entry.upstream_host = extensions.get::<UpstreamHost>().map(|host| host.0);
    entry.upstream_service_time = response
        .headers()
        .get("x-envoy-upstream-service-time")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let pending = Pending {
        entry,
        began: facts.began,
        manager,
        received,
    };
    response.map(|inner| {
        LoggedBody {
            inner,
            sent: 0,
            pending: Some(pending),
        }
        .boxed()
    })
}

/// An entry waiting for its response body to end.
struct Pending {
    entry: Entry,
    began: Instant,
    manager: Arc<HttpManager>,
    received: Arc<AtomicU64>,
}

struct LoggedBody {
    inner: Body,
    sent: u64,
    pending: Option<Pending>,
}

impl LoggedBody {
    fn finish(&mut self) {
        if let Some(Pending {
            mut entry,
            began,
            manager,
            received,
        }) = self.pending.take()
        {
            entry.bytes_sent = self.sent;
            entry.bytes_received = received.load(Ordering::Relaxed);
            entry.duration = began.elapsed();
            access_log::emit(&manager.access_logs, &entry);
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.sent += frame.data_ref().map_or(0, |data| data.len() as u64);
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.finish();
    }
}
