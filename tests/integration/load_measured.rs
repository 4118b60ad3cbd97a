//! Load measured from load reports, end to end: Switchyard asks clients to report the
//! services that have a capacity target (and asks again when an edit changes them), a real
//! Envoy started from envoy-configs/envoy-bootstrap.yaml and a grpcio client report over LRS,
//! and `/load_measured` shows requests/s per service and client region over the window.
//!
//! Reports are asked for every second here: the window averages three of them and ends 1.25 s
//! back, so a held load is read 7 s after it starts (the window then lies wholly inside it).
//! The rate is held by a ticker (20 requests/s from Envoy, each sent on its own task so a
//! slow answer does not hold the next one back); the tolerance is ±4 requests/s, a fifth of
//! the rate: a report counted twice, a span misread or another region's load mixed in moves
//! it by far more.

use std::time::{Duration, Instant};

use crate::common::grpc::{bootstrap, GrpcClient, Library};
use crate::common::*;
use crate::proxyless_grpc::{backends_named, with_ports};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use serde_json::Value;

/// How often clients are asked to report in these tests.
const INTERVAL: Duration = Duration::from_secs(1);
/// The window: three intervals long, ending an interval and a quarter back.
const WINDOW: Duration = Duration::from_millis(3000 + 1250);

/// One NEG of one endpoint in us-east1-b behind service `svc` (RATE, 100/s per endpoint),
/// reached through an Envoy listener on `listen`.
fn rated_config(listen: u16, backend: &Backend) -> String {
    format!(
        r#"
networkEndpointGroups:
- name: east
  zone: us-east1-b
  networkEndpointType: GCE_VM_IP_PORT
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {port}}}
backendServices:
- name: svc
  backends:
  - group: zones/us-east1-b/networkEndpointGroups/east
    balancingMode: RATE
    maxRatePerEndpoint: 100
{frontend}"#,
        port = backend.port(),
        frontend = http_frontend(listen, "svc")
    )
}

async fn start(config: &str) -> Switchyard {
    Switchyard::start_with(config, |options| options.load_report_interval = INTERVAL).await
}

/// The `/load_measured` row of `service` and `client_region`, if it has load.
async fn measured(switchyard: &Switchyard, service: &str, client_region: &str) -> Option<Value> {
    let page =
        get_json(&switchyard.admin_url(&format!("/load_measured?service={service}"))).await?;
    page["rows"]
        .as_array()?
        .iter()
        .find(|row| row["client_region"] == client_region)
        .cloned()
}

/// Sends GET `url` `per_second` times a second for `seconds`, paced by a ticker; answers
/// the count of successful answers.
async fn held_load(url: String, per_second: u32, seconds: u32) -> usize {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_second);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::new();
    for _ in 0..per_second * seconds {
        ticks.tick().await;
        let url = url.clone();
        sent.push(tokio::spawn(async move {
            http()
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }));
    }
    let answered = futures_util::future::join_all(sent).await;
    answered
        .into_iter()
        .filter(|ok| *ok.as_ref().unwrap())
        .count()
}

