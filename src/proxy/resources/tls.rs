//! TLS in xDS → the sidecar's typed TLS settings: a listener's DownstreamTlsContext (which
//! certificates, over SDS or inline; the TLS versions; the TLS 1.2 cipher suites by their
//! OpenSSL names; ALPN), a cluster's UpstreamTlsContext (SNI, ALPN), and a Secret's
//! certificate and key. Pure: certificates are parsed here so that a bad one is NACKed, but
//! no socket or file is touched (file paths are refused).
//!
//! Must not: build rustls configs for connections (proxy/tls.rs does, from these values).

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, tls_parameters::TlsProtocol, CommonTlsContext, DownstreamTlsContext, Secret,
    UpstreamTlsContext,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::{decode_checked, Fault, Problem, ResourceError};
use crate::xds::types::TypeUrl;

pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

pub(super) const DOWNSTREAM_FIELDS: &[&str] = &[
    "common_tls_context.tls_params.tls_minimum_protocol_version",
    "common_tls_context.tls_params.tls_maximum_protocol_version",
    "common_tls_context.tls_params.cipher_suites",
    "common_tls_context.tls_certificate_sds_secret_configs.name",
    "common_tls_context.tls_certificate_sds_secret_configs.sds_config.ads",
    "common_tls_context.tls_certificate_sds_secret_configs.sds_config.resource_api_version",
    "common_tls_context.tls_certificates.certificate_chain.inline_string",
    "common_tls_context.tls_certificates.certificate_chain.inline_bytes",
    "common_tls_context.tls_certificates.private_key.inline_string",
    "common_tls_context.tls_certificates.private_key.inline_bytes",
    "common_tls_context.alpn_protocols",
];

pub(super) const UPSTREAM_FIELDS: &[&str] = &["sni", "common_tls_context.alpn_protocols"];

pub(super) const SECRET_FIELDS: &[&str] = &[
    "name",
    "tls_certificate.certificate_chain.inline_string",
    "tls_certificate.certificate_chain.inline_bytes",
    "tls_certificate.private_key.inline_string",
    "tls_certificate.private_key.inline_bytes",
];

/// A TLS version the sidecar (rustls) speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Where a listener's certificate comes from.
#[derive(Clone, Debug)]
pub enum CertificateSource {
    /// A Secret of this name over SDS (ADS).
    Sds(String),
    /// Given in the listener itself.
    Inline(Arc<ServedCertificate>),
}

impl PartialEq for CertificateSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CertificateSource::Sds(a), CertificateSource::Sds(b)) => a == b,
            (CertificateSource::Inline(a), CertificateSource::Inline(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A listener's TLS termination.
#[derive(Clone, Debug, PartialEq)]
pub struct DownstreamTls {
    /// In order: the first is served to a client whose SNI matches no certificate.
    pub certificates: Vec<CertificateSource>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// The TLS 1.2 suites offered, by OpenSSL name, in the order given (empty: rustls's own).
    pub cipher_suites: Vec<&'static str>,
    /// Suites the context names that rustls does not implement: not offered, and logged.
    pub unserved_cipher_suites: Vec<String>,
    pub alpn: Vec<Vec<u8>>,
}

/// TLS to a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// The SNI given in the context (otherwise the request's host with auto_sni, or none).
    pub sni: Option<String>,
    pub alpn: Vec<Vec<u8>>,
}

/// A certificate chain and its key, ready to serve, with the names it serves.
#[derive(Debug)]
pub struct ServedCertificate {
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf (subject alternative names, else the common name), lower case.
    pub names: Vec<String>,
}

/// The TLS 1.2 suites rustls implements, by the OpenSSL names Envoy takes.
pub const SERVED_CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// Suites Envoy offers and rustls never implemented (CBC modes, RSA key exchange): a context
/// naming them keeps the suites rustls has, and says which it left out.
pub const UNSERVED_CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
];

