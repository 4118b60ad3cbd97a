//! HTTPS frontends through a real Envoy, from examples/https.yaml with certificates made at
//! test time: the certificate is chosen by SNI (the first one when the name matches none),
//! requests are routed by the URL map behind TLS, the HTTP frontend redirects to HTTPS, the
//! SSL policy's minimum TLS version holds, and a certificate renewed on disk is served
//! without a listener being modified or drained (it travels as a Secret over SDS). Backends
//! are reached over TLS for protocols HTTPS and HTTP2; target TCP and SSL proxies carry raw
//! bytes after a PROXY protocol line.

use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio_rustls::TlsConnector;

use crate::common::echo::EchoBackend;
use crate::common::pki::Authority;
use crate::common::*;

/// What one HTTPS request saw: the certificate served, the status and the body as JSON.
pub(crate) struct Exchange {
    pub certificate: CertificateDer<'static>,
    pub status: u16,
    pub body: Value,
}

/// GET `path` on 127.0.0.1:`port` over TLS with SNI `host`, trusting `ca_pem`, offering only
/// `versions`.
pub(crate) async fn https_get(
    port: u16,
    host: &str,
    path: &str,
    ca_pem: &str,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Exchange, String> {
    let mut roots = RootCertStore::empty();
    for certificate in rustls_pemfile_certs(ca_pem) {
        roots.add(certificate).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no certificate served")?
        .clone()
        .into_owned();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let (status, bytes) = get_on_connection(&mut sender, path, host).await?;
    Ok(Exchange {
        certificate,
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

pub(crate) fn rustls_pemfile_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|block| block.label == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.contents))
        .collect()
}

/// Issues a certificate for `host` (and 127.0.0.1) and moves it into `certs/` under the names
/// the example uses, each file replaced in one rename (as cert-manager and editors replace
/// files).
pub(crate) fn install_certificate(ca: &Authority, certs: &Path, host: &str) -> String {
    let (cert, key) = ca.issue(host, &[host, "127.0.0.1"], &[]);
    std::fs::rename(&key, certs.join(format!("{host}.key"))).unwrap();
    std::fs::rename(&cert, certs.join(format!("{host}.pem"))).unwrap();
    std::fs::read_to_string(certs.join(format!("{host}.pem"))).unwrap()
}

fn leaf_of(pem: &str) -> CertificateDer<'static> {
    rustls_pemfile_certs(pem).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_by_sni_routes_redirects_enforces_its_policy_and_rotates_without_a_drain() {
    let example = HttpsExample::new().await;
    let HttpsExample {
        ca,
        certs,
        ca_pem,
        www_pem,
        api_pem,
        config,
        ..
    } = &example;
    let (https_port, http_port) = (example.https_port, example.http_port);
    let switchyard = Switchyard::start(config).await;
    let envoy = Envoy::start(switchyard.running.xds_addr, "https-envoy").await;
    switchyard.wait_for_acks("https-envoy").await;

    let both = &[&TLS12, &TLS13][..];
    let first = wait_for("the HTTPS listener to answer", || async {
        https_get(https_port, "www.example.test", "/", ca_pem, both)
            .await
            .ok()
    })
    .await;
    // SNI picks the certificate; the URL map routes what TLS carried.
    assert_eq!(first.certificate, leaf_of(www_pem));
    assert_eq!(first.status, 200);
    assert_eq!(first.body["backend"], "web");
    assert_eq!(
        first.body["headers"]["x-forwarded-proto"], "https",
        "{}",
        first.body
    );
    let api_answer = https_get(https_port, "api.example.test", "/v1/users", ca_pem, both)
        .await
        .unwrap();
    assert_eq!(api_answer.certificate, leaf_of(api_pem));
    assert_eq!(api_answer.body["backend"], "api");
    assert_eq!(api_answer.body["path"], "/users", "the route's urlRewrite");

    // The HTTP frontend's URL map only redirects to HTTPS.
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{http_port}/shop?item=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status().as_u16(), 301);
    assert_eq!(
        redirect.headers()["location"].to_str().unwrap(),
        "https://127.0.0.1/shop?item=1"
    );

    // A renewed certificate on disk: the new one is served, and no listener changed.
    let modified_before = envoy.stat("listener_manager.listener_modified").await;
    let renewed = install_certificate(ca, certs, "www.example.test");
    assert_ne!(leaf_of(&renewed), leaf_of(www_pem));
    wait_for("the renewed certificate to be served", || async {
        let exchange = https_get(https_port, "www.example.test", "/", ca_pem, both)
            .await
            .ok()?;
        (exchange.certificate == leaf_of(&renewed)).then_some(())
    })
    .await;
    assert_eq!(
        envoy.stat("listener_manager.listener_modified").await,
        modified_before,
        "a certificate renewal must not modify the listener"
    );
    assert_eq!(
        envoy
            .stat("listener_manager.total_filter_chains_draining")
            .await,
        Some(0)
    );
    assert!(envoy.stat("sds.www-cert.update_success").await >= Some(2));

    // The SSL policy: TLS 1.2 is allowed; raising the minimum to 1.3 refuses a 1.2-only client.
    https_get(https_port, "www.example.test", "/", ca_pem, &[&TLS12])
        .await
        .expect("TLS 1.2 is allowed by modern-tls12");
    switchyard
        .edit(&config.replace("minTlsVersion: TLS_1_2", "minTlsVersion: TLS_1_3"))
        .await;
    wait_for("TLS 1.2 to be refused", || async {
        https_get(https_port, "www.example.test", "/", ca_pem, &[&TLS12])
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let modern = https_get(https_port, "api.example.test", "/", ca_pem, &[&TLS13])
        .await
        .unwrap();
    assert_eq!(modern.body["backend"], "api");
    // A client that sends no name (it dials an address) gets the first certificate.
    let other = https_get(https_port, "127.0.0.1", "/", ca_pem, both)
        .await
        .unwrap();
    assert_eq!(other.certificate, leaf_of(&renewed));
    drop(envoy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http2_backends_are_reached_over_tls_with_the_hosts_sni() {
    let https = EchoBackend::start_tls("https-backend").await;
    let http2 = EchoBackend::start_tls("http2-backend").await;
    let listen = free_port();
    let config = tls_backends_config(listen, https.port(), http2.port());
    let switchyard = Switchyard::start(&config).await;
    let _envoy = Envoy::start(switchyard.running.xds_addr, "tls-upstream-envoy").await;
    switchyard.wait_for_acks("tls-upstream-envoy").await;
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
    assert_eq!(seen["backend"], "https-backend");
    assert_eq!(seen["sni"], "www.example.test", "the request's host as SNI");
    assert_eq!(seen["version"], "HTTP/1.1");
    let seen = ask("h2.example.test")
        .await
        .expect("the HTTP2 backend answers");
    assert_eq!(seen["backend"], "http2-backend");
    assert_eq!(seen["sni"], "h2.example.test");
    assert_eq!(seen["version"], "HTTP/2.0", "HTTP2 is HTTP/2 over TLS");
}

/// A TCP backend that reads a connection to its end and sends every byte back.
pub(crate) async fn start_tcp_echo() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut received = Vec::new();
                let _ = stream.read_to_end(&mut received).await;
                let _ = stream.write_all(&received).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, task)
}

/// Reads until the peer closes (or the TLS layer reports the close as an error, since the
/// proxy, like the cloud's, does not send close_notify).
pub(crate) async fn read_all(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        out.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_ssl_proxies_carry_raw_bytes_after_a_proxy_protocol_line() {
    use tokio::io::AsyncWriteExt;
    let (backend_port, _backend) = start_tcp_echo().await;
    let (tcp_port, ssl_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "test-ca");
    let (cert, key) = ca.issue("tcp.example.test", &["tcp.example.test"], &[]);
    let ca_pem = std::fs::read_to_string(dir.path().join("test-ca.pem")).unwrap();
    let config = format!(
        r#"
networkEndpointGroups:
- {{name: raw-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {backend_port}}}]}}
backendServices:
- {{name: raw, protocol: TCP, backends: [{{group: zones/us-central1-a/networkEndpointGroups/raw-neg, balancingMode: CONNECTION, maxConnections: 100}}]}}
sslCertificates:
- {{name: tcp-cert, certificateFile: {}, privateKeyFile: {}}}
targetTcpProxies:
- {{name: tcp, service: global/backendServices/raw, proxyHeader: PROXY_V1}}
targetSslProxies:
- {{name: ssl, service: global/backendServices/raw, proxyHeader: PROXY_V1, sslCertificates: [global/sslCertificates/tcp-cert]}}
forwardingRules:
- {{name: tcp-rule, IPAddress: 127.0.0.1, portRange: "{tcp_port}", target: global/targetTcpProxies/tcp}}
- {{name: ssl-rule, IPAddress: 127.0.0.1, portRange: "{ssl_port}", target: global/targetSslProxies/ssl}}
"#,
        cert.display(),
        key.display()
    );
    let switchyard = Switchyard::start(&config).await;
    assert!(
        !switchyard.serving_version().is_empty(),
        "the config is served"
    );
    let _envoy = Envoy::start(switchyard.running.xds_addr, "tcp-envoy").await;
    switchyard.wait_for_acks("tcp-envoy").await;

    // Plain TCP: the backend gets `PROXY TCP4 <client> <proxy> <client port> <proxy port>`.
    let answer = wait_for("the TCP proxy to carry a connection", || async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
            .await
            .ok()?;
        let client_port = stream.local_addr().ok()?.port();
        stream.write_all(b"hello over tcp").await.ok()?;
        stream.shutdown().await.ok()?;
        let answer = read_all(&mut stream).await;
        (!answer.is_empty()).then_some((client_port, answer))
    })
    .await;
    assert_eq!(
        answer.1,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {tcp_port}\r\nhello over tcp",
            answer.0
        )
    );

    // TLS terminated by the SSL proxy, then the same bytes with the same line.
    let mut roots = RootCertStore::empty();
    for certificate in rustls_pemfile_certs(&ca_pem) {
        roots.add(certificate).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ssl_port))
        .await
        .unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let mut tls = TlsConnector::from(Arc::new(tls_config))
        .connect(ServerName::try_from("tcp.example.test").unwrap(), tcp)
        .await
        .expect("the SSL proxy's certificate is trusted for its name");
    tls.write_all(b"hello over tls").await.unwrap();
    tls.shutdown().await.unwrap();
    assert_eq!(
        read_all(&mut tls).await,
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {ssl_port}\r\nhello over tls")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_https_listener_terminates_tls_and_reaches_https_and_http2_target_groups() {
    let https = EchoBackend::start_tls("https-target").await;
    let http2 = EchoBackend::start_tls("http2-target").await;
    let listen = free_port();
    let pki_dir = tempfile::tempdir().unwrap();
    let certs = pki_dir.path().join("certs");
    let staging = pki_dir.path().join("staging");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    let ca = Authority::new(&staging, "test-ca");
    let ca_pem = std::fs::read_to_string(staging.join("test-ca.pem")).unwrap();
    let www_pem = install_certificate(&ca, &certs, "www.example.test");
    let template = format!(
        r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties: {{Type: application}}
  Https:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {listen}
      Protocol: HTTPS
      SslPolicy: ELBSecurityPolicy-TLS13-1-3-2021-06
      Certificates:
      - {{CertificateFile: {certs}/www.example.test.pem, PrivateKeyFile: {certs}/www.example.test.key}}
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Secure}}]
  H2Rule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Https
      Priority: 1
      Conditions: [{{Field: path-pattern, Values: ["/h2/*"]}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref SecureH2}}]
  Secure:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTPS
      Port: {https}
      HealthCheckEnabled: false
      Targets: [{{Id: 127.0.0.1}}]
  SecureH2:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTPS
      ProtocolVersion: HTTP2
      Port: {http2}
      HealthCheckEnabled: false
      Targets: [{{Id: 127.0.0.1}}]
