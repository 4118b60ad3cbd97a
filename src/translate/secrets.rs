//! Target HTTPS and SSL proxies → TLS: the Secret (SDS) of each certificate a served proxy presents,
//! and the downstream TLS context its listeners terminate TLS with. Listeners name their
//! certificates and never carry them, so a renewed certificate changes one Secret and no
//! listener: Envoy swaps it in without draining a connection. Pure.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, TransportSocket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, tls_parameters::TlsProtocol, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    Secret, TlsCertificate, TlsParameters,
};

use crate::model::tls::{cipher_suite, profile_cipher_suites};
use crate::model::{Model, ProxyTarget, ProxyTls, SslPolicy, SslProfile, TlsVersion};

use super::{ads_config_source, to_any};

pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// One Secret per certificate that a target HTTPS proxy with a forwarding rule presents,
/// sorted by name.
pub fn secrets_for(model: &Model) -> Vec<Secret> {
    let served: BTreeSet<&str> = model
        .forwarding_rules
        .values()
        .filter_map(|rule| model.target_proxies.get(&rule.target.name))
        .filter(|proxy| !matches!(proxy.target, ProxyTarget::Grpc { .. }))
        .filter_map(|proxy| proxy.tls.as_ref())
        .flat_map(|tls| tls.certificates.iter().map(|c| c.name.as_str()))
        .collect();
    served
        .into_iter()
        .filter_map(|name| model.ssl_certificates.get(name))
        .map(|certificate| Secret {
            name: certificate.name.clone(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline(&certificate.certificate.text)),
                private_key: Some(inline(&certificate.private_key.text)),
                ..Default::default()
            })),
        })
        .collect()
}

fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_string())),
        ..Default::default()
    }
}

/// The transport socket of a listener of a target HTTPS proxy: its certificates over SDS
/// (the first serves clients whose SNI matches none), the versions and suites of its SSL
/// policy (or the cloud's default: TLS 1.0 to 1.3, the COMPATIBLE suites), and, for `http`,
/// ALPN offering HTTP/2 before HTTP/1.1.
pub fn downstream_tls(model: &Model, tls: &ProxyTls, http: bool) -> TransportSocket {
    let policy = tls
        .ssl_policy
        .as_ref()
        .and_then(|p| model.ssl_policies.get(&p.name));
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(tls_parameters(policy)),
            tls_certificate_sds_secret_configs: tls
                .certificates
                .iter()
                .map(|certificate| SdsSecretConfig {
                    name: certificate.name.clone(),
                    sds_config: Some(ads_config_source()),
                })
                .collect(),
            alpn_protocols: if http {
                vec!["h2".to_string(), "http/1.1".to_string()]
            } else {
                Vec::new()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(
            envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
                to_any(&context),
            ),
        ),
    }
}

fn tls_parameters(policy: Option<&SslPolicy>) -> TlsParameters {
    let (minimum, suites) = match policy {
        Some(policy) => (policy.min_tls_version, policy.cipher_suites()),
        None => (
            TlsVersion::Tls10,
            profile_cipher_suites(SslProfile::Compatible),
        ),
    };
    TlsParameters {
        tls_minimum_protocol_version: protocol(minimum) as i32,
        tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
        cipher_suites: suites
            .into_iter()
            .filter_map(cipher_suite)
            .map(|suite| suite.envoy_name.to_string())
            .collect(),
        ..Default::default()
    }
}

fn protocol(version: TlsVersion) -> TlsProtocol {
    match version {
        TlsVersion::Tls10 => TlsProtocol::TlSv10,
        TlsVersion::Tls11 => TlsProtocol::TlSv11,
        TlsVersion::Tls12 => TlsProtocol::TlSv12,
        TlsVersion::Tls13 => TlsProtocol::TlSv13,
    }
}
