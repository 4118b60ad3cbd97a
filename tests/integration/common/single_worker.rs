//! An Envoy with a single worker thread, for tests that measure how Envoy's balancer moves
//! over time (slow start): with one worker every request goes through one balancer, whose
//! weights then follow the whole stream of requests instead of each worker's part of it.
//! Must not: change how the other tests' Envoys start (they keep two workers).

use std::net::SocketAddr;

use super::{bootstrap_text, Envoy};

impl Envoy {
    /// As [`Envoy::start_in`] (envoy-configs/envoy-bootstrap.yaml, locality `region`/`zone`),
    /// with `--concurrency 1`.
    pub async fn start_single_worker(
        xds: SocketAddr,
        node_id: &str,
        region: &str,
        zone: &str,
    ) -> Envoy {
        let bootstrap = bootstrap_text("envoy-bootstrap.yaml", &[xds], node_id, region, zone, &[]);
        Envoy::launch(&bootstrap, node_id, 1).await
    }
}
