//! Replicas sharing health checking through a real etcd (`serve --etcd`), as real processes:
//! three replicas with one config probe each backend as one checker would, not three; a
//! backend failing its check leaves Envoys attached to different replicas, which then serve
//! the same version; a killed replica's targets are probed by the others; with etcd gone each
//! replica probes everything itself (nothing pulled), and sharing resumes when etcd is back.
//! Without --etcd there is no /cluster and no replica-set metric. Checks run every second and
//! the lease lasts 2 s here, to keep the tests short.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::checked::Checked;
use crate::common::etcd::Etcd;
use crate::common::process::ServeProcess;
use crate::common::sidecar_acceptance::assert_sidecar_accepts;
use crate::common::*;

const NAMES: [&str; 3] = ["r1", "r2", "r3"];
/// The check's interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long probes are counted. With one probe per second per checker, each backend expects
/// 10 from one checker and 30 from three: ±20% of one checker tells them apart.
const WINDOW: Duration = Duration::from_secs(10);

struct ReplicaSet {
    etcd: Etcd,
    /// The port the config's forwarding rule listens on (Envoy's listener).
    listen: u16,
    replicas: Vec<Option<ServeProcess>>,
    backends: Vec<Checked>,
    _dir: tempfile::TempDir,
}

impl ReplicaSet {
    /// etcd, `count` checked backends and the three replicas serving them, sharing.
    async fn start(count: usize) -> ReplicaSet {
        let etcd = Etcd::start().await;
        let mut backends = Vec::new();
        for i in 0..count {
            backends.push(Checked::start(&format!("b{i}")).await);
        }
        let ports: Vec<u16> = backends.iter().map(Checked::port).collect();
        let listen = free_port();
        let config = format!(
            "healthChecks:\n- {{name: hc, type: HTTP, checkIntervalSec: {}, timeoutSec: 1, httpHealthCheck: {{portSpecification: USE_SERVING_PORT, requestPath: /healthz}}}}\n{}",
            INTERVAL.as_secs(),
            one_neg_pool(listen, &ports, 100, "  protocol: HTTP\n  healthChecks: [hc]\n")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lb.yaml");
        std::fs::write(&path, config).unwrap();
        assert_sidecar_accepts(&path);
        let mut replicas = Vec::new();
        for name in NAMES {
            let args = [
                "--etcd",
                &etcd.url,
                "--etcd-prefix",
                "/test/",
                "--etcd-lease",
                "2",
                "--replica-name",
                name,
            ];
            replicas.push(Some(ServeProcess::start(&path, &args).await));
        }
        let set = ReplicaSet {
            etcd,
            listen,
            replicas,
            backends,
            _dir: dir,
        };
        set.wait_for_sharing(&NAMES).await;
        set
    }

    fn live(&self) -> impl Iterator<Item = &ServeProcess> {
        self.replicas.iter().flatten()
    }

    /// Waits until every live replica shares the probing among exactly `members`, and all of
    /// them own the targets between them.
    async fn wait_for_sharing(&self, members: &[&str]) {
        for replica in self.live() {
            wait_for(
                &format!("{} to share among {members:?}", replica.admin),
                || async {
                    let cluster = cluster(replica).await?;
                    let names: Vec<&str> = cluster["members"]
                        .as_array()?
                        .iter()
                        .filter_map(|m| m["name"].as_str())
                        .collect();
                    let owned: u64 = cluster["members"]
                        .as_array()?
                        .iter()
                        .filter_map(|m| m["targets_owned"].as_u64())
                        .sum();
                    let all = cluster["targets"].as_u64()? == self.backends.len() as u64;
                    (cluster["sharing"] == true
                        && names == members
                        && owned == self.backends.len() as u64
                        && all)
                        .then_some(())
                },
            )
            .await;
        }
    }

    /// Waits until no live replica shares (each probes everything).
    async fn wait_for_fallback(&self) {
        for replica in self.live() {
            wait_for(
                &format!("{} to probe everything itself", replica.admin),
                || async { (cluster(replica).await?["sharing"] == false).then_some(()) },
            )
            .await;
        }
    }

    /// Probes each backend received over [`WINDOW`], and how many one checker would send.
    async fn probes_over_window(&self) -> (Vec<u64>, f64) {
        let before: Vec<u64> = self.backends.iter().map(Checked::probes).collect();
        let started = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let after: Vec<u64> = self.backends.iter().map(Checked::probes).collect();
        let one_checker = started.elapsed().as_secs_f64() / INTERVAL.as_secs_f64();
        let probes = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        (probes, one_checker)
    }

    /// Asserts each backend saw `checkers` checkers' probes over the window (±20% of one).
    async fn assert_probed_by(&self, checkers: f64, what: &str) {
        let (probes, one) = self.probes_over_window().await;
        let (low, high) = ((checkers - 0.2) * one, (checkers + 0.2) * one);
        for (backend, count) in self.backends.iter().zip(&probes) {
            assert!(
                (low..=high).contains(&(*count as f64)),
                "{what}: {} got {count} probes in {one:.1} intervals, expected {low:.1}..{high:.1}; \
                 all: {probes:?}",
                backend.addr
            );
        }
    }
}

/// `/cluster` of `replica`.
async fn cluster(replica: &ServeProcess) -> Option<Value> {
    get_json(&replica.url("/cluster")).await
}

/// Envoy's EDS status of `address` in the backend service's cluster (None: not there).
async fn envoy_status(envoy: &Envoy, address: SocketAddr) -> Option<String> {
    envoy
        .hosts("pool")
        .await
        .into_iter()
        .find(|(host, _)| *host == address.to_string())
        .map(|(_, status)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_probe_as_one_and_publish_the_same_health() {
    let set = ReplicaSet::start(6).await;
    set.assert_probed_by(1.0, "three replicas sharing").await;

    // Two Envoys on two different replicas: a failing backend leaves both.
    let replicas: Vec<&ServeProcess> = set.live().collect();
    let on_first = Envoy::start(replicas[0].xds, "envoy-on-r1").await;
    let on_second = Envoy::start(replicas[1].xds, "envoy-on-r2").await;
    let sick = set.backends[0].addr;
    for envoy in [&on_first, &on_second] {
        wait_for("both Envoys to see the backend healthy", || async {
            (envoy_status(envoy, sick).await? == "HEALTHY").then_some(())
        })
        .await;
    }
    let version_before = replicas[0].status().await["serving_version"].clone();
    set.backends[0].set_healthy(false);
    for envoy in [&on_first, &on_second] {
        wait_for(
            &format!("{} to stop using {sick}", envoy.node_id),
            || async {
                let status = envoy_status(envoy, sick).await;
                (status.as_deref() != Some("HEALTHY")).then_some(())
            },
        )
        .await;
    }
    // Same config, same shared health: the same version on every replica, the one that
    // carries the failure.
    wait_for("every replica to serve one version", || async {
        let mut versions = Vec::new();
        for replica in &replicas {
            versions.push(replica.status().await["serving_version"].clone());
        }
        let same = versions.windows(2).all(|w| w[0] == w[1]);
        (same && versions[0] != version_before && versions[0].is_string()).then_some(())
    })
    .await;
    // Still one checker's probes: the sick backend is not probed by every replica either.
    set.assert_probed_by(1.0, "with one backend failing").await;
}

/// `switchyard status --admin` over every replica's admin address (live or not): its exit
/// status and output.
fn status_of_every_replica(admins: &[String]) -> (bool, String) {
    let addresses: Vec<&str> = admins
        .iter()
        .map(|url| url.trim_start_matches("http://"))
        .collect();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["status", "--admin", &addresses.join(",")])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_targets_are_probed_by_the_others() {
    let mut set = ReplicaSet::start(6).await;
    let admins: Vec<String> = set.live().map(|r| r.admin.clone()).collect();
    // Standings settle within a pass or two of etcd's news; until then status says the
    // replicas serve different versions.
    let report = wait_for("status to report one version on every replica", || async {
        let (answered, report) = status_of_every_replica(&admins);
        assert!(answered, "{report}");
        report
            .contains("3 of 3 replicas answered, all serving version")
            .then_some(report)
    })
    .await;
    for name in NAMES {
        assert!(
            report.contains(&format!("  {name}  ")),
            "{name} listed: {report}"
        );
    }
    // SIGKILL: no goodbye, the lease has to expire.
    let killed = set.replicas[1].take().unwrap();
    killed.signal(libc::SIGKILL);
    drop(killed);
    set.wait_for_sharing(&["r1", "r3"]).await;
    // Every backend keeps one checker's probes, those of the dead replica's share included.
    set.assert_probed_by(1.0, "after r2 was killed").await;
    let (answered, report) = status_of_every_replica(&admins);
    assert!(
        !answered,
        "a replica that does not answer fails status: {report}"
    );
    assert!(
        report.contains(&format!(
            "{}: no answer",
            admins[1].trim_start_matches("http://")
        )),
        "{report}"
    );
    assert!(report.contains("2 of 3 replicas answered"), "{report}");
}

/// The replica whose /clients lists `node_id`.
async fn serving(set: &ReplicaSet, node_id: &str) -> Option<usize> {
    for (index, replica) in set.replicas.iter().enumerate() {
        let Some(replica) = replica else { continue };
        let clients = get_json(&replica.url("/clients")).await?;
        let listed = clients["clients"]
            .as_array()?
            .iter()
            .any(|client| client["node_id"] == node_id);
        if listed {
            return Some(index);
        }
    }
    None
}

/// The Envoy counters that move when xDS changes its config.
const CONFIG_CHANGES: [&str; 6] = [
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
];

async fn config_changes(envoy: &Envoy) -> Vec<Option<u64>> {
    let mut values = Vec::new();
    for name in CONFIG_CHANGES {
        values.push(envoy.stat(name).await);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_listing_every_replica_moves_to_another_without_a_failed_request_or_a_push() {
    let mut set = ReplicaSet::start(3).await;
    let addresses: Vec<SocketAddr> = set.live().map(|replica| replica.xds).collect();
    let node_id = "envoy-listing-three";
    let envoy = Envoy::start_with(
        "envoy-bootstrap.yaml",
        &addresses,
        node_id,
        "us-central1",
        "us-central1-a",
    )
    .await;
    let url = format!("http://127.0.0.1:{}/", set.listen);
    wait_for("Envoy to answer through the listener", || async {
        let answer = http().get(&url).send().await.ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
    // Every backend's first checks done, so no health change is due during the switch.
    for backend in &set.backends {
        wait_for("Envoy to see every backend healthy", || async {
            (envoy_status(&envoy, backend.addr).await? == "HEALTHY").then_some(())
        })
        .await;
    }
    let first = wait_for("a replica to list Envoy's stream", || {
        serving(&set, node_id)
    })
    .await;
    let changes_before = config_changes(&envoy).await;
    let versions_before = (
        envoy.stat("cluster_manager.cds.version").await,
        envoy.stat("listener_manager.lds.version").await,
    );

    // Requests without a pause while the replica Envoy streams from dies (SIGKILL: no
    // goodbye; Envoy sees its stream reset and dials the next host of its xDS cluster).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            let client = http();
            let (mut answered, mut failed) = (0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match client.get(&url).send().await {
                    Ok(answer) if answer.status().is_success() => answered += 1,
                    Ok(answer) => failed.push(answer.status().to_string()),
                    Err(error) => failed.push(error.to_string()),
                }
            }
            (answered, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = set.replicas[first].take().unwrap();
    killed.signal(libc::SIGKILL);
    drop(killed);
    let second = wait_for("Envoy to stream from another replica", || async {
        serving(&set, node_id).await.filter(|index| *index != first)
    })
    .await;
    wait_for("Envoy to report itself connected again", || async {
        (envoy.stat("control_plane.connected_state").await? == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let (answered, failed) = traffic.await.unwrap();
    assert!(
        failed.is_empty(),
        "every request answered across the switch to replica {second}: {} failed of {}: {:?}",
        failed.len(),
        answered + failed.len() as u64,
        &failed[..failed.len().min(5)]
    );
    assert!(answered > 20, "requests kept flowing: {answered}");
    // The new replica serves the same versions, so what it answers Envoy's first requests
    // with changes nothing: no cluster or listener added, modified or removed, the same
    // versions held.
    assert_eq!(
        config_changes(&envoy).await,
        changes_before,
        "{CONFIG_CHANGES:?}"
    );
    assert_eq!(
        (
            envoy.stat("cluster_manager.cds.version").await,
            envoy.stat("listener_manager.lds.version").await,
        ),
        versions_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_each_replica_probes_everything_until_etcd_is_back() {
    let mut set = ReplicaSet::start(4).await;
    let envoy = Envoy::start(set.live().next().unwrap().xds, "envoy-through-outage").await;
    let watched = set.backends[3].addr;
    wait_for("Envoy to see the backend healthy", || async {
        (envoy_status(&envoy, watched).await? == "HEALTHY").then_some(())
    })
    .await;
    set.etcd.stop();
    set.wait_for_fallback().await;
    set.assert_probed_by(3.0, "etcd stopped").await;
    // Nothing was pulled because etcd went away; health is still followed.
    assert_eq!(
        envoy_status(&envoy, watched).await.as_deref(),
        Some("HEALTHY")
    );
    set.backends[3].set_healthy(false);
    wait_for(
        "Envoy to stop using the failing backend without etcd",
        || async {
            (envoy_status(&envoy, watched).await.as_deref() != Some("HEALTHY")).then_some(())
        },
    )
    .await;
    set.backends[3].set_healthy(true);
    set.etcd.resume().await;
    set.wait_for_sharing(&NAMES).await;
    set.assert_probed_by(1.0, "etcd back").await;
    wait_for("Envoy to use the recovered backend again", || async {
        (envoy_status(&envoy, watched).await? == "HEALTHY").then_some(())
    })
    .await;
    assert!(!set.etcd.log().contains("panic"), "{}", set.etcd.log());
}

#[tokio::test]
async fn without_etcd_a_replica_is_alone() {
    let switchyard = Switchyard::start(&one_neg_pool(free_port(), &[free_port()], 10, "")).await;
    let answer = http()
        .get(switchyard.admin_url("/cluster"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let metrics = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    assert!(
        !metrics.contains("cluster_members"),
        "no replica-set metrics without --etcd"
    );
}
