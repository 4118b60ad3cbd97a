//! AWS defaults and attributes end to end through a real Envoy, with backends on 127.0.0.1:
//! anomaly mitigation off unless asked for, app_cookie stickiness that follows the
//! application's own cookie, and the load balancer and listener attributes that have an
//! Envoy meaning (idle timeout, client keep-alive, invalid header fields, X-Forwarded-For
//! processing and client port, the Host header, TLS version and cipher headers), each seen in
//! what the backend received or in Envoy's config dump.

use serde_json::Value;

use crate::aws_alb::{attribute_items, http_front, target_list, Alb};
use crate::common::*;

/// A target group named `name` of the targets at `ports` (in us-east-1a), unchecked, with
/// `attributes`, as a template's resource.
fn group(name: &str, ports: &[u16], attributes: &[(&str, &str)]) -> String {
    let zoned: Vec<(u16, &str)> = ports.iter().map(|port| (*port, "us-east-1a")).collect();
    format!(
        r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: {first}
      HealthCheckEnabled: false
      Targets: [{targets}]
      TargetGroupAttributes:
      - {{Key: deregistration_delay.timeout_seconds, Value: "0"}}
{attributes}"#,
        first = ports[0],
        targets = target_list(&zoned),
        attributes = attribute_items(attributes),
    )
}

/// Envoy's dynamic resources of one kind (`dynamic_active_clusters`, …) from its config dump.
async fn envoy_resources(alb: &Alb, section: &str, inner: &str) -> Vec<Value> {
    let dump = get_json(&format!("{}/config_dump", alb.envoy.admin))
        .await
        .expect("Envoy's config dump");
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|config| config[section].as_array())
        .flatten()
        .map(|entry| entry[inner].clone())
        .collect()
}

/// The cluster Envoy runs for `name`.
async fn envoy_cluster(alb: &Alb, name: &str) -> Value {
    envoy_resources(alb, "dynamic_active_clusters", "cluster")
        .await
        .into_iter()
        .find(|cluster| cluster["name"] == name)
        .unwrap_or_else(|| panic!("Envoy has no cluster {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_random_has_no_anomaly_mitigation_unless_it_is_turned_on() {
    let backend = Backend::start("b").await;
    let listen = free_port();
    let random = [("load_balancing.algorithm.type", "weighted_random")];
    let mitigated = [
        ("load_balancing.algorithm.type", "weighted_random"),
        ("load_balancing.algorithm.anomaly_mitigation", "on"),
    ];
    let template = format!(
        "{}{}{}",
        http_front(listen, "Plain"),
        group("Plain", &[backend.port()], &random),
        group("Mitigated", &[backend.port()], &mitigated),
    );
    let alb = Alb::start(&template, "aws-anomaly-default", "/", "b").await;
    let plain = envoy_cluster(&alb, "Plain").await;
    assert_eq!(plain["lb_policy"], "RANDOM", "{plain}");
    assert!(
        plain.get("outlier_detection").is_none(),
        "the API's default is off: no outlier detection without the attribute: {plain}"
    );
    let mitigated = envoy_cluster(&alb, "Mitigated").await;
    assert!(
        mitigated.get("outlier_detection").is_some(),
        "`on` turns it on: {mitigated}"
    );
}
