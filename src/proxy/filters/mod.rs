//! The sidecar's HTTP filters: one module per filter Envoy knows by name, each reading its own
//! listener config and per-route config (`typed_per_filter_config`) and acting on a request
//! as it is decoded and on its answer as it is encoded. The connection manager
//! (proxy/http.rs) chooses the route, runs the chain a listener's `http_filters` names, in
//! order, then the router (proxy/filters/router.rs), which is always last.
//!
//! Adding a filter: a module here with a [`Registration`], and its line in [`REGISTERED`].
//! Must not: route, or know the control plane.

pub mod application_cookie;
pub mod cors;
pub mod fault;
pub mod router;
pub mod session_cookie;
pub mod stateful_session;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};

use super::http::Body;
use super::request_body::DownstreamBody;
use super::resources::Fault;
use envoy_types::pb::google::protobuf::Any as ProtoAny;

/// Every filter the sidecar runs besides the router.
pub const REGISTERED: &[Registration] = &[
    cors::REGISTRATION,
    fault::REGISTRATION,
    stateful_session::REGISTRATION,
    application_cookie::REGISTRATION,
];

/// How one filter is known and read.
pub struct Registration {
    /// The name a listener's `http_filters` and a route's `typed_per_filter_config` use.
    pub name: &'static str,
    /// Builds the filter from its listener-level `typed_config`.
    pub build: fn(&ProtoAny) -> Result<Arc<dyn HttpFilter>, Fault>,
    /// Reads one `typed_per_filter_config` entry for it.
    pub per_route: fn(&ProtoAny) -> Result<RouteFilterConfig, Fault>,
    /// The messages it reads, with the fields of each it applies (for the NACKed-fields
    /// document).
    pub messages: &'static [(&'static str, &'static [&'static str])],
}

/// The registration of the filter called `name`.
pub fn registration(name: &str) -> Option<&'static Registration> {
    REGISTERED.iter().find(|r| r.name == name)
}

/// A filter's per-route config, as its own module reads it (each downcasts its own type).
pub type RouteFilterConfig = Arc<dyn Any + Send + Sync>;

/// What a filter remembers of a request for encoding its answer.
pub type Memo = Box<dyn Any + Send>;

/// What a filter decides about a request it has decoded.
pub enum Decoded {
    /// Pass the request on.
    Continue,
    /// Pass the request on; [`HttpFilter::encode_headers`] gets `Memo` with the answer.
    Remember(Memo),
    /// Answer locally as Envoy's `sendLocalReply` does: the router never sees the request,
    /// and the answer gets the response header changes of the route and its levels.
    Reply(Response<Body>),
    /// Answer with exactly this response (Envoy's encodeHeaders from a filter): the router
    /// never sees the request, and no route header change applies.
    Respond(Response<Body>),
    /// Hold the request this long, then ask [`HttpFilter::after_delay`].
    Delay(Duration),
}

/// A filter's per-route configs for one request: its route's and its virtual host's.
#[derive(Clone, Copy, Default)]
pub struct LevelConfigs<'c> {
    pub route: Option<&'c RouteFilterConfig>,
    pub virtual_host: Option<&'c RouteFilterConfig>,
}

impl<'c> LevelConfigs<'c> {
    /// The configs of type `T`, the route's first.
    pub fn typed<T: Any>(self) -> impl Iterator<Item = &'c T> {
        [self.route, self.virtual_host]
            .into_iter()
            .flatten()
            .filter_map(|config| config.downcast_ref::<T>())
    }

    /// The most specific config of type `T`: the route's, else the virtual host's.
    pub fn most_specific<T: Any>(self) -> Option<&'c T> {
        self.typed().next()
    }
}

/// One HTTP filter of a listener, built once per listener config and shared by its requests.
/// `route` holds the filter's per-route configs for the request's route.
pub trait HttpFilter: Send + Sync + std::fmt::Debug {
    /// Sees the request's headers before anything after it in the chain.
    fn decode_headers(
        &self,
        request: &mut Request<DownstreamBody>,
        route: LevelConfigs<'_>,
    ) -> Decoded;

    /// After a [`Decoded::Delay`]: what now (never another delay).
    fn after_delay(&self, _route: LevelConfigs<'_>) -> Decoded {
        Decoded::Continue
    }

    /// The request's body on its way to the filters after this one.
    fn decode_body(&self, body: DownstreamBody) -> DownstreamBody {
        body
    }

    /// Sees the answer's headers (the router's, or a local reply of a filter after this one),
    /// with what it remembered of the request.
    fn encode_headers(&self, _response: &mut Response<Body>, _memo: &Memo) {}

    /// The answer's body on its way to the client.
    fn encode_body(&self, body: Body, _memo: &Memo) -> Body {
        body
    }
}

/// A listener's filters before the router, in order. Two chains are equal when they were read
/// from the same names and configs, so an unchanged listener keeps running.
#[derive(Clone, Default)]
pub struct FilterChain {
    filters: Vec<ChainLink>,
}

#[derive(Clone)]
struct ChainLink {
    name: &'static str,
    config: ProtoAny,
    filter: Arc<dyn HttpFilter>,
}

