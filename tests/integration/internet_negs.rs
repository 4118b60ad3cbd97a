//! Internet NEGs through a real Envoy: an INTERNET_FQDN_PORT backend is a name the proxy
//! resolves (here `localhost`), an INTERNET_IP_PORT backend an address served over EDS; both
//! reach their backend, and the FQDN service is not an EDS cluster.

use serde_json::Value;

use crate::common::echo::EchoBackend;
use crate::common::*;

fn config(listen: u16, by_name: u16, by_address: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- name: by-name
  networkEndpointType: INTERNET_FQDN_PORT
  endpoints: [{{fqdn: localhost, port: {by_name}}}]
- name: by-address
  networkEndpointType: INTERNET_IP_PORT
  defaultPort: {by_address}
  endpoints: [{{ipAddress: 127.0.0.1}}]
backendServices:
- {{name: named, ipAddressSelectionPolicy: IPV4_ONLY, backends: [{{group: global/networkEndpointGroups/by-name}}]}}
- {{name: addressed, backends: [{{group: global/networkEndpointGroups/by-address}}]}}
urlMaps:
- name: lb
  defaultService: named
  hostRules: [{{hosts: [addressed.example.test], pathMatcher: addressed}}]
  pathMatchers: [{{name: addressed, defaultService: addressed}}]
targetHttpProxies:
- {{name: p, urlMap: lb}}
forwardingRules:
- {{name: f, IPAddress: 127.0.0.1, portRange: "{listen}", target: p}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internet_negs_reach_a_name_and_an_address() {
    let named = EchoBackend::start_named("named").await;
    let addressed = EchoBackend::start_named("addressed").await;
    let listen = free_port();
    let switchyard = Switchyard::start(&config(listen, named.port(), addressed.port())).await;
    assert!(
        switchyard
            .running
            .status
            .read()
            .unwrap()
            .diagnostics
            .is_empty(),
        "{}",
        switchyard.running.status.read().unwrap().diagnostics
    );
    let envoy = Envoy::start(switchyard.running.xds_addr, "internet-envoy").await;
    switchyard.wait_for_acks("internet-envoy").await;
    let ask = |host: &'static str| async move {
        let answer: Value = http()
            .get(format!("http://127.0.0.1:{listen}/"))
            .header("host", host)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        answer["backend"].as_str().map(str::to_string)
    };
    let first = wait_for("the FQDN backend to answer", || async {
        ask("www.example.test").await
    })
    .await;
    assert_eq!(first, "named");
    let second = wait_for("the address backend to answer", || async {
        ask("addressed.example.test").await
    })
    .await;
    assert_eq!(second, "addressed");
    // The name is resolved by Envoy (a LOGICAL_DNS cluster), not sent as endpoints.
    let dump = get_json(&format!("{}/config_dump", envoy.admin))
        .await
        .unwrap();
    let text = dump.to_string();
    assert!(
        text.contains("\"LOGICAL_DNS\""),
        "the FQDN service resolves its name"
    );
}

#[test]
fn internet_negs_hold_one_endpoint_and_are_their_services_only_backend() {
    let text = "networkEndpointGroups:\n\
        - {name: two, networkEndpointType: INTERNET_FQDN_PORT, endpoints: [{fqdn: a.example.test}, {fqdn: b.example.test}]}\n\
        - {name: wrong, networkEndpointType: INTERNET_FQDN_PORT, endpoints: [{ipAddress: 192.0.2.1}]}\n\
        - {name: bad-name, networkEndpointType: INTERNET_FQDN_PORT, endpoints: [{fqdn: 'not a name'}]}\n\
        - {name: zonal, zone: us-central1-a, endpoints: [{ipAddress: 10.0.0.1, port: 80}]}\n\
        backendServices:\n\
        - {name: mixed, backends: [{group: global/networkEndpointGroups/two}, {group: zones/us-central1-a/networkEndpointGroups/zonal, balancingMode: RATE, maxRate: 1}]}\n";
    let found: Vec<String> = switchyard::config::load_str(text, "lb.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "error: lb.yaml:2: networkEndpointGroups[two].endpoints: an internet NEG holds one endpoint, not 2; make one NEG per endpoint",
            "error: lb.yaml:3: networkEndpointGroups[wrong].endpoints[0].ipAddress: an INTERNET_FQDN_PORT endpoint is a name (`fqdn`); for an address use an INTERNET_IP_PORT NEG",
            "error: lb.yaml:4: networkEndpointGroups[bad-name].endpoints[0].fqdn: `not a name` is not a domain name (labels of letters, digits and hyphens, separated by dots)",
            "error: lb.yaml:7: backendServices[mixed].backends[0].group: INTERNET_FQDN_PORT NEG `two` must be the only backend of its backend service, which has 2",
        ]
    );
}
