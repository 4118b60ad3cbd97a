//! An HTTP/1.1 connection between two exchanges: the socket alone, no hyper connection and no
//! buffer, waiting for the client's next request. Plain sockets read its first bytes into a
//! per-thread scratch buffer and keep a copy of only what arrived; TLS sockets wait on the
//! TCP socket's readiness and read the first bytes of the request only once they are there
//! (into a per-thread buffer, keeping only what arrived), since a TLS record cannot be peeked.
//!
//! Must not: parse HTTP beyond finding an Upgrade header in a request head; that is hyper's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::tls_unbuffered::UnbufferedTlsStream;

/// A downstream socket that can wait for a request with nothing allocated.
pub trait Idle: AsyncRead + AsyncWrite + Unpin + Send {
    /// Waits for the client's next request. `Some` with the bytes of it already read, `None`
    /// when the client closes or `drain` fires.
    fn next_request(
        &mut self,
        drain: &CancellationToken,
    ) -> impl Future<Output = Option<Bytes>> + Send;

    /// Whether the request head waiting on the socket, after `already_read`, asks for an
    /// upgrade. May read more of the head into `already_read`. A head that cannot be seen
    /// whole is taken as not asking.
    fn next_head_asks_upgrade(
        &mut self,
        already_read: &mut Bytes,
    ) -> impl Future<Output = bool> + Send;
}

impl Idle for TcpStream {
    /// Reads what the client sent into the worker's scratch buffer and returns a copy of just
    /// that: one system call for the whole head in the usual case, where peeking for the
    /// request and then for an Upgrade header and hyper's own read made three.
    async fn next_request(&mut self, drain: &CancellationToken) -> Option<Bytes> {
        tokio::select! {
            read = std::future::poll_fn(|cx| read_into_scratch(self, cx)) => read,
            _ = drain.cancelled() => None,
        }
    }

    async fn next_head_asks_upgrade(&mut self, already_read: &mut Bytes) -> bool {
        // A whole head already read: the socket may hold nothing more (peeking would wait).
        if let Some(asks) = super::upgrade::head_asks_upgrade(already_read) {
            return asks;
        }
        // A head still arriving is looked at for about 20 ms; the socket may hold nothing yet
        // (the start of the head was read, not peeked), so each look waits at most 1 ms: a
        // head that stops arriving then goes to hyper, whose stream idle clock answers it.
        let pause = std::time::Duration::from_millis(1);
        for _ in 0..20 {
            let peeking = std::future::poll_fn(|cx| peek_head_asks_upgrade(self, already_read, cx));
            match tokio::time::timeout(pause, peeking).await {
                Ok(Some(asks)) => return asks,
                Ok(None) => tokio::time::sleep(pause).await,
                Err(_) => {}
            }
        }
        false
    }
}

/// The longest head looked at for an Upgrade header; a longer one is taken as not asking.
const LOOK_AT_MOST: usize = 8 * 1024;

thread_local! {
    /// Where request heads are read or peeked: once per worker thread, not once per request.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; LOOK_AT_MOST].into_boxed_slice());
}

/// Runs `use_it` with the worker's scratch buffer (room for the longest head looked at).
pub fn with_scratch<R>(use_it: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with_borrow_mut(|scratch| use_it(&mut scratch[..]))
}

/// Reads what is waiting on `stream` (a request head, usually whole) into the worker's
/// scratch buffer; a copy of the bytes read, `None` when the client closed or failed.
fn read_into_scratch(stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut read = ReadBuf::new(&mut scratch[..]);
        // Through AsyncRead: a read that leaves room clears the socket's readiness, so the
        // wait after the next exchange goes to epoll without a read that would block first.
        match Pin::new(stream).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                Poll::Ready(Some(Bytes::copy_from_slice(read.filled())))
            }
            Poll::Ready(_) => Poll::Ready(None),
        }
    })
}

/// Peeks the head waiting on `stream` after `already_read`: whether it asks for an upgrade,
/// `None` while it is incomplete.
fn peek_head_asks_upgrade(
    stream: &TcpStream,
    already_read: &Bytes,
    cx: &mut Context<'_>,
) -> Poll<Option<bool>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let room = LOOK_AT_MOST.saturating_sub(already_read.len()).max(1);
        let mut peeked = ReadBuf::new(&mut scratch[..room]);
        let count = match stream.poll_peek(cx, &mut peeked) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Some(false)),
            Poll::Ready(Ok(count)) => count,
        };
        let verdict = if already_read.is_empty() {
            super::upgrade::head_asks_upgrade(peeked.filled())
        } else {
            let mut head = already_read.to_vec();
            head.extend_from_slice(peeked.filled());
            super::upgrade::head_asks_upgrade(&head)
        };
        Poll::Ready(match verdict {
            Some(asks) => Some(asks),
            None if count == 0 || already_read.len() + count >= LOOK_AT_MOST => Some(false),
            None => None,
        })
    })
}

