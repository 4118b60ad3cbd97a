//! Certificates made at test time for mTLS on the xDS port: a CA, a server certificate, and
//! client certificates with SPIFFE URI or DNS identities; and a tonic channel that shows one.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, SanType};
use switchyard::xds::server::tls::TlsFiles;
use tonic::transport::{Certificate as TonicCertificate, ClientTlsConfig, Identity};

/// A CA that signs certificates into a folder.
pub struct Authority {
    certificate: Certificate,
    key: KeyPair,
    dir: PathBuf,
}

impl Authority {
    pub fn new(dir: &Path, name: &str) -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), certificate.pem()).unwrap();
        Authority {
            certificate,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// Writes `{name}.pem` and `{name}-key.pem`: a certificate with `dns` names and IP
    /// addresses, and `uri` SANs.
    pub fn issue(&self, name: &str, dns: &[&str], uri: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        for uri in uri {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().unwrap()));
        }
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, certificate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A server certificate, clients' certificates from the same CA, and a stranger's from
/// another CA.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Authority,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new(dir.path(), "ca");
        ca.issue("server", &["localhost", "127.0.0.1"], &[]);
        ca.issue("envoy", &[], &["spiffe://switchyard.test/envoy"]);
        ca.issue("grpc", &[], &["spiffe://switchyard.test/grpc"]);
        ca.issue("raw", &["raw.switchyard.test"], &[]);
        let stranger = Authority::new(dir.path(), "stranger-ca");
        stranger.issue("stranger", &[], &["spiffe://elsewhere.test/stranger"]);
        Pki { dir, ca }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server-key.pem"),
            client_ca: self.path("ca.pem"),
        }
    }

    /// A folder laid out as envoy-configs/envoy-bootstrap-mtls.yaml expects
    /// (`envoy.pem`, `envoy-key.pem`, `ca.pem`), holding the certificate `client`.
    pub fn envoy_dir(&self, client: &str) -> PathBuf {
        let dir = self.path(&format!("{client}-envoy"));
        std::fs::create_dir_all(&dir).unwrap();
        for (from, to) in [
            (format!("{client}.pem"), "envoy.pem"),
            (format!("{client}-key.pem"), "envoy-key.pem"),
            ("ca.pem".to_string(), "ca.pem"),
        ] {
            std::fs::copy(self.path(&from), dir.join(to)).unwrap();
        }
        dir
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap()
    }
}

/// A tonic channel over TLS, showing `client` (a certificate name in the PKI) if given.
pub async fn tls_channel(
    pki: &Pki,
    address: std::net::SocketAddr,
    client: Option<&str>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(TonicCertificate::from_pem(pki.read("ca.pem")))
        .domain_name("localhost");
    if let Some(client) = client {
        tls = tls.identity(Identity::from_pem(
            pki.read(&format!("{client}.pem")),
            pki.read(&format!("{client}-key.pem")),
        ));
    }
    tonic::transport::Channel::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

/// TLS for a test backend: a fresh self-signed certificate for `backend.internal` (as
/// backends behind the cloud often have), offering `alpn` (none: no ALPN).
pub fn self_signed_backend_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::ServerConfig;
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["backend.internal".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}
