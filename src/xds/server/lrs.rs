//! The Load Reporting Service: clients whose clusters name this server in `lrs_server` (gRPC
//! does; Envoy only with bootstrap settings) stream per-locality request counts, kept in
//! [`LoadReports`] (bounded per stream) and shown by the admin endpoint. Reports are
//! accepted, never required: a client that stops reporting changes nothing that is served.
//! Must not: keep a stream's totals in a way it can grow (see [`super::load_reports`]).

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::load_stats::v3::{
    load_reporting_service_server::{LoadReportingService, LoadReportingServiceServer},
    LoadStatsRequest, LoadStatsResponse,
};
use envoy_types::pb::google::protobuf::Duration;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::cache::Cache;
use super::limits::{for_log, Refusal, Refusals};
pub use super::load_reports::{LoadFilter, LoadReports, LoadStream};
use crate::xds::types::TypeUrl;

/// How often clients are asked to report.
pub const REPORT_INTERVAL_SEC: i64 = 1;

#[derive(Clone)]
pub struct LrsService {
    reports: Arc<LoadReports>,
    cache: Cache,
    refusals: Arc<Refusals>,
    shutdown: CancellationToken,
}

impl LrsService {
    pub fn new(
        reports: Arc<LoadReports>,
        cache: Cache,
        refusals: Arc<Refusals>,
        shutdown: CancellationToken,
    ) -> Self {
        LrsService {
            reports,
            cache,
            refusals,
            shutdown,
        }
    }

    pub fn into_server(self) -> LoadReportingServiceServer<Self> {
        LoadReportingServiceServer::new(self)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<LoadStatsResponse, Status>> + Send>>;

/// Records reports of one stream: only clusters the current snapshot serves count.
struct Recorder {
    stream: LoadStream,
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
        // The first message names the client; the answer asks for every cluster's load.
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
            reports: self.reports.clone(),
            cache: self.cache.clone(),
            refusals: self.refusals.clone(),
            entries_seen: Default::default(),
        };
        recorder.record(&first);
        let ask = LoadStatsResponse {
            send_all_clusters: true,
            load_reporting_interval: Some(Duration {
                seconds: REPORT_INTERVAL_SEC,
                nanos: 0,
            }),
            ..Default::default()
        };
        let replies = futures_util::StreamExt::take_until(
            tokio_stream::once(Ok(ask)).chain(reports_of(inbound, recorder)),
            self.shutdown.clone().cancelled_owned(),
        );
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Reads the rest of the stream, recording each report; yields nothing (the one answer
/// stands), and ends when the client does (the stream's totals then age out).
fn reports_of(
    inbound: Streaming<LoadStatsRequest>,
    recorder: Recorder,
) -> impl Stream<Item = Result<LoadStatsResponse, Status>> {
    inbound.filter_map(move |message| {
        if let Ok(report) = message {
            recorder.record(&report);
        }
        None
    })
}
