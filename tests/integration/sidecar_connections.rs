//! HTTP/1.1 connections through the sidecar, byte by byte on a raw socket: one connection
//! carries plain, pipelined and body-carrying requests in any order (the sidecar hands the
//! socket between short-lived HTTP sessions so an idle connection holds no buffers — this
//! proves nothing is lost or reordered across those hand-overs); `Connection: close` and
//! HTTP/1.0 end it; hop-by-hop headers, an h2c upgrade offer among them, stop at the sidecar,
//! which answers in HTTP/1.1 as Envoy does. The same script runs over TLS (an HTTPS target
//! proxy), where the hand-over reads the next request's first bytes instead of peeking.

use crate::common::echo::EchoBackend;
use crate::common::sidecar::Sidecar;
use crate::common::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What the script runs over: a plain or a TLS connection.
trait Socket: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Socket for T {}

/// A load balancer on 127.0.0.1:`listen` sending everything to the echo backend on `port`.
fn config(listen: u16, port: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: echo-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- {{name: echo, backends: [{{group: zones/us-central1-a/networkEndpointGroups/echo-neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- {{name: m, defaultService: global/backendServices/echo}}
targetHttpProxies:
- {{name: p, urlMap: global/urlMaps/m}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/p}}
"#
    )
}

/// [`config`] with an HTTPS front on 127.0.0.1:`secure` beside the plain one (the example's
/// www.example.test certificate).
fn config_with_https(listen: u16, secure: u16, port: u16) -> String {
    let certificates = repo_root().join("examples/certs");
    format!(
        r#"{plain}
sslCertificates:
- {{name: c, certificateFile: {dir}/www.example.test.pem, privateKeyFile: {dir}/www.example.test.key}}
targetHttpsProxies:
- {{name: ps, urlMap: global/urlMaps/m, sslCertificates: [global/sslCertificates/c]}}
"#,
        plain = config(listen, port).replace(
            "forwardingRules:\n",
            &format!("forwardingRules:\n- {{name: fs, IPAddress: 127.0.0.1, portRange: \"{secure}\", target: global/targetHttpsProxies/ps}}\n"),
        ),
        dir = certificates.display(),
    )
}

/// One response read off the connection: status line, headers (lower-case names), body.
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path the echo backend saw.
    fn path(&self) -> &str {
        self.body["path"].as_str().unwrap_or("?")
    }
}

async fn read_answer<S: Socket>(reader: &mut BufReader<S>) -> Answer {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header line");
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("the echo backend's answers have a length");
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await.unwrap();
    Answer {
        status_line: status_line.trim_end().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or_default(),
    }
}

async fn closed<S: Socket>(reader: &mut BufReader<S>) -> bool {
    let mut rest = Vec::new();
    // Over TLS, Ok only after the sidecar's close_notify.
    matches!(reader.read_to_end(&mut rest).await, Ok(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_connection_carries_plain_pipelined_and_body_requests_until_told_to_close() {
    let echo = EchoBackend::start().await;
    let (listen, secure) = (free_port(), free_port());
    let switchyard = Switchyard::start(&config_with_https(listen, secure, echo.port())).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        switchyard.running.xds_addr,
        "sidecar-connections",
    )
    .await;
    sidecar.wait_ready().await;
    wait_for_status(listen).await;

    let stream = TcpStream::connect(("127.0.0.1", listen)).await.unwrap();
    carries_requests_in_order_until_closed(BufReader::new(stream)).await;
    let stream = TcpStream::connect(("127.0.0.1", secure)).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        switchyard::unverified_tls::client_config(vec![b"http/1.1".to_vec()]),
    ))
    .connect("www.example.test".try_into().unwrap(), stream)
    .await
    .expect("a TLS handshake with the sidecar's HTTPS listener");
    carries_requests_in_order_until_closed(BufReader::new(tls)).await;

    // HTTP/1.0 without keep-alive: one request, then the sidecar closes.
    let stream = TcpStream::connect(("127.0.0.1", listen)).await.unwrap();
    let mut old = BufReader::new(stream);
    old.get_mut()
        .write_all(b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut old).await.path(), "/old");
    assert!(closed(&mut old).await);
}

/// Plain, pipelined, body-carrying, split and upgrade-offering requests on one connection, each
/// answered in order, then `Connection: close` ends it.
async fn carries_requests_in_order_until_closed<S: Socket>(mut connection: BufReader<S>) {
    // Plain, then three pipelined in one write (one with a body in the middle), then a
    // chunked body.
    let script: [(&[u8], &[&str]); 3] = [
        (b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n", &["/one"]),
        (
            b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n\
              POST /three HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
              GET /four HTTP/1.1\r\nHost: a\r\n\r\n",
            &["/two", "/three", "/four"],
        ),
        (
            b"PUT /five HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n0\r\n\r\n",
            &["/five"],
        ),
    ];
    for (bytes, expected) in script {
        connection.get_mut().write_all(bytes).await.unwrap();
        for path in expected {
            let answer = read_answer(&mut connection).await;
            assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "for {path}");
            assert_eq!(answer.path(), *path, "answers come back in order");
            assert_eq!(answer.header("connection"), None, "kept alive after {path}");
        }
    }
    // A plain request with the start of the next one behind it: the start, read along with
    // the first, must survive the hand-over between sessions.
    connection
        .get_mut()
        .write_all(b"GET /six HTTP/1.1\r\nHost: a\r\n\r\nGET /sev")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut connection).await.path(), "/six");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    connection
        .get_mut()
        .write_all(b"en HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut connection).await.path(), "/seven");

    // The hop-by-hop headers of an h2c upgrade offer stay here; the answer is HTTP/1.1.
    connection
        .get_mut()
        .write_all(
            b"GET /eight HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings, x-hop\r\n\
              Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nx-hop: 1\r\n\
              Keep-Alive: timeout=5\r\nx-end-to-end: 1\r\n\r\n",
        )
        .await
        .unwrap();
    let upgrade_offer = read_answer(&mut connection).await;
    assert_eq!(upgrade_offer.status_line, "HTTP/1.1 200 OK");
    let seen = &upgrade_offer.body["headers"];
    for hop in [
        "connection",
        "upgrade",
        "http2-settings",
        "x-hop",
        "keep-alive",
    ] {
        assert!(seen[hop].is_null(), "{hop} reached the backend: {seen}");
    }
    assert_eq!(seen["x-end-to-end"], "1");

    // Connection: close ends it after the answer.
    connection
        .get_mut()
        .write_all(b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let last = read_answer(&mut connection).await;
    assert_eq!(last.path(), "/last");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(closed(&mut connection).await);
}

async fn wait_for_status(listen: u16) {
    wait_for("the sidecar's listener", || async move {
        let response = http()
            .get(format!("http://127.0.0.1:{listen}/ready-check"))
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}
