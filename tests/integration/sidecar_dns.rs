//! INTERNET_FQDN_PORT NEGs (DNS clusters) through the sidecar and through Envoy, with the same
//! config and the same answers: names resolved by a DNS server the test runs on loopback (the
//! sidecar's `--dns-resolver`, Envoy's c-ares resolvers), in the families each service's
//! ipAddressSelectionPolicy allows, and `localhost` from /etc/hosts; and, through the
//! sidecar, a changed answer followed by new requests while a connection opened before and a
//! request in flight carry on.

use std::net::{IpAddr, SocketAddr};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::common::dns_server::DnsServer;
use crate::common::echo::{EchoBackend, DELAY_HEADER};
use crate::common::sidecar::Sidecar;
use crate::common::*;

/// A service reached by name: its name (also the host that routes to it), the FQDN its NEG
/// names, and its ipAddressSelectionPolicy.
struct Named {
    service: &'static str,
    fqdn: &'static str,
    policy: &'static str,
}

/// One INTERNET_FQDN_PORT NEG (on `port`) and backend service per `named`, each routed to by
/// the host `{service}.example.test` (the first one also by default).
fn config(listen: u16, port: u16, named: &[Named]) -> String {
    let mut negs = String::new();
    let mut services = String::new();
    let mut hosts = String::new();
    let mut matchers = String::new();
    for Named {
        service,
        fqdn,
        policy,
    } in named
    {
        negs += &format!(
            "- {{name: {service}-neg, networkEndpointType: INTERNET_FQDN_PORT, endpoints: [{{fqdn: {fqdn}, port: {port}}}]}}\n"
        );
        services += &format!(
            "- {{name: {service}, ipAddressSelectionPolicy: {policy}, backends: [{{group: global/networkEndpointGroups/{service}-neg}}]}}\n"
        );
        hosts += &format!("  - {{hosts: [{service}.example.test], pathMatcher: {service}}}\n");
        matchers += &format!("  - {{name: {service}, defaultService: {service}}}\n");
    }
    format!(
        "networkEndpointGroups:\n{negs}backendServices:\n{services}urlMaps:\n- name: lb\n  \
         defaultService: {first}\n  hostRules:\n{hosts}  pathMatchers:\n{matchers}\
         targetHttpProxies:\n- {{name: p, urlMap: lb}}\nforwardingRules:\n\
         - {{name: f, IPAddress: 127.0.0.1, portRange: \"{listen}\", target: p}}\n",
        first = named[0].service
    )
}

/// Envoy's bootstrap with the test's DNS server as its only resolver (c-ares, which reads
/// /etc/hosts first, as the sidecar does).
fn envoy_resolver(dns: SocketAddr) -> String {
    format!(
        "typed_dns_resolver_config:\n  name: envoy.network.dns_resolver.cares\n  typed_config:\n    \
         \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig\n    \
         resolvers:\n    - socket_address: {{address: {}, port_value: {}}}\n\ndynamic_resources:",
        dns.ip(),
        dns.port()
    )
}

