//! Validation of TLS frontends, one rule per test with the exact message: certificates inline
//! or from files (missing, unreadable, not PEM, a key that is not the certificate's),
//! Google-managed certificates, references to certificates and policies, SSL policy profiles
//! and cipher suites, fields of target HTTPS proxies that are not served, and the port an
//! external rule to a target HTTPS proxy listens on.

use rcgen::{CertificateParams, KeyPair};
use switchyard::config::load_str;

/// A self-signed certificate for `host` and its key, as PEM.
fn self_signed(host: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (certificate.pem(), key.serialize_pem())
}

/// Indents PEM for a YAML block scalar under a field at two spaces.
fn block(pem: &str) -> String {
    pem.lines()
        .map(|line| format!("    {line}\n"))
        .collect::<String>()
}

/// A valid HTTPS frontend whose certificate part is `certificate` (the lines after `name`).
fn config(certificate: &str, proxy_extra: &str, rule_extra: &str) -> String {
    format!(
        r#"networkEndpointGroups:
- {{name: neg-a, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: 8080}}]}}
backendServices:
- {{name: web, backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg-a, balancingMode: RATE, maxRatePerEndpoint: 10}}]}}
urlMaps:
- {{name: map, defaultService: global/backendServices/web}}
sslCertificates:
- name: cert
{certificate}sslPolicies:
- {{name: strict, profile: RESTRICTED, minTlsVersion: TLS_1_2}}
targetHttpsProxies:
- name: proxy
  urlMap: global/urlMaps/map
  sslCertificates: [global/sslCertificates/cert]
  sslPolicy: global/sslPolicies/strict
{proxy_extra}forwardingRules:
- {{name: fr, portRange: "443", target: global/targetHttpsProxies/proxy{rule_extra}}}
"#
    )
}

fn inline_pair() -> String {
    let (certificate, key) = self_signed("www.example.test");
    format!(
        "  certificate: |\n{}  privateKey: |\n{}",
        block(&certificate),
        block(&key)
    )
}

fn lines(text: &str) -> Vec<String> {
    load_str(text, "lb.yaml")
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn one(text: &str) -> String {
    let found = lines(text);
    assert_eq!(found.len(), 1, "expected one diagnostic: {found:#?}");
    found[0].clone()
}

#[test]
fn an_inline_pair_and_a_pair_of_files_are_valid() {
    assert_eq!(lines(&config(&inline_pair(), "", "")), Vec::<String>::new());
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = self_signed("www.example.test");
    std::fs::write(dir.path().join("www.pem"), certificate).unwrap();
    std::fs::write(dir.path().join("www.key"), key).unwrap();
    let text = config(
        "  certificateFile: www.pem\n  privateKeyFile: www.key\n",
        "",
        "",
    );
    // Files are found next to the YAML that names them.
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, &text).unwrap();
    let loaded = switchyard::config::load(&file);
    assert!(
        loaded.diagnostics.items.is_empty(),
        "{:#?}",
        loaded.diagnostics.items
    );
    assert_eq!(
        loaded.model.certificates["cert"].dns_names,
        ["www.example.test"]
    );
    assert_eq!(loaded.referenced.len(), 2, "both files are watched");
}

#[test]
fn a_missing_file_names_the_path() {
    let found = lines(&config(
        "  certificateFile: /nowhere/www.pem\n  privateKeyFile: /nowhere/www.key\n",
        "",
        "",
    ));
    assert_eq!(
        found,
        [
            "error: lb.yaml:9: sslCertificates[cert].certificateFile: /nowhere/www.pem does not exist",
            "error: lb.yaml:10: sslCertificates[cert].privateKeyFile: /nowhere/www.key does not exist",
        ]
    );
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let (certificate, _) = self_signed("www.example.test");
    let (_, other_key) = self_signed("other.example.test");
    let pair = format!(
        "  certificate: |\n{}  privateKey: |\n{}",
        block(&certificate),
        block(&other_key)
    );
    let text = config(&pair, "", "");
    let message = one(&text);
    // A block scalar's line is the first line of its text.
    let key_line = 2 + text
        .lines()
        .position(|line| line.starts_with("  privateKey:"))
        .unwrap();
    assert_eq!(
        message,
        format!("error: lb.yaml:{key_line}: sslCertificates[cert].privateKey: the key in the inline PEM is not the key of the certificate in the inline PEM (subject CN=rcgen self signed cert)")
    );
}

#[test]
fn text_that_is_not_pem_is_refused() {
    let message = one(&config(
        "  certificate: not a certificate\n  privateKey: not a key\n",
        "",
        "",
    ));
    assert_eq!(
        message,
        "error: lb.yaml:9: sslCertificates[cert].certificate: the inline PEM holds no PEM block (`-----BEGIN ...-----`)"
    );
}

#[test]
fn inline_and_file_together_and_neither_are_errors() {
    let both = lines(&config(
        "  certificate: x\n  certificateFile: a.pem\n  privateKey: y\n",
        "",
        "",
    ));
    assert_eq!(
        both,
        ["error: lb.yaml:10: sslCertificates[cert].certificateFile: give either `certificate` (PEM text) or `certificateFile` (a path), not both"]
    );
    let neither = lines(&config("  description: nothing\n", "", ""));
    assert_eq!(
        neither,
        [
            "error: lb.yaml:8: sslCertificates[cert].certificate: missing: give `certificate` (PEM text) or `certificateFile` (a path, relative to this YAML file's folder)",
            "error: lb.yaml:8: sslCertificates[cert].privateKey: missing: give `privateKey` (PEM text) or `privateKeyFile` (a path, relative to this YAML file's folder)",
        ]
    );
}

