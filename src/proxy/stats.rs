//! The data plane's counters, as `/stats/prometheus` shows them: downstream connections and
//! requests with responses by status class, the connection manager's timeouts that fired,
//! upstream requests and their failures. One sidecar per process, so the counters are
//! process-wide. prometheus.rs encodes them.

use std::sync::atomic::{AtomicU64, Ordering};

use super::prometheus::{label, Scrape};

#[derive(Default)]
pub struct Stats {
    pub downstream_connections_total: AtomicU64,
    pub downstream_connections_active: AtomicU64,
    pub downstream_requests: AtomicU64,
    /// Responses by class: 1xx … 5xx.
    pub downstream_responses: [AtomicU64; 5],
    pub upstream_requests: AtomicU64,
    pub upstream_failures: AtomicU64,
    /// Requests ended by the stream idle timeout (Envoy's `downstream_rq_idle_timeout`).
    pub stream_idle_timeouts: AtomicU64,
    /// Connections drained by the idle timeout (`downstream_cx_idle_timeout`).
    pub connection_idle_timeouts: AtomicU64,
    /// Connections drained at their max duration (`downstream_cx_max_duration_reached`).
    pub connection_max_durations: AtomicU64,
}

pub static STATS: Stats = Stats {
    downstream_connections_total: AtomicU64::new(0),
    downstream_connections_active: AtomicU64::new(0),
    downstream_requests: AtomicU64::new(0),
    downstream_responses: [const { AtomicU64::new(0) }; 5],
    upstream_requests: AtomicU64::new(0),
    upstream_failures: AtomicU64::new(0),
    stream_idle_timeouts: AtomicU64::new(0),
    connection_idle_timeouts: AtomicU64::new(0),
    connection_max_durations: AtomicU64::new(0),
};

impl Stats {
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.downstream_responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection for as long as the returned guard lives.
    pub fn connection(&'static self) -> ConnectionGuard {
        self.downstream_connections_total
            .fetch_add(1, Ordering::Relaxed);
        self.downstream_connections_active
            .fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Adds every counter to `scrape` (counters gain `_total` there).
    pub fn gather(&self, scrape: &mut Scrape) {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        scrape.counter(
            "switchyard_proxy_downstream_connections",
            "Downstream connections accepted.",
            get(&self.downstream_connections_total),
        );
        scrape.gauge(
            "switchyard_proxy_downstream_connections_active",
            "Downstream connections open now.",
            get(&self.downstream_connections_active),
        );
        scrape.counter(
            "switchyard_proxy_downstream_requests",
            "Downstream requests received.",
            get(&self.downstream_requests),
        );
        scrape.counters(
            "switchyard_proxy_downstream_responses",
            "Downstream responses by status class.",
            (0..5)
                .map(|i| {
                    let class = format!("{}xx", i + 1);
                    (
                        label("code_class", &class),
                        get(&self.downstream_responses[i]),
                    )
                })
                .collect(),
        );
        for (name, help, counter) in [
            (
                "switchyard_proxy_upstream_requests",
                "Requests sent upstream.",
                &self.upstream_requests,
            ),
            (
                "switchyard_proxy_upstream_failures",
                "Upstream requests that failed (connect, reset, timeout).",
                &self.upstream_failures,
            ),
            (
                "switchyard_proxy_downstream_stream_idle_timeouts",
                "Requests ended by the stream idle timeout.",
                &self.stream_idle_timeouts,
            ),
            (
                "switchyard_proxy_downstream_connection_idle_timeouts",
                "Connections drained by the idle timeout.",
                &self.connection_idle_timeouts,
            ),
            (
                "switchyard_proxy_downstream_connection_max_durations",
                "Connections drained at their max duration.",
                &self.connection_max_durations,
            ),
            (
                "switchyard_proxy_access_log_lines_dropped",
                "Access log lines dropped because the writer fell behind.",
                &super::access_log::DROPPED_LINES,
            ),
        ] {
            scrape.counter(name, help, get(counter));
        }
    }
}

pub struct ConnectionGuard(&'static Stats);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0
            .downstream_connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}
