//! The sidecar's xDS client against a scripted ADS server (tests/integration/common/scripted.rs), which
//! sends exactly what a test writes: the sidecar ACKs what it applies, asks for the routes and
//! endpoints its listeners and clusters name, and NACKs a resource it cannot apply — naming the
//! resource and the field — while the previous config keeps serving.

use crate::common::resources::*;
use crate::common::scripted::ScriptedServer;
use crate::common::sidecar::Sidecar;
use crate::common::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    route::Action, route_action::ClusterSpecifier, route_match::PathSpecifier, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use prost::{Message, Name};

/// A route to `good`; with `unsupported`, one that also asks for X-Forwarded-Host appending,
/// which the sidecar does not implement (and Switchyard never emits).
fn routes(unsupported: bool) -> RouteConfiguration {
    RouteConfiguration {
        name: "web-routes".into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster("good".into())),
                    append_x_forwarded_host: unsupported,
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn response<M: Message + Name>(version: &str, nonce: &str, resources: &[M]) -> DiscoveryResponse {
    DiscoveryResponse {
        type_url: M::type_url(),
        version_info: version.into(),
        nonce: nonce.into(),
        resources: resources.iter().map(any).collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resource_it_cannot_apply_is_nacked_by_name_and_field_and_the_old_config_serves() {
    let backend = Backend::start("good").await;
    let mut server = ScriptedServer::start().await;
    let sidecar = Sidecar::start("envoy-bootstrap.yaml", server.address, "sidecar-script").await;
    let listen = free_port();
    let (cds, eds, rds) = (
        Cluster::type_url(),
        ClusterLoadAssignment::type_url(),
        RouteConfiguration::type_url(),
    );

    let first = server.next_request(&cds).await;
    assert!(first.resource_names.is_empty(), "clusters: everything");
    assert_eq!(first.node.as_ref().unwrap().id, "sidecar-script");
    server.send(response("c1", "1", &[cluster("good")]));
    let ack = server.next_request(&cds).await;
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("c1", "1")
    );
    assert!(ack.error_detail.is_none());
    let endpoints = server.next_request(&eds).await;
    assert_eq!(endpoints.resource_names, ["good"]);
    server.send(response("e1", "2", &[assignment("good", backend.port())]));
    server.send(response("l1", "3", &[listener(listen, "web-routes")]));
    let asked = loop {
        let request = server.next_request(&rds).await;
        if !request.resource_names.is_empty() {
            break request;
        }
    };
    assert_eq!(asked.resource_names, ["web-routes"]);
    server.send(response("r1", "4", &[routes(false)]));
    sidecar.wait_ready().await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/"), "good").await;

    // A cluster asking for what the sidecar does not implement (nor Switchyard emit).
    let mut bad = cluster("bad");
    bad.ignore_health_on_host_removal = true;
    server.send(response("c2", "5", &[cluster("good"), bad]));
    let nack = loop {
        let request = server.next_request(&cds).await;
        if request.response_nonce == "5" {
            break request;
        }
    };
    assert_eq!(nack.version_info, "c1", "the version still applied");
    let detail = nack.error_detail.expect("a NACK").message;
    assert_eq!(
        detail,
        "Cluster bad: field `ignore_health_on_host_removal` is not supported by the sidecar"
    );

    // A route configuration asking for what the sidecar lacks.
    server.send(response("r2", "6", &[routes(true)]));
    let nack = loop {
        let request = server.next_request(&rds).await;
        if request.response_nonce == "6" {
            break request;
        }
    };
    assert_eq!(nack.version_info, "r1");
    let detail = nack.error_detail.expect("a NACK").message;
    assert_eq!(
        detail,
        "RouteConfiguration web-routes: field `virtual_hosts[0].routes[0].route.append_x_forwarded_host` is not supported by the sidecar"
    );
    assert_eq!(
        sidecar
            .stat("switchyard_proxy_xds_updates_rejected_total")
            .await,
        2
    );
    for _ in 0..10 {
        assert_eq!(
            get_text(&format!("http://127.0.0.1:{listen}/"))
                .await
                .as_deref(),
            Some("good")
        );
    }
    assert_eq!(sidecar.config_names().await.clusters, ["good"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_routes_or_endpoints_warming_ends_at_the_initial_fetch_timeout() {
    let mut server = ScriptedServer::start().await;
    let sidecar = Sidecar::start("envoy-bootstrap.yaml", server.address, "sidecar-warming").await;
    let listen = free_port();
    server.next_request(&Cluster::type_url()).await;
    server.send(response("c1", "1", &[cluster("never-assigned")]));
    server.send(response("l1", "2", &[listener(listen, "web-routes")]));
    // Both are ACKed; the routes and the endpoints they ask for never come.
    loop {
        let request = server.next_request(&Listener::type_url()).await;
        if request.response_nonce == "2" {
            break;
        }
    }
    let ready = || async {
        http()
            .get(format!("{}/ready", sidecar.admin))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    };
    assert_eq!(ready().await, Some(503), "still warming");
    // After the initial fetch timeout (15 s) the sidecar is ready and the listener answers,
    // with no routes: 404, as from Envoy.
    wait_for("warming to end", || async {
        (ready().await == Some(200)).then_some(())
    })
    .await;
    let status = wait_for("the listener to answer", || async {
        http()
            .get(format!("http://127.0.0.1:{listen}/"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    })
    .await;
    assert_eq!(status, 404);
}
