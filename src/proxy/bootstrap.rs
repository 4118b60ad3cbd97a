//! The part of an Envoy bootstrap the sidecar honours, so one file starts either: the node
//! (id, cluster, locality), the admin address, the ADS config (state of the world or delta,
//! v3, LDS and CDS over ADS), the load reporting config (`cluster_manager.load_stats_config`,
//! GRPC) and the static clusters that reach those servers (their addresses, and TLS with
//! certificate files). Every other field is reported once, by path, as not
//! understood; a bootstrap the sidecar cannot honour is refused with the reason.
//!
//! Must not: start anything (the proxy does) or know the control plane.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use serde_yaml::Value;

use crate::xds::client::Protocol;

/// What the sidecar takes from a bootstrap.
#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    pub node: Node,
    pub admin: Option<SocketAddr>,
    pub protocol: Protocol,
    /// The xDS server's addresses, from the static cluster ADS names.
    pub xds_addresses: Vec<SocketAddr>,
    pub xds_tls: Option<XdsTls>,
    /// Where to report load (LRS), when the bootstrap asks for load reports.
    pub load_stats: Option<GrpcServer>,
    /// Fields present and not honoured, by path (`static_resources.clusters[0].foo`).
    pub not_understood: Vec<String>,
}

/// A gRPC server the bootstrap reaches through a static cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcServer {
    pub addresses: Vec<SocketAddr>,
    pub tls: Option<XdsTls>,
}

/// Certificate files for mTLS to the xDS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsTls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub trusted_ca: PathBuf,
    pub sni: Option<String>,
}

/// Why a bootstrap cannot be used. Each message is whole, the cause's words included, so no
/// variant has a source (a printed chain would say them twice).
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read the bootstrap {}: {error}", .path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// What is wrong in the file at `path`.
    #[error("{}: {error}", .path.display())]
    InFile {
        path: PathBuf,
        error: Box<BootstrapError>,
    },
    #[error(transparent)]
    Yaml(#[from] serde_yaml::Error),
    #[error("the sidecar cannot honour this bootstrap: {0}")]
    Unhonourable(Unhonourable),
    #[error("a socket_address without a valid port_value")]
    NoPort,
    #[error(
        "`{address}` is not an IP address (the sidecar does not resolve names in its bootstrap)"
    )]
    NotAnIp { address: String },
}

