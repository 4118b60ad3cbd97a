//! Single health probes against real loopback servers: TCP passes on connect and fails on a
//! closed port; a TCP request / response pair is compared; HTTP passes on 200 and fails on 500
//! with the status in the reason, checks the path, Host and expected body; a PROXY v1 line
//! goes first when asked; a server that never answers fails at the timeout. HTTPS, HTTP2 (over
//! TLS, on one connection reused across probes) and SSL probes pass against a TLS backend with
//! a self-signed certificate; GRPC probes pass on SERVING and fail on NOT_SERVING. A matcher's
//! status ranges and a gRPC call judged by its grpc-status (AWS's checks) hold too. A chunked
//! body is matched after de-chunking: the expected response may span chunks, and the chunk
//! sizes are never taken for the body.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::health::probe::{self, Outcome, Probe, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::echo::EchoBackend;
use crate::common::grpc::GrpcBackend;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A server that answers each connection with `reply(what it read)` and records what it read.
async fn server(
    reply: fn(&str) -> String,
) -> (
    SocketAddr,
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let mut read = Vec::new();
                // Read what arrives within a moment: a request head, a TCP payload, or nothing.
                while let Ok(Ok(count)) =
                    tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await
                {
                    if count == 0 {
                        break;
                    }
                    read.extend_from_slice(&buffer[..count]);
                    if read.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&read).into_owned();
                let answer = reply(&text);
                record.lock().unwrap().push(text);
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (address, seen, task)
}

/// One probe on a fresh session.
async fn run(
    probe: &Probe,
    address: SocketAddr,
    proxy_header_v1: bool,
    timeout: Duration,
) -> Outcome {
    probe::run(
        probe,
        &mut Session::default(),
        address,
        proxy_header_v1,
        timeout,
    )
    .await
}

fn http_probe(path: &str, host: Option<&str>, response: Option<&str>) -> Probe {
    Probe::Http {
        tls: false,
        path: path.into(),
        host: host.map(str::to_string),
        response: response.map(str::to_string),
        codes: Vec::new(),
    }
}

#[tokio::test]
async fn tcp_probes_pass_on_connect_and_compare_a_response() {
    let (address, _, task) = server(|read| {
        if read.starts_with("PING") {
            "PONG".into()
        } else {
            "HELLO".into()
        }
    })
    .await;
    let plain = Probe::Tcp {
        tls: false,
        request: None,
        response: None,
    };
    assert_eq!(run(&plain, address, false, TIMEOUT).await, Ok(()));
    let ping = Probe::Tcp {
        tls: false,
        request: Some("PING".into()),
        response: Some("PONG".into()),
    };
    assert_eq!(run(&ping, address, false, TIMEOUT).await, Ok(()));
    let wrong = Probe::Tcp {
        tls: false,
        request: Some("PING".into()),
        response: Some("PANG".into()),
    };
    assert_eq!(
        run(&wrong, address, false, TIMEOUT).await,
        Err("answered \"PONG\", expected \"PANG\"".into())
    );
    task.abort();
    let _ = task.await;
    // The port is closed now.
    let closed = run(&plain, address, false, TIMEOUT).await.unwrap_err();
    assert!(closed.starts_with("connect: "), "{closed}");
}

#[tokio::test]
async fn http_probes_want_200_and_send_path_host_and_proxy_line() {
    let (address, seen, _task) = server(|read| {
        if read.contains("GET /healthz ") {
            "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nhealthy".into()
        } else {
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n".into()
        }
    })
    .await;
    let ok = http_probe("/healthz", Some("app.example.test"), Some("heal"));
    assert_eq!(run(&ok, address, false, TIMEOUT).await, Ok(()));
    assert!(seen.lock().unwrap()[0].contains("Host: app.example.test\r\n"));
    let failing = http_probe("/other", None, None);
    assert_eq!(
        run(&failing, address, false, TIMEOUT).await,
        Err("answered `HTTP/1.1 500 Internal Server Error`, expected 200".into())
    );
    // Without a host, the endpoint's address is the Host.
    assert!(seen.lock().unwrap()[1].contains(&format!("Host: {address}\r\n")));
    let body = http_probe("/healthz", None, Some("sick"));
    assert_eq!(
        run(&body, address, false, TIMEOUT).await,
        Err("the body does not begin with \"sick\"".into())
    );
    let proxied = http_probe("/healthz", None, None);
    assert_eq!(run(&proxied, address, true, TIMEOUT).await, Ok(()));
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 ")
            && last.contains(&format!(" {}\r\nGET /healthz HTTP/1.1\r\n", address.port())),
        "{last}"
    );
}