#[test]
fn google_managed_certificates_are_not_available() {
    let message = one(&config(
        "  type: MANAGED\n  managed: {domains: [www.example.test]}\n",
        "",
        "",
    ));
    assert_eq!(
        message,
        "error: lb.yaml:9: sslCertificates[cert].type: Google-managed certificates are issued by Google's certificate authority, which is not available in a self-hosted control plane; give the certificate and its key (`certificate` and `privateKey` as PEM, or `certificateFile` and `privateKeyFile`)"
    );
}

#[test]
fn references_to_certificates_and_policies_must_resolve() {
    let text = config(&inline_pair(), "", "")
        .replace(
            "[global/sslCertificates/cert]",
            "[global/sslCertificates/crt]",
        )
        .replace("sslPolicies/strict", "sslPolicies/strcit");
    let found = lines(&text);
    assert!(found.iter().any(|l| l.ends_with(
        "targetHttpsProxies[proxy].sslCertificates[0]: `crt` refers to no resource in sslCertificates; did you mean `cert`?"
    )), "{found:#?}");
    assert!(found.iter().any(|l| l.ends_with(
        "targetHttpsProxies[proxy].sslPolicy: `strcit` refers to no resource in sslPolicies; did you mean `strict`?"
    )), "{found:#?}");
    let none = lines(
        &config(&inline_pair(), "", "")
            .replace("  sslCertificates: [global/sslCertificates/cert]\n", ""),
    );
    assert!(none.iter().any(|l| l.ends_with(
        "targetHttpsProxies[proxy].sslCertificates: a target HTTPS or SSL proxy needs at least one certificate (a name from sslCertificates); the first is served to clients whose SNI matches none"
    )), "{none:#?}");
}

#[test]
fn ssl_policy_profiles_and_suites_follow_the_cloud() {
    let with_policy = |policy: &str| {
        config(&inline_pair(), "", "").replace(
            "- {name: strict, profile: RESTRICTED, minTlsVersion: TLS_1_2}",
            policy,
        )
    };
    let at = |found: Vec<String>| {
        assert_eq!(found.len(), 1, "{found:#?}");
        found[0].splitn(3, ": ").nth(2).unwrap().to_string()
    };
    assert_eq!(
        at(lines(&with_policy("- {name: strict, profile: CUSTOM}"))),
        "sslPolicies[strict].customFeatures: profile CUSTOM needs the cipher suites it allows, e.g. [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]"
    );
    assert_eq!(
        at(lines(&with_policy(
            "- {name: strict, profile: MODERN, customFeatures: [TLS_RSA_WITH_AES_128_CBC_SHA]}"
        ))),
        "sslPolicies[strict].customFeatures: customFeatures may only be set with profile CUSTOM (this policy's profile is MODERN)"
    );
    assert_eq!(
        at(lines(&with_policy(
            "- {name: strict, profile: CUSTOM, customFeatures: [TLS_RSA_WITH_3DES_EDE_CBC_SHA]}"
        ))),
        "sslPolicies[strict].customFeatures[0]: `TLS_RSA_WITH_3DES_EDE_CBC_SHA` is a cloud cipher suite Switchyard does not serve: Envoy's TLS library no longer offers 3DES"
    );
    assert!(at(lines(&with_policy(
        "- {name: strict, profile: CUSTOM, customFeatures: [TLS_MADE_UP]}"
    )))
    .starts_with("sslPolicies[strict].customFeatures[0]: `TLS_MADE_UP` is not a cipher suite; allowed: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "));
    assert!(at(lines(&with_policy(
        "- {name: strict, minTlsVersion: TLS_9}"
    )))
    .starts_with("sslPolicies[strict].minTlsVersion: `TLS_9` is not allowed"));
}

#[test]
fn unserved_proxy_fields_are_named_and_quic_is_a_warning() {
    let found = lines(&config(
        &inline_pair(),
        "  quicOverride: ENABLE\n  certificateMap: //certificatemanager.googleapis.com/projects/p/locations/global/certificateMaps/m\n",
        "",
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found.iter().any(|l| l.contains(
        "targetHttpsProxies[proxy].certificateMap: `certificateMap` is a cloud field Switchyard does not serve yet"
    )), "{found:#?}");
    assert!(found.iter().any(|l| l.starts_with("warning: ") && l.contains(
        "targetHttpsProxies[proxy].quicOverride: accepted and not served: HTTP/3 (QUIC) is not advertised"
    )), "{found:#?}");
}

#[test]
fn an_external_rule_to_an_https_proxy_listens_on_443() {
    let text = config(
        &inline_pair(),
        "",
        ", loadBalancingScheme: EXTERNAL_MANAGED",
    )
    .replace("portRange: \"443\"", "portRange: \"8443\"");
    let found = lines(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].ends_with("forwardingRules[fr].portRange: an EXTERNAL_MANAGED forwarding rule to a target HTTPS proxy listens on port 443, not 8443; for another port use loadBalancingScheme INTERNAL_SELF_MANAGED"), "{}", found[0]);
    let ok = config(
        &inline_pair(),
        "",
        ", loadBalancingScheme: EXTERNAL_MANAGED",
    );
    assert_eq!(lines(&ok), Vec::<String>::new());
}
