//! `switchyard serve`: load and validate the config, translate it, serve it over ADS, and
//! reload it when the files change. A rejected edit is logged with its diagnostics and the
//! last good snapshot keeps serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin::{self, AdminState, ConfigStatus};
use crate::config;
use crate::translate;
use crate::xds::server::AdsService;
use crate::xds::{Cache, Clients};

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub config: PathBuf,
    pub xds_listen: SocketAddr,
    pub admin_listen: SocketAddr,
}

/// A running server; dropping it stops it.
pub struct Running {
    pub xds_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub cache: Cache,
    pub clients: Arc<Clients>,
    pub status: Arc<RwLock<ConfigStatus>>,
    tasks: Vec<JoinHandle<()>>,
    _watch: config::watch::ConfigWatch,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts serving. Fails if the initial config has errors (nothing would be served).
pub async fn start(options: ServeOptions) -> anyhow::Result<Running> {
    let cache = Cache::default();
    let clients = Arc::new(Clients::default());
    let status = Arc::new(RwLock::new(ConfigStatus::default()));
    let loaded = config::load(&options.config);
    for warning in loaded.diagnostics.warnings() {
        tracing::warn!("{warning}");
    }
    if loaded.diagnostics.has_errors() {
        anyhow::bail!("the config has errors:\n{}", loaded.diagnostics);
    }
    apply(&loaded, &cache, &status);

    let xds_listener = TcpListener::bind(options.xds_listen)
        .await
        .with_context(|| format!("binding the xDS port {}", options.xds_listen))?;
    let admin_listener = TcpListener::bind(options.admin_listen)
        .await
        .with_context(|| format!("binding the admin port {}", options.admin_listen))?;
    let xds_addr = xds_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let ads = AdsService::new(cache.clone(), clients.clone()).into_server();
    let xds_task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(ads)
            .serve_with_incoming(TcpListenerStream::new(xds_listener))
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the xDS server stopped");
        }
    });
    let admin_state = AdminState {
        cache: cache.clone(),
        clients: clients.clone(),
        status: status.clone(),
    };
    let admin_task = tokio::spawn(async move {
        if let Err(error) = axum::serve(admin_listener, admin::router(admin_state)).await {
            tracing::error!(%error, "the admin server stopped");
        }
    });

    let (changes_sender, mut changes) = mpsc::channel(1);
    let watch = config::watch::watch(&options.config, changes_sender)
        .with_context(|| format!("watching {}", options.config.display()))?;
    let reload_task = {
        let (path, cache, status) = (options.config.clone(), cache.clone(), status.clone());
        tokio::spawn(async move {
            while changes.recv().await.is_some() {
                reload(&path, &cache, &status);
            }
        })
    };
    tracing::info!(%xds_addr, %admin_addr, config = %options.config.display(), "serving");
    Ok(Running {
        xds_addr,
        admin_addr,
        cache,
        clients,
        status,
        tasks: vec![xds_task, admin_task, reload_task],
        _watch: watch,
    })
}

/// Re-reads the config; serves it if valid, else keeps the last good one and reports why.
pub fn reload(path: &Path, cache: &Cache, status: &RwLock<ConfigStatus>) {
    let loaded = config::load(path);
    if loaded.diagnostics.has_errors() {
        for diagnostic in &loaded.diagnostics.items {
            tracing::error!("{diagnostic}");
        }
        tracing::error!(
            "config change rejected; still serving version {}",
            cache.current().version
        );
        let mut status = status.write().unwrap_or_else(|e| e.into_inner());
        status.last_load_accepted = false;
        status.rejected_loads += 1;
        status.diagnostics = loaded.diagnostics;
        return;
    }
    for warning in loaded.diagnostics.warnings() {
        tracing::warn!("{warning}");
    }
    apply(&loaded, cache, status);
}

fn apply(loaded: &config::Loaded, cache: &Cache, status: &RwLock<ConfigStatus>) {
    let resources = translate::translate(&loaded.model);
    let changed = cache.set(&resources);
    let version = cache.current().version.clone();
    if changed {
        tracing::info!(%version, "serving a new config");
    }
    let mut status = status.write().unwrap_or_else(|e| e.into_inner());
    status.serving_version = version;
    status.last_load_accepted = true;
    status.diagnostics = loaded.diagnostics.clone();
}
