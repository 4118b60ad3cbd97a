//! Listener → where the sidecar listens and what it runs there: an HTTP connection manager
//! taking its routes over RDS (with its timeouts, forwarding headers, its HTTP filters — each
//! read by its module in proxy/filters/, the router last — and Switchyard's own named steps
//! among them), or a TCP proxy to one cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction;
use envoy_types::pb::envoy::config::listener::v3::{
    filter, FilterChain as XdsFilterChain, Listener as XdsListener,
};
use envoy_types::pb::envoy::extensions::filters::http::lua::v3::Lua;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use prost::Name;

use super::access_log::{self, AccessLog};
use super::early_mutation::EarlyMutations;
use super::filter_chain::{self, ChainMatch};
use super::tls::{CertificateSource, DownstreamTls};
use super::{decode_checked, duration, socket_address, Fault, Problem, ResourceError};
use crate::proxy::filters::{registration, FilterChain};
use crate::xds::types::TypeUrl;

pub const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
pub(super) const ROUTER: &str = "envoy.filters.http.router";
/// Switchyard's Lua step that appends the listener's port to the Host (translate/frontend.rs
/// writes it). The sidecar runs no Lua: it knows this step by its name and does what it does.
pub const HOST_WITH_LISTENER_PORT: &str = "switchyard.host_with_listener_port";

/// A listener as the sidecar runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    /// The main address first, then the additional ones (dual stack).
    pub addresses: Vec<SocketAddr>,
    pub freebind: bool,
    /// In order; a connection goes to the one [`filter_chain::select`] picks.
    pub chains: Vec<Chain>,
    /// The TLS inspector is configured: the ClientHello is read before a chain is chosen.
    pub inspects_tls: bool,
}

/// One filter chain: what it matches, the TLS it terminates, and what runs behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub matcher: ChainMatch,
    pub tls: Option<std::sync::Arc<DownstreamTls>>,
    pub kind: ListenerKind,
}

impl Listener {
    /// Whether a connection's ClientHello must be read before its chain is known: a chain
    /// terminates TLS or matches on what the ClientHello says.
    pub fn reads_client_hello(&self) -> bool {
        self.inspects_tls
            || self.chains.iter().any(|chain| {
                chain.tls.is_some()
                    || !chain.matcher.server_names.is_empty()
                    || chain.matcher.transport_protocol.is_some()
            })
    }

    /// The routes its HTTP chains take over RDS.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.chains.iter().filter_map(|chain| match &chain.kind {
            ListenerKind::Http(manager) => Some(manager.route_name.as_str()),
            ListenerKind::Tcp(_) => None,
        })
    }

    /// The Secrets its chains' certificates come in (SDS).
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.chains
            .iter()
            .filter_map(|chain| chain.tls.as_deref())
            .flat_map(|tls| tls.certificates.iter())
            .filter_map(|source| match source {
                CertificateSource::Sds(name) => Some(name.as_str()),
                CertificateSource::Inline(_) => None,
            })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ListenerKind {
    /// Shared by every connection of the chain (one Arc each, not a copy).
    Http(Arc<HttpManager>),
    Tcp(TcpForward),
}

/// What an HTTP connection manager asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpManager {
    pub stat_prefix: String,
    /// The RouteConfiguration it takes over RDS.
    pub route_name: String,
    /// Host ports are stripped before host matching.
    pub strip_any_host_port: bool,
    pub use_remote_address: bool,
    pub via: Option<String>,
    /// `via` as a header value, made once: appended to every request and response.
    pub via_value: Option<http::HeaderValue>,
    /// `skip_xff_append`: the client's address is not appended to X-Forwarded-For (the route
    /// configuration may still add to it or remove it).
    pub skip_xff_append: bool,
    /// `headers_with_underscores_action: DROP_HEADER`: request headers whose names hold an
    /// underscore are dropped before anything sees the request.
    pub drop_underscore_headers: bool,
    /// Switchyard's `switchyard.host_with_listener_port` step: once the route is chosen, the
    /// Host gets `:<port>` of the listener the request came in on.
    pub host_with_listener_port: bool,
    /// The HTTP filters before the router, in the order `http_filters` names them.
    pub filters: FilterChain,
    /// `early_header_mutation_extensions`: header changes made before the route is chosen.
    pub early_mutations: EarlyMutations,
    pub timeouts: Timeouts,
    /// `upgrade_configs` names `websocket`: upgrade requests become tunnels to the backend.
    pub websocket: bool,
    /// `access_log`: one entry per request, when any log keeps it.
    pub access_logs: Vec<AccessLog>,
}

