//! HTTP/1.1 exchanges the sidecar drives itself on a kept upstream connection, from the
//! request's own task: the head written, the answer's head read and parsed in place
//! (proxy/http1_codec.rs), and the answer's body read by whoever polls it, which puts the
//! connection back in its worker's pool (proxy/http1_pool.rs) as soon as the body's last byte
//! is read. hyper's client would drive the same exchange from a task of its own, the request
//! and each piece of the answer crossing to it and back over channels.
//!
//! Must not: choose connections or requests (the pool does), or change what it reads.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::http1_codec::{
    encode_request_head, parse_response_head, ChunkedDecoder, CodecError, Decoded, Framing,
};
use super::request_body::BoxError;
use super::upstream_tls::UpstreamIo;

/// How much room a read asks for at least.
const READ_ROOM: usize = 8 * 1024;

/// A connection between exchanges: nothing is left in its buffer.
pub struct InlineConnection {
    io: UpstreamIo,
    /// What has been read and not yet taken.
    buffer: BytesMut,
    /// Where each request head is written before it goes out, kept for the next.
    head: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    Io(std::io::Error),
    Codec(CodecError),
    /// The backend closed the connection before the answer's end.
    Closed,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Io(error) => write!(f, "upstream connection: {error}"),
            ExchangeError::Codec(error) => error.fmt(f),
            ExchangeError::Closed => f.write_str("connection closed before message completed"),
        }
    }
}

impl std::error::Error for ExchangeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExchangeError::Io(error) => Some(error),
            ExchangeError::Codec(error) => Some(error),
            ExchangeError::Closed => None,
        }
    }
}

impl From<std::io::Error> for ExchangeError {
    fn from(error: std::io::Error) -> Self {
        ExchangeError::Io(error)
    }
}

impl From<CodecError> for ExchangeError {
    fn from(error: CodecError) -> Self {
        ExchangeError::Codec(error)
    }
}

impl InlineConnection {
    pub fn new(io: UpstreamIo) -> InlineConnection {
        InlineConnection {
            io,
            buffer: BytesMut::new(),
            head: Vec::new(),
        }
    }

    /// The connection, for hyper's client to drive from now on (its buffer is empty).
    pub fn into_io(self) -> UpstreamIo {
        self.io
    }

    /// Whether the backend closed the connection (or sent what nobody asked for) while it was
    /// free: looked up in what the runtime already knows of the socket, without waiting and,
    /// unless it became readable, without a system call.
    pub fn closed_while_free(&mut self) -> bool {
        let mut context = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        Pin::new(&mut self.io)
            .poll_read(&mut context, &mut probe)
            .is_ready()
    }

    /// Sends the head of `request` (which has no body, and its target in origin-form) and
    /// reads the answer's head: the answer, its body to be read from this connection, and
    /// whether the connection may be reused then.
    pub async fn exchange<B>(
        &mut self,
        request: &http::Request<B>,
        most_bytes: usize,
    ) -> Result<(Response<()>, Framing, bool), ExchangeError> {
        self.head.clear();
        encode_request_head(request, &mut self.head);
        self.io.write_all(&self.head).await?;
        self.io.flush().await?;
        let method = request.method();
        loop {
            if !self.buffer.is_empty() {
                if let Some(head) = parse_response_head(&mut self.buffer, method, most_bytes)? {
                    return Ok((head.response, head.framing, head.keep_alive));
                }
            }
            if self.read_more().await? == 0 {
                return Err(ExchangeError::Closed);
            }
        }
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|context| self.poll_read_more(context)).await
    }

    /// Reads what has arrived into the buffer: 0 when the backend closed.
    fn poll_read_more(&mut self, context: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buffer.capacity() - self.buffer.len() < READ_ROOM / 8 {
            self.buffer.reserve(READ_ROOM);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), context, &mut self.buffer)
    }
}

/// Where a body puts its connection back once it has read the answer's end.
pub trait Homecoming: Send + Sync + Unpin + 'static {
    fn give_back(self, connection: InlineConnection);
}

