//! An HTTP backend on loopback whose behaviour a test switches while it runs: `/healthz`
//! answers 200 or 500 (counting the probes it passes and fails); every other path answers the
//! backend's name with 200 or, when failing, 500; and while holding, requests wait until
//! released (so that a test can keep requests outstanding or in flight).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::watch;

pub struct Checked {
    pub addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
    holding: watch::Sender<bool>,
    passed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Checked {
    pub async fn start_on(name: &str, addr: SocketAddr) -> Checked {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let failing = Arc::new(AtomicBool::new(false));
        let (holding, _) = watch::channel(false);
        let passed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let hits = Arc::new(AtomicU64::new(0));
        let (switch, passes, failures) = (healthy.clone(), passed.clone(), failed.clone());
        let check = move || {
            let (switch, passes, failures) = (switch.clone(), passes.clone(), failures.clone());
            async move {
                if switch.load(Ordering::SeqCst) {
                    passes.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::OK, "ok")
                } else {
                    failures.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::INTERNAL_SERVER_ERROR, "sick")
                }
            }
        };
        let body = name.to_string();
        let (fails, counter, hold) = (failing.clone(), hits.clone(), holding.subscribe());
        let serve = move || {
            let (body, fails, counter, mut hold) =
                (body.clone(), fails.clone(), counter.clone(), hold.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = hold.wait_for(|holding| !holding).await;
                let status = if fails.load(Ordering::SeqCst) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                (status, body)
            }
        };
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(check))
            .fallback(serve);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Checked {
            addr,
            healthy,
            failing,
            holding,
            passed,
            failed,
            hits,
            task,
        }
    }

    pub async fn start(name: &str) -> Checked {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests other than health checks answer 500 while failing.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// While holding, requests other than health checks wait; releasing answers them all.
    pub fn set_holding(&self, holding: bool) {
        self.holding.send_replace(holding);
    }

    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn probes(&self) -> u64 {
        self.passed() + self.failed()
    }

    /// Requests received other than health checks (held ones included).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        self.task.abort();
    }
}
