//! Cipher suites the clouds' TLS policies name, with the OpenSSL name a proxy knows each by,
//! and the pre-defined profiles (COMPATIBLE, MODERN, RESTRICTED) that group them. Shared by the
//! dialects, which resolve a policy into the suites a frontend offers.

use serde::Serialize;

use crate::model::{cloud_enum, CloudEnum, Loc, TlsVersion};

cloud_enum!(
    /// The cloud's pre-defined sets of cipher suites, or CUSTOM with `customFeatures`.
    SslProfile {
        Compatible => "COMPATIBLE",
        Modern => "MODERN",
        Restricted => "RESTRICTED",
        Custom => "CUSTOM",
    }
);

/// `sslPolicies`: the TLS versions and cipher suites a target HTTPS proxy offers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SslPolicy {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub min_tls_version: TlsVersion,
    pub profile: SslProfile,
    /// The cloud's cipher suite names; only with profile CUSTOM.
    pub custom_features: Vec<String>,
}

impl SslPolicy {
    /// The cipher suites (cloud names) the policy allows for TLS 1.2 and older; TLS 1.3's
    /// suites are fixed by the protocol.
    pub fn cipher_suites(&self) -> Vec<&str> {
        match self.profile {
            SslProfile::Custom => self.custom_features.iter().map(String::as_str).collect(),
            profile => profile_cipher_suites(profile),
        }
    }
}

/// The suites of a pre-defined profile (none for CUSTOM).
pub fn profile_cipher_suites(profile: SslProfile) -> Vec<&'static str> {
    CIPHER_SUITES
        .iter()
        .filter(|suite| suite.profiles.contains(&profile))
        .map(|suite| suite.cloud_name)
        .collect()
}

/// One cipher suite: the cloud's name, the name Envoy's TLS library knows it by, and the
/// pre-defined profiles that include it.
pub struct CipherSuite {
    pub cloud_name: &'static str,
    pub envoy_name: &'static str,
    pub profiles: &'static [SslProfile],
}

const ALL_PROFILES: &[SslProfile] = &[
    SslProfile::Compatible,
    SslProfile::Modern,
    SslProfile::Restricted,
];
const COMPATIBLE_AND_MODERN: &[SslProfile] = &[SslProfile::Compatible, SslProfile::Modern];
const COMPATIBLE_ONLY: &[SslProfile] = &[SslProfile::Compatible];

/// The suites SSL policies can name, as the cloud's pre-defined profiles group them:
/// RESTRICTED keeps the forward-secret AEAD suites, MODERN adds the forward-secret CBC
/// suites, COMPATIBLE adds the RSA key-exchange suites.
pub const CIPHER_SUITES: &[CipherSuite] = &[
    suite(
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        ALL_PROFILES,
    ),
    suite(
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        ALL_PROFILES,
    ),
    suite(
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        ALL_PROFILES,
    ),
    suite(
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        ALL_PROFILES,
    ),
    suite(
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        ALL_PROFILES,
    ),
    suite(
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
        ALL_PROFILES,
    ),
    suite(
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "ECDHE-ECDSA-AES128-SHA",
        COMPATIBLE_AND_MODERN,
    ),
    suite(
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "ECDHE-ECDSA-AES256-SHA",
        COMPATIBLE_AND_MODERN,
    ),
    suite(
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "ECDHE-RSA-AES128-SHA",
        COMPATIBLE_AND_MODERN,
    ),
    suite(
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "ECDHE-RSA-AES256-SHA",
        COMPATIBLE_AND_MODERN,
    ),
    suite(
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "AES128-GCM-SHA256",
        COMPATIBLE_ONLY,
    ),
    suite(
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "AES256-GCM-SHA384",
        COMPATIBLE_ONLY,
    ),
    suite(
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "AES128-SHA",
        COMPATIBLE_ONLY,
    ),
    suite(
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "AES256-SHA",
        COMPATIBLE_ONLY,
    ),
];

const fn suite(
    cloud_name: &'static str,
    envoy_name: &'static str,
    profiles: &'static [SslProfile],
) -> CipherSuite {
    CipherSuite {
        cloud_name,
        envoy_name,
        profiles,
    }
}

/// The suite the cloud calls `cloud_name`.
pub fn cipher_suite(cloud_name: &str) -> Option<&'static CipherSuite> {
    CIPHER_SUITES.iter().find(|s| s.cloud_name == cloud_name)
}

/// The cloud's 3DES suite: it exists in the API, and Envoy's TLS library no longer offers it.
pub const UNSERVED_CIPHER_SUITES: &[&str] = &["TLS_RSA_WITH_3DES_EDE_CBC_SHA"];

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(profile: SslProfile) -> SslPolicy {
        SslPolicy {
            name: "p".into(),
            loc: Loc::new(std::sync::Arc::from("test.yaml"), 1),
            min_tls_version: TlsVersion::Tls10,
            profile,
            custom_features: vec!["TLS_RSA_WITH_AES_128_CBC_SHA".into()],
        }
    }

    #[test]
    fn each_profile_narrows_the_one_before() {
        let compatible = profile_cipher_suites(SslProfile::Compatible);
        let modern = profile_cipher_suites(SslProfile::Modern);
        let restricted = profile_cipher_suites(SslProfile::Restricted);
        assert_eq!(compatible.len(), CIPHER_SUITES.len());
        assert!(modern.iter().all(|s| compatible.contains(s)));
        assert!(restricted.iter().all(|s| modern.contains(s)));
        assert!(!modern.contains(&"TLS_RSA_WITH_AES_128_GCM_SHA256"));
        assert!(restricted.iter().all(|s| !s.contains("CBC")));
        assert_eq!(
            policy(SslProfile::Custom).cipher_suites(),
            ["TLS_RSA_WITH_AES_128_CBC_SHA"]
        );
    }
}
