//! Node authorization on the mTLS xDS port (examples/authorized.yaml): two Envoys with
//! different certificate identities each hold only their own listeners, routes and clusters
//! (read from Envoy's own config dump) and carry traffic through them; a raw client receives
//! only what its rule allows over SotW, delta and the per-type services alike; a client
//! claiming another node id, or whose identity no rule admits, is refused with
//! PERMISSION_DENIED and counted; a policy edit applies to connected clients: a widened
//! grant arrives, a narrowed one arrives as removals (SotW, delta, and a connected Envoy that
//! stays on its stream), a revoked one closes SotW and delta streams and keeps an Envoy out;
//! grpcio calls the proxyless service its identity is granted.

use std::net::SocketAddr;

use crate::common;
use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::pki::{tls_channel, Pki};
use crate::common::xds::*;
use crate::common::*;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

fn example() -> String {
    std::fs::read_to_string(repo_root().join("examples/authorized.yaml")).unwrap()
}

/// The PKI of these tests: the shop's and billing's Envoys, and the `raw` client whose DNS
/// identity no rule admits.
fn pki() -> Pki {
    let pki = Pki::new();
    pki.ca
        .issue("shop", &[], &["spiffe://switchyard.test/shop/edge"]);
    pki.ca
        .issue("billing", &[], &["spiffe://switchyard.test/billing/edge"]);
    pki
}

