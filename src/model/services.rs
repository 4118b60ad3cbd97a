//! Services: where requests and connections routed to a name go. A service spreads its
//! traffic over endpoint groups (one locality each) in proportion to their capacity, picks an
//! endpoint within a group by its balancing policy, and says how it talks to endpoints
//! (protocol, address family, timeouts), how sessions stick, how endpoints drain, ramp up,
//! are ejected or limited. The dialects resolve their cloud's words into these (a cookie's
//! name, a capacity's unit and target); nothing here depends on which cloud wrote it.

use std::time::Duration;

use serde::Serialize;

use super::{
    AddressSelection, BackendProtocol, BalancingPolicy, CircuitBreakers, CustomHeaders, HttpCookie,
    Loc, MinimumHealthy, OutlierDetection, Ref, StickyCookie,
};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    /// Where the service is written, in its dialect's words (`backendServices[web]`), for
    /// people.
    #[serde(skip)]
    pub path: String,
    pub protocol: BackendProtocol,
    /// The named port instance groups reach the service on.
    pub port_name: String,
    /// The whole-response deadline of a request (the idle timeout of a TCP connection).
    pub timeout: Duration,
    pub health_checks: Vec<Ref>,
    /// How an endpoint is picked within a group.
    pub lb_policy: BalancingPolicy,
    /// The ring size of a hashing policy, when the config sets its minimum.
    pub minimum_ring_size: Option<u64>,
    pub backends: Vec<ServiceBackend>,
    /// What keeps a client on one endpoint (honoured by hashing policies; cookies also by
    /// proxyless clients' stateful sessions).
    pub affinity: Affinity,
    /// How long a removed endpoint is kept DRAINING.
    pub draining_timeout: Duration,
    pub ip_address_selection_policy: AddressSelection,
    /// The deadline of a whole stream (a gRPC call), retries included.
    pub max_stream_duration: Option<Duration>,
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Headers added to requests sent to the service and to its responses.
    pub custom_headers: CustomHeaders,
    pub outlier_detection: Option<OutlierDetection>,
    /// The share of requests (0–1) the proxy logs; None: none.
    pub log_sample_rate: Option<f64>,
    /// A new endpoint's share rises linearly from almost nothing to its full weight over this
    /// window.
    pub slow_start: Option<Duration>,
    /// A cookie the proxy issues naming the endpoint that served, so that later requests
    /// carrying it go back there whatever the balancing policy.
    pub sticky_cookie: Option<StickyCookie>,
    /// Below this many (or this share of) healthy endpoints, every endpoint takes traffic,
    /// unhealthy ones included (fail open).
    pub minimum_healthy: Option<MinimumHealthy>,
    /// A client is served from endpoints in its own zone while any is healthy, the rest of
    /// its region next.
    pub prefer_client_zone: bool,
}

/// What keeps a client on the same endpoint (with a hashing policy).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Affinity {
    #[default]
    None,
    /// The client's address (a proxyless client's channel).
    ClientAddress,
    /// A cookie, issued by the proxy when the request has none (its name resolved by the
    /// dialect).
    Cookie(HttpCookie),
    /// A request header's value.
    Header(String),
}

/// One endpoint group of a service, with the capacity it is meant to take.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackend {
    pub group: Ref,
    #[serde(skip)]
    pub loc: Loc,
    pub capacity: Capacity,
}

/// How much traffic a group is meant to take: a target in a unit, scaled.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub unit: CapacityUnit,
    pub target: CapacityTarget,
    /// Multiplies the target; 0 takes the group out of rotation without removing it.
    pub scaler: f64,
    /// How the dialect wrote the target, for people: its mode (`RATE`) and its formula
    /// (`maxRatePerEndpoint 10 × 3 endpoints`).
    #[serde(skip)]
    pub written: CapacityWritten,
}

/// What a capacity target counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CapacityUnit {
    RequestsPerSecond,
    Connections,
    /// Backend utilization (0–1 per endpoint).
    Utilization,
    /// A plain share, with nothing measured behind it.
    Weight,
}

/// A target for the whole group, or for each of its endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CapacityTarget {
    Group(f64),
    PerEndpoint(f64),
}

/// A capacity as its dialect wrote it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CapacityWritten {
    pub mode: String,
    pub formula: String,
}
