//! ORIGINAL_DST clusters through the sidecar, with real netfilter redirection: in a private
//! network namespace, connections from 127.0.0.2 to 127.0.0.77 (and from fd00::2 to fd00::77)
//! are redirected (DNAT) to the sidecar's listeners, which send each one on to where it was
//! going. The backends there answer with the address they were called from, so an answer that
//! did not pass through the sidecar (from the client's address) shows. A request straight to the sidecar's
//! listener has no original destination but the listener itself: it gets a local answer
//! instead of looping.
//!
//! Envoy reads the redirected destination only with the original_dst listener filter, which
//! Switchyard does not emit (without it Envoy answers 503 "no healthy upstream" for such a
//! service, redirected or not). So the sidecar's answer is compared with that of an Envoy
//! bootstrapped by hand with the filter and the same ORIGINAL_DST cluster. (Straight to its
//! listener, that Envoy connects to itself until its route times out: not compared.)

use std::net::{IpAddr, SocketAddr};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::netns::{add_loopback_address, add_nat_rule, in_private_network};
use crate::common::sidecar::Sidecar;
use crate::common::*;

/// Where redirected clients are going, and where they come from.
const ORIGINAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 77));
const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
/// The same over IPv6 (addresses the test gives the namespace's loopback interface).
const ORIGINAL_V6: &str = "fd00::77";
const CLIENT_V6: &str = "fd00::2";

/// An HTTP load balancer on 127.0.0.1:`http` and [::1]:`http_v6`, and a TCP one on
/// 127.0.0.1:`tcp`, all to ORIGINAL_DESTINATION services.
fn config(http: u16, http_v6: u16, tcp: u16) -> String {
    format!(
        r#"
backendServices:
- {{name: passthrough, localityLbPolicy: ORIGINAL_DESTINATION}}
- {{name: tcp-passthrough, protocol: TCP, localityLbPolicy: ORIGINAL_DESTINATION}}
urlMaps:
- {{name: m, defaultService: passthrough}}
targetHttpProxies:
- {{name: p, urlMap: m}}
targetTcpProxies:
- {{name: tp, service: tcp-passthrough}}
forwardingRules:
- {{name: http-rule, IPAddress: 127.0.0.1, portRange: "{http}", target: p}}
- {{name: tcp-rule, IPAddress: 127.0.0.1, portRange: "{tcp}", target: tp}}
- {{name: http-v6-rule, ipVersion: IPV6, IPAddress: '::1', portRange: "{http_v6}", target: p}}
"#
    )
}

/// A backend at `address` answering each HTTP request (or, with `http` false, each TCP
/// connection) with `{name} from {the caller's IP}`.
async fn start_caller_backend(name: &'static str, address: SocketAddr, http: bool) {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            let answer = format!("{name} from {}", peer.ip());
            tokio::spawn(async move {
                if !http {
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                    return;
                }
                let service = service_fn(move |_request| {
                    let answer = answer.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(answer)),
                        ))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// Redirects connections from `client` to `original`:`port` to the sidecar's listener at
/// `to` (its address and port).
fn redirect(client: IpAddr, original: IpAddr, port: u16, to: SocketAddr) {
    let (port, to) = (port.to_string(), to.to_string());
    let (from, original) = (client.to_string(), original.to_string());
    add_nat_rule(
        client.is_ipv6(),
        &[
            "OUTPUT",
            "-p",
            "tcp",
            "-s",
            &from,
            "-d",
            &original,
            "--dport",
            &port,
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ],
    );
}

/// An Envoy listening on 127.0.0.1:`listen` with the original_dst listener filter, sending
/// every request to an ORIGINAL_DST cluster.
fn envoy_with_original_dst(listen: u16) -> String {
    format!(
        r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 9901}}}}
static_resources:
  listeners:
  - name: redirected
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: redirected
          route_config:
            virtual_hosts:
            - {{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: passthrough}}}}]}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - {{name: passthrough, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 5s}}
"#
    )
}

/// The answer to GET `url` from `client`, which must be a 200.
async fn get_ok(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.unwrap()
}

/// What a TCP connection from [`CLIENT`] to `to` reads until the other side closes.
async fn read_tcp_from_client(to: SocketAddr) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(CLIENT, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let mut read = String::new();
    stream.read_to_string(&mut read).await.unwrap();
    read
}

