//! mTLS on the xDS port: the server's certificate and key and the CA bundle that client
//! certificates must chain to, read from files and read again when the files change (new
//! connections get the new certificate; open ones keep theirs), and the identity a client's
//! certificate gives it: its SPIFFE (URI) SAN, else its first DNS SAN.
//! Must not: accept a connection without a client certificate that verifies, or drop the
//! working settings because a rotation wrote a bad file (that is logged, and waited out).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The files mTLS is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The CAs client certificates must chain to (PEM bundle).
    pub client_ca: PathBuf,
}

/// Why the TLS files do not make a working set: what was being done, with the cause (a PEM
/// or TLS error) as source.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `what`: the certificate, the private key or the client CA bundle.
    #[error("reading the {what} {}", .path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        source: pem::Error,
    },
    #[error("{} holds no certificate", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("a CA in {} is not valid", .path.display())]
    InvalidCa {
        path: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
    #[error("{} holds no CA certificate", .path.display())]
    NoCa { path: PathBuf },
    #[error("building the client certificate verifier")]
    Verifier(#[source] VerifierBuilderError),
    #[error("choosing TLS versions")]
    Versions(#[source] tokio_rustls::rustls::Error),
    #[error(
        "the key {} does not go with the certificate {}",
        .key.display(), .certificate.display()
    )]
    KeyMismatch {
        key: PathBuf,
        certificate: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
}

/// `error` and its sources, joined by `: ` (as anyhow's `{:#}` prints a chain).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// How often the files are looked at for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The TLS settings in force, replaced when the files change.
pub struct TlsSettings {
    files: TlsFiles,
    current: RwLock<(TlsAcceptor, Vec<Stamp>)>,
}

/// What tells that a file changed: its length and modification time (after following
/// symlinks, so a Kubernetes Secret's `..data` swap counts).
type Stamp = Option<(u64, SystemTime)>;

fn stamps(files: &TlsFiles) -> Vec<Stamp> {
    [&files.cert, &files.key, &files.client_ca]
        .iter()
        .map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.len(), metadata.modified().ok()?))
        })
        .collect()
}

impl TlsSettings {
    /// Reads the files; fails saying which one is wrong.
    pub fn load(files: TlsFiles) -> Result<Arc<TlsSettings>, TlsError> {
        let stamps = stamps(&files);
        let acceptor = acceptor(&files)?;
        Ok(Arc::new(TlsSettings {
            files,
            current: RwLock::new((acceptor, stamps)),
        }))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Reads the files again if they changed; keeps the settings in force when they do not
    /// make a working set (a rotation half-written, say), and says so.
    fn reload_if_changed(&self) {
        let now = stamps(&self.files);
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == now {
            return;
        }
        match acceptor(&self.files) {
            Ok(acceptor) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (acceptor, now);
                tracing::info!("the xDS port's TLS certificate files changed: reloaded");
            }
            Err(error) => {
                // Remember the stamps, so that the same bad files are reported once.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = now;
                tracing::error!(
                    "the xDS port's TLS files changed but cannot be used ({}); still serving \
                     the previous certificate",
                    with_causes(&error)
                );
            }
        }
    }

    /// Looks at the files every second until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let settings = self.clone();
            let _ = tokio::task::spawn_blocking(move || settings.reload_if_changed()).await;
        }
    }
}

/// A TLS acceptor from the files: HTTP/2 only, client certificates required.
fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let unreadable = |what: &'static str, path: &PathBuf| {
        let path = path.clone();
        move |source| TlsError::Unreadable { what, path, source }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .map_err(unreadable("certificate", &files.cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(unreadable("private key", &files.key))?;
    let mut roots = RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.client_ca)
        .and_then(|certs| certs.collect())
        .map_err(unreadable("client CA bundle", &files.client_ca))?;
    for ca in cas {
        roots.add(ca).map_err(|source| TlsError::InvalidCa {
            path: files.client_ca.clone(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCa {
            path: files.client_ca.clone(),
        });
    }
    let provider = Arc::new(default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(TlsError::Verifier)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::KeyMismatch {
            key: files.key.clone(),
            certificate: files.cert.clone(),
            source,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A client's identity from its certificate: the first URI SAN (SPIFFE), else the first DNS
/// SAN; None when it has neither.
pub fn identity_of(certificate: &CertificateDer<'_>) -> Option<Arc<str>> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let names = parsed
        .subject_alternative_name()
        .ok()??
        .value
        .general_names
        .clone();
    let uri = names.iter().find_map(|name| match name {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let dns = names.iter().find_map(|name| match name {
        GeneralName::DNSName(dns) => Some(*dns),
        _ => None,
    });
    uri.or(dns).map(Arc::from)
}
