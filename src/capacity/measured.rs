//! What clients measured: load reports (neutral, already read out of LRS by the caller)
//! summed over every client, stream — and later every replica — in a sliding window. The
//! decisions read it only through [`MeasuredLoad`], so another store (a shared one, for
//! replicas) can stand in. Must not: grow with what clients send (bounded per service and
//! locality), or know xDS.

use std::time::Duration;

/// A locality: region and zone, as a node or an endpoint group names them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    pub region: String,
    pub zone: String,
}

/// Counts one client reported for one upstream locality of one service over `interval`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportedCounts {
    pub issued_requests: u64,
    pub successful_requests: u64,
    pub error_requests: u64,
    /// Requests in flight when the report was made.
    pub in_progress: u64,
    /// Utilization the backends reported (ORCA named metric `utilization`, or CPU), 0–1;
    /// `None` when none was carried.
    pub utilization: Option<f64>,
}

/// One load report, as the caller read it out of the wire format.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The reporting client's locality (its node's).
    pub client: Locality,
    /// The service (cluster) reported on, by the model's name.
    pub service: String,
    /// Counts per upstream locality.
    pub upstream: Vec<(Locality, ReportedCounts)>,
    /// The time the report covers.
    pub interval: Duration,
}

/// Load over the window, per second (in-progress: the average of the reports' counts).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    pub requests_per_second: f64,
    pub in_progress: f64,
    pub utilization: Option<f64>,
}

/// What decisions read of the measured load.
pub trait MeasuredLoad: Send + Sync {
    /// The load clients in `client_region` sent to `service`, over all upstream localities.
    fn demand(&self, service: &str, client_region: &str) -> Load;
    /// The client regions that sent `service` load within the window, sorted.
    fn client_regions(&self, service: &str) -> Vec<String>;
    /// The load that reached `service`'s endpoints in `upstream`, from every client.
    fn arriving(&self, service: &str, upstream: &Locality) -> Load;
}