/// Waits until `service` has no measured load from `client_region`; answers how long that
/// took.
async fn until_no_load(switchyard: &Switchyard, service: &str, client_region: &str) -> Duration {
    let stopped = Instant::now();
    wait_for("the measured load to fall to nothing", || async {
        measured(switchyard, service, client_region)
            .await
            .is_none()
            .then(|| stopped.elapsed())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_rate_through_envoy_is_measured_for_its_region_and_ages_out() {
    let backend = Backend::start("east").await;
    let listen = free_port();
    let switchyard = start(&rated_config(listen, &backend)).await;
    let _envoy = Envoy::start_in(
        switchyard.running.xds_addr,
        "east-envoy",
        "us-east1",
        "us-east1-b",
    )
    .await;
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for_body(&url, "east").await;
    // Let the warm-up request age out, so that what is read is the held load alone.
    until_no_load(&switchyard, "svc", "us-east1").await;

    let load = tokio::spawn(held_load(url, 20, 10));
    tokio::time::sleep(Duration::from_secs(7)).await;
    let row = measured(&switchyard, "svc", "us-east1")
        .await
        .expect("Envoy's load is measured for its region");
    let page = get_json(&switchyard.admin_url("/load_measured"))
        .await
        .unwrap();
    let answered = load.await.unwrap();
    assert_eq!(answered, 200, "every request of the held load was answered");
    let rate = row["requests_per_second"].as_f64().unwrap();
    eprintln!("measured: {rate:.2} requests/s from Envoy for a held 20/s: {row}");
    assert!((rate - 20.0).abs() <= 4.0, "20 ± 4 requests/s: {row}");
    assert_eq!(
        row["upstream"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["us-east1/us-east1-b"],
        "{row}"
    );
    let regions: Vec<&Value> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["client_region"])
        .collect();
    assert_eq!(regions, ["us-east1"], "no other region has load: {page}");

    let emptied = until_no_load(&switchyard, "svc", "us-east1").await;
    eprintln!(
        "measured: the load aged out {:.1}s after it stopped",
        emptied.as_secs_f64()
    );
    // A window that never lets go of old reports misses this without bound.
    assert!(emptied <= WINDOW * 3, "aged out after {emptied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_reports_land_in_the_same_window_under_their_own_region() {
    let backends = backends_named(&["a1", "a2", "a3", "b1"]).await;
    let example = std::fs::read_to_string(repo_root().join("examples/grpc.yaml")).unwrap();
    let switchyard = start(&with_ports(example, &backends)).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "grpc-reporter",
        "us-central1",
        "us-central1-a",
    );
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &node).await;
    // Calls one after another, each held 50 ms by the backend: a steady rate under 20/s,
    // measured by the client's own clock.
    let calling = tokio::spawn(async move {
        let started = Instant::now();
        let calls = client.calls(240, None, 50).await;
        (calls, started.elapsed(), client)
    });
    tokio::time::sleep(Duration::from_secs(8)).await;
    let row = measured(&switchyard, "who", "us-central1")
        .await
        .expect("grpcio's load is measured for its region");
    let (calls, took, _client) = calling.await.unwrap();
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    assert!(
        took > Duration::from_secs(8),
        "the calls outlasted the reading ({took:?})"
    );
    let held = 240.0 / took.as_secs_f64();
    let rate = row["requests_per_second"].as_f64().unwrap();
    eprintln!("measured: {rate:.2} requests/s from grpcio calling at {held:.2}/s: {row}");
    // Sequential calls keep a near-steady rate: ±30% of the batch's average, where a report
    // counted twice (or half) is 100% (or 50%) off.
    assert!(
        (rate - held).abs() <= held * 0.3,
        "{rate:.2} requests/s against {held:.2}: {row}"
    );
    let upstream: Vec<&String> = row["upstream"].as_object().unwrap().keys().collect();
    assert_eq!(
        upstream,
        ["us-central1/us-central1-a", "us-central1/us-central1-b"],
        "both zones' backends were called: {row}"
    );
}

/// A raw LRS stream's next answer: the clusters asked for and the interval.
async fn next_ask(
    replies: &mut tonic::Streaming<
        envoy_types::pb::envoy::service::load_stats::v3::LoadStatsResponse,
    >,
) -> (Vec<String>, bool, Duration) {
    let reply = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .expect("the server answers")
        .unwrap()
        .expect("the stream stays open");
    let interval = reply.load_reporting_interval.unwrap();
    (
        reply.clusters,
        reply.send_all_clusters,
        Duration::new(interval.seconds as u64, interval.nanos as u32),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_are_asked_for_the_services_with_a_target_again_after_each_edit() {
    let backend = Backend::start("east").await;
    let config = rated_config(free_port(), &backend);
    let switchyard = start(&config).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", switchyard.running.xds_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    sender
        .send(LoadStatsRequest {
            node: Some(Node {
                id: "asked".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
    let mut replies = LoadReportingServiceClient::new(channel)
        .stream_load_stats(tokio_stream::wrappers::UnboundedReceiverStream::new(
            receiver,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next_ask(&mut replies).await,
        (vec!["svc".to_string()], false, INTERVAL)
    );
    // A second service with a target is asked for too, on the open stream.
    let second = config.replace(
        "backendServices:\n",
        "backendServices:\n- name: more\n  backends:\n  - {group: zones/us-east1-b/networkEndpointGroups/east, balancingMode: RATE, maxRate: 5}\n",
    );
    switchyard.edit(&second).await;
    assert_eq!(
        next_ask(&mut replies).await,
        (vec!["more".to_string(), "svc".to_string()], false, INTERVAL)
    );
    drop(sender);
}
