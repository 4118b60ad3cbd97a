//! The gRPC codec of the discovery services: requests decode as the generated messages;
//! responses are written straight from shared resource bytes (see [`crate::xds::wire`]),
//! never built as generated messages with copied payloads. Buffers start small: most of a
//! stream's life is idle.

use std::marker::PhantomData;

use bytes::BufMut;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use crate::xds::wire::{DeltaResponse, RequestDecodeError, SotwResponse, WireParts};

/// Initial size of a stream's encode and decode buffers (they grow as messages need).
const BUFFER: usize = 1024;
/// Encoded bytes gathered before they are handed to the transport.
const YIELD_AT: usize = 32 * 1024;

/// A response that writes itself onto the wire.
pub trait WireResponse: WireParts + Send + 'static {}

impl WireResponse for SotwResponse {}
impl WireResponse for DeltaResponse {}

/// A request as the stream machines read it.
pub trait WireRequest: Sized + Send + 'static {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, RequestDecodeError>;
}

impl WireRequest for crate::xds::wire::SotwRequest {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, RequestDecodeError> {
        use bytes::Buf;
        let raw = src.copy_to_bytes(src.remaining());
        crate::xds::wire::SotwRequest::decode(raw)
    }
}

impl WireRequest for envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, RequestDecodeError> {
        Ok(<Self as prost::Message>::decode(src)?)
    }
}

impl WireRequest for envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, RequestDecodeError> {
        Ok(<Self as prost::Message>::decode(src)?)
    }
}

/// Decodes `Req`, encodes `Resp` from shared bytes.
pub struct XdsCodec<Req, Resp>(PhantomData<fn(Req) -> Resp>);

impl<Req, Resp> Default for XdsCodec<Req, Resp> {
    fn default() -> Self {
        XdsCodec(PhantomData)
    }
}

impl<Req, Resp> Codec for XdsCodec<Req, Resp>
where
    Req: WireRequest,
    Resp: WireResponse,
{
    type Encode = Resp;
    type Decode = Req;
    type Encoder = ResponseEncoder<Resp>;
    type Decoder = RequestDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

pub struct ResponseEncoder<Resp>(PhantomData<fn(Resp)>);

impl<Resp: WireResponse> Encoder for ResponseEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode(dst);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER, YIELD_AT)
    }
}

pub struct RequestDecoder<Req>(PhantomData<fn() -> Req>);

impl<Req> Default for RequestDecoder<Req> {
    fn default() -> Self {
        RequestDecoder(PhantomData)
    }
}

impl<Req: WireRequest> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        Req::decode_wire(src).map(Some).map_err(|error| {
            Status::invalid_argument(format!("cannot decode the request: {error}"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER, YIELD_AT)
    }
}

/// Bytes of framing and small resources gathered into one piece before it goes out. A stream
/// that does not read holds one (HTTP/2 takes a piece as soon as the window has a byte).
const PIECE: usize = 8 * 1024;
/// Resource values this large go out as they are (slices of the shared bytes), not copied;
/// smaller ones, with their framing, always fit in a piece.
const SENT_AS_IS: usize = 4 * 1024;
/// Bytes handed to HTTP/2 before the body lets the connection write them out. HTTP/2 queues
/// every piece it is given while the client's window allows, in a per-connection table that
/// grows to the most pieces ever queued at once and never shrinks: handing over a whole
/// response in one go would leave every connection with a table sized for it.
const YIELD_EVERY: usize = 64 * 1024;
/// gRPC's message header: a compression flag and a length.
const FRAME_HEADER: usize = 5;

/// The response body of a discovery stream. Each response goes out in pieces: framing and
/// small resources copied into pieces of at most [`PIECE`] bytes, large resource values as
/// slices of the shared bytes, each piece produced only when the transport has room for it.
/// So a client that stops reading holds at most one piece and the response it was being sent
/// (shared pointers to resources, not their bytes), and no buffer outlives a response (tonic's
/// encoder keeps its largest one for the stream's life). Ends with the stream's status in the
/// trailers.
pub struct ResponseBody<S, R> {
    responses: S,
    sending: Option<Sending<R>>,
    /// Bytes handed over since the body last yielded.
    since_yield: usize,
    done: bool,
}

/// A response part-way out.
struct Sending<R> {
    response: R,
    /// The next resource to write, or `count` for the tail.
    next: usize,
    /// A large value to send on its own before going on.
    value: Option<bytes::Bytes>,
    /// Bytes of the message (gRPC frame header included) not yet out; None until started.
    remaining: Option<usize>,
}

impl<S, R> ResponseBody<S, R> {
    pub fn new(responses: S) -> Self {
        ResponseBody {
            responses,
            sending: None,
            since_yield: 0,
            done: false,
        }
    }
}

impl<R: WireParts> Sending<R> {
    /// The next piece; None when the response is out.
    fn next_piece(&mut self) -> Option<bytes::Bytes> {
        if let Some(value) = self.value.take() {
            return Some(self.out(value));
        }
        let count = self.response.resource_count();
        if self.next > count {
            return None;
        }
        let started = self.remaining.is_some();
        let remaining = *self
            .remaining
            .get_or_insert_with(|| FRAME_HEADER + self.response.encoded_len());
        let mut piece = bytes::BytesMut::with_capacity(remaining.min(PIECE));
        if !started {
            piece.put_u8(0);
            piece.put_u32(self.response.encoded_len() as u32);
            self.response.write_head(&mut piece);
        }
        while self.next < count {
            let index = self.next;
            let value = self.response.value(index);
            let as_is = value.len() >= SENT_AS_IS;
            let copied = self.response.entry_len(index) - if as_is { value.len() } else { 0 };
            // A piece is never grown past its size (growing doubles it), unless a single
            // entry is larger, which the size of values sent as they are rules out.
            if piece.len() + copied > PIECE && !piece.is_empty() {
                return Some(self.out(piece.freeze()));
            }
            self.next += 1;
            self.response.write_prefix(index, &mut piece);
            if as_is {
                self.value = Some(value.clone());
                return Some(self.out(piece.freeze()));
            }
            piece.put_slice(value);
        }
        self.next = count + 1;
        self.response.write_tail(&mut piece);
        Some(self.out(piece.freeze()))
    }

    /// Accounts for `bytes` going out.
    fn out(&mut self, bytes: bytes::Bytes) -> bytes::Bytes {
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining = remaining.saturating_sub(bytes.len());
        }
        bytes
    }
}

