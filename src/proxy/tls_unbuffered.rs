//! A terminated TLS connection over rustls's unbuffered API: this side owns every buffer, so a
//! connection between two exchanges holds none. Received records are read into a per-thread
//! scratch buffer and decrypted from there; only a record that has not fully arrived is kept
//! (in `incoming`), only decrypted bytes the reader has not taken are kept (in `plaintext`),
//! and only encrypted bytes the socket has not taken are kept (in `outgoing`). Each is freed
//! once it is empty. The buffered rustls connection (tokio-rustls) keeps a 4 KiB read buffer
//! for as long as the connection lives.
//!
//! Behaves as tokio-rustls's server stream does towards hyper and the TCP proxy: a peer's
//! close_notify reads as the end of the stream, a TCP end without it as `UnexpectedEof`, a
//! shutdown sends close_notify before the FIN, a TLS failure sends rustls's alert and reads as
//! `InvalidData`. Post-handshake messages (TLS 1.3 session tickets, key updates) are sent as
//! rustls produces them.
//!
//! Must not: choose certificates or filter chains (proxy/tls.rs does, before the handshake),
//! nor know anything of HTTP.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use tokio_rustls::rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus,
};
use tokio_rustls::rustls::{Error as TlsError, ServerConfig};

use super::rewrite::TlsSession;

/// The most a socket read takes at once: two full records (16 KiB of payload and up to 2 KiB
/// of TLS 1.2's expansion each). A record that has not fully arrived is at most one of them.
const READ_AT_MOST: usize = 2 * (5 + 16 * 1024 + 2048);

/// The most plaintext encrypted by one write: four full records.
const ENCRYPT_AT_MOST: usize = 64 * 1024;

thread_local! {
    /// Where received records are read and decrypted: once per worker thread.
    static RECEIVED: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_AT_MOST].into_boxed_slice());
    /// Where records are encrypted before the socket takes them: once per worker thread.
    static ENCRYPTED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A server-side TLS stream whose handshake is complete.
pub struct UnbufferedTlsStream {
    tcp: TcpStream,
    connection: UnbufferedServerConnection,
    /// What the handshake settled, named for headers.
    session: Arc<TlsSession>,
    /// The start of a record that has not fully arrived.
    incoming: Vec<u8>,
    /// Decrypted bytes the reader has not taken yet, from `plaintext_taken` on.
    plaintext: Vec<u8>,
    plaintext_taken: usize,
    /// Encrypted bytes the socket has not taken yet, from `outgoing_sent` on.
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    /// The peer sent close_notify (or its TCP end arrived): nothing more is read.
    read_closed: bool,
    /// This side sent close_notify: nothing more is written.
    write_closed: bool,
}

/// Where rustls's state machine stopped once it had nothing more to hand out.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Settled {
    /// The handshake waits for more of the client's records.
    Handshaking,
    /// Application data may flow.
    Open,
    /// Both sides sent close_notify.
    Closed,
}

