//! The sidecar (`switchyard proxy`) reports its load as Envoy does when its bootstrap has
//! `cluster_manager.load_stats_config`: Switchyard's `/load_reports` shows, per upstream
//! locality, exactly the requests it sent there (successes, and errors from a backend that
//! answers 500) and the requests still in progress while a backend holds them; a sidecar
//! whose bootstrap has no load_stats_config reports nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::checked::Checked;
use crate::common::sidecar::Sidecar;
use crate::common::*;

/// One backend service over two NEGs, `near` in us-central1-a and `far` in us-central1-b,
/// the default service of a load balancer on 127.0.0.1:`listen`.
fn config(listen: u16, near: u16, far: u16) -> String {
    format!(
        r#"
networkEndpointGroups:
- name: near
  zone: us-central1-a
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {near}}}
- name: far
  zone: us-central1-b
  endpoints:
  - {{ipAddress: 127.0.0.1, port: {far}}}
backendServices:
- name: pool
  backends:
  - {{group: zones/us-central1-a/networkEndpointGroups/near, balancingMode: RATE, maxRatePerEndpoint: 100}}
  - {{group: zones/us-central1-b/networkEndpointGroups/far, balancingMode: RATE, maxRatePerEndpoint: 100}}
{front}"#,
        front = front_for_pool(listen)
    )
}

/// The load reporting settings of envoy-configs/envoy-bootstrap.yaml (Envoy's, pointing at the
/// xDS server's static cluster), which a quiet sidecar's bootstrap goes without.
const LOAD_STATS_CONFIG: &str = "cluster_manager:
  load_stats_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc:
        cluster_name: switchyard-xds
";

