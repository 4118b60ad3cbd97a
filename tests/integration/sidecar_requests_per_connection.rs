//! `circuitBreakers.maxRequestsPerConnection` through the sidecar, differentially against
//! Envoy: the same config is served to both by two Switchyards, and each proxy sends the same
//! sequential requests to backends that count the TCP connections they accept. With a limit
//! of k requests per connection, N requests take ceil(N/k) connections through either proxy,
//! to an HTTP/1.1 backend and to an HTTP/2 one (over TLS, as `protocol: HTTP2` means).

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::common::counting::{client_connection, get_ok_on, CountingBackend};
use crate::common::sidecar::SideBySide;
use crate::common::*;

/// The limit the services set, and the requests each sends through each proxy.
const LIMIT: u64 = 3;
const REQUESTS: u64 = 10;

/// Answers `ok` on one connection.
async fn answer_ok<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let answer = service_fn(|_request| async {
        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(b"ok"),
        )))
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), answer)
        .await;
}

/// TLS with a self-signed certificate, offering HTTP/2 by ALPN.
fn h2_acceptor() -> tokio_rustls::TlsAcceptor {
    crate::common::pki::self_signed_backend_acceptor(&[b"h2"])
}

/// A backend answering `ok` over HTTP/1.1, or over TLS with HTTP/2 by ALPN with `tls`,
/// counting the TCP connections it accepted.
async fn ok_backend(tls: Option<tokio_rustls::TlsAcceptor>) -> CountingBackend {
    CountingBackend::start(move |stream| {
        let tls = tls.clone();
        async move {
            match tls {
                None => answer_ok(stream).await,
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        answer_ok(stream).await;
                    }
                }
            }
        }
    })
    .await
}

/// The listener ports of one proxy: one whose backend only tells when the proxy is ready,
/// one to the HTTP/1.1 service, one to the HTTP/2 service.
#[derive(Clone, Copy)]
struct Listens {
    probe: u16,
    http1: u16,
    http2: u16,
}

impl Listens {
    fn free() -> Listens {
        Listens {
            probe: free_port(),
            http1: free_port(),
            http2: free_port(),
        }
    }
}

/// Services `probe` (no limit), `http1` and `http2` (at most [`LIMIT`] requests per
/// connection), each with one endpoint, each behind its own forwarding rule.
fn config(listens: Listens, probe: u16, http1: u16, http2: u16) -> String {
    let service = |name: &str, settings: &str| {
        format!(
            r#"- name: {name}
  {settings}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/{name}-neg, balancingMode: RATE, maxRate: 1000}}]
"#
        )
    };
    let neg = |name: &str, port: u16| {
        format!("- {{name: {name}-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}\n")
    };
    let front = |name: &str, listen: u16| {
        (
            format!("- {{name: {name}-map, defaultService: {name}}}\n"),
            format!("- {{name: {name}-proxy, urlMap: {name}-map}}\n"),
            format!("- {{name: {name}-rule, IPAddress: 127.0.0.1, portRange: \"{listen}\", target: {name}-proxy}}\n"),
        )
    };
    let limit = format!("circuitBreakers: {{maxRequestsPerConnection: {LIMIT}}}");
    let services = [
        service("probe", "protocol: HTTP"),
        service("http1", &format!("protocol: HTTP\n  {limit}")),
        service("http2", &format!("protocol: HTTP2\n  {limit}")),
    ]
    .concat();
    let negs = [
        neg("probe", probe),
        neg("http1", http1),
        neg("http2", http2),
    ]
    .concat();
    let fronts = [
        front("probe", listens.probe),
        front("http1", listens.http1),
        front("http2", listens.http2),
    ];
    let (mut maps, mut proxies, mut rules) = (String::new(), String::new(), String::new());
    for (map, proxy, rule) in fronts {
        maps.push_str(&map);
        proxies.push_str(&proxy);
        rules.push_str(&rule);
    }
    format!(
        "networkEndpointGroups:\n{negs}backendServices:\n{services}urlMaps:\n{maps}targetHttpProxies:\n{proxies}forwardingRules:\n{rules}"
    )
}

/// The connections one proxy opened to the HTTP/1.1 and the HTTP/2 backend for
/// [`REQUESTS`] sequential requests to each (one client connection, kept alive).
async fn connections_through(
    listens: Listens,
    http1: &CountingBackend,
    http2: &CountingBackend,
) -> (u64, u64) {
    let mut opened = Vec::new();
    for (listen, backend) in [(listens.http1, http1), (listens.http2, http2)] {
        let before = backend.accepted();
        let mut sender = client_connection(listen).await;
        for request in 0..REQUESTS as usize {
            get_ok_on(&mut sender, request).await;
        }
        opened.push(backend.accepted() - before);
    }
    (opened[0], opened[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_connection_carries_at_most_max_requests_per_connection_as_through_envoy() {
    let probe = Backend::start("probe").await;
    let http1 = ok_backend(None).await;
    let http2 = ok_backend(Some(h2_acceptor())).await;
    let (envoy_listens, sidecar_listens) = (Listens::free(), Listens::free());
    let served = |listens| config(listens, probe.port(), http1.port, http2.port);
    let _proxies = SideBySide::start(
        &served(envoy_listens),
        &served(sidecar_listens),
        "per-connection",
    )
    .await;
    for listens in [envoy_listens, sidecar_listens] {
        wait_for_body(&format!("http://127.0.0.1:{}/", listens.probe), "probe").await;
    }
    let expected = REQUESTS.div_ceil(LIMIT);
    let through_envoy = connections_through(envoy_listens, &http1, &http2).await;
    let through_sidecar = connections_through(sidecar_listens, &http1, &http2).await;
    // Without the limit each proxy would keep one connection per backend: 1, not 4.
    assert_eq!(
        through_envoy,
        (expected, expected),
        "Envoy: connections to the HTTP/1.1 and the HTTP/2 backend"
    );
    assert_eq!(
        through_sidecar, through_envoy,
        "the sidecar: connections to the HTTP/1.1 and the HTTP/2 backend, against Envoy's"
    );
}
