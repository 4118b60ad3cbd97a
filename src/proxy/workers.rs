//! The data plane's threads, shaped as Envoy's and haproxy's are: each worker is one OS thread
//! running its own single-threaded runtime, with its own listener sockets (SO_REUSEPORT when
//! there are several, so the kernel spreads connections over them) and its own upstream
//! connection pools. A connection lives and dies on the worker that accepted it: no work
//! stealing, no task moved between cores, no pool lock taken by two cores. The xDS client, the
//! admin port and the timers stay on the thread that called [`start`].
//!
//! Must not: hold config of its own; every worker follows the same config channel.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::ProxyConfig;
use super::listeners;

/// The number of workers when the operator names none: one per CPU, as Envoy's default.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts `count` workers serving the listeners `config` names until `shutdown`. After it,
/// a worker keeps serving the connections still open (they drain) for as long as the process
/// lives; the caller decides when that ends.
pub fn start(
    count: usize,
    config: watch::Receiver<Arc<ProxyConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let count = count.max(1);
    let sharing = count > 1;
    for index in 0..count {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("switchyard-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    listeners::run(config, shutdown, sharing).await;
                    // Connections still draining run on this runtime: keep driving them.
                    std::future::pending::<()>().await
                })
            })?;
    }
    Ok(())
}