/// A sidecar in us-central1-a named `node`, reporting load when `reporting`, ready to serve.
async fn sidecar(switchyard: &Switchyard, node: &str, reporting: bool) -> Sidecar {
    let shipped = std::fs::read_to_string(format!(
        "{}/envoy-configs/envoy-bootstrap.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(
        shipped.contains(LOAD_STATS_CONFIG),
        "the shipped bootstrap reports load"
    );
    let replacements: &[(&str, &str)] = if reporting {
        &[]
    } else {
        &[(LOAD_STATS_CONFIG, "")]
    };
    let xds = switchyard.running.xds_addr;
    let sidecar = Sidecar::start_replacing("envoy-bootstrap.yaml", xds, node, replacements).await;
    switchyard.wait_for_acks(node).await;
    sidecar.wait_ready().await;
    sidecar
}

/// What `/load_reports` shows of `node`, by the zone of the upstream locality: (issued,
/// successful, errors, in progress).
async fn reported(switchyard: &Switchyard, node: &str) -> BTreeMap<String, [u64; 4]> {
    let page = get_json(&switchyard.admin_url(&format!("/load_reports?node={node}")))
        .await
        .unwrap_or_default();
    let mut by_zone = BTreeMap::new();
    for row in page["load_reports"].as_array().into_iter().flatten() {
        let locality = row["locality"].as_str().unwrap_or_default();
        let zone = locality.split('/').nth(1).unwrap_or_default().to_string();
        let count = |field: &str| row[field].as_u64().unwrap_or_default();
        let entry: &mut [u64; 4] = by_zone.entry(zone).or_default();
        for (total, field) in entry.iter_mut().zip([
            "issued_requests",
            "successful_requests",
            "error_requests",
            "in_progress",
        ]) {
            *total += count(field);
        }
    }
    by_zone
}

/// Waits until `node`'s reports count `issued` requests in all, and answers them.
async fn reported_once_issued(
    switchyard: &Switchyard,
    node: &str,
    issued: u64,
) -> BTreeMap<String, [u64; 4]> {
    wait_for(
        &format!("{node} to report {issued} requests issued"),
        || async {
            let seen = reported(switchyard, node).await;
            let total: u64 = seen.values().map(|counts| counts[0]).sum();
            (total >= issued).then_some(seen)
        },
    )
    .await
}

/// Sends one GET to `url` on a connection of its own, in a task, waiting as long as the
/// backend holds it; answers the status.
fn send_alone(url: &str) -> tokio::task::JoinHandle<Option<u16>> {
    let url = url.to_string();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        Some(client.get(url).send().await.ok()?.status().as_u16())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_reports_per_locality_what_it_sent_and_what_is_in_progress() {
    let near = Checked::start("near").await;
    let far = Checked::start("far").await;
    far.set_failing(true);
    let listen = free_port();
    let url = format!("http://127.0.0.1:{listen}/");
    let switchyard = Switchyard::start(&config(listen, near.port(), far.port())).await;

    // Without load_stats_config: traffic, and no LRS stream at all.
    let quiet = sidecar(&switchyard, "sidecar-quiet", false).await;
    let seen = tally(&url, 40).await;
    assert_eq!(seen.values().sum::<usize>(), 40, "{seen:?}");
    assert!(
        seen.contains_key("near") && seen.contains_key("<500>"),
        "{seen:?}"
    );
    let (open_streams, _, _) = switchyard.running.load_reports.size();
    assert_eq!(
        open_streams, 0,
        "a sidecar without load_stats_config opened an LRS stream"
    );
    drop(quiet);
    let (near_before, far_before) = (near.hits(), far.hits());

    let _reporting = sidecar(&switchyard, "sidecar-reporting", true).await;
    // 200 requests, one after another: the near backend answers 200, the far one 500, and
    // the counts reported must equal what each backend received, exactly.
    let sent = 200;
    let seen = tally(&url, sent).await;
    let (to_near, to_far) = (near.hits() - near_before, far.hits() - far_before);
    assert_eq!(
        seen.get("near").copied().unwrap_or(0) as u64,
        to_near,
        "{seen:?}"
    );
    assert_eq!(
        seen.get("<500>").copied().unwrap_or(0) as u64,
        to_far,
        "{seen:?}"
    );
    assert_eq!(to_near + to_far, sent as u64, "{seen:?}");
    assert!(
        to_near > 0 && to_far > 0,
        "both localities get traffic: {seen:?}"
    );
    let counted = reported_once_issued(&switchyard, "sidecar-reporting", sent as u64).await;
    assert_eq!(
        counted,
        BTreeMap::from([
            ("us-central1-a".to_string(), [to_near, to_near, 0, 0]),
            ("us-central1-b".to_string(), [to_far, 0, to_far, 0]),
        ]),
        "(issued, successful, errors, in progress) per zone"
    );

    // Requests held by both backends are in progress until released.
    near.set_holding(true);
    far.set_holding(true);
    let (near_before, far_before) = (near.hits(), far.hits());
    let held: Vec<_> = (0..6).map(|_| send_alone(&url)).collect();
    wait_for("the six requests to reach the backends", || async {
        (near.hits() + far.hits() == near_before + far_before + 6).then_some(())
    })
    .await;
    let (held_near, held_far) = (near.hits() - near_before, far.hits() - far_before);
    wait_for("the held requests to be reported in progress", || async {
        let seen = reported(&switchyard, "sidecar-reporting").await;
        let in_progress = |zone: &str| seen.get(zone).map_or(0, |counts| counts[3]);
        (in_progress("us-central1-a") == held_near && in_progress("us-central1-b") == held_far)
            .then_some(())
    })
    .await;
    near.set_holding(false);
    far.set_holding(false);
    for answer in held {
        assert!(
            answer.await.unwrap().is_some(),
            "every held request is answered"
        );
    }
    let all = sent as u64 + 6;
    let counted = wait_for("the released requests to be reported done", || async {
        let seen = reported_once_issued(&switchyard, "sidecar-reporting", all).await;
        seen.values().all(|counts| counts[3] == 0).then_some(seen)
    })
    .await;
    let (to_near, to_far) = (to_near + held_near, to_far + held_far);
    assert_eq!(
        counted,
        BTreeMap::from([
            ("us-central1-a".to_string(), [to_near, to_near, 0, 0]),
            ("us-central1-b".to_string(), [to_far, 0, to_far, 0]),
        ]),
        "(issued, successful, errors, in progress) per zone"
    );

    // The quiet sidecar never reported, though reports came in meanwhile.
    let quiet_rows = get_json(&switchyard.admin_url("/load_reports?node=sidecar-quiet"))
        .await
        .unwrap_or(Value::Null);
    assert_eq!(quiet_rows["matched"], 0, "{quiet_rows}");
    let (open_streams, ended_streams, _) = switchyard.running.load_reports.size();
    assert_eq!((open_streams, ended_streams), (1, 0));
}
