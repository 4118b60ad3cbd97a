//! Node authorization on the mTLS xDS port (examples/authorized.yaml): a raw client receives
//! only what its rule allows over SotW, delta and the per-type services alike; a client
//! claiming another node id, or whose identity no rule admits, is refused with
//! PERMISSION_DENIED and counted, and so is a connected one (SotW or delta) whose node id
//! the policy stops allowing; grpcio calls the proxyless service its identity is granted.
//! Two Envoys holding their grants (from their own config dumps, with traffic) as edits
//! widen, narrow and revoke them, and raw clients taking a narrowed grant, are in
//! [`policy_edits`].

mod policy_edits;

use std::net::SocketAddr;

use crate::common;
use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::pki::{tls_channel, Pki};
use crate::common::xds::*;
use crate::common::*;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

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
