//! The sidecar's own HTTP/1.1 client codec, for the requests without a body that it sends on
//! its per-worker upstream connections itself (proxy/http1_exchange.rs): the request head
//! written as hyper's client writes it, the response head parsed in place (httparse, as hyper
//! does) into the http crate's types with the header values sharing the read buffer, and the
//! response body's framing (RFC 9112 §6.3) with chunked decoding. It takes the same answers
//! hyper's client takes and refuses the same ones (informational answers skipped, an invalid
//! Content-Length or a Transfer-Encoding in an HTTP/1.0 answer refused).
//!
//! Must not: do I/O, or decide which requests take this path (proxy/http1_pool.rs does).

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};

/// The most headers a response head may have: hyper's client's limit.
const MOST_HEADERS: usize = 100;

/// The longest chunk-size line (with its extensions) taken.
const LONGEST_CHUNK_LINE: usize = 4096;

/// Why an answer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecError {
    /// The head passed the connection's buffer limit before it ended.
    HeadTooLarge,
    /// Not an HTTP/1.x answer head, or one with more than 100 headers.
    InvalidHead,
    /// A Content-Length that is not one number, or a Transfer-Encoding in HTTP/1.0.
    InvalidFraming,
    /// A chunk-size line or chunk end that breaks the chunked coding.
    InvalidChunk,
    /// A switch of protocols nobody asked for.
    UnaskedUpgrade,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodecError::HeadTooLarge => "response head too large",
            CodecError::InvalidHead => "invalid response head",
            CodecError::InvalidFraming => "invalid response body length",
            CodecError::InvalidChunk => "invalid chunked response body",
            CodecError::UnaskedUpgrade => "switching protocols without an upgrade request",
        })
    }
}

impl std::error::Error for CodecError {}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304) or an empty one.
    Empty,
    /// This many bytes.
    Length(u64),
    Chunked,
    /// Whatever comes until the backend closes (the connection is not reused).
    UntilClose,
}

/// A response head read off the buffer.
#[derive(Debug)]
pub struct ResponseHead {
    pub response: Response<()>,
    pub framing: Framing,
    /// Whether the connection may carry another request once the body is read.
    pub keep_alive: bool,
}

