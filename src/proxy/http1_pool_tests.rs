//! The HTTP/1.1 pool against loopback backends: reuse up to the request limit, the idle
//! timeout, each answer framing read on connections driven here and whether the connection is
//! reused after it, a connection the backend closed while free, and requests of both kinds
//! sharing a connection.

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

/// A GET of `path` from the endpoint at `address`, with a Host and no body.
fn get_request(address: SocketAddr, path: &str) -> Request<UpstreamBody> {
    let target = format!("http://{}{path}", name_of(&[address]));
    Request::get(target)
        .header(header::HOST, "example.test")
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .unwrap()
}

/// GET / to the endpoint at `address` through `pool`, its body read to the end.
async fn get(pool: &Http1Pool, address: SocketAddr) -> String {
    let mut request = get_request(address, "/");
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

#[tokio::test(flavor = "current_thread")]
async fn a_request_without_a_body_is_left_in_place_whichever_connection_takes_it() {
    let (address, accepted) = scripted_backend().await;
    let pool = pool(Duration::from_secs(600), None);
    // First on a connection driven here; then, that connection having carried a request
    // with a body, on one hyper's client drives.
    for round in ["driven here", "driven by hyper"] {
        let mut request = get_request(address, "/");
        request
            .headers_mut()
            .insert("x-kept", HeaderValue::from_static("yes"));
        let response = pool.request(&mut request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok", "{round}");
        assert_eq!(request.headers()["x-kept"], "yes", "{round}");
        assert_eq!(request.uri(), "/", "{round}: origin-form");
        assert_eq!(send(&pool, address, "POST", "/", "a body").await.1, "ok");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection throughout"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_chunked_answer_gives_its_connection_back_with_its_trailers() {
    let (address, accepted) = scripted_backend().await;
    let pool = pool(Duration::from_secs(600), None);
    let mut request = get_request(address, "/chunked");
    let mut body = pool.request(&mut request).await.unwrap().into_body();
    // Read as hyper's server reads it: nothing more asked after the trailers.
    loop {
        let frame = body.frame().await.unwrap().unwrap();
        if frame.is_trailers() {
            break;
        }
    }
    drop(body);
    assert_eq!(send(&pool, address, "GET", "/", "").await.1, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the same connection");
}
