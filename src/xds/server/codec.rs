//! The gRPC codec of the discovery services: requests decode as the generated messages;
//! responses are written straight from shared resource bytes (see [`crate::xds::wire`]),
//! never built as generated messages with copied payloads. Buffers start small: most of a
//! stream's life is idle.

use std::marker::PhantomData;

use bytes::BufMut;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use crate::xds::wire::{DeltaResponse, SotwResponse};

/// Initial size of a stream's encode and decode buffers (they grow as messages need).
const BUFFER: usize = 1024;
/// Encoded bytes gathered before they are handed to the transport.
const YIELD_AT: usize = 32 * 1024;

/// A response that writes itself onto the wire.
pub trait WireResponse: Send + 'static {
    fn encoded_len(&self) -> usize;
    fn encode(&self, buf: &mut impl BufMut);
}

impl WireResponse for SotwResponse {
    fn encoded_len(&self) -> usize {
        SotwResponse::encoded_len(self)
    }
    fn encode(&self, buf: &mut impl BufMut) {
        SotwResponse::encode(self, buf)
    }
}

impl WireResponse for DeltaResponse {
    fn encoded_len(&self) -> usize {
        DeltaResponse::encoded_len(self)
    }
    fn encode(&self, buf: &mut impl BufMut) {
        DeltaResponse::encode(self, buf)
    }
}

/// A request as the stream machines read it.
pub trait WireRequest: Sized + Send + 'static {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, String>;
}

impl WireRequest for crate::xds::wire::SotwRequest {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, String> {
        use bytes::Buf;
        let raw = src.copy_to_bytes(src.remaining());
        crate::xds::wire::SotwRequest::decode(raw)
    }
}

impl WireRequest for envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, String> {
        <Self as prost::Message>::decode(src).map_err(|e| e.to_string())
    }
}

impl WireRequest for envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest {
    fn decode_wire(src: &mut DecodeBuf<'_>) -> Result<Self, String> {
        <Self as prost::Message>::decode(src).map_err(|e| e.to_string())
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

/// The response body of a discovery stream: each response becomes one gRPC message in a
/// buffer of exactly its size, handed to the transport and freed once sent — no buffer is
/// kept between responses (tonic's encoder keeps its largest one for the stream's life,
/// which for a fleet of idle streams is most of their memory). Ends with the stream's
/// status in the trailers.
pub struct ResponseBody<S> {
    responses: S,
    done: bool,
}

impl<S> ResponseBody<S> {
    pub fn new(responses: S) -> Self {
        ResponseBody {
            responses,
            done: false,
        }
    }
}

impl<S, R> http_body::Body for ResponseBody<S>
where
    S: tokio_stream::Stream<Item = Result<R, Status>> + Unpin,
    R: WireResponse,
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
        let status = match std::pin::Pin::new(&mut self.responses).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(response))) => {
                let len = response.encoded_len();
                let mut frame = bytes::BytesMut::with_capacity(5 + len);
                frame.put_u8(0);
                frame.put_u32(len as u32);
                response.encode(&mut frame);
                return Poll::Ready(Some(Ok(http_body::Frame::data(frame.freeze()))));
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
        Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
