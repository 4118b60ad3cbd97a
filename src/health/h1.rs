//! HTTP and HTTPS probes: one HTTP/1.1 GET through hyper's client connection on a stream the
//! caller opened (and, for HTTPS, wrapped in TLS). hyper reads the head and de-chunks the body;
//! this module only judges the answer: a status in the check's ranges (200 when it has none)
//! and a body that begins with the check's `response`, of which at most [`MAX_READ`] bytes are
//! read. Must not: parse HTTP itself, decide health or schedule probes.

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::probe::{body_begins_with, code_passes, describe_codes, Outcome, MAX_READ};

/// What an HTTP answer must be to pass.
pub(super) struct Expected<'p> {
    pub response: Option<&'p str>,
    pub codes: &'p [(u16, u16)],
}

/// Sends `GET path` with `host` as its Host on `stream` and judges the answer.
pub(super) async fn get<S>(stream: S, path: &str, host: &str, expected: Expected<'_>) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        // Header names as backends' logs and older servers expect them: `Host`, not `host`.
        .title_case_headers(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP/1.1 handshake: {error}"))?;
    let _driver = AbortOnDrop(tokio::spawn(connection));
    let request = Request::get(path)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "switchyard-health-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|error| format!("request: {error}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("HTTP/1.1: {error}"))?;
    judge(response, expected).await
}

/// The status first; the body is read only when the status passes and a response is expected.
async fn judge(response: Response<Incoming>, expected: Expected<'_>) -> Outcome {
    let code = response.status().as_u16();
    if !code_passes(code, expected.codes, 200) {
        return Err(format!(
            "answered `{}`, expected {}",
            status_line(&response),
            describe_codes(expected.codes, 200)
        ));
    }
    let Some(wanted) = expected.response else {
        return Ok(());
    };
    let body = body_prefix(response.into_body(), wanted.len().min(MAX_READ)).await?;
    body_begins_with(&body, Some(wanted))
}

/// The first `wanted` bytes of `body` (fewer if it ends sooner), whatever its framing.
async fn body_prefix(mut body: Incoming, wanted: usize) -> Result<Bytes, String> {
    let mut data = BytesMut::new();
    while data.len() < wanted {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|error| format!("HTTP/1.1 body: {error}"))?;
        if let Some(chunk) = frame.data_ref() {
            data.extend_from_slice(chunk);
        }
    }
    Ok(data.freeze())
}

/// `HTTP/1.1 404 Not Found`, with the reason the server sent when it sent one.
fn status_line(response: &Response<Incoming>) -> String {
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|reason| String::from_utf8_lossy(reason.as_bytes()).into_owned())
        .or_else(|| response.status().canonical_reason().map(str::to_string))
        .unwrap_or_default();
    format!(
        "{:?} {} {reason}",
        response.version(),
        response.status().as_u16()
    )
    .trim_end()
    .to_string()
}

/// Ends the connection's task when the probe is done or abandoned (at its timeout).
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
