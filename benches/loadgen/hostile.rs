//! The hostile-client probes of the hardened-port issue, replayed against `switchyard serve`
//! so any build can be compared with another (`SWITCHYARD_SERVE_BIN`): many streams on few
//! connections, made-up type URLs, an oversized request, a huge node id, and load reports for
//! invented clusters. Each probe reports what the server answered and what it cost it.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamLocalityStats};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use crate::client::{connect, node};
use crate::server::ServerProcess;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// An ADS stream that sends `first`; what the server answered first.
async fn first_answer(channel: Channel, first: DiscoveryRequest) -> Result<usize, tonic::Status> {
    let (sender, receiver) = mpsc::unbounded_channel();
    sender.send(first).unwrap();
    let mut inbound = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .stream_aggregated_resources(UnboundedReceiverStream::new(receiver))
        .await?
        .into_inner();
    let answer = inbound.message().await?;
    // Keep the stream open for the rest of the probe.
    tokio::spawn(async move {
        let _sender = sender;
        while let Ok(Some(_)) = inbound.message().await {}
    });
    Ok(answer.map_or(0, |a| a.resources.len()))
}

fn clusters_request(node: Node) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(node),
        type_url: CLUSTER.into(),
        ..Default::default()
    }
}

pub async fn run(config: &str) {
    let server = ServerProcess::start_logging(config, "switchyard=info").await;
    println!(
        "server RSS {:.1} MiB at start",
        mib(server.wait_rss_settles().await)
    );
    streams_on_few_connections(&server).await;
    made_up_type_urls(&server).await;
    oversized_request(&server).await;
    huge_node_id(&server).await;
    invented_load_reports(&server).await;
}

/// 10,000 streams on each of 6 connections.
async fn streams_on_few_connections(server: &ServerProcess) {
    const CONNECTIONS: usize = 6;
    const STREAMS: usize = 10_000;
    let before = server.rss_kib();
    let mut attempts = Vec::new();
    for connection in 0..CONNECTIONS {
        let channel = connect(&server.xds).await.unwrap();
        for stream in 0..STREAMS {
            let channel = channel.clone();
            let request = clusters_request(node(connection * STREAMS + stream));
            attempts.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), first_answer(channel, request)).await
            }));
        }
    }
    let (mut served, mut refused, mut held) = (0, 0, 0);
    let mut statuses = std::collections::BTreeSet::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(Ok(_)) => served += 1,
            Ok(Err(status)) => {
                refused += 1;
                statuses.insert(format!("{:?}", status.code()));
            }
            Err(_) => held += 1,
        }
    }
    println!(
        "streams: {} attempted on {CONNECTIONS} connections: {served} served, {refused} refused ({}), {held} held back by the client under the advertised SETTINGS limit; server RSS {:.1} → {:.1} MiB",
        CONNECTIONS * STREAMS,
        statuses.into_iter().collect::<Vec<_>>().join(", "),
        mib(before),
        mib(server.rss_kib())
    );
}

/// One stream asking for 30,000 type URLs the server does not serve.
async fn made_up_type_urls(server: &ServerProcess) {
    const TYPES: usize = 30_000;
    let (before_cpu, before_rss) = (server.cpu_seconds(), server.rss_kib());
    let channel = connect(&server.xds).await.unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    for index in 0..TYPES {
        sender
            .send(DiscoveryRequest {
                node: (index == 0).then(|| node(900_000)),
                type_url: format!("type.googleapis.com/made.up.Type{index}"),
                ..Default::default()
            })
            .unwrap();
    }
    let mut inbound = AggregatedDiscoveryServiceClient::new(channel)
        .stream_aggregated_resources(UnboundedReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    let mut answers = 0;
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_secs(3), inbound.message()).await
    {
        answers += 1;
    }
    drop(sender);
    println!(
        "type URLs: {TYPES} made-up ones on one stream: {answers} answered; server CPU {:.2} s, RSS {:.1} → {:.1} MiB",
        server.cpu_seconds() - before_cpu,
        mib(before_rss),
        mib(server.rss_kib())
    );
}

/// A 5 MB request.
async fn oversized_request(server: &ServerProcess) {
    let channel = connect(&server.xds).await.unwrap();
    let mut request = clusters_request(node(900_001));
    request.error_detail = Some(Status {
        code: 3,
        message: "x".repeat(5 << 20),
        ..Default::default()
    });
    let answer = first_answer(channel, request).await;
    println!(
        "a 5 MB request: {}",
        match answer {
            Ok(_) => "answered".to_string(),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        }
    );
}

/// A 1 MB node id, then 49 small requests, each on its own stream: what it writes to the log.
async fn huge_node_id(server: &ServerProcess) {
    let before = server.log_bytes();
    let channel = connect(&server.xds).await.unwrap();
    let mut huge = node(900_002);
    huge.id = "n".repeat(1 << 20);
    let first = first_answer(channel.clone(), clusters_request(huge.clone())).await;
    for _ in 0..49 {
        let _ = first_answer(channel.clone(), clusters_request(huge.clone())).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "a 1 MB node id and 49 more requests: {}; {} bytes of log",
        match first {
            Ok(_) => "answered".to_string(),
            Err(status) => format!("{:?}", status.code()),
        },
        server.log_bytes() - before
    );
}

/// 40 load reports of 50,000 invented clusters each, then `/load_reports`.
async fn invented_load_reports(server: &ServerProcess) {
    const REPORTS: usize = 40;
    const CLUSTERS: usize = 50_000;
    let before = server.rss_kib();
    let channel = connect(&server.xds).await.unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    for report in 0..REPORTS {
        let cluster_stats = (0..CLUSTERS)
            .map(|index| ClusterStats {
                cluster_name: format!("invented-{report}-{index}"),
                upstream_locality_stats: vec![UpstreamLocalityStats {
                    total_successful_requests: 1,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        sender
            .send(LoadStatsRequest {
                node: (report == 0).then(|| node(900_003)),
                cluster_stats,
            })
            .unwrap();
    }
    let mut inbound = LoadReportingServiceClient::new(channel)
        .stream_load_stats(UnboundedReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    let _ = tokio::time::timeout(Duration::from_secs(2), inbound.message()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = server.rss_kib();
    drop(sender);
    drop(inbound);
    let after = server.wait_rss_settles().await;
    let (bytes, took) = server.admin_body("/load_reports").await;
    println!(
        "load reports: {REPORTS} × {CLUSTERS} invented clusters: server RSS {:.1} → {:.1} MiB while reporting, {:.1} MiB after the stream closed; /load_reports answered {bytes} bytes in {} ms",
        mib(before),
        mib(during),
        mib(after),
        took.as_millis()
    );
}
