//! The load a replica publishes in etcd (`PREFIX/load/NAME`, on its lease): what its own
//! clients reported, per service, client region and upstream locality, as loads over its
//! window, in one compact JSON value. Figures are rounded (to a thousandth) so that a steady
//! load gives the same value again and is not rewritten; the value is bounded in size (the
//! busiest series first, the rest left out and counted). Pure: no I/O, the time is handed in.
//! Must not: sum (that is `load_sum`) or decide anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capacity::measured::{Load, Locality, SeriesLoad};

/// The largest value written, well under etcd's default request limit (1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The format's version, written in every value.
const VERSION: u32 = 1;

/// One series: client region, upstream region, upstream zone, requests/s, requests in
/// progress, utilization (null when none was carried), and the weight it was averaged with
/// per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesFigures(
    pub String,
    pub String,
    pub String,
    pub f64,
    pub f64,
    pub Option<f64>,
    pub f64,
);

impl SeriesFigures {
    pub fn client_region(&self) -> &str {
        &self.0
    }

    pub fn upstream(&self) -> Locality {
        Locality {
            region: self.1.clone(),
            zone: self.2.clone(),
        }
    }

    pub fn requests_per_second(&self) -> f64 {
        self.3
    }

    pub fn in_progress(&self) -> f64 {
        self.4
    }

    pub fn utilization(&self) -> Option<f64> {
        self.5
    }

    pub fn utilization_weight(&self) -> f64 {
        self.6
    }
}

/// A replica's published load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedLoad {
    #[serde(rename = "v")]
    pub version: u32,
    /// When it was written (Unix seconds, the writer's clock).
    pub at: f64,
    /// Service → its series.
    pub services: BTreeMap<String, Vec<SeriesFigures>>,
    /// Series left out to keep the value under [`MAX_VALUE_BYTES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_out: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// `value` rounded to a thousandth.
