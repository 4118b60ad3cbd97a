//! Capacity from load reports at scale: `services` services whose backends sit in two
//! regions with a RATE target, `clients` LRS streams (in the near region) reporting synthetic
//! load for `per_client` services each, every interval the server asks for. Reported: the
//! server's CPU per report interval and its RSS while they report, and the time from a load
//! step (svc-0's reporters pass its near region's capacity) to the new shares at a client
//! (an EDS update for svc-0 that puts the far region in priority 0).
//!
//!     cargo bench --bench loadgen -- capacity --services 1000 --clients 2000 --per-client 10

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, ClusterStats, UpstreamLocalityStats,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use futures_util::StreamExt;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::client::{connect, node, ENDPOINT};
use crate::server::ServerProcess;

const NEAR: (&str, &str) = ("us-central1", "us-central1-a");
const FAR: (&str, &str) = ("us-east1", "us-east1-b");
/// Requests per second one reporter sends each of its services before and after the step.
/// With 5 endpoints × 10/s a region holds 50/s; svc-0's reporters go from below to twice that.
const CALM_RATE: f64 = 0.5;
const TARGET_PER_ENDPOINT: u32 = 10;

/// Services in two regions, five endpoints each, RATE with a target per endpoint.
fn config(services: usize) -> String {
    let mut text = String::from("networkEndpointGroups:\n");
    for service in 0..services {
        for (index, (_, zone)) in [NEAR, FAR].iter().enumerate() {
            writeln!(
                text,
                "- name: neg-{service}-{index}\n  zone: {zone}\n  defaultPort: 8080\n  endpoints:"
            )
            .unwrap();
            for endpoint in 0..5 {
                writeln!(
                    text,
                    "  - {{ipAddress: 10.{}.{}.{}}}",
                    service / 250,
                    service % 250,
                    index * 10 + endpoint
                )
                .unwrap();
            }
        }
    }
    text.push_str("backendServices:\n");
    for service in 0..services {
        writeln!(
            text,
            "- name: svc-{service}\n  backends:\n  - {{group: zones/{}/networkEndpointGroups/neg-{service}-0, balancingMode: RATE, maxRatePerEndpoint: {TARGET_PER_ENDPOINT}}}\n  - {{group: zones/{}/networkEndpointGroups/neg-{service}-1, balancingMode: RATE, maxRatePerEndpoint: {TARGET_PER_ENDPOINT}}}",
            NEAR.1, FAR.1
        )
        .unwrap();
    }
    text
}

fn locality((region, zone): (&str, &str)) -> Locality {
    Locality {
        region: region.into(),
        zone: zone.into(),
        ..Default::default()
    }
}