impl UnbufferedTlsStream {
    /// Completes the handshake on `tcp` with `config`, starting from the bytes already read
    /// from it (the ClientHello, read to choose the config). Sends rustls's alert when the
    /// handshake fails.
    pub async fn handshake(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
        already_read: Vec<u8>,
        server_name: Option<String>,
    ) -> io::Result<UnbufferedTlsStream> {
        let connection = UnbufferedServerConnection::new(config).map_err(invalid_data)?;
        let mut stream = UnbufferedTlsStream {
            tcp,
            connection,
            // Named once the handshake has settled it.
            session: Arc::new(TlsSession {
                version: "",
                cipher: "",
                server_name: None,
            }),
            incoming: already_read,
            plaintext: Vec::new(),
            plaintext_taken: 0,
            outgoing: Vec::new(),
            outgoing_sent: 0,
            read_closed: false,
            write_closed: false,
        };
        loop {
            let mut incoming = std::mem::take(&mut stream.incoming);
            let processed = stream.process(&mut incoming, |plaintext, data| {
                plaintext.extend_from_slice(data)
            });
            let settled = match processed {
                Ok((consumed, settled)) => {
                    incoming.drain(..consumed);
                    settled
                }
                Err(error) => {
                    // The alert rustls queued for the failure, on a best-effort basis.
                    let _ = stream.send_outgoing().await;
                    return Err(invalid_data(error));
                }
            };
            stream.incoming = incoming;
            stream.send_outgoing().await?;
            match settled {
                Settled::Open => break,
                Settled::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                Settled::Handshaking if stream.read_closed => {
                    return Err(io::ErrorKind::UnexpectedEof.into())
                }
                Settled::Handshaking => {
                    stream.incoming.reserve(4096);
                    if stream.tcp.read_buf(&mut stream.incoming).await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "tls handshake eof",
                        ));
                    }
                }
            }
        }
        stream.session = Arc::new(session_of(&stream.connection, server_name));
        stream.incoming.shrink_to_fit();
        stream.plaintext.shrink_to_fit();
        Ok(stream)
    }

    /// The TCP socket under the stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// What the handshake settled (version, suite, SNI).
    pub fn session(&self) -> Arc<TlsSession> {
        self.session.clone()
    }

    /// The protocol the client chose by ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.connection.alpn_protocol()
    }

    /// Whether decrypted bytes wait for the reader (a pipelined request): the TCP socket
    /// would then not become readable for them.
    pub fn has_plaintext(&self) -> bool {
        self.plaintext_taken < self.plaintext.len()
    }

    /// Bytes this stream holds for the connection, for tests of what an idle one keeps.
    pub fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.plaintext.capacity() + self.outgoing.capacity()
    }

    /// Runs rustls over the records in `tls` until it has nothing more to hand out: what it
    /// wants sent goes to `outgoing`, what it decrypted to `deliver` (given `plaintext` for
    /// what does not fit where it goes). Returns how many bytes of `tls` it consumed.
    fn process(
        &mut self,
        tls: &mut [u8],
        mut deliver: impl FnMut(&mut Vec<u8>, &[u8]),
    ) -> Result<(usize, Settled), TlsError> {
        let mut consumed = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.connection.process_tls_records(&mut tls[consumed..]);
            let settled = match state {
                Err(error) => {
                    queue_alert(&mut self.connection, &mut self.outgoing);
                    return Err(error);
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(record) = traffic.next_record() {
                        deliver(&mut self.plaintext, record?.payload);
                    }
                    None
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    append_exactly(&mut self.outgoing, |room| match encode.encode(room) {
                        Ok(written) => Ok(written),
                        Err(EncodeError::InsufficientSize(short)) => Err(short.required_size),
                        Err(EncodeError::AlreadyEncoded) => Ok(0),
                    });
                    None
                }
                // Queued in `outgoing`, which is sent before anything encrypted later.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    None
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.read_closed = true;
                    None
                }
                Ok(ConnectionState::BlockedHandshake) => Some(Settled::Handshaking),
                Ok(ConnectionState::WriteTraffic(_)) => Some(Settled::Open),
                Ok(ConnectionState::Closed) => Some(Settled::Closed),
                // Early data is never offered (the config's max_early_data_size is 0).
                Ok(_) => return Err(TlsError::General("unexpected TLS state".into())),
            };
            consumed += discard;
            if let Some(settled) = settled {
                return Ok((consumed, settled));
            }
        }
    }

    /// Runs rustls with no new records (to queue what it has to send), then hands its
    /// WriteTraffic state to `write`.
    fn with_write_traffic<R>(
        &mut self,
        write: impl FnOnce(
            &mut tokio_rustls::rustls::unbuffered::WriteTraffic<'_, ServerConnectionData>,
            &mut Vec<u8>,
        ) -> R,
    ) -> io::Result<R> {
        if self.write_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let (_, settled) = self
            .process(&mut [], |plaintext, data| plaintext.extend_from_slice(data))
            .map_err(invalid_data)?;
        if settled != Settled::Open {
            return Err(io::ErrorKind::NotConnected.into());
        }
        match self.connection.process_tls_records(&mut []).state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                Ok(write(&mut traffic, &mut self.outgoing))
            }
            Ok(_) => Err(io::ErrorKind::NotConnected.into()),
            Err(error) => Err(invalid_data(error)),
        }
    }

    /// Sends what `outgoing` holds, then frees it.
    async fn send_outgoing(&mut self) -> io::Result<()> {
        if self.outgoing_sent < self.outgoing.len() {
            self.tcp
                .write_all(&self.outgoing[self.outgoing_sent..])
                .await?;
        }
        self.outgoing = Vec::new();
        self.outgoing_sent = 0;
        Ok(())
    }

    /// Sends what `outgoing` holds; ready once it is all sent (and freed).
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing_sent < self.outgoing.len() {
            let unsent = &self.outgoing[self.outgoing_sent..];
            match ready!(Pin::new(&mut self.tcp).poll_write(cx, unsent))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                sent => self.outgoing_sent += sent,
            }
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.outgoing_sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Copies decrypted bytes the reader has not taken into `buf`, freeing them once taken.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) {
        let waiting = &self.plaintext[self.plaintext_taken..];
        let count = waiting.len().min(buf.remaining());
        buf.put_slice(&waiting[..count]);
        self.plaintext_taken += count;
        if self.plaintext_taken == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.plaintext_taken = 0;
        }
    }

    /// One socket read into the thread's scratch buffer (after the record held from the last
    /// one), decrypted into `buf`. Ready with `false` when it brought no plaintext (a key
    /// update, a partial record).
    fn poll_read_records(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<bool>> {
        RECEIVED.with_borrow_mut(|scratch| {
            let held = self.incoming.len();
            scratch[..held].copy_from_slice(&self.incoming);
            let mut fresh = ReadBuf::new(&mut scratch[held..]);
            ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut fresh))?;
            let arrived = fresh.filled().len();
            if arrived == 0 {
                self.read_closed = true;
                self.incoming = Vec::new();
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed connection without sending TLS close_notify",
                )));
            }
            let before = buf.filled().len();
            let tls = &mut scratch[..held + arrived];
            let processed = self.process(tls, |plaintext, data| {
                let fits = data.len().min(buf.remaining());
                buf.put_slice(&data[..fits]);
                plaintext.extend_from_slice(&data[fits..]);
            });
            let (consumed, _) = match processed {
                Ok(done) => done,
                Err(error) => {
                    self.incoming = Vec::new();
                    // The alert, on a best-effort basis.
                    let _ = self.poll_send_outgoing(cx);
                    return Poll::Ready(Err(invalid_data(error)));
                }
            };
            let partial = &tls[consumed..];
            if partial.is_empty() || self.read_closed {
                self.incoming = Vec::new();
            } else {
                self.incoming.clear();
                self.incoming.extend_from_slice(partial);
            }
            Poll::Ready(Ok(buf.filled().len() > before || self.has_plaintext()))
        })
    }
}

