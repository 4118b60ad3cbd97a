//! The load of the whole replica set: the values the live members published
//! ([`PublishedLoad`]) added up, series by series, and read as capacity decisions read any
//! measured load ([`MeasuredLoad`]). Requests/s and requests in progress add; utilizations
//! are averaged again, weighted as each replica's window weighted them. Pure: no I/O, no clock.
//! Must not: choose whose values count (the caller hands in the live members').

use std::collections::BTreeMap;

use crate::capacity::measured::{Load, Locality, MeasuredLoad};

use super::load_value::{PublishedLoad, SeriesFigures};

/// One series summed over replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Summed {
    requests_per_second: f64,
    in_progress: f64,
    utilization_weighted: f64,
    utilization_weight: f64,
}

impl Summed {
    fn add_figures(&mut self, figures: &SeriesFigures) {
        self.requests_per_second += figures.requests_per_second();
        self.in_progress += figures.in_progress();
        if let Some(utilization) = figures.utilization() {
            let weight = figures.utilization_weight();
            self.utilization_weighted += utilization * weight;
            self.utilization_weight += weight;
        }
    }

    fn add(&mut self, other: &Summed) {
        self.requests_per_second += other.requests_per_second;
        self.in_progress += other.in_progress;
        self.utilization_weighted += other.utilization_weighted;
        self.utilization_weight += other.utilization_weight;
    }

    fn is_idle(&self) -> bool {
        self.requests_per_second <= 0.0 && self.in_progress <= 0.0
    }

    fn load(&self) -> Load {
        Load {
            requests_per_second: self.requests_per_second,
            in_progress: self.in_progress,
            utilization: (self.utilization_weight > 0.0)
                .then(|| self.utilization_weighted / self.utilization_weight),
        }
    }
}

/// Service → (client region, upstream locality) → the series summed.
#[derive(Debug, Default)]
pub struct SummedLoad {
    services: BTreeMap<String, BTreeMap<(String, Locality), Summed>>,
    /// How many replicas' values were added.
    pub replicas: usize,
}

impl SummedLoad {
    /// The sum of `published`, one value per live replica.
    pub fn of<'a>(published: impl IntoIterator<Item = &'a PublishedLoad>) -> SummedLoad {
        let mut sum = SummedLoad::default();
        for load in published {
            sum.replicas += 1;
            for (service, series) in &load.services {
                let summed = sum.services.entry(service.clone()).or_default();
                for figures in series {
                    let key = (figures.client_region().to_string(), figures.upstream());
                    summed.entry(key).or_default().add_figures(figures);
                }
            }
        }
        sum
    }

    /// The series of `service` that `wanted` picks, added up.
    fn load_where(&self, service: &str, wanted: impl Fn(&(String, Locality)) -> bool) -> Load {
        let mut total = Summed::default();
        for (_, summed) in self
            .services
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(key, _)| wanted(key))
        {
            total.add(summed);
        }
        total.load()
    }
}

impl MeasuredLoad for SummedLoad {
    fn demand(&self, service: &str, client_region: &str) -> Load {
        self.load_where(service, |(region, _)| region == client_region)
    }

    fn client_regions(&self, service: &str) -> Vec<String> {
        let mut regions: Vec<String> = self
            .services
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(_, summed)| !summed.is_idle())
            .map(|((region, _), _)| region.clone())
            .collect();
        regions.dedup();
        regions
    }

    fn arriving(&self, service: &str, upstream: &Locality) -> Load {
        self.load_where(service, |(_, locality)| locality == upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::measured::SeriesLoad;
    use crate::cluster::load_value::MAX_VALUE_BYTES;

    fn locality(region: &str, zone: &str) -> Locality {
        Locality {
            region: region.into(),
            zone: zone.into(),
        }
    }

    /// Client region, upstream zone in us-central1, requests/s, utilization with its weight.
    type Series<'a> = (&'a str, &'a str, f64, Option<(f64, f64)>);

    /// A replica's value for the service `web`.
    fn published(series: &[Series]) -> PublishedLoad {
        let series = series
            .iter()
            .map(|(client, zone, rps, utilization)| SeriesLoad {
                service: "web".into(),
                client_region: client.to_string(),
                upstream: locality("us-central1", zone),
                load: Load {
                    requests_per_second: *rps,
                    in_progress: rps / 10.0,
                    utilization: utilization.map(|(u, _)| u),
                },
                utilization_weight: utilization.map_or(0.0, |(_, w)| w),
            })
            .collect();
        PublishedLoad::of(series, 0.0, MAX_VALUE_BYTES)
    }

    #[test]
    fn two_replicas_under_capacity_each_add_up_to_a_load_over_it() {
        // Each replica's clients send 15/s near: 30/s in all.
        let first = published(&[("us-central1", "a", 15.0, None)]);
        let second = published(&[("us-central1", "a", 15.0, None)]);
        let sum = SummedLoad::of([&first, &second]);
        assert_eq!(sum.replicas, 2);
        let demand = sum.demand("web", "us-central1");
        assert_eq!(demand.requests_per_second, 30.0);
        assert_eq!(demand.in_progress, 3.0);
        assert_eq!(demand.utilization, None);
        assert_eq!(sum.arriving("web", &locality("us-central1", "a")), demand);
        assert_eq!(sum.client_regions("web"), ["us-central1"]);
        assert_eq!(sum.demand("other", "us-central1"), Load::default());
    }

    #[test]
    fn series_add_by_client_region_and_upstream_locality() {
        let first = published(&[
            ("us-central1", "a", 10.0, None),
            ("europe-west1", "a", 4.0, None),
        ]);
        let second = published(&[("us-central1", "b", 6.0, None)]);
        let third = published(&[("asia-east1", "b", 1.0, None)]);
        let sum = SummedLoad::of([&first, &second, &third]);
        assert_eq!(sum.demand("web", "us-central1").requests_per_second, 16.0);
        assert_eq!(sum.demand("web", "europe-west1").requests_per_second, 4.0);
        assert_eq!(
            sum.arriving("web", &locality("us-central1", "a"))
                .requests_per_second,
            14.0
        );
        assert_eq!(
            sum.arriving("web", &locality("us-central1", "b"))
                .requests_per_second,
            7.0
        );
        assert_eq!(
            sum.client_regions("web"),
            ["asia-east1", "europe-west1", "us-central1"]
        );
    }

    #[test]
    fn utilization_is_averaged_with_each_replica_s_weights() {
        // 0.5 over weight 10 and 0.8 over weight 30: (5 + 24) / 40.
        let first = published(&[("r", "a", 10.0, Some((0.5, 10.0)))]);
        let second = published(&[("r", "a", 30.0, Some((0.8, 30.0)))]);
        let third = published(&[("r", "a", 5.0, None)]);
        let sum = SummedLoad::of([&first, &second, &third]);
        let utilization = sum.demand("web", "r").utilization.unwrap();
        assert!((utilization - 0.725).abs() < 1e-12, "{utilization}");
        assert_eq!(sum.demand("web", "r").requests_per_second, 45.0);
    }

    #[test]
    fn nothing_published_is_no_load() {
        let sum = SummedLoad::of([]);
        assert_eq!(sum.replicas, 0);
        assert_eq!(sum.demand("web", "r"), Load::default());
        assert!(sum.client_regions("web").is_empty());
    }
}
