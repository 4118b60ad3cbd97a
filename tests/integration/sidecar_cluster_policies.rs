//! Cluster policies through the sidecar (`switchyard proxy`), differentially against Envoy: the
//! same ALB template is served by two Switchyards, one to a real Envoy and one to the sidecar,
//! with the same backends on 127.0.0.1, and what each proxy does is measured the same way at
//! the same time. Slow start: a target joining a group ramps up as Envoy ramps it. Circuit
//! breakers: requests past a service's limits on a slow backend are turned away as by Envoy.

use std::time::{Duration, Instant};

use crate::aws_target_groups::{ports, start_targets, steady_stream, template, Answer};
use crate::common::checked::Checked;
use crate::common::ramp::{linear_ramp_share, RampChecks, RampPoint, Sample};
use crate::common::sidecar::Sidecar;
use crate::common::*;
use crate::gcp_fields_served::SlowBackend;

/// One proxy under test: the Switchyard serving it, its admin address and its listener.
struct Through {
    name: &'static str,
    switchyard: Switchyard,
    admin: String,
    listen: u16,
}

impl Through {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen)
    }

    /// Serves `config(listen)` instead and, once this proxy sees `target` HEALTHY in group
    /// `Web` (it has joined the cluster: its ramp starts), sends a steady stream for `until`
    /// seconds; returns the stream's answers, timed from the join.
    async fn stream_after_join(
        &self,
        config: impl Fn(u16) -> String,
        target: &Checked,
        until: f64,
    ) -> Vec<Answer> {
        self.switchyard.edit(&config(self.listen)).await;
        let wanted = (
            format!("127.0.0.1:{}", target.port()),
            "HEALTHY".to_string(),
        );
        wait_for(&format!("{} to see {wanted:?}", self.name), || async {
            hosts_at(&self.admin, "Web")
                .await
                .contains(&wanted)
                .then_some(())
        })
        .await;
        let joined = Instant::now();
        steady_stream(&self.url("/"), joined, until, Duration::from_millis(3)).await
    }
}