/// Reads a listener's DownstreamTlsContext.
pub fn downstream(bytes: &[u8]) -> Result<DownstreamTls, Fault> {
    let context: DownstreamTlsContext = decode_checked(bytes, DOWNSTREAM_FIELDS)?;
    let common = context.common_tls_context.unwrap_or_default();
    let mut certificates = Vec::new();
    for (index, certificate) in common.tls_certificates.iter().enumerate() {
        let served = served_certificate(
            certificate.certificate_chain.as_ref(),
            certificate.private_key.as_ref(),
        )
        .map_err(|fault| fault.under(&format!("common_tls_context.tls_certificates[{index}]")))?;
        certificates.push(CertificateSource::Inline(Arc::new(served)));
    }
    for (index, sds) in common.tls_certificate_sds_secret_configs.iter().enumerate() {
        if sds.sds_config.is_none() {
            return Err(Fault::at(
                format!("common_tls_context.tls_certificate_sds_secret_configs[{index}]"),
                Problem::Missing {
                    what: "an sds_config (ADS)",
                },
            ));
        }
        certificates.push(CertificateSource::Sds(sds.name.clone()));
    }
    if certificates.is_empty() {
        return Err(Problem::Missing {
            what: "a certificate (tls_certificates or tls_certificate_sds_secret_configs)",
        }
        .into());
    }
    let params = common.tls_params.clone().unwrap_or_default();
    let (min_version, max_version) = versions(
        params.tls_minimum_protocol_version,
        params.tls_maximum_protocol_version,
    )
    .map_err(|problem| Fault::at("common_tls_context.tls_params", problem))?;
    let (cipher_suites, unserved_cipher_suites) = cipher_suites(&params.cipher_suites)
        .map_err(|problem| Fault::at("common_tls_context.tls_params.cipher_suites", problem))?;
    if min_version == TlsVersion::Tls12
        && cipher_suites.is_empty()
        && !params.cipher_suites.is_empty()
    {
        return Err(Fault::at(
            "common_tls_context.tls_params.cipher_suites",
            Problem::NoServedCipherSuite {
                named: params.cipher_suites.join(":"),
            },
        ));
    }
    Ok(DownstreamTls {
        certificates,
        min_version,
        max_version,
        cipher_suites,
        unserved_cipher_suites,
        alpn: alpn(&common),
    })
}

/// Reads a cluster's UpstreamTlsContext.
pub fn upstream(bytes: &[u8]) -> Result<UpstreamTls, Fault> {
    let context: UpstreamTlsContext = decode_checked(bytes, UPSTREAM_FIELDS)?;
    Ok(UpstreamTls {
        sni: Some(context.sni.clone()).filter(|s| !s.is_empty()),
        alpn: context
            .common_tls_context
            .as_ref()
            .map(alpn)
            .unwrap_or_default(),
    })
}

/// Converts one Secret resource: a certificate chain and its private key.
pub fn convert_secret(name: &str, bytes: &[u8]) -> Result<Arc<ServedCertificate>, ResourceError> {
    read_secret(bytes)
        .map(Arc::new)
        .map_err(|fault| fault.of(TypeUrl::Secret, name))
}

fn read_secret(bytes: &[u8]) -> Result<ServedCertificate, Fault> {
    let secret: Secret = decode_checked(bytes, SECRET_FIELDS)?;
    let Some(secret::Type::TlsCertificate(certificate)) = secret.r#type else {
        return Err(Problem::Missing {
            what: "a tls_certificate",
        }
        .into());
    };
    served_certificate(
        certificate.certificate_chain.as_ref(),
        certificate.private_key.as_ref(),
    )
    .map_err(|fault| fault.under("tls_certificate"))
}

fn alpn(common: &CommonTlsContext) -> Vec<Vec<u8>> {
    common
        .alpn_protocols
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect()
}

/// The versions rustls serves within Envoy's range. TLS 1.0 and 1.1, which rustls never
/// implemented, are left out of a range that reaches past them (as Envoy's own default
/// range starts at TLS 1.2); a range with no version rustls has is refused.
fn versions(min: i32, max: i32) -> Result<(TlsVersion, TlsVersion), Problem> {
    let read = |value: i32, auto: TlsVersion| -> Result<Option<TlsVersion>, Problem> {
        match TlsProtocol::try_from(value) {
            Ok(TlsProtocol::TlsAuto) => Ok(Some(auto)),
            Ok(TlsProtocol::TlSv10 | TlsProtocol::TlSv11) => Ok(None),
            Ok(TlsProtocol::TlSv12) => Ok(Some(TlsVersion::Tls12)),
            Ok(TlsProtocol::TlSv13) => Ok(Some(TlsVersion::Tls13)),
            Err(_) => Err(Problem::UnknownCode {
                field: "TLS version",
                value,
            }),
        }
    };
    let min = read(min, TlsVersion::Tls12)?.unwrap_or(TlsVersion::Tls12);
    let Some(max) = read(max, TlsVersion::Tls13)? else {
        return Err(Problem::TlsVersions);
    };
    if max < min {
        return Err(Problem::TlsVersions);
    }
    Ok((min, max))
}