/// The backend that answered GET / with `host`, or None when the request failed.
async fn backend_for(client: &reqwest::Client, listen: u16, host: &str) -> Option<String> {
    let answer: Value = client
        .get(format!("http://127.0.0.1:{listen}/"))
        .header("host", host)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["backend"].as_str().map(str::to_string)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Starts the proxy `through` as `node_id`, its resolver the test's DNS server.
async fn start_proxy(
    through: Through,
    switchyard: &Switchyard,
    node_id: &str,
    dns: SocketAddr,
) -> Proxy {
    let xds = switchyard.running.xds_addr;
    let proxy = match through {
        Through::Envoy => {
            let resolver = envoy_resolver(dns);
            Proxy::Envoy(
                Envoy::start_replacing(
                    "envoy-bootstrap.yaml",
                    &[xds],
                    node_id,
                    "us-central1",
                    "us-central1-a",
                    &[("dynamic_resources:", &resolver)],
                )
                .await,
            )
        }
        Through::Sidecar => {
            let resolver = dns.to_string();
            Proxy::Sidecar(
                Sidecar::start_with_args(
                    "envoy-bootstrap.yaml",
                    xds,
                    node_id,
                    &[],
                    &["--dns-resolver", &resolver],
                )
                .await,
            )
        }
    };
    switchyard.wait_for_acks(node_id).await;
    proxy
}

/// Each family policy picks the backend on the address family it allows: a name with both an
/// A and an AAAA record reaches the IPv4 backend for IPV4_ONLY and the IPv6 one for
/// IPV6_ONLY and PREFER_IPV6 (Envoy's AUTO); PREFER_IPV6 falls back to IPv4 for a name with
/// no AAAA record; `localhost` is answered locally (Envoy's c-ares reads /etc/hosts, hickory
/// answers it itself), never by the server, which gives another address for it.
async fn families_through(through: Through) {
    let node_id = format!("dns-families-{through:?}").to_lowercase();
    let dns = DnsServer::start().await;
    dns.set("dual.example.test", &[ip("127.0.0.1"), ip("::1")], 30);
    dns.set("v4.example.test", &[ip("127.0.0.1")], 30);
    // Were the server asked about `localhost`, this address (no backend) would answer.
    dns.set("localhost", &[ip("127.0.0.2")], 30);
    let v4 = EchoBackend::start_controllable_at("v4", "127.0.0.1:0".parse().unwrap()).await;
    let port = v4.port();
    let v6 = EchoBackend::start_controllable_at("v6", SocketAddr::new(ip("::1"), port)).await;
    let listen = free_port();
    let named = [
        Named {
            service: "ipv4-only",
            fqdn: "dual.example.test",
            policy: "IPV4_ONLY",
        },
        Named {
            service: "ipv6-only",
            fqdn: "dual.example.test",
            policy: "IPV6_ONLY",
        },
        Named {
            service: "prefer-ipv6",
            fqdn: "dual.example.test",
            policy: "PREFER_IPV6",
        },
        Named {
            service: "prefer-ipv6-fallback",
            fqdn: "v4.example.test",
            policy: "PREFER_IPV6",
        },
        Named {
            service: "hosts-file",
            fqdn: "localhost",
            policy: "IPV4_ONLY",
        },
    ];
    let switchyard = Switchyard::start(&config(listen, port, &named)).await;
    let proxy = start_proxy(through, &switchyard, &node_id, dns.address).await;
    let client = http();
    let expected = [
        ("ipv4-only", "v4"),
        ("ipv6-only", "v6"),
        ("prefer-ipv6", "v6"),
        ("prefer-ipv6-fallback", "v4"),
        ("hosts-file", "v4"),
    ];
    for (service, backend) in expected {
        let host = format!("{service}.example.test");
        let answered = wait_for(&format!("{through:?}: {host} to answer"), || async {
            backend_for(&client, listen, &host).await
        })
        .await;
        assert_eq!(answered, backend, "{through:?}: {service}");
    }
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
    assert!(
        dns.questions() > 0,
        "{through:?}: the test's server was asked"
    );
    drop((proxy, v4, v6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_clusters_resolve_each_family_alike_through_envoy_and_the_sidecar() {
    families_through(Through::Envoy).await;
    families_through(Through::Sidecar).await;
}

/// GET / on a connection already open; the backend that answered.
async fn backend_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
) -> Result<String, String> {
    let (_, bytes) = get_on_connection(sender, "/", host).await?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(body["backend"].as_str().unwrap_or_default().to_string())
}

/// The name moves from 127.0.0.1 to 127.0.0.2 (same port, another backend): new requests
/// reach the new backend (refreshed at the cluster's rate, Envoy's default 5 s, since
/// Switchyard sets none); a request in flight to the old one completes, and a client
/// connection opened before the change keeps working, now sent to the new backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_follows_a_changed_answer_without_dropping_connections() {
    let dns = DnsServer::start().await;
    dns.set("moving.example.test", &[ip("127.0.0.1")], 1);
    let first = EchoBackend::start_controllable_at("first", "127.0.0.1:0".parse().unwrap()).await;
    let port = first.port();
    let second =
        EchoBackend::start_controllable_at("second", SocketAddr::new(ip("127.0.0.2"), port)).await;
    let listen = free_port();
    let named = [Named {
        service: "moving",
        fqdn: "moving.example.test",
        policy: "IPV4_ONLY",
    }];
    let switchyard = Switchyard::start(&config(listen, port, &named)).await;
    let proxy = start_proxy(Through::Sidecar, &switchyard, "dns-moving", dns.address).await;
    let host = "moving.example.test";
    let before = wait_for("the name to answer", || async {
        backend_for(&http(), listen, host).await
    })
    .await;
    assert_eq!(before, "first");

    // A client connection opened, and used, before the change.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", listen))
        .await
        .unwrap();
    let (mut kept, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(backend_on(&mut kept, host).await.unwrap(), "first");
    // A request the old backend holds for 20 s: far longer than the 5 s refresh, so the
    // change happens while it is in flight.
    let in_flight = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{listen}/"))
            .header("host", host)
            .header(DELAY_HEADER, "20000")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body["backend"].as_str().map(str::to_string)))
    });

    let questions_before = dns.questions();
    dns.set("moving.example.test", &[ip("127.0.0.2")], 1);
    let changed = std::time::Instant::now();
    wait_for("new requests to reach the new address", || async {
        (backend_for(&http(), listen, host).await.as_deref() == Some("second")).then_some(())
    })
    .await;
    eprintln!(
        "the new address was reached {:?} after the change",
        changed.elapsed()
    );
    assert!(
        dns.questions() > questions_before,
        "the name was asked again"
    );
    assert!(
        !in_flight.is_finished(),
        "the request in flight outlives the change"
    );
    assert_eq!(
        backend_on(&mut kept, host).await,
        Ok("second".to_string()),
        "the connection opened before the change still carries requests"
    );
    assert_eq!(
        in_flight.await.unwrap(),
        Ok((200, Some("first".to_string()))),
        "the request in flight completes on the old backend"
    );
    drop((proxy, first, second));
}