#[tokio::test]
async fn http_probes_match_the_response_prefix_of_a_chunked_body() {
    // `healthy` in two chunks, then the last (empty) chunk.
    let (address, _, _task) = server(|_| {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nheal\r\n3\r\nthy\r\n0\r\n\r\n"
            .into()
    })
    .await;
    // A prefix across the chunk boundary, and the whole body.
    for expected in ["health", "healthy"] {
        let probe = http_probe("/healthz", None, Some(expected));
        assert_eq!(
            run(&probe, address, false, TIMEOUT).await,
            Ok(()),
            "{expected}"
        );
    }
    // What a reader of the raw bytes would see first, and a body that goes another way.
    for expected in ["4\r\nheal", "healthz", "heaven"] {
        let probe = http_probe("/healthz", None, Some(expected));
        assert_eq!(
            run(&probe, address, false, TIMEOUT).await,
            Err(format!("the body does not begin with {expected:?}")),
        );
    }
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Accepted by the kernel (backlog), never read or answered.
    let outcome = run(
        &http_probe("/", None, None),
        address,
        false,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(outcome, Err("no answer within 300 ms".into()));
    drop(listener);
}

#[tokio::test]
async fn tls_probes_pass_against_a_self_signed_backend() {
    let backend = EchoBackend::start_tls("secure").await;
    let https = Probe::Http {
        tls: true,
        path: "/healthz".into(),
        host: Some("backend.internal".into()),
        response: None,
        codes: Vec::new(),
    };
    assert_eq!(run(&https, backend.addr, false, TIMEOUT).await, Ok(()));
    let ssl = Probe::Tcp {
        tls: true,
        request: None,
        response: None,
    };
    assert_eq!(run(&ssl, backend.addr, false, TIMEOUT).await, Ok(()));
    // HTTP2 keeps its connection and reuses it for the next probe.
    let http2 = Probe::Http2 {
        path: "/healthz".into(),
        host: None,
        response: Some("{".into()),
    };
    let mut session = Session::default();
    for _ in 0..3 {
        assert_eq!(
            probe::run(&http2, &mut session, backend.addr, false, TIMEOUT).await,
            Ok(())
        );
        assert!(session.is_connected());
    }
    // A plain-text server fails the handshake.
    let (plain, _, _task) = server(|_| "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
    let failed = run(&https, plain, false, TIMEOUT).await.unwrap_err();
    assert!(failed.starts_with("TLS handshake"), "{failed}");
}

#[tokio::test]
async fn grpc_probes_follow_the_served_health_status() {
    let backend = GrpcBackend::start("rpc").await;
    let grpc = Probe::Grpc {
        service: String::new(),
    };
    let mut session = Session::default();
    assert_eq!(
        probe::run(&grpc, &mut session, backend.addr, false, TIMEOUT).await,
        Ok(())
    );
    backend.set_serving(false);
    assert_eq!(
        probe::run(&grpc, &mut session, backend.addr, false, TIMEOUT).await,
        Err("status NOT_SERVING".into())
    );
    // A service the server does not know.
    let unknown = Probe::Grpc {
        service: "no.such.Service".into(),
    };
    let failed = run(&unknown, backend.addr, false, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(failed, "grpc-status 5");
    backend.set_serving(true);
    assert_eq!(
        probe::run(&grpc, &mut session, backend.addr, false, TIMEOUT).await,
        Ok(())
    );
}

#[tokio::test]
async fn http_probes_take_the_status_ranges_of_a_matcher() {
    let (address, _, task) =
        server(|_| "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into()).await;
    let with_codes = |codes: Vec<(u16, u16)>| Probe::Http {
        tls: false,
        path: "/".into(),
        host: None,
        response: None,
        codes,
    };
    assert_eq!(
        run(
            &with_codes(vec![(200, 299), (404, 404)]),
            address,
            false,
            TIMEOUT
        )
        .await,
        Ok(())
    );
    assert_eq!(
        run(
            &with_codes(vec![(200, 299), (302, 302)]),
            address,
            false,
            TIMEOUT
        )
        .await,
        Err("answered `HTTP/1.1 404 Not Found`, expected 200-299,302".to_string())
    );
    task.abort();
}

#[tokio::test]
async fn grpc_call_probes_judge_the_grpc_status_of_a_chosen_method() {
    // The backend does not implement ALB's default check method: UNIMPLEMENTED (12), which is
    // what ALB's default matcher expects.
    let backend = GrpcBackend::start("rpc").await;
    let call = |codes: Vec<(u16, u16)>| Probe::GrpcCall {
        tls: false,
        path: "/AWS.ALB/healthcheck".into(),
        codes,
    };
    assert_eq!(
        run(&call(vec![(12, 12)]), backend.addr, false, TIMEOUT).await,
        Ok(())
    );
    assert_eq!(
        run(&call(vec![(0, 0)]), backend.addr, false, TIMEOUT).await,
        Err("grpc-status 12, expected 0".to_string())
    );
}
