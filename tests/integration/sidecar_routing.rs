//! What routes do besides choosing a cluster, through Envoy and the sidecar side by side:
//! one static ADS server's exact RouteConfiguration (redirects of every kind, prefix and host
//! rewrites, request and response header edits at every level with each append action,
//! weighted-cluster header edits, direct responses) is served to a real Envoy and to the
//! sidecar, and a table of requests must get the same answer through both — status, body,
//! every response header, and what the backend saw (method, path, every header), compared
//! as the differential table compares them (differential/exchange.rs). And which retry
//! conditions retry a connect failure: the same ones through both.

use std::collections::BTreeMap;

use crate::common::echo::EchoBackend;
use crate::common::resources::*;
use crate::common::scripted::StaticServer;
use crate::common::sidecar::Sidecar;
use crate::common::*;
use crate::differential::exchange::{self, Request};
use envoy_types::pb::envoy::config::core::v3::{
    data_source::Specifier, header_value_option::HeaderAppendAction, DataSource, HeaderValue,
    HeaderValueOption,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route::Action,
    route_action::{ClusterSpecifier, HostRewriteSpecifier},
    route_match::PathSpecifier,
    weighted_cluster::ClusterWeight,
    DirectResponseAction, RedirectAction, RetryPolicy, Route, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::google::protobuf::UInt32Value;

fn add(name: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

fn append(name: &str, value: &str) -> HeaderValueOption {
    add(name, value, HeaderAppendAction::AppendIfExistsOrAdd)
}

fn overwrite(name: &str, value: &str) -> HeaderValueOption {
    add(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd)
}

fn matching(path: PathSpecifier) -> Option<RouteMatch> {
    Some(RouteMatch {
        path_specifier: Some(path),
        ..Default::default()
    })
}

fn prefix(text: &str) -> Option<RouteMatch> {
    matching(PathSpecifier::Prefix(text.into()))
}

fn forward(cluster: &str) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    }
}

fn route(matcher: Option<RouteMatch>, action: Action) -> Route {
    Route {
        r#match: matcher,
        action: Some(action),
        ..Default::default()
    }
}

fn redirect(matcher: &str, redirect: RedirectAction) -> Route {
    route(prefix(matcher), Action::Redirect(redirect))
}

