//! The connection manager's timeouts as a client on a raw socket sees them, through Envoy and
//! the sidecar side by side (one static ADS server each, the same resources but for the
//! ports): the stream idle timeout (a request head or body that stops arriving gets 408 and
//! the connection closes; a backend that keeps the answer waiting gets 504 and the connection
//! stays; an answer that stops halfway is cut; a WebSocket tunnel with nothing crossing it
//! closes), the idle timeout (a connection without requests is drained: an HTTP/1.1 answer
//! then says `connection: close`, an HTTP/2 client gets a GOAWAY, and it closes) and the max
//! connection duration (the same drain, whatever the connection is doing). Each answer is
//! compared between the two proxies and held to what the row expects; no timing is
//! asserted beyond generous bounds (what a proxy without the timeout would miss for ever).

mod harness;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use harness::{connect, ending, read_answer, Front, SideBySide, CLOSE_BOUND};

/// Checks that Envoy and the sidecar saw the same, and that it holds `expected` (lines of it,
/// in order).
fn check(
    what: &str,
    (by_envoy, by_sidecar): (Vec<String>, Vec<String>),
    expected: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    if by_envoy != by_sidecar {
        problems.push(format!(
            "{what}: Envoy and the sidecar differ\n  Envoy:   {by_envoy:?}\n  sidecar: {by_sidecar:?}"
        ));
    }
    for (who, seen) in [("Envoy", &by_envoy), ("sidecar", &by_sidecar)] {
        let mut lines = seen.iter();
        for line in expected {
            if !lines.any(|l| l == line) {
                problems.push(format!(
                    "{what}: {who} saw no `{line}` (in order) in {seen:?}"
                ));
            }
        }
    }
    problems
}

