//! Outlier detection through the sidecar (`switchyard proxy`), differentially against Envoy:
//! the same GCP config (a backend service with `outlierDetection` over three endpoints) is
//! served by two Switchyards, one to a real Envoy with one worker (so its round robin and its
//! counts are exact) and one to the sidecar, each proxy with backends of its own, and both are
//! driven the same way at the same time. Each backend counts the requests it gets.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::sidecar::Sidecar;
use crate::common::*;

/// Seconds an endpoint stays out on its first ejection; the detector's interval is 1 s.
const BASE_EJECTION_SECONDS: u64 = 10;

/// A backend on 127.0.0.1 that answers with its name and the status it is set to, counting
/// the requests it gets.
struct Switchable {
    name: String,
    port: u16,
    hits: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Switchable {
    async fn start(name: &str) -> Switchable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hits, status) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU16::new(200)));
        let (body, counter, answer) = (name.to_string(), hits.clone(), status.clone());
        let app = axum::Router::new().fallback(move || {
            let (body, counter, answer) = (body.clone(), counter.clone(), answer.clone());
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                let status = answer.load(Ordering::Relaxed);
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Switchable {
            name: name.to_string(),
            port,
            hits,
            status,
            task,
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// The requests it got since the last call.
    fn take_hits(&self) -> u64 {
        self.hits.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Switchable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Backend service `pool` (round robin) with outlier detection ejecting at 5 consecutive 5xx
/// for [`BASE_EJECTION_SECONDS`], at most `max_percent` of the endpoints at `ports`.
fn config(listen: u16, ports: &[u16], max_percent: u32) -> String {
    let outliers = format!(
        "  outlierDetection:\n    consecutiveErrors: 5\n    enforcingConsecutiveErrors: 100\n    interval: {{seconds: 1}}\n    baseEjectionTime: {{seconds: {BASE_EJECTION_SECONDS}}}\n    maxEjectionPercent: {max_percent}\n"
    );
    one_neg_pool(listen, ports, 1000, &outliers)
}

enum Running {
    Envoy(Envoy),
    Sidecar(Sidecar),
}

/// One proxy under test, with its own three backends.
struct Side {
    name: &'static str,
    _switchyard: Switchyard,
    proxy: Running,
    listen: u16,
    backends: Vec<Switchable>,
}

impl Side {
    /// Serves the config (`max_percent`) to an Envoy with one worker, or to the sidecar, and
    /// waits until each backend has answered through it.
    async fn start(envoy: bool, node: &str, max_percent: u32) -> Side {
        let mut backends = Vec::new();
        for name in ["a", "b", "c"] {
            backends.push(Switchable::start(name).await);
        }
        let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
        let listen = free_port();
        let switchyard = Switchyard::start(&config(listen, &ports, max_percent)).await;
        let xds = switchyard.running.xds_addr;
        let proxy = match envoy {
            true => Running::Envoy(
                Envoy::start_single_worker(xds, node, "us-central1", "us-central1-a").await,
            ),
            false => Running::Sidecar(Sidecar::start("envoy-bootstrap.yaml", xds, node).await),
        };
        switchyard.wait_for_acks(node).await;
        let side = Side {
            name: if envoy { "Envoy" } else { "the sidecar" },
            _switchyard: switchyard,
            proxy,
            listen,
            backends,
        };
        let url = side.url();
        wait_for(
            &format!("a, b and c to answer through {}", side.name),
            || {
                let url = url.clone();
                async move {
                    let seen = tally(&url, 9).await;
                    ["a", "b", "c"]
                        .iter()
                        .all(|name| seen.contains_key(*name))
                        .then_some(())
                }
            },
        )
        .await;
        for backend in &side.backends {
            backend.take_hits();
        }
        side
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.listen)
    }

    /// Sends `count` requests one after another (answers of any status are fine).
    async fn send(&self, count: usize) {
        let client = http();
        for _ in 0..count {
            let _ = client.get(self.url()).send().await;
        }
    }

    /// Each backend's requests since the last call, by name.
    fn hits(&self) -> Vec<(String, u64)> {
        self.backends
            .iter()
            .map(|b| (b.name.clone(), b.take_hits()))
            .collect()
    }

    /// An `outlier_detection.` stat of cluster `pool`, as the proxy names it.
    async fn outlier_stat(&self, stat: &str) -> u64 {
        match &self.proxy {
            Running::Envoy(envoy) => envoy
                .stat(&format!("cluster.pool.outlier_detection.{stat}"))
                .await
                .unwrap_or(0),
            Running::Sidecar(sidecar) => {
                // Prometheus counters end in `_total`; ejections_active is a gauge.
                let total = if stat == "ejections_active" || stat.ends_with("_total") {
                    ""
                } else {
                    "_total"
                };
                sidecar
                    .stat(&format!(
                        "envoy_cluster_outlier_detection_{stat}{total}{{envoy_cluster_name=\"pool\"}}"
                    ))
                    .await
            }
        }
    }
}

/// What one proxy did with a backend answering 500: the requests it got while being ejected
/// (of 60), how long until the proxy returned it, and the requests it got (of 90) once it
/// answers 200 again.
#[derive(Debug)]
struct EjectionFigures {
    bad_until_ejected: u64,
    good_while_ejected: Vec<u64>,
    enforced: u64,
    returned_after: Duration,
    back_share: Vec<u64>,
}

async fn eject_and_return(side: &Side) -> EjectionFigures {
    side.backends[0].answer(500);
    let started = Instant::now();
    side.send(60).await;
    let hits = side.hits();
    let enforced = side
        .outlier_stat("ejections_enforced_consecutive_5xx")
        .await;
    wait_for(&format!("{} to return a", side.name), || async {
        (side.outlier_stat("ejections_active").await == 0).then_some(())
    })
    .await;
    let returned_after = started.elapsed();
    side.backends[0].answer(200);
    side.send(90).await;
    EjectionFigures {
        bad_until_ejected: hits[0].1,
        good_while_ejected: hits[1..].iter().map(|(_, n)| *n).collect(),
        enforced,
        returned_after,
        back_share: side.hits().into_iter().map(|(_, n)| n).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_is_ejected_and_returns_through_the_sidecar_as_through_envoy() {
    let (envoy, sidecar) = tokio::join!(
        Side::start(true, "envoy-outlier", 50),
        Side::start(false, "sidecar-outlier", 50),
    );
    let (through_envoy, through_sidecar) =
        tokio::join!(eject_and_return(&envoy), eject_and_return(&sidecar));
    eprintln!("through Envoy: {through_envoy:?}\nthrough the sidecar: {through_sidecar:?}");
    for (name, figures) in [("Envoy", &through_envoy), ("the sidecar", &through_sidecar)] {
        // Round robin sends a every third request: its fifth 500 (request 15 of 60) ejects
        // it, and it gets nothing more while out; one request more is tolerated for the
        // moment the ejection takes to reach the balancer. Without ejection it would get 20.
        assert!(
            (5..=6).contains(&figures.bad_until_ejected),
            "through {name} the failing backend got {} of 60 requests, not 5 (or 6): {figures:?}",
            figures.bad_until_ejected
        );
        assert_eq!(
            figures.good_while_ejected.iter().sum::<u64>() + figures.bad_until_ejected,
            60
        );
        assert_eq!(figures.enforced, 1, "through {name}: {figures:?}");
        // Out for the base ejection time at least (an ejection that ignored it would end at
        // the next 1 s interval).
        assert!(
            figures.returned_after >= Duration::from_secs(BASE_EJECTION_SECONDS),
            "through {name} the backend was back after {:?}, under the {BASE_EJECTION_SECONDS} s \
             ejection time",
            figures.returned_after
        );
        // Back, it takes its third again: 30 of 90 by round robin, ±2 for the request or two
        // a rebuilt schedule may shift.
        assert!(
            (28..=32).contains(&figures.back_share[0]),
            "through {name} the returned backend got {} of 90 requests, not 30: {figures:?}",
            figures.back_share[0]
        );
    }
    // And the two proxies agree within a request on what the failing backend got.
    assert!(
        through_envoy
            .bad_until_ejected
            .abs_diff(through_sidecar.bad_until_ejected)
            <= 1
    );
    assert!(through_envoy.back_share[0].abs_diff(through_sidecar.back_share[0]) <= 2);
}

/// What one proxy did with two of its three backends answering 500: each backend's requests
/// of 90, and the ejections active and refused for the max ejection percent.
async fn two_failing(side: &Side) -> (Vec<u64>, u64, u64) {
    side.backends[0].answer(500);
    side.backends[1].answer(500);
    side.send(90).await;
    let hits = side.hits().into_iter().map(|(_, n)| n).collect();
    let active = side.outlier_stat("ejections_active").await;
    let overflow = side.outlier_stat("ejections_overflow").await;
    (hits, active, overflow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_max_ejection_percent_keeps_the_second_failing_backend_in_as_envoy_does() {
    let (envoy, sidecar) = tokio::join!(
        Side::start(true, "envoy-outlier-max", 50),
        Side::start(false, "sidecar-outlier-max", 50),
    );
    let (through_envoy, through_sidecar) = tokio::join!(two_failing(&envoy), two_failing(&sidecar));
    eprintln!("through Envoy: {through_envoy:?}\nthrough the sidecar: {through_sidecar:?}");
    for (name, (hits, active, overflow)) in
        [("Envoy", &through_envoy), ("the sidecar", &through_sidecar)]
    {
        // With 50% of three endpoints, one may be out: a and b both reach five 500s in a
        // row (requests 13 and 14, in the order round robin happens to start in), the first
        // is ejected and the second, refused, stays in and shares the remaining 75 requests
        // with c: 5 and 37 or 38. Were both ejected, each would get 5 or 6.
        let (fewer, more) = (hits[0].min(hits[1]), hits[0].max(hits[1]));
        assert!(
            (5..=6).contains(&fewer),
            "through {name} the ejected one of a and b got {fewer} of 90 requests, not 5: {hits:?}"
        );
        assert!(
            more >= 35,
            "through {name} the other got {more} of 90 requests: it was ejected beyond 50%: \
             {hits:?}"
        );
        assert_eq!(*active, 1, "through {name} one endpoint is out");
        assert!(
            *overflow >= 1,
            "through {name} the second ejection was refused and counted"
        );
    }
    let kept_in = |hits: &[u64]| hits[0].max(hits[1]);
    assert!(kept_in(&through_envoy.0).abs_diff(kept_in(&through_sidecar.0)) <= 2);
    // Refused again at each fifth 500 in a row, as Envoy counts it (±1 for a request more).
    assert!(through_envoy.2.abs_diff(through_sidecar.2) <= 1);
}
