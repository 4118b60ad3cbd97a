//! HTTP/2 probes: HTTP2 checks (a GET over TLS with ALPN h2) and GRPC checks (grpc.health.v1
//! `Check` over cleartext HTTP/2). The connection is kept by the target and reused by its next
//! probes, as HTTP/2 allows; a probe that fails on a reused connection tries once more on a
//! fresh one, so a backend that closed an idle connection is not taken for dead. Must not:
//! decide health or schedule probes.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};

use super::probe::{body_begins_with, connect, Outcome, MAX_READ};
use super::tls;

/// An open HTTP/2 connection to one target.
pub type Connection = SendRequest<Full<Bytes>>;

/// What an HTTP/2 probe asks.
pub enum H2Probe<'p> {
    Get {
        path: &'p str,
        host: Option<&'p str>,
        response: Option<&'p str>,
    },
    GrpcHealth {
        service: &'p str,
    },
    /// A call with an empty request message, judged by its grpc-status.
    GrpcCall {
        path: &'p str,
        codes: &'p [(u16, u16)],
    },
}

/// grpc.health.v1.HealthCheckRequest.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// grpc.health.v1.HealthCheckResponse.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// HealthCheckResponse.ServingStatus.SERVING.
const SERVING: i32 = 1;

/// Runs one HTTP/2 probe on the kept connection, or on a new one.
pub async fn probe(
    kept: &mut Option<Connection>,
    probe: &H2Probe<'_>,
    address: SocketAddr,
    proxy_header_v1: bool,
    tls: bool,
) -> Outcome {
    if let Some(mut connection) = kept.take() {
        if connection.ready().await.is_ok() {
            if let Ok(outcome) = exchange(&mut connection, probe, address, tls).await {
                *kept = Some(connection);
                return outcome;
            }
        }
    }
    let host = match probe {
        H2Probe::Get { host, .. } => *host,
        H2Probe::GrpcHealth { .. } | H2Probe::GrpcCall { .. } => None,
    };
    let mut connection = open(address, proxy_header_v1, tls, host).await?;
    let outcome = exchange(&mut connection, probe, address, tls)
        .await
        .unwrap_or_else(Err);
    *kept = Some(connection);
    outcome
}

async fn open(
    address: SocketAddr,
    proxy_header_v1: bool,
    tls: bool,
    host: Option<&str>,
) -> Result<Connection, String> {
    let stream = connect(address, proxy_header_v1).await?;
    // A kept connection carries many small requests: no Nagle delay on them.
    let _ = stream.set_nodelay(true);
    if !tls {
        return h2_handshake(stream).await;
    }
    let stream = tls::handshake(stream, host, true).await?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("TLS handshake: the backend did not agree to HTTP/2 (ALPN h2)".into());
    }
    h2_handshake(stream).await
}

