//! The sidecar's LRS client, started when the bootstrap has
//! `cluster_manager.load_stats_config`: one `StreamLoadStats` stream at a time to that server,
//! saying what [`super::load_report`] says when it says it (first the node, then a report per
//! interval the server asked for). When the stream ends it reconnects with the xDS client's
//! jittered back-off (0.25 s doubling to 30 s, back to the start once a server answered).
//!
//! Must not: slow the data path. It reads the counters with atomic swaps, and takes the
//! store's lock, which only a config update shares, once per cluster and report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::load_report::LoadReporting;
use super::load_stats::LoadStore;
use crate::xds::client::ads::{connect, jittered, ServerAddress, StreamError};
use crate::xds::client::ads::{FIRST_BACKOFF, MAX_BACKOFF};

/// Reports not yet written to the stream at most; a server that stops reading makes the
/// next report wait here rather than pile up.
const QUEUED_REPORTS: usize = 4;

/// Reports the load in `store` to `server` until `shutdown`.
pub async fn run(
    server: ServerAddress,
    node: Node,
    store: Arc<LoadStore>,
    shutdown: CancellationToken,
) {
    let mut reporting = LoadReporting::new(node);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let streamed = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = stream_once(&server, &mut reporting, &store) => result,
        };
        match streamed {
            Ok(true) => backoff = FIRST_BACKOFF,
            Ok(false) => {}
            Err(error) => tracing::warn!(server = %server.uri, %error, "LRS stream ended"),
        }
        let wait = jittered(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One stream, until it ends. Ok(true) when the server answered at least once.
async fn stream_once(
    server: &ServerAddress,
    reporting: &mut LoadReporting,
    store: &LoadStore,
) -> Result<bool, StreamError> {
    let channel = connect(server).await?;
    let mut client = LoadReportingServiceClient::new(channel);
    let (sender, receiver) = mpsc::channel::<LoadStatsRequest>(QUEUED_REPORTS);
    let _ = sender.try_send(reporting.opening(store, Instant::now()));
    let mut inbound = client
        .stream_load_stats(ReceiverStream::new(receiver))
        .await?
        .into_inner();
    tracing::debug!(server = %server.uri, "LRS stream open");
    let mut answered = false;
    // The schedule of an earlier stream goes on until this server says otherwise.
    let mut ticks = reporting.interval().map(schedule);
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(response) = message? else {
                    return Ok(answered);
                };
                answered = true;
                let interval = reporting.on_response(&response);
                tracing::debug!(
                    clusters = response.clusters.len(),
                    all = response.send_all_clusters,
                    ?interval,
                    "the LRS server asked for load reports"
                );
                ticks = Some(schedule(interval));
            }
            _ = next_tick(&mut ticks) => {
                let report = reporting.report(store, Instant::now());
                if sender.send(report).await.is_err() {
                    return Ok(answered);
                }
            }
        }
    }
}

/// Ticks every `interval`, the first one interval from now.
fn schedule(interval: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// The next tick, or never while nothing was asked for.
async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}