/// Appends to `buffer` what `fill` writes into room of exactly the size it asks for (it
/// answers `Err(size)` when the room given is too small, and leaves it untouched).
fn append_exactly(buffer: &mut Vec<u8>, mut fill: impl FnMut(&mut [u8]) -> Result<usize, usize>) {
    let start = buffer.len();
    let mut room = 0;
    loop {
        buffer.resize(start + room, 0);
        match fill(&mut buffer[start..]) {
            Ok(written) => {
                buffer.truncate(start + written);
                return;
            }
            Err(needed) if needed > room => room = needed,
            Err(_) => {
                buffer.truncate(start);
                return;
            }
        }
    }
}

/// Queues the alert rustls produced for a failure (it hands it out as handshake data).
fn queue_alert(connection: &mut UnbufferedServerConnection, outgoing: &mut Vec<u8>) {
    for _ in 0..4 {
        match connection.process_tls_records(&mut []).state {
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                append_exactly(outgoing, |room| match encode.encode(room) {
                    Ok(written) => Ok(written),
                    Err(EncodeError::InsufficientSize(short)) => Err(short.required_size),
                    Err(EncodeError::AlreadyEncoded) => Ok(0),
                });
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
            _ => return,
        }
    }
}

fn invalid_data(error: TlsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// What the handshake settled, named as Envoy names it.
fn session_of(connection: &UnbufferedServerConnection, server_name: Option<String>) -> TlsSession {
    super::tls::session_named(
        connection.protocol_version(),
        connection.negotiated_cipher_suite(),
        server_name,
    )
}

impl AsyncRead for UnbufferedTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.has_plaintext() {
                this.take_plaintext(buf);
                return Poll::Ready(Ok(()));
            }
            if this.read_closed || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // A key update's answer or a session ticket waiting for the socket: sent while
            // reading too, as the client may wait for it before sending more.
            if let Poll::Ready(Err(error)) = this.poll_send_outgoing(cx) {
                return Poll::Ready(Err(error));
            }
            if ready!(this.poll_read_records(cx, buf))? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for UnbufferedTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let data = &data[..data.len().min(ENCRYPT_AT_MOST)];
        ENCRYPTED.with_borrow_mut(|scratch| {
            scratch.clear();
            let encrypted = this.with_write_traffic(|traffic, outgoing| {
                // Behind what rustls queued first (a session ticket), in order.
                let into = if outgoing.is_empty() {
                    &mut *scratch
                } else {
                    outgoing
                };
                let mut failure = None;
                append_exactly(into, |room| match traffic.encrypt(data, room) {
                    Ok(written) => Ok(written),
                    Err(EncryptError::InsufficientSize(short)) => Err(short.required_size),
                    Err(EncryptError::EncryptExhausted) => {
                        failure = Some(io::Error::other("TLS encrypter exhausted"));
                        Ok(0)
                    }
                });
                failure
            })?;
            if let Some(error) = encrypted {
                return Poll::Ready(Err(error));
            }
            // The socket takes what it can now; the rest waits in `outgoing`.
            let mut sent = 0;
            while sent < scratch.len() {
                match Pin::new(&mut this.tcp).poll_write(cx, &scratch[sent..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(count)) => sent += count,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => break,
                }
            }
            this.outgoing.extend_from_slice(&scratch[sent..]);
            if scratch.capacity() > 2 * (ENCRYPT_AT_MOST + 4096) {
                *scratch = Vec::new();
            }
            Poll::Ready(Ok(data.len()))
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            // Behind anything unsent, then no more writes.
            let queued = this.with_write_traffic(|traffic, outgoing| {
                append_exactly(outgoing, |room| match traffic.queue_close_notify(room) {
                    Ok(written) => Ok(written),
                    Err(EncryptError::InsufficientSize(short)) => Err(short.required_size),
                    Err(EncryptError::EncryptExhausted) => Ok(0),
                })
            });
            this.write_closed = true;
            if let Err(error) = queued {
                // Nothing more can be said in TLS (a failed connection); still end the TCP one.
                tracing::trace!(%error, "no close_notify");
            }
        }
        ready!(this.poll_send_outgoing(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "tls_unbuffered_tests.rs"]
mod tests;