/// Boxed: every layer of a connection's future that holds the stream would otherwise hold
/// its rustls state again.
impl Idle for Box<UnbufferedTlsStream> {
    async fn next_request(&mut self, drain: &CancellationToken) -> Option<Bytes> {
        if !self.has_plaintext() {
            // Peeked, not `readable()`: readiness left over from the last read would end the
            // wait at once and leave the read below waiting.
            let mut byte = [0u8; 1];
            tokio::select! {
                peeked = self.tcp().peek(&mut byte) => {
                    if !matches!(peeked, Ok(1)) {
                        return None;
                    }
                }
                _ = drain.cancelled() => return None,
            }
        }
        // The client sent something: read into the thread's scratch buffer, keep only what
        // arrived. A record without application data (a key update) makes this wait for the
        // next one.
        let read = std::future::poll_fn(|cx| {
            FIRST_READ_ROOM.with_borrow_mut(|scratch| {
                let mut room = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut **self).poll_read(cx, &mut room) {
                    Poll::Ready(Ok(())) if !room.filled().is_empty() => {
                        Poll::Ready(Some(Bytes::copy_from_slice(room.filled())))
                    }
                    Poll::Ready(_) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
        });
        tokio::select! {
            read = read => read,
            _ = drain.cancelled() => None,
        }
    }

    async fn next_head_asks_upgrade(&mut self, already_read: &mut Bytes) -> bool {
        // What the first read brought is all that is looked at: a head longer than that is
        // served by a connection that can upgrade anyway (the caller's choice), so only the
        // answer "no" needs to be sure.
        super::upgrade::head_asks_upgrade(already_read).unwrap_or(true)
    }
}

/// Room for the first read of a request over TLS: most request heads fit.
const FIRST_READ: usize = 4096;

thread_local! {
    /// Where the first bytes of a request over TLS are read: once per worker thread; each
    /// request keeps only as many bytes as arrived.
    static FIRST_READ_ROOM: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; FIRST_READ].into_boxed_slice());
}

/// A socket that first yields bytes already read from it.
pub struct Rewind<T> {
    pub prefix: Bytes,
    pub inner: T,
}

/// Moves what `buf` has room for of `prefix` (bytes read earlier) into it; false when the
/// prefix is spent and the socket itself is next.
pub fn give_prefix(prefix: &mut Bytes, buf: &mut ReadBuf<'_>) -> bool {
    if prefix.is_empty() {
        return false;
    }
    let count = prefix.len().min(buf.remaining());
    buf.put_slice(&prefix[..count]);
    prefix.advance(count);
    true
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if give_prefix(&mut self.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
    use tokio::io::AsyncWriteExt;

    /// A connected pair on loopback: (the client's end, the proxy's end).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_request_head_is_read_whole_and_its_upgrade_seen_without_more_reads() {
        let (mut client, mut server) = pair().await;
        let head =
            b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
        client.write_all(head).await.unwrap();
        let drain = CancellationToken::new();
        let mut read = server.next_request(&drain).await.expect("a request");
        assert_eq!(&read[..], &head[..]);
        assert!(server.next_head_asks_upgrade(&mut read).await);
        assert_eq!(&read[..], &head[..], "nothing more was read");
    }

    #[tokio::test]
    async fn a_head_that_stops_arriving_is_handed_on_as_not_asking() {
        let (mut client, mut server) = pair().await;
        let start = b"GET / HTTP/1.1\r\nhost: a\r\n";
        client.write_all(start).await.unwrap();
        let drain = CancellationToken::new();
        let mut read = server.next_request(&drain).await.expect("a request");
        // The rest never comes: the answer must not wait for it (hyper's clock takes over).
        let verdict = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            server.next_head_asks_upgrade(&mut read),
        )
        .await;
        assert_eq!(verdict, Ok(false));
        assert_eq!(&read[..], &start[..]);
    }

    #[tokio::test]
    async fn a_closed_client_ends_the_wait() {
        let (client, mut server) = pair().await;
        drop(client);
        assert_eq!(server.next_request(&CancellationToken::new()).await, None);
    }
}
