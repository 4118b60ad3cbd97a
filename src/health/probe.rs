//! One health probe against one address, as the cloud's checkers make it: TCP and SSL
//! (connect — and handshake — send `request` if any, expect `response` as the first bytes if
//! any), HTTP and HTTPS (an HTTP/1.1 GET of `requestPath` through hyper, see h1.rs, with the
//! check's `host`, 200 or the check's status ranges expected, the body beginning with
//! `response` if any), HTTP2 (the same over HTTP/2 on TLS) and GRPC (grpc.health.v1 Check over
//! cleartext HTTP/2, SERVING expected; or a chosen method judged by its grpc-status, as AWS
//! checks), each within the check's timeout, with a PROXY v1 line first when the check asks for
//! one. HTTP/2 connections are kept in the target's [`Session`] and reused by its next probes.
//! Returns pass or fail with the reason. Must not: decide health (state.rs does) or schedule
//! probes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::h1;
use super::h2::{self, H2Probe};
use super::tls;

/// What one probe asks, taken from a health check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Probe {
    /// TCP, or SSL when `tls`.
    Tcp {
        tls: bool,
        request: Option<String>,
        response: Option<String>,
    },
    /// HTTP, or HTTPS when `tls`.
    Http {
        tls: bool,
        path: String,
        host: Option<String>,
        response: Option<String>,
        /// The status codes that pass, as inclusive ranges; empty: 200 only.
        codes: Vec<(u16, u16)>,
    },
    /// HTTP2: HTTP/2 over TLS.
    Http2 {
        path: String,
        host: Option<String>,
        response: Option<String>,
    },
    /// GRPC: grpc.health.v1 over cleartext HTTP/2; an empty service asks for the server.
    Grpc { service: String },
    /// A call of the check's choosing (an empty request message), judged by its grpc-status
    /// alone; over TLS when `tls`.
    GrpcCall {
        tls: bool,
        path: String,
        codes: Vec<(u16, u16)>,
    },
}

/// Whether `code` is in one of `ranges`; empty ranges accept only `default`.
pub fn code_passes(code: u16, ranges: &[(u16, u16)], default: u16) -> bool {
    if ranges.is_empty() {
        return code == default;
    }
    ranges
        .iter()
        .any(|(low, high)| (*low..=*high).contains(&code))
}

