//! Frontends' TLS: the Secret (SDS) of each certificate a frontend presents, and the
//! downstream TLS context its listener terminates TLS with. Listeners name their
//! certificates and never carry them, so a renewed certificate changes one Secret and no
//! listener: Envoy swaps it in without draining a connection. Pure.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, TransportSocket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, tls_parameters::TlsProtocol, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    Secret, TlsCertificate, TlsParameters,
};

use crate::model::{FrontendTls, Model, TlsVersion};

use super::{ads_config_source, to_any};

pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// One Secret per certificate a frontend presents, sorted by name.
pub fn secrets_for(model: &Model) -> Vec<Secret> {
    let served: BTreeSet<&str> = model
        .frontends
        .values()
        .filter_map(|frontend| frontend.tls.as_ref())
        .flat_map(|tls| tls.certificates.iter().map(|c| c.name.as_str()))
        .collect();
    served
        .into_iter()
        .filter_map(|name| model.certificates.get(name))
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

/// The transport socket of a frontend's listener: its certificates over SDS (the first serves
/// clients whose SNI matches none), the lowest version and the suites of its policy, and, for
/// `http`, ALPN offering HTTP/2 before HTTP/1.1.
pub fn downstream_tls(tls: &FrontendTls, http: bool) -> TransportSocket {
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(tls_parameters(tls)),
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

fn tls_parameters(tls: &FrontendTls) -> TlsParameters {
    TlsParameters {
        tls_minimum_protocol_version: protocol(tls.min_version) as i32,
        tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
        cipher_suites: tls.cipher_suites.clone(),
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
