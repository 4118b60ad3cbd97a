//! What the console shows, gathered from the admin state in one pass: the connected clients,
//! the config status, and per service the backend localities as a chosen client locality is
//! served them (health, weight, share from traffic.rs) with capacity and load where load
//! reports have been taken in. Plain data for html.rs; must not format anything for display
//! or hold anything past the request.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::Message;

use super::traffic::{self, LocalityShare};
use crate::admin::AdminState;
use crate::capacity::report::ServiceReport;
use crate::publish::status::ConfigStatus;
use crate::xds::server::cache::{Audience, ClientView};
use crate::xds::server::clients::ClientStatus;
use crate::xds::types::TypeUrl;

/// A client locality traffic can be seen from; empty strings for a client that reports none.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub region: String,
    pub zone: String,
}

impl Place {
    /// `region/zone`, as the console's `<select>` carries it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.region, self.zone)
    }

    pub fn from_key(key: &str) -> Place {
        let (region, zone) = key.split_once('/').unwrap_or((key, ""));
        Place {
            region: region.to_string(),
            zone: zone.to_string(),
        }
    }
}

/// One backend locality of a service: how the chosen client reaches it, and capacity and
/// load when capacity decisions exist for the service.
#[derive(Clone, Debug)]
pub struct LocalityRow {
    pub traffic: LocalityShare,
    pub capacity: Option<f64>,
    pub load: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct ServiceRow {
    pub name: String,
    pub localities: Vec<LocalityRow>,
    /// The unit capacity and load are in, when load reports are in.
    pub unit: Option<String>,
}

/// Everything one rendering of the console needs.
#[derive(Clone, Debug)]
pub struct ConsoleData {
    pub from: Place,
    pub places: Vec<Place>,
    pub status: ConfigStatus,
    pub clients: Vec<ClientStatus>,
    pub services: Vec<ServiceRow>,
}

/// Gathers the console's data as seen from `from`, or from the first connected client's
/// locality when none is chosen.
pub fn gather(state: &AdminState, from: Option<Place>) -> ConsoleData {
    let snapshot = state.cache.current();
    let mut clients = state.clients.list(&snapshot);
    clients.sort_by(|a, b| (&a.node_id, a.stream_id).cmp(&(&b.node_id, b.stream_id)));
    let status = state
        .status
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let client_places: Vec<Place> = clients.iter().map(place_of).collect();
    let from = from
        .or_else(|| client_places.first().cloned())
        .unwrap_or_default();
    let view = ClientView {
        audience: Audience::Envoy,
        region: from.region.clone(),
        zone: from.zone.clone(),
        grant: None,
    };
    let assignments: Vec<ClusterLoadAssignment> = snapshot
        .view(TypeUrl::Endpoint, &view)
        .resources
        .values()
        .filter_map(|resource| ClusterLoadAssignment::decode(resource.value.clone()).ok())
        .collect();
    let services: Vec<ServiceRow> = assignments
        .iter()
        .map(|assignment| service_row(assignment, state.capacity.get(&assignment.cluster_name)))
        .collect();
    let places = places(&from, &client_places, &services);
    ConsoleData {
        from,
        places,
        status,
        clients,
        services,
    }
}

fn place_of(client: &ClientStatus) -> Place {
    client
        .locality
        .as_ref()
        .map(|l| Place {
            region: l.region.clone(),
            zone: l.zone.clone(),
        })
        .unwrap_or_default()
}

/// The choices: the chosen place, every connected client's, every backend locality's, and
/// "no locality".
fn places(from: &Place, clients: &[Place], services: &[ServiceRow]) -> Vec<Place> {
    let backends = services
        .iter()
        .flat_map(|s| &s.localities)
        .map(|row| Place {
            region: row.traffic.region.clone(),
            zone: row.traffic.zone.clone(),
        });
    let mut all: BTreeSet<Place> = clients.iter().cloned().chain(backends).collect();
    all.insert(from.clone());
    all.insert(Place::default());
    all.into_iter().collect()
}

fn service_row(assignment: &ClusterLoadAssignment, capacity: Option<ServiceReport>) -> ServiceRow {
    let localities = traffic::shares(assignment)
        .into_iter()
        .map(|traffic| {
            let backend = capacity.as_ref().and_then(|report| {
                report.backends.iter().find(|b| {
                    b.capacity.region == traffic.region && b.capacity.zone == traffic.zone
                })
            });
            LocalityRow {
                capacity: backend.map(|b| b.capacity.capacity),
                load: backend.map(|b| b.load),
                traffic,
            }
        })
        .collect();
    ServiceRow {
        name: assignment.cluster_name.clone(),
        localities,
        unit: capacity.map(|report| report.unit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_survives_its_key() {
        let place = Place {
            region: "us-central1".into(),
            zone: "us-central1-a".into(),
        };
        assert_eq!(Place::from_key(&place.key()), place);
        assert_eq!(Place::from_key("/"), Place::default());
    }
}