impl<S, R> http_body::Body for ResponseBody<S, R>
where
    S: tokio_stream::Stream<Item = Result<R, Status>> + Unpin,
    R: WireResponse + Unpin,
{
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            if self.since_yield >= YIELD_EVERY {
                // Let the connection's task write out what is queued before handing over more.
                self.since_yield = 0;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(sending) = self.sending.as_mut() {
                match sending.next_piece() {
                    Some(piece) => {
                        self.since_yield += piece.len();
                        return Poll::Ready(Some(Ok(http_body::Frame::data(piece))));
                    }
                    None => self.sending = None,
                }
            }
            let status = match std::pin::Pin::new(&mut self.responses).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(response))) => {
                    self.sending = Some(Sending {
                        response,
                        next: 0,
                        value: None,
                        remaining: None,
                    });
                    continue;
                }
                Poll::Ready(Some(Err(status))) => status,
                Poll::Ready(None) => Status::ok(""),
            };
            self.done = true;
            let mut trailers = tonic::codegen::http::HeaderMap::new();
            if status.add_header(&mut trailers).is_err() {
                trailers.clear();
                let _ = Status::new(status.code(), "").add_header(&mut trailers);
            }
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::types::TypeUrl;
    use crate::xds::wire::{Resource, TypeName};
    use std::sync::Arc;

    /// The pieces of `response`, put back together, are its encoding; big values are sent as
    /// the very bytes the resource holds.
    #[test]
    fn pieces_make_the_message_and_share_big_values() {
        let big = Arc::new(Resource::new(TypeUrl::Cluster, "big", vec![7u8; 100_000]));
        let mut resources: Vec<Arc<Resource>> = (0..500)
            .map(|i| {
                Arc::new(Resource::new(
                    TypeUrl::Cluster,
                    format!("r{i}"),
                    vec![i as u8; 200],
                ))
            })
            .collect();
        resources.insert(250, big.clone());
        let response = SotwResponse {
            type_url: TypeName::Served(TypeUrl::Cluster),
            version_info: "v".into(),
            nonce: 3,
            resources,
        };
        let mut expected = Vec::new();
        response.encode(&mut expected);
        let mut sending = Sending {
            response,
            next: 0,
            value: None,
            remaining: None,
        };
        let mut joined = Vec::new();
        let mut pieces = 0;
        let mut shared = false;
        while let Some(piece) = sending.next_piece() {
            if piece.as_ptr() == big.value.as_ptr() {
                shared = true;
            } else {
                assert!(piece.len() <= PIECE, "{}", piece.len());
            }
            joined.extend_from_slice(&piece);
            pieces += 1;
        }
        assert!(shared, "the big value went out as the resource's own bytes");
        assert_eq!(joined[0], 0, "uncompressed");
        assert_eq!(
            u32::from_be_bytes(joined[1..5].try_into().unwrap()) as usize,
            expected.len()
        );
        assert_eq!(&joined[5..], &expected[..]);
        assert!(pieces > 4, "{pieces}");
    }
}