/// What a bootstrap asks for that the sidecar cannot do.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unhonourable {
    #[error(
        "dynamic_resources.ads_config is missing: the sidecar gets its listeners and clusters \
         over ADS only"
    )]
    NoAds,
    /// `found`: the api_type given, None when there is none.
    #[error(
        "dynamic_resources.ads_config.api_type is {}; the sidecar speaks GRPC and DELTA_GRPC",
        .found.as_deref().unwrap_or("missing")
    )]
    ApiType { found: Option<String> },
    /// `config`: lds_config or cds_config.
    #[error(
        "dynamic_resources.{config} must be `ads: {{}}`: the sidecar takes listeners and \
         clusters over ADS only"
    )]
    NotOverAds { config: &'static str },
    #[error("dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name is missing")]
    NoAdsCluster,
    /// `found`: the api_type given, None when there is none.
    #[error(
        "cluster_manager.load_stats_config.api_type is {}; the sidecar reports load over GRPC",
        .found.as_deref().unwrap_or("missing")
    )]
    LoadStatsApiType { found: Option<String> },
    #[error(
        "cluster_manager.load_stats_config.grpc_services[0].envoy_grpc.cluster_name is missing"
    )]
    NoLoadStatsCluster,
    /// `by`: ADS or load_stats_config.
    #[error("{by} names the cluster `{name}`, which static_resources.clusters does not define")]
    UndefinedCluster { by: &'static str, name: String },
    #[error("the xDS cluster has no endpoint address")]
    NoXdsAddress,
    #[error("the xDS cluster's transport_socket has no common_tls_context")]
    NoTlsContext,
    /// `what`: certificate_chain, private_key or trusted_ca.
    #[error("the xDS cluster's TLS {what} must be given as a filename")]
    TlsNotInFile { what: &'static str },
}

/// Paths (list indices left out) that the sidecar reads; everything under them counts as
/// understood.
const UNDERSTOOD: &[&str] = &[
    "node.id",
    "node.cluster",
    "node.locality.region",
    "node.locality.zone",
    "node.locality.sub_zone",
    "dynamic_resources.ads_config.api_type",
    "dynamic_resources.ads_config.transport_api_version",
    "dynamic_resources.ads_config.grpc_services.envoy_grpc.cluster_name",
    "dynamic_resources.ads_config.set_node_on_first_message_only",
    "dynamic_resources.lds_config.ads",
    "dynamic_resources.lds_config.resource_api_version",
    "dynamic_resources.cds_config.ads",
    "dynamic_resources.cds_config.resource_api_version",
    "cluster_manager.load_stats_config.api_type",
    "cluster_manager.load_stats_config.transport_api_version",
    "cluster_manager.load_stats_config.grpc_services.envoy_grpc.cluster_name",
    "cluster_manager.load_stats_config.set_node_on_first_message_only",
    "static_resources.clusters.name",
    "static_resources.clusters.type",
    "static_resources.clusters.connect_timeout",
    "static_resources.clusters.load_assignment",
    "static_resources.clusters.typed_extension_protocol_options",
    "static_resources.clusters.http2_protocol_options",
    "static_resources.clusters.transport_socket.name",
    "static_resources.clusters.transport_socket.typed_config.@type",
    "static_resources.clusters.transport_socket.typed_config.sni",
    "static_resources.clusters.transport_socket.typed_config.common_tls_context.alpn_protocols",
    "static_resources.clusters.transport_socket.typed_config.common_tls_context.tls_certificates",
    "static_resources.clusters.transport_socket.typed_config.common_tls_context.validation_context.trusted_ca",
    "admin.address.socket_address",
    "admin.access_log_path",
    "admin.access_log",
];

/// Reads the bootstrap at `path`.
pub fn load(path: &Path) -> Result<Bootstrap, BootstrapError> {
    let text = std::fs::read_to_string(path).map_err(|error| BootstrapError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text).map_err(|error| BootstrapError::InFile {
        path: path.to_path_buf(),
        error: Box::new(error),
    })
}

/// Reads bootstrap text.
pub fn parse(text: &str) -> Result<Bootstrap, BootstrapError> {
    let root: Value = serde_yaml::from_str(text)?;
    let node = node(&root);
    let ads = at(&root, "dynamic_resources.ads_config").ok_or(Unhonourable::NoAds)?;
    let protocol = match string(ads, "api_type").as_deref() {
        Some("GRPC") => Protocol::StateOfTheWorld,
        Some("DELTA_GRPC") => Protocol::Delta,
        other => {
            return Err(Unhonourable::ApiType {
                found: other.map(str::to_string),
            }
            .into())
        }
    };
    for config in ["lds_config", "cds_config"] {
        let source = at(&root, &format!("dynamic_resources.{config}"));
        if source.is_some_and(|s| at(s, "ads").is_none()) {
            return Err(Unhonourable::NotOverAds { config }.into());
        }
    }
    let cluster_name = grpc_cluster_name(ads).ok_or(Unhonourable::NoAdsCluster)?;
    let xds = grpc_server(&root, "ADS", &cluster_name)?;
    let admin = at(&root, "admin.address.socket_address")
        .map(socket_address)
        .transpose()?;
    Ok(Bootstrap {
        node,
        admin,
        protocol,
        xds_addresses: xds.addresses,
        xds_tls: xds.tls,
        load_stats: load_stats(&root)?,
        not_understood: not_understood(&root),
    })
}

impl From<Unhonourable> for BootstrapError {
    fn from(reason: Unhonourable) -> BootstrapError {
        BootstrapError::Unhonourable(reason)
    }
}

/// The cluster the first of `config`'s grpc_services names.
fn grpc_cluster_name(config: &Value) -> Option<String> {
    at(config, "grpc_services")
        .and_then(Value::as_sequence)
        .and_then(|services| services.first())
        .and_then(|service| string(service, "envoy_grpc.cluster_name"))
}

/// The server behind the static cluster `name`, which `by` names.
fn grpc_server(root: &Value, by: &'static str, name: &str) -> Result<GrpcServer, BootstrapError> {
    let cluster = at(root, "static_resources.clusters")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .find(|c| string(c, "name").as_deref() == Some(name))
        .ok_or_else(|| Unhonourable::UndefinedCluster {
            by,
            name: name.to_string(),
        })?;
    Ok(GrpcServer {
        addresses: cluster_addresses(cluster)?,
        tls: cluster_tls(cluster)?,
    })
}

/// The LRS server of `cluster_manager.load_stats_config`, if the bootstrap has one.
fn load_stats(root: &Value) -> Result<Option<GrpcServer>, BootstrapError> {
    let Some(config) = at(root, "cluster_manager.load_stats_config") else {
        return Ok(None);
    };
    match string(config, "api_type") {
        Some(api) if api == "GRPC" => {}
        found => return Err(Unhonourable::LoadStatsApiType { found }.into()),
    }
    let name = grpc_cluster_name(config).ok_or(Unhonourable::NoLoadStatsCluster)?;
    grpc_server(root, "load_stats_config", &name).map(Some)
}

/// The value at a dotted path of mapping keys.
fn at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |value, key| value.get(key))
}

