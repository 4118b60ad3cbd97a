//! An HTTP/1.1 connection between two exchanges: the socket alone, no hyper connection and no
//! buffer, waiting for the client's next request. Plain sockets are peeked (nothing read);
//! TLS sockets wait on the TCP socket's readiness and read the first bytes of the request
//! only once they are there (into a per-thread buffer, keeping only what arrived), since a TLS
//! record cannot be peeked.
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
    /// Waits for the client's next request. `Some` with the bytes of it already read (none
    /// when the socket could be peeked), `None` when the client closes or `drain` fires.
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
    async fn next_request(&mut self, drain: &CancellationToken) -> Option<Bytes> {
        let mut byte = [0u8; 1];
        tokio::select! {
            peeked = self.peek(&mut byte) => matches!(peeked, Ok(1)).then(Bytes::new),
            _ = drain.cancelled() => None,
        }
    }

    async fn next_head_asks_upgrade(&mut self, already_read: &mut Bytes) -> bool {
        // A whole head already read: the socket may hold nothing more (peeking would wait).
        if let Some(asks) = super::upgrade::head_asks_upgrade(already_read) {
            return asks;
        }
        for _ in 0..20 {
            let verdict =
                std::future::poll_fn(|cx| peek_head_asks_upgrade(self, already_read, cx)).await;
            match verdict {
                Some(asks) => return asks,
                // A head still arriving: look again shortly.
                None => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
            }
        }
        false
    }
}

/// The longest head looked at for an Upgrade header; a longer one is taken as not asking.
const LOOK_AT_MOST: usize = 8 * 1024;

thread_local! {
    /// Where request heads are peeked: once per worker thread, not once per request.
    static PEEKED: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; LOOK_AT_MOST].into_boxed_slice());
}

/// Peeks the head waiting on `stream` after `already_read`: whether it asks for an upgrade,
/// `None` while it is incomplete.
fn peek_head_asks_upgrade(
    stream: &TcpStream,
    already_read: &Bytes,
    cx: &mut Context<'_>,
) -> Poll<Option<bool>> {
    PEEKED.with_borrow_mut(|scratch| {
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

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let count = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..count]);
            self.prefix.advance(count);
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
