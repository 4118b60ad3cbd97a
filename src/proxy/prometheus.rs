//! The sidecar's `/stats/prometheus` text, encoded by prometheus-client: each scrape gathers
//! the current values of the data plane's counters into a fresh registry (the counters live
//! in atomics on the hot path; nothing here is touched there) and writes it in the OpenMetrics
//! text format, so counters end in `_total` and every family has its HELP and TYPE. Must not:
//! count anything itself, or be read on a request's path.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A metric's labels, as (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// One scrape being gathered.
#[derive(Default)]
pub struct Scrape {
    registry: Registry,
}

impl Scrape {
    /// A counter named `name` (without `_total`: the encoder adds it).
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        self.registry.register(name, help, counter);
    }

    /// A counter with one series per label set.
    pub fn counters(&mut self, name: &str, help: &str, series: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).inc_by(value);
        }
        self.registry.register(name, help, family);
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        let gauge: Gauge = Gauge::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        self.registry.register(name, help, gauge);
    }

    /// A gauge with one series per label set.
    pub fn gauges(&mut self, name: &str, help: &str, series: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Gauge>::default();
        for (labels, value) in series {
            family
                .get_or_create(&labels)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.registry.register(name, help, family);
    }

    /// The OpenMetrics text of everything gathered.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// One label, for the common case of a metric labelled by one name.
pub fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_string(), value.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gain_total_and_gauges_do_not() {
        let mut scrape = Scrape::default();
        scrape.counter("switchyard_proxy_xds_updates_accepted", "updates", 3);
        scrape.gauge("switchyard_proxy_xds_connected", "connected", 1);
        scrape.counters(
            "envoy_cluster_upstream_cx_overflow",
            "overflows",
            vec![(label("envoy_cluster_name", "a\"b"), 2)],
        );
        let text = scrape.encode();
        assert!(
            text.contains("\nswitchyard_proxy_xds_updates_accepted_total 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE switchyard_proxy_xds_updates_accepted counter\n"));
        assert!(
            text.contains("\nswitchyard_proxy_xds_connected 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "envoy_cluster_upstream_cx_overflow_total{envoy_cluster_name=\"a\\\"b\"} 2"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
