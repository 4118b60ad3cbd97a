//! What one xDS client may cost the server, and the count of what was refused. Every limit has
//! a default and a flag; a refusal is counted by reason (exported as a metric), answered with
//! the status a client can act on (RESOURCE_EXHAUSTED with what the limit is), and summed up
//! in one log line per interval rather than one line per refusal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The limits of the xDS port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdsLimits {
    /// Streams one HTTP/2 connection may have open.
    pub max_streams_per_connection: u32,
    /// Connections one peer address may have open.
    pub max_connections_per_peer: usize,
    /// Connections open in all.
    pub max_connections: usize,
    /// The largest request accepted, encoded.
    pub max_request_bytes: usize,
    /// Resource names one request may carry (subscribed, unsubscribed and versions listed).
    pub max_resource_names: usize,
    /// The largest node accepted, encoded (id, metadata, extensions…).
    pub max_node_bytes: usize,
    /// The longest node id (and cluster) accepted.
    pub max_node_id_bytes: usize,
    /// A connection from which nothing has been read for this long is closed.
    pub idle_timeout: Duration,
    /// How often the server pings each connection, and how long it waits for the answer.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for XdsLimits {
    fn default() -> Self {
        XdsLimits {
            max_streams_per_connection: 100,
            max_connections_per_peer: 10_000,
            max_connections: 50_000,
            max_request_bytes: 4 * 1024 * 1024,
            max_resource_names: 100_000,
            max_node_bytes: 128 * 1024,
            max_node_id_bytes: 1024,
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// Limits that cannot work together, in the words of the flags that set them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("--max-streams-per-connection and --max-connections-per-peer must be at least 1")]
    ZeroStreamsOrPeers,
    /// Healthy idle clients would be closed: the idle timeout does not outlast a ping.
    #[error(
        "--idle-timeout ({}s) must be longer than --keepalive-interval ({}s) plus the {}s a \
         ping may take to be answered, or healthy idle clients would be closed",
        .idle_timeout.as_secs(), .keepalive_interval.as_secs(), .keepalive_timeout.as_secs()
    )]
    IdleBeforePing {
        idle_timeout: Duration,
        keepalive_interval: Duration,
        keepalive_timeout: Duration,
    },
}

impl XdsLimits {
    /// Says what is wrong with limits that cannot work together.
    pub fn check(&self) -> Result<(), LimitsError> {
        if self.max_streams_per_connection == 0 || self.max_connections_per_peer == 0 {
            return Err(LimitsError::ZeroStreamsOrPeers);
        }
        if self.idle_timeout <= self.keepalive_interval + self.keepalive_timeout {
            return Err(LimitsError::IdleBeforePing {
                idle_timeout: self.idle_timeout,
                keepalive_interval: self.keepalive_interval,
                keepalive_timeout: self.keepalive_timeout,
            });
        }
        Ok(())
    }
}

/// Why something was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    ConnectionsPerPeer,
    Connections,
    StreamsPerConnection,
    RequestTooLarge,
    TooManyNames,
    NodeTooLarge,
    /// Requests for a type the server does not serve, beyond the few each stream remembers.
    UnknownTypes,
    /// Connections closed after the idle timeout.
    IdleConnections,
    /// Failures to accept a connection (such as running out of file descriptors).
    AcceptErrors,
    /// Load report entries dropped: an unserved cluster, or over a stream's bound.
    LoadReportEntries,
    /// TLS handshakes that failed (no client certificate, an untrusted one, a timeout).
    TlsHandshakes,
    /// Streams whose client claimed a node id its identity may not use.
    NodeNotAllowed,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Refusal::ConnectionsPerPeer,
        Refusal::Connections,
        Refusal::StreamsPerConnection,
        Refusal::RequestTooLarge,
        Refusal::TooManyNames,
        Refusal::NodeTooLarge,
        Refusal::UnknownTypes,
        Refusal::IdleConnections,
        Refusal::AcceptErrors,
        Refusal::LoadReportEntries,
        Refusal::TlsHandshakes,
        Refusal::NodeNotAllowed,
    ];

    /// The metric label and log word.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::ConnectionsPerPeer => "connections_per_peer",
            Refusal::Connections => "connections",
            Refusal::StreamsPerConnection => "streams_per_connection",
            Refusal::RequestTooLarge => "request_too_large",
            Refusal::TooManyNames => "too_many_names",
            Refusal::NodeTooLarge => "node_too_large",
            Refusal::UnknownTypes => "unknown_types",
            Refusal::IdleConnections => "idle_connections",
            Refusal::AcceptErrors => "accept_errors",
            Refusal::LoadReportEntries => "load_report_entries",
            Refusal::TlsHandshakes => "tls_handshakes",
            Refusal::NodeNotAllowed => "node_not_allowed",
        }
    }
}

