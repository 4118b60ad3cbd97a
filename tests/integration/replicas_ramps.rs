//! Slow-start ramps agree across replicas: two replicas sharing health checking through a real
//! etcd serve one AWS target group with slow start to proxyless clients (which get
//! Switchyard's stepped ramp). A target recovers while the replica that does not probe it is
//! frozen (SIGSTOP) for three seconds, so it learns of the recovery from etcd that late; yet
//! once it runs again both replicas serve the same endpoint weights at the same moments,
//! because the ramp starts when the prober recorded the change and steps on the wall clock.
//! Reckoned from when each replica noticed, the late one would stay three steps behind.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use prost::Message;

use crate::common::checked::Checked;
use crate::common::etcd::Etcd;
use crate::common::process::ServeProcess;
use crate::common::sidecar_acceptance::assert_sidecar_accepts;
use crate::common::xds::{Service, SotwClient, CLUSTER, ENDPOINT};
use crate::common::*;

/// Samples of both clients' endpoints, 200 ms apart: six of the ramp's one-second steps
/// (30 s window / 50, at least a second).
const SAMPLES: usize = 30;
/// The membership lease: longer than the freeze (up to 10 s for the recovery to be seen, and
/// 3 s more), so the frozen replica is still a member sharing the probing when it runs again.
const LEASE: &str = "30";

/// One target group (slow start over 30 s, HTTP checks every 5 s, two to change) that
/// proxyless clients reach as `xds:///who.example:<listen>`.
fn config(listen: u16, targets: &[u16]) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|port| format!("{{Id: 127.0.0.1, Port: {port}, AvailabilityZone: us-east-1a}}"))
        .collect();
    format!(
        r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties: {{Type: application}}
  Web:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Metadata: {{Switchyard: {{ProxylessHosts: [who.example]}}}}
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {listen}
      Protocol: HTTP
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Who}}]
  Who:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: 80
      HealthCheckPath: /healthz
      HealthCheckIntervalSeconds: 5
      HealthCheckTimeoutSeconds: 2
      HealthyThresholdCount: 2
      UnhealthyThresholdCount: 2
      Targets: [{}]
      TargetGroupAttributes: [{{Key: slow_start.duration_seconds, Value: "30"}}]
"#,
        targets.join(", ")
    )
}

