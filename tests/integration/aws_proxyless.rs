//! The AWS dialect for proxyless gRPC clients (real grpcio processes): a listener's
//! `Metadata.Switchyard.ProxylessHosts` names what they dial; slow start reaches them as
//! stepped locality weights, measured over a steady stream of calls at four points of the
//! ramp and one after it; without cross-zone load balancing a client calls its own zone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::aws_alb::{attribute_items, target_list};
use crate::common::grpc::{bootstrap, GrpcBackend, GrpcClient, Library};
use crate::common::ramp::{linear_ramp_share, RampChecks, RampPoint, Sample};
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

/// Calls from `client` in batches of a hundred, one batch after another, until `until` seconds
/// after `zero`: one sample per batch (at its middle), and every error status counted.
async fn steady_calls(
    client: &mut GrpcClient,
    zero: Instant,
    until: f64,
) -> (Vec<Sample>, BTreeMap<String, usize>) {
    let (mut samples, mut errors) = (Vec::new(), BTreeMap::new());
    while zero.elapsed().as_secs_f64() < until {
        let start = zero.elapsed().as_secs_f64();
        let calls = client.calls(100, None, 0).await;
        let end = zero.elapsed().as_secs_f64();
        for (status, count) in calls.errors {
            *errors.entry(status).or_default() += count;
        }
        samples.push(Sample {
            at: (start + end) / 2.0,
            answers: calls.tally.values().sum(),
            new: calls.tally.get("new").copied().unwrap_or(0),
        });
    }
    (samples, errors)
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
    // target's, so its share is w / (1 + w). It publishes a step every second (a fiftieth of
    // the window, at least a second), so the weight a client holds is on average half a
    // second old: that is the ramp expected. Calls run without a pause from here on, about a
    // thousand a second on a loaded machine.
    let (samples, errors) = steady_calls(&mut client, added, 38.0).await;
    assert!(errors.is_empty(), "every call succeeds: {errors:?}");
    let ramp = |seconds: f64| linear_ramp_share(seconds - 0.5, 30.0);
    let inside: Vec<RampPoint> = [(3.0, 9.0), (9.0, 15.0), (15.0, 21.0), (21.0, 27.0)]
        .into_iter()
        .map(|span| RampPoint::measure(&samples, span, ramp))
        .collect();
    let after = RampPoint::measure(&samples, (32.0, 38.0), ramp);
    eprintln!("measured: {inside:?} then {after:?}");
    // Each call picks a locality at random by weight, so a point may be off by chance: by
    // 0.02 (measured points have stayed within 0.012 of the ramp) plus three binomial
    // deviations of its count. A point of 6 s counts about 9000 calls (± 0.036); when the
    // shared machine stalls the client for seconds, a point may count far fewer and is judged
    // more loosely (± 0.085 at the fewest accepted, 500). A window 30% off misses the ramp by
    // 0.05 to 0.06 at 12, 18 and 24 s (39 s) or 0.08 to 0.09 (21 s); a constant share misses
    // it by 0.35 at 6 s, and rises by nothing.
    RampChecks {
        slack: 0.02,
        deviations: 3.0,
        minimum_rise: 0.15,
        minimum_answers: 500,
    }
    .assert_followed(&inside, &after);
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
