//! The edge features of TCP and SSL proxies and of logConfig, through Envoy and through the
//! sidecar with the same config, and the same answers: the PROXY protocol v1 line a backend
//! reads (before TLS to an SSL backend), TLS terminated by an SSL proxy and originated to an
//! SSL backend, and the access log lines of HTTP requests and TCP connections, compared field
//! by field where the values are deterministic (the sampled share within a stated tolerance).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::common::pki::Authority;
use crate::common::*;
use crate::https::{read_all, rustls_pemfile_certs, start_tcp_echo};

/// An SSL backend behind a PROXY protocol line: reads the line in clear, then accepts TLS and
/// sends back the line followed by every byte it received over TLS.
async fn start_ssl_backend_after_proxy_line() -> (u16, tokio::task::JoinHandle<()>) {
    let acceptor = crate::common::pki::self_signed_backend_acceptor(&[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut line = Vec::new();
                while !line.ends_with(b"\r\n") && line.len() < 108 {
                    let Ok(byte) = tcp.read_u8().await else {
                        return;
                    };
                    line.push(byte);
                }
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut received = Vec::new();
                // The proxy may close without close_notify: keep what arrived.
                let _ = tls.read_to_end(&mut received).await;
                line.extend_from_slice(&received);
                let _ = tls.write_all(&line).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, task)
}

/// A TCP proxy and an SSL proxy, both asking for a PROXY protocol v1 line: the TCP one to a
/// plain echo backend, the SSL one (certificate `edge-cert`) to an SSL backend.
fn edge_config(tcp: u16, ssl: u16, raw_backend: u16, ssl_backend: u16, cert: &str) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: raw-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {raw_backend}}}]}}
- {{name: secure-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {ssl_backend}}}]}}
backendServices:
- {{name: raw, protocol: TCP, backends: [{{group: zones/us-central1-a/networkEndpointGroups/raw-neg, balancingMode: CONNECTION, maxConnections: 100}}]}}
- {{name: secure, protocol: SSL, backends: [{{group: zones/us-central1-a/networkEndpointGroups/secure-neg, balancingMode: CONNECTION, maxConnections: 100}}]}}
sslCertificates:
- {{name: edge-cert, certificateFile: {cert}.pem, privateKeyFile: {cert}-key.pem}}
targetTcpProxies:
- {{name: tcp, service: global/backendServices/raw, proxyHeader: PROXY_V1}}
targetSslProxies:
- {{name: ssl, service: global/backendServices/secure, proxyHeader: PROXY_V1, sslCertificates: [global/sslCertificates/edge-cert]}}
forwardingRules:
- {{name: tcp-rule, IPAddress: 127.0.0.1, portRange: "{tcp}", target: global/targetTcpProxies/tcp}}
- {{name: ssl-rule, IPAddress: 127.0.0.1, portRange: "{ssl}", target: global/targetSslProxies/ssl}}
"#
    )
}

/// Sends `text` over plain TCP to `port`, closes its side, and reads the answer: the client's
/// own port and what came back.
async fn tcp_exchange(port: u16, text: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let client_port = stream.local_addr().ok()?.port();
    stream.write_all(text.as_bytes()).await.ok()?;
    stream.shutdown().await.ok()?;
    let answer = read_all(&mut stream).await;
    (!answer.is_empty()).then_some((client_port, answer))
}