/// Starts HTTP/2 on an open stream; the connection is driven by a task of its own.
async fn h2_handshake<S>(stream: S) -> Result<Connection, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP/2 handshake: {error}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request and its answer. The outer error means the connection failed (worth a retry on
/// a fresh one); the inner outcome is the probe's.
async fn exchange(
    connection: &mut Connection,
    probe: &H2Probe<'_>,
    address: SocketAddr,
    tls: bool,
) -> Result<Outcome, String> {
    let scheme = if tls { "https" } else { "http" };
    let request = match probe {
        H2Probe::Get { path, host, .. } => {
            let authority = host.map_or_else(|| address.to_string(), str::to_string);
            Request::get(format!("{scheme}://{authority}{path}"))
                .header("user-agent", "switchyard-health-check")
                .body(Full::new(Bytes::new()))
        }
        H2Probe::GrpcHealth { service } => {
            let message = HealthCheckRequest {
                service: service.to_string(),
            }
            .encode_to_vec();
            let mut frame = BytesMut::with_capacity(5 + message.len());
            frame.put_u8(0);
            frame.put_u32(message.len() as u32);
            frame.put_slice(&message);
            grpc_request(
                scheme,
                address,
                "/grpc.health.v1.Health/Check",
                frame.freeze(),
            )
        }
        // An empty message: the five-byte frame header alone.
        H2Probe::GrpcCall { path, .. } => {
            grpc_request(scheme, address, path, Bytes::from_static(&[0; 5]))
        }
    }
    .map_err(|error| format!("request: {error}"))?;
    let response = connection
        .send_request(request)
        .await
        .map_err(|error| format!("HTTP/2: {error}"))?;
    let (head, mut body) = response.into_parts();
    let wanted = match probe {
        H2Probe::Get { response, .. } => response.map_or(0, str::len),
        H2Probe::GrpcHealth { .. } | H2Probe::GrpcCall { .. } => MAX_READ,
    };
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("HTTP/2 body: {error}"))?;
        if let Some(chunk) = frame.data_ref() {
            data.extend_from_slice(chunk);
        } else if let Ok(found) = frame.into_trailers() {
            trailers = Some(found);
        }
        if matches!(probe, H2Probe::Get { .. }) && data.len() >= wanted.min(MAX_READ) {
            break;
        }
    }
    Ok(match probe {
        H2Probe::Get { response, .. } => get_outcome(head.status, &data, *response),
        H2Probe::GrpcHealth { .. } | H2Probe::GrpcCall { .. } => {
            let status = trailers
                .as_ref()
                .and_then(|t| t.get("grpc-status"))
                .or_else(|| head.headers.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match probe {
                H2Probe::GrpcCall { codes, .. } => grpc_call_outcome(head.status, &status, codes),
                _ => grpc_outcome(head.status, &status, data.freeze()),
            }
        }
    })
}

fn grpc_request(
    scheme: &str,
    address: SocketAddr,
    path: &str,
    frame: Bytes,
) -> http::Result<Request<Full<Bytes>>> {
    Request::post(format!("{scheme}://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "switchyard-health-check")
        .body(Full::new(frame))
}

/// A call of the check's choosing passes when its grpc-status is one of `codes`.
fn grpc_call_outcome(status: StatusCode, grpc_status: &str, codes: &[(u16, u16)]) -> Outcome {
    if status != StatusCode::OK {
        return Err(format!("answered HTTP {}, expected 200", status.as_u16()));
    }
    match grpc_status.parse::<u16>() {
        Ok(code) if super::probe::code_passes(code, codes, 0) => Ok(()),
        Ok(code) => Err(format!(
            "grpc-status {code}, expected {}",
            super::probe::describe_codes(codes, 0)
        )),
        Err(_) => Err("grpc-status missing".into()),
    }
}

fn get_outcome(status: StatusCode, body: &[u8], expected: Option<&str>) -> Outcome {
    if status != StatusCode::OK {
        return Err(format!("answered {}, expected 200", status.as_u16()));
    }
    body_begins_with(body, expected)
}

fn grpc_outcome(status: StatusCode, grpc_status: &str, mut body: Bytes) -> Outcome {
    if status != StatusCode::OK {
        return Err(format!("answered HTTP {}, expected 200", status.as_u16()));
    }
    if grpc_status != "0" {
        return Err(format!(
            "grpc-status {}",
            if grpc_status.is_empty() {
                "missing"
            } else {
                grpc_status
            }
        ));
    }
    if body.len() < 5 {
        return Err("no HealthCheckResponse".into());
    }
    let _compressed = body.get_u8();
    let length = body.get_u32() as usize;
    let reply = HealthCheckResponse::decode(&body[..length.min(body.len())])
        .map_err(|error| format!("HealthCheckResponse: {error}"))?;
    match reply.status {
        SERVING => Ok(()),
        0 => Err("status UNKNOWN".into()),
        2 => Err("status NOT_SERVING".into()),
        3 => Err("status SERVICE_UNKNOWN".into()),
        other => Err(format!("status {other}")),
    }
}