/// Writes the head of `request` (a body-less request in origin-form) into `out`, as hyper's
/// client writes it: the request line, each header in the map's order, lower case.
pub fn encode_request_head<B>(request: &http::Request<B>, out: &mut Vec<u8>) {
    out.reserve(32 + request.headers().len() * 32);
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    match request.uri().path_and_query() {
        Some(target) => out.extend_from_slice(target.as_str().as_bytes()),
        None => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Reads the answer's head off the front of `buf`, skipping informational answers: `None`
/// while it is incomplete, an error past `most_bytes` without its end.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
    most_bytes: usize,
) -> Result<Option<ResponseHead>, CodecError> {
    loop {
        let Some((response, keep_alive)) = parse_one_head(buf, most_bytes)? else {
            return Ok(None);
        };
        match response.status().as_u16() {
            101 => return Err(CodecError::UnaskedUpgrade),
            100..=199 => continue,
            _ => {}
        }
        let framing = framing(&response, method)?;
        let keep_alive = keep_alive && framing != Framing::UntilClose;
        return Ok(Some(ResponseHead {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// One head off the front of `buf` and whether it lets the connection stay open.
fn parse_one_head(
    buf: &mut BytesMut,
    most_bytes: usize,
) -> Result<Option<(Response<()>, bool)>, CodecError> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MOST_HEADERS];
    let mut indices = [(0usize, 0usize, 0usize, 0usize); MOST_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let (length, code, reason, version, count) = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut parsed, buf, &mut headers)
    {
        Ok(httparse::Status::Complete(length)) => {
            let start = buf.as_ptr() as usize;
            for (index, header) in parsed.headers.iter().enumerate() {
                let name = header.name.as_ptr() as usize - start;
                let value = header.value.as_ptr() as usize - start;
                indices[index] = (
                    name,
                    name + header.name.len(),
                    value,
                    value + header.value.len(),
                );
            }
            let reason = parsed.reason.unwrap_or_default();
            let reason =
                reason.as_ptr() as usize - start..reason.as_ptr() as usize - start + reason.len();
            (
                length,
                parsed.code.unwrap_or_default(),
                reason,
                parsed.version.unwrap_or_default(),
                parsed.headers.len(),
            )
        }
        Ok(httparse::Status::Partial) if buf.len() >= most_bytes => {
            return Err(CodecError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(CodecError::InvalidHead),
    };
    if length > most_bytes {
        return Err(CodecError::HeadTooLarge);
    }
    let status = StatusCode::from_u16(code).map_err(|_| CodecError::InvalidHead)?;
    let head = buf.split_to(length).freeze();
    let version = match version {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let mut keep_alive = version == Version::HTTP_11;
    let mut saw_close = false;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    let map = response.headers_mut();
    map.reserve(count);
    for &(name_start, name_end, value_start, value_end) in &indices[..count] {
        let name = HeaderName::from_bytes(&head[name_start..name_end])
            .map_err(|_| CodecError::InvalidHead)?;
        // httparse let through only the bytes a header value may hold.
        let value = HeaderValue::from_maybe_shared(head.slice(value_start..value_end))
            .map_err(|_| CodecError::InvalidHead)?;
        if name == header::CONNECTION {
            if saw_close || has_token(&value, "close") {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = has_token(&value, "keep-alive");
            }
        }
        map.append(name, value);
    }
    let reason_bytes = &head[reason];
    if Some(reason_bytes) != status.canonical_reason().map(str::as_bytes) {
        if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason_bytes) {
            response.extensions_mut().insert(phrase);
        }
    }
    Ok(Some((response, keep_alive)))
}

/// Whether the comma-separated `value` lists `token` (in any case).
pub fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .as_bytes()
        .split(|byte| *byte == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// How the body of `response` to a `method` request ends, as hyper's client decides it.
fn framing(response: &Response<()>, method: &Method) -> Result<Framing, CodecError> {
    if matches!(response.status().as_u16(), 204 | 304) || method == Method::HEAD {
        return Ok(Framing::Empty);
    }
    let headers = response.headers();
    if let Some(last) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        if response.version() == Version::HTTP_10 {
            return Err(CodecError::InvalidFraming);
        }
        let chunked = last
            .as_bytes()
            .rsplit(|byte| *byte == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(match chunked {
            true => Framing::Chunked,
            false => Framing::UntilClose,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|byte| *byte == b',') {
            let parsed = parse_decimal(item.trim_ascii()).ok_or(CodecError::InvalidFraming)?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(CodecError::InvalidFraming);
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(length) => Framing::Length(length),
        None => Framing::UntilClose,
    })
}

/// A non-empty run of ASCII digits as a number, if it fits.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |number, digit| {
        digit
            .is_ascii_digit()
            .then(|| number * 10 + u64::from(digit - b'0'))
    })
}

/// What the chunked decoder took off the buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The last chunk (and its trailers) have been read.
    End,
}

/// Where the chunked decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedDecoder {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, before the trailer section's end.
    Trailers,
    Done,
}

impl ChunkedDecoder {
    /// The next piece of the body from the front of `buf`, or `None` until more bytes come.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        most_trailer_bytes: usize,
    ) -> Result<Option<Decoded>, CodecError> {
        loop {
            match *self {
                ChunkedDecoder::Size => {
                    let Some(line_end) = find_line_end(buf, LONGEST_CHUNK_LINE)? else {
                        return Ok(None);
                    };
                    let size = chunk_size(&buf[..line_end])?;
                    buf.advance(line_end + 2);
                    *self = match size {
                        0 => ChunkedDecoder::Trailers,
                        size => ChunkedDecoder::Data(size),
                    };
                }
                ChunkedDecoder::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let taken = left.min(buf.len() as u64);
                    let data = buf.split_to(taken as usize).freeze();
                    *self = match left - taken {
                        0 => ChunkedDecoder::DataEnd,
                        left => ChunkedDecoder::Data(left),
                    };
                    return Ok(Some(Decoded::Data(data)));
                }
                ChunkedDecoder::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(CodecError::InvalidChunk);
                    }
                    buf.advance(2);
                    *self = ChunkedDecoder::Size;
                }
                ChunkedDecoder::Trailers => return self.trailers(buf, most_trailer_bytes),
                ChunkedDecoder::Done => return Ok(Some(Decoded::End)),
            }
        }
    }

    /// The trailer section: `End` right away when it is empty.
    fn trailers(
        &mut self,
        buf: &mut BytesMut,
        most_bytes: usize,
    ) -> Result<Option<Decoded>, CodecError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            *self = ChunkedDecoder::Done;
            return Ok(Some(Decoded::End));
        }
        let mut fields = [httparse::EMPTY_HEADER; MOST_HEADERS];
        match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete((length, fields))) => {
                let mut trailers = HeaderMap::with_capacity(fields.len());
                for field in fields.iter() {
                    let name = HeaderName::from_bytes(field.name.as_bytes())
                        .map_err(|_| CodecError::InvalidChunk)?;
                    let value = HeaderValue::from_bytes(field.value)
                        .map_err(|_| CodecError::InvalidChunk)?;
                    trailers.append(name, value);
                }
                buf.advance(length);
                *self = ChunkedDecoder::Done;
                Ok(Some(Decoded::Trailers(trailers)))
            }
            Ok(httparse::Status::Partial) if buf.len() >= most_bytes => {
                Err(CodecError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(CodecError::InvalidChunk),
        }
    }
}

