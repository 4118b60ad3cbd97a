//! TLS through the sidecar and through Envoy with the same resources, and the same answers:
//! examples/https.yaml (two certificates over SDS chosen by SNI, the first for a client whose
//! name matches neither; an SSL policy whose minimum raised to TLS 1.3 refuses a TLS 1.2
//! client; HTTP/2 chosen by ALPN), served to the sidecar without a NACK; and backend services
//! of protocol HTTPS and HTTP2 reached over TLS with the request's host as SNI.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::common::echo::EchoBackend;
use crate::common::sidecar::Sidecar;
use crate::common::*;
use crate::https::{https_get, HttpsExample};

/// Starts the proxy `through` as `node_id` against `switchyard`, and waits for its ACKs.
async fn start_proxy(through: Through, switchyard: &Switchyard, node_id: &str) -> Proxy {
    let xds = switchyard.running.xds_addr;
    let proxy = match through {
        Through::Envoy => Proxy::Envoy(Envoy::start(xds, node_id).await),
        Through::Sidecar => {
            Proxy::Sidecar(Sidecar::start("envoy-bootstrap.yaml", xds, node_id).await)
        }
    };
    switchyard.wait_for_acks(node_id).await;
    proxy
}

fn leaf_of(pem: &str) -> CertificateDer<'static> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|block| block.label == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.contents))
        .expect("a certificate")
}