/// Every answer of `answers` is a 200, as samples of whether `new` answered.
fn samples(name: &str, answers: &[Answer], new: &str) -> Vec<Sample> {
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.target.is_err()).collect();
    assert!(
        failed.is_empty(),
        "through {name} every request is answered 200: {} of {} were not: {failed:?}",
        failed.len(),
        answers.len()
    );
    answers
        .iter()
        .map(|answer| Sample {
            at: answer.at,
            answers: 1,
            new: usize::from(answer.target.as_deref() == Ok(new)),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_new_target_through_the_sidecar_as_through_envoy() {
    let targets = start_targets(&["old", "new"]).await;
    let slow_start = [("slow_start.duration_seconds", "30")];
    let first = |listen| template(listen, &ports(&targets[..1]), &slow_start);
    let both = |listen| template(listen, &ports(&targets), &slow_start);
    let (envoy_listen, sidecar_listen) = (free_port(), free_port());
    // Envoy with one worker: it refreshes a target's weight only when its balancer picks it,
    // and each worker has a balancer of its own (see aws_target_groups.rs).
    let for_envoy = Switchyard::start(&first(envoy_listen)).await;
    let envoy = Envoy::start_single_worker(
        for_envoy.running.xds_addr,
        "envoy-slow-start",
        "us-east-1",
        "us-east-1a",
    )
    .await;
    let for_sidecar = Switchyard::start(&first(sidecar_listen)).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        for_sidecar.running.xds_addr,
        "sidecar-slow-start",
    )
    .await;
    for_envoy.wait_for_acks("envoy-slow-start").await;
    for_sidecar.wait_for_acks("sidecar-slow-start").await;
    let envoy = Through {
        name: "Envoy",
        switchyard: for_envoy,
        admin: envoy.admin.clone(),
        listen: envoy_listen,
    };
    let sidecar = Through {
        name: "the sidecar",
        switchyard: for_sidecar,
        admin: sidecar.admin.clone(),
        listen: sidecar_listen,
    };
    for through in [&envoy, &sidecar] {
        wait_for_body(&through.url("/"), "old").await;
    }
    // Both ramp the endpoints of a cluster they have just created; alone, the old target's
    // ramp changes nothing: wait until it is over so that it does not blur the new one's.
    tokio::time::sleep(Duration::from_secs(31)).await;
    // Both streams run at once, each timed from when its proxy saw the new target join.
    let (through_envoy, through_sidecar) = tokio::join!(
        envoy.stream_after_join(both, &targets[1], 38.0),
        sidecar.stream_after_join(both, &targets[1], 38.0),
    );
    let ramp = |seconds| linear_ramp_share(seconds, 30.0);
    let judged = |name: &str, answers: &[Answer]| {
        let samples = samples(name, answers, "new");
        let inside: Vec<RampPoint> = [(4.0, 8.0), (10.0, 14.0), (16.0, 20.0), (22.0, 26.0)]
            .into_iter()
            .map(|span| RampPoint::measure(&samples, span, ramp))
            .collect();
        let after = RampPoint::measure(&samples, (33.0, 38.0), ramp);
        eprintln!("through {name}: {inside:?} then {after:?}");
        (inside, after)
    };
    let (envoy_inside, envoy_after) = judged("Envoy", &through_envoy);
    let (sidecar_inside, sidecar_after) = judged("the sidecar", &through_sidecar);
    // The tolerances of aws_target_groups.rs's Envoy test, for both: both balancers follow a
    // schedule (no draw), so ±0.03 of the linear ramp at each of four points of some 600
    // answers (200 at least), a rise of 0.15 at least, and an equal share after the window.
    // What they reject, by the largest miss: a constant share (0.33 at 6 s), aggression 2
    // (0.14 at 6 s), a 20 s window (0.10 at 18 s), a 10% floor (0.07 at 6 s).
    let checks = RampChecks {
        slack: 0.03,
        deviations: 0.0,
        minimum_rise: 0.15,
        minimum_answers: 200,
    };
    checks.assert_followed(&envoy_inside, &envoy_after);
    checks.assert_followed(&sidecar_inside, &sidecar_after);
    // And point for point, the sidecar's share is Envoy's within 0.04.
    for (envoy_point, sidecar_point) in envoy_inside.iter().zip(&sidecar_inside) {
        assert!(
            (envoy_point.share - sidecar_point.share).abs() <= 0.04,
            "at {:.1} s the new target's share is {:.3} through the sidecar, {:.3} through Envoy",
            envoy_point.at,
            sidecar_point.share,
            envoy_point.share
        );
    }
}

/// Two services on the slow backend at `port`: `narrow` takes one connection and queues one
/// request for it; `few` takes two requests at a time. Each behind its own listener.
fn breakers_config((narrow_listen, few_listen): (u16, u16), port: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- name: narrow
  circuitBreakers: {{maxConnections: 1, maxPendingRequests: 1}}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
- name: few
  circuitBreakers: {{maxRequests: 2}}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
urlMaps:
- {{name: narrow-map, defaultService: narrow}}
- {{name: few-map, defaultService: few}}
targetHttpProxies:
- {{name: narrow-proxy, urlMap: narrow-map}}
- {{name: few-proxy, urlMap: few-map}}
forwardingRules:
- {{name: narrow-rule, IPAddress: 127.0.0.1, portRange: "{narrow_listen}", target: narrow-proxy}}
- {{name: few-rule, IPAddress: 127.0.0.1, portRange: "{few_listen}", target: few-proxy}}
"#
    )
}

/// What came back for one request: its status, and for a 503 its overload mark, content
/// type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reply {
    status: u16,
    overloaded: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// Sends `count` GETs of `url` at once; their replies, in order.
async fn all_at_once(url: &str, count: usize) -> Vec<Reply> {
    let client = http();
    let calls: Vec<_> = (0..count)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_string());
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                let header = |name: &str| {
                    let value = response.headers().get(name)?;
                    Some(value.to_str().unwrap_or_default().to_string())
                };
                let (overloaded, content_type) =
                    (header("x-envoy-overloaded"), header("content-type"));
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Reply {
                    status,
                    overloaded,
                    content_type,
                    body,
                }
            })
        })
        .collect();
    let mut replies = Vec::new();
    for call in calls {
        replies.push(call.await.unwrap());
    }
    replies
}

/// How many of `replies` passed (200), and the ones turned away (503).
fn tally(replies: &[Reply]) -> (usize, Vec<&Reply>) {
    let passed = replies.iter().filter(|r| r.status == 200).count();
    let overflowed = replies.iter().filter(|r| r.status == 503).collect();
    (passed, overflowed)
}

