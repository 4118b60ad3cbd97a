//! The TLS frontends of the GCP dialect: `sslCertificates` (self-managed: PEM inline, as the
//! API takes it, or from files, Switchyard's own fields), `sslPolicies`, and the TLS fields of
//! target HTTPS and SSL proxies (read with the rest of the proxy in `target_proxies`). Reads
//! fields; the files themselves are read by `config::certificates` once the whole config is
//! read.

use std::path::Path;
use std::sync::Arc;

use crate::config::cipher_suites::{cipher_suite, UNSERVED_CIPHER_SUITES};
use crate::config::cipher_suites::{SslPolicy, SslProfile};
use crate::config::gcp::resources::ProxyTls;
use crate::config::reader::Fields;
use crate::config::yaml::Node;
use crate::model::Pem;
use crate::model::{Certificate, Diagnostics, TlsVersion};

use super::{open, reference};

/// The most certificates the cloud lets one target HTTPS proxy hold.
const MAX_CERTIFICATES_PER_PROXY: usize = 15;

pub(super) fn ssl_certificate(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<Certificate> {
    let (mut fields, name) = open(node, file, "sslCertificates", diagnostics)?;
    let managed = fields.choice(
        "type",
        &[("SELF_MANAGED", false), ("MANAGED", true)],
        diagnostics,
    );
    let managed_block = fields.get("managed").is_some();
    if managed == Some(true) || managed_block {
        let key = if managed == Some(true) {
            "type"
        } else {
            "managed"
        };
        diagnostics.error(
            &fields.loc_of(key),
            fields.field_path(key),
            "Google-managed certificates are issued by Google's certificate authority, which is \
             not available in a self-hosted control plane; give the certificate and its key \
             (`certificate` and `privateKey` as PEM, or `certificateFile` and `privateKeyFile`)",
        );
        // A managed certificate's describe output holds its PEM and the rest, all moot now.
        fields.ignore(&[
            "certificate",
            "privateKey",
            "selfManaged",
            "certificateFile",
            "privateKeyFile",
        ]);
        let loc = fields.loc();
        fields.finish(diagnostics);
        // Kept, without content, so that proxies naming it are not also reported.
        return Some(Certificate {
            name,
            loc,
            certificate: Pem::missing(),
            private_key: Pem::missing(),
            dns_names: Vec::new(),
        });
    }
    // The regional API nests the pair under `selfManaged`; the global one does not.
    let nested = fields.get("selfManaged");
    let mut inner =
        nested.map(|node| Fields::new(node, file, fields.field_path("selfManaged"), diagnostics));
    if let Some(inner) = inner.as_mut() {
        super::fields::classify(
            inner,
            "SslCertificateSelfManagedSslCertificate",
            diagnostics,
        );
    }
    let pair = inner.as_mut().unwrap_or(&mut fields);
    let certificate = pem_field(pair, "certificate", "certificateFile", diagnostics);
    let private_key = pem_field(pair, "privateKey", "privateKeyFile", diagnostics);
    if let Some(inner) = inner {
        inner.finish(diagnostics);
    }
    let loc = fields.loc();
    fields.finish(diagnostics);
    Some(Certificate {
        name,
        loc,
        certificate: certificate.unwrap_or_else(Pem::missing),
        private_key: private_key.unwrap_or_else(Pem::missing),
        dns_names: Vec::new(),
    })
}

/// PEM given inline in `inline` or in the file named by `from_file`: exactly one of them.
fn pem_field(
    fields: &mut Fields<'_>,
    inline: &'static str,
    from_file: &'static str,
    diagnostics: &mut Diagnostics,
) -> Option<Pem> {
    let text = fields.string(inline, diagnostics);
    let written_file = fields.string(from_file, diagnostics);
    match (text, written_file) {
        (Some(_), Some(_)) => {
            diagnostics.error(
                &fields.loc_of(from_file),
                fields.field_path(from_file),
                format!("give either `{inline}` (PEM text) or `{from_file}` (a path), not both"),
            );
            None
        }
        (Some(text), None) => Some(Pem {
            text,
            file: None,
            loc: fields.loc_of(inline),
            path: fields.field_path(inline),
        }),
        (None, Some(written)) => {
            let base = Path::new(fields.file().as_ref())
                .parent()
                .unwrap_or(Path::new(""));
            Some(Pem {
                text: String::new(),
                file: Some(base.join(written)),
                loc: fields.loc_of(from_file),
                path: fields.field_path(from_file),
            })
        }
        (None, None) => {
            diagnostics.error(
                &fields.loc(),
                fields.field_path(inline),
                format!(
                    "missing: give `{inline}` (PEM text) or `{from_file}` (a path, relative to \
                     this YAML file's folder)"
                ),
            );
            None
        }
    }
}

pub(super) fn ssl_policy(
    node: &Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<SslPolicy> {
    let (mut fields, name) = open(node, file, "sslPolicies", diagnostics)?;
    let profile = fields
        .cloud_enum::<SslProfile>("profile", diagnostics)
        .unwrap_or(SslProfile::Compatible);
    let min_tls_version = fields
        .cloud_enum::<TlsVersion>("minTlsVersion", diagnostics)
        .unwrap_or(TlsVersion::Tls10);
    let written = fields.get("customFeatures").is_some();
    let custom_features = fields.strings("customFeatures", diagnostics);
    let path = fields.field_path("customFeatures");
    let loc = fields.loc_of("customFeatures");
    match profile {
        SslProfile::Custom if custom_features.is_empty() => diagnostics.error(
            &loc,
            &path,
            "profile CUSTOM needs the cipher suites it allows, e.g. \
             [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]",
        ),
        SslProfile::Custom => {}
        other if written => diagnostics.error(
            &loc,
            &path,
            format!(
                "customFeatures may only be set with profile CUSTOM (this policy's profile is {})",
                other.as_str()
            ),
        ),
        _ => {}
    }
    for (index, feature) in custom_features.iter().enumerate() {
        if cipher_suite(feature).is_some() {
            continue;
        }
        let message = if UNSERVED_CIPHER_SUITES.contains(&feature.as_str()) {
            format!("`{feature}` is a cloud cipher suite Switchyard does not serve: Envoy's TLS library no longer offers 3DES")
        } else {
            let known: Vec<&str> = crate::config::cipher_suites::CIPHER_SUITES
                .iter()
                .map(|s| s.cloud_name)
                .collect();
            format!(
                "`{feature}` is not a cipher suite; allowed: {}",
                known.join(", ")
            )
        };
        diagnostics.error(&loc, format!("{path}[{index}]"), message);
    }
    let policy_loc = fields.loc();
    fields.finish(diagnostics);
    Some(SslPolicy {
        name,
        loc: policy_loc,
        min_tls_version,
        profile,
        custom_features,
    })
}

/// What a target HTTPS or SSL proxy terminates TLS with: its certificates and SSL policy.
pub(super) fn proxy_tls(
    fields: &mut Fields<'_>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> ProxyTls {
    let certificates = certificate_references(fields, file, diagnostics);
    let ssl_policy = reference(fields, "sslPolicy", &["sslPolicies"], diagnostics);
    ProxyTls {
        certificates,
        ssl_policy,
    }
}

/// `quicOverride` of a target HTTPS proxy: ENABLE is accepted with a warning that HTTP/3 is
/// not advertised.
pub(super) fn quic_override(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) {
    let quic = fields.choice(
        "quicOverride",
        &[("NONE", false), ("ENABLE", true), ("DISABLE", false)],
        diagnostics,
    );
    if quic == Some(true) {
        diagnostics.warning(
            &fields.loc_of("quicOverride"),
            fields.field_path("quicOverride"),
            "accepted and not served: HTTP/3 (QUIC) is not advertised; clients use HTTP/2 or HTTP/1.1 over TLS",
        );
    }
}

/// `sslCertificates` of a target HTTPS or SSL proxy: one to fifteen references.
fn certificate_references(
    fields: &mut Fields<'_>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Vec<crate::model::Ref> {
    let certificates = fields.items("sslCertificates", diagnostics, |item, path, diagnostics| {
        let text = item.as_scalar()?;
        let loc = crate::model::Loc::new(file.clone(), item.line);
        crate::config::references::parse(text, &["sslCertificates"], &loc, &path, diagnostics)
    });
    if certificates.is_empty() {
        diagnostics.error(
            &fields.loc_of("sslCertificates"),
            fields.field_path("sslCertificates"),
            "a target HTTPS or SSL proxy needs at least one certificate (a name from sslCertificates); the first is served to clients whose SNI matches none",
        );
    } else if certificates.len() > MAX_CERTIFICATES_PER_PROXY {
        diagnostics.error(
            &fields.loc_of("sslCertificates"),
            fields.field_path("sslCertificates"),
            format!(
                "{} certificates; a target proxy holds at most {MAX_CERTIFICATES_PER_PROXY}",
                certificates.len()
            ),
        );
    }
    certificates
}