fn rounded(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn figures_of(series: &SeriesLoad) -> SeriesFigures {
    let Load {
        requests_per_second,
        in_progress,
        utilization,
    } = series.load;
    let weight = rounded(series.utilization_weight);
    let utilization = utilization.filter(|_| weight > 0.0);
    SeriesFigures(
        series.client_region.clone(),
        series.upstream.region.clone(),
        series.upstream.zone.clone(),
        rounded(requests_per_second),
        rounded(in_progress),
        utilization.map(rounded),
        if utilization.is_some() { weight } else { 0.0 },
    )
}

impl PublishedLoad {
    /// The value for `series` at `at_unix`, the busiest series first until the value would
    /// pass `max_bytes`.
    pub fn of(mut series: Vec<SeriesLoad>, at_unix: f64, max_bytes: usize) -> PublishedLoad {
        series.sort_by(|a, b| {
            b.load
                .requests_per_second
                .total_cmp(&a.load.requests_per_second)
                .then(b.load.in_progress.total_cmp(&a.load.in_progress))
        });
        // The envelope, and a margin for the service names' quoting.
        let mut bytes = 64;
        let mut services: BTreeMap<String, Vec<SeriesFigures>> = BTreeMap::new();
        let mut left_out = 0;
        for one in &series {
            let figures = figures_of(one);
            if figures.requests_per_second() <= 0.0 && figures.in_progress() <= 0.0 {
                continue;
            }
            let size = serde_json::to_string(&figures).map_or(0, |t| t.len() + 1)
                + if services.contains_key(&one.service) {
                    0
                } else {
                    one.service.len() + 8
                };
            if bytes + size > max_bytes {
                left_out += 1;
                continue;
            }
            bytes += size;
            services
                .entry(one.service.clone())
                .or_default()
                .push(figures);
        }
        for figures in services.values_mut() {
            figures.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        }
        PublishedLoad {
            version: VERSION,
            at: at_unix,
            services,
            left_out,
        }
    }

    /// Whether `other` carries the same figures (whenever it was written).
    pub fn same_figures(&self, other: &PublishedLoad) -> bool {
        self.services == other.services && self.left_out == other.left_out
    }

    /// Requests per second over every service and series.
    pub fn requests_per_second(&self) -> f64 {
        self.services
            .values()
            .flatten()
            .map(SeriesFigures::requests_per_second)
            .sum()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The load a value written by [`PublishedLoad::encode`] carries (None: not one this version
/// reads, which counts as no load).
pub fn parse_load(value: &str) -> Option<PublishedLoad> {
    serde_json::from_str::<PublishedLoad>(value)
        .ok()
        .filter(|load| load.version == VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series of `rps` requests/s, a third of a request in flight for every one.
    fn series(service: &str, region: &str, zone: &str, rps: f64) -> SeriesLoad {
        SeriesLoad {
            service: service.into(),
            client_region: "us-central1".into(),
            upstream: Locality {
                region: region.into(),
                zone: zone.into(),
            },
            load: Load {
                requests_per_second: rps,
                in_progress: rps / 3.0,
                utilization: None,
            },
            utilization_weight: 0.0,
        }
    }

    #[test]
    fn a_value_reads_back_rounded_and_sorted() {
        let load = PublishedLoad::of(
            vec![
                series("web", "us-central1", "b", 2.0),
                series("web", "us-central1", "a", 15.123_456),
                series("api", "europe-west1", "b", 0.0004),
            ],
            100.5,
            MAX_VALUE_BYTES,
        );
        let text = load.encode();
        assert!(text.len() < 200, "compact: {text}");
        let back = parse_load(&text).unwrap();
        assert_eq!(back, load);
        assert_eq!(back.at, 100.5);
        // Nothing measurable at a thousandth: left out of the value, not counted as cut.
        assert!(!back.services.contains_key("api"));
        let web = &back.services["web"];
        assert_eq!(web[0].upstream().zone, "a");
        assert_eq!(web[0].requests_per_second(), 15.123);
        assert_eq!(web[0].in_progress(), 5.041);
        assert!((back.requests_per_second() - 17.123).abs() < 1e-9);
        assert_eq!(back.left_out, 0);
        assert_eq!(parse_load("HEALTHY 127.0.0.1:80"), None);
        assert_eq!(parse_load(&text.replace("\"v\":1", "\"v\":9")), None);
    }

    #[test]
    fn a_steady_load_gives_the_same_figures_at_any_time() {
        let one = PublishedLoad::of(vec![series("web", "r", "a", 15.0001)], 1.0, MAX_VALUE_BYTES);
        let two = PublishedLoad::of(vec![series("web", "r", "a", 14.9999)], 2.0, MAX_VALUE_BYTES);
        assert!(one.same_figures(&two));
        let three = PublishedLoad::of(vec![series("web", "r", "a", 16.0)], 3.0, MAX_VALUE_BYTES);
        assert!(!one.same_figures(&three));
    }

    #[test]
    fn the_value_is_bounded_and_keeps_the_busiest_series() {
        let many: Vec<SeriesLoad> = (0..1000)
            .map(|i| series("web", "r", &format!("zone-{i}"), f64::from(i)))
            .collect();
        let load = PublishedLoad::of(many, 1.0, 4096);
        let text = load.encode();
        assert!(text.len() <= 4096, "{} bytes", text.len());
        let kept = load.services["web"].len();
        assert!(kept > 10, "{kept} kept");
        assert_eq!(kept + load.left_out, 999, "zone-0 has no load");
        let slowest_kept = load.services["web"]
            .iter()
            .map(SeriesFigures::requests_per_second)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(slowest_kept, f64::from(1000 - kept as u32));
    }

    #[test]
    fn utilization_travels_with_its_weight() {
        let mut one = series("web", "r", "a", 10.0);
        one.load.utilization = Some(0.5);
        one.utilization_weight = 10.0;
        let mut unweighted = series("web", "r", "b", 10.0);
        unweighted.load.utilization = Some(0.9);
        let load = PublishedLoad::of(vec![one, unweighted], 1.0, MAX_VALUE_BYTES);
        let web = &load.services["web"];
        assert_eq!(
            (web[0].utilization(), web[0].utilization_weight()),
            (Some(0.5), 10.0)
        );
        assert_eq!(
            (web[1].utilization(), web[1].utilization_weight()),
            (None, 0.0)
        );
    }
}
