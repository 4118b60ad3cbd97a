//! Load reports summed across replicas (`serve --etcd`), as real processes: two replicas of
//! one capacity config (RATE, 20 requests/s per endpoint, one endpoint near in us-central1 and
//! one far in europe-west1), two Envoys in us-central1, one attached to each replica, each
//! carrying 15 requests/s. Each replica's own clients stay under the near capacity (15 of 20),
//! together they are over it (30 of 20): the near region must take its 20 and the rest spill,
//! on both Envoys — which only happens if each replica decides from the sum of the load both
//! published, not from its own clients' reports.
//!
//! With etcd gone past the lease, each replica decides from its own clients' load again.
//!
//! Both Envoys get the same listeners from the same config, so each also carries a listener
//! of its own from its bootstrap (a distinct port, routing to the service's cluster), and each
//! client sends to its own Envoy's. Shares are counted per client from the backends' answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::etcd::Etcd;
use crate::common::process::ServeProcess;
use crate::common::sidecar_acceptance::assert_sidecar_accepts;
use crate::common::*;

/// Requests/s each client sends: under the near capacity alone, over it together.
const RATE_EACH: u64 = 15;
/// The near endpoint's capacity (maxRatePerEndpoint).
const NEAR_CAPACITY: f64 = 20.0;
/// How long the shares may take to move once both replicas publish their load: decisions
/// every 2 s move a share by at most 0.25 a step, after a window of three intervals. Local-only
/// decisions never move traffic at all, which no wait tells apart from a slow machine; the
/// assertion after it does.
const SETTLE: Duration = Duration::from_secs(15);
/// Requests counted per client. The near share expected is 20/30 = 0.667; its binomial
/// standard deviation over 300 requests is 0.027, so ±0.1 is over 3.5 of them, and it
/// excludes both 1.0 (each replica deciding from its own 15/s keeps everything near) and 0.5
/// (a static split by capacity).
const COUNTED: u64 = 300;
const TOLERANCE: f64 = 0.1;

/// An Envoy in us-central1 attached to the replica at `xds` (reporting load to it), with a
/// listener of its own on `port` that sends everything to the cluster `svc`.
async fn envoy_with_own_listener(xds: SocketAddr, node_id: &str, port: u16) -> Envoy {
    let listener = format!(
        r#"static_resources:
  listeners:
  - name: own-entry
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: own_entry
          route_config:
            name: own-entry
            validate_clusters: false
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: svc}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    );
    let bootstrap = bootstrap_text(
        "envoy-bootstrap.yaml",
        &[xds],
        node_id,
        "us-central1",
        "us-central1-a",
        &[("static_resources:\n", &listener)],
    );
    assert!(
        bootstrap.contains("load_stats_config"),
        "the bootstrap reports load"
    );
    Envoy::launch(&bootstrap, node_id, 2).await
}