/// A counter of Envoy's Prometheus form at `admin` (`name` with its labels), 0 when absent.
async fn prometheus_counter(admin: &str, name: &str) -> u64 {
    let text = get_text(&format!("{admin}/stats/prometheus"))
        .await
        .unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breakers_turn_requests_away_through_the_sidecar_as_through_envoy() {
    let backend = SlowBackend::start().await;
    let (envoy_ports, sidecar_ports) = ((free_port(), free_port()), (free_port(), free_port()));
    let for_envoy = Switchyard::start(&breakers_config(envoy_ports, backend.port)).await;
    // One worker: Envoy's pools are per worker, and a worker with no connection opens one
    // whatever the limit; with one the limits hold exactly.
    let envoy = Envoy::start_single_worker(
        for_envoy.running.xds_addr,
        "envoy-breakers",
        "us-central1",
        "us-central1-a",
    )
    .await;
    let for_sidecar = Switchyard::start(&breakers_config(sidecar_ports, backend.port)).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        for_sidecar.running.xds_addr,
        "sidecar-breakers",
    )
    .await;
    for_envoy.wait_for_acks("envoy-breakers").await;
    for_sidecar.wait_for_acks("sidecar-breakers").await;
    let url = |listen: u16, ms: u64| format!("http://127.0.0.1:{listen}/sleep/{ms}");
    let mut outcomes = Vec::new();
    // Envoy's Prometheus counters carry no suffix; the sidecar's (OpenMetrics) end in `_total`.
    for (name, admin, (narrow, few), suffix) in [
        ("Envoy", envoy.admin.clone(), envoy_ports, ""),
        (
            "the sidecar",
            sidecar.admin.clone(),
            sidecar_ports,
            "_total",
        ),
    ] {
        // The warm-up leaves narrow's one connection open and idle.
        wait_for_body(&url(narrow, 0), "slept").await;
        wait_for_body(&url(few, 0), "slept").await;
        // Eight requests at once, each held two seconds by the backend (without the limits
        // all eight pass): narrow serves one on its connection and queues one; few serves two.
        let (narrow_url, few_url) = (url(narrow, 2000), url(few, 2000));
        let (narrow_replies, few_replies) =
            tokio::join!(all_at_once(&narrow_url, 8), all_at_once(&few_url, 8));
        let mut counted = Vec::new();
        for (cluster, stat) in [
            ("narrow", "upstream_rq_pending_overflow"),
            ("few", "upstream_rq_active_overflow"),
            ("narrow", "upstream_cx_overflow"),
        ] {
            let stat = format!("envoy_cluster_{stat}{suffix}{{envoy_cluster_name=\"{cluster}\"}}");
            counted.push(prometheus_counter(&admin, &stat).await);
        }
        eprintln!(
            "through {name}: narrow {narrow_replies:?}, few {few_replies:?}, counted {counted:?}"
        );
        outcomes.push((name, narrow_replies, few_replies, counted));
    }
    let (_, envoy_narrow, envoy_few, _) = &outcomes[0];
    let envoy_overflow = tally(envoy_narrow).1[0].clone();
    for (name, narrow, few, counted) in &outcomes {
        let (narrow_passed, narrow_overflowed) = tally(narrow);
        let (few_passed, few_overflowed) = tally(few);
        // Exactly: two pass through each (one connection and one queued; two requests).
        assert_eq!(
            (narrow_passed, narrow_overflowed.len()),
            (2, 6),
            "through {name}, narrow: {narrow:?}"
        );
        assert_eq!(
            (few_passed, few_overflowed.len()),
            (2, 6),
            "through {name}, few: {few:?}"
        );
        // Every turned-away request gets Envoy's own answer and is counted under its name.
        for overflow in narrow_overflowed.iter().chain(&few_overflowed) {
            assert_eq!(**overflow, envoy_overflow, "through {name}");
        }
        // Envoy's names: a full queue (narrow), too many requests (few), and the one request
        // queued for narrow's busy connection.
        assert_eq!(
            counted,
            &vec![6, 6, 1],
            "through {name}: narrow's upstream_rq_pending_overflow, few's \
             upstream_rq_active_overflow, narrow's upstream_cx_overflow"
        );
    }
    assert_eq!(envoy_overflow.overloaded.as_deref(), Some("true"));
    assert_eq!(tally(envoy_few).1.len(), 6);
}

/// Two services on a backend that answers every request 500, each retrying 5xx three times:
/// `open` with Envoy's default retry places (3 at a time), `shut` with one (`maxRetries: 1`).
fn retries_config((open_listen, shut_listen): (u16, u16), port: u16) -> String {
    let route = |name: &str| {
        format!(
            "- name: {name}-map\n  defaultService: {name}\n  hostRules: [{{hosts: ['*'], pathMatcher: m}}]\n  pathMatchers:\n  - name: m\n    defaultService: {name}\n    routeRules:\n    - priority: 1\n      matchRules: [{{prefixMatch: /}}]\n      service: {name}\n      routeAction: {{retryPolicy: {{retryConditions: [5xx], numRetries: 3}}}}\n"
        )
    };
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- name: open
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
- name: shut
  circuitBreakers: {{maxRetries: 1}}
  backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRate: 1000}}]