/// The label of the refusals metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    pub reason: &'static str,
}

/// Counts of refusals: since start (the metric `switchyard_xds_refused_total{reason}`) and
/// since the last summary (for the log), and how many NACK warnings were left out of the log.
#[derive(Default)]
pub struct Refusals {
    /// Registered with the metrics.
    pub family: Family<RefusalLabel, Counter>,
    since_summary: [AtomicU64; Refusal::ALL.len()],
    nack_logs: Mutex<NackLogBudget>,
    nack_logs_dropped: AtomicU64,
}

/// Allows a few NACK warnings per window; the rest are only counted.
#[derive(Default)]
struct NackLogBudget {
    window_start: Option<Instant>,
    logged: u32,
}

/// NACK warnings logged per [`NACK_LOG_WINDOW`]; beyond it they are counted and summed up.
const NACK_LOGS_PER_WINDOW: u32 = 20;
const NACK_LOG_WINDOW: Duration = Duration::from_secs(60);

impl Refusals {
    pub fn count(&self, refusal: Refusal) {
        self.count_many(refusal, 1);
    }

    pub fn count_many(&self, refusal: Refusal, count: u64) {
        if count == 0 {
            return;
        }
        self.family
            .get_or_create(&RefusalLabel {
                reason: refusal.name(),
            })
            .inc_by(count);
        self.since_summary[refusal as usize].fetch_add(count, Ordering::Relaxed);
    }

    pub fn total(&self, refusal: Refusal) -> u64 {
        self.family
            .get_or_create(&RefusalLabel {
                reason: refusal.name(),
            })
            .get()
    }

    /// Whether a NACK warning may be logged now (else it is counted for the summary).
    pub fn may_log_nack(&self) -> bool {
        let mut budget = self.nack_logs.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if budget
            .window_start
            .is_none_or(|start| now.duration_since(start) >= NACK_LOG_WINDOW)
        {
            *budget = NackLogBudget {
                window_start: Some(now),
                logged: 0,
            };
        }
        if budget.logged < NACK_LOGS_PER_WINDOW {
            budget.logged += 1;
            true
        } else {
            self.nack_logs_dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// One line saying what was refused since the last summary (None when nothing was).
    pub fn summary(&self) -> Option<String> {
        let mut parts: Vec<String> = Refusal::ALL
            .iter()
            .filter_map(|refusal| {
                let count = self.since_summary[*refusal as usize].swap(0, Ordering::Relaxed);
                (count > 0).then(|| format!("{count} {}", refusal.name()))
            })
            .collect();
        let dropped = self.nack_logs_dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            parts.push(format!("{dropped} NACK warnings not logged"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Cuts a client-supplied string to a length fit for a log line.
pub fn for_log(text: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 200;
    if text.len() <= SHOWN {
        return text.into();
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_and_summed_up_once() {
        let refusals = Refusals::default();
        refusals.count(Refusal::RequestTooLarge);
        refusals.count(Refusal::RequestTooLarge);
        refusals.count(Refusal::Connections);
        assert_eq!(
            refusals.summary().as_deref(),
            Some("1 connections, 2 request_too_large")
        );
        assert_eq!(refusals.summary(), None, "counted once per summary");
        assert_eq!(refusals.total(Refusal::RequestTooLarge), 2);
    }

    #[test]
    fn nack_warnings_are_rate_limited() {
        let refusals = Refusals::default();
        let logged = (0..100).filter(|_| refusals.may_log_nack()).count();
        assert_eq!(logged, NACK_LOGS_PER_WINDOW as usize);
        assert_eq!(
            refusals.summary().as_deref(),
            Some("80 NACK warnings not logged")
        );
    }

    #[test]
    fn long_client_strings_are_cut_for_logs() {
        assert_eq!(for_log("short"), "short");
        let long = "é".repeat(1000);
        let cut = for_log(&long);
        assert!(cut.len() < 260, "{}", cut.len());
        assert!(cut.ends_with("… (2000 bytes)"));
    }
}
