//! Sources of endpoint status besides the config: the health checker today; load reports or a
//! distributed store could be others. Each source keeps its own layer of reported health; the
//! layers combine into what EDS carries (any source saying UNHEALTHY wins, then HEALTHY;
//! nothing said is UNKNOWN). A source is asked for its layer when a config is about to be
//! served (so a new endpoint is published with the status its source gives it from the
//! start), and reports changes later on its own; a change re-publishes endpoints only.
//! Must not: translate anything but endpoints, or know how a source decides.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

pub use crate::model::endpoint_facts::{EndpointReport, EndpointSource};
use crate::model::endpoint_facts::{ReportedHealth, ReportedStatus};

/// Every source's layer, and their combination.
#[derive(Default)]
pub struct Layers {
    by_source: BTreeMap<&'static str, ReportedHealth>,
    combined: ReportedHealth,
}

impl Layers {
    /// What EDS carries.
    pub fn combined(&self) -> &ReportedHealth {
        &self.combined
    }

    /// Replaces `source`'s whole layer.
    pub fn set(&mut self, source: &'static str, layer: ReportedHealth) {
        self.by_source.insert(source, layer);
        let services: BTreeSet<String> = self
            .by_source
            .values()
            .flat_map(|layer| layer.keys().cloned())
            .collect();
        self.combined.clear();
        for service in services {
            self.recombine(&service);
        }
    }

    /// Applies `reports` to `source`'s layer; returns the services whose combined health
    /// changed.
    pub fn apply(&mut self, source: &'static str, reports: &[EndpointReport]) -> BTreeSet<String> {
        let layer = self.by_source.entry(source).or_default();
        let mut touched = BTreeSet::new();
        for report in reports {
            let endpoints = layer.entry(report.service.clone()).or_default();
            let before = match report.status {
                Some(status) => endpoints.insert(report.address, status),
                None => endpoints.remove(&report.address),
            };
            if before != report.status {
                touched.insert(report.service.clone());
            }
        }
        touched
            .into_iter()
            .filter(|service| self.recombine(service))
            .collect()
    }

    /// Recomputes one service's combined health; returns whether it changed.
    fn recombine(&mut self, service: &str) -> bool {
        let mut combined: BTreeMap<SocketAddr, ReportedStatus> = BTreeMap::new();
        for layer in self.by_source.values() {
            for (address, health) in layer.get(service).into_iter().flatten() {
                let entry = combined.entry(*address).or_insert(*health);
                *entry = worse(*entry, *health);
            }
        }
        let changed = match self.combined.get(service) {
            Some(before) => *before != combined,
            None => !combined.is_empty(),
        };
        if combined.is_empty() {
            self.combined.remove(service);
        } else {
            self.combined.insert(service.to_string(), combined);
        }
        changed
    }
}

/// Of two reported statuses, the one that keeps traffic away.
fn worse(a: ReportedStatus, b: ReportedStatus) -> ReportedStatus {
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(service: &str, port: u16, status: Option<ReportedStatus>) -> EndpointReport {
        EndpointReport {
            service: service.into(),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            status,
            since: None,
        }
    }

    #[test]
    fn any_source_saying_unhealthy_wins() {
        let mut layers = Layers::default();
        let changed = layers.apply("health", &[report("web", 1, Some(ReportedStatus::Healthy))]);
        assert_eq!(changed, BTreeSet::from(["web".to_string()]));
        let changed = layers.apply("load", &[report("web", 1, Some(ReportedStatus::Unhealthy))]);
        assert_eq!(changed.len(), 1);
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(
            layers.combined()["web"][&address],
            ReportedStatus::Unhealthy
        );
        // Saying the same again changes nothing.
        let changed = layers.apply("load", &[report("web", 1, Some(ReportedStatus::Unhealthy))]);
        assert!(changed.is_empty());
        layers.apply("load", &[report("web", 1, None)]);
        assert_eq!(layers.combined()["web"][&address], ReportedStatus::Healthy);
        layers.apply("health", &[report("web", 1, None)]);
        assert!(!layers.combined().contains_key("web"));
    }

    #[test]
    fn a_whole_layer_replaces_what_its_source_said() {
        let mut layers = Layers::default();
        layers.apply("health", &[report("old", 1, Some(ReportedStatus::Healthy))]);
        let mut layer = ReportedHealth::new();
        layer.entry("new".into()).or_default().insert(
            SocketAddr::from(([127, 0, 0, 1], 2)),
            ReportedStatus::Unhealthy,
        );
        layers.set("health", layer);
        assert_eq!(
            layers.combined().keys().collect::<Vec<_>>(),
            [&"new".to_string()]
        );
    }
}
