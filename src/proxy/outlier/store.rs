//! Every cluster's outlier detector, kept across xDS updates while the cluster's settings
//! stay (a changed `outlier_detection` starts a new detector, as Envoy's new cluster would),
//! and the assignment the balancer is built from: the endpoints ejected now marked unhealthy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Detector, OutlierSettings};
use crate::proxy::resources::endpoint::{Assignment, Health};

#[derive(Default)]
pub struct OutlierStore {
    detectors: Mutex<BTreeMap<String, Arc<Detector>>>,
}

impl OutlierStore {
    /// Cluster `name`'s detector for `settings` (None without outlier detection), watching
    /// the endpoints of `assignment`.
    pub fn for_cluster(
        &self,
        name: &str,
        settings: Option<&OutlierSettings>,
        assignment: Option<&Assignment>,
    ) -> Option<Arc<Detector>> {
        let mut detectors = self.detectors.lock().unwrap_or_else(|e| e.into_inner());
        let Some(settings) = settings else {
            detectors.remove(name);
            return None;
        };
        let detector = match detectors.get(name) {
            Some(kept) if kept.settings == *settings => kept.clone(),
            _ => Arc::new(Detector::new(settings.clone())),
        };
        detectors.insert(name.to_string(), detector.clone());
        detector.set_hosts(&endpoints_of(assignment));
        Some(detector)
    }

    /// Forgets the detectors of clusters `keep` says are gone.
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        let mut detectors = self.detectors.lock().unwrap_or_else(|e| e.into_inner());
        detectors.retain(|name, _| keep(name));
    }
}

/// Each endpoint's EDS address with all its addresses.
fn endpoints_of(
    assignment: Option<&Assignment>,
) -> Vec<(std::net::SocketAddr, Vec<std::net::SocketAddr>)> {
    assignment
        .into_iter()
        .flat_map(|a| a.localities.iter())
        .flat_map(|l| l.endpoints.iter())
        .map(|e| {
            let all = std::iter::once(e.address)
                .chain(e.additional.iter().copied())
                .collect();
            (e.address, all)
        })
        .collect()
}

/// `assignment` as the balancer sees it: the endpoints `detector` has ejected count as
/// unhealthy (as Envoy's FAILED_OUTLIER_CHECK does: out of their locality's and priority's
/// healthy share too). Borrowed as is when nothing is ejected.
pub fn without_ejected<'a>(
    assignment: Option<&'a Assignment>,
    detector: Option<&Detector>,
) -> Option<std::borrow::Cow<'a, Assignment>> {
    let assignment = assignment?;
    let ejected = detector.map(Detector::ejected).unwrap_or_default();
    if ejected.is_empty() {
        return Some(std::borrow::Cow::Borrowed(assignment));
    }
    let mut marked = assignment.clone();
    for endpoint in marked
        .localities
        .iter_mut()
        .flat_map(|l| l.endpoints.iter_mut())
    {
        if ejected.binary_search(&endpoint.address).is_ok() {
            endpoint.health = Health::Unhealthy;
        }
    }
    Some(std::borrow::Cow::Owned(marked))
}
