//! mTLS on the xDS port with real clients: an Envoy and the sidecar (both from
//! envoy-configs/envoy-bootstrap-mtls.yaml) and a grpcio client (TLS channel credentials in
//! its bootstrap) get their config and are
//! known by the identity in their certificates; a client without a certificate, or with one
//! from another CA, is refused; a rotated server certificate reaches new connections without
//! a restart. Certificates are made at test time.

use std::sync::Arc;

use crate::common;
use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::pki::{tls_channel, Pki};
use crate::common::xds::*;
use crate::common::*;
use rcgen::KeyPair;
use tokio_rustls::rustls;

fn config() -> String {
    std::fs::read_to_string(repo_root().join("examples/grpc.yaml")).unwrap()
}

async fn start(pki: &Pki, config: &str) -> Switchyard {
    let files = pki.files();
    Switchyard::start_with(config, move |options| options.tls = Some(files)).await
}

/// The identity `/clients` shows for `node_id`, once it is connected.
async fn identity_of(switchyard: &Switchyard, node_id: &str) -> String {
    wait_for(&format!("{node_id} to be listed in /clients"), || async {
        let clients = get_json(&switchyard.admin_url("/clients")).await?;
        clients["clients"]
            .as_array()?
            .iter()
            .find(|c| c["node_id"] == node_id)
            .map(|c| c["identity"].as_str().unwrap_or("none").to_string())
    })
    .await
}

