//! A hyper HTTP/1.1 connection kept across exchanges while its client is busy. Building one
//! per exchange (so that an idle client holds no buffers, proxy/between_exchanges.rs) costs
//! its two buffers, its dispatcher and a boxed future per request; a client whose next
//! request follows within [`LINGER`] keeps the connection it has. The socket goes back to
//! waiting alone once a plain exchange has been followed by [`LINGER`] of silence, or when the
//! next request's head, seen as it arrives, asks for an upgrade (or is not whole in its first
//! read): such a request needs a connection built for it.
//!
//! Must not: parse HTTP beyond finding an Upgrade header in a request head (hyper's job), or
//! keep a connection whose last exchange was not plain (a body, an upgrade, `close`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a hyper connection waits for its client's next request before it lets go of the
/// socket. Long enough for a busy client's next request (a round trip and its own work), short
/// enough that a client going idle holds hyper's buffers only briefly.
pub const LINGER: Duration = Duration::from_millis(20);

/// Counts of one socket's exchanges, written by the request handler and read by the loop that
/// decides when hyper may let go of the socket.
#[derive(Default)]
pub struct Exchanges {
    pub started: AtomicU64,
    /// The number of the last exchange after which the socket may be handed back (0: none).
    pub releasable_after: AtomicU64,
    /// Whether the hyper connection's reader holds back the next request's head.
    pub head_held: AtomicBool,
}

impl Exchanges {
    /// The number of the exchange the connection is past, when the last exchange hyper started
    /// (after `before`) was a plain one that has been answered: what arrives now is the start
    /// of the next request.
    pub fn past(&self, before: u64) -> Option<u64> {
        let started = self.started.load(Ordering::Relaxed);
        let releasable = self.releasable_after.load(Ordering::Relaxed);
        (releasable == started && started > before).then_some(started)
    }
}

/// The socket as one hyper connection reads it: first the bytes already read from it, then
/// the socket; when the listener allows upgrades, the first read of each next request's head
/// is looked at before hyper gets it, and held back if hyper should not serve it.
pub struct Watched<'a, Io> {
    prefix: Bytes,
    inner: &'a mut Io,
    exchanges: &'a Exchanges,
    /// The exchanges started before this hyper connection.
    before: u64,
    watch_upgrades: bool,
    /// The exchange whose successor's head has been looked at.
    looked_past: u64,
    /// The start of a head hyper should not serve; the caller hands the socket back.
    held: Option<Bytes>,
}

impl<'a, Io> Watched<'a, Io> {
    pub fn new(
        prefix: Bytes,
        inner: &'a mut Io,
        exchanges: &'a Exchanges,
        watch_upgrades: bool,
    ) -> Self {
        let before = exchanges.started.load(Ordering::Relaxed);
        exchanges.head_held.store(false, Ordering::Relaxed);
        Watched {
            prefix,
            inner,
            exchanges,
            before,
            watch_upgrades,
            looked_past: 0,
            held: None,
        }
    }

    /// The exchanges started before this hyper connection.
    pub fn before(&self) -> u64 {
        self.before
    }

    /// The bytes held back from hyper, if any.
    pub fn into_held(self) -> Option<Bytes> {
        self.held
    }
}

impl<Io: AsyncRead + Unpin> Watched<'_, Io> {
    /// Reads the first bytes of the next request's head and gives them to hyper only when they
    /// are a whole head that asks for no upgrade.
    fn read_next_head(
        &mut self,
        past: u64,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        super::between_exchanges::with_scratch(|scratch| {
            let room = scratch.len().min(buf.remaining());
            let mut read = ReadBuf::new(&mut scratch[..room]);
            match Pin::new(&mut *self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    let head = read.filled();
                    if super::upgrade::head_asks_upgrade(head) == Some(false) {
                        buf.put_slice(head);
                        self.looked_past = past;
                        Poll::Ready(Ok(()))
                    } else {
                        // hyper is told nothing; the caller sees the held head and stops it.
                        self.held = Some(Bytes::copy_from_slice(head));
                        self.exchanges.head_held.store(true, Ordering::Relaxed);
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
                other => other,
            }
        })
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<'_, Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if super::between_exchanges::give_prefix(&mut self.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        if self.held.is_some() {
            return Poll::Pending;
        }
        if self.watch_upgrades {
            if let Some(past) = self.exchanges.past(self.before) {
                if past != self.looked_past {
                    return self.read_next_head(past, cx, buf);
                }
            }
        }
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<'_, Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn past_one_plain_exchange(exchanges: &Exchanges) {
        exchanges.started.store(1, Ordering::Relaxed);
        exchanges.releasable_after.store(1, Ordering::Relaxed);
    }

    #[tokio::test]
    async fn a_plain_next_head_goes_to_hyper_and_an_upgrade_is_held_back() {
        let (mut client, mut server) = pair().await;
        let exchanges = Exchanges::default();
        let mut watched = Watched::new(Bytes::new(), &mut server, &exchanges, true);
        past_one_plain_exchange(&exchanges);
        client
            .write_all(b"GET /a HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let mut got = [0u8; 256];
        let count = watched.read(&mut got).await.unwrap();
        assert_eq!(&got[..count], b"GET /a HTTP/1.1\r\nhost: a\r\n\r\n");
        assert!(!exchanges.head_held.load(Ordering::Relaxed));

        // The next exchange, answered; its successor asks for a WebSocket.
        exchanges.started.store(2, Ordering::Relaxed);
        exchanges.releasable_after.store(2, Ordering::Relaxed);
        let upgrade =
            b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
        client.write_all(upgrade).await.unwrap();
        let read = tokio::time::timeout(Duration::from_millis(300), watched.read(&mut got)).await;
        assert!(
            read.is_err(),
            "hyper is given nothing of an upgrade request"
        );
        assert!(exchanges.head_held.load(Ordering::Relaxed));
        assert_eq!(watched.into_held().as_deref(), Some(&upgrade[..]));
    }

    #[tokio::test]
    async fn mid_exchange_reads_are_not_looked_at() {
        let (mut client, mut server) = pair().await;
        let exchanges = Exchanges::default();
        let mut watched = Watched::new(Bytes::from_static(b"PO"), &mut server, &exchanges, true);
        // An exchange with a body is under way: its bytes pass as they come.
        exchanges.started.store(1, Ordering::Relaxed);
        client.write_all(b"upgrade: body bytes").await.unwrap();
        let mut got = Vec::new();
        while got.len() < 21 {
            let mut chunk = [0u8; 64];
            let count = watched.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..count]);
        }
        assert_eq!(&got[..], b"POupgrade: body bytes");
        assert!(!exchanges.head_held.load(Ordering::Relaxed));
    }
}
