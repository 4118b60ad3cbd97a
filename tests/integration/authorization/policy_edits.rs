//! Node authorization policy edits reaching connected clients (examples/authorized.yaml on
//! the mTLS xDS port): two Envoys each hold only their grant as it widens, narrows (the
//! Envoy stays on its stream, drains the listener, drops the cluster) and is revoked (the
//! Envoy is refused and kept out); raw SotW and delta clients receive a narrowed grant as
//! removals and stay served.

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};

use super::{
    connection, delta_first, envoy_as, example, pki, refusals_of, sotw_first, start, strings,
};
use crate::common::xds::*;
use crate::common::*;

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

/// The names a billing client asks for by type: every cluster and listener (none listed),
/// named endpoints and routes.
fn billing_names_for(type_url: &str) -> &'static [&'static str] {
    match type_url {
        ENDPOINT => &["billing-api", "reports"],
        ROUTE => &["billing-map"],
        _ => &[],
    }
}

/// ACKs every response of `responses`, naming what the client subscribes to.
fn sotw_ack_all(client: &SotwClient, responses: &[DiscoveryResponse]) {
    for response in responses {
        client.ack(response, billing_names_for(&response.type_url));
    }
}

/// A SotW stream as `node_id` subscribed to every type, holding its first answers.
async fn subscribed_sotw(channel: tonic::transport::Channel, node_id: &str) -> SotwClient {
    let mut client = SotwClient::open_on(channel, Service::Ads).await;
    client.send(sotw_first(node_id, CLUSTER, &[]));
    for type_url in [LISTENER, ENDPOINT, ROUTE] {
        client.request(type_url, billing_names_for(type_url), "", "");
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
    client.subscribe(ENDPOINT, billing_names_for(ENDPOINT), &[]);
    client.subscribe(ROUTE, billing_names_for(ROUTE), &[]);
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