/// Sends `bytes` on a new connection, then reads an answer and how the connection ends.
async fn send_then_wait(port: u16, bytes: &'static [u8]) -> Vec<String> {
    let mut stream = connect(port).await;
    stream.get_mut().write_all(bytes).await.unwrap();
    let mut seen = read_answer(&mut stream).await;
    seen.extend(ending(&mut stream).await);
    seen
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: a.example\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_idle_timeout_ends_requests_as_envoy_ends_them() {
    let proxies = SideBySide::start("stream-idle").await;
    let timeout_reply = [
        "header content-length: 14",
        "header content-type: text/plain",
        "header via: 1.1 edge",
        "body \"stream timeout\"",
    ];
    let mut problems = Vec::new();

    // A request head that stops arriving: 408, and the connection closes.
    let stalled_head = proxies
        .both(Front::Idle, |port| {
            send_then_wait(port, b"GET / HTTP/1.1\r\nhost: a.example\r\n")
        })
        .await;
    let mut expected = vec!["HTTP/1.1 408 Request Timeout", "header connection: close"];
    expected.extend(&timeout_reply[..3]);
    expected.extend(["body \"stream timeout\"", "closed"]);
    problems.extend(check("a stalled head", stalled_head, &expected));

    // A request body that stops arriving: the same.
    let stalled_body = proxies
        .both(Front::Idle, |port| {
            send_then_wait(
                port,
                b"POST / HTTP/1.1\r\nhost: a.example\r\ncontent-length: 10\r\n\r\nabc",
            )
        })
        .await;
    problems.extend(check("a stalled body", stalled_body, &expected));

    // A whole request whose answer keeps waiting: 504, and the connection serves on.
    let slow = proxies
        .both(Front::Idle, |port| async move {
            let mut stream = connect(port).await;
            let request = b"GET /slow HTTP/1.1\r\nhost: a.example\r\n\r\n";
            stream.get_mut().write_all(request).await.unwrap();
            let mut seen = read_answer(&mut stream).await;
            stream.get_mut().write_all(GET).await.unwrap();
            seen.extend(read_answer(&mut stream).await);
            seen
        })
        .await;
    let mut expected = vec!["HTTP/1.1 504 Gateway Timeout"];
    expected.extend(timeout_reply);
    expected.extend(["HTTP/1.1 200 OK", "body \"ok\""]);
    problems.extend(check("a silent backend", slow, &expected));

    // An answer that stops halfway: cut, as a reset stream is on HTTP/1.1.
    let drip = proxies
        .both(Front::Idle, |port| {
            send_then_wait(port, b"GET /drip HTTP/1.1\r\nhost: a.example\r\n\r\n")
        })
        .await;
    problems.extend(check(
        "an answer that stops",
        drip,
        &[
            "HTTP/1.1 200 OK",
            "header content-length: 10",
            "body \"ab\"",
            "closed",
        ],
    ));

    // A WebSocket tunnel with nothing crossing it closes.
    let tunnel = proxies
        .both(Front::Idle, |port| async move {
            let mut stream = connect(port).await;
            let upgrade = b"GET /ws HTTP/1.1\r\nhost: a.example\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
            stream.get_mut().write_all(upgrade).await.unwrap();
            let mut seen = read_answer(&mut stream).await;
            stream.get_mut().write_all(b"ping").await.unwrap();
            let mut echo = [0; 4];
            let echoed = stream.read_exact(&mut echo).await.is_ok();
            seen.push(format!("echoed {echoed}"));
            seen.extend(ending(&mut stream).await);
            seen
        })
        .await;
    problems.extend(check(
        "an idle tunnel",
        tunnel,
        &["HTTP/1.1 101 Switching Protocols", "echoed true", "closed"],
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Opens an HTTP/2 connection (prior knowledge) and sends nothing more than its preface and
/// settings, answering the proxy's settings and pings as a client does: the frame types it
/// gets until the proxy closes the connection (or CLOSE_BOUND passes), and how it ended.
async fn http2_frames_until_closed(port: u16) -> Vec<String> {
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;
    const ACK: u8 = 0x1;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend([0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
    stream.write_all(&hello).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + CLOSE_BOUND;
    loop {
        let mut head = [0u8; 9];
        match tokio::time::timeout_at(deadline, stream.read_exact(&mut head)).await {
            Err(_) => {
                seen.push("still open".to_string());
                return seen;
            }
            Ok(Err(_)) => {
                seen.push("closed".to_string());
                return seen;
            }
            Ok(Ok(_)) => {}
        }
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let mut payload = vec![0; length];
        if stream.read_exact(&mut payload).await.is_err() {
            seen.push("closed".to_string());
            return seen;
        }
        let acked = flags & ACK != 0;
        match kind {
            SETTINGS if !acked => {
                let _ = stream
                    .write_all(&[0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0])
                    .await;
            }
            PING if !acked => {
                let mut pong = vec![0, 0, 8, PING, ACK, 0, 0, 0, 0];
                pong.extend(&payload);
                let _ = stream.write_all(&pong).await;
            }
            GOAWAY if seen.last().map(String::as_str) != Some("goaway") => {
                seen.push("goaway".to_string());
            }
            _ => {}
        }
    }
}

/// Sends GET / on a new connection every 300 ms until an answer says `connection: close`
/// (or none comes, or CLOSE_BOUND passes): whether answers kept the connection first, the
/// closing answer's lines, and how the connection ended.
async fn ask_until_told_to_close(port: u16) -> Vec<String> {
    let mut stream = connect(port).await;
    let mut kept = 0;
    let deadline = tokio::time::Instant::now() + CLOSE_BOUND;
    loop {
        if tokio::time::Instant::now() >= deadline {
            return vec!["never told to close".into()];
        }
        stream.get_mut().write_all(GET).await.unwrap();
        let answer = read_answer(&mut stream).await;
        if answer.is_empty() || answer.iter().any(|l| l == "header connection: close") {
            let mut seen = vec![format!("kept for some answers: {}", kept > 0)];
            seen.extend(answer);
            seen.extend(ending(&mut stream).await);
            return seen;
        }
        kept += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A request on a new connection, and another 3.5 s after the first answer: the drain of
/// a connection idle for 2 s has begun by then, and lasts until 7 s.
async fn ask_again_while_draining(port: u16) -> Vec<String> {
    let mut stream = connect(port).await;
    stream.get_mut().write_all(GET).await.unwrap();
    let mut seen = read_answer(&mut stream).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stream.get_mut().write_all(GET).await.unwrap();
    seen.extend(read_answer(&mut stream).await);
    seen.extend(ending(&mut stream).await);
    seen
}

/// A connection on which the client never sends a byte: how it ends.
async fn say_nothing(port: u16) -> Vec<String> {
    ending(&mut connect(port).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_old_connections_are_drained_as_envoy_drains_them() {
    let proxies = SideBySide::start("connection-limits").await;
    // Each scenario on its own connections, all at once.
    let (silent, drained, http2_idle, aged, http2_aged) = tokio::join!(
        proxies.both(Front::Idle, say_nothing),
        proxies.both(Front::Idle, ask_again_while_draining),
        proxies.both(Front::Idle, http2_frames_until_closed),
        proxies.both(Front::Aged, ask_until_told_to_close),
        proxies.both(Front::Aged, http2_frames_until_closed),
    );
    let mut problems = Vec::new();
    // A connection that never says anything is closed once idle (Envoy has no codec for it
    // to drain).
    problems.extend(check("a silent connection", silent, &["closed"]));
    // After an answer the connection idles out and drains: a request then is answered with
    // `connection: close`, and the connection closes.
    problems.extend(check(
        "a request while draining",
        drained,
        &[
            "HTTP/1.1 200 OK",
            "body \"ok\"",
            "HTTP/1.1 200 OK",
            "header connection: close",
            "body \"ok\"",
            "closed",
        ],
    ));
    // An idle HTTP/2 connection gets a GOAWAY, then closes.
    problems.extend(check(
        "an idle HTTP/2 connection",
        http2_idle,
        &["goaway", "closed"],
    ));
    // A busy HTTP/1.1 connection is drained at its max duration: an answer says
    // `connection: close`, and it closes.
    problems.extend(check(
        "a connection past its max duration",
        aged,
        &[
            "kept for some answers: true",
            "HTTP/1.1 200 OK",
            "header connection: close",
            "closed",
        ],
    ));
    // An HTTP/2 connection past its max duration gets a GOAWAY, then closes.
    problems.extend(check(
        "an old HTTP/2 connection",
        http2_aged,
        &["goaway", "closed"],
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
