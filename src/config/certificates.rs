//! The certificates of `sslCertificates`, made whole after the YAML is read: PEM files are
//! read (resolved against the folder of the YAML that names them), and every certificate and
//! key is checked — PEM blocks of the right kind, a parseable leaf, a key of a supported type
//! that belongs to the leaf — so that a bad pair is refused with its field here, not NACKed by
//! every Envoy later. Must not: watch files (the reloader watches the files listed here) or
//! keep anything between loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio_rustls::rustls::crypto::ring::sign::any_supported_type;
use tokio_rustls::rustls::pki_types::{
    PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem as PemBlock;

use crate::model::tls::Pem;
use crate::model::{Certificate, Diagnostics};

/// The largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A file a load read besides the YAML, and a digest of what it held then (or of why it
/// could not be read), so a later change to it is a change to the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferencedFile {
    pub path: PathBuf,
    pub digest: String,
}

/// Reads the PEM files of every certificate of `certificates` and checks every pair; returns
/// the files read.
pub fn resolve(
    certificates: &mut BTreeMap<String, Certificate>,
    diagnostics: &mut Diagnostics,
) -> Vec<ReferencedFile> {
    let mut read = Vec::new();
    for certificate in certificates.values_mut() {
        let mut complete =
            !certificate.certificate.is_missing() && !certificate.private_key.is_missing();
        for pem in [&mut certificate.certificate, &mut certificate.private_key] {
            if let Some(file) = pem.file.clone() {
                let contents = read_pem_file(&file);
                read.push(ReferencedFile {
                    path: file.clone(),
                    digest: digest_of(&contents),
                });
                match contents {
                    Ok(text) => pem.text = text,
                    Err(error) => {
                        diagnostics.error(&pem.loc, &pem.path, error);
                        complete = false;
                    }
                }
            }
        }
        if !complete {
            continue;
        }
        match check_pair(&certificate.certificate, &certificate.private_key) {
            Ok(names) => certificate.dns_names = names,
            Err((pem, error)) => diagnostics.error(&pem.loc, &pem.path, error),
        }
    }
    read
}

/// Digests of `files` as they are now, to compare with those of the last load.
pub fn digests_now(files: &[PathBuf]) -> Vec<ReferencedFile> {
    files
        .iter()
        .map(|path| ReferencedFile {
            path: path.clone(),
            digest: digest_of(&read_pem_file(path)),
        })
        .collect()
}

fn digest_of(contents: &Result<String, String>) -> String {
    let mut hasher = Sha256::new();
    match contents {
        Ok(text) => hasher.update(text.as_bytes()),
        Err(error) => {
            hasher.update(b"error\0");
            hasher.update(error.as_bytes());
        }
    }
    format!("{:x}", hasher.finalize())
}

fn read_pem_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => format!("{shown} does not exist"),
        _ => format!("cannot read {shown}: {error}"),
    })?;
    if metadata.len() > MAX_PEM_BYTES {
        return Err(format!(
            "{shown} is {} bytes; a certificate or key file may have at most {MAX_PEM_BYTES}",
            metadata.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    String::from_utf8(bytes).map_err(|_| format!("{shown} is not PEM text (it is not UTF-8)"))
}

/// The DNS names of the leaf of `certificate`, when `private_key` is its key; else the field
/// at fault and why.
pub fn check_pair<'p>(
    certificate: &'p Pem,
    private_key: &'p Pem,
) -> Result<Vec<String>, (&'p Pem, String)> {
    let blocks = pem_blocks(certificate).map_err(|e| (certificate, e))?;
    let certificates: Vec<&PemBlock> = blocks.iter().filter(|b| b.label == "CERTIFICATE").collect();
    let Some(leaf) = certificates.first() else {
        return Err((
            certificate,
            format!("{} holds no `BEGIN CERTIFICATE` block", what(certificate)),
        ));
    };
    let parsed = leaf.parse_x509().map_err(|error| {
        (
            certificate,
            format!(
                "the first certificate of {} cannot be parsed: {error}",
                what(certificate)
            ),
        )
    })?;
    let names = dns_names(&parsed);
    let key_blocks = pem_blocks(private_key).map_err(|e| (private_key, e))?;
    let Some(key) = key_blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")) else {
        return Err((
            private_key,
            format!(
                "{} holds no private key (a `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block)",
                what(private_key)
            ),
        ));
    };
    let der = match key.label.as_str() {
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(key.contents.clone())),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(key.contents.clone())),
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.contents.clone())),
        other => {
            return Err((
                private_key,
                format!("{} holds a `{other}`, which is not served (encrypted keys cannot be used unattended); give the key unencrypted, as PKCS#8, RSA or EC PEM", what(private_key)),
            ))
        }
    };
    let signing = any_supported_type(&der).map_err(|error| {
        (
            private_key,
            format!("the key in {} cannot be used: {error}; RSA (2048 bits or more), ECDSA P-256 / P-384 and Ed25519 keys are allowed", what(private_key)),
        )
    })?;
    let matches = signing
        .public_key()
        .is_some_and(|public| public.as_ref() == parsed.public_key().raw);
    if !matches {
        return Err((
            private_key,
            format!(
                "the key in {} is not the key of the certificate in {} (subject {})",
                what(private_key),
                what(certificate),
                parsed.subject()
            ),
        ));
    }
    Ok(names)
}

fn pem_blocks(pem: &Pem) -> Result<Vec<PemBlock>, String> {
    let blocks: Result<Vec<PemBlock>, _> =
        PemBlock::iter_from_buffer(pem.text.as_bytes()).collect();
    let blocks = blocks.map_err(|error| format!("{} is not valid PEM: {error}", what(pem)))?;
    if blocks.is_empty() {
        return Err(format!(
            "{} holds no PEM block (`-----BEGIN ...-----`)",
            what(pem)
        ));
    }
    Ok(blocks)
}

fn what(pem: &Pem) -> String {
    match &pem.file {
        Some(file) => format!("the file {}", file.display()),
        None => "the inline PEM".to_string(),
    }
}

/// The SAN DNS names of a certificate, or its common name when it has none.
fn dns_names(certificate: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let sans: Vec<String> = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|extension| {
            extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !sans.is_empty() {
        return sans;
    }
    certificate
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect()
}