/// Splits Envoy's cipher list (names, or `[a|b]` groups of equal preference) into the suites
/// rustls has and the known ones it lacks; an unknown name is refused.
fn cipher_suites(names: &[String]) -> Result<(Vec<&'static str>, Vec<String>), Problem> {
    let mut served = Vec::new();
    let mut unserved = Vec::new();
    for entry in names {
        for name in entry.trim_matches(|c| c == '[' || c == ']').split('|') {
            if let Some(suite) = SERVED_CIPHER_SUITES.iter().find(|s| **s == name) {
                if !served.contains(suite) {
                    served.push(*suite);
                }
            } else if UNSERVED_CIPHER_SUITES.contains(&name) {
                unserved.push(name.to_string());
            } else {
                return Err(Problem::UnknownCipherSuite {
                    name: name.to_string(),
                });
            }
        }
    }
    Ok((served, unserved))
}

fn served_certificate(
    chain: Option<&DataSource>,
    key: Option<&DataSource>,
) -> Result<ServedCertificate, Fault> {
    let chain_pem = inline(chain).map_err(|p| Fault::at("certificate_chain", p))?;
    let key_pem = inline(key).map_err(|p| Fault::at("private_key", p))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|error| Fault::at("certificate_chain", Problem::Pem(error.to_string())))?;
    let Some(leaf) = chain.first() else {
        return Err(Fault::at(
            "certificate_chain",
            Problem::Missing {
                what: "a PEM certificate",
            },
        ));
    };
    let names = dns_names(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|error| Fault::at("private_key", Problem::Pem(error.to_string())))?;
    let signing = tokio_rustls::rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|error| Fault::at("private_key", Problem::Pem(error.to_string())))?;
    let key = CertifiedKey::new(chain, signing);
    key.keys_match()
        .map_err(|error| Fault::at("private_key", Problem::Pem(error.to_string())))?;
    Ok(ServedCertificate {
        key: Arc::new(key),
        names,
    })
}

fn inline(source: Option<&DataSource>) -> Result<Vec<u8>, Problem> {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(data_source::Specifier::InlineString(text)) => Ok(text.as_bytes().to_vec()),
        Some(data_source::Specifier::InlineBytes(bytes)) => Ok(bytes.clone()),
        _ => Err(Problem::Missing {
            what: "an inline_string or inline_bytes",
        }),
    }
}

/// The DNS names a leaf certificate serves: its subject alternative names, else its common
/// name, lower case.
fn dns_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            certificate
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_rustls_has_are_kept_in_order_and_the_others_named() {
        let names: Vec<String> = [
            "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
            "ECDHE-RSA-AES128-SHA",
            "ECDHE-RSA-AES256-GCM-SHA384",
        ]
        .map(String::from)
        .to_vec();
        let (served, unserved) = cipher_suites(&names).unwrap();
        assert_eq!(
            served,
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                "ECDHE-RSA-AES256-GCM-SHA384"
            ]
        );
        assert_eq!(unserved, ["ECDHE-RSA-AES128-SHA"]);
        assert_eq!(
            cipher_suites(&["DES-CBC3-SHA".to_string()]).unwrap_err(),
            Problem::UnknownCipherSuite {
                name: "DES-CBC3-SHA".into()
            }
        );
    }

    #[test]
    fn versions_are_narrowed_to_what_rustls_speaks() {
        let v = |p: TlsProtocol| p as i32;
        assert_eq!(
            versions(v(TlsProtocol::TlSv10), v(TlsProtocol::TlSv13)),
            Ok((TlsVersion::Tls12, TlsVersion::Tls13))
        );
        assert_eq!(
            versions(v(TlsProtocol::TlSv13), v(TlsProtocol::TlsAuto)),
            Ok((TlsVersion::Tls13, TlsVersion::Tls13))
        );
        assert_eq!(
            versions(v(TlsProtocol::TlSv10), v(TlsProtocol::TlSv11)),
            Err(Problem::TlsVersions)
        );
    }

    #[test]
    fn a_context_of_unserved_suites_only_is_refused_by_name() {
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
            SdsSecretConfig, TlsParameters,
        };
        use prost::Message;
        let context = DownstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                tls_params: Some(TlsParameters {
                    tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
                    cipher_suites: vec!["AES128-SHA".into(), "AES256-SHA".into()],
                    ..Default::default()
                }),
                tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                    name: "c".into(),
                    sds_config: Some(Default::default()),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let refused = downstream(&context.encode_to_vec()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "common_tls_context.tls_params.cipher_suites: none of the cipher suites \
             AES128-SHA:AES256-SHA is implemented by the sidecar (rustls offers \
             ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, \
             ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-AES128-GCM-SHA256, \
             ECDHE-RSA-AES256-GCM-SHA384, ECDHE-RSA-CHACHA20-POLY1305)"
        );
    }
}
