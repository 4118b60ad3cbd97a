//! The AWS dialect for proxyless gRPC clients (real grpcio processes): a listener's
//! `Metadata.Switchyard.ProxylessHosts` names what they dial; slow start reaches them as
//! stepped locality weights, measured at four points of the ramp; without cross-zone load
//! balancing a client calls its own zone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::aws_alb::{attribute_items, target_list};
use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::*;

/// A gRPC target group behind an HTTPS listener that proxyless clients reach as
/// `xds:///who.example:<listen>`, with slow start over 30 s and no health check (a target
/// added by an edit takes traffic at once).
fn grpc_template(listen: u16, ports: &[u16]) -> String {
    let zoned: Vec<(u16, &str)> = ports.iter().map(|port| (*port, "us-east-1a")).collect();
    grpc_zoned_template(listen, &zoned, &[("slow_start.duration_seconds", "30")])
}

/// As [`grpc_template`], each target in its own zone, with `attributes`.
fn grpc_zoned_template(
    listen: u16,
    targets: &[(u16, &str)],
    attributes: &[(&str, &str)],
) -> String {
    let certs = repo_root().join("examples/certs");
    let ports: Vec<u16> = targets.iter().map(|(port, _)| *port).collect();
    let attributes = attribute_items(attributes);
    let targets = target_list(targets);
    format!(
        r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties: {{Type: application}}
  Https:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Metadata: {{Switchyard: {{ProxylessHosts: [who.example]}}}}
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {listen}
      Protocol: HTTPS
      Certificates:
      - {{CertificateFile: {certs}/www.example.test.pem, PrivateKeyFile: {certs}/www.example.test.key}}
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Who}}]
  Who:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      ProtocolVersion: GRPC
      Port: {first}
      HealthCheckEnabled: false
      Targets: [{targets}]
      TargetGroupAttributes:
{attributes}"#,
        certs = certs.display(),
        first = ports[0],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_new_target_up_linearly_through_grpcio() {
    let old = GrpcBackend::start("old").await;
    let new = GrpcBackend::start("new").await;
    let listen = free_port();
    let switchyard = Switchyard::start(&grpc_template(listen, &[old.port()])).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "aws-slow-start-grpcio",
        "us-east-1",
        "us-east-1a",
    );
    let target = format!("xds:///who.example:{listen}");
    let mut client = GrpcClient::start(Library::Grpcio, &target, &node).await;
    let first = client.calls(20, None, 0).await;
    assert_eq!(first.tally.get("old"), Some(&20), "{:?}", first.tally);
    switchyard
        .edit(&grpc_template(listen, &[old.port(), new.port()]))
        .await;
    let added = Instant::now();
    // Switchyard steps the new target's locality weight: max(0.01, t / 30 s) of the old
    // target's, so its share is w / (1 + w). Measured over 200 calls at several points.
    let mut shares = Vec::new();
    for at in [8.0, 16.0, 24.0, 34.0] {
        let wait = Duration::from_secs_f64(at).saturating_sub(added.elapsed());
        tokio::time::sleep(wait).await;
        let start = added.elapsed().as_secs_f64();
        let calls = client.calls(200, None, 0).await;
        assert!(calls.errors.is_empty(), "{:?}", calls.errors);
        let middle = (start + added.elapsed().as_secs_f64()) / 2.0;
        let share = share(&calls.tally, "new");
        let weight = (middle / 30.0).clamp(0.01, 1.0);
        shares.push((middle, share, weight / (1.0 + weight)));
    }
    eprintln!("measured (seconds, share, expected): {shares:?}");
    for (at, share, expected) in &shares {
        assert!(
            (share - expected).abs() <= 0.1,
            "at {at:.1} s the new target's share is {share:.2}, the linear ramp gives {expected:.2} (±0.10): {shares:?}"
        );
    }
    assert!(
        shares.windows(2).all(|pair| pair[1].1 > pair[0].1 - 0.05),
        "the share only grows: {shares:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cross_zone_a_grpcio_client_calls_its_own_zone() {
    let near = GrpcBackend::start("near").await;
    let far = GrpcBackend::start("far").await;
    let listen = free_port();
    let zoned = [(near.port(), "us-east-1a"), (far.port(), "us-east-1b")];
    let off = [("load_balancing.cross_zone.enabled", "false")];
    let switchyard = Switchyard::start(&grpc_zoned_template(listen, &zoned, &off)).await;
    let node = bootstrap(
        switchyard.running.xds_addr,
        "aws-zone-grpcio",
        "us-east-1",
        "us-east-1a",
    );
    let target = format!("xds:///who.example:{listen}");
    let mut client = GrpcClient::start(Library::Grpcio, &target, &node).await;
    let calls = client.calls(60, None, 0).await;
    assert!(calls.errors.is_empty(), "{:?}", calls.errors);
    assert_eq!(
        calls.tally,
        BTreeMap::from([("near".to_string(), 60)]),
        "a client in us-east-1a calls only us-east-1a"
    );
    // With cross-zone on, the same client spreads over both zones.
    switchyard
        .edit(&grpc_zoned_template(listen, &zoned, &[]))
        .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let calls = client.calls(40, None, 0).await;
        if calls.tally.contains_key("far") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for calls to reach us-east-1b: {:?}",
            calls.tally
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
