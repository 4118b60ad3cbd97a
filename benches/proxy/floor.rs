//! The floor: the least work an HTTP/1.1 keep-alive reverse proxy on tokio does per request,
//! as one more peer of `--peers` (plain HTTP only). It reads a request head, writes it to its
//! own upstream connection with X-Forwarded-For and -Proto added, reads the answer's head and
//! Content-Length body, and writes the answer back; one current-thread runtime, one upstream
//! connection per client connection. It routes nothing, keeps no stats and knows no chunked
//! bodies, retries or timeouts: it is the rate the kernel's loopback work and the runtime
//! leave to any proxy on this machine, so that the gap between the sidecar and haproxy can be
//! read as what is spent above that floor (docs/profiling.md).
//!
//! The bench starts it as its own process (`proxy --floor-proxy LISTEN BACKEND`, the bench
//! binary itself), so that it runs on a core of its own as the other peers do.
//!
//! Must not: serve anything but the bench's GETs to the nginx backend (it refuses bodies).

use std::io::{Error, ErrorKind};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Proxy;

/// The most a head may take here (the bench's are a few hundred bytes).
const BUFFER_BYTES: usize = 16 * 1024;

/// Starts the floor proxy on `port` in front of `backend`, as a child process.
pub fn start(port: u16, backend: u16) -> Proxy {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--floor-proxy", &format!("127.0.0.1:{port}")])
        .arg(format!("127.0.0.1:{backend}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Proxy {
        name: "floor",
        child,
        port,
    }
}

/// Runs the floor proxy when the arguments ask for it (`--floor-proxy LISTEN BACKEND`);
/// false otherwise.
pub fn run_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == "--floor-proxy") else {
        return false;
    };
    let listen: SocketAddr = args[at + 1].parse().unwrap();
    let backend: SocketAddr = args[at + 2].parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await.unwrap();
        loop {
            let (client, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = serve(client, backend).await;
            });
        }
    });
    true
}

/// One client connection, request after request, over one upstream connection.
async fn serve(mut client: TcpStream, backend: SocketAddr) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut upstream: Option<TcpStream> = None;
    let mut request = vec![0u8; BUFFER_BYTES];
    let mut answer = vec![0u8; BUFFER_BYTES];
    let mut head = Vec::with_capacity(1024);
    loop {
        let mut read = 0;
        loop {
            let n = client.read(&mut request[read..]).await?;
            if n == 0 {
                return Ok(());
            }
            read += n;
            if forwarded_head(&request[..read], &mut head)? {
                break;
            }
        }
        if upstream.is_none() {
            let connection = TcpStream::connect(backend).await?;
            connection.set_nodelay(true)?;
            upstream = Some(connection);
        }
        let Some(connection) = upstream.as_mut() else {
            return Ok(());
        };
        connection.write_all(&head).await?;
        let mut got = 0;
        loop {
            let n = connection.read(&mut answer[got..]).await?;
            if n == 0 {
                return Ok(());
            }
            got += n;
            if answer_complete(&answer[..got])? {
                break;
            }
        }
        client.write_all(&answer[..got]).await?;
    }
}

/// Whether `bytes` hold a whole request head; if so, the head as it goes upstream is in
/// `head` (Connection dropped, X-Forwarded-For and -Proto added).
fn forwarded_head(bytes: &[u8], head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = request.parse(bytes).map_err(invalid)? else {
        return Ok(false);
    };
    head.clear();
    head.extend_from_slice(request.method.unwrap_or("GET").as_bytes());
    head.push(b' ');
    head.extend_from_slice(request.path.unwrap_or("/").as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length")
            || header.name.eq_ignore_ascii_case("transfer-encoding")
        {
            return Err(invalid("the floor proxy takes no request bodies"));
        }
        if header.name.eq_ignore_ascii_case("connection") {
            continue;
        }
        head.extend_from_slice(header.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(header.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n\r\n");
    Ok(true)
}

/// Whether `bytes` hold a whole answer: its head and the Content-Length bytes after it.
fn answer_complete(bytes: &[u8]) -> std::io::Result<bool> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(bytes).map_err(invalid)? else {
        return Ok(false);
    };
    let length: usize = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .ok_or_else(|| invalid("the floor proxy reads Content-Length answers only"))?;
    Ok(bytes.len() >= head + length)
}

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::new(ErrorKind::InvalidData, error)
}
