//! Route table → RouteConfiguration: its virtual hosts and routes in the order the table
//! gives them; weighted splits become weighted clusters.
//!
//! The same table is rendered for two audiences. Envoy gets the service's timeout as route
//! timeout, the services' custom headers, GET retries, and hosts matched without their port.
//! Proxyless gRPC clients match the virtual host against the exact target they dial (`host`
//! or `host:port`), so their domains list both forms for each port they reach the table on,
//! and they get the hash policies gRPC implements. Both get the services' maximum stream
//! duration as the deadline of the whole stream.

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue as XdsHeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route::Action, route_action::ClusterSpecifier,
    route_action::HashPolicy, route_action::HostRewriteSpecifier, route_action::MaxStreamDuration,
    route_match::PathSpecifier, weighted_cluster::ClusterWeight, HeaderMatcher, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use crate::model::{
    CustomHeaders, HeaderAction, HeaderMatch, HeaderMatchKind, HeaderToAdd, MatchRule, Model,
    PathMatch, Ref, RouteExtras, RouteTable, RouteTarget, Service, WeightedService,
};

use super::affinity::{
    proxyless_hash_policies, route_hash_policies, session_cookie, stateful_session_for_route,
    sticky_cookie, STATEFUL_SESSION,
};
use super::application_cookie::{
    application_cookie_for_route, application_session, APPLICATION_COOKIE_FILTER,
};
use super::custom_headers::header_options;
use super::duration;
use super::route_parts::{
    cookie_matcher, exact, fixed_response_route, header_matcher, prefix, query_parameter_matcher,
    redirect_action, regex, route, set_cookie,
};

/// Sets the four header lists of an xDS message (route configuration, virtual host, route,
/// weighted cluster) from a headerAction.
macro_rules! set_headers {
    ($message:expr, $action:expr) => {{
        let action: &HeaderAction = $action;
        $message.request_headers_to_add = headers_to_add(&action.request_headers_to_add);
        $message.request_headers_to_remove = action.request_headers_to_remove.clone();
        $message.response_headers_to_add = headers_to_add(&action.response_headers_to_add);
        $message.response_headers_to_remove = action.response_headers_to_remove.clone();
    }};
}

/// Appends the custom headers of a service (when the audience adds them) to a route or a
/// weighted cluster.
macro_rules! add_custom_headers {
    ($builder:expr, $message:expr, $service:expr) => {{
        if let Some(headers) = $builder.custom_headers_of($service) {
            $message
                .request_headers_to_add
                .extend(header_options(&headers.request));
            $message
                .response_headers_to_add
                .extend(header_options(&headers.response));
        }
    }};
}

/// Who a route configuration is rendered for.
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    Envoy,
    /// Proxyless gRPC clients reaching the table through frontends on these ports.
    Proxyless {
        ports: &'a [u16],
    },
}

/// Every route table, for Envoy.
pub fn route_configurations_for(model: &Model) -> Vec<RouteConfiguration> {
    model
        .route_tables
        .values()
        .map(|table| route_configuration_for(model, table, Audience::Envoy))
        .collect()
}

pub fn route_configuration_for(
    model: &Model,
    table: &RouteTable,
    audience: Audience<'_>,
) -> RouteConfiguration {
    let routing = Routing { model, audience };
    let virtual_hosts = table
        .virtual_hosts
        .iter()
        .map(|host| {
            let routes = host
                .routes
                .iter()
                .flat_map(|route| {
                    routing.routes(route_match(&route.matches), &route.target, &route.extras)
                })
                .collect();
            let mut virtual_host = routing.virtual_host(host.name.clone(), &host.domains, routes);
            set_headers!(virtual_host, &host.header_action);
            virtual_host
        })
        .collect();
    let mut configuration = RouteConfiguration {
        name: table.name.clone(),
        virtual_hosts,
        ..Default::default()
    };
    set_headers!(configuration, &table.header_action);
    if let Audience::Envoy = audience {
        // X-Forwarded-For and the TLS headers, as the table's frontend settings say.
        super::frontend::apply_to_routes(&table.frontend, &mut configuration);
    }
    configuration
}

