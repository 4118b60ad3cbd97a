//! A backend on 127.0.0.1 that counts the TCP connections it accepts and hands each to a
//! handler of the test's, and a client that sends its requests on one connection it holds:
//! for tests of how proxies open, reuse and close upstream connections (a pooled client may
//! open a second connection when its next request comes before the first is back in its
//! pool, and a proxy's worker keeps its own upstream connections).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;

/// The listener's port and what it accepted; dropped, it stops accepting.
pub struct CountingBackend {
    pub port: u16,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingBackend {
    /// Accepts connections on a free port, each served by `serve` on a task of its own.
    pub async fn start<F, Fut>(serve: F) -> CountingBackend
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream));
            }
        });
        CountingBackend {
            port,
            accepted,
            task,
        }
    }

    /// The connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for CountingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client's HTTP/1.1 connection, kept open by its own task.
pub type ClientConnection =
    hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>;

/// One client connection to 127.0.0.1:`port`, kept open by its own task.
pub async fn client_connection(port: u16) -> ClientConnection {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// GET /`request` on `sender`'s connection, which must answer 200 `ok`.
pub async fn get_ok_on(sender: &mut ClientConnection, request: usize) {
    sender.ready().await.unwrap();
    let answer = super::get_on_connection(sender, &format!("/{request}"), "upstream.test").await;
    assert_eq!(
        answer.map(|(status, body)| (status, body.to_vec())),
        Ok((200, b"ok".to_vec())),
        "request {request}"
    );
}
