//! An Envoy with a single worker thread, for tests that measure how Envoy's balancer moves
//! over time (slow start): with one worker every request goes through one balancer, whose
//! weights then follow the whole stream of requests instead of each worker's part of it.
//! Must not: change how the other tests' Envoys start (they keep two workers).

use std::net::SocketAddr;
use std::process::Command;

use super::{bootstrap_text, envoy_binary, wait_for, Envoy, INSTALL_HINT};

impl Envoy {
    /// As [`Envoy::start_in`] (envoy-configs/envoy-bootstrap.yaml, locality `region`/`zone`),
    /// with `--concurrency 1`.
    pub async fn start_single_worker(
        xds: SocketAddr,
        node_id: &str,
        region: &str,
        zone: &str,
    ) -> Envoy {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = bootstrap_text("envoy-bootstrap.yaml", &[xds], node_id, region, zone, &[])
            .replace("port_value: 9901", "port_value: 0");
        let bootstrap_path = dir.path().join("bootstrap.yaml");
        std::fs::write(&bootstrap_path, bootstrap).unwrap();
        let admin_path = dir.path().join("admin-address");
        let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&bootstrap_path)
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["-l", "warning", "--concurrency", "1"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start Envoy ({error}); {INSTALL_HINT}"));
        let admin = wait_for("Envoy to write its admin address", || {
            let text = std::fs::read_to_string(&admin_path)
                .ok()
                .filter(|t| !t.trim().is_empty());
            async move { text.map(|t| format!("http://{}", t.trim())) }
        })
        .await;
        Envoy {
            node_id: node_id.to_string(),
            admin,
            child,
            _dir: dir,
        }
    }
}