"#,
        certs = certs.display(),
        https = https.port(),
        http2 = http2.port(),
    );
    let switchyard = Switchyard::start(&template).await;
    let _envoy = Envoy::start(switchyard.running.xds_addr, "aws-https-envoy").await;
    switchyard.wait_for_acks("aws-https-envoy").await;
    let first = wait_for("the HTTPS listener to answer", || async {
        https_get(listen, "www.example.test", "/", &ca_pem, &[&TLS13])
            .await
            .ok()
    })
    .await;
    assert_eq!(first.certificate, leaf_of(&www_pem));
    assert_eq!(first.status, 200);
    assert_eq!(first.body["backend"], "https-target");
    assert_eq!(
        first.body["version"], "HTTP/1.1",
        "HTTPS targets are reached over TLS"
    );
    let h2 = https_get(listen, "www.example.test", "/h2/x", &ca_pem, &[&TLS13])
        .await
        .unwrap();
    assert_eq!(h2.body["backend"], "http2-target");
    assert_eq!(
        h2.body["version"], "HTTP/2.0",
        "protocol version HTTP2 is HTTP/2 over TLS"
    );
    // ELBSecurityPolicy-TLS13-1-3-*: TLS 1.3 only.
    let old = https_get(listen, "www.example.test", "/", &ca_pem, &[&TLS12]).await;
    assert!(
        old.is_err(),
        "TLS 1.2 is refused by a TLS 1.3 policy: {:?}",
        old.err()
    );
}