/// Where the CRLF ending the line at the front of `buf` starts, once it is there.
fn find_line_end(buf: &[u8], longest: usize) -> Result<Option<usize>, CodecError> {
    match buf.iter().position(|byte| *byte == b'\n') {
        Some(0) => Err(CodecError::InvalidChunk),
        Some(newline) if buf[newline - 1] == b'\r' => Ok(Some(newline - 1)),
        Some(_) => Err(CodecError::InvalidChunk),
        None if buf.len() > longest => Err(CodecError::InvalidChunk),
        None => Ok(None),
    }
}

/// The size a chunk-size line gives: hex digits, then optional spaces or tabs and
/// extensions after `;` (ignored, as hyper ignores them).
fn chunk_size(line: &[u8]) -> Result<u64, CodecError> {
    let digits = line
        .iter()
        .position(|byte| !byte.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 16 {
        return Err(CodecError::InvalidChunk);
    }
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(CodecError::InvalidChunk);
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| CodecError::InvalidChunk)?;
    u64::from_str_radix(text, 16).map_err(|_| CodecError::InvalidChunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: Method) -> Result<Option<ResponseHead>, CodecError> {
        let mut buf = BytesMut::from(text);
        parse_response_head(&mut buf, &method, 8192)
    }

    #[test]
    fn the_request_head_is_written_as_hyper_writes_it() {
        let request = http::Request::get("/a/b?c=d")
            .header("host", "example.test")
            .header("x-two", "1")
            .header("x-two", "2")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        encode_request_head(&request, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nhost: example.test\r\nx-two: 1\r\nx-two: 2\r\n\r\n"
        );
    }

    #[test]
    fn a_head_is_read_with_its_framing_and_keep_alive() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(parsed.response.status(), 200);
        assert_eq!(parsed.response.headers()["x-a"], "b");
        assert_eq!(parsed.framing, Framing::Length(5));
        assert!(parsed.keep_alive);
        assert!(parsed.response.extensions().is_empty());

        let close = head("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(close.framing, Framing::UntilClose);
        assert!(!close.keep_alive);

        let old = head(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(old.framing, Framing::Empty);
        assert!(old.keep_alive, "HTTP/1.0 with keep-alive");
        let old = head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(!old.keep_alive, "HTTP/1.0 without keep-alive");
    }

    #[test]
    fn framing_follows_status_method_and_headers() {
        let framing = |text: &str, method: Method| head(text, method).map(|h| h.unwrap().framing);
        assert_eq!(
            framing(
                "HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
                Method::GET
            ),
            Ok(Framing::Empty)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD),
            Ok(Framing::Empty)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n",
                Method::GET
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
                Method::GET
            ),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n",
                Method::GET
            ),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\n",
                Method::GET
            ),
            Err(CodecError::InvalidFraming)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: -3\r\n\r\n", Method::GET),
            Err(CodecError::InvalidFraming)
        );
        assert_eq!(
            framing(
                "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Method::GET
            ),
            Err(CodecError::InvalidFraming)
        );
    }

    #[test]
    fn informational_answers_are_skipped_and_an_unasked_upgrade_refused() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
        );
        let parsed = parse_response_head(&mut buf, &Method::GET, 8192)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.response.status(), 201);
        assert!(buf.is_empty());
        assert_eq!(
            head("HTTP/1.1 101 Switching Protocols\r\n\r\n", Method::GET).unwrap_err(),
            CodecError::UnaskedUpgrade
        );
    }

    #[test]
    fn incomplete_large_and_invalid_heads() {
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le", Method::GET)
            .unwrap()
            .is_none());
        let mut buf = BytesMut::from(format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(100)).as_str());
        assert_eq!(
            parse_response_head(&mut buf, &Method::GET, 64).unwrap_err(),
            CodecError::HeadTooLarge
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nbad header\r\n\r\n", Method::GET).unwrap_err(),
            CodecError::InvalidHead
        );
        let many: String = (0..101).map(|n| format!("x-{n}: 1\r\n")).collect();
        assert_eq!(
            head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), Method::GET).unwrap_err(),
            CodecError::InvalidHead
        );
    }

    #[test]
    fn a_reason_phrase_of_its_own_is_kept_as_hyper_keeps_it() {
        let parsed = head(
            "HTTP/1.1 200 Fine\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        let phrase = parsed
            .response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .unwrap();
        assert_eq!(phrase.as_bytes(), b"Fine");
    }

    /// Everything the decoder gives for `body` fed one byte at a time.
    fn decode_bytewise(body: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>), CodecError> {
        let mut decoder = ChunkedDecoder::Size;
        let mut buf = BytesMut::new();
        let (mut data, mut trailers) = (Vec::new(), None);
        for byte in body {
            buf.extend_from_slice(&[*byte]);
            while let Some(decoded) = decoder.decode(&mut buf, 8192)? {
                match decoded {
                    Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                    Decoded::Trailers(map) => trailers = Some(map),
                    Decoded::End => return Ok((data, trailers)),
                }
            }
        }
        Err(CodecError::InvalidChunk)
    }

    #[test]
    fn chunked_bodies_decode_whole_or_byte_by_byte() {
        let body = b"5;ext=1\r\nhello\r\n6 \r\n world\r\n0\r\n\r\n";
        assert_eq!(
            decode_bytewise(body).unwrap(),
            (b"hello world".to_vec(), None)
        );
        let mut buf = BytesMut::from(&body[..]);
        let mut decoder = ChunkedDecoder::Size;
        assert_eq!(
            decoder.decode(&mut buf, 8192).unwrap(),
            Some(Decoded::Data(Bytes::from_static(b"hello")))
        );
        assert_eq!(
            decoder.decode(&mut buf, 8192).unwrap(),
            Some(Decoded::Data(Bytes::from_static(b" world")))
        );
        assert_eq!(decoder.decode(&mut buf, 8192).unwrap(), Some(Decoded::End));
        assert!(buf.is_empty());

        let (data, trailers) =
            decode_bytewise(b"3\r\nabc\r\n0\r\nx-checksum: 9\r\nx-more: a\r\n\r\n").unwrap();
        assert_eq!(data, b"abc");
        let trailers = trailers.unwrap();
        assert_eq!(trailers["x-checksum"], "9");
        assert_eq!(trailers["x-more"], "a");
    }

    #[test]
    fn broken_chunked_bodies_are_refused() {
        for body in [
            &b"zz\r\n"[..],
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3 x\r\nabc\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(
                decode_bytewise(body).unwrap_err(),
                CodecError::InvalidChunk,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
