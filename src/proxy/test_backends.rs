//! Loopback backends for the upstream pools' unit tests (proxy/http1_pool.rs,
//! proxy/http2_pool.rs): a listener that counts the connections it accepted and the ones that
//! ended, each served as the test says, and the wait for an idle connection to be closed.
//!
//! Must not: be used outside tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// The connections a backend accepted, and those that ended.
pub struct Counts {
    pub accepted: Arc<AtomicUsize>,
    pub ended: Arc<AtomicUsize>,
}

/// A backend on loopback serving each connection with `serve`, counting them.
pub async fn counting<F, Fut>(serve: F) -> (SocketAddr, Counts)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let counts = Counts {
        accepted: Arc::default(),
        ended: Arc::default(),
    };
    let (accepting, ending) = (counts.accepted.clone(), counts.ended.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepting.fetch_add(1, Ordering::SeqCst);
            let served = serve(stream);
            let ending = ending.clone();
            tokio::spawn(async move {
                served.await;
                ending.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (address, counts)
}

/// Waits until `ended` counts one connection, and checks that it was not before `idle` had
/// passed since `answered` (late is only a slow machine; never is a failure, after 30 s).
pub async fn closed_after_idle(ended: &AtomicUsize, idle: Duration, answered: Instant) {
    while ended.load(Ordering::SeqCst) == 0 {
        assert!(answered.elapsed() < Duration::from_secs(30), "never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        answered.elapsed() >= idle,
        "closed after {:?}",
        answered.elapsed()
    );
}