/// One reporter: an LRS stream from a client in the near region, reporting its services'
/// load at `rate` (svc-0's at `step_rate` once the step is on) every interval asked for.
async fn reporter(
    address: String,
    id: usize,
    services: Vec<usize>,
    step: Arc<AtomicU64>,
    reports: Arc<AtomicU64>,
) {
    let channel = loop {
        match connect(&address).await {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut client = LoadReportingServiceClient::new(channel);
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut me = node(id);
    me.locality = Some(locality(NEAR));
    sender
        .send(LoadStatsRequest {
            node: Some(me.clone()),
            cluster_stats: Vec::new(),
        })
        .unwrap();
    let Ok(response) = client
        .stream_load_stats(UnboundedReceiverStream::new(receiver))
        .await
    else {
        return;
    };
    let mut answers = response.into_inner();
    let Some(Ok(first)) = answers.next().await else {
        return;
    };
    let interval = first
        .load_reporting_interval
        .map(|d| Duration::new(d.seconds as u64, d.nanos as u32))
        .unwrap_or(Duration::from_secs(2));
    let asked: std::collections::BTreeSet<String> = first.clusters.into_iter().collect();
    // Spread the reporters over the interval, as independent clients are.
    tokio::time::sleep(interval.mul_f64((id % 100) as f64 / 100.0)).await;
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let step_rate = f64::from_bits(step.load(Ordering::Relaxed));
        let cluster_stats = services
            .iter()
            .map(|service| format!("svc-{service}"))
            .filter(|name| asked.contains(name))
            .map(|name| {
                let rate = if name == "svc-0" {
                    step_rate
                } else {
                    CALM_RATE
                };
                let issued = (rate * interval.as_secs_f64()).round() as u64;
                ClusterStats {
                    cluster_name: name,
                    upstream_locality_stats: vec![UpstreamLocalityStats {
                        locality: Some(locality(NEAR)),
                        total_successful_requests: issued,
                        total_issued_requests: issued,
                        ..Default::default()
                    }],
                    load_report_interval: Some(envoy_types::pb::google::protobuf::Duration {
                        seconds: interval.as_secs() as i64,
                        nanos: interval.subsec_nanos() as i32,
                    }),
                    ..Default::default()
                }
            })
            .collect();
        let request = LoadStatsRequest {
            node: Some(me.clone()),
            cluster_stats,
        };
        if sender.send(request).is_err() {
            return;
        }
        reports.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether svc-0's assignment, as the near region sees it, puts the far region in priority 0.
fn far_region_shares(assignment: &ClusterLoadAssignment) -> bool {
    assignment.endpoints.iter().any(|group| {
        group.priority == 0 && group.locality.as_ref().is_some_and(|l| l.region == FAR.0)
    })
}

/// Waits for an EDS update of svc-0 to a client in the near region that spills to the far one.
async fn watch_spill(address: String, spilled: tokio::sync::oneshot::Sender<Instant>) {
    let channel = connect(&address).await.unwrap();
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut me = node(999_999);
    me.locality = Some(locality(NEAR));
    sender
        .send(DiscoveryRequest {
            node: Some(me),
            type_url: ENDPOINT.into(),
            resource_names: vec!["svc-0".into()],
            ..Default::default()
        })
        .unwrap();
    let mut responses = client
        .stream_aggregated_resources(UnboundedReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    let mut spilled = Some(spilled);
    while let Some(Ok(response)) = responses.next().await {
        let spills = response.resources.iter().any(|resource| {
            ClusterLoadAssignment::decode(resource.value.as_slice())
                .is_ok_and(|assignment| far_region_shares(&assignment))
        });
        sender
            .send(DiscoveryRequest {
                type_url: ENDPOINT.into(),
                resource_names: vec!["svc-0".into()],
                version_info: response.version_info.clone(),
                response_nonce: response.nonce.clone(),
                ..Default::default()
            })
            .unwrap();
        if spills {
            if let Some(spilled) = spilled.take() {
                let _ = spilled.send(Instant::now());
            }
        }
    }
}

pub async fn run(services: usize, clients: usize, per_client: usize) {
    let server = ServerProcess::start(&config(services)).await;
    let idle_rss = server.wait_rss_settles().await;
    println!(
        "capacity: {services} services in two regions, {clients} reporting clients, {per_client} services each"
    );
    // svc-0's reporters: every client whose services include it.
    let reporters_of_zero = (0..clients)
        .filter(|id| (0..per_client).any(|k| (id * per_client + k).is_multiple_of(services)))
        .count();
    let step = Arc::new(AtomicU64::new(CALM_RATE.to_bits()));
    let reports = Arc::new(AtomicU64::new(0));
    for id in 0..clients {
        let mine: Vec<usize> = (0..per_client)
            .map(|k| (id * per_client + k) % services)
            .collect();
        tokio::spawn(reporter(
            server.xds.clone(),
            id,
            mine,
            step.clone(),
            reports.clone(),
        ));
    }
    let (spilled_sender, spilled) = tokio::sync::oneshot::channel();
    tokio::spawn(watch_spill(server.xds.clone(), spilled_sender));
    // Let every stream connect and report a few times, then measure a steady stretch.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (cpu_before, reports_before, started) = (
        server.cpu_seconds(),
        reports.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (cpu, sent, took) = (
        server.cpu_seconds() - cpu_before,
        reports.load(Ordering::Relaxed) - reports_before,
        started.elapsed(),
    );
    let interval = 2.0;
    println!(
        "  steady: {sent} reports in {:.1}s ({:.0}/s); server CPU {:.3}s per 2s report interval ({:.1}% of a core); RSS idle {} KiB, reporting {} KiB",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64(),
        cpu / took.as_secs_f64() * interval,
        cpu / took.as_secs_f64() * 100.0,
        idle_rss,
        server.rss_kib()
    );
    // The step: svc-0's near demand goes to twice the near region's capacity.
    let capacity = 5.0 * f64::from(TARGET_PER_ENDPOINT);
    let step_rate = 2.0 * capacity / reporters_of_zero.max(1) as f64;
    let stepped = Instant::now();
    step.store(step_rate.to_bits(), Ordering::Relaxed);
    match tokio::time::timeout(Duration::from_secs(60), spilled).await {
        Ok(Ok(seen)) => println!(
            "  step: svc-0's {reporters_of_zero} reporters from {:.0}/s to {:.0}/s in all (near capacity {capacity:.0}/s): the far region reached the client's priority 0 after {:.1}s",
            CALM_RATE * reporters_of_zero as f64,
            step_rate * reporters_of_zero as f64,
            seen.duration_since(stepped).as_secs_f64()
        ),
        _ => println!("  step: no spill seen within 60s: {}", server.log()),
    }
}