/// GETs to one URL at a held rate, each sent without waiting for the ones before, tallying
/// which backend answered (its name is the body).
struct PacedTally {
    answered: Arc<Mutex<BTreeMap<String, u64>>>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PacedTally {
    fn start(url: String, per_second: u64) -> PacedTally {
        let answered = Arc::new(Mutex::new(BTreeMap::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let (tally, failures) = (answered.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let client = http();
            let period = Duration::from_secs_f64(1.0 / per_second as f64);
            let mut next = tokio::time::Instant::now();
            loop {
                next += period;
                tokio::time::sleep_until(next).await;
                let (client, url) = (client.clone(), url.clone());
                let (tally, failures) = (tally.clone(), failures.clone());
                tokio::spawn(async move {
                    let body = match client.get(&url).send().await {
                        Ok(answer) if answer.status().is_success() => answer.text().await.ok(),
                        _ => None,
                    };
                    match body {
                        Some(name) => *tally.lock().unwrap().entry(name).or_default() += 1,
                        None => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        PacedTally {
            answered,
            failed,
            task,
        }
    }

    /// (near, far) answered so far.
    fn counts(&self) -> (u64, u64) {
        let answered = self.answered.lock().unwrap();
        let count = |name: &str| answered.get(name).copied().unwrap_or(0);
        (count("near"), count("far"))
    }
}

impl Drop for PacedTally {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The near backend's share of the next `count` requests each of `clients` sends, counted
/// at the same time for all of them.
async fn near_shares_of_next(clients: &[&PacedTally], count: u64) -> Vec<f64> {
    let before: Vec<(u64, u64)> = clients.iter().map(|c| c.counts()).collect();
    let mut shares = Vec::new();
    for (client, (near_before, far_before)) in clients.iter().zip(before) {
        let (near, far) = wait_for(&format!("{count} more answers"), || {
            let (near, far) = client.counts();
            async move { (near + far >= near_before + far_before + count).then_some((near, far)) }
        })
        .await;
        let near_got = near - near_before;
        shares.push(near_got as f64 / (near_got + far - far_before) as f64);
    }
    shares
}

/// `/cluster` of `replica`.
async fn cluster(replica: &ServeProcess) -> Option<Value> {
    get_json(&replica.url("/cluster")).await
}

/// The requests/s each member of `replica`'s view last published, by name.
async fn published_loads(replica: &ServeProcess) -> Option<BTreeMap<String, f64>> {
    let cluster = cluster(replica).await?;
    cluster["members"]
        .as_array()?
        .iter()
        .map(|member| {
            let name = member["name"].as_str()?.to_string();
            Some((name, member["load"]["requests_per_second"].as_f64()?))
        })
        .collect()
}

/// The demand from us-central1 `replica` decided with (smoothed), from `/capacity`.
async fn decided_demand(replica: &ServeProcess) -> Option<f64> {
    let report = get_json(&replica.url("/capacity?service=svc")).await?;
    report["clients"]
        .as_array()?
        .iter()
        .find(|c| c["region"] == "us-central1")?["smoothed"]
        .as_f64()
}

/// The requests/s `replica`'s own clients sent from us-central1, from `/load_measured`.
async fn own_demand(replica: &ServeProcess) -> Option<f64> {
    let page = get_json(&replica.url("/load_measured?service=svc")).await?;
    page["rows"]
        .as_array()?
        .iter()
        .find(|row| row["client_region"] == "us-central1")?["requests_per_second"]
        .as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_arriving_through_two_replicas_is_summed_and_both_clients_spill() {
    let etcd = Etcd::start().await;
    let (near, far) = (Backend::start("near").await, Backend::start("far").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.yaml");
    std::fs::write(
        &path,
        crate::capacity_spill::config(free_port(), &near, &far, "1"),
    )
    .unwrap();
    assert_sidecar_accepts(&path);
    let started = Instant::now();
    let mut replicas = Vec::new();
    for name in ["r1", "r2"] {
        let args = [
            "--etcd",
            &etcd.url,
            "--etcd-prefix",
            "/load-test/",
            "--etcd-lease",
            "2",
            "--replica-name",
            name,
            "--load-report-interval",
            "2",
        ];
        replicas.push(ServeProcess::start(&path, &args).await);
    }
    let mut envoys = Vec::new();
    let mut clients = Vec::new();
    for (replica, node_id) in replicas.iter().zip(["load-envoy-1", "load-envoy-2"]) {
        let port = free_port();
        let envoy = envoy_with_own_listener(replica.xds, node_id, port).await;
        wait_for(&format!("{node_id} to know both backends"), || async {
            (envoy.hosts("svc").await.len() == 2).then_some(())
        })
        .await;
        envoys.push(envoy);
        clients.push(PacedTally::start(
            format!("http://127.0.0.1:{port}/"),
            RATE_EACH,
        ));
    }

    // Each replica publishes its own clients' load, and sees the other's.
    for replica in &replicas {
        wait_for(
            &format!("{} to see both members' load", replica.admin),
            || async {
                let loads = published_loads(replica).await?;
                (loads.len() == 2 && loads.values().all(|rps| *rps >= 10.0)).then_some(())
            },
        )
        .await;
    }
    tokio::time::sleep(SETTLE).await;

    let clients_ref: Vec<&PacedTally> = clients.iter().collect();
    let shares = near_shares_of_next(&clients_ref, COUNTED).await;
    let mut figures = Vec::new();
    for replica in &replicas {
        figures.push((
            own_demand(replica).await,
            decided_demand(replica).await,
            published_loads(replica).await,
            cluster(replica)
                .await
                .map(|c| c["load_decided_from"].clone()),
        ));
    }
    eprintln!("near shares per client {shares:?}; per replica (own, decided from, published, source): {figures:?}");
    let expected = NEAR_CAPACITY / (2 * RATE_EACH) as f64;
    for (client, share) in shares.iter().enumerate() {
        assert!(
            (share - expected).abs() <= TOLERANCE,
            "client {client}: near takes 20 of 30 requests/s, {expected:.3} ± {TOLERANCE}, \
             got {share:.3}; all {shares:?}; replicas {figures:?}"
        );
    }
    // Each replica decided from the sum (30/s), not from its own clients' 15/s.
    for (own, decided, _, source) in &figures {
        let decided = decided.expect("/capacity has the us-central1 demand");
        assert!(
            (24.0..=36.0).contains(&decided),
            "decided from 30 ± 6 requests/s, got {decided:.1} (own clients {own:?})"
        );
        assert_eq!(source.as_ref(), Some(&Value::from("members")));
    }
    for client in &clients {
        assert_eq!(
            client.failed.load(Ordering::Relaxed),
            0,
            "no request failed"
        );
    }
    let metrics = get_text(&replicas[0].url("/metrics")).await.unwrap();
    let writes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_cluster_load_writes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("/metrics counts load writes");
    // At most one write per interval (2 s) and one per session: writing on every report or
    // every pass would be several times more.
    let most = started.elapsed().as_secs_f64() / 2.0 + 2.0;
    assert!(
        (1.0..=most).contains(&writes),
        "{writes} load writes, at most {most:.0}"
    );

    // etcd gone past the lease: each replica decides from its own clients again (15/s), and
    // says so; a replica keeping the last sum would stay at 30.
    let mut etcd = etcd;
    etcd.stop();
    for replica in &replicas {
        wait_for(
            &format!("{} to decide from its own load without etcd", replica.admin),
            || async {
                let source = cluster(replica).await?["load_decided_from"].clone();
                let decided = decided_demand(replica).await?;
                (source == "local" && decided < NEAR_CAPACITY).then_some(())
            },
        )
        .await;
    }
    drop((clients, envoys, replicas, etcd));
}