/// As [`tcp_exchange`], over TLS to `port` for `host`, trusting `ca_pem`.
async fn tls_exchange(port: u16, host: &str, ca_pem: &str, text: &str) -> Option<(u16, String)> {
    let mut roots = RootCertStore::empty();
    for certificate in rustls_pemfile_certs(ca_pem) {
        roots.add(certificate).ok()?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let client_port = tcp.local_addr().ok()?.port();
    let name = ServerName::try_from(host.to_string()).ok()?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .ok()?;
    tls.write_all(text.as_bytes()).await.ok()?;
    tls.shutdown().await.ok()?;
    let answer = read_all(&mut tls).await;
    (!answer.is_empty()).then_some((client_port, answer))
}

async fn proxy_lines_through(through: Through) {
    let (raw_backend, _raw) = start_tcp_echo().await;
    let (ssl_backend, _secure) = start_ssl_backend_after_proxy_line().await;
    let (tcp_port, ssl_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "edge-ca");
    ca.issue("edge-cert", &["edge.example.test"], &[]);
    let ca_pem = std::fs::read_to_string(dir.path().join("edge-ca.pem")).unwrap();
    let cert = dir.path().join("edge-cert");
    let config = edge_config(
        tcp_port,
        ssl_port,
        raw_backend,
        ssl_backend,
        &cert.display().to_string(),
    );
    let node_id = format!("edge-proxy-{through:?}").to_lowercase();
    let (_switchyard, proxy) = serve_through(through, &node_id, &config).await;

    // Plain TCP: the backend reads `PROXY TCP4 <client> <proxy> <client port> <proxy port>`
    // before the client's bytes.
    let (client_port, answer) = wait_for("the TCP proxy to carry a connection", || {
        tcp_exchange(tcp_port, "hello over tcp")
    })
    .await;
    assert_eq!(
        answer,
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {tcp_port}\r\nhello over tcp"),
        "{through:?}"
    );

    // TLS terminated with the SSL proxy's certificate, the line in clear, then TLS to the SSL
    // backend carrying the client's bytes.
    let (client_port, answer) = wait_for("the SSL proxy to carry a connection", || {
        tls_exchange(ssl_port, "edge.example.test", &ca_pem, "hello over tls")
    })
    .await;
    assert_eq!(
        answer,
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {ssl_port}\r\nhello over tls"),
        "{through:?}"
    );
    if let Proxy::Sidecar(sidecar) = &proxy {
        assert_eq!(
            sidecar
                .stat("switchyard_proxy_xds_updates_rejected_total")
                .await,
            0,
            "{}",
            sidecar.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_lines_and_an_ssl_proxy_to_an_ssl_backend_alike_through_envoy_and_the_sidecar(
) {
    proxy_lines_through(Through::Envoy).await;
    proxy_lines_through(Through::Sidecar).await;
}

/// HTTP services logged always, logged at half their requests, and not logged; and a logged
/// TCP service.
fn logging_config(listen: u16, tcp: u16, web: u16, raw: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {web}}}]}}
- {{name: raw-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {raw}}}]}}
backendServices:
- {{name: logged, logConfig: {{enable: true, sampleRate: 1.0}}, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: sampled, logConfig: {{enable: true, sampleRate: 0.5}}, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: quiet, logConfig: {{enable: false}}, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}
- {{name: raw, protocol: TCP, logConfig: {{enable: true, sampleRate: 1.0}}, backends: [{{group: zones/us-central1-a/networkEndpointGroups/raw-neg, balancingMode: CONNECTION, maxConnections: 100}}]}}
urlMaps:
- name: lb
  defaultService: quiet
  hostRules: [{{hosts: ['*'], pathMatcher: main}}]
  pathMatchers:
  - name: main
    defaultService: quiet
    pathRules:
    - {{paths: ['/logged/*'], service: logged}}
    - {{paths: ['/sampled/*'], service: sampled}}
targetHttpProxies:
- {{name: p, urlMap: lb}}
targetTcpProxies:
- {{name: tcp, service: global/backendServices/raw}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: p}}
- {{name: tcp-rule, IPAddress: 127.0.0.1, portRange: "{tcp}", target: global/targetTcpProxies/tcp}}
"#
    )
}

/// One access log line in Envoy's default format, field by field.
#[derive(Clone, Debug, Default, PartialEq)]
struct LogLine {
    start: String,
    method: String,
    path: String,
    protocol: String,
    status: String,
    flags: String,
    bytes_received: String,
    bytes_sent: String,
    duration: String,
    upstream_service_time: String,
    forwarded_for: String,
    user_agent: String,
    request_id: String,
    authority: String,
    upstream_host: String,
}

impl LogLine {
    fn parse(line: &str) -> Option<LogLine> {
        let pattern = regex::Regex::new(
            r#"^\[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) (\d+) (\d+) (\d+) (\S+) "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)"$"#,
        )
        .unwrap();
        let found = pattern.captures(line.trim_end())?;
        let field = |index: usize| found[index].to_string();
        Some(LogLine {
            start: field(1),
            method: field(2),
            path: field(3),
            protocol: field(4),
            status: field(5),
            flags: field(6),
            bytes_received: field(7),
            bytes_sent: field(8),
            duration: field(9),
            upstream_service_time: field(10),
            forwarded_for: field(11),
            user_agent: field(12),
            request_id: field(13),
            authority: field(14),
            upstream_host: field(15),
        })
    }

    /// The fields whose values do not depend on when or by whom the entry was written: not
    /// the start time, the duration, the upstream service time or the request id; of
    /// X-Forwarded-For, what follows the connection manager's entry. (For a loopback client
    /// Envoy's connection manager appends its host's own address, the sidecar the client's.)
    fn deterministic(&self) -> LogLine {
        let after_first = self
            .forwarded_for
            .split_once(',')
            .map_or("", |(_, rest)| rest);
        LogLine {
            start: String::new(),
            duration: String::new(),
            upstream_service_time: String::new(),
            request_id: String::new(),
            forwarded_for: after_first.to_string(),
            ..self.clone()
        }
    }
}

/// The access log lines `proxy` has written so far.
fn access_lines(proxy: &Proxy) -> Vec<LogLine> {
    let text = match proxy {
        Proxy::Envoy(envoy) => envoy.log(),
        Proxy::Sidecar(sidecar) => sidecar.stdout(),
    };
    text.lines().filter_map(LogLine::parse).collect()
}

/// Requests sent to the service logged at half of them.
const SAMPLED_REQUESTS: usize = 400;

/// What one proxy logged: the POST to the logged service, the TCP connection, and how many
/// of the sampled service's requests.
struct Logged {
    post: LogLine,
    connection: LogLine,
    sampled: usize,
    quiet: usize,
}