impl FilterChain {
    /// Appends the filter `name` built from `config` (registered: the caller looked it up).
    pub fn push(
        &mut self,
        registration: &'static Registration,
        config: &ProtoAny,
    ) -> Result<(), Fault> {
        let filter = (registration.build)(config)?;
        self.filters.push(ChainLink {
            name: registration.name,
            config: config.clone(),
            filter,
        });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The filters with their names, in order.
    pub(crate) fn links(&self) -> impl Iterator<Item = (&'static str, &dyn HttpFilter)> {
        self.filters.iter().map(|l| (l.name, &*l.filter))
    }
}

impl PartialEq for FilterChain {
    fn eq(&self, other: &Self) -> bool {
        self.filters.len() == other.filters.len()
            && self
                .filters
                .iter()
                .zip(&other.filters)
                .all(|(a, b)| a.name == b.name && a.config == b.config)
    }
}

impl Eq for FilterChain {}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.filters.iter().map(|l| l.name))
            .finish()
    }
}

/// The per-filter configs of a route or a virtual host, by filter name.
#[derive(Clone, Default)]
pub struct RouteFilterConfigs(Vec<(&'static str, RouteFilterConfig)>);

impl RouteFilterConfigs {
    pub fn new(mut configs: Vec<(&'static str, RouteFilterConfig)>) -> RouteFilterConfigs {
        configs.sort_by_key(|(name, _)| *name);
        RouteFilterConfigs(configs)
    }

    pub fn get(&self, name: &str) -> Option<&RouteFilterConfig> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, c)| c)
    }
}

impl std::fmt::Debug for RouteFilterConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

/// Reads a `typed_per_filter_config` map (sorted by name, so a refusal names the same entry
/// every time). An entry may come wrapped in a `FilterConfig`; one marked `is_optional` for a
/// filter the sidecar does not run is skipped, as Envoy skips it.
pub fn read_route_configs(
    map: &std::collections::HashMap<String, ProtoAny>,
) -> Result<RouteFilterConfigs, Fault> {
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    let mut configs = Vec::with_capacity(names.len());
    for name in names {
        let at = format!("typed_per_filter_config[{name}]");
        let (config, optional) = unwrap_filter_config(&map[name]).map_err(|f| f.inside(&at))?;
        let Some(registration) = registration(name) else {
            if optional {
                continue;
            }
            return Err(Fault::at(
                at,
                super::resources::Problem::HttpFilter { name: name.clone() },
            ));
        };
        let config = (registration.per_route)(&config).map_err(|f| f.inside(&at))?;
        configs.push((registration.name, config));
    }
    Ok(RouteFilterConfigs::new(configs))
}

/// The fields of a route's `FilterConfig` wrapper the sidecar applies.
pub const FILTER_CONFIG_FIELDS: &[&str] = &["config", "is_optional"];

/// A per-filter config as the filter reads it, and whether it is optional: the `config` of a
/// `FilterConfig` wrapper, else the entry itself.
fn unwrap_filter_config(entry: &ProtoAny) -> Result<(ProtoAny, bool), Fault> {
    use envoy_types::pb::envoy::config::route::v3::FilterConfig;
    use prost::Name;
    if entry.type_url != FilterConfig::type_url() {
        return Ok((entry.clone(), false));
    }
    let wrapper: FilterConfig =
        super::resources::decode_checked(&entry.value, FILTER_CONFIG_FIELDS)
            .map_err(|f| f.inside("FilterConfig"))?;
    Ok((wrapper.config.unwrap_or_default(), wrapper.is_optional))
}

/// Runs `request` through `chain`, then through `router` unless a filter answered it (a
/// local reply gets `route_headers`: the route's response header changes); the answer goes
/// back through the filters that remembered the request, last first. `route` and
/// `virtual_host` are the per-filter configs of the request's route and virtual host.
pub async fn run<R, Answer>(
    chain: &FilterChain,
    route: &RouteFilterConfigs,
    virtual_host: &RouteFilterConfigs,
    mut request: Request<DownstreamBody>,
    router: R,
    route_headers: impl FnOnce(&mut Response<Body>),
) -> Response<Body>
where
    R: FnOnce(Request<DownstreamBody>) -> Answer,
    Answer: std::future::Future<Output = Response<Body>>,
{
    let mut memos: Vec<(&dyn HttpFilter, Memo)> = Vec::new();
    let mut local_reply = None;
    for (name, filter) in chain.links() {
        let config = LevelConfigs {
            route: route.get(name),
            virtual_host: virtual_host.get(name),
        };
        let mut decided = filter.decode_headers(&mut request, config);
        if let Decoded::Delay(delay) = decided {
            tokio::time::sleep(delay).await;
            decided = filter.after_delay(config);
        }
        match decided {
            Decoded::Continue | Decoded::Delay(_) => {}
            Decoded::Remember(memo) => memos.push((filter, memo)),
            Decoded::Reply(mut reply) => {
                route_headers(&mut reply);
                local_reply = Some(reply);
                break;
            }
            Decoded::Respond(answer) => {
                local_reply = Some(answer);
                break;
            }
        }
        request = request.map(|body| filter.decode_body(body));
    }
    let mut response = match local_reply {
        Some(reply) => reply,
        None => router(request).await,
    };
    for (filter, memo) in memos.iter().rev() {
        filter.encode_headers(&mut response, memo);
        response = response.map(|body| filter.encode_body(body, memo));
    }
    response
}

/// The registered filters' names, for messages: `a, b`.
pub fn registered_names() -> String {
    REGISTERED
        .iter()
        .map(|r| r.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes `config` as `M`, the config `filter` reads, refusing fields outside `supported`.
pub(crate) fn read_config<M: prost::Message + prost::Name + Default>(
    filter: &'static str,
    config: &ProtoAny,
    supported: &[&str],
) -> Result<M, Fault> {
    if config.type_url != M::type_url() {
        return Err(super::resources::Problem::FilterConfigType {
            filter,
            type_url: config.type_url.clone(),
            expected: M::type_url(),
        }
        .into());
    }
    super::resources::decode_checked(&config.value, supported)
}
