//! Streams that subscribe to everything and never read, against `switchyard serve`: what each
//! costs the server at its peak through a run of edits, whether a client reading alongside
//! gets every update, and what the server gives back when they close. This is the precise
//! figure; tests/integration/slow_consumers.rs keeps only a bound an unbounded server would
//! miss by an order of magnitude.
//!
//!     cargo bench --bench loadgen -- slow --services 1000 --streams 2000 --edits 10

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::client::{connect, node, CLUSTER, ENDPOINT, LISTENER, ROUTE};
use crate::fleet_config::fleet_config;
use crate::server::ServerProcess;

/// Streams opened on one connection, as a proxy with many clients behind one pool would.
const STREAMS_PER_CONNECTION: usize = 100;

/// A connection whose windows are small, so that a stream that does not read stalls the
/// server after a few kilobytes, as a stuck client does.
async fn stingy_channel(address: &str) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .unwrap()
}

/// Every cluster, endpoint, listener and route of the fleet config, asked for by `index`.
fn sotw_subscriptions(index: usize, services: usize) -> Vec<DiscoveryRequest> {
    let names: Vec<String> = (0..services).map(|s| format!("svc-{s}")).collect();
    let request = |type_url: &str, names: Vec<String>| DiscoveryRequest {
        node: Some(node(index)),
        type_url: type_url.into(),
        resource_names: names,
        ..Default::default()
    };
    vec![
        request(CLUSTER, Vec::new()),
        request(ENDPOINT, names),
        request(LISTENER, Vec::new()),
        request(ROUTE, vec!["fleet".into()]),
    ]
}

fn delta_subscriptions(index: usize, services: usize) -> Vec<DeltaDiscoveryRequest> {
    let names: Vec<String> = (0..services).map(|s| format!("svc-{s}")).collect();
    let request = |type_url: &str, names: Vec<String>| DeltaDiscoveryRequest {
        node: Some(node(index)),
        type_url: type_url.into(),
        resource_names_subscribe: names,
        ..Default::default()
    };
    vec![
        request(CLUSTER, vec!["*".into()]),
        request(ENDPOINT, names),
        request(LISTENER, vec!["*".into()]),
        request(ROUTE, vec!["fleet".into()]),
    ]
}

/// Opens `streams` streams, half state of the world and half delta, that subscribe and never
/// read until `stop`; returns what keeps them open.
async fn open_slow_streams(
    address: &str,
    streams: usize,
    services: usize,
    stop: &CancellationToken,
) -> Vec<Box<dyn std::any::Any>> {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for first in (0..streams).step_by(STREAMS_PER_CONNECTION) {
        let channel = stingy_channel(address).await;
        for index in first..(first + STREAMS_PER_CONNECTION).min(streams) {
            let mut client = AggregatedDiscoveryServiceClient::new(channel.clone());
            let id = 1_000_000 + index;
            if index % 2 == 0 {
                let requests = futures_util::stream::iter(sotw_subscriptions(id, services))
                    .chain(futures_util::stream::pending())
                    .take_until(stop.clone().cancelled_owned());
                let responses = client.stream_aggregated_resources(requests).await.unwrap();
                held.push(Box::new(responses));
            } else {
                let requests = futures_util::stream::iter(delta_subscriptions(id, services))
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

/// The fleet config with every service's capacityScaler at `scaler`: each edit moves every
/// ClusterLoadAssignment, so a server that queued what it owes a stream that does not read
/// would queue all of EDS again per edit (the scenario of tests/integration/slow_consumers.rs).
fn scaled_fleet(services: usize, scaler: &str) -> String {
    fleet_config(services, 10080, "1.0")
        .replace("capacityScaler: 1.0", &format!("capacityScaler: {scaler}"))
}

/// A client that reads: it watches svc-0's endpoints and ACKs each update.
struct ReadingClient {
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

impl ReadingClient {
    async fn open(address: &str) -> ReadingClient {
        let channel = connect(address).await.unwrap();
        let (requests, receiver) = mpsc::unbounded_channel();
        requests
            .send(DiscoveryRequest {
                node: Some(node(0)),
                type_url: ENDPOINT.into(),
                resource_names: vec!["svc-0".into()],
                ..Default::default()
            })
            .unwrap();
        let responses = AggregatedDiscoveryServiceClient::new(channel)
            .stream_aggregated_resources(UnboundedReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        ReadingClient {
            requests,
            responses,
        }
    }

    /// The next update (its resources' bytes), ACKed; None if none comes within a minute.
    async fn next_update(&mut self) -> Option<Vec<Vec<u8>>> {
        let response = tokio::time::timeout(Duration::from_secs(60), self.responses.message())
            .await
            .ok()?
            .ok()??;
        let _ = self.requests.send(DiscoveryRequest {
            type_url: ENDPOINT.into(),
            resource_names: vec!["svc-0".into()],
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        });
        Some(response.resources.into_iter().map(|r| r.value).collect())
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub async fn run(services: usize, streams: usize, edits: usize) {
    let server = ServerProcess::start(&scaled_fleet(services, "1.0")).await;
    let baseline = server.wait_rss_settles().await;
    let mut reader = ReadingClient::open(&server.xds).await;
    let mut seen = vec![reader.next_update().await.expect("the first endpoints")];
    let stop = CancellationToken::new();
    let slow = open_slow_streams(&server.xds, streams, services, &stop).await;
    while server.streams_connected().await < (streams + 1) as u64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut peak = server.rss_kib();
    for edit in 1..=edits {
        let scaler = format!("{:.2}", 0.05 + edit as f64 * 0.09);
        server.write_config(&scaled_fleet(services, &scaler));
        match reader.next_update().await {
            Some(update) if !seen.contains(&update) => seen.push(update),
            _ => {}
        }
        peak = peak.max(server.rss_kib());
    }
    println!(
        "slow: {streams} streams ({} state of the world, {} delta) subscribed to all of a {services}-service config and never reading, {edits} edits each moving every ClusterLoadAssignment: server RSS {:.1} MiB before, {:.1} MiB at the peak: {:.1} KiB per stream; the reading client got {} of {edits} updates",
        streams.div_ceil(2),
        streams / 2,
        mib(baseline),
        mib(peak),
        peak.saturating_sub(baseline) as f64 / streams as f64,
        seen.len() - 1,
    );
    stop.cancel();
    drop(slow);
    drop(reader);
    let after = server.wait_rss_settles().await;
    println!(
        "slow: server RSS {:.1} MiB once they closed ({:+.1}% against before; {:.1}% of what they took is kept)",
        mib(after),
        (after as f64 / baseline as f64 - 1.0) * 100.0,
        after.saturating_sub(baseline) as f64 / peak.saturating_sub(baseline).max(1) as f64 * 100.0
    );
}
