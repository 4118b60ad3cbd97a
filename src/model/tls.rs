//! TLS on the frontends: the certificates a frontend presents (PEM text already read from
//! their files), and what it negotiates — the lowest version and the cipher suites (OpenSSL's
//! names) its policy allows. This module neither reads files nor knows xDS.

use std::path::PathBuf;

use serde::Serialize;

use super::resources::{cloud_enum, CloudEnum, Ref};
use super::Loc;

/// A certificate chain and its private key, as PEM.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    /// The chain, leaf first.
    pub certificate: Pem,
    /// Never shown: `explain` and logs print where the key is, not what it is.
    pub private_key: Pem,
    /// DNS names the leaf certificate covers (its SANs, else its CN): what SNI picks it by.
    pub dns_names: Vec<String>,
}

/// PEM text written inline or read from a file (`config` reads the file; until then `text`
/// is empty).
#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pem {
    #[serde(skip)]
    pub text: String,
    /// The file it is read from, resolved against the folder of the YAML that names it.
    pub file: Option<PathBuf>,
    /// Where it is written, and the field's resource path.
    #[serde(skip)]
    pub loc: Loc,
    #[serde(skip)]
    pub path: String,
}

impl Pem {
    /// A PEM whose field was refused (the error is already reported): nothing to read or
    /// check.
    pub fn missing() -> Pem {
        Pem {
            text: String::new(),
            file: None,
            loc: Loc::new(std::sync::Arc::from(""), 0),
            path: String::new(),
        }
    }

    pub fn is_missing(&self) -> bool {
        self.text.is_empty() && self.file.is_none()
    }
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the text: it may be a private key.
        f.debug_struct("Pem")
            .field("file", &self.file)
            .field("bytes", &self.text.len())
            .finish_non_exhaustive()
    }
}

cloud_enum!(
    /// The lowest TLS version a frontend accepts.
    TlsVersion {
        Tls10 => "TLS_1_0",
        Tls11 => "TLS_1_1",
        Tls12 => "TLS_1_2",
        Tls13 => "TLS_1_3",
    }
);

/// The TLS a frontend terminates.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTls {
    /// In order: the first is served when the client's SNI matches none.
    pub certificates: Vec<Ref>,
    pub min_version: TlsVersion,
    /// The suites offered for TLS 1.2 and older, by their OpenSSL names; TLS 1.3's are fixed
    /// by the protocol.
    pub cipher_suites: Vec<String>,
}
