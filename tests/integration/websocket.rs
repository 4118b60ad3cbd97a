//! WebSocket through Envoy and through the sidecar, as the cloud's proxies pass it without
//! configuration: the upgrade reaches the backend with its Upgrade and Connection headers, the
//! 101 reaches the client, and frames then flow both ways over the same connection (a
//! minimal RFC 6455 backend echoes each text frame).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// The key and accept value of RFC 6455's own example.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Reads up to the end of an HTTP head.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// One frame: (opcode, payload), unmasked if the sender masked it. Payloads under 126 bytes.
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await.ok()?;
    let masked = header[1] & 0x80 != 0;
    let length = (header[1] & 0x7f) as usize;
    let mut mask = [0u8; 4];
    if masked {
        stream.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.ok()?;
    if masked {
        for (index, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[index % 4];
        }
    }
    Some((header[0] & 0x0f, payload))
}

fn frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![
        0x81,
        payload.len() as u8 | if mask.is_some() { 0x80 } else { 0 },
    ];
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A WebSocket backend that answers the upgrade and echoes text frames as `echo: <text>`;
/// it keeps the head of each upgrade request it got.
async fn start_echo() -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let lower = head.to_ascii_lowercase();
                seen.lock().unwrap().push(head.clone());
                if !lower.contains("upgrade: websocket") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let answer = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
                stream.write_all(answer.as_bytes()).await.unwrap();
                while let Some((opcode, payload)) = read_frame(&mut stream).await {
                    if opcode == 0x8 {
                        return;
                    }
                    let mut reply = b"echo: ".to_vec();
                    reply.extend_from_slice(&payload);
                    if stream.write_all(&frame(&reply, None)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, heads, task)
}

fn config(listen: u16, backend: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {backend}}}]}}
backendServices:
- {{name: chat, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- {{name: lb, defaultService: chat}}
targetHttpProxies:
- {{name: proxy, urlMap: lb}}
forwardingRules:
- {{name: fr, IPAddress: 127.0.0.1, portRange: "{listen}", target: proxy}}
"#
    )
}

async fn websocket_echoes_through(through: Through) {
    let (backend, heads, _task) = start_echo().await;
    let listen = free_port();
    let node = format!("websocket-{through:?}").to_lowercase();
    let (_switchyard, _proxy) = serve_through(through, &node, &config(listen, backend)).await;
    let upgrade = format!(
        "GET /chat?room=1 HTTP/1.1\r\nHost: chat.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let (mut stream, head) = wait_for("the upgrade to be answered", || {
        let upgrade = upgrade.clone();
        async move {
            let mut stream = TcpStream::connect(("127.0.0.1", listen)).await.ok()?;
            stream.write_all(upgrade.as_bytes()).await.ok()?;
            let head = read_head(&mut stream).await;
            head.starts_with("HTTP/1.1 101").then_some((stream, head))
        }
    })
    .await;
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{through:?}: {head}");
    assert!(
        lower.contains(&ACCEPT.to_ascii_lowercase()),
        "{through:?}: {head}"
    );
    for message in ["hello", "second message", "third"] {
        stream
            .write_all(&frame(message.as_bytes(), Some([1, 2, 3, 4])))
            .await
            .unwrap();
        let (opcode, payload) = read_frame(&mut stream).await.expect("an echoed frame");
        assert_eq!(opcode, 1);
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            format!("echo: {message}"),
            "{through:?}"
        );
    }
    let backend_head = heads.lock().unwrap().last().cloned().unwrap();
    let lower = backend_head.to_ascii_lowercase();
    assert!(
        lower.starts_with("get /chat?room=1 http/1.1")
            && lower.contains("upgrade: websocket")
            && lower.contains("connection: upgrade")
            && lower.contains(&format!("sec-websocket-key: {}", KEY.to_ascii_lowercase())),
        "{through:?}: the backend saw {backend_head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_through_envoy() {
    websocket_echoes_through(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_through_the_sidecar() {
    websocket_echoes_through(Through::Sidecar).await;
}

/// A client that sends plain requests and then, on the same connection and at once, asks for
/// an upgrade gets its tunnel: the sidecar keeps its HTTP/1.1 connection across a busy
/// client's exchanges, and must still see an upgrade coming (proxy/lingering.rs).
async fn websocket_follows_plain_requests(through: Through) {
    let (backend, heads, _task) = start_echo().await;
    let listen = free_port();
    let node = format!("websocket-after-plain-{through:?}").to_lowercase();
    let (_switchyard, _proxy) = serve_through(through, &node, &config(listen, backend)).await;
    let plain = "GET /plain HTTP/1.1\r\nHost: chat.example.test\r\n\r\n";
    let mut stream = wait_for("a plain request to be answered", || async move {
        let mut stream = TcpStream::connect(("127.0.0.1", listen)).await.ok()?;
        stream.write_all(plain.as_bytes()).await.ok()?;
        read_head(&mut stream)
            .await
            .starts_with("HTTP/1.1 400")
            .then_some(stream)
    })
    .await;
    for _ in 0..3 {
        stream.write_all(plain.as_bytes()).await.unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{through:?}: {head}");
    }
    let upgrade = format!(
        "GET /chat HTTP/1.1\r\nHost: chat.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "{through:?}: an upgrade after plain requests got {head}; the backend saw {:?}",
        heads.lock().unwrap().last()
    );
    stream
        .write_all(&frame(b"after plain", Some([5, 6, 7, 8])))
        .await
        .unwrap();
    let (_, payload) = read_frame(&mut stream).await.expect("an echoed frame");
    assert_eq!(payload, b"echo: after plain", "{through:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_follows_plain_requests_through_envoy() {
    websocket_follows_plain_requests(Through::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_follows_plain_requests_through_the_sidecar() {
    websocket_follows_plain_requests(Through::Sidecar).await;
}