/// GET `/` over TLS offering only `h2` by ALPN: the protocol the server chose, and the body.
async fn h2_get(port: u16, host: &str, ca_pem: &str) -> Result<(Option<Vec<u8>>, Value), String> {
    let mut roots = RootCertStore::empty();
    roots.add(leaf_of(ca_pem)).map_err(|e| e.to_string())?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(format!("https://{host}/"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((alpn, body))
}

async fn https_example_through(through: Through) {
    let node_id = format!("https-example-{through:?}").to_lowercase();
    let example = HttpsExample::new().await;
    let HttpsExample {
        ca_pem,
        www_pem,
        api_pem,
        config,
        ..
    } = &example;
    let https_port = example.https_port;
    let switchyard = Switchyard::start(config).await;
    let proxy = start_proxy(through, &switchyard, &node_id).await;

    let both = &[&TLS12, &TLS13][..];
    let www = wait_for("the HTTPS listener to answer", || async {
        https_get(https_port, "www.example.test", "/", ca_pem, both)
            .await
            .ok()
    })
    .await;
    assert_eq!(www.certificate, leaf_of(www_pem), "{through:?}: SNI www");
    assert_eq!(www.body["backend"], "web");
    assert_eq!(
        www.body["headers"]["x-forwarded-proto"], "https",
        "{through:?}: the scheme the request came in on: {}",
        www.body
    );
    let api_answer = https_get(https_port, "api.example.test", "/v1/x", ca_pem, both)
        .await
        .unwrap();
    assert_eq!(
        api_answer.certificate,
        leaf_of(api_pem),
        "{through:?}: SNI api"
    );
    assert_eq!(api_answer.body["backend"], "api");
    assert_eq!(api_answer.body["path"], "/x");
    // No name (an address is dialled): the first certificate, the default.
    let unnamed = https_get(https_port, "127.0.0.1", "/", ca_pem, both)
        .await
        .unwrap();
    assert_eq!(
        unnamed.certificate,
        leaf_of(www_pem),
        "{through:?}: default"
    );

    // HTTP/2 over TLS, chosen by ALPN.
    let (alpn, body) = h2_get(https_port, "api.example.test", ca_pem)
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{through:?}: ALPN h2");
    assert_eq!(body["backend"], "api", "{through:?}: {body}");

    if let Proxy::Sidecar(sidecar) = &proxy {
        // Every type, Secret included, ACKed (wait_for_acks) and nothing refused.
        let client = switchyard.client(&node_id).await.unwrap();
        assert!(client["types"].get("Secret").is_some(), "{client}");
        assert_eq!(
            sidecar
                .stat("switchyard_proxy_xds_updates_rejected_total")
                .await,
            0,
            "{}",
            sidecar.log()
        );
    }

    // The SSL policy: TLS 1.2 allowed; a minimum of 1.3 refuses a 1.2-only client.
    https_get(https_port, "www.example.test", "/", ca_pem, &[&TLS12])
        .await
        .expect("TLS 1.2 is allowed by modern-tls12");
    switchyard
        .edit(&config.replace("minTlsVersion: TLS_1_2", "minTlsVersion: TLS_1_3"))
        .await;
    switchyard.wait_for_acks(&node_id).await;
    wait_for("TLS 1.2 to be refused", || async {
        https_get(https_port, "www.example.test", "/", ca_pem, &[&TLS12])
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let modern = https_get(https_port, "www.example.test", "/", ca_pem, &[&TLS13])
        .await
        .unwrap();
    assert_eq!(
        modern.body["backend"], "web",
        "{through:?}: TLS 1.3 still served"
    );
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_example_is_served_alike_by_envoy_and_the_sidecar() {
    https_example_through(Through::Envoy).await;
    https_example_through(Through::Sidecar).await;
}

async fn tls_backends_through(through: Through) {
    let https = EchoBackend::start_tls("https-backend").await;
    let http2 = EchoBackend::start_tls("http2-backend").await;
    let listen = free_port();
    let config = crate::https::tls_backends_config(listen, https.port(), http2.port());
    let node_id = format!("tls-backends-{through:?}").to_lowercase();
    let (_switchyard, proxy) = serve_through(through, &node_id, &config).await;
    let ask = |host: &'static str| async move {
        let response = http()
            .get(format!("http://127.0.0.1:{listen}/hello"))
            .header("host", host)
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())?;
        response.json::<Value>().await.ok()
    };
    let seen = wait_for("a request to reach the HTTPS backend", || {
        ask("www.example.test")
    })
    .await;
    assert_eq!(seen["backend"], "https-backend", "{through:?}");
    assert_eq!(
        seen["sni"], "www.example.test",
        "{through:?}: the host as SNI"
    );
    assert_eq!(seen["version"], "HTTP/1.1", "{through:?}");
    let seen = ask("h2.example.test")
        .await
        .expect("the HTTP2 backend answers");
    assert_eq!(seen["backend"], "http2-backend", "{through:?}");
    assert_eq!(seen["sni"], "h2.example.test", "{through:?}");
    assert_eq!(seen["version"], "HTTP/2.0", "{through:?}: HTTP/2 over TLS");
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http2_backends_are_reached_alike_by_envoy_and_the_sidecar() {
    tls_backends_through(Through::Envoy).await;
    tls_backends_through(Through::Sidecar).await;
}

/// A gRPC backend behind a target HTTPS proxy: unary and server-streaming calls over TLS
/// (h2 by ALPN) through `through`, with the certificate the client checks against its CA.
async fn grpc_over_tls_through(through: Through) {
    use crate::common::grpc::{GrpcBackend, WhoReply, WhoRequest};
    let node_id = format!("grpc-tls-{through:?}").to_lowercase();
    let example = HttpsExample::new().await;
    let backend = GrpcBackend::start("who-tls").await;
    let listen = free_port();
    let certs = example.certs.display();
    let config = format!(
        r#"
networkEndpointGroups:
- {{name: who-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}
backendServices:
- {{name: who, protocol: H2C, backends: [{{group: zones/us-central1-a/networkEndpointGroups/who-neg, balancingMode: RATE, maxRate: 100}}]}}
sslCertificates:
- {{name: www-cert, certificateFile: {certs}/www.example.test.pem, privateKeyFile: {certs}/www.example.test.key}}
urlMaps:
- {{name: grpc-map, defaultService: global/backendServices/who}}
targetHttpsProxies:
- {{name: grpc-tls, urlMap: global/urlMaps/grpc-map, sslCertificates: [global/sslCertificates/www-cert]}}
forwardingRules:
- {{name: grpc-in, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpsProxies/grpc-tls}}
"#,
        port = backend.port()
    );
    let switchyard = Switchyard::start(&config).await;
    let _proxy = start_proxy(through, &switchyard, &node_id).await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&example.ca_pem))
        .domain_name("www.example.test");
    let channel = wait_for("the HTTPS listener to take a gRPC channel", || async {
        tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{listen}"))
            .unwrap()
            .tls_config(tls.clone())
            .unwrap()
            .connect()
            .await
            .ok()
    })
    .await;
    let mut client = tonic::client::Grpc::new(channel);
    for _ in 0..10 {
        client.ready().await.unwrap();
        let reply = client
            .unary(
                tonic::Request::new(WhoRequest { delay_ms: 0 }),
                tonic::codegen::http::uri::PathAndQuery::from_static("/switchyard.test.Who/Name"),
                tonic_prost::ProstCodec::<WhoRequest, WhoReply>::default(),
            )
            .await
            .unwrap_or_else(|status| panic!("{through:?}: {status}"));
        assert_eq!(reply.into_inner().name, "who-tls", "{through:?}");
    }
    client.ready().await.unwrap();
    let mut stream = client
        .server_streaming(
            tonic::Request::new(WhoRequest { delay_ms: 10 }),
            tonic::codegen::http::uri::PathAndQuery::from_static("/switchyard.test.Who/Count"),
            tonic_prost::ProstCodec::<WhoRequest, WhoReply>::default(),
        )
        .await
        .unwrap_or_else(|status| panic!("{through:?}: {status}"))
        .into_inner();
    let mut names = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        names.push(message.name);
    }
    assert!(
        names.len() >= 2,
        "{through:?}: every streamed message arrives: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_is_served_alike_by_envoy_and_the_sidecar() {
    grpc_over_tls_through(Through::Envoy).await;
    grpc_over_tls_through(Through::Sidecar).await;
}

/// The connection facts a service writes into request headers with Envoy's formatters, over
/// TLS: the version, the suite, the name the client asked for, that it is encrypted.
const TLS_FACT_HEADERS: &str = "  customRequestHeaders: ['x-fact-tls: {tls_version}', \
    'x-fact-cipher: {tls_cipher_suite}', 'x-fact-sni: {tls_sni_hostname}', \
    'x-fact-encrypted: {client_encrypted}', 'x-fact-protocol: {client_protocol}']\n";

/// What the `web` backend of examples/https.yaml saw of the facts `through` a proxy, for a
/// TLS 1.3 client and for a TLS 1.2 one: `version name: value` lines.
async fn tls_facts_through(through: Through) -> Vec<String> {
    let node_id = format!("tls-facts-{through:?}").to_lowercase();
    let example = HttpsExample::new().await;
    let web = "- name: web\n  protocol: HTTP\n";
    assert!(example.config.contains(web), "examples/https.yaml changed");
    let config = example
        .config
        .replace(web, &format!("{web}{TLS_FACT_HEADERS}"));
    let switchyard = Switchyard::start(&config).await;
    let _proxy = start_proxy(through, &switchyard, &node_id).await;
    let mut facts = Vec::new();
    for (name, versions) in [("1.3", &[&TLS13][..]), ("1.2", &[&TLS12][..])] {
        let answer = wait_for("the HTTPS listener to answer", || async {
            https_get(
                example.https_port,
                "www.example.test",
                "/",
                &example.ca_pem,
                versions,
            )
            .await
            .ok()
        })
        .await;
        let headers = answer.body["headers"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (header, value) in headers {
            if header.starts_with("x-fact-") {
                facts.push(format!(
                    "{name} {header}: {}",
                    value.as_str().unwrap_or("?")
                ));
            }
        }
    }
    facts.sort();
    facts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_facts_reach_the_backend_alike_through_envoy_and_the_sidecar() {
    let by_envoy = tls_facts_through(Through::Envoy).await;
    let by_sidecar = tls_facts_through(Through::Sidecar).await;
    eprintln!("Envoy: {by_envoy:#?}");
    assert_eq!(by_sidecar, by_envoy);
    for line in [
        "1.3 x-fact-tls: TLSv1.3",
        "1.2 x-fact-tls: TLSv1.2",
        "1.3 x-fact-sni: www.example.test",
        "1.3 x-fact-encrypted: true",
        "1.2 x-fact-encrypted: true",
        "1.3 x-fact-protocol: HTTP/1.1",
    ] {
        assert!(by_envoy.iter().any(|l| l == line), "{line}: {by_envoy:?}");
    }
    assert!(
        by_envoy
            .iter()
            .any(|l| l.starts_with("1.3 x-fact-cipher: TLS_")),
        "{by_envoy:?}"
    );
}