#[test]
fn redirected_connections_go_to_their_original_destination_and_the_listener_itself_is_refused() {
    in_private_network(|| async {
        let (original_v6, client_v6): (IpAddr, IpAddr) =
            (ORIGINAL_V6.parse().unwrap(), CLIENT_V6.parse().unwrap());
        add_loopback_address(&format!("{ORIGINAL_V6}/128"));
        add_loopback_address(&format!("{CLIENT_V6}/128"));
        let (http_port, tcp_port) = (free_port(), free_port());
        start_caller_backend("http", SocketAddr::new(ORIGINAL, http_port), true).await;
        start_caller_backend("http", SocketAddr::new(original_v6, http_port), true).await;
        start_caller_backend("tcp", SocketAddr::new(ORIGINAL, tcp_port), false).await;
        let (http_listen, http_v6_listen, tcp_listen) = (free_port(), free_port(), free_port());
        let switchyard = Switchyard::start(&config(http_listen, http_v6_listen, tcp_listen)).await;
        let sidecar = Sidecar::start(
            "envoy-bootstrap.yaml",
            switchyard.running.xds_addr,
            "sidecar-original-dst",
        )
        .await;
        switchyard.wait_for_acks("sidecar-original-dst").await;
        sidecar.wait_ready().await;
        let sidecar_at = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);
        redirect(
            CLIENT,
            ORIGINAL,
            http_port,
            sidecar_at("127.0.0.1", http_listen),
        );
        redirect(
            CLIENT,
            ORIGINAL,
            tcp_port,
            sidecar_at("127.0.0.1", tcp_listen),
        );
        redirect(
            client_v6,
            original_v6,
            http_port,
            sidecar_at("::1", http_v6_listen),
        );

        // HTTP: the client asks for 127.0.0.77; the sidecar (127.0.0.1) calls it there.
        let client = reqwest::Client::builder()
            .local_address(CLIENT)
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("http://{ORIGINAL}:{http_port}/");
        for _ in 0..3 {
            assert_eq!(get_ok(&client, &url).await, "http from 127.0.0.1");
        }
        // Envoy with the listener filter, for another original port, answers the same.
        let (envoy_port, envoy_listen) = (free_port(), free_port());
        start_caller_backend("http", SocketAddr::new(ORIGINAL, envoy_port), true).await;
        let envoy = Envoy::launch(
            &envoy_with_original_dst(envoy_listen),
            "envoy-original-dst",
            1,
        )
        .await;
        let envoy_at = sidecar_at("127.0.0.1", envoy_listen);
        wait_for("Envoy's listener", || async {
            tokio::net::TcpStream::connect(envoy_at)
                .await
                .ok()
                .map(drop)
        })
        .await;
        redirect(CLIENT, ORIGINAL, envoy_port, envoy_at);
        let through_envoy = get_ok(&client, &format!("http://{ORIGINAL}:{envoy_port}/")).await;
        assert_eq!(
            through_envoy, "http from 127.0.0.1",
            "through Envoy ({})",
            envoy.admin
        );
        // IPv6: the sidecar calls fd00::77 from an address of its own choosing, not the
        // client's.
        let client_v6 = reqwest::Client::builder()
            .local_address(client_v6)
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("http://[{ORIGINAL_V6}]:{http_port}/");
        let response = client_v6.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let answer = response.text().await.unwrap();
        assert!(
            answer.starts_with("http from ") && !answer.ends_with(CLIENT_V6),
            "GET {url}: {answer}"
        );
        // TCP proxy: the same, a connection at a time.
        let read = read_tcp_from_client(SocketAddr::new(ORIGINAL, tcp_port)).await;
        assert_eq!(read, "tcp from 127.0.0.1");

        // Straight to the listener: its own address is the destination, refused, not looped.
        let own = format!("http://127.0.0.1:{http_listen}/");
        let response = http().get(&own).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 502, "GET {own}: {body}");
        assert!(body.contains("own listener"), "GET {own}: {body}");
        assert!(
            sidecar.log().contains("is this proxy's own listener"),
            "the sidecar logs the refusal"
        );
        let read = read_tcp_from_client(SocketAddr::from(([127, 0, 0, 1], tcp_listen))).await;
        assert_eq!(
            read, "",
            "a TCP connection to the listener itself is closed"
        );
    });
}
