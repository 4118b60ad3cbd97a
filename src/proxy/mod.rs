//! The sidecar, `switchyard proxy`: an xDS client ([`crate::xds::client`]) feeding a data plane
//! that proxies HTTP/1.1, HTTP/2, gRPC and TCP the way Envoy would with the same resources.
//! [`bootstrap`] reads Envoy's bootstrap; [`resources`] turns xDS resources into typed config
//! (refusing what the sidecar does not implement); [`load_stats`] counts the load sent to each
//! upstream locality, which [`lrs_client`] reports when the bootstrap asks for load reports.
//!
//! Must not: import the control plane (config, model, translate, the xDS server).

pub mod access_log;
pub mod access_log_http;
pub mod admin;
pub mod attempts;
pub mod balancer;
mod between_exchanges;
pub mod body_copy;
pub mod bootstrap;
pub mod circuit_breakers;
pub mod config;
pub mod dns;
pub mod dns_clusters;
pub mod downstream;
pub mod endpoint_names;
pub mod filters;
pub mod forward;
pub mod headers;
pub mod http;
mod http1_codec;
mod http1_exchange;
mod http1_pool;
mod http2_pool;
pub mod lingering;
pub mod listeners;
pub mod load_report;
pub mod load_stats;
pub mod lrs_client;
pub mod mirror;
pub mod original_dst;
pub mod original_dst_hosts;
pub mod outlier;
pub mod override_host;
pub mod prometheus;
pub mod proxy_protocol;
pub mod request_body;
pub mod resources;
pub mod retry;
pub mod rewrite;
pub mod router;
pub mod slow_start;
pub mod stats;
pub mod stream_deadline;
pub mod tcp;
#[cfg(test)]
mod test_backends;
pub mod timeouts;
pub mod tls;
pub mod tls_unbuffered;
pub mod upgrade;
pub mod upstream_tls;
pub mod workers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::xds::client::ads::{self, ServerAddress};
use bootstrap::{GrpcServer, XdsTls};

/// Why the sidecar could not start: what it was doing, with the system's error as source.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("binding the admin address {address}")]
    BindAdmin {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// A certificate, key or CA file for TLS to the xDS server.
    #[error("reading {}", .path.display())]
    ReadTlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the data-plane worker threads")]
    StartWorkers(#[source] std::io::Error),
}

/// What the operator sets on the command line rather than in the bootstrap.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The DNS server DNS clusters ask (UDP), instead of the system's (/etc/resolv.conf);
    /// /etc/hosts answers first either way.
    pub dns_resolver: Option<SocketAddr>,
    /// Data-plane worker threads (Envoy's --concurrency); one per CPU when None.
    pub workers: Option<usize>,
}

/// Runs the sidecar from `bootstrap` until `shutdown`.
pub async fn run(
    bootstrap: bootstrap::Bootstrap,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), ProxyError> {
    for path in &bootstrap.not_understood {
        tracing::warn!(field = %path, "bootstrap field not understood by the sidecar; ignored");
    }
    let bootstrap = Arc::new(bootstrap);
    let loads = Arc::new(load_stats::LoadStore::new(bootstrap.load_stats.is_some()));
    let (applier, config) = config::Applier::new(loads.clone());
    let server = server_address(&bootstrap.xds_addresses, bootstrap.xds_tls.as_ref())?;
    if let Some(GrpcServer { addresses, tls }) = &bootstrap.load_stats {
        let lrs = server_address(addresses, tls.as_ref())?;
        tracing::info!(server = %lrs.uri, "reporting load");
        tokio::spawn(lrs_client::run(
            lrs,
            bootstrap.node.clone(),
            loads,
            shutdown.clone(),
        ));
    }
    if let Some(admin) = bootstrap.admin {
        let listener = tokio::net::TcpListener::bind(admin)
            .await
            .map_err(|source| ProxyError::BindAdmin {
                address: admin,
                source,
            })?;
        let state = admin::AdminState {
            applier: applier.clone(),
            bootstrap: bootstrap.clone(),
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, admin::router(state))
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        tracing::info!(%admin, "admin listening");
    }
    let resolver = Arc::new(dns::Resolver::new(options.dns_resolver));
    tokio::spawn(dns_clusters::run(
        applier.clone(),
        config.clone(),
        resolver,
        shutdown.clone(),
    ));
    tokio::spawn(outlier::timer::run(
        applier.clone(),
        config.clone(),
        shutdown.clone(),
    ));
    let workers = options.workers.unwrap_or_else(workers::default_count);
    workers::start(workers, config, shutdown.clone()).map_err(ProxyError::StartWorkers)?;
    tokio::spawn(trim_when_connections_close(shutdown.clone()));
    ads::run(
        server,
        bootstrap.protocol,
        bootstrap.node.clone(),
        applier,
        shutdown,
    )
    .await;
    Ok(())
}

/// Connections that must have closed since the last trim for another one.
const CLOSED_CONNECTIONS_WORTH_A_TRIM: u64 = 64;

/// Gives the memory of closed connections back to the system (the allocator keeps what a
/// burst of clients freed otherwise), checking every two seconds until `shutdown`.
async fn trim_when_connections_close(shutdown: CancellationToken) {
    let active = || {
        stats::STATS
            .downstream_connections_active
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let mut high = active();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
        let now = active();
        if now + CLOSED_CONNECTIONS_WORTH_A_TRIM <= high || (now == 0 && high > 0) {
            let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
            high = now;
        }
        high = high.max(now);
    }
}

/// Waits until no downstream connection is open, or `limit` has passed.
pub async fn drained(limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while stats::STATS
        .downstream_connections_active
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How to reach the first of `addresses`, with `tls` when given.
fn server_address(
    addresses: &[SocketAddr],
    tls: Option<&XdsTls>,
) -> Result<ServerAddress, ProxyError> {
    let address = addresses[0];
    let Some(tls) = tls else {
        return Ok(ServerAddress {
            uri: format!("http://{address}"),
            tls: None,
        });
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ProxyError::ReadTlsFile {
            path: path.to_path_buf(),
            source,
        })
    };
    let identity =
        tonic::transport::Identity::from_pem(read(&tls.certificate)?, read(&tls.private_key)?);
    let mut config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(
            &tls.trusted_ca,
        )?))
        .identity(identity);
    config = config.domain_name(tls.sni.clone().unwrap_or_else(|| address.ip().to_string()));
    Ok(ServerAddress {
        uri: format!("https://{address}"),
        tls: Some(config),
    })
}