fn string(value: &Value, path: &str) -> Option<String> {
    match at(value, path)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn node(root: &Value) -> Node {
    let text = |path: &str| string(root, path).unwrap_or_default();
    Node {
        id: text("node.id"),
        cluster: text("node.cluster"),
        locality: at(root, "node.locality").map(|_| Locality {
            region: text("node.locality.region"),
            zone: text("node.locality.zone"),
            sub_zone: text("node.locality.sub_zone"),
        }),
        user_agent_name: "switchyard-proxy".to_string(),
        user_agent_version_type: Some(
            envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ),
        ..Default::default()
    }
}

fn socket_address(value: &Value) -> Result<SocketAddr, BootstrapError> {
    let address = string(value, "address").unwrap_or_else(|| "127.0.0.1".to_string());
    let port = string(value, "port_value")
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(BootstrapError::NoPort)?;
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| BootstrapError::NotAnIp { address })?;
    Ok(SocketAddr::new(ip, port))
}

fn cluster_addresses(cluster: &Value) -> Result<Vec<SocketAddr>, BootstrapError> {
    let endpoints = at(cluster, "load_assignment.endpoints")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .flat_map(|locality| {
            at(locality, "lb_endpoints")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
        });
    let addresses = endpoints
        .filter_map(|endpoint| at(endpoint, "endpoint.address.socket_address"))
        .map(socket_address)
        .collect::<Result<Vec<_>, _>>()?;
    if addresses.is_empty() {
        return Err(Unhonourable::NoXdsAddress.into());
    }
    Ok(addresses)
}

fn cluster_tls(cluster: &Value) -> Result<Option<XdsTls>, BootstrapError> {
    let Some(socket) = at(cluster, "transport_socket") else {
        return Ok(None);
    };
    let context =
        at(socket, "typed_config.common_tls_context").ok_or(Unhonourable::NoTlsContext)?;
    let file = |value: Option<&Value>, what: &'static str| -> Result<PathBuf, Unhonourable> {
        value
            .and_then(|v| string(v, "filename"))
            .map(PathBuf::from)
            .ok_or(Unhonourable::TlsNotInFile { what })
    };
    let certificate = at(context, "tls_certificates")
        .and_then(Value::as_sequence)
        .and_then(|list| list.first());
    Ok(Some(XdsTls {
        certificate: file(
            certificate.and_then(|c| c.get("certificate_chain")),
            "certificate_chain",
        )?,
        private_key: file(
            certificate.and_then(|c| c.get("private_key")),
            "private_key",
        )?,
        trusted_ca: file(at(context, "validation_context.trusted_ca"), "trusted_ca")?,
        sni: string(socket, "typed_config.sni"),
    }))
}

/// Every leaf path of `root` that no understood path covers.
fn not_understood(root: &Value) -> Vec<String> {
    let mut found = BTreeSet::new();
    collect_leaves(root, "", "", &mut found);
    found.into_iter().collect()
}

