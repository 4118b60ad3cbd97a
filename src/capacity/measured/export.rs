//! What a [`ReportWindow`] holds, series by series, as loads over the window: what a replica
//! publishes for the others to sum (`cluster::load_value`). Must not: change the window.

use super::{load_of, Load, Locality, ReportWindow, Span};

/// One (service, client region, upstream locality) series' load over the window.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesLoad {
    pub service: String,
    pub client_region: String,
    pub upstream: Locality,
    pub load: Load,
    /// The weight `load.utilization` was averaged with, per second (0 when none was
    /// carried), so that utilizations from several windows can be averaged again.
    pub utilization_weight: f64,
}

impl ReportWindow {
    /// Every series with load in the window, by service, client region and upstream.
    pub fn series_loads(&self) -> Vec<SeriesLoad> {
        let state = self.lock();
        let Span {
            first,
            end,
            seconds,
            ..
        } = self.span(&state);
        if seconds <= 0.0 {
            return Vec::new();
        }
        let mut loads = Vec::new();
        for (service, series) in &state.services {
            for ((region, upstream), one) in series {
                let sum = one.sum(first, end);
                if sum.is_idle() {
                    continue;
                }
                loads.push(SeriesLoad {
                    service: service.clone(),
                    client_region: region.clone(),
                    upstream: upstream.clone(),
                    load: load_of(&sum, seconds),
                    utilization_weight: sum.utilization_weight / seconds,
                });
            }
        }
        loads
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::capacity::measured::{Report, ReportedCounts, WindowSettings};

    #[test]
    fn each_series_is_read_with_its_utilization_weight_per_second() {
        let window = ReportWindow::new(WindowSettings::for_interval(Duration::from_secs(1)));
        let start = Instant::now();
        let zone = |zone: &str| Locality {
            region: "r1".into(),
            zone: zone.into(),
        };
        window.advance(start);
        assert!(window.series_loads().is_empty(), "nothing settled");
        for second in 1..=6 {
            let report = Report {
                client: zone("a"),
                service: "web".into(),
                upstream: vec![
                    (
                        zone("a"),
                        ReportedCounts {
                            issued_requests: 20,
                            successful_requests: 20,
                            utilization: Some(0.5),
                            ..Default::default()
                        },
                    ),
                    (
                        zone("b"),
                        ReportedCounts {
                            issued_requests: 4,
                            in_progress: 2,
                            ..Default::default()
                        },
                    ),
                ],
                interval: Duration::from_secs(1),
            };
            window.record(&report, start + Duration::from_secs(second));
        }
        let loads = window.series_loads();
        assert_eq!(loads.len(), 2);
        assert_eq!(loads[0].upstream, zone("a"));
        assert_eq!(loads[0].load.requests_per_second, 20.0);
        assert_eq!(loads[0].load.utilization, Some(0.5));
        // Weighted by the 20 finished requests a second.
        assert_eq!(loads[0].utilization_weight, 20.0);
        assert_eq!(loads[1].load.in_progress, 2.0);
        assert_eq!(loads[1].utilization_weight, 0.0);
    }
}