/// The connection manager's timeouts (None: not set, or zero, which Envoy reads as off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// `stream_idle_timeout`: a request with nothing received or sent for this long ends.
    pub stream_idle: Option<Duration>,
    /// `common_http_protocol_options.idle_timeout`: a connection without a request for this
    /// long is drained.
    pub connection_idle: Option<Duration>,
    /// `common_http_protocol_options.max_connection_duration`: a connection this old is
    /// drained.
    pub max_connection_duration: Option<Duration>,
}

impl Timeouts {
    /// Whether a connection needs its clock: some connection-wide limit is set.
    pub fn limit_connections(&self) -> bool {
        self.connection_idle.is_some() || self.max_connection_duration.is_some()
    }
}

/// Connections go to one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpForward {
    pub cluster: String,
    pub idle_timeout: Option<Duration>,
    /// Pick the endpoint by the client's address (for hash-based balancers).
    pub hash_source_ip: bool,
    /// `access_log`: one entry per connection, when any log keeps it.
    pub access_logs: Vec<AccessLog>,
}

pub(super) const LISTENER_FIELDS: &[&str] = &[
    "name",
    "address.socket_address.address",
    "address.socket_address.port_value",
    "additional_addresses.address.socket_address.address",
    "additional_addresses.address.socket_address.port_value",
    "freebind",
    "filter_chains.name",
    "filter_chains.filters.name",
    "filter_chains.filters.typed_config",
    "filter_chains.filter_chain_match.destination_port",
    "filter_chains.filter_chain_match.server_names",
    "filter_chains.filter_chain_match.transport_protocol",
    "filter_chains.transport_socket.name",
    "filter_chains.transport_socket.typed_config",
    "listener_filters.name",
    "listener_filters.typed_config",
    "traffic_direction",
    "stat_prefix",
];

pub(super) const MANAGER_FIELDS: &[&str] = &[
    "codec_type",
    "stat_prefix",
    "rds.config_source.ads",
    "rds.config_source.resource_api_version",
    "rds.route_config_name",
    "http_filters.name",
    "http_filters.typed_config",
    "http_filters.is_optional",
    "early_header_mutation_extensions.name",
    "early_header_mutation_extensions.typed_config",
    "strip_any_host_port",
    "use_remote_address",
    "skip_xff_append",
    "via",
    "upgrade_configs.upgrade_type",
    "stream_idle_timeout",
    "common_http_protocol_options.idle_timeout",
    "common_http_protocol_options.max_connection_duration",
    "common_http_protocol_options.headers_with_underscores_action",
    // As access_log::FIELDS lists them.
    "access_log.name",
    "access_log.typed_config",
    "access_log.filter.runtime_filter",
    "access_log.filter.extension_filter",
    "access_log.filter.and_filter.filters.runtime_filter",
    "access_log.filter.and_filter.filters.extension_filter",
];

pub(super) const ROUTER_FIELDS: &[&str] = &["dynamic_stats"];

pub(super) const TCP_FIELDS: &[&str] = &[
    "stat_prefix",
    "cluster",
    "idle_timeout",
    "hash_policy.source_ip",
    "access_log.name",
    "access_log.typed_config",
    "access_log.filter.runtime_filter",
    "access_log.filter.extension_filter",
    "access_log.filter.and_filter.filters.runtime_filter",
    "access_log.filter.and_filter.filters.extension_filter",
];

/// Converts one Listener resource.
pub fn convert(name: &str, bytes: &[u8]) -> Result<Listener, ResourceError> {
    read(name, bytes).map_err(|fault| fault.of(TypeUrl::Listener, name))
}

