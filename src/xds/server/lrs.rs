//! The Load Reporting Service: clients whose clusters name this server in `lrs_server` (gRPC
//! does; Envoy only with bootstrap settings) stream per-locality request counts. The totals
//! are kept per client, cluster and locality and shown by the admin endpoint. Reports are
//! accepted, never required: a client that stops reporting changes nothing that is served.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::service::load_stats::v3::{
    load_reporting_service_server::{LoadReportingService, LoadReportingServiceServer},
    LoadStatsRequest, LoadStatsResponse,
};
use envoy_types::pb::google::protobuf::Duration;
use serde::Serialize;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// How often clients are asked to report.
pub const REPORT_INTERVAL_SEC: i64 = 1;

/// Totals reported for one locality of one cluster by one client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LocalityLoad {
    pub successful_requests: u64,
    pub error_requests: u64,
    pub issued_requests: u64,
    /// The latest report's count of requests still in flight.
    pub in_progress: u64,
}

/// Key: client node id, cluster name, `region/zone/sub_zone`.
type LoadKey = (String, String, String);

#[derive(Default)]
pub struct LoadReports {
    totals: Mutex<BTreeMap<LoadKey, LocalityLoad>>,
}

#[derive(Serialize)]
pub struct LoadRow {
    pub node_id: String,
    pub cluster: String,
    pub locality: String,
    #[serde(flatten)]
    pub load: LocalityLoad,
}

impl LoadReports {
    /// Adds one report from `node_id`.
    pub fn record(&self, node_id: &str, request: &LoadStatsRequest) {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        for cluster in &request.cluster_stats {
            for stats in &cluster.upstream_locality_stats {
                let locality = stats
                    .locality
                    .as_ref()
                    .map(|l| format!("{}/{}/{}", l.region, l.zone, l.sub_zone))
                    .unwrap_or_default();
                let key = (node_id.to_string(), cluster.cluster_name.clone(), locality);
                let entry = totals.entry(key).or_default();
                entry.successful_requests += stats.total_successful_requests;
                entry.error_requests += stats.total_error_requests;
                entry.issued_requests += stats.total_issued_requests;
                entry.in_progress = stats.total_requests_in_progress;
            }
        }
    }

    /// Every total, sorted by client, cluster and locality.
    pub fn rows(&self) -> Vec<LoadRow> {
        let totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals
            .iter()
            .map(|((node_id, cluster, locality), load)| LoadRow {
                node_id: node_id.clone(),
                cluster: cluster.clone(),
                locality: locality.clone(),
                load: load.clone(),
            })
            .collect()
    }
}

#[derive(Clone)]
pub struct LrsService {
    reports: Arc<LoadReports>,
    shutdown: CancellationToken,
}

impl LrsService {
    pub fn new(reports: Arc<LoadReports>, shutdown: CancellationToken) -> Self {
        LrsService { reports, shutdown }
    }

    pub fn into_server(self) -> LoadReportingServiceServer<Self> {
        LoadReportingServiceServer::new(self)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<LoadStatsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LoadReportingService for LrsService {
    type StreamLoadStatsStream = ResponseStream;

    async fn stream_load_stats(
        &self,
        request: Request<Streaming<LoadStatsRequest>>,
    ) -> Result<Response<Self::StreamLoadStatsStream>, Status> {
        let mut inbound = request.into_inner();
        let reports = self.reports.clone();
        // The first message names the client; the answer asks for every cluster's load.
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("the LRS stream closed before its first report")
        })?;
        let node_id = first
            .node
            .as_ref()
            .map(|n| n.id.clone())
            .unwrap_or_default();
        reports.record(&node_id, &first);
        tracing::info!(node = %node_id, "load reporting started");
        let ask = LoadStatsResponse {
            send_all_clusters: true,
            load_reporting_interval: Some(Duration {
                seconds: REPORT_INTERVAL_SEC,
                nanos: 0,
            }),
            ..Default::default()
        };
        let replies = futures_util::StreamExt::take_until(
            tokio_stream::once(Ok(ask)).chain(async_stream_of_reports(inbound, reports, node_id)),
            self.shutdown.clone().cancelled_owned(),
        );
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Reads the rest of the stream, recording each report; yields nothing (the one answer
/// stands), and ends when the client does.
fn async_stream_of_reports(
    inbound: Streaming<LoadStatsRequest>,
    reports: Arc<LoadReports>,
    node_id: String,
) -> impl Stream<Item = Result<LoadStatsResponse, Status>> {
    inbound.filter_map(move |message| {
        if let Ok(report) = message {
            reports.record(&node_id, &report);
        }
        None
    })
}