/// A proxyless gRPC client's node in us-east-1a.
fn proxyless_node(id: &str) -> Node {
    Node {
        id: id.to_string(),
        user_agent_name: "grpc-python".into(),
        locality: Some(Locality {
            region: "us-east-1".into(),
            zone: "us-east-1a".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A raw ADS stream on `xds` as a proxyless client, subscribed to the target group's
/// endpoints; returns the stream and the endpoints' resource name.
async fn subscribe(xds: SocketAddr, id: &str) -> (SotwClient, String) {
    let mut client = SotwClient::open(xds, Service::Ads).await;
    let request =
        |type_url: &str, names: Vec<String>, nonce: &str, version: &str| DiscoveryRequest {
            node: Some(proxyless_node(id)),
            type_url: type_url.to_string(),
            resource_names: names,
            response_nonce: nonce.to_string(),
            version_info: version.to_string(),
            ..Default::default()
        };
    client.send(request(CLUSTER, Vec::new(), "", ""));
    let clusters = client.recv().await;
    let name = clusters
        .resources
        .iter()
        .filter_map(|any| Cluster::decode(any.value.as_slice()).ok())
        .map(|cluster| {
            cluster
                .eds_cluster_config
                .map(|eds| eds.service_name)
                .filter(|name| !name.is_empty())
                .unwrap_or(cluster.name)
        })
        .next()
        .expect("the target group's cluster");
    client.send(request(
        CLUSTER,
        Vec::new(),
        &clusters.nonce,
        &clusters.version_info,
    ));
    client.send(request(ENDPOINT, vec![name.clone()], "", ""));
    (client, name)
}

/// Keeps `client` subscribed (ACKing every response) and `latest` holding the last endpoint
/// assignment it received.
fn follow(
    mut client: SotwClient,
    name: String,
    id: String,
    latest: Arc<Mutex<Option<Vec<u8>>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(response) = client.try_recv().await {
            if response.type_url != ENDPOINT {
                continue;
            }
            client.send(DiscoveryRequest {
                node: Some(proxyless_node(&id)),
                type_url: ENDPOINT.to_string(),
                resource_names: vec![name.clone()],
                response_nonce: response.nonce.clone(),
                version_info: response.version_info.clone(),
                ..Default::default()
            });
            if let Some(resource) = response.resources.first() {
                *latest.lock().unwrap() = Some(resource.value.clone());
            }
        }
    })
}

/// What `latest` holds, described.
fn latest_of(latest: &Mutex<Option<Vec<u8>>>) -> Option<String> {
    latest.lock().unwrap().as_deref().map(describe)
}

/// The localities' weights and each endpoint's port and health status, for messages.
fn describe(bytes: &[u8]) -> String {
    let assignment = ClusterLoadAssignment::decode(bytes).unwrap();
    let localities: Vec<String> = assignment
        .endpoints
        .iter()
        .map(|locality| {
            let ports: Vec<String> = locality
                .lb_endpoints
                .iter()
                .map(|endpoint| {
                    let port = endpoint
                        .host_identifier
                        .as_ref()
                        .and_then(|host| match host {
                            envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(e) => e.address.as_ref(),
                            _ => None,
                        })
                        .and_then(|address| match address.address.as_ref()? {
                            envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s) => match s.port_specifier.as_ref()? {
                                envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port) => Some(*port),
                                _ => None,
                            },
                            _ => None,
                        })
                        .unwrap_or(0);
                    format!("{port}:{}", endpoint.health_status)
                })
                .collect();
            format!(
                "w{} [{}]",
                locality.load_balancing_weight.map_or(0, |w| w.value),
                ports.join(" ")
            )
        })
        .collect();
    localities.join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_publish_the_same_slow_start_steps() {
    let etcd = Etcd::start().await;
    let steady = Checked::start("steady").await;
    let recovering = Checked::start("recovering").await;
    recovering.set_healthy(false);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alb.yaml");
    std::fs::write(
        &path,
        config(free_port(), &[steady.port(), recovering.port()]),
    )
    .unwrap();
    assert_sidecar_accepts(&path);
    let mut replicas = Vec::new();
    for name in ["r1", "r2"] {
        let args = [
            "--etcd",
            &etcd.url,
            "--etcd-prefix",
            "/ramps/",
            "--etcd-lease",
            LEASE,
            "--replica-name",
            name,
        ];
        replicas.push(ServeProcess::start(&path, &args).await);
    }
    for replica in &replicas {
        wait_for("both replicas to share the probing", || async {
            let cluster = get_json(&replica.url("/cluster")).await?;
            let members = cluster["members"].as_array()?.len();
            (cluster["sharing"] == true && members == 2).then_some(())
        })
        .await;
    }
    let mut latest = Vec::new();
    for (index, replica) in replicas.iter().enumerate() {
        let id = format!("proxyless-on-r{}", index + 1);
        let (client, name) = subscribe(replica.xds, &id).await;
        let holder = Arc::new(Mutex::new(None));
        follow(client, name, id, holder.clone());
        latest.push(holder);
    }
    // The recovering target fails its checks first (two in a row, 5 s apart) and leaves
    // what both replicas publish.
    let recovering_port = format!("{}:", recovering.port());
    let shows_recovering = |holder: &Mutex<Option<Vec<u8>>>| {
        latest_of(holder).is_some_and(|state| state.contains(&recovering_port))
    };
    wait_for("both replicas to withdraw the failing target", || async {
        let both = latest
            .iter()
            .all(|holder| latest_of(holder).is_some() && !shows_recovering(holder));
        both.then_some(())
    })
    .await;
    // The replica that does not probe it (fewer probes of it in its /health) is frozen
    // while the target recovers, and for three seconds of the ramp.
    let mut probes = Vec::new();
    for replica in &replicas {
        let health = get_json(&replica.url("/health")).await.unwrap();
        let count: u64 = health["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|endpoint| endpoint["address"].as_str() == Some(&recovering.addr.to_string()))
            .flat_map(|endpoint| endpoint["families"].as_array().cloned().unwrap_or_default())
            .filter_map(|family| family["probes"].as_u64())
            .sum();
        probes.push(count);
    }
    let (prober, late) = if probes[0] >= probes[1] {
        (0, 1)
    } else {
        (1, 0)
    };
    replicas[late].signal(libc::SIGSTOP);
    recovering.set_healthy(true);
    wait_for("the prober's client to see the target ramp up", || async {
        shows_recovering(&latest[prober]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !shows_recovering(&latest[late]),
        "the frozen replica's client has not heard of the recovery"
    );
    replicas[late].signal(libc::SIGCONT);
    wait_for(
        "the late replica's client to see the target ramp up",
        || async { shows_recovering(&latest[late]).then_some(()) },
    )
    .await;
    // Both clients' endpoints, read every 200 ms for 6 s (six one-second steps of the ramp).
    let mut alike = 0;
    let mut samples = Vec::new();
    for _ in 0..SAMPLES {
        let (on_prober, on_late) = (latest_of(&latest[prober]), latest_of(&latest[late]));
        alike += usize::from(on_prober == on_late);
        samples.push(format!("{on_prober:?} | {on_late:?}"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("prober | late:\n{}", samples.join("\n"));
    // Where a step lands a few milliseconds apart on the two, a sample may catch them
    // between; a replica three steps behind is never alike.
    assert!(
        alike * 10 >= SAMPLES * 7,
        "the replicas serve different ramps: {alike} of {SAMPLES} samples alike:\n{}",
        samples.join("\n")
    );
    assert!(
        samples.iter().any(|s| s.contains("w5000")) && shows_recovering(&latest[prober]),
        "the ramp was still on while sampled"
    );
}