/// The routes under test (see the module comment); cluster `echo` answers with what it got.
fn routes() -> RouteConfiguration {
    let rewrite = Route {
        request_headers_to_add: vec![
            append("x-route", "added"),
            add("x-mode-absent", "route", HeaderAppendAction::AddIfAbsent),
            overwrite("x-mode-overwrite", "route"),
            add(
                "x-mode-if-exists",
                "route",
                HeaderAppendAction::OverwriteIfExists,
            ),
            overwrite("x-level", "route"),
        ],
        request_headers_to_remove: vec!["x-secret".into()],
        response_headers_to_add: vec![append("x-route-response", "yes")],
        ..route(
            prefix("/rewrite/"),
            Action::Route(RouteAction {
                prefix_rewrite: "/new/".into(),
                host_rewrite_specifier: Some(HostRewriteSpecifier::HostRewriteLiteral(
                    "internal.example".into(),
                )),
                ..forward("echo")
            }),
        )
    };
    let weighted = route(
        prefix("/weighted"),
        Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: vec![ClusterWeight {
                    name: "echo".into(),
                    weight: Some(UInt32Value { value: 100 }),
                    request_headers_to_add: vec![overwrite("x-cluster", "echo")],
                    response_headers_to_add: vec![append("x-cluster-response", "echo")],
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        }),
    );
    let direct = Route {
        response_headers_to_add: vec![append("x-route-response", "direct")],
        ..route(
            prefix("/direct"),
            Action::DirectResponse(DirectResponseAction {
                status: 418,
                body: Some(DataSource {
                    specifier: Some(Specifier::InlineString("teapot\n".into())),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )
    };
    let forwarding = VirtualHost {
        name: "forwarding".into(),
        domains: vec!["*".into()],
        request_headers_to_add: vec![append("x-vhost", "1"), overwrite("x-level", "vhost")],
        routes: vec![
            rewrite,
            route(
                matching(PathSpecifier::Path("/exact".into())),
                Action::Route(RouteAction {
                    prefix_rewrite: "/replaced".into(),
                    ..forward("echo")
                }),
            ),
            route(
                matching(PathSpecifier::PathSeparatedPrefix("/sep".into())),
                Action::Route(RouteAction {
                    prefix_rewrite: "/s2".into(),
                    ..forward("echo")
                }),
            ),
            weighted,
            direct,
            route(prefix("/"), Action::Route(forward("echo"))),
        ],
        ..Default::default()
    };
    let redirects = VirtualHost {
        name: "redirects".into(),
        domains: vec![
            "old.example".into(),
            "old.example:80".into(),
            "old.example:8080".into(),
        ],
        routes: vec![
            redirect(
                "/https",
                RedirectAction {
                    scheme_rewrite_specifier: Some(SchemeRewriteSpecifier::HttpsRedirect(true)),
                    ..Default::default()
                },
            ),
            redirect(
                "/moved",
                RedirectAction {
                    host_redirect: "new.example".into(),
                    port_redirect: 8443,
                    path_rewrite_specifier: Some(PathRewriteSpecifier::PrefixRewrite("/v2".into())),
                    response_code: RedirectResponseCode::Found as i32,
                    strip_query: true,
                    ..Default::default()
                },
            ),
            redirect(
                "/path",
                RedirectAction {
                    path_rewrite_specifier: Some(PathRewriteSpecifier::PathRedirect(
                        "/landing?from=old".into(),
                    )),
                    response_code: RedirectResponseCode::SeeOther as i32,
                    strip_query: true,
                    ..Default::default()
                },
            ),
            redirect(
                "/keep",
                RedirectAction {
                    path_rewrite_specifier: Some(PathRewriteSpecifier::PathRedirect(
                        "/kept".into(),
                    )),
                    response_code: RedirectResponseCode::TemporaryRedirect as i32,
                    ..Default::default()
                },
            ),
            redirect(
                "/scheme",
                RedirectAction {
                    scheme_rewrite_specifier: Some(SchemeRewriteSpecifier::SchemeRedirect(
                        "https".into(),
                    )),
                    port_redirect: 9443,
                    response_code: RedirectResponseCode::PermanentRedirect as i32,
                    ..Default::default()
                },
            ),
            redirect(
                "/",
                RedirectAction {
                    host_redirect: "www.example".into(),
                    ..Default::default()
                },
            ),
        ],
        ..Default::default()
    };
    RouteConfiguration {
        name: "routes".into(),
        virtual_hosts: vec![forwarding, redirects],
        request_headers_to_add: vec![overwrite("x-level", "table")],
        response_headers_to_add: vec![append("x-served-by", "table")],
        response_headers_to_remove: vec!["x-drop-me".into()],
        ..Default::default()
    }
}

/// One GET of the table: host, path with query, headers.
fn get(host: &str, target: &str, headers: &[(&'static str, &'static str)]) -> Request {
    Request {
        method: "GET",
        host: host.to_string(),
        target: target.to_string(),
        headers: headers.to_vec(),
        body: None,
    }
}

fn requests() -> Vec<Request> {
    let plain = |host, path| get(host, path, &[]);
    vec![
        plain("app.example", "/"),
        plain("app.example", "/rewrite/a/b?q=1"),
        get(
            "app.example",
            "/rewrite/x",
            &[
                ("x-secret", "s"),
                ("x-route", "client"),
                ("x-mode-absent", "client"),
                ("x-mode-overwrite", "client"),
                ("x-mode-if-exists", "client"),
                ("x-level", "client"),
                ("x-vhost", "client"),
            ],
        ),
        plain("app.example", "/exact"),
        plain("app.example", "/exact?z=9"),
        plain("app.example", "/exact/not"),
        plain("app.example", "/sep"),
        plain("app.example", "/sep/deeper?x"),
        plain("app.example", "/separate"),
        plain("app.example", "/weighted/1"),
        plain("app.example", "/direct"),
        plain("old.example", "/https/a?b=c"),
        plain("old.example:80", "/https/a"),
        plain("old.example:8080", "/https/a"),
        plain("old.example", "/moved/item?x=1"),
        plain("old.example:8080", "/moved"),
        plain("old.example", "/path/a?drop=1"),
        plain("old.example", "/keep/a?kept=1"),
        plain("old.example:8080", "/scheme/x?y"),
        plain("old.example", "/anything?q"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn route_actions_answer_the_same_through_envoy_and_the_sidecar() {
    let echo = EchoBackend::start().await;
    let (envoy_port, sidecar_port) = (free_port(), free_port());
    let resources = |port: u16| {
        vec![
            any(&listener(port, "routes")),
            any(&routes()),
            any(&cluster("echo")),
            any(&assignment("echo", echo.port())),
        ]
    };
    let for_envoy = StaticServer::start(resources(envoy_port)).await;
    let for_sidecar = StaticServer::start(resources(sidecar_port)).await;
    let _envoy = Envoy::start(for_envoy.address, "envoy-routing").await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        for_sidecar.address,
        "sidecar-routing",
    )
    .await;
    sidecar.wait_ready().await;
    for port in [envoy_port, sidecar_port] {
        // The direct-response route answers 418 once the routes have arrived.
        wait_for(&format!("routes on port {port}"), || async move {
            let response = http()
                .get(format!("http://127.0.0.1:{port}/direct"))
                .send()
                .await
                .ok()?;
            (response.status() == 418).then_some(())
        })
        .await;
    }
    assert!(
        for_envoy.rejections().is_empty(),
        "Envoy NACKed: {:?}",
        for_envoy.rejections()
    );
    assert!(
        for_sidecar.rejections().is_empty(),
        "the sidecar NACKed: {:?}",
        for_sidecar.rejections()
    );

    let client = exchange::client();
    let mut through_sidecar = BTreeMap::new();
    let mut failures = Vec::new();
    for request in requests() {
        let by_envoy = exchange::exchange(&client, envoy_port, &request).await;
        let by_sidecar = exchange::exchange(&client, sidecar_port, &request).await;
        let differences = exchange::differences(("Envoy", &by_envoy), ("sidecar", &by_sidecar));
        if !differences.is_empty() {
            failures.push(format!("{request}:\n  {}", differences.join("\n  ")));
        }
        through_sidecar.insert(format!("{} {}", request.host, request.target), by_sidecar);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The features are really at work (both proxies ignoring them would agree too).
    let seen = |key: &str| through_sidecar[key].clone();
    let rewritten = seen("app.example /rewrite/a/b?q=1");
    for expected in [
        "path /new/a/b?q=1",
        "saw host: internal.example",
        "saw x-envoy-original-path: /rewrite/a/b?q=1",
        "saw x-envoy-original-host: app.example",
        "saw x-level: table",
        "response x-route-response: yes",
        "response x-served-by: table",
    ] {
        assert!(rewritten.has(expected), "{expected} in\n{rewritten}");
    }
    assert!(
        !rewritten.0.iter().any(|line| line.contains("x-drop-me")),
        "{rewritten}"
    );
    let moved = seen("old.example /moved/item?x=1");
    assert!(moved.has("status 302"), "{moved}");
    assert!(
        moved.has("response location: http://new.example:8443/v2/item"),
        "{moved}"
    );
    assert!(seen("app.example /direct").has("status 418"));
}

/// Routes that retry under one condition each, to a cluster of two endpoints of which one
/// refuses connections.
fn retrying_routes() -> RouteConfiguration {
    let retrying = |path: &str, retry_on: &str| {
        route(
            prefix(path),
            Action::Route(RouteAction {
                retry_policy: Some(RetryPolicy {
                    retry_on: retry_on.into(),
                    num_retries: Some(UInt32Value { value: 3 }),
                    ..Default::default()
                }),
                ..forward("half-dead")
            }),
        )
    };
    RouteConfiguration {
        name: "retries".into(),
        virtual_hosts: vec![VirtualHost {
            name: "retries".into(),
            domains: vec!["*".into()],
            routes: RETRY_CONDITIONS
                .iter()
                .map(|(condition, _)| retrying(&format!("/{condition}"), condition))
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Each retry condition, and whether Envoy retries a connect failure under it
/// (router/retry_state_impl: `reset`, `5xx` and `gateway-error` retry any reset;
/// `connect-failure` and `reset-before-request` a connection that never came up;
/// `refused-stream` and the answer conditions never).
const RETRY_CONDITIONS: [(&str, bool); 7] = [
    ("retriable-4xx", false),
    ("refused-stream", false),
    ("retriable-status-codes", false),
    ("connect-failure", true),
    ("reset-before-request", true),
    ("5xx", true),
    ("gateway-error", true),
];

/// REQUESTS_PER_CONDITION GETs of `/{condition}` on `port`: how many failed (503).
async fn failures_under(port: u16, condition: &str) -> usize {
    let client = exchange::client();
    let mut failed = 0;
    for _ in 0..REQUESTS_PER_CONDITION {
        let response = client
            .get(format!("http://127.0.0.1:{port}/{condition}"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => {}
            503 => failed += 1,
            other => panic!("/{condition} on port {port} answered {other}"),
        }
    }
    failed
}

/// Round robin over a live and a dead endpoint sends every other first attempt to the dead
/// one: without a retry about half of the requests fail (a fifth is far below what round
/// robin, or even a fair coin over 40 requests, gives), with one none does.
const REQUESTS_PER_CONDITION: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connect_failure_is_retried_only_under_the_conditions_envoy_retries_it() {
    let echo = EchoBackend::start().await;
    let dead = free_port();
    let (envoy_port, sidecar_port) = (free_port(), free_port());
    let mut endpoints = assignment("half-dead", echo.port());
    let live = endpoints.endpoints[0].lb_endpoints[0].clone();
    let mut refusing = live.clone();
    if let Some(HostIdentifier::Endpoint(endpoint)) = &mut refusing.host_identifier {
        endpoint.address = Some(socket(dead));
    }
    endpoints.endpoints[0].lb_endpoints = vec![live, refusing];
    let resources = |port: u16| {
        vec![
            any(&listener(port, "retries")),
            any(&retrying_routes()),
            any(&cluster("half-dead")),
            any(&endpoints),
        ]
    };
    let for_envoy = StaticServer::start(resources(envoy_port)).await;
    let for_sidecar = StaticServer::start(resources(sidecar_port)).await;
    let _envoy = Envoy::start(for_envoy.address, "envoy-retries").await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        for_sidecar.address,
        "sidecar-retries",
    )
    .await;
    sidecar.wait_ready().await;
    for port in [envoy_port, sidecar_port] {
        wait_for(&format!("routes on port {port}"), || async move {
            let response = http()
                .get(format!("http://127.0.0.1:{port}/5xx"))
                .send()
                .await
                .ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
    }
    assert!(
        for_sidecar.rejections().is_empty(),
        "{:?}",
        for_sidecar.rejections()
    );

    let mut problems = Vec::new();
    for (condition, retried) in RETRY_CONDITIONS {
        for (who, port) in [("Envoy", envoy_port), ("sidecar", sidecar_port)] {
            let failed = failures_under(port, condition).await;
            let as_expected = if retried {
                failed == 0
            } else {
                failed >= REQUESTS_PER_CONDITION / 5
            };
            if !as_expected {
                problems.push(format!(
                    "{who}, retry_on {condition}: {failed} of {REQUESTS_PER_CONDITION} failed \
                     (a connect failure is {}retried under it)",
                    if retried { "" } else { "not " }
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