/// An HTTPS and an HTTP2 backend service (one endpoint each, on `https` and `http2`) behind an
/// HTTP proxy on `listen`; requests for h2.example.test go to the HTTP2 one.
pub fn tls_backends_config(listen: u16, https: u16, http2: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: https-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}
- {{name: http2-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}
backendServices:
- {{name: secure, protocol: HTTPS, backends: [{{group: zones/us-central1-a/networkEndpointGroups/https-neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: secure-h2, protocol: HTTP2, backends: [{{group: zones/us-central1-a/networkEndpointGroups/http2-neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- name: map
  defaultService: global/backendServices/secure
  hostRules: [{{hosts: [h2.example.test], pathMatcher: h2}}]
  pathMatchers: [{{name: h2, defaultService: global/backendServices/secure-h2}}]
targetHttpProxies:
- {{name: p, urlMap: global/urlMaps/map}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/p}}
"#,
        https, http2
    )
}

/// examples/https.yaml on free ports, its backends running and its two certificates
/// (www.example.test, api.example.test) issued by a test CA into the folder the config names.
pub struct HttpsExample {
    pub ca: Authority,
    pub certs: std::path::PathBuf,
    pub ca_pem: String,
    pub www_pem: String,
    pub api_pem: String,
    pub config: String,
    pub https_port: u16,
    pub http_port: u16,
    _backends: (EchoBackend, EchoBackend),
    _pki: tempfile::TempDir,
}

impl HttpsExample {
    pub async fn new() -> HttpsExample {
        let web = EchoBackend::start_named("web").await;
        let api = EchoBackend::start_named("api").await;
        let (https_port, http_port) = (free_port(), free_port());
        let pki = tempfile::tempdir().unwrap();
        let certs = pki.path().join("certs");
        let staging = pki.path().join("staging");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        let ca = Authority::new(&staging, "test-ca");
        let ca_pem = std::fs::read_to_string(staging.join("test-ca.pem")).unwrap();
        let www_pem = install_certificate(&ca, &certs, "www.example.test");
        let api_pem = install_certificate(&ca, &certs, "api.example.test");
        let example = std::fs::read_to_string(repo_root().join("examples/https.yaml")).unwrap();
        let config = example
            .replace("certs/", &format!("{}/", certs.display()))
            .replace("port: 8081", &format!("port: {}", web.port()))
            .replace("port: 8083", &format!("port: {}", api.port()))
            .replace("\"10443\"", &format!("\"{https_port}\""))
            .replace("\"10080\"", &format!("\"{http_port}\""));
        HttpsExample {
            ca,
            certs,
            ca_pem,
            www_pem,
            api_pem,
            config,
            https_port,
            http_port,
            _backends: (web, api),
            _pki: pki,
        }
    }
}