urlMaps:
{open_map}{shut_map}targetHttpProxies:
- {{name: open-proxy, urlMap: open-map}}
- {{name: shut-proxy, urlMap: shut-map}}
forwardingRules:
- {{name: open-rule, IPAddress: 127.0.0.1, portRange: "{open_listen}", target: open-proxy}}
- {{name: shut-rule, IPAddress: 127.0.0.1, portRange: "{shut_listen}", target: shut-proxy}}
"#,
        open_map = route("open"),
        shut_map = route("shut"),
    )
}

/// The tries `backend` received while `send` ran, and how many retries `cluster` turned away
/// meanwhile by the proxy's own count (`admin`; its counters' names end in `suffix`).
async fn tries_and_retry_overflows<F: std::future::Future<Output = ()>>(
    backend: &Backend,
    (admin, suffix): (&str, &str),
    cluster: &str,
    send: F,
) -> (u64, u64) {
    let stat = format!(
        "envoy_cluster_upstream_rq_retry_overflow{suffix}{{envoy_cluster_name=\"{cluster}\"}}"
    );
    let hits_before = *backend.hits.lock().unwrap();
    let overflows_before = prometheus_counter(admin, &stat).await;
    send.await;
    let tries = *backend.hits.lock().unwrap() - hits_before;
    (
        tries,
        prometheus_counter(admin, &stat).await - overflows_before,
    )
}

/// Retries hold one of the cluster's `max_retries` places while they back off, as Envoy's
/// do: one request after another, every one is retried three times (four tries each);
/// eight at once against a single place, some retries are turned away and counted, and
/// each request stops retrying at its first refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_circuit_breaker_holds_retries_back_through_the_sidecar_as_through_envoy() {
    const REQUESTS: u64 = 8;
    let backend = Backend::start_failing("failing").await;
    let (envoy_ports, sidecar_ports) = ((free_port(), free_port()), (free_port(), free_port()));
    let for_envoy = Switchyard::start(&retries_config(envoy_ports, backend.port())).await;
    let envoy = Envoy::start_single_worker(
        for_envoy.running.xds_addr,
        "envoy-retries",
        "us-central1",
        "us-central1-a",
    )
    .await;
    let for_sidecar = Switchyard::start(&retries_config(sidecar_ports, backend.port())).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        for_sidecar.running.xds_addr,
        "sidecar-retries",
    )
    .await;
    for_envoy.wait_for_acks("envoy-retries").await;
    for_sidecar.wait_for_acks("sidecar-retries").await;
    // Envoy's Prometheus counters carry no suffix; the sidecar's (OpenMetrics) end in `_total`.
    for (name, admin, (open, shut), suffix) in [
        ("Envoy", envoy.admin.clone(), envoy_ports, ""),
        (
            "the sidecar",
            sidecar.admin.clone(),
            sidecar_ports,
            "_total",
        ),
    ] {
        for listen in [open, shut] {
            let url = format!("http://127.0.0.1:{listen}/");
            wait_for("the listener to answer", || async {
                let status = http().get(&url).send().await.ok()?.status();
                (status == 500).then_some(())
            })
            .await;
        }
        let open_url = format!("http://127.0.0.1:{open}/");
        let (tries, overflows) =
            tries_and_retry_overflows(&backend, (&admin, suffix), "open", async {
                for _ in 0..REQUESTS {
                    let response = http().get(&open_url).send().await.unwrap();
                    assert_eq!(
                        response.status(),
                        500,
                        "through {name}: the last try's answer"
                    );
                    assert_eq!(response.text().await.unwrap(), "failing", "through {name}");
                }
            })
            .await;
        assert_eq!(
            (tries, overflows),
            (REQUESTS * 4, 0),
            "through {name}: open"
        );

        let shut_url = format!("http://127.0.0.1:{shut}/");
        let (tries, overflows) =
            tries_and_retry_overflows(&backend, (&admin, suffix), "shut", async {
                let replies = all_at_once(&shut_url, REQUESTS as usize).await;
                assert!(
                    replies.iter().all(|r| r.status == 500),
                    "through {name}: {replies:?}"
                );
            })
            .await;
        eprintln!("through {name}, shut: {tries} tries, {overflows} retries turned away");
        // Each request either made its three retries or stopped at its one refusal (after
        // 0 to 2 retries): the tries lie between those bounds.
        assert!(
            overflows >= 1,
            "through {name}: eight at once, one place: none turned away"
        );
        let full = REQUESTS - overflows;
        let least = REQUESTS + 3 * full;
        assert!(
            (least..=least + 2 * overflows).contains(&tries),
            "through {name}: {tries} tries with {overflows} refusals"
        );
    }
}