fn read(name: &str, bytes: &[u8]) -> Result<Listener, Fault> {
    let listener: XdsListener = decode_checked(bytes, LISTENER_FIELDS)?;
    let mut addresses = vec![socket_address(listener.address.as_ref())
        .map_err(|problem| Fault::at("address", problem))?];
    for (index, extra) in listener.additional_addresses.iter().enumerate() {
        addresses.push(
            socket_address(extra.address.as_ref())
                .map_err(|problem| Fault::at(format!("additional_addresses[{index}]"), problem))?,
        );
    }
    if listener.filter_chains.is_empty() {
        return Err(Problem::NoFilterChains.into());
    }
    let chains = listener
        .filter_chains
        .iter()
        .enumerate()
        .map(|(index, chain)| {
            read_chain(chain).map_err(|fault| fault.under(&format!("filter_chains[{index}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Listener {
        name: name.to_string(),
        addresses,
        freebind: listener.freebind.is_some_and(|f| f.value),
        chains,
        inspects_tls: filter_chain::inspects_tls(&listener.listener_filters)?,
    })
}

/// One filter chain: its match, its TLS, and its one network filter.
fn read_chain(chain: &XdsFilterChain) -> Result<Chain, Fault> {
    let matcher = filter_chain::chain_match(chain.filter_chain_match.as_ref())?;
    let tls = filter_chain::transport_socket(chain.transport_socket.as_ref())?;
    let [network_filter] = chain.filters.as_slice() else {
        return Err(Fault::at(
            "filters",
            Problem::NetworkFilters {
                count: chain.filters.len(),
            },
        ));
    };
    let Some(filter::ConfigType::TypedConfig(config)) = &network_filter.config_type else {
        return Err(Fault::at("filters[0]", Problem::NoTypedConfig));
    };
    let kind = if config.type_url == HttpConnectionManager::type_url() {
        ListenerKind::Http(Arc::new(
            http_manager(&config.value).map_err(|f| f.inside(MANAGER_CONFIG))?,
        ))
    } else if config.type_url == TcpProxy::type_url() {
        ListenerKind::Tcp(tcp_forward(&config.value).map_err(|f| f.inside(TCP_CONFIG))?)
    } else {
        return Err(Fault::at(
            "filters[0]",
            Problem::NetworkFilter {
                name: network_filter.name.clone(),
                type_url: config.type_url.clone(),
            },
        ));
    };
    Ok(Chain {
        matcher,
        tls: tls.map(std::sync::Arc::new),
        kind,
    })
}

/// What the HttpConnectionManager and TcpProxy faults are seen under, inside their chain.
const MANAGER_CONFIG: &str = "filters[0].typed_config (HttpConnectionManager)";
const TCP_CONFIG: &str = "filters[0].typed_config (TcpProxy)";

fn http_manager(bytes: &[u8]) -> Result<HttpManager, Fault> {
    let manager: HttpConnectionManager = decode_checked(bytes, MANAGER_FIELDS)?;
    let Some(RouteSpecifier::Rds(rds)) = &manager.route_specifier else {
        return Err(Problem::RoutesNotOverRds.into());
    };
    let mut host_with_listener_port = false;
    let mut filters = FilterChain::default();
    let mut routed = false;
    for (index, http_filter) in manager.http_filters.iter().enumerate() {
        let config = match &http_filter.config_type {
            Some(http_filter::ConfigType::TypedConfig(config)) => Some(config),
            _ => None,
        };
        let at = format!("http_filters[{index}]");
        if routed {
            return Err(Fault::at(
                at,
                Problem::FilterAfterRouter {
                    name: http_filter.name.clone(),
                },
            ));
        }
        if let Some(registration) = registration(&http_filter.name) {
            let config = config.cloned().unwrap_or_default();
            filters
                .push(registration, &config)
                .map_err(|f| f.inside(&format!("{at}.typed_config")))?;
            continue;
        }
        match http_filter.name.as_str() {
            ROUTER => {
                routed = true;
                if let Some(config) = config {
                    router_config(config)
                        .map_err(|f| f.inside(&format!("{at}.typed_config (Router)")))?;
                }
            }
            HOST_WITH_LISTENER_PORT if config.is_some_and(|c| c.type_url == Lua::type_url()) => {
                host_with_listener_port = true;
            }
            // Envoy skips an optional filter it does not know.
            _ if http_filter.is_optional => {}
            other => {
                return Err(Fault::at(
                    at,
                    Problem::HttpFilter {
                        name: other.to_string(),
                    },
                ))
            }
        }
    }
    let options = manager.common_http_protocol_options.as_ref();
    let drop_underscore_headers = match options.map(|o| o.headers_with_underscores_action) {
        None => false,
        Some(action) => match HeadersWithUnderscoresAction::try_from(action) {
            Ok(HeadersWithUnderscoresAction::Allow) => false,
            Ok(HeadersWithUnderscoresAction::DropHeader) => true,
            _ => {
                return Err(Fault::at(
                    "common_http_protocol_options.headers_with_underscores_action",
                    Problem::UnderscoreHeadersAction { action },
                ))
            }
        },
    };
    let timeouts = Timeouts {
        stream_idle: non_zero(manager.stream_idle_timeout.as_ref()),
        connection_idle: non_zero(options.and_then(|o| o.idle_timeout.as_ref())),
        max_connection_duration: non_zero(options.and_then(|o| o.max_connection_duration.as_ref())),
    };
    let mut websocket = false;
    for (index, upgrade) in manager.upgrade_configs.iter().enumerate() {
        if !upgrade.upgrade_type.eq_ignore_ascii_case("websocket") {
            return Err(Fault::at(
                format!("upgrade_configs[{index}].upgrade_type"),
                Problem::UpgradeType {
                    upgrade_type: upgrade.upgrade_type.clone(),
                },
            ));
        }
        websocket = true;
    }
    Ok(HttpManager {
        websocket,
        stat_prefix: manager.stat_prefix.clone(),
        route_name: rds.route_config_name.clone(),
        strip_any_host_port: matches!(
            manager.strip_port_mode,
            Some(StripPortMode::StripAnyHostPort(true))
        ),
        use_remote_address: manager.use_remote_address.is_some_and(|v| v.value),
        via: Some(manager.via.clone()).filter(|v| !v.is_empty()),
        via_value: Some(manager.via.as_str())
            .filter(|v| !v.is_empty())
            .and_then(|v| http::HeaderValue::from_str(v).ok()),
        skip_xff_append: manager.skip_xff_append,
        drop_underscore_headers,
        host_with_listener_port,
        filters,
        early_mutations: super::early_mutation::read(&manager.early_header_mutation_extensions)?,
        timeouts,
        access_logs: access_log::read_all(&manager.access_log)?,
    })
}

/// A timeout Envoy applies: set and not zero.
fn non_zero(value: Option<&envoy_types::pb::google::protobuf::Duration>) -> Option<Duration> {
    value.map(duration).filter(|d| !d.is_zero())
}

/// The router filter's own config: nothing in it changes what the sidecar does, so only
/// `dynamic_stats` (statistics the sidecar does not keep) is accepted.
fn router_config(config: &envoy_types::pb::google::protobuf::Any) -> Result<(), Fault> {
    if config.type_url != Router::type_url() {
        return Err(Problem::NotRouterConfig {
            type_url: config.type_url.clone(),
        }
        .into());
    }
    decode_checked::<Router>(&config.value, ROUTER_FIELDS).map(drop)
}

fn tcp_forward(bytes: &[u8]) -> Result<TcpForward, Fault> {
    let proxy: TcpProxy = decode_checked(bytes, TCP_FIELDS)?;
    let Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) = proxy.cluster_specifier else {
        return Err(Problem::Missing { what: "a cluster" }.into());
    };
    Ok(TcpForward {
        cluster,
        idle_timeout: proxy.idle_timeout.as_ref().map(duration),
        hash_source_ip: !proxy.hash_policy.is_empty(),
        access_logs: access_log::read_all(&proxy.access_log)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpFilter, Rds,
    };
    use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration};
    use prost::Message;

    fn any<M: Message + Name>(message: &M) -> Any {
        Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        }
    }

    fn filter(name: &str, config: Any) -> HttpFilter {
        HttpFilter {
            name: name.into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(config)),
            ..Default::default()
        }
    }

    fn seconds(seconds: i64) -> Option<ProtoDuration> {
        Some(ProtoDuration { seconds, nanos: 0 })
    }

    /// A connection manager as Switchyard writes one for an AWS listener on a port of its own.
    fn aws_manager() -> HttpConnectionManager {
        HttpConnectionManager {
            stat_prefix: "l".into(),
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: "r".into(),
                ..Default::default()
            })),
            http_filters: vec![
                filter(HOST_WITH_LISTENER_PORT, any(&Lua::default())),
                filter(ROUTER, any(&Router::default())),
            ],
            strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
            stream_idle_timeout: seconds(60),
            common_http_protocol_options: Some(HttpProtocolOptions {
                idle_timeout: seconds(60),
                max_connection_duration: seconds(3600),
                headers_with_underscores_action: HeadersWithUnderscoresAction::DropHeader as i32,
                ..Default::default()
            }),
            skip_xff_append: true,
            ..Default::default()
        }
    }

    fn converted(manager: &HttpConnectionManager) -> Result<HttpManager, Fault> {
        http_manager(&manager.encode_to_vec())
    }

    /// A listener on port 80 running `manager`, encoded.
    fn listener_with(manager: &HttpConnectionManager) -> Vec<u8> {
        use envoy_types::pb::envoy::config::core::v3::{
            address, socket_address::PortSpecifier, Address, SocketAddress,
        };
        use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain};
        XdsListener {
            name: "l".into(),
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.1".into(),
                    port_specifier: Some(PortSpecifier::PortValue(80)),
                    ..Default::default()
                })),
            }),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: HTTP_CONNECTION_MANAGER.into(),
                    config_type: Some(filter::ConfigType::TypedConfig(any(manager))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn an_aws_listeners_settings_are_taken_as_envoy_applies_them() {
        let manager = converted(&aws_manager()).unwrap();
        assert!(manager.host_with_listener_port);
        assert!(manager.drop_underscore_headers && manager.skip_xff_append);
        assert_eq!(
            manager.timeouts,
            Timeouts {
                stream_idle: Some(Duration::from_secs(60)),
                connection_idle: Some(Duration::from_secs(60)),
                max_connection_duration: Some(Duration::from_secs(3600)),
            }
        );
        let mut zero = aws_manager();
        zero.stream_idle_timeout = seconds(0);
        zero.common_http_protocol_options = None;
        let zero = converted(&zero).unwrap();
        assert_eq!(
            zero.timeouts,
            Timeouts::default(),
            "zero turns a timeout off"
        );
        assert!(!zero.timeouts.limit_connections() && !zero.drop_underscore_headers);
    }

    #[test]
    fn lua_filters_other_than_switchyards_named_step_are_refused_by_name() {
        let mut other = aws_manager();
        other.http_filters[0].name = "envoy.filters.http.lua".into();
        assert_eq!(
            converted(&other).unwrap_err(),
            Fault::at(
                "http_filters[0]",
                Problem::HttpFilter {
                    name: "envoy.filters.http.lua".into()
                }
            )
        );
        other.http_filters[0].is_optional = true;
        let skipped = converted(&other).expect("an optional filter it lacks is skipped");
        assert!(skipped.filters.is_empty() && !skipped.host_with_listener_port);
        let mut not_lua = aws_manager();
        not_lua.http_filters[0] = filter(HOST_WITH_LISTENER_PORT, any(&Router::default()));
        assert_eq!(
            converted(&not_lua).unwrap_err().problem,
            Problem::HttpFilter {
                name: HOST_WITH_LISTENER_PORT.into()
            },
            "the step is a Lua filter"
        );
    }

    #[test]
    fn rejecting_requests_with_underscores_is_refused() {
        let mut rejecting = aws_manager();
        if let Some(options) = &mut rejecting.common_http_protocol_options {
            options.headers_with_underscores_action =
                HeadersWithUnderscoresAction::RejectRequest as i32;
        }
        assert_eq!(
            converted(&rejecting).unwrap_err(),
            Fault::at(
                "common_http_protocol_options.headers_with_underscores_action",
                Problem::UnderscoreHeadersAction {
                    action: HeadersWithUnderscoresAction::RejectRequest as i32
                }
            )
        );
    }

    #[test]
    fn trusted_hops_are_refused_since_no_client_address_is_taken_from_x_forwarded_for() {
        let mut trusting = aws_manager();
        trusting.xff_num_trusted_hops = 1;
        assert_eq!(
            converted(&trusting).unwrap_err().problem,
            Problem::UnsupportedField {
                field: "xff_num_trusted_hops".into()
            }
        );
    }

    /// The NACK's words, which the management server shows: they name the embedded manager,
    /// then the filter, then what the sidecar runs instead.
    #[test]
    fn a_refusal_inside_the_manager_reads_from_the_listener_down() {
        let mut other = aws_manager();
        other.http_filters[1] = filter(ROUTER, any(&Lua::default()));
        let refused = convert("l", &listener_with(&other)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Listener l: filter_chains[0].filters[0].typed_config (HttpConnectionManager): \
             http_filters[1].typed_config (Router): the type \
             type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua is not the router's"
        );
        other.http_filters[0].name = "envoy.filters.http.lua".into();
        let refused = convert("l", &listener_with(&other)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Listener l: filter_chains[0].filters[0].typed_config (HttpConnectionManager): \
             http_filters[0]: the HTTP filter envoy.filters.http.lua is not supported; the \
             sidecar runs envoy.filters.http.cors, envoy.filters.http.fault, \
             envoy.filters.http.stateful_session, switchyard.sticky_application_cookie, \
             envoy.filters.http.router last and, of Lua filters, only Switchyard's named steps \
             switchyard.host_with_listener_port and switchyard.sticky_application_cookie"
        );
        assert!(convert("l", &listener_with(&aws_manager())).is_ok());
    }
}