/// `shown` keeps list indices for the message; `plain` drops them to compare with
/// [`UNDERSTOOD`].
fn collect_leaves(value: &Value, shown: &str, plain: &str, found: &mut BTreeSet<String>) {
    let covered = |plain: &str| {
        UNDERSTOOD
            .iter()
            .any(|known| plain == *known || plain.starts_with(&format!("{known}.")))
    };
    if !plain.is_empty() && covered(plain) {
        return;
    }
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            for (key, child) in map {
                let key = key.as_str().unwrap_or("?");
                let join = |base: &str| {
                    if base.is_empty() {
                        key.to_string()
                    } else {
                        format!("{base}.{key}")
                    }
                };
                collect_leaves(child, &join(shown), &join(plain), found);
            }
        }
        Value::Sequence(items) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                collect_leaves(item, &format!("{shown}[{index}]"), plain, found);
            }
        }
        _ if !shown.is_empty() => {
            found.insert(shown.to_string());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(name: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
    }

    #[test]
    fn the_envoy_bootstraps_of_the_repository_are_understood_whole() {
        for (file, protocol, tls) in [
            (
                "envoy-configs/envoy-bootstrap.yaml",
                Protocol::StateOfTheWorld,
                false,
            ),
            (
                "envoy-configs/envoy-bootstrap-delta.yaml",
                Protocol::Delta,
                false,
            ),
            (
                "envoy-configs/envoy-bootstrap-mtls.yaml",
                Protocol::StateOfTheWorld,
                true,
            ),
        ] {
            let bootstrap = parse(&repo_file(file)).unwrap();
            assert_eq!(bootstrap.protocol, protocol, "{file}");
            assert_eq!(bootstrap.node.id, "envoy-quickstart");
            assert_eq!(
                bootstrap.node.locality.as_ref().unwrap().zone,
                "us-central1-a"
            );
            assert_eq!(
                bootstrap.xds_addresses,
                ["127.0.0.1:18000".parse().unwrap()]
            );
            assert_eq!(bootstrap.admin, Some("127.0.0.1:9901".parse().unwrap()));
            assert_eq!(bootstrap.xds_tls.is_some(), tls, "{file}");
            // Load reporting (for capacity) is understood too: the sidecar reports as Envoy does.
            assert!(
                bootstrap.not_understood.is_empty(),
                "{file}: {:?}",
                bootstrap.not_understood
            );
        }
    }

    #[test]
    fn fields_it_does_not_honour_are_named_and_impossible_bootstraps_refused() {
        let text = repo_file("envoy-configs/envoy-bootstrap.yaml");
        let extra = format!(
            "{text}\nlayered_runtime:\n  layers:\n  - name: static\n    static_layer: {{a: 1}}\n"
        );
        let bootstrap = parse(&extra).unwrap();
        assert_eq!(
            bootstrap.not_understood,
            [
                "layered_runtime.layers[0].name",
                "layered_runtime.layers[0].static_layer.a"
            ]
        );

        let rest = text.replace("api_type: GRPC", "api_type: REST");
        let error = parse(&rest).unwrap_err();
        assert!(
            matches!(&error, BootstrapError::Unhonourable(Unhonourable::ApiType { found })
                if found.as_deref() == Some("REST")),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "the sidecar cannot honour this bootstrap: dynamic_resources.ads_config.api_type is \
             REST; the sidecar speaks GRPC and DELTA_GRPC"
        );
        let elsewhere = text.replace("cluster_name: switchyard-xds", "cluster_name: elsewhere");
        let error = parse(&elsewhere).unwrap_err();
        assert!(
            matches!(&error, BootstrapError::Unhonourable(Unhonourable::UndefinedCluster { by: "ADS", name })
                if name == "elsewhere"),
            "{error}"
        );
    }

    /// The load reporting block of envoy-configs/envoy-bootstrap.yaml.
    const SHIPPED_LOAD_STATS: &str = "cluster_manager:\n  load_stats_config:\n    api_type: GRPC\n    transport_api_version: V3\n    grpc_services:\n    - envoy_grpc:\n        cluster_name: switchyard-xds\n";

    /// `text` with a load_stats_config whose api_type is `api` and whose cluster is `cluster`.
    fn with_load_stats(text: &str, api: &str, cluster: &str) -> String {
        format!(
            "{text}\ncluster_manager:\n  load_stats_config:\n    api_type: {api}\n    \
             transport_api_version: V3\n    grpc_services:\n    - envoy_grpc:\n        \
             cluster_name: {cluster}\n"
        )
    }

    #[test]
    fn load_stats_config_names_the_lrs_server_and_only_grpc_is_honoured() {
        let shipped = repo_file("envoy-configs/envoy-bootstrap.yaml");
        let text = shipped.replace(SHIPPED_LOAD_STATS, "");
        assert_ne!(text, shipped, "the shipped bootstrap reports load");
        assert_eq!(parse(&text).unwrap().load_stats, None);
        assert!(parse(&shipped).unwrap().load_stats.is_some());
        let reporting = parse(&with_load_stats(&text, "GRPC", "switchyard-xds")).unwrap();
        assert_eq!(
            reporting.load_stats,
            Some(GrpcServer {
                addresses: vec!["127.0.0.1:18000".parse().unwrap()],
                tls: None
            })
        );
        assert!(
            reporting.not_understood.is_empty(),
            "{:?}",
            reporting.not_understood
        );

        let error = parse(&with_load_stats(&text, "REST", "switchyard-xds")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the sidecar cannot honour this bootstrap: cluster_manager.load_stats_config.api_type \
             is REST; the sidecar reports load over GRPC"
        );
        let error = parse(&with_load_stats(&text, "GRPC", "lrs")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the sidecar cannot honour this bootstrap: load_stats_config names the cluster \
             `lrs`, which static_resources.clusters does not define"
        );
    }
}
