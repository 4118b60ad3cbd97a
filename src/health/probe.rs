//! One health probe against one address, as the cloud's checkers make it: TCP (connect, send
//! `request` if any, expect `response` as the first bytes if any) and HTTP/1.1 (GET
//! `requestPath` with the check's `host`, 200 expected, the body beginning with `response` if
//! any), each within the check's timeout, with a PROXY v1 line first when the check asks for
//! one. Returns pass or fail with the reason; keeps nothing between probes. Must not: decide
//! health (state.rs does) or schedule probes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one probe asks, taken from a health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Tcp {
        request: Option<String>,
        response: Option<String>,
    },
    Http {
        path: String,
        host: Option<String>,
        response: Option<String>,
    },
}

/// How a probe went: Ok, or why it failed (for /health and the log).
pub type Outcome = Result<(), String>;

/// The most of an answer read to compare with an expected response.
const MAX_READ: usize = 1024;

/// Runs `probe` against `address` within `timeout`.
pub async fn run(
    probe: &Probe,
    address: SocketAddr,
    proxy_header_v1: bool,
    timeout: Duration,
) -> Outcome {
    match tokio::time::timeout(timeout, attempt(probe, address, proxy_header_v1)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn attempt(probe: &Probe, address: SocketAddr, proxy_header_v1: bool) -> Outcome {
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
    match probe {
        Probe::Tcp { request, response } => tcp(&mut stream, request, response).await,
        Probe::Http {
            path,
            host,
            response,
        } => {
            let host = host.clone().unwrap_or_else(|| address.to_string());
            http(&mut stream, path, &host, response).await
        }
    }
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

async fn tcp(
    stream: &mut TcpStream,
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
    let answer = read_at_least(stream, expected.len()).await?;
    if answer.starts_with(expected.as_bytes()) {
        Ok(())
    } else {
        Err(format!(
            "answered {:?}, expected {expected:?}",
            String::from_utf8_lossy(&answer)
        ))
    }
}

async fn http(
    stream: &mut TcpStream,
    path: &str,
    host: &str,
    response: &Option<String>,
) -> Outcome {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: switchyard-health-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("write: {error}"))?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 512];
    // Read the head, and as much of the body as the expected response needs.
    loop {
        let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n");
        let enough = match (head_end, response) {
            (Some(end), Some(expected)) => answer.len() >= end + 4 + expected.len(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if enough || answer.len() >= MAX_READ * 8 {
            break;
        }
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|error| format!("read: {error}"))?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .unwrap_or("");
    if status != "200" {
        let line = text.lines().next().unwrap_or("no answer");
        return Err(format!("answered `{line}`, expected 200"));
    }
    let Some(expected) = response else {
        return Ok(());
    };
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    if body.starts_with(expected.as_str()) {
        Ok(())
    } else {
        Err(format!("the body does not begin with {expected:?}"))
    }
}

async fn read_at_least(stream: &mut TcpStream, wanted: usize) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 512];
    while answer.len() < wanted.min(MAX_READ) {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|error| format!("read: {error}"))?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    Ok(answer)
}
