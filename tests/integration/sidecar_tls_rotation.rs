//! A certificate renewed on disk while clients keep sending, through Envoy and through the
//! sidecar with the same config (examples/https.yaml): clients on kept-alive TLS connections
//! and clients opening a new connection for each request run the whole time; the
//! certificate's files are replaced (as cert-manager replaces them), Switchyard re-reads them
//! and sends the new Secret over SDS. Not one request may fail, the kept-alive connections
//! carry on across the change, and new connections end up presenting the new certificate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::common::sidecar::Sidecar;
use crate::common::*;
use crate::https::{https_get, install_certificate, HttpsExample};

const HOST: &str = "www.example.test";
/// Clients on one kept-alive connection each, and clients opening a connection per request.
const KEPT_ALIVE_CLIENTS: usize = 3;
const NEW_CONNECTION_CLIENTS: usize = 2;
/// Requests each new-connection client makes after it first sees the new certificate, all of
/// which must present it.
const AFTER_RENEWAL: u64 = 20;

fn certificates_in(pem: &str) -> Vec<CertificateDer<'static>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|block| block.label == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.contents))
        .collect()
}

/// A TLS connection to 127.0.0.1:`port` with SNI [`HOST`], ready for HTTP/1.1 requests.
async fn kept_alive(
    port: u16,
    ca_pem: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates_in(ca_pem) {
        roots.add(certificate).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS12, &TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// GET / on `sender`'s connection: Ok when the web backend answered 200.
async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
) -> Result<(), String> {
    let (status, body) = get_on_connection(sender, "/", HOST).await?;
    match status {
        200 if body.windows(5).any(|w| w == b"\"web\"") => Ok(()),
        _ => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    succeeded: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.succeeded.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(error),
        }
    }
}

/// Sends requests on one connection until `stop`; every one must succeed. How many it sent
/// once the new certificate had been seen.
async fn kept_alive_client(
    port: u16,
    ca_pem: String,
    renewed_seen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> u64 {
    let mut after_renewal = 0;
    let mut sender = match kept_alive(port, &ca_pem).await {
        Ok(sender) => sender,
        Err(error) => {
            tally.record(Err(format!("connecting: {error}")));
            return after_renewal;
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let outcome = get_on(&mut sender).await;
        let failed = outcome.is_err();
        tally.record(outcome.map_err(|e| format!("kept-alive: {e}")));
        if failed {
            return after_renewal;
        }
        if renewed_seen.load(Ordering::SeqCst) {
            after_renewal += 1;
        }
    }
    after_renewal
}

/// Opens a connection per request until it has seen the `renewed` certificate on
/// [`AFTER_RENEWAL`] connections in a row; a connection that presents the old one after the
/// new one was seen is a failure.
async fn new_connection_client(
    port: u16,
    ca_pem: String,
    old: CertificateDer<'static>,
    renewed: Arc<Mutex<Option<CertificateDer<'static>>>>,
    renewed_seen: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let both = &[&TLS12, &TLS13][..];
    let mut after = 0;
    while after < AFTER_RENEWAL {
        let exchange = match https_get(port, HOST, "/", &ca_pem, both).await {
            Ok(exchange) => exchange,
            Err(error) => {
                tally.record(Err(format!("new connection: {error}")));
                return;
            }
        };
        if exchange.status != 200 || exchange.body["backend"] != "web" {
            tally.record(Err(format!(
                "new connection: {} {}",
                exchange.status, exchange.body
            )));
            return;
        }
        let new_one = renewed.lock().unwrap().clone();
        let outcome = if Some(&exchange.certificate) == new_one.as_ref() {
            renewed_seen.store(true, Ordering::SeqCst);
            after += 1;
            Ok(())
        } else if exchange.certificate != old {
            Err("a certificate that is neither the old nor the new one".to_string())
        } else if after > 0 {
            Err("the old certificate after the new one was served".to_string())
        } else {
            Ok(())
        };
        tally.record(outcome);
    }
}

async fn rotation_through(through: Through) {
    let node_id = format!("rotation-{through:?}").to_lowercase();
    let example = HttpsExample::new().await;
    let port = example.https_port;
    let switchyard = Switchyard::start(&example.config).await;
    let xds = switchyard.running.xds_addr;
    let proxy = match through {
        Through::Envoy => Proxy::Envoy(Envoy::start(xds, &node_id).await),
        Through::Sidecar => {
            Proxy::Sidecar(Sidecar::start("envoy-bootstrap.yaml", xds, &node_id).await)
        }
    };
    switchyard.wait_for_acks(&node_id).await;
    let old = certificates_in(&example.www_pem).remove(0);
    wait_for(&format!("{through:?}: the HTTPS listener"), || async {
        https_get(port, HOST, "/", &example.ca_pem, &[&TLS12, &TLS13])
            .await
            .ok()
            .filter(|exchange| exchange.certificate == old)
    })
    .await;

    let tally = Arc::new(Tally::default());
    let (stop, renewed_seen) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let renewed = Arc::new(Mutex::new(None));
    let kept: Vec<_> = (0..KEPT_ALIVE_CLIENTS)
        .map(|_| {
            tokio::spawn(kept_alive_client(
                port,
                example.ca_pem.clone(),
                renewed_seen.clone(),
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    let fresh: Vec<_> = (0..NEW_CONNECTION_CLIENTS)
        .map(|_| {
            tokio::spawn(new_connection_client(
                port,
                example.ca_pem.clone(),
                old.clone(),
                renewed.clone(),
                renewed_seen.clone(),
                tally.clone(),
            ))
        })
        .collect();
    // Traffic flows before the change.
    wait_for("requests before the renewal", || async {
        (tally.succeeded.load(Ordering::SeqCst) >= 50).then_some(())
    })
    .await;
    let new_pem = install_certificate(&example.ca, &example.certs, HOST);
    let new_certificate = certificates_in(&new_pem).remove(0);
    assert_ne!(new_certificate, old);
    *renewed.lock().unwrap() = Some(new_certificate);
    let before = tally.succeeded.load(Ordering::SeqCst);

    for client in fresh {
        tokio::time::timeout(PATIENCE, client)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{through:?}: new connections never presented the new certificate \
                     ({} requests, failures: {:?})",
                    tally.succeeded.load(Ordering::SeqCst),
                    tally.failures.lock().unwrap()
                )
            })
            .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let mut kept_after_renewal = Vec::new();
    for client in kept {
        kept_after_renewal.push(client.await.unwrap());
    }
    let failures = tally.failures.lock().unwrap().clone();
    let succeeded = tally.succeeded.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{through:?}: {} failed of {}: {failures:?}",
        failures.len(),
        succeeded + failures.len() as u64
    );
    assert!(
        kept_after_renewal.iter().all(|sent| *sent > 0),
        "{through:?}: every kept-alive connection carried requests after the renewal: \
         {kept_after_renewal:?}"
    );
    eprintln!(
        "{through:?}: {succeeded} requests, {} after the renewal, none failed",
        succeeded - before
    );
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_under_load_fails_no_request_through_envoy_and_the_sidecar() {
    rotation_through(Through::Envoy).await;
    rotation_through(Through::Sidecar).await;
}