async fn tls_refusals(switchyard: &Switchyard) -> f64 {
    let text = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("switchyard_xds_refused_total{reason=\"tls_handshakes\"} "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raw_client_with_a_certificate_is_served_and_others_are_refused() {
    let pki = Pki::new();
    let switchyard = start(&pki, &config()).await;
    let address = switchyard.running.xds_addr;

    let channel = tls_channel(&pki, address, Some("raw")).await.unwrap();
    let mut client = SotwClient::on_channel(channel).await;
    client.send(
        envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest {
            node: Some(node("raw-client")),
            type_url: CLUSTER.into(),
            ..Default::default()
        },
    );
    let clusters = client.recv().await;
    assert!(
        !clusters.resources.is_empty(),
        "the clusters come over mTLS"
    );
    assert_eq!(
        identity_of(&switchyard, "raw-client").await,
        "raw.switchyard.test"
    );

    // No certificate, or one from a CA the server does not trust: no stream at all.
    for (who, certificate) in [("no certificate", None), ("a stranger", Some("stranger"))] {
        let refused = match tls_channel(&pki, address, certificate).await {
            Err(_) => true,
            Ok(channel) => SotwClient::try_on_channel(channel).await.is_err(),
        };
        assert!(refused, "{who} is refused");
    }
    // Plaintext on the TLS port is refused too.
    let plain = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert!(
            SotwClient::try_on_channel(channel).await.is_err(),
            "plaintext is refused"
        );
    }
    wait_for("the refused handshakes to be counted", || async {
        (tls_refusals(&switchyard).await >= 3.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_and_grpcio_get_their_config_over_mtls() {
    let pki = Pki::new();
    let mut backends = Vec::new();
    for name in ["a1", "a2", "a3", "b1"] {
        backends.push(GrpcBackend::start(name).await);
    }
    let mut text = config();
    for (index, backend) in backends.iter().enumerate() {
        text = text.replace(
            &format!("port: {}}}", 50051 + index),
            &format!("port: {}}}", backend.port()),
        );
    }
    let switchyard = start(&pki, &text).await;
    let address = switchyard.running.xds_addr;

    let dir = pki.dir.path().to_str().unwrap().to_string();
    let envoy = Envoy::start_replacing(
        "envoy-bootstrap-mtls.yaml",
        &[address],
        "envoy-mtls",
        "us-central1",
        "us-central1-a",
        &[("/etc/switchyard/xds-tls", &dir)],
    )
    .await;
    switchyard.wait_for_acks("envoy-mtls").await;
    assert_eq!(
        identity_of(&switchyard, "envoy-mtls").await,
        "spiffe://switchyard.test/envoy"
    );
    let clusters = envoy.stat("cluster_manager.cds.update_success").await;
    assert!(
        clusters >= Some(1),
        "Envoy took clusters over mTLS: {clusters:?}"
    );

    let mut grpc_bootstrap: serde_json::Value = serde_json::from_str(&bootstrap(
        address,
        "grpcio-mtls",
        "us-central1",
        "us-central1-a",
    ))
    .unwrap();
    grpc_bootstrap["xds_servers"][0]["server_uri"] = format!("localhost:{}", address.port()).into();
    grpc_bootstrap["xds_servers"][0]["channel_creds"] = serde_json::json!([{
        "type": "tls",
        "config": {
            "ca_certificate_file": pki.path("ca.pem"),
            "certificate_file": pki.path("grpc.pem"),
            "private_key_file": pki.path("grpc-key.pem"),
        }
    }]);
    let mut client = GrpcClient::start(
        Library::Grpcio,
        "xds:///who.example:8080",
        &grpc_bootstrap.to_string(),
    )
    .await;
    let calls = client.calls(100, None, 0).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    assert_eq!(calls.tally.values().sum::<usize>(), 100);
    assert_eq!(
        identity_of(&switchyard, "grpcio-mtls").await,
        "spiffe://switchyard.test/grpc"
    );
}

/// The certificate a new TLS connection to `address` is shown.
async fn presented_certificate(pki: &Pki, address: std::net::SocketAddr) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.path("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(pki.path("raw.pem")).unwrap()],
            PrivateKeyDer::from_pem_file(pki.path("raw-key.pem")).unwrap(),
        )
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_server_certificate_reaches_new_connections_without_a_restart() {
    use rustls::pki_types::pem::PemObject;
    let pki = Pki::new();
    let switchyard = start(&pki, &config()).await;
    let address = switchyard.running.xds_addr;
    let first = presented_certificate(&pki, address).await;
    assert_eq!(
        first,
        rustls::pki_types::CertificateDer::from_pem_file(pki.path("server.pem"))
            .unwrap()
            .to_vec()
    );

    // Rotate: a new key and certificate, written next to the old and renamed over them.
    pki.ca.issue("rotated", &["localhost", "127.0.0.1"], &[]);
    let rotated = rustls::pki_types::CertificateDer::from_pem_file(pki.path("rotated.pem"))
        .unwrap()
        .to_vec();
    std::fs::rename(pki.path("rotated-key.pem"), pki.path("server-key.pem")).unwrap();
    std::fs::rename(pki.path("rotated.pem"), pki.path("server.pem")).unwrap();
    wait_for(
        "new connections to be shown the rotated certificate",
        || async { (presented_certificate(&pki, address).await == rotated).then_some(()) },
    )
    .await;

    // A rotation that writes a key that does not match keeps the working certificate.
    std::fs::write(
        pki.path("server-key.pem"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(presented_certificate(&pki, address).await, rotated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sidecar_gets_its_config_over_mtls_from_the_envoy_bootstrap() {
    let pki = Pki::new();
    let switchyard = start(&pki, &config()).await;
    let dir = pki.envoy_dir("envoy");
    let sidecar = common::sidecar::Sidecar::start_replacing(
        "envoy-bootstrap-mtls.yaml",
        switchyard.running.xds_addr,
        "sidecar-mtls",
        &[("/etc/switchyard/xds-tls", dir.to_str().unwrap())],
    )
    .await;
    switchyard.wait_for_acks("sidecar-mtls").await;
    assert_eq!(
        identity_of(&switchyard, "sidecar-mtls").await,
        "spiffe://switchyard.test/envoy"
    );
    assert_eq!(sidecar.config_names().await.clusters, ["who"]);
}
