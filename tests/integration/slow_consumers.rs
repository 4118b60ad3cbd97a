//! Streams that subscribe and never read cost the server a bounded amount of memory, and a
//! client that keeps up is served every update alongside them. The server runs as its own
//! process so that its memory is measured alone. The bounds are an order of magnitude below
//! what an unbounded server would take; `cargo bench --bench loadgen -- slow` measures the
//! precise cost.

use crate::common;
use crate::common::process::{write_atomically, ServeProcess};
use crate::common::xds::*;
use crate::fleet_config;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use futures_util::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const SERVICES: usize = 1000;
const SLOW_STREAMS: usize = 2000;
const STREAMS_PER_CONNECTION: usize = 100;
const EDITS: usize = 10;
/// What the server may hold per stream that does not read. A bounded server holds its
/// subscriptions, the versions it sent, one piece of the response in flight and HTTP/2's
/// buffer up to the client's window: about 50 KiB here (the precise figure is measured by
/// `cargo bench --bench loadgen -- slow`). A server that encodes and queues what it owes a
/// stream regardless of the window holds the stream's whole state and all of EDS again for
/// each edit: 4.7 MiB per stream by the tenth edit, measured with the body drained eagerly
/// into a queue. It misses this bound by more than ten times.
const BOUND_PER_SLOW_STREAM_KIB: u64 = 256;

/// The fleet config with every service's capacityScaler at `scaler`: an edit moves every
/// ClusterLoadAssignment, so that a server queueing what it owes a stream that does not read
/// would queue the whole of EDS again at each edit.
fn scaled_fleet(scaler: &str) -> String {
    let text = fleet_config::fleet_config(SERVICES, 10080, "1.0");
    assert_eq!(text.matches("capacityScaler: 1.0").count(), SERVICES);
    text.replace("capacityScaler: 1.0", &format!("capacityScaler: {scaler}"))
}

/// A connection whose windows are small, so that a stream that does not read stalls the
/// server after a few kilobytes, as a stuck client does.
async fn stingy_channel(address: std::net::SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .unwrap()
}

/// Everything a sidecar of the fleet would ask for, in order.
fn subscriptions(index: usize) -> Vec<DiscoveryRequest> {
    let names: Vec<String> = (0..SERVICES).map(|s| format!("svc-{s}")).collect();
    let request = |type_url: &str, names: &[String]| DiscoveryRequest {
        node: Some(node(&format!("slow-{index}"))),
        type_url: type_url.into(),
        resource_names: names.to_vec(),
        ..Default::default()
    };
    vec![
        request(CLUSTER, &[]),
        request(ENDPOINT, &names),
        request(LISTENER, &[]),
        request(ROUTE, &["fleet".to_string()]),
    ]
}

fn delta_subscriptions(index: usize) -> Vec<DeltaDiscoveryRequest> {
    let names: Vec<String> = (0..SERVICES).map(|s| format!("svc-{s}")).collect();
    let request = |type_url: &str, names: &[String]| DeltaDiscoveryRequest {
        node: Some(node(&format!("slow-delta-{index}"))),
        type_url: type_url.into(),
        resource_names_subscribe: names.to_vec(),
        ..Default::default()
    };
    vec![
        request(CLUSTER, &["*".to_string()]),
        request(ENDPOINT, &names),
        request(LISTENER, &["*".to_string()]),
        request(ROUTE, &["fleet".to_string()]),
    ]
}

/// Opens `SLOW_STREAMS` streams, half state-of-the-world and half delta, that subscribe to
/// everything and never read; answers what keeps them open.
async fn open_slow_streams(
    address: std::net::SocketAddr,
    stop: &CancellationToken,
) -> Vec<Box<dyn std::any::Any>> {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for connection in 0..SLOW_STREAMS / STREAMS_PER_CONNECTION {
        let channel = stingy_channel(address).await;
        for stream in 0..STREAMS_PER_CONNECTION {
            let index = connection * STREAMS_PER_CONNECTION + stream;
            let mut client = AggregatedDiscoveryServiceClient::new(channel.clone());
            if index.is_multiple_of(2) {
                let requests = futures_util::stream::iter(subscriptions(index))
                    .chain(futures_util::stream::pending())
                    .take_until(stop.clone().cancelled_owned());
                let responses = client.stream_aggregated_resources(requests).await.unwrap();
                held.push(Box::new(responses));
            } else {
                let requests = futures_util::stream::iter(delta_subscriptions(index))
                    .chain(futures_util::stream::pending())
                    .take_until(stop.clone().cancelled_owned());
                let responses = client.delta_aggregated_resources(requests).await.unwrap();
                held.push(Box::new(responses));
            }
        }
        held.push(Box::new(channel));
    }
    held
}

