//! WebSocket upgrades, when a listener's connection manager allows them: telling an upgrade
//! request from others (in a request, and in the bytes of a request head not yet parsed), and
//! joining the client's and the backend's upgraded connections into one tunnel once the
//! backend answers 101 — a tunnel that ends, as Envoy ends an upgraded stream, once nothing
//! has crossed it for the stream idle timeout. Must not: route or choose backends
//! (proxy/http.rs does).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::timeouts::StreamClock;

/// A request that asks to become a WebSocket: `Upgrade: websocket` and `Connection: upgrade`.
pub fn is_websocket_request(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::UPGRADE, "websocket") && has_token(header::CONNECTION, "upgrade")
}

/// Whether the request head at the start of `bytes` (complete or not) carries an Upgrade
/// header; None when the head is not complete yet and shows none so far.
pub fn head_asks_upgrade(bytes: &[u8]) -> Option<bool> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let head = &bytes[..end.unwrap_or(bytes.len())];
    let found = head
        .split(|b| *b == b'\n')
        .skip(1)
        .any(|line| line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"upgrade:"));
    match (found, end) {
        (true, _) => Some(true),
        (false, Some(_)) => Some(false),
        (false, None) => None,
    }
}

/// The headers an upgrade hop needs back after hop-by-hop headers were removed.
pub fn restore_upgrade_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Joins the two sides once both have upgraded; ends when either closes, or when `clock` (the
/// request's stream idle clock) sees nothing go to or come from the client for its timeout.
pub fn tunnel(client: OnUpgrade, backend: OnUpgrade, clock: Option<Arc<StreamClock>>) {
    tokio::spawn(async move {
        let (Ok(client), Ok(backend)) = tokio::join!(client, backend) else {
            return;
        };
        let (client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
        let Some(clock) = clock else {
            let mut client = client;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
            return;
        };
        let mut client = Watched {
            inner: client,
            clock: clock.clone(),
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
            () = clock.expired() => {}
        }
    });
}

/// The client's side of a tunnel, each byte read or written counting as activity.
struct Watched<T> {
    inner: T,
    clock: Arc<StreamClock>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.clock.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_heads_are_told_from_others_even_unfinished() {
        let upgrade =
            b"GET /chat HTTP/1.1\r\nHost: a\r\nUPGRADE: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(head_asks_upgrade(upgrade), Some(true));
        assert_eq!(
            head_asks_upgrade(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(false)
        );
        assert_eq!(head_asks_upgrade(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        // Only the head counts: a body that says "upgrade:" is not an upgrade.
        let body = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nupgrade: no";
        assert_eq!(head_asks_upgrade(body), Some(false));
    }

    #[test]
    fn a_websocket_request_needs_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_websocket_request(&headers));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_websocket_request(&headers));
    }
}
