//! The Load Reporting Service: clients whose clusters name this server in `lrs_server` (gRPC
//! does; Envoy with `load_stats_config` in its bootstrap) stream per-locality request counts,
//! kept in [`LoadReports`] (bounded per stream) and shown by the admin endpoint, and handed to
//! a [`LoadSink`] (capacity's feed) with the node that opened the stream. Each stream is told
//! which clusters to report and how often ([`ReportAsk`]), and told again when that changes.
//! Reports are accepted, never required: a client that stops reporting changes nothing that
//! is served. Must not: keep a stream's totals in a way it can grow (see
//! [`super::load_reports`]), or know what the reports are used for.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::load_stats::v3::{
    load_reporting_service_server::{LoadReportingService, LoadReportingServiceServer},
    LoadStatsRequest, LoadStatsResponse,
};
use envoy_types::pb::google::protobuf::Duration;
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::cache::Cache;
use super::limits::{for_log, Refusal, Refusals};
pub use super::load_reports::{LoadFilter, LoadReports, LoadStream};
use crate::xds::types::TypeUrl;

/// What clients are asked to report: these clusters (none: nothing at all), this often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportAsk {
    pub clusters: Vec<String>,
    pub interval: std::time::Duration,
}

impl ReportAsk {
    /// The answer for `node`: the clusters to report, or every cluster for a client that would
    /// otherwise miss one (Switchyard keeps only what it asked for either way).
    fn response_for(&self, node: &Node) -> LoadStatsResponse {
        LoadStatsResponse {
            clusters: self.clusters.clone(),
            send_all_clusters: !self.clusters.is_empty() && skips_the_first_named_cluster(node),
            load_reporting_interval: Some(Duration {
                seconds: self.interval.as_secs() as i64,
                nanos: self.interval.subsec_nanos() as i32,
            }),
            ..Default::default()
        }
    }
}

/// grpc-js-xds (1.14) reports a named cluster only when it is not the first of the list (it
/// tests `indexOf(name) > 0`), so asked for one cluster it reports nothing; it honours
/// `send_all_clusters`, which it advertises.
fn skips_the_first_named_cluster(node: &Node) -> bool {
    node.user_agent_name == "gRPC Node Pure JS"
}

/// Takes every report as it arrives, with the node that opened its stream (a client names
/// itself in its first message only). Called from the stream's task: keep it short.
pub trait LoadSink: Send + Sync {
    fn take(&self, node: &Node, report: &LoadStatsRequest, received: Instant);
}

#[derive(Clone)]
pub struct LrsService {
    reports: Arc<LoadReports>,
    cache: Cache,
    refusals: Arc<Refusals>,
    asks: watch::Receiver<ReportAsk>,
    sink: Option<Arc<dyn LoadSink>>,
    shutdown: CancellationToken,
}

impl LrsService {
    /// Streams are asked what `asks` holds, again each time it changes.
    pub fn new(
        reports: Arc<LoadReports>,
        cache: Cache,
        refusals: Arc<Refusals>,
        asks: watch::Receiver<ReportAsk>,
        shutdown: CancellationToken,
    ) -> Self {
        LrsService {
            reports,
            cache,
            refusals,
            asks,
            sink: None,
            shutdown,
        }
    }

