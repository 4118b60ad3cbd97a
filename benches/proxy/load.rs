//! The load generator of the proxy bench: HTTP/1.1 requests over plain TCP or TLS, closed loop
//! (maximum rate), open loop (latency at a fixed rate), one request per new connection
//! (handshake rate) and held idle connections (memory). Knows nothing of what it measures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// How connections are made: plain TCP, or TLS with this client config, sending this SNI.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls {
        config: Arc<ClientConfig>,
        server_name: &'static str,
    },
}

/// A connection ready for requests, and whether its TLS handshake resumed a session.
pub struct Opened {
    pub sender: http1::SendRequest<Empty<Bytes>>,
    pub resumed: bool,
}

pub fn request(port: u16) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get("/")
        .header("host", format!("127.0.0.1:{port}"))
        .body(Empty::new())
        .unwrap()
}

async fn handshake_http<T>(io: T) -> Option<http1::SendRequest<Empty<Bytes>>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// Opens one connection to `port` over `transport`.
pub async fn open(port: u16, transport: &Transport) -> Option<Opened> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let _ = stream.set_nodelay(true);
    match transport {
        Transport::Plain => Some(Opened {
            sender: handshake_http(stream).await?,
            resumed: false,
        }),
        Transport::Tls {
            config,
            server_name,
        } => {
            let name = ServerName::try_from(*server_name).ok()?.to_owned();
            let tls = TlsConnector::from(config.clone())
                .connect(name, stream)
                .await
                .ok()?;
            let resumed = tls.get_ref().1.handshake_kind()
                == Some(tokio_rustls::rustls::HandshakeKind::Resumed);
            Some(Opened {
                sender: handshake_http(tls).await?,
                resumed,
            })
        }
    }
}

/// Sends one request and reads its answer; false when the connection failed.
pub async fn exchange(sender: &mut http1::SendRequest<Empty<Bytes>>, port: u16) -> bool {
    match sender.send_request(request(port)).await {
        Ok(response) => response.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}

/// Waits until `port` answers a request over `transport` with 200.
pub async fn ready(port: u16, transport: &Transport) {
    for _ in 0..600 {
        if let Some(mut opened) = open(port, transport).await {
            if let Ok(response) = opened.sender.send_request(request(port)).await {
                if response.status() == 200 {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing answered on port {port}");
}

/// Requests per second over `seconds`, closed loop on `connections` keep-alive connections.
pub async fn max_rate(port: u16, transport: &Transport, connections: usize, seconds: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, stop, transport) = (done.clone(), stop.clone(), transport.clone());
        tasks.push(tokio::spawn(async move {
            let mut opened = open(port, &transport).await.expect("connects");
            while !stop.load(Ordering::Relaxed) {
                if !exchange(&mut opened.sender, port).await {
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    count as f64 / elapsed
}

/// New connections per second over `seconds`, closed loop on `concurrency` loops, each
/// opening a connection, making one request and closing it; and the share of handshakes
/// that resumed a TLS session.
pub async fn connection_rate(
    port: u16,
    transport: &Transport,
    concurrency: usize,
    seconds: f64,
) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (done, resumed, stop) = (done.clone(), resumed.clone(), stop.clone());
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Some(mut opened) = open(port, &transport).await else {
                    continue;
                };
                if exchange(&mut opened.sender, port).await {
                    done.fetch_add(1, Ordering::Relaxed);
                    resumed.fetch_add(u64::from(opened.resumed), Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (count, resumed) = (
        done.load(Ordering::Relaxed),
        resumed.load(Ordering::Relaxed),
    );
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    (count as f64 / elapsed, resumed as f64 / count.max(1) as f64)
}

/// p50 and p99 latency (ms) at `rate` requests/s for `seconds`, open loop: each of
/// `connections` sends its share on schedule, and latency counts from when a request was due.
pub async fn latency_at(
    port: u16,
    transport: &Transport,
    rate: f64,
    connections: usize,
    seconds: f64,
) -> (f64, f64) {
    let per_connection = rate / connections as f64;
    let mut tasks = Vec::new();
    let start = Instant::now() + Duration::from_millis(200);
    for index in 0..connections {
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let mut opened = open(port, &transport).await.expect("connects");
            let interval = Duration::from_secs_f64(1.0 / per_connection);
            let offset = interval.mul_f64(index as f64 / connections as f64);
            let total = (per_connection * seconds) as u32;
            let mut latencies = Vec::with_capacity(total as usize);
            for n in 0..total {
                let due = start + offset + interval * n;
                tokio::time::sleep_until(due.into()).await;
                if !exchange(&mut opened.sender, port).await {
                    break;
                }
                latencies.push(due.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (at(0.50), at(0.99))
}

/// Opens `count` connections over `transport`, each making one request, and holds them
/// while `measure` runs (after a settling pause); returns what it returned.
pub async fn with_idle_connections<T>(
    port: u16,
    transport: &Transport,
    count: usize,
    measure: impl FnOnce() -> T,
) -> T {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(mut opened) = open(port, transport).await else {
            break;
        };
        exchange(&mut opened.sender, port).await;
        held.push(opened.sender);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let measured = measure();
    drop(held);
    measured
}