/// A service's timeout, the route timeout when the route does not set one.
fn service_timeout(service: &Service) -> std::time::Duration {
    service.timeout
}

/// A route's match: its path, case, headers (with the client's address, when the route
/// matches on it, as the header the connection manager writes it into) and query.
fn route_match(matched: &MatchRule) -> RouteMatch {
    let mut route_match = match &matched.path {
        PathMatch::Prefix(p) => prefix(p),
        PathMatch::Full(p) => exact(p),
        PathMatch::Template(template) => RouteMatch {
            path_specifier: Some(PathSpecifier::PathMatchPolicy(
                super::route_policies::uri_template_match(template),
            )),
            ..Default::default()
        },
        PathMatch::Regex(pattern) => RouteMatch {
            path_specifier: Some(PathSpecifier::SafeRegex(regex(pattern))),
            ..Default::default()
        },
    };
    if matched.ignore_case {
        route_match.case_sensitive = Some(BoolValue { value: false });
    }
    route_match.headers = matched.headers.iter().map(header_matcher).collect();
    if !matched.source_blocks.is_empty() {
        route_match.headers.push(header_matcher(&HeaderMatch {
            header_name: super::source_address::SOURCE_ADDRESS_HEADER.to_string(),
            kind: HeaderMatchKind::Regex(super::source_address::source_blocks_regex(
                &matched.source_blocks,
            )),
            invert_match: false,
        }));
    }
    route_match.query_parameters = matched
        .query_parameters
        .iter()
        .map(query_parameter_matcher)
        .collect();
    route_match
}

/// headerAction additions as Envoy's: `replace` overwrites, otherwise one more value is
/// appended; `%` is escaped, since Envoy reads `%…%` as a substitution.
fn headers_to_add(headers: &[HeaderToAdd]) -> Vec<HeaderValueOption> {
    headers
        .iter()
        .map(|header| HeaderValueOption {
            header: Some(XdsHeaderValue {
                key: header.header_name.clone(),
                value: header.header_value.replace('%', "%%"),
                ..Default::default()
            }),
            append_action: if header.replace {
                HeaderAppendAction::OverwriteIfExistsOrAdd
            } else {
                HeaderAppendAction::AppendIfExistsOrAdd
            } as i32,
            ..Default::default()
        })
        .collect()
}

/// Names a proxyless client may dial to reach `hosts` through frontends on `ports`:
/// `host:port` as written, or a port-less host alone and with each port.
pub fn proxyless_authorities(hosts: &[String], ports: &[u16]) -> Vec<String> {
    let mut names = Vec::new();
    for host in hosts {
        if host == "*" || has_port(host) {
            names.push(host.clone());
        } else {
            names.push(host.clone());
            names.extend(ports.iter().map(|port| format!("{host}:{port}")));
        }
    }
    names
}

fn has_port(host: &str) -> bool {
    host.rsplit_once(':').is_some_and(|(name, port)| {
        !name.is_empty() && !name.ends_with(':') && port.parse::<u16>().is_ok()
    })
}

/// How many times a GET is retried.
pub const GET_RETRIES: u32 = 2;

