//! The HTTPS side of the proxy bench: the plain config turned into a target HTTPS proxy with
//! the example's www.example.test certificate (served to Envoy and the sidecar over SDS), and
//! the client's TLS settings (no verification: the certificate is self-signed).

use std::sync::Arc;

use tokio_rustls::rustls::client::Resumption;

use crate::load::Transport;
use crate::repo;

/// `plain` (the bench's HTTP config) with its target proxy made an HTTPS one.
pub fn https_config(plain: &str) -> String {
    let certificates = repo("examples/certs");
    let with_proxy = plain.replace(
        "targetHttpProxies:\n- {name: p, urlMap: global/urlMaps/m}",
        &format!(
            "sslCertificates:\n- {{name: c, certificateFile: {dir}/www.example.test.pem, privateKeyFile: {dir}/www.example.test.key}}\n\
             targetHttpsProxies:\n- {{name: p, urlMap: global/urlMaps/m, sslCertificates: [global/sslCertificates/c]}}",
            dir = certificates.display()
        ),
    );
    let https = with_proxy.replace(
        "target: global/targetHttpProxies/p",
        "target: global/targetHttpsProxies/p",
    );
    assert_ne!(
        https, plain,
        "the bench's config changed shape; update tls.rs"
    );
    https
}

/// Connections over TLS to www.example.test, resuming sessions when `resuming`.
pub fn client(resuming: bool) -> Transport {
    let mut config = switchyard::unverified_tls::client_config(vec![b"http/1.1".to_vec()]);
    if !resuming {
        config.resumption = Resumption::disabled();
    }
    Transport::Tls {
        config: Arc::new(config),
        server_name: "www.example.test",
    }
}
