//! The sidecar (`switchyard proxy`) with real processes on loopback (its answers against
//! Envoy's are compared in differential/): the sidecar follows edits without a failed request;
//! it keeps serving while the control plane is down and converges when it is back (SotW and
//! delta); it carries raw bytes through a TCP listener, and gRPC over HTTP/2 with its
//! status; SIGTERM lets the request in flight finish.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common;
use crate::common::sidecar::Sidecar;
use crate::common::*;

const SERVICES: [&str; 7] = [
    "web", "api", "admin", "mobile", "shop", "canary-a", "canary-b",
];

/// A load balancer on 127.0.0.1:`listen` with host rules, path rules, route rules with header
/// matches and a weighted split; `ports` are the backends of SERVICES, in order.
fn config(listen: u16, ports: &BTreeMap<&str, u16>, canary_a: u32, canary_b: u32) -> String {
    let mut text = String::from("networkEndpointGroups:\n");
    for service in SERVICES {
        text.push_str(&format!(
            "- {{name: {service}-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}\n",
            ports[service]
        ));
    }
    text.push_str("backendServices:\n");
    for service in SERVICES {
        text.push_str(&format!(
            "- {{name: {service}, backends: [{{group: zones/us-central1-a/networkEndpointGroups/{service}-neg, balancingMode: RATE, maxRate: 100}}]}}\n"
        ));
    }
    text.push_str(&format!(
        r#"urlMaps:
- name: lb
  defaultService: global/backendServices/web
  hostRules:
  - {{hosts: [shop.example.com], pathMatcher: shop}}
  - {{hosts: ['*.example.com', '*'], pathMatcher: main}}
  pathMatchers:
  - name: shop
    defaultService: global/backendServices/shop
    pathRules:
    - {{paths: [/cart, /cart/*], service: global/backendServices/api}}
  - name: main
    defaultService: global/backendServices/web
    routeRules:
    - priority: 1
      matchRules: [{{prefixMatch: /, headerMatches: [{{headerName: x-client, exactMatch: mobile}}]}}]
      service: global/backendServices/mobile
    - priority: 2
      matchRules: [{{prefixMatch: /admin, headerMatches: [{{headerName: x-role, presentMatch: true}}]}}]
      service: global/backendServices/admin
    - priority: 3
      matchRules: [{{fullPathMatch: /exact}}]
      service: global/backendServices/admin
    - priority: 4
      matchRules: [{{prefixMatch: /api}}]
      service: global/backendServices/api
    - priority: 5
      matchRules: [{{prefixMatch: /v, headerMatches: [{{headerName: x-version, regexMatch: 'v[0-9]+'}}]}}]
      service: global/backendServices/api
    - priority: 6
      matchRules: [{{prefixMatch: /range, headerMatches: [{{headerName: x-n, rangeMatch: {{rangeStart: 1, rangeEnd: 10}}}}]}}]
      service: global/backendServices/admin
    - priority: 7
      matchRules: [{{prefixMatch: /ci/, ignoreCase: true}}]
      service: global/backendServices/admin
    - priority: 8
      matchRules: [{{prefixMatch: /not, headerMatches: [{{headerName: x-debug, prefixMatch: 'on', invertMatch: true}}]}}]
      service: global/backendServices/api
    - priority: 9
      matchRules: [{{prefixMatch: /split}}]
      routeAction:
        weightedBackendServices:
        - {{backendService: global/backendServices/canary-a, weight: {canary_a}}}
        - {{backendService: global/backendServices/canary-b, weight: {canary_b}}}
targetHttpProxies:
- {{name: lb-proxy, urlMap: global/urlMaps/lb}}
forwardingRules:
- {{name: lb-http, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/lb-proxy}}
"#
    ));
    text
}

/// The body (backend name) or status a request through `listen` gets.
async fn send(listen: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = http()
        .get(format!("http://127.0.0.1:{listen}{path}"))
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match request.send().await {
        Ok(response) if response.status() == 200 => response.text().await.unwrap_or_default(),
        Ok(response) => format!("<{}>", response.status().as_u16()),
        Err(error) => format!("<error {error}>"),
    }
}

struct Backends(Vec<Backend>);

impl Backends {
    async fn start() -> Backends {
        let mut all = Vec::new();
        for service in SERVICES {
            all.push(Backend::start(service).await);
        }
        Backends(all)
    }

    fn ports(&self) -> BTreeMap<&'static str, u16> {
        SERVICES
            .iter()
            .zip(&self.0)
            .map(|(s, b)| (*s, b.port()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sidecar_follows_edits_without_a_failed_request() {
    let backends = Backends::start().await;
    let ports = backends.ports();
    let listen = free_port();
    let switchyard = Switchyard::start(&config(listen, &ports, 100, 0)).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        switchyard.running.xds_addr,
        "sidecar-edits",
    )
    .await;
    sidecar.wait_ready().await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/split"), "canary-a").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let body = send(listen, "any.host", "/split", &[]).await;
                sent.fetch_add(1, Ordering::Relaxed);
                // Errors and non-200 answers show as `<…>`; once the route moves, /split
                // falls to the default service, which is an answer too.
                if body.starts_with('<') {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    switchyard.edit(&config(listen, &ports, 0, 100)).await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/split"), "canary-b").await;
    // A route removed and one added: /split goes, /api stays.
    let edited =
        config(listen, &ports, 0, 100).replace("prefixMatch: /split", "prefixMatch: /moved");
    switchyard.edit(&edited).await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/moved"), "canary-b").await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 0);
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the edits"
    );
    assert_eq!(send(listen, "any.host", "/split", &[]).await, "web");
}

async fn control_plane_outage(bootstrap: &str, node_id: &str) {
    let backends = Backends::start().await;
    let ports = backends.ports();
    let listen = free_port();
    let first = Switchyard::start(&config(listen, &ports, 100, 0)).await;
    let xds = first.running.xds_addr;
    let sidecar = Sidecar::start(bootstrap, xds, node_id).await;
    sidecar.wait_ready().await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/split"), "canary-a").await;

    first.running.shutdown().await;
    wait_for("the sidecar to see the control plane gone", || async {
        (sidecar.stat("switchyard_proxy_xds_connected").await == 0).then_some(())
    })
    .await;
    for _ in 0..20 {
        assert_eq!(
            send(listen, "any.host", "/split", &[]).await,
            "canary-a",
            "serving while the control plane is down"
        );
    }
    // Back on the same address with an edit the sidecar has not seen.
    let second = Switchyard::start_with(&config(listen, &ports, 0, 100), move |options| {
        options.xds_listen = xds;
    })
    .await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/split"), "canary-b").await;
    second.wait_for_acks(node_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sidecar_rides_out_a_control_plane_outage_over_sotw() {
    control_plane_outage("envoy-bootstrap.yaml", "sidecar-outage-sotw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sidecar_rides_out_a_control_plane_outage_over_delta() {
    control_plane_outage("envoy-bootstrap-delta.yaml", "sidecar-outage-delta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tcp_listener_carries_raw_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = TcpBackend::start("raw").await;
    let listen = free_port();
    let text = format!(
        r#"
networkEndpointGroups:
- {{name: raw-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}
backendServices:
- {{name: raw, protocol: TCP, backends: [{{group: zones/us-central1-a/networkEndpointGroups/raw-neg, balancingMode: CONNECTION, maxConnections: 100}}]}}
targetTcpProxies:
- {{name: raw-proxy, service: global/backendServices/raw}}
forwardingRules:
- {{name: raw-tcp, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetTcpProxies/raw-proxy}}
"#,
        backend.addr.port()
    );
    let switchyard = Switchyard::start(&text).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        switchyard.running.xds_addr,
        "sidecar-tcp",
    )
    .await;
    sidecar.wait_ready().await;
    let seen = wait_for("the TCP listener to answer", || async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", listen))
            .await
            .ok()?;
        stream.write_all(b"ping\n").await.ok()?;
        let mut answer = vec![0u8; 64];
        let n = stream.read(&mut answer).await.ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&answer[..n]).to_string())
    })
    .await;
    assert!(seen.contains("raw"), "{seen}");
}

/// Calls `path` of the Who service through `channel`.
async fn call_who(
    channel: tonic::transport::Channel,
    path: &'static str,
) -> Result<String, tonic::Status> {
    use common::grpc::{WhoReply, WhoRequest};
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<WhoRequest, WhoReply>::default();
    let reply = client
        .unary(
            tonic::Request::new(WhoRequest { delay_ms: 0 }),
            tonic::codegen::http::uri::PathAndQuery::from_static(path),
            codec,
        )
        .await?;
    Ok(reply.into_inner().name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_passes_through_over_http2_with_its_status() {
    let backend = common::grpc::GrpcBackend::start("who-1").await;
    let listen = free_port();
    let text = format!(
        r#"
networkEndpointGroups:
- {{name: who-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {}}}]}}
backendServices:
- {{name: who, protocol: H2C, backends: [{{group: zones/us-central1-a/networkEndpointGroups/who-neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- {{name: grpc-map, defaultService: global/backendServices/who}}
targetHttpProxies:
- {{name: grpc-proxy, urlMap: global/urlMaps/grpc-map}}
forwardingRules:
- {{name: grpc-in, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/grpc-proxy}}
"#,
        backend.port()
    );
    let switchyard = Switchyard::start(&text).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        switchyard.running.xds_addr,
        "sidecar-grpc",
    )
    .await;
    sidecar.wait_ready().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{listen}"))
        .unwrap()
        .connect()
        .await
        .expect("the sidecar's listener accepts HTTP/2");
    for _ in 0..20 {
        let name = call_who(channel.clone(), "/switchyard.test.Who/Name").await;
        assert_eq!(name.map_err(|s| s.to_string()).as_deref(), Ok("who-1"));
    }
    // A server-streaming call: every message, in order, then the OK status.
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();
    let codec =
        tonic_prost::ProstCodec::<common::grpc::WhoRequest, common::grpc::WhoReply>::default();
    let mut stream = client
        .server_streaming(
            tonic::Request::new(common::grpc::WhoRequest { delay_ms: 50 }),
            tonic::codegen::http::uri::PathAndQuery::from_static("/switchyard.test.Who/Count"),
            codec,
        )
        .await
        .expect("the streaming call starts")
        .into_inner();
    let mut names = Vec::new();
    while let Some(reply) = stream.message().await.expect("the stream ends cleanly") {
        names.push(reply.name);
    }
    let expected: Vec<String> = (0..50).map(|i| format!("who-1-{i}")).collect();
    assert_eq!(names, expected);
    // A status the backend answers in its trailers comes through as it is.
    let status = call_who(channel, "/switchyard.test.Who/Missing")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that answers after a second.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_port = slow.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = slow.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let _ = stream.read(&mut request).await;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
                    .await;
            });
        }
    });
    let listen = free_port();
    let text = format!(
        r#"
networkEndpointGroups:
- {{name: slow-neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {slow_port}}}]}}
backendServices:
- {{name: slow, backends: [{{group: zones/us-central1-a/networkEndpointGroups/slow-neg, balancingMode: RATE, maxRate: 100}}]}}
urlMaps:
- {{name: m, defaultService: global/backendServices/slow}}
targetHttpProxies:
- {{name: p, urlMap: global/urlMaps/m}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: global/targetHttpProxies/p}}
"#
    );
    let switchyard = Switchyard::start(&text).await;
    let mut sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        switchyard.running.xds_addr,
        "sidecar-drain",
    )
    .await;
    sidecar.wait_ready().await;
    let in_flight = tokio::spawn(send(listen, "any.host", "/", &[]));
    wait_for("the request to be in flight", || async {
        let active = sidecar
            .stat("switchyard_proxy_upstream_requests_total")
            .await;
        (active >= 1).then_some(())
    })
    .await;
    sidecar.terminate();
    assert_eq!(
        in_flight.await.unwrap(),
        "slow",
        "the request in flight finished"
    );
    let status = sidecar.exited().await;
    assert!(status.success(), "{status}");
}
