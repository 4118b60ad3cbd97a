//! Copies of a request body as it streams to its own upstream, for mirrored requests: each
//! frame the downstream body yields is also handed to every copy, up to a limit past which the
//! copies fail (a mirror must not make the sidecar keep an unbounded body). A copy that nobody
//! reads any more is dropped quietly. Must not: hold back or change the body it copies.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::request_body::BoxError;

/// How much of a body is copied: Envoy's default buffer limit for retries and shadows.
pub const COPY_LIMIT_BYTES: usize = super::request_body::RETRY_BUFFER_LIMIT_BYTES;

type Item = Result<Frame<Bytes>, BoxError>;

/// The copies of one body being made.
#[derive(Default)]
pub struct BodyCopies {
    senders: Vec<UnboundedSender<Item>>,
    copied: usize,
}

/// Why a copy stopped short.
#[derive(Debug)]
enum CopyFailed {
    TooLong,
    SourceFailed,
}

impl std::fmt::Display for CopyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CopyFailed::TooLong => "the body outgrew what a mirrored copy may hold",
            CopyFailed::SourceFailed => "the client's body failed to arrive",
        })
    }
}

impl std::error::Error for CopyFailed {}

impl BodyCopies {
    /// A new copy of the body, from here on (made before anything was read).
    pub fn new_copy(&mut self) -> CopyBody {
        let (sender, receiver) = unbounded_channel();
        self.senders.push(sender);
        CopyBody(receiver)
    }

    /// Hands what the body yielded to the copies: a frame, its end (`None`) or a failure.
    pub fn forward<E>(&mut self, read: Option<&Result<Frame<Bytes>, E>>) {
        let frame = match read {
            None => return self.senders.clear(),
            Some(Err(_)) => return self.fail(CopyFailed::SourceFailed),
            Some(Ok(frame)) => frame,
        };
        self.copied += frame.data_ref().map_or(0, Bytes::len);
        if self.copied > COPY_LIMIT_BYTES {
            return self.fail(CopyFailed::TooLong);
        }
        self.senders.retain(|sender| {
            let copy = match (frame.data_ref(), frame.trailers_ref()) {
                (Some(data), _) => Frame::data(data.clone()),
                (None, Some(trailers)) => Frame::trailers(trailers.clone()),
                (None, None) => return true,
            };
            sender.send(Ok(copy)).is_ok()
        });
    }

    /// Ends every copy with `failure`.
    fn fail(&mut self, failure: CopyFailed) {
        let reason = failure.to_string();
        for sender in self.senders.drain(..) {
            let _ = sender.send(Err(reason.clone().into()));
        }
    }
}

/// One copy of a body, as it arrives.
pub struct CopyBody(UnboundedReceiver<Item>);

impl Body for CopyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_copy_gets_every_frame_then_ends_or_fails_past_the_limit() {
        let mut copies = BodyCopies::default();
        let copy = copies.new_copy();
        copies.forward::<()>(Some(&Ok(Frame::data(Bytes::from_static(b"ab")))));
        copies.forward::<()>(Some(&Ok(Frame::data(Bytes::from_static(b"cd")))));
        copies.forward::<()>(None);
        let whole = copy.collect().await.unwrap().to_bytes();
        assert_eq!(whole, Bytes::from_static(b"abcd"));

        let mut copies = BodyCopies::default();
        let copy = copies.new_copy();
        let big = Bytes::from(vec![0u8; COPY_LIMIT_BYTES + 1]);
        copies.forward::<()>(Some(&Ok(Frame::data(big))));
        assert!(copy.collect().await.is_err(), "a copy past the limit fails");
    }
}