async fn start(pki: &Pki, config: &str) -> Switchyard {
    let files = pki.files();
    Switchyard::start_with(config, move |options| options.tls = Some(files)).await
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn refusals_of(switchyard: &Switchyard, reason: &str) -> f64 {
    let text = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    let prefix = format!("switchyard_xds_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

async fn envoy_as(pki: &Pki, xds: SocketAddr, certificate: &str, node_id: &str) -> Envoy {
    let dir = pki.envoy_dir(certificate);
    Envoy::start_replacing(
        "envoy-bootstrap-mtls.yaml",
        &[xds],
        node_id,
        "us-central1",
        "us-central1-a",
        &[("/etc/switchyard/xds-tls", dir.to_str().unwrap())],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_envoys_hold_only_their_grants_as_they_widen_narrow_and_are_revoked() {
    let pki = pki();
    let shop_web = Backend::start("shop-web").await;
    let payments = Backend::start("payments").await;
    let billing_api = Backend::start("billing-api").await;
    let (shop_port, billing_port) = (free_port(), free_port());
    let config = example()
        .replace("port: 8081", &format!("port: {}", shop_web.port()))
        .replace("port: 8082", &format!("port: {}", payments.port()))
        .replace("port: 8083", &format!("port: {}", billing_api.port()))
        .replace("\"10000\"", &format!("\"{shop_port}\""))
        .replace("\"10001\"", &format!("\"{billing_port}\""));
    let switchyard = start(&pki, &config).await;
    let xds = switchyard.running.xds_addr;

    let shop = envoy_as(&pki, xds, "shop", "shop-1").await;
    let billing = envoy_as(&pki, xds, "billing", "billing-1").await;
    switchyard.wait_for_acks("shop-1").await;
    switchyard.wait_for_acks("billing-1").await;

    let shop_holds = ConfigNames {
        listeners: strings(&["shop-http"]),
        routes: strings(&["shop-map"]),
        clusters: strings(&["payments", "shop-web"]),
    };
    let billing_holds = ConfigNames {
        listeners: strings(&["billing-http"]),
        routes: strings(&["billing-map"]),
        clusters: strings(&["billing-api", "reports"]),
    };
    for (envoy, expected) in [(&shop, &shop_holds), (&billing, &billing_holds)] {
        wait_for(&format!("{} to hold its grant", envoy.node_id), || async {
            (envoy.config_names().await == *expected).then_some(())
        })
        .await;
    }
    let shop_url = format!("http://127.0.0.1:{shop_port}");
    wait_for_body(&format!("{shop_url}/"), "shop-web").await;
    wait_for_body(&format!("{shop_url}/checkout/pay"), "payments").await;
    wait_for_body(&format!("http://127.0.0.1:{billing_port}/"), "billing-api").await;

    let entry = switchyard.client("shop-1").await.unwrap();
    assert_eq!(entry["identity"], "spiffe://switchyard.test/shop/edge");
    assert_eq!(entry["access_rule"], "shop");

    // Widening the shop's rule reaches its connected Envoy; billing's is untouched.
    let widened = config.replace(
        "  targetProxies: [global/targetHttpProxies/shop-proxy]\n",
        "  targetProxies: [global/targetHttpProxies/shop-proxy]\n  clusters: ['rep*']\n",
    );
    assert_ne!(widened, config);
    switchyard.edit(&widened).await;
    let mut shop_widened = shop_holds.clone();
    shop_widened.clusters = strings(&["payments", "reports", "shop-web"]);
    wait_for(
        "the shop's Envoy to receive the reports cluster",
        || async { (shop.config_names().await == shop_widened).then_some(()) },
    )
    .await;
    assert_eq!(billing.config_names().await, billing_holds);

    // Narrowing billing's rule takes its listener, route and billing-api cluster from its
    // connected Envoy, which stays on the same stream; the shop's is untouched.
    let billing_stream = stream_of(&switchyard, "billing-1").await;
    let narrowed = narrowed_billing(&widened);
    switchyard.edit(&narrowed).await;
    // Envoy drains a removed listener (its socket closed, connections finishing) and keeps
    // the route configuration that listener holds until the drain ends: the listener must
    // be draining, not active, and its port closed.
    wait_for("billing's Envoy to lose what left its grant", || async {
        let listeners = listener_states(&billing).await;
        let names = billing.config_names().await;
        (listeners == [("billing-http".to_string(), "draining")]
            && names.clusters == ["reports"]
            && billing.hosts("billing-api").await.is_empty())
        .then_some(())
    })
    .await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", billing_port)).await;
    assert!(refused.is_err(), "billing's port still accepts connections");
    assert!(
        !billing.hosts("reports").await.is_empty(),
        "billing keeps reports"
    );
    still_connected(&switchyard, &billing, &billing_stream).await;
    assert_eq!(shop.config_names().await, shop_widened);

    // Revoking the shop's node ids cuts its Envoy off: refused, and refused again when it
    // reconnects, and no longer a client. Billing's stays as it was.
    stream_of(&switchyard, "shop-1").await; // a client until then
    switchyard
        .edit(&narrowed.replace("nodeIds: ['shop-*']", "nodeIds: ['store-*']"))
        .await;
    wait_for(
        "the shop's Envoy to be refused and disconnected",
        || async {
            let refused = refusals_of(&switchyard, "node_not_allowed").await >= 2.0;
            let disconnected = shop.stat("control_plane.connected_state").await == Some(0);
            let gone = switchyard.client("shop-1").await.is_none();
            (refused && disconnected && gone).then_some(())
        },
    )
    .await;
    still_connected(&switchyard, &billing, &billing_stream).await;
    assert_eq!(billing.config_names().await.clusters, ["reports"]);
}

/// Each dynamic listener in `envoy`'s /config_dump with its state: active (or warming, as
/// far as the control plane is concerned) or draining (removed, finishing connections).
async fn listener_states(envoy: &Envoy) -> Vec<(String, &'static str)> {
    let dump = get_json(&format!("{}/config_dump", envoy.admin))
        .await
        .unwrap_or_default();
    let configs = dump["configs"].as_array().cloned().unwrap_or_default();
    let Some(listeners) = configs.iter().find(|c| {
        c["@type"]
            .as_str()
            .is_some_and(|t| t.ends_with("ListenersConfigDump"))
    }) else {
        return Vec::new();
    };
    let mut states: Vec<(String, &'static str)> = listeners["dynamic_listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|listener| {
            let held = !listener["active_state"].is_null() || !listener["warming_state"].is_null();
            let name = listener["name"].as_str().unwrap_or_default().to_string();
            (name, if held { "active" } else { "draining" })
        })
        .collect();
    states.sort();
    states
}

/// The id of `node_id`'s stream, from /clients.
async fn stream_of(switchyard: &Switchyard, node_id: &str) -> serde_json::Value {
    let entry = switchyard.client(node_id).await;
    let id = entry.map(|e| e["stream_id"].clone()).unwrap_or_default();
    assert!(id.is_u64(), "{node_id} has a stream: {id}");
    id
}

/// Asserts `envoy` is connected on the stream `stream` still, and in sync.
async fn still_connected(switchyard: &Switchyard, envoy: &Envoy, stream: &serde_json::Value) {
    switchyard.wait_for_acks(&envoy.node_id).await;
    assert_eq!(
        &stream_of(switchyard, &envoy.node_id).await,
        stream,
        "{} kept its stream",
        envoy.node_id
    );
    assert_eq!(
        envoy.stat("control_plane.connected_state").await,
        Some(1),
        "{} is connected",
        envoy.node_id
    );
}

/// A TLS connection showing the certificate `client`.
async fn connection(pki: &Pki, switchyard: &Switchyard, client: &str) -> tonic::transport::Channel {
    tls_channel(pki, switchyard.running.xds_addr, Some(client))
        .await
        .expect("the TLS connection opens")
}

fn sotw_first(node_id: &str, type_url: &str, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(node(node_id)),
        type_url: type_url.to_string(),
        resource_names: strings(names),
        ..Default::default()
    }
}

fn delta_first(node_id: &str, type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node(node_id)),
        type_url: type_url.to_string(),
        resource_names_subscribe: strings(names),
        ..Default::default()
    }
}

/// The resource names of the first response on a SotW stream of `service`.
async fn sotw_names(
    channel: tonic::transport::Channel,
    service: Service,
    node_id: &str,
    type_url: &str,
    names: &[&str],
) -> Vec<String> {
    let mut client = SotwClient::open_on(channel, service).await;
    client.send(sotw_first(node_id, type_url, names));
    let response = client.recv().await;
    let mut got: Vec<String> = response.resources.iter().map(name_of).collect();
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_receives_only_its_grant_over_every_protocol() {
    let pki = pki();
    let switchyard = start(&pki, &example()).await;
    let channel = connection(&pki, &switchyard, "shop").await;
    let shop_clusters = strings(&["payments", "shop-web"]);

    for service in [Service::Ads, Service::PerType(CLUSTER)] {
        let got = sotw_names(channel.clone(), service, "shop-1", CLUSTER, &[]).await;
        assert_eq!(got, shop_clusters, "SotW {service:?}");
    }
    let got = sotw_names(channel.clone(), Service::Ads, "shop-1", LISTENER, &[]).await;
    assert_eq!(got, strings(&["shop-http"]));
    // Naming what the grant does not hold gets nothing of it.
    let got = sotw_names(
        channel.clone(),
        Service::PerType(ENDPOINT),
        "shop-1",
        ENDPOINT,
        &["billing-api", "shop-web"],
    )
    .await;
    assert_eq!(got, strings(&["shop-web"]));
    let got = sotw_names(
        channel.clone(),
        Service::PerType(ROUTE),
        "shop-1",
        ROUTE,
        &["billing-map"],
    )
    .await;
    assert!(got.is_empty(), "{got:?}");

    let per_type = [Service::PerType(CLUSTER), Service::PerType(ENDPOINT)];
    for [clusters, endpoints] in [[Service::Ads; 2], per_type] {
        let mut delta = DeltaClient::open_on(channel.clone(), clusters).await;
        delta.send(delta_first("shop-1", CLUSTER, &["*"]));
        let response = delta.recv().await;
        let mut got: Vec<String> = response.resources.iter().map(|r| r.name.clone()).collect();
        got.sort();
        assert_eq!(got, shop_clusters, "delta {clusters:?}");
        delta.ack(&response);
        let mut delta = match endpoints {
            Service::Ads => delta,
            other => DeltaClient::open_on(channel.clone(), other).await,
        };
        delta.send(delta_first(
            "shop-1",
            ENDPOINT,
            &["billing-api", "payments"],
        ));
        let endpoints = delta.drain().await;
        assert_eq!(
            delta_summary(&endpoints),
            [(
                "ClusterLoadAssignment".to_string(),
                strings(&["payments"]),
                strings(&["billing-api"])
            )],
            "delta {clusters:?}: the granted assignment; the other is reported as not there, \
             as a name that does not exist would be"
        );
    }

    // Proxyless: the gRPC identity gets the who.example listener, the shop's does not.
    let grpc = connection(&pki, &switchyard, "grpc").await;
    let mut proxyless = node("grpc-1");
    proxyless.user_agent_name = "gRPC Python".into();
    let mut client = SotwClient::open_on(grpc, Service::Ads).await;
    client.send(DiscoveryRequest {
        node: Some(proxyless.clone()),
        type_url: LISTENER.into(),
        resource_names: strings(&["who.example:8080"]),
        ..Default::default()
    });
    assert_eq!(
        client
            .recv()
            .await
            .resources
            .iter()
            .map(name_of)
            .collect::<Vec<_>>(),
        ["who.example:8080"]
    );
    let mut client = SotwClient::open_on(channel.clone(), Service::Ads).await;
    proxyless.id = "shop-grpc".into();
    client.send(DiscoveryRequest {
        node: Some(proxyless),
        type_url: LISTENER.into(),
        resource_names: strings(&["who.example:8080"]),
        ..Default::default()
    });
    assert!(client.recv().await.resources.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_claiming_another_node_id_or_unknown_to_the_policy_is_refused() {
    let pki = pki();
    let switchyard = start(&pki, &example()).await;
    let shop = connection(&pki, &switchyard, "shop").await;
    let mut refused = 0.0;
    let mut expect_denied = |status: tonic::Status, what: &str, says: &str| {
        assert_denied(&status, what, says);
        refused += 1.0;
    };

    for service in [Service::Ads, Service::PerType(CLUSTER)] {
        let mut client = SotwClient::open_on(shop.clone(), service).await;
        client.send(sotw_first("billing-1", CLUSTER, &[]));
        let status = client.closed_with().await;
        expect_denied(status, "SotW", "may not claim the node id `billing-1`");
        let mut client = DeltaClient::open_on(shop.clone(), service).await;
        client.send(delta_first("billing-1", CLUSTER, &["*"]));
        let status = client.closed_with().await;
        expect_denied(status, "delta", "may not claim the node id `billing-1`");
    }
    let raw = connection(&pki, &switchyard, "raw").await;
    let mut client = SotwClient::open_on(raw, Service::Ads).await;
    client.send(sotw_first("shop-1", CLUSTER, &[]));
    let status = client.closed_with().await;
    expect_denied(status, "unknown identity", "no xdsClients rule admits");
    wait_for("the refusals to be counted", || async {
        (refusals_of(&switchyard, "node_not_allowed").await >= refused).then_some(())
    })
    .await;

    // Connected clients whose node ids the policy stops allowing are cut off, whatever they
    // speak: SotW and delta on ADS, delta on the cluster service.
    let mut sotw = SotwClient::open_on(shop.clone(), Service::Ads).await;
    sotw.send(sotw_first("shop-1", CLUSTER, &[]));
    assert!(!sotw.recv().await.resources.is_empty());
    let mut deltas = Vec::new();
    for (service, node_id) in [
        (Service::Ads, "shop-2"),
        (Service::PerType(CLUSTER), "shop-3"),
    ] {
        let mut delta = DeltaClient::open_on(shop.clone(), service).await;
        delta.send(delta_first(node_id, CLUSTER, &["*"]));
        assert!(!delta.recv().await.resources.is_empty(), "{service:?}");
        deltas.push((service, node_id, delta));
    }
    switchyard
        .edit(&example().replace("nodeIds: ['shop-*']", "nodeIds: ['store-*']"))
        .await;
    let status = sotw.closed_with().await;
    assert_denied(
        &status,
        "revoked SotW",
        "may not claim the node id `shop-1`",
    );
    for (service, node_id, mut delta) in deltas {
        let status = delta.closed_with().await;
        let says = format!("may not claim the node id `{node_id}`");
        assert_denied(&status, &format!("revoked delta {service:?}"), &says);
    }
    let counted = refused + 3.0;
    wait_for("the revocations to be counted", || async {
        (refusals_of(&switchyard, "node_not_allowed").await == counted).then_some(())
    })
    .await;
}

fn assert_denied(status: &tonic::Status, what: &str, says: &str) {
    assert_eq!(
        status.code(),
        tonic::Code::PermissionDenied,
        "{what}: {status}"
    );
    assert!(status.message().contains(says), "{what}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_served_without_mtls_refuses_every_client_and_says_so() {
    let serve =
        common::process::ServeProcess::start(&repo_root().join("examples/authorized.yaml"), &[])
            .await;
    wait_for("the warning about the policy without mTLS", || async {
        (serve.log_count("every client is refused") == 1).then_some(())
    })
    .await;
    let mut client = SotwClient::open(serve.xds, Service::Ads).await;
    client.send(sotw_first("shop-1", CLUSTER, &[]));
    let status = client.closed_with().await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    assert!(status.message().contains("presented none"), "{status}");
}

/// A grpcio client's bootstrap for Switchyard at `xds` over mTLS, showing `certificate`.
fn grpc_bootstrap(pki: &Pki, xds: SocketAddr, node_id: &str, certificate: &str) -> String {
    let mut text: serde_json::Value =
        serde_json::from_str(&bootstrap(xds, node_id, "us-central1", "us-central1-a")).unwrap();
    text["xds_servers"][0]["server_uri"] = format!("localhost:{}", xds.port()).into();
    text["xds_servers"][0]["channel_creds"] = serde_json::json!([{
        "type": "tls",
        "config": {
            "ca_certificate_file": pki.path("ca.pem"),
            "certificate_file": pki.path(&format!("{certificate}.pem")),
            "private_key_file": pki.path(&format!("{certificate}-key.pem")),
        }
    }]);
    text.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpcio_gets_the_proxyless_service_its_identity_is_granted() {
    let pki = pki();
    let backend = GrpcBackend::start("who-1").await;
    let config = example().replace("port: 50051", &format!("port: {}", backend.port()));
    let switchyard = start(&pki, &config).await;
    let xds = switchyard.running.xds_addr;

    let granted = grpc_bootstrap(&pki, xds, "grpc-1", "grpc");
    let mut client = GrpcClient::start(Library::Grpcio, "xds:///who.example:8080", &granted).await;
    let calls = client.calls(50, None, 0).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    assert_eq!(calls.tally.get("who-1"), Some(&50));
    let entry = switchyard.client("grpc-1").await.unwrap();
    assert_eq!(entry["access_rule"], "grpc-clients");
}

/// One response in short: type, names sent, names removed (SotW has no removals).
type Pushed = (String, Vec<String>, Vec<String>);

fn pushed(kind: &str, sent: &[&str], removed: &[&str]) -> Pushed {
    (kind.to_string(), strings(sent), strings(removed))
}

fn sotw_pushed(responses: &[DiscoveryResponse]) -> Vec<Pushed> {
    let mut list: Vec<Pushed> = sotw_summary(responses)
        .into_iter()
        .map(|(kind, sent)| (kind, sent, Vec::new()))
        .collect();
    list.sort();
    list
}

fn delta_pushed(responses: &[DeltaDiscoveryResponse]) -> Vec<Pushed> {
    let mut list = delta_summary(responses);
    list.sort();
    list
}

/// The names a SotW client asks for by type: every cluster and listener, named endpoints
/// and routes.
fn sotw_names_for(type_url: &str) -> &'static [&'static str] {
    match type_url {
        ENDPOINT => &["billing-api", "reports"],
        ROUTE => &["billing-map"],
        _ => &[],
    }
}

/// ACKs every response of `responses`, naming what the client subscribes to.
fn sotw_ack_all(client: &SotwClient, responses: &[DiscoveryResponse]) {
    for response in responses {
        client.ack(response, sotw_names_for(&response.type_url));
    }
}

/// A SotW stream as `node_id` subscribed to every type, holding its first answers.
async fn subscribed_sotw(channel: tonic::transport::Channel, node_id: &str) -> SotwClient {
    let mut client = SotwClient::open_on(channel, Service::Ads).await;
    client.send(sotw_first(node_id, CLUSTER, &[]));
    for type_url in [LISTENER, ENDPOINT, ROUTE] {
        client.request(type_url, sotw_names_for(type_url), "", "");
    }
    let first = client.drain().await;
    assert_eq!(
        sotw_pushed(&first),
        [
            pushed("Cluster", &["billing-api", "reports"], &[]),
            pushed("ClusterLoadAssignment", &["billing-api", "reports"], &[]),
            pushed("Listener", &["billing-http"], &[]),
            pushed("RouteConfiguration", &["billing-map"], &[]),
        ],
        "SotW: billing's grant"
    );
    sotw_ack_all(&client, &first);
    client
}

/// A delta stream as `node_id` subscribed to every type, holding its first answers.
async fn subscribed_delta(channel: tonic::transport::Channel, node_id: &str) -> DeltaClient {
    let mut client = DeltaClient::open_on(channel, Service::Ads).await;
    client.send(delta_first(node_id, CLUSTER, &["*"]));
    client.subscribe(LISTENER, &["*"], &[]);
    client.subscribe(ENDPOINT, sotw_names_for(ENDPOINT), &[]);
    client.subscribe(ROUTE, sotw_names_for(ROUTE), &[]);
    let first = client.drain().await;
    assert_eq!(
        delta_pushed(&first),
        [
            pushed("Cluster", &["billing-api", "reports"], &[]),
            pushed("ClusterLoadAssignment", &["billing-api", "reports"], &[]),
            pushed("Listener", &["billing-http"], &[]),
            pushed("RouteConfiguration", &["billing-map"], &[]),
        ],
        "delta: billing's grant"
    );
    for response in &first {
        client.ack(response);
    }
    client
}

/// The example with billing's rule narrowed to the reports cluster: its listener, the route
/// it uses and the billing-api cluster leave the grant.
fn narrowed_billing(config: &str) -> String {
    let narrowed = config.replace("  listeners: ['billing-*']\n", "");
    assert_ne!(narrowed, config, "the billing rule names its listeners");
    narrowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_narrowed_grant_reaches_connected_clients_as_removals() {
    let pki = pki();
    let switchyard = start(&pki, &example()).await;
    let channel = connection(&pki, &switchyard, "billing").await;
    let mut sotw = subscribed_sotw(channel.clone(), "billing-sotw").await;
    let mut delta = subscribed_delta(channel.clone(), "billing-delta").await;

    switchyard.edit(&narrowed_billing(&example())).await;
    // SotW: the full-state types come again without what left the grant. (Endpoints and
    // routes cannot be removed by themselves in SotW: the client drops them with the
    // cluster and listener that named them.)
    let narrowed = sotw.drain().await;
    assert_eq!(
        sotw_pushed(&narrowed),
        [
            pushed("Cluster", &["reports"], &[]),
            pushed("Listener", &[], &[]),
        ],
        "SotW after narrowing"
    );
    sotw_ack_all(&sotw, &narrowed);
    // Delta: each type says what was removed, and sends nothing else.
    let narrowed = delta.drain().await;
    assert_eq!(
        delta_pushed(&narrowed),
        [
            pushed("Cluster", &[], &["billing-api"]),
            pushed("ClusterLoadAssignment", &[], &["billing-api"]),
            pushed("Listener", &[], &["billing-http"]),
            pushed("RouteConfiguration", &[], &["billing-map"]),
        ],
        "delta after narrowing"
    );
    for response in &narrowed {
        delta.ack(response);
    }

    // Both streams stayed and are still served: widened again, they get it all back.
    switchyard.edit(&example()).await;
    let widened = sotw_pushed(&sotw.drain().await);
    for expected in [
        pushed("Cluster", &["billing-api", "reports"], &[]),
        pushed("Listener", &["billing-http"], &[]),
    ] {
        assert!(
            widened.contains(&expected),
            "SotW after widening: {widened:?}"
        );
    }
    let widened = delta_pushed(&delta.drain().await);
    for expected in [
        pushed("Cluster", &["billing-api"], &[]),
        pushed("Listener", &["billing-http"], &[]),
    ] {
        assert!(
            widened.contains(&expected),
            "delta after widening: {widened:?}"
        );
    }
    assert_eq!(refusals_of(&switchyard, "node_not_allowed").await, 0.0);
}