/// The codes that pass, for messages: `200`, `200-299,302`.
pub fn describe_codes(ranges: &[(u16, u16)], default: u16) -> String {
    if ranges.is_empty() {
        return default.to_string();
    }
    ranges
        .iter()
        .map(|(low, high)| {
            if low == high {
                low.to_string()
            } else {
                format!("{low}-{high}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How a probe went: Ok, or why it failed (for /health and the log).
pub type Outcome = Result<(), String>;

/// What a target keeps between its probes: the HTTP/2 connection of HTTP2 and GRPC checks.
#[derive(Default)]
pub struct Session {
    h2: Option<h2::Connection>,
}

impl Session {
    /// Whether a connection is kept open.
    pub fn is_connected(&self) -> bool {
        self.h2.is_some()
    }
}

/// The most of an answer read to compare with an expected response.
pub(super) const MAX_READ: usize = 1024;

/// Runs `probe` against `address` within `timeout`.
pub async fn run(
    probe: &Probe,
    session: &mut Session,
    address: SocketAddr,
    proxy_header_v1: bool,
    timeout: Duration,
) -> Outcome {
    match tokio::time::timeout(timeout, attempt(probe, session, address, proxy_header_v1)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            // A connection that did not answer in time is not trusted again.
            session.h2 = None;
            Err(format!("no answer within {} ms", timeout.as_millis()))
        }
    }
}

async fn attempt(
    probe: &Probe,
    session: &mut Session,
    address: SocketAddr,
    proxy_header_v1: bool,
) -> Outcome {
    let h2_probe = match probe {
        Probe::Http2 {
            path,
            host,
            response,
        } => Some(H2Probe::Get {
            path,
            host: host.as_deref(),
            response: response.as_deref(),
        }),
        Probe::Grpc { service } => Some(H2Probe::GrpcHealth { service }),
        Probe::GrpcCall { path, codes, .. } => Some(H2Probe::GrpcCall { path, codes }),
        _ => None,
    };
    if let Some(h2_probe) = h2_probe {
        let tls = matches!(
            probe,
            Probe::Http2 { .. } | Probe::GrpcCall { tls: true, .. }
        );
        return h2::probe(&mut session.h2, &h2_probe, address, proxy_header_v1, tls).await;
    }
    let stream = connect(address, proxy_header_v1).await?;
    // A probe's connection ends with a reset once its answer is read, as HAProxy's checks
    // end: no TIME_WAIT is left behind for each of thousands of probes a second.
    let _ = stream.set_zero_linger();
    match probe {
        Probe::Tcp {
            tls: false,
            request,
            response,
        } => tcp(stream, request, response).await,
        Probe::Tcp {
            tls: true,
            request,
            response,
        } => {
            tcp(
                tls::handshake(stream, None, false).await?,
                request,
                response,
            )
            .await
        }
        Probe::Http {
            tls,
            path,
            host,
            response,
            codes,
        } => {
            let host_header = host.clone().unwrap_or_else(|| address.to_string());
            let expected = h1::Expected {
                response: response.as_deref(),
                codes,
            };
            if *tls {
                let stream = tls::handshake(stream, host.as_deref(), false).await?;
                h1::get(stream, path, &host_header, expected).await
            } else {
                h1::get(stream, path, &host_header, expected).await
            }
        }
        Probe::Http2 { .. } | Probe::Grpc { .. } | Probe::GrpcCall { .. } => {
            unreachable!("handled above")
        }
    }
}

/// Connects to `address`, writing a PROXY v1 line first when asked.
pub(super) async fn connect(
    address: SocketAddr,
    proxy_header_v1: bool,
) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    if proxy_header_v1 {
        let line = proxy_line(&stream, address);
        stream
            .write_all(line.as_bytes())
            .await
            .map_err(|error| format!("write: {error}"))?;
    }
    Ok(stream)
}

fn proxy_line(stream: &TcpStream, to: SocketAddr) -> String {
    let from = stream.local_addr().unwrap_or(to);
    let family = if to.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        from.ip(),
        to.ip(),
        from.port(),
        to.port()
    )
}

async fn tcp<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &Option<String>,
    response: &Option<String>,
) -> Outcome {
    if let Some(request) = request {
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|error| format!("write: {error}"))?;
    }
    let Some(expected) = response else {
        return Ok(());
    };
    let answer = read_at_least(&mut stream, expected.len()).await?;
    if answer.starts_with(expected.as_bytes()) {
        Ok(())
    } else {
        Err(format!(
            "answered {:?}, expected {expected:?}",
            String::from_utf8_lossy(&answer)
        ))
    }
}

/// An HTTP answer's body passes when it begins with the expected response, if there is one.
pub(super) fn body_begins_with(body: &[u8], expected: Option<&str>) -> Outcome {
    match expected {
        Some(expected) if !body.starts_with(expected.as_bytes()) => {
            Err(format!("the body does not begin with {expected:?}"))
        }
        _ => Ok(()),
    }
}

async fn read_at_least<S: AsyncRead + Unpin>(
    stream: &mut S,
    wanted: usize,
) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    while answer.len() < wanted.min(MAX_READ) && read_more(stream, &mut answer).await? {}
    Ok(answer)
}

/// Reads what `stream` has next onto `answer`; false at the end of the stream.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    answer: &mut Vec<u8>,
) -> Result<bool, String> {
    let mut buffer = [0u8; 512];
    let read = stream
        .read(&mut buffer)
        .await
        .map_err(|error| format!("read: {error}"))?;
    answer.extend_from_slice(&buffer[..read]);
    Ok(read > 0)
}