fn scaler_of(response: &DiscoveryResponse) -> Vec<u8> {
    response
        .resources
        .iter()
        .map(|r| {
            ClusterLoadAssignment::decode(r.value.as_slice())
                .unwrap()
                .encode_to_vec()
        })
        .next()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_that_do_not_read_cost_bounded_memory_and_delay_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    write_atomically(&file, &scaled_fleet("1.0"));
    let serve = ServeProcess::start(&file, &["--removal-grace", "0"]).await;
    serve
        .wait_for_status("the fleet config to be served", |s| {
            s["last_load_accepted"].as_bool() == Some(true)
        })
        .await;

    let mut good = SotwClient::open(serve.xds, Service::Ads).await;
    good.request(ENDPOINT, &["svc-0"], "", "");
    let first = good.recv().await;
    good.ack(&first, &["svc-0"]);
    let (baseline_kib, _) = serve.memory_kib();

    let stop = CancellationToken::new();
    let slow = open_slow_streams(serve.xds, &stop).await;
    wait_for_streams(&serve, SLOW_STREAMS + 1).await;

    let mut seen = vec![scaler_of(&first)];
    let mut peak_kib = 0;
    for edit in 1..=EDITS {
        let scaler = format!("{:.2}", 0.05 + edit as f64 * 0.09);
        write_atomically(&file, &scaled_fleet(&scaler));
        let pushed = good.recv().await;
        assert_eq!(
            pushed.resources.len(),
            1,
            "edit {edit}: one ClusterLoadAssignment"
        );
        good.ack(&pushed, &["svc-0"]);
        let content = scaler_of(&pushed);
        assert!(
            !seen.contains(&content),
            "edit {edit} brought new endpoints"
        );
        seen.push(content);
        peak_kib = peak_kib.max(serve.memory_kib().0);
    }
    assert_eq!(
        seen.len(),
        EDITS + 1,
        "the well-behaved client got every update"
    );

    let bound_kib = baseline_kib + SLOW_STREAMS as u64 * BOUND_PER_SLOW_STREAM_KIB;
    eprintln!(
        "server RSS: {baseline_kib} KiB before the slow streams, at most {peak_kib} KiB through \
         {EDITS} edits with {SLOW_STREAMS} of them (bound {bound_kib} KiB)"
    );
    assert!(
        peak_kib <= bound_kib,
        "{peak_kib} KiB is over {baseline_kib} KiB + {SLOW_STREAMS} × \
         {BOUND_PER_SLOW_STREAM_KIB} KiB"
    );

    stop.cancel();
    drop(slow);
    wait_for_streams(&serve, 1).await;
    // The memory they held is given back (the server trims after streams close): all but a
    // tenth of it, which a server that kept the streams' state would miss ten times over.
    let taken_kib = peak_kib.saturating_sub(baseline_kib);
    let returned_kib = common::wait_for("memory to be returned", || async {
        let (now_kib, _) = serve.memory_kib();
        (now_kib <= baseline_kib + taken_kib / 10).then_some(now_kib)
    })
    .await;
    eprintln!("server RSS after the slow streams closed: {returned_kib} KiB");
}

/// Waits until the server counts `count` connected streams.
async fn wait_for_streams(serve: &ServeProcess, count: usize) {
    common::wait_for(&format!("{count} streams to be connected"), || async {
        let text = common::get_text(&serve.url("/metrics")).await?;
        let connected: f64 = text
            .lines()
            .filter(|l| l.starts_with("switchyard_xds_clients{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (connected as usize == count).then_some(())
    })
    .await;
}