/// As the cloud's proxies do: a GET is retried (at most twice) when the backend refuses or
/// resets the connection before answering; other methods are never retried.
pub fn get_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,reset,refused-stream".to_string(),
        num_retries: Some(UInt32Value { value: GET_RETRIES }),
        retriable_request_headers: vec![HeaderMatcher {
            name: ":method".to_string(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact("GET".to_string())),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A URL map being rendered for one audience.
struct Routing<'m> {
    model: &'m Model,
    audience: Audience<'m>,
}

impl Routing<'_> {
    fn virtual_host(&self, name: String, hosts: &[String], routes: Vec<Route>) -> VirtualHost {
        match self.audience {
            Audience::Envoy => VirtualHost {
                name,
                domains: hosts.to_vec(),
                routes,
                retry_policy: Some(get_retry_policy()),
                ..Default::default()
            },
            Audience::Proxyless { ports } => VirtualHost {
                name,
                domains: proxyless_authorities(hosts, ports),
                routes,
                ..Default::default()
            },
        }
    }

    fn service(&self, reference: &Ref) -> Option<&Service> {
        self.model.services.get(&reference.name)
    }

    fn hash_policies_of(&self, service: &Ref) -> Vec<HashPolicy> {
        let Some(service) = self.service(service) else {
            return Vec::new();
        };
        match self.audience {
            Audience::Envoy => route_hash_policies(service),
            Audience::Proxyless { .. } => proxyless_hash_policies(service),
        }
    }

    /// The deadline of a request to `services`: for Envoy the whole-response timeout
    /// (`route_timeout`, else the longest timeoutSec), for gRPC the longest maxStreamDuration.
    fn limit(
        &self,
        services: &[&Ref],
        route_timeout: Option<std::time::Duration>,
        action: &mut RouteAction,
    ) {
        let found: Vec<&Service> = services.iter().filter_map(|s| self.service(s)).collect();
        if let Audience::Envoy = self.audience {
            let timeout = route_timeout
                .or_else(|| found.iter().map(|s| service_timeout(s)).max())
                .unwrap_or(std::time::Duration::from_secs(30));
            action.timeout = Some(duration(timeout));
        }
        // Both audiences bound the whole stream by maxStreamDuration (Envoy as well as its
        // timeout, which is the whole-response bound).
        if let Some(longest) = found.iter().filter_map(|s| s.max_stream_duration).max() {
            action.max_stream_duration = Some(MaxStreamDuration {
                max_stream_duration: Some(duration(longest)),
                ..Default::default()
            });
        }
    }

    /// The custom headers of `service`, for Envoy only: proxyless gRPC clients add no
    /// headers.
    fn custom_headers_of(&self, service: &Ref) -> Option<&CustomHeaders> {
        match (self.audience, self.service(service)) {
            (Audience::Envoy, Some(service)) => Some(&service.custom_headers),
            _ => None,
        }
    }

    /// The routes of one match: one route, except for a weighted split whose services are
    /// sticky, which first gets a route per service for clients carrying its cookie.
    fn routes(
        &self,
        route_match: RouteMatch,
        target: &RouteTarget,
        extras: &RouteExtras,
    ) -> Vec<Route> {
        let RouteTarget::Weighted {
            services,
            sticky_cookie: Some(cookie),
        } = target
        else {
            return vec![self.route(route_match, target, extras)];
        };
        let mut routes: Vec<Route> = services
            .iter()
            .filter(|s| s.weight > 0)
            .map(|service| {
                let mut sticky_match = route_match.clone();
                sticky_match
                    .headers
                    .push(cookie_matcher(&cookie.name, &service.service.name));
                let mut route = self.route(
                    sticky_match,
                    &RouteTarget::Service(service.service.clone()),
                    extras,
                );
                let mut service_headers = service.header_action.clone();
                service_headers
                    .response_headers_to_add
                    .push(set_cookie(cookie, &service.service.name));
                route
                    .response_headers_to_add
                    .extend(headers_to_add(&service_headers.response_headers_to_add));
                route
            })
            .collect();
        let mut split = services.to_vec();
        for service in &mut split {
            let value = set_cookie(cookie, &service.service.name);
            service.header_action.response_headers_to_add.push(value);
        }
        let unsticky = RouteTarget::Weighted {
            services: split,
            sticky_cookie: None,
        };
        routes.push(self.route(route_match, &unsticky, extras));
        routes
    }

    /// A route; routes to a service with a sticky cookie (and, for proxyless clients, to a
    /// cookie-affinity service) switch the stateful-session filter on with that cookie, and,
    /// for Envoy, a sticky cookie that follows the application's turns its Lua step on.
    fn route(&self, route_match: RouteMatch, target: &RouteTarget, extras: &RouteExtras) -> Route {
        let mut route = match target {
            RouteTarget::Redirect(redirect) => Route {
                r#match: Some(route_match),
                action: Some(Action::Redirect(redirect_action(redirect))),
                ..Default::default()
            },
            RouteTarget::FixedResponse(fixed) => fixed_response_route(route_match, fixed),
            _ => route(route_match, self.action_for(target, extras)),
        };
        set_headers!(route, &extras.header_action);
        if let RouteTarget::FixedResponse(fixed) = target {
            if let Some(content_type) = &fixed.content_type {
                route
                    .response_headers_to_add
                    .extend(headers_to_add(&[HeaderToAdd {
                        header_name: "content-type".into(),
                        header_value: content_type.clone(),
                        replace: true,
                    }]));
            }
        }
        super::route_policies::apply(extras, &mut route);
        if let RouteTarget::Service(service) = target {
            add_custom_headers!(self, route, service);
            let cookie = match self.audience {
                Audience::Proxyless { .. } => self.service(service).and_then(session_cookie),
                Audience::Envoy => self.service(service).and_then(sticky_cookie),
            };
            if let Some(cookie) = cookie {
                route.typed_per_filter_config.insert(
                    STATEFUL_SESSION.to_string(),
                    stateful_session_for_route(cookie),
                );
            }
            let application = match self.audience {
                Audience::Envoy => self.service(service).and_then(application_session),
                Audience::Proxyless { .. } => None,
            };
            if let Some((application, issued)) = application {
                route.typed_per_filter_config.insert(
                    APPLICATION_COOKIE_FILTER.to_string(),
                    application_cookie_for_route(application, issued),
                );
            }
        }
        route
    }

    fn action_to_service(&self, service: &Ref, extras: &RouteExtras) -> RouteAction {
        let mut action = RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(service.name.clone())),
            hash_policy: self.hash_policies_of(service),
            ..Default::default()
        };
        self.limit(&[service], extras.timeout, &mut action);
        action
    }

    /// The forwarding action of a service or weighted target, with the rule's rewrite and
    /// retry policy.
    fn action_for(&self, target: &RouteTarget, extras: &RouteExtras) -> RouteAction {
        let mut action = match target {
            RouteTarget::Weighted { services, .. } => self.action_to_split(services, extras),
            RouteTarget::Service(service) => self.action_to_service(service, extras),
            RouteTarget::Redirect(_) | RouteTarget::FixedResponse(_) => RouteAction::default(),
        };
        if let Some(rewrite) = &extras.url_rewrite {
            if let Some(prefix) = &rewrite.path_prefix_rewrite {
                action.prefix_rewrite = prefix.clone();
            }
            if let Some(template) = &rewrite.path_template_rewrite {
                action.path_rewrite_policy =
                    Some(super::route_policies::uri_template_rewrite(template));
            }
            if let Some(host) = &rewrite.host_rewrite {
                action.host_rewrite_specifier =
                    Some(HostRewriteSpecifier::HostRewriteLiteral(host.clone()));
            }
        }
        if let Some(policy) = &extras.retry_policy {
            action.retry_policy = Some(RetryPolicy {
                retry_on: policy.retry_conditions.join(","),
                num_retries: Some(UInt32Value {
                    value: policy.num_retries,
                }),
                per_try_timeout: policy.per_try_timeout.map(duration),
                ..Default::default()
            });
        }
        action
    }

    fn action_to_split(&self, services: &[WeightedService], extras: &RouteExtras) -> RouteAction {
        let clusters = services
            .iter()
            .filter(|s| s.weight > 0)
            .map(|s| {
                let mut cluster = ClusterWeight {
                    name: s.service.name.clone(),
                    weight: Some(UInt32Value { value: s.weight }),
                    ..Default::default()
                };
                set_headers!(cluster, &s.header_action);
                add_custom_headers!(self, cluster, &s.service);
                cluster
            })
            .collect();
        // The split is drawn per request, so it wins over affinity; affinity still holds
        // inside the chosen service when every service of the split hashes alike.
        let policies: Vec<Vec<HashPolicy>> = services
            .iter()
            .map(|s| self.hash_policies_of(&s.service))
            .collect();
        let shared = policies.windows(2).all(|pair| pair[0] == pair[1]);
        let mut action = RouteAction {
            cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters,
                ..Default::default()
            })),
            hash_policy: if shared {
                policies.into_iter().next().unwrap_or_default()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        // A weighted split is one route, so it has one deadline.
        let refs: Vec<&Ref> = services.iter().map(|s| &s.service).collect();
        self.limit(&refs, extras.timeout, &mut action);
        action
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::route::v3::{
        route::Action, route_action::ClusterSpecifier,
    };

    use super::*;

    /// A split between `blue`, which adds a custom request header, and `green`, which adds
    /// none.
    const SPLIT: &str = r#"
networkEndpointGroups:
- name: web
  zone: us-central1-a
  networkEndpointType: NON_GCP_PRIVATE_IP_PORT
  endpoints: [{ipAddress: 10.0.0.1, port: 80}]
backendServices:
- name: blue
  loadBalancingScheme: INTERNAL_SELF_MANAGED
  backends: [{group: web, balancingMode: RATE, maxRatePerEndpoint: 100}]
  customRequestHeaders: ["x-served-by: blue"]
- name: green
  loadBalancingScheme: INTERNAL_SELF_MANAGED
  backends: [{group: web, balancingMode: RATE, maxRatePerEndpoint: 100}]
urlMaps:
- name: split
  defaultRouteAction:
    weightedBackendServices:
    - {backendService: blue, weight: 50}
    - {backendService: green, weight: 50}
"#;

    /// The request headers each cluster of the split's default route adds, by cluster.
    fn split_headers(audience: Audience<'_>) -> Vec<(String, Vec<String>)> {
        let loaded = crate::config::load_str(SPLIT, "split.yaml");
        let model = loaded.accepted().expect("the split is valid");
        let table = model.route_tables.values().next().unwrap();
        let configuration = route_configuration_for(model, table, audience);
        let route = &configuration.virtual_hosts[0].routes[0];
        let Some(Action::Route(action)) = &route.action else {
            panic!("not a route: {route:?}");
        };
        let Some(ClusterSpecifier::WeightedClusters(split)) = &action.cluster_specifier else {
            panic!("not a split: {action:?}");
        };
        split
            .clusters
            .iter()
            .map(|cluster| {
                let headers = cluster.request_headers_to_add.iter();
                let added = headers.filter_map(|option| option.header.as_ref());
                (cluster.name.clone(), added.map(|h| h.key.clone()).collect())
            })
            .collect()
    }

    #[test]
    fn each_service_of_a_split_adds_its_own_custom_headers_for_envoy_only() {
        let blue_adds = vec!["x-served-by".to_string()];
        assert_eq!(
            split_headers(Audience::Envoy),
            [
                ("blue".to_string(), blue_adds),
                ("green".to_string(), vec![])
            ]
        );
        let proxyless = split_headers(Audience::Proxyless { ports: &[80] });
        assert!(
            proxyless.iter().all(|(_, added)| added.is_empty()),
            "{proxyless:?}"
        );
    }

    #[test]
    fn proxyless_authorities_follow_the_hosts_and_ports() {
        let hosts = vec!["who.example".to_string(), "api.example:8443".to_string()];
        assert_eq!(
            proxyless_authorities(&hosts, &[8080]),
            vec!["who.example", "who.example:8080", "api.example:8443"]
        );
        assert!(has_port("a:1") && !has_port("a") && !has_port("::1"));
    }
}
