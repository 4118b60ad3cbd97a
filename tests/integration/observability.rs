//! What an operator sees of the fleet: CSDS (per client, per resource, status and version),
//! `switchyard status` (one line per client), and Prometheus metrics — with a real Envoy and
//! a raw client that rejects what it is sent.

use crate::common;
use crate::common::xds::{DeltaClient, Service, CLUSTER};
use crate::common::*;
use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, NodeMatcher, StringMatcher,
};
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ConfigStatus};

fn config(listen: u16, port: u16) -> String {
    format!(
        "networkEndpointGroups:\n- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}\nbackendServices:\n- {{name: web, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}\nurlMaps:\n- {{name: lb, defaultService: web}}\ntargetHttpProxies:\n- {{name: proxy, urlMap: lb}}\nforwardingRules:\n- {{name: fr, IPAddress: 127.0.0.1, portRange: '{listen}', target: proxy}}\n"
    )
}

fn exact(node_id: &str) -> NodeMatcher {
    NodeMatcher {
        node_id: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(node_id.to_string())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn csds_status_and_metrics_show_each_client_and_resource() {
    let web = Backend::start("web").await;
    let listen = free_port();
    let switchyard = Switchyard::start(&config(listen, web.port())).await;
    let xds = switchyard.running.xds_addr;
    let _envoy = Envoy::start(xds, "observed-envoy").await;
    switchyard.wait_for_acks("observed-envoy").await;
    let mut picky = DeltaClient::open(xds, Service::Ads).await;
    picky.subscribe(CLUSTER, &["*"], &[]);
    let clusters = picky.recv().await;
    picky.nack(&clusters, "web is not to my taste");
    picky.drain().await;

    let mut csds = ClientStatusDiscoveryServiceClient::connect(format!("http://{xds}"))
        .await
        .unwrap();
    let envoy_status = csds
        .fetch_client_status(ClientStatusRequest {
            node_matchers: vec![exact("observed-envoy")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(envoy_status.config.len(), 1);
    let envoy_config = &envoy_status.config[0];
    assert_eq!(envoy_config.node.as_ref().unwrap().id, "observed-envoy");
    let resources: Vec<(String, String, i32, i32, bool)> = envoy_config
        .generic_xds_configs
        .iter()
        .map(|c| {
            (
                common::xds::short(&c.type_url).to_string(),
                c.name.clone(),
                c.client_status,
                c.config_status,
                c.xds_config.is_some() && !c.version_info.is_empty(),
            )
        })
        .collect();
    let acked = ClientResourceStatus::Acked as i32;
    let synced = ConfigStatus::Synced as i32;
    assert_eq!(
        resources,
        [
            (
                "Cluster".to_string(),
                "web".to_string(),
                acked,
                synced,
                true
            ),
            (
                "ClusterLoadAssignment".into(),
                "web".into(),
                acked,
                synced,
                true
            ),
            ("Listener".into(), "fr".into(), acked, synced, true),
            (
                "RouteConfiguration".into(),
                "lb".into(),
                acked,
                synced,
                true
            ),
        ]
    );
    let picky_status = csds
        .fetch_client_status(ClientStatusRequest {
            node_matchers: vec![exact("conformance")],
            exclude_resource_contents: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rejected = &picky_status.config[0].generic_xds_configs[0];
    assert_eq!(rejected.client_status, ClientResourceStatus::Nacked as i32);
    assert_eq!(rejected.config_status, ConfigStatus::Error as i32);
    assert_eq!(
        rejected.error_state.as_ref().unwrap().details,
        "web is not to my taste"
    );
    assert!(
        rejected.xds_config.is_none(),
        "contents left out when asked"
    );
    let everyone = csds
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everyone.config.len(), 2);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "status",
            "--admin",
            &switchyard.running.admin_addr.to_string(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NODE", "KIND", "PROTOCOL", "SERVICE", "CDS", "EDS", "LDS", "RDS", "SDS", "SNAPSHOT"]
    );
    let row = |node: &str| lines.iter().find(|l| l[0] == node).cloned().unwrap();
    let serving = switchyard.serving_version();
    assert_eq!(
        row("observed-envoy"),
        [
            "observed-envoy",
            "envoy",
            "sotw",
            "ads",
            "SYNCED",
            "SYNCED",
            "SYNCED",
            "SYNCED",
            "-",
            serving.as_str()
        ],
        "{table}"
    );
    assert_eq!(
        row("conformance")[..5],
        ["conformance", "envoy", "delta", "ads", "NACKED"],
        "{table}"
    );

    let metrics = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(value(r#"switchyard_xds_nacks_total{type="Cluster"}"#), 1.0);
    assert!(value(r#"switchyard_xds_acks_total{type="Cluster"}"#) >= 1.0);
    assert!(value(r#"switchyard_xds_responses_total{type="ClusterLoadAssignment"}"#) >= 1.0);
    assert!(value(r#"switchyard_xds_bytes_sent_total{type="Cluster"}"#) > 0.0);
    assert_eq!(
        value(r#"switchyard_config_loads_total{outcome="accepted"}"#),
        1.0
    );
    assert_eq!(value("switchyard_config_load_seconds_count"), 1.0);
    assert_eq!(
        value(r#"switchyard_xds_clients{kind="envoy",protocol="delta"}"#),
        1.0
    );

    // A config change: every connected client is timed to convergence, except the one that
    // NACKs (it never syncs), so nothing is observed until it leaves.
    drop(picky);
    switchyard.edit(&config(listen, web.port() + 1)).await;
    switchyard.wait_for_acks("observed-envoy").await;
    wait_for("the convergence histogram to count the edit", || async {
        let metrics = get_text(&switchyard.admin_url("/metrics")).await?;
        metrics
            .lines()
            .any(|l| {
                l.starts_with("switchyard_xds_convergence_seconds_count ") && !l.ends_with(" 0")
            })
            .then_some(())
    })
    .await;
}

/// What an operator's dashboards expect from any server: the build, the process's own
/// figures under their usual names, every xDS series present (at zero) before any client
/// comes, and whether the last config read was served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_build_the_process_and_the_last_reload_from_the_start() {
    let web = Backend::start("web").await;
    let listen = free_port();
    let switchyard = Switchyard::start(&config(listen, web.port())).await;
    let scrape = || async { get_text(&switchyard.admin_url("/metrics")).await.unwrap() };
    let value = |metrics: &str, name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    let metrics = scrape().await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(
            &metrics,
            &format!(r#"switchyard_build_info{{version="{version}"}}"#)
        ),
        1.0
    );
    for r#type in [
        "Listener",
        "RouteConfiguration",
        "Cluster",
        "ClusterLoadAssignment",
        "Secret",
    ] {
        for family in ["responses", "acks", "nacks", "bytes_sent", "resources_sent"] {
            assert_eq!(
                value(
                    &metrics,
                    &format!(r#"switchyard_xds_{family}_total{{type="{type}"}}"#)
                ),
                0.0,
                "no client has come yet"
            );
        }
    }
    assert_eq!(
        value(
            &metrics,
            r#"switchyard_config_loads_total{outcome="rejected"}"#
        ),
        0.0
    );
    assert_eq!(
        value(&metrics, "switchyard_config_last_reload_success"),
        1.0
    );
    let served_at = value(
        &metrics,
        "switchyard_config_last_reload_success_timestamp_seconds",
    );
    assert!(served_at > 1.7e9, "{served_at}");
    assert!(value(&metrics, "process_cpu_seconds_total") > 0.0);
    assert!(value(&metrics, "process_resident_memory_bytes") > 1e6);
    assert!(value(&metrics, "process_open_fds") >= 3.0);
    assert!(value(&metrics, "process_start_time_seconds") > 1.7e9);
    assert!(metrics.ends_with("# EOF\n"), "one end marker, at the end");
    assert_eq!(metrics.matches("# EOF").count(), 1);

    switchyard.edit("backendServices: [\n").await;
    let metrics = scrape().await;
    assert_eq!(
        value(&metrics, "switchyard_config_last_reload_success"),
        0.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"switchyard_config_loads_total{outcome="rejected"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            "switchyard_config_last_reload_success_timestamp_seconds"
        ),
        served_at,
        "a rejected read is not a success"
    );
}