/// The body of an answer read from an [`InlineConnection`].
pub struct InlineBody<H: Homecoming> {
    connection: Option<InlineConnection>,
    state: BodyState,
    /// Where the connection goes once the body is read, when it may be reused.
    home: Option<H>,
    /// The most bytes a trailer section may take.
    most_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

impl<H: Homecoming> InlineBody<H> {
    /// The body framed so on `connection`; `home` takes it back after the body when set (a
    /// connection that may be reused).
    pub fn new(
        connection: InlineConnection,
        framing: Framing,
        home: Option<H>,
        most_bytes: usize,
    ) -> InlineBody<H> {
        let state = match framing {
            Framing::Empty => BodyState::Done,
            Framing::Length(length) => BodyState::Length(length),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::Size),
            Framing::UntilClose => BodyState::UntilClose,
        };
        let mut body = InlineBody {
            connection: Some(connection),
            state,
            home: if framing == Framing::UntilClose {
                None
            } else {
                home
            },
            most_bytes,
        };
        if matches!(body.state, BodyState::Done) {
            body.finish();
        }
        body
    }

    /// The body is read: its connection goes home if it may, else closes.
    fn finish(&mut self) {
        self.state = BodyState::Done;
        let connection = self.connection.take();
        if let (Some(connection), Some(home)) = (connection, self.home.take()) {
            // Bytes past the answer's end: not an answer to anything sent, so not reused.
            if connection.buffer.is_empty() {
                home.give_back(connection);
            }
        }
    }

    /// The next piece of the body, reading from the connection as needed.
    fn poll_next(
        &mut self,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Poll::Ready(None);
            };
            let buffer = &mut connection.buffer;
            match &mut self.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(left) if !buffer.is_empty() => {
                    let taken = (*left).min(buffer.len() as u64);
                    let data = buffer.split_to(taken as usize).freeze();
                    *left -= taken;
                    if *left == 0 {
                        // Home before the last piece goes out: hyper asks no more of a body
                        // that says it has ended.
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // Even with nothing buffered: the decoder may have reached the end.
                BodyState::Chunked(decoder) => match decoder.decode(buffer, self.most_bytes)? {
                    Some(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Some(Decoded::Trailers(trailers)) => {
                        // The trailers end the body: whoever reads it asks no more.
                        self.finish();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Some(Decoded::End) => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    None => {}
                },
                BodyState::UntilClose if !buffer.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(buffer.split().freeze()))));
                }
                _ => {}
            }
            let read = std::task::ready!(connection.poll_read_more(context))?;
            if read == 0 {
                if let BodyState::UntilClose = self.state {
                    self.finish();
                    return Poll::Ready(None);
                }
                self.connection = None;
                return Poll::Ready(Some(Err(ExchangeError::Closed)));
            }
        }
    }
}

impl<H: Homecoming> Body for InlineBody<H> {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        self.get_mut().poll_next(context)
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done | BodyState::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(left) => SizeHint::with_exact(left),
            BodyState::Chunked(_) | BodyState::UntilClose => SizeHint::default(),
        }
    }
}

/// The body of an upstream answer: from hyper's client (HTTP/2, requests with a body or an
/// upgrade) or from an exchange driven here.
pub enum UpstreamResponseBody<H: Homecoming> {
    Hyper(Incoming),
    Inline(InlineBody<H>),
}

impl<H: Homecoming> Body for UpstreamResponseBody<H> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamResponseBody::Hyper(body) => {
                Pin::new(body).poll_frame(context).map_err(Into::into)
            }
            UpstreamResponseBody::Inline(body) => {
                Pin::new(body).poll_frame(context).map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamResponseBody::Hyper(body) => body.is_end_stream(),
            UpstreamResponseBody::Inline(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamResponseBody::Hyper(body) => body.size_hint(),
            UpstreamResponseBody::Inline(body) => body.size_hint(),
        }
    }
}
