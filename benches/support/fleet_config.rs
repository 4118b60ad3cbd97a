//! Generated configs for benchmarks and load generators: `services` backend services, each
//! with two zonal NEGs of five endpoints (us-central1-a and -b), and one URL map routing
//! `/sN` to service N — the shape Istio's scale tests use, in the GCP dialect.

use std::fmt::Write;

/// The config text. `scaler` is service 0's capacityScaler in zone a (an edit changes it to
/// move one ClusterLoadAssignment and nothing else).
pub fn fleet_config(services: usize, listen_port: u16, scaler: &str) -> String {
    let mut text = String::with_capacity(services * 900);
    text.push_str("networkEndpointGroups:\n");
    for service in 0..services {
        for (zone_index, zone) in ["us-central1-a", "us-central1-b"].iter().enumerate() {
            writeln!(
                text,
                "- name: neg-{service}-{zone_index}\n  zone: {zone}\n  defaultPort: 8080\n  endpoints:"
            )
            .unwrap();
            for endpoint in 0..5 {
                writeln!(
                    text,
                    "  - {{ipAddress: 10.{}.{}.{}}}",
                    service / 250,
                    service % 250,
                    zone_index * 10 + endpoint
                )
                .unwrap();
            }
        }
    }
    text.push_str("backendServices:\n");
    for service in 0..services {
        let scaler = if service == 0 { scaler } else { "1.0" };
        writeln!(
            text,
            "- name: svc-{service}\n  backends:\n  - {{group: zones/us-central1-a/networkEndpointGroups/neg-{service}-0, balancingMode: RATE, maxRatePerEndpoint: 10, capacityScaler: {scaler}}}\n  - {{group: zones/us-central1-b/networkEndpointGroups/neg-{service}-1, balancingMode: RATE, maxRatePerEndpoint: 10}}"
        )
        .unwrap();
    }
    text.push_str("urlMaps:\n- name: fleet\n  defaultService: svc-0\n  hostRules:\n  - {hosts: ['*'], pathMatcher: all}\n  pathMatchers:\n  - name: all\n    defaultService: svc-0\n    pathRules:\n");
    for service in 0..services {
        writeln!(
            text,
            "    - {{paths: ['/s{service}', '/s{service}/*'], service: svc-{service}}}"
        )
        .unwrap();
    }
    writeln!(
        text,
        "targetHttpProxies:\n- {{name: proxy, urlMap: fleet}}\nforwardingRules:\n- {{name: fr, IPAddress: 127.0.0.1, portRange: '{listen_port}', target: proxy}}"
    )
    .unwrap();
    text
}