    /// Hands every report to `sink` as well.
    pub fn with_sink(mut self, sink: Arc<dyn LoadSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn into_server(self) -> LoadReportingServiceServer<Self> {
        LoadReportingServiceServer::new(self)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<LoadStatsResponse, Status>> + Send>>;

/// Records reports of one stream: only clusters the current snapshot serves count.
struct Recorder {
    stream: LoadStream,
    /// The node of the stream's first message.
    node: Node,
    sink: Option<Arc<dyn LoadSink>>,
    reports: Arc<LoadReports>,
    cache: Cache,
    refusals: Arc<Refusals>,
    /// Cluster entries the stream's reports carried, counted or not.
    entries_seen: std::sync::atomic::AtomicUsize,
}

/// Cluster entries a stream must have sent for its end to be worth giving memory back: each
/// report is decoded whole, and big ones leave the allocator holding what they used.
const ENTRIES_WORTH_A_TRIM: usize = 100_000;

impl Drop for Recorder {
    fn drop(&mut self) {
        let seen = *self.entries_seen.get_mut();
        if seen >= ENTRIES_WORTH_A_TRIM {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn_blocking(crate::memory::trim);
            }
        }
    }
}

impl Recorder {
    fn record(&self, report: &LoadStatsRequest) {
        self.entries_seen.fetch_add(
            report.cluster_stats.len(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let snapshot = self.cache.current();
        let served = |cluster: &str| {
            snapshot
                .views_of(TypeUrl::Cluster)
                .any(|(_, view)| view.resources.contains_key(cluster))
        };
        let dropped = self.reports.record(&self.stream, report, served);
        self.refusals
            .count_many(Refusal::LoadReportEntries, dropped);
        if let Some(sink) = &self.sink {
            sink.take(&self.node, report, Instant::now());
        }
    }
}

#[tonic::async_trait]
impl LoadReportingService for LrsService {
    type StreamLoadStatsStream = ResponseStream;

    async fn stream_load_stats(
        &self,
        request: Request<Streaming<LoadStatsRequest>>,
    ) -> Result<Response<Self::StreamLoadStatsStream>, Status> {
        let mut inbound = request.into_inner();
        // The first message names the client; the answer says what to report.
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("the LRS stream closed before its first report")
        })?;
        let node_id = first
            .node
            .as_ref()
            .map(|n| n.id.as_str())
            .unwrap_or_default();
        tracing::debug!(node = %for_log(node_id), "load reporting started");
        let recorder = Recorder {
            stream: self.reports.open(node_id),
            node: first.node.clone().unwrap_or_default(),
            sink: self.sink.clone(),
            reports: self.reports.clone(),
            cache: self.cache.clone(),
            refusals: self.refusals.clone(),
            entries_seen: Default::default(),
        };
        recorder.record(&first);
        let mut asks = self.asks.clone();
        let ask = asks.borrow_and_update().response_for(&recorder.node);
        let replies = futures_util::StreamExt::take_until(
            tokio_stream::once(Ok(ask)).chain(reports_of(inbound, recorder, Some(asks))),
            self.shutdown.clone().cancelled_owned(),
        );
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Reads the rest of the stream, recording each report, and answers again whenever what is
/// asked changes; ends when the client does (the stream's totals then age out).
fn reports_of(
    inbound: Streaming<LoadStatsRequest>,
    recorder: Recorder,
    asks: Option<watch::Receiver<ReportAsk>>,
) -> impl Stream<Item = Result<LoadStatsResponse, Status>> {
    futures_util::stream::unfold(
        (inbound, recorder, asks),
        |(mut inbound, recorder, mut asks)| async move {
            loop {
                let changed = async {
                    match asks.as_mut() {
                        Some(asks) => asks.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                };
                // `message` is cancel-safe: a report half read when the ask changes is kept.
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(report)) => recorder.record(&report),
                        _ => return None,
                    },
                    changed = changed => {
                        let Some(current) = asks.as_mut().filter(|_| changed) else {
                            // Nothing asks any more: the last answer stands.
                            asks = None;
                            continue;
                        };
                        let reply = current.borrow_and_update().response_for(&recorder.node);
                        return Some((Ok(reply), (inbound, recorder, asks)));
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_client_that_skips_the_first_named_cluster_is_asked_for_all() {
        let ask = ReportAsk {
            clusters: vec!["who".into()],
            interval: std::time::Duration::from_secs(2),
        };
        let node = |agent: &str| Node {
            user_agent_name: agent.into(),
            ..Default::default()
        };
        let envoy = ask.response_for(&node("envoy"));
        assert_eq!(
            (envoy.clusters.as_slice(), envoy.send_all_clusters),
            (&["who".to_string()][..], false)
        );
        assert!(
            ask.response_for(&node("gRPC Node Pure JS"))
                .send_all_clusters
        );
        let nothing = ReportAsk {
            clusters: Vec::new(),
            ..ask
        };
        assert!(
            !nothing
                .response_for(&node("gRPC Node Pure JS"))
                .send_all_clusters
        );
    }
}