async fn access_logs_through(through: Through, web: &Backend, raw: u16) -> Logged {
    let (listen, tcp) = (free_port(), free_port());
    let config = logging_config(listen, tcp, web.port(), raw);
    let node_id = format!("edge-logs-{through:?}").to_lowercase();
    let (_switchyard, proxy) = serve_through(through, &node_id, &config).await;
    let url = |path: &str| format!("http://127.0.0.1:{listen}{path}");
    let client = http();
    wait_for("the listener to route", || async {
        let response = client.get(url("/quiet/first")).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let posted = client
        .post(url("/logged/item?x=1"))
        .header("host", "www.example.test")
        .header("user-agent", "edge-test/1")
        .body("twelve bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200, "{through:?}");
    for index in 0..SAMPLED_REQUESTS {
        client
            .get(url(&format!("/sampled/n-{index}")))
            .send()
            .await
            .unwrap();
    }
    client.get(url("/quiet/second")).send().await.unwrap();
    // The same connection, after the sampled ones: once its line is written, theirs are.
    client.get(url("/logged/last")).send().await.unwrap();
    let (_, echoed) = tcp_exchange(tcp, "hello over tcp")
        .await
        .expect("the TCP proxy answers");
    assert_eq!(echoed, "hello over tcp", "{through:?}");

    // Envoy flushes its logs on a timer: wait for the lines, never for a time.
    let lines = wait_for("the last request's and the connection's lines", || async {
        let lines = access_lines(&proxy);
        let done =
            lines.iter().any(|l| l.path == "/logged/last") && lines.iter().any(|l| l.method == "-");
        done.then_some(lines)
    })
    .await;
    let find = |test: &dyn Fn(&LogLine) -> bool| {
        lines
            .iter()
            .find(|l| test(l))
            .cloned()
            .unwrap_or_else(|| panic!("{through:?}: no such line in {lines:#?}"))
    };
    Logged {
        post: find(&|l| l.method == "POST"),
        connection: find(&|l| l.method == "-"),
        sampled: lines
            .iter()
            .filter(|l| l.path.starts_with("/sampled/"))
            .count(),
        quiet: lines
            .iter()
            .filter(|l| l.path.starts_with("/quiet/"))
            .count(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_say_the_same_through_envoy_and_the_sidecar() {
    let web = Backend::start("web").await;
    let (raw, _raw_task) = start_tcp_echo().await;
    let envoy = access_logs_through(Through::Envoy, &web, raw).await;
    let sidecar = access_logs_through(Through::Sidecar, &web, raw).await;

    // What the request says, as both write it.
    let expected_post = LogLine {
        method: "POST".into(),
        path: "/logged/item?x=1".into(),
        protocol: "HTTP/1.1".into(),
        status: "200".into(),
        flags: "-".into(),
        bytes_received: "12".into(),
        // The backend's body: its name.
        bytes_sent: "3".into(),
        // The route configuration appends the address the client reached.
        forwarded_for: "127.0.0.1".into(),
        user_agent: "edge-test/1".into(),
        authority: "www.example.test".into(),
        upstream_host: web.addr.to_string(),
        ..Default::default()
    };
    let time = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    for (through, logged) in [("Envoy", &envoy), ("sidecar", &sidecar)] {
        assert_eq!(
            logged.post.deterministic(),
            expected_post,
            "{through}: {:?}",
            logged.post
        );
        assert!(
            time.is_match(&logged.post.start),
            "{through}: {:?}",
            logged.post
        );
        assert!(logged.post.duration.parse::<u64>().is_ok());
        assert_eq!(logged.quiet, 0, "{through}: a service without logConfig");
        // 400 requests kept at 0.5: 200 expected, standard deviation 10; 140..=260 is six of
        // them either way, and logging all (400) or none fails.
        assert!(
            (140..=260).contains(&logged.sampled),
            "{through}: {} of {SAMPLED_REQUESTS} sampled lines",
            logged.sampled
        );
    }
    assert_eq!(
        sidecar.post.deterministic(),
        envoy.post.deterministic(),
        "the POST's line"
    );
    assert_eq!(
        sidecar.post.forwarded_for, "127.0.0.1,127.0.0.1",
        "the sidecar's connection manager appends the client's address"
    );
    assert_eq!(envoy.connection.forwarded_for, "-");
    assert_eq!(sidecar.connection.forwarded_for, "-");
    // One line per TCP connection: bytes in and out, the endpoint, no HTTP fields.
    let expected_connection = LogLine {
        method: "-".into(),
        path: "-".into(),
        protocol: "-".into(),
        status: "0".into(),
        flags: "-".into(),
        bytes_received: "14".into(),
        bytes_sent: "14".into(),
        forwarded_for: String::new(),
        user_agent: "-".into(),
        authority: "-".into(),
        upstream_host: format!("127.0.0.1:{raw}"),
        ..Default::default()
    };
    assert_eq!(envoy.connection.deterministic(), expected_connection);
    assert_eq!(sidecar.connection.deterministic(), expected_connection);
    assert_eq!(
        sidecar.connection.upstream_service_time, envoy.connection.upstream_service_time,
        "both `-` for a connection"
    );
}
