//! `switchyard serve`: load and validate the config, translate it, serve it over ADS, and
//! reload it when the files change. A rejected edit is logged with its diagnostics and the
//! last good snapshot keeps serving. Endpoints an edit removes are kept DRAINING for their
//! service's drainingTimeoutSec, then dropped by a timer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin::{self, AdminState, ConfigStatus};
use crate::config;
use crate::model::{regions, DrainingEndpoint, Model};
use crate::translate::{self, endpoints};
use crate::xds::cache::EndpointViews;
use crate::xds::lrs::{LoadReports, LrsService};
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
    pub load_reports: Arc<LoadReports>,
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
    let publisher = Arc::new(Publisher::new(cache.clone(), status.clone()));
    publisher.accept(loaded);

    let xds_listener = TcpListener::bind(options.xds_listen)
        .await
        .with_context(|| format!("binding the xDS port {}", options.xds_listen))?;
    let admin_listener = TcpListener::bind(options.admin_listen)
        .await
        .with_context(|| format!("binding the admin port {}", options.admin_listen))?;
    let xds_addr = xds_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let load_reports = Arc::new(LoadReports::default());
    let ads = AdsService::new(cache.clone(), clients.clone()).into_server();
    let lrs = LrsService::new(load_reports.clone()).into_server();
    let xds_task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(ads)
            .add_service(lrs)
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
        load_reports: load_reports.clone(),
    };
    let admin_task = tokio::spawn(async move {
        if let Err(error) = axum::serve(admin_listener, admin::router(admin_state)).await {
            tracing::error!(%error, "the admin server stopped");
        }
    });

    let (changes_sender, changes) = mpsc::channel(1);
    let watch = config::watch::watch(&options.config, changes_sender)
        .with_context(|| format!("watching {}", options.config.display()))?;
    let reload_task = tokio::spawn(reload_loop(options.config.clone(), changes, publisher));
    tracing::info!(%xds_addr, %admin_addr, config = %options.config.display(), "serving");
    Ok(Running {
        xds_addr,
        admin_addr,
        cache,
        clients,
        status,
        load_reports,
        tasks: vec![xds_task, admin_task, reload_task],
        _watch: watch,
    })
}

/// Reloads on every change; republishes when a draining endpoint's time is up.
async fn reload_loop(path: PathBuf, mut changes: mpsc::Receiver<()>, publisher: Arc<Publisher>) {
    loop {
        let deadline = publisher.next_drain_deadline();
        tokio::select! {
            change = changes.recv() => match change {
                Some(()) => publisher.reload(&path),
                None => return,
            },
            _ = sleep_until(deadline) => publisher.republish(),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What is being served, and the endpoints still draining out of it.
struct Served {
    model: Arc<Model>,
    draining: BTreeMap<DrainingEndpoint, Instant>,
}

/// Turns accepted configs into snapshots in the cache.
pub struct Publisher {
    cache: Cache,
    status: Arc<RwLock<ConfigStatus>>,
    served: Mutex<Served>,
}

impl Publisher {
    fn new(cache: Cache, status: Arc<RwLock<ConfigStatus>>) -> Self {
        Publisher {
            cache,
            status,
            served: Mutex::new(Served {
                model: Arc::default(),
                draining: BTreeMap::new(),
            }),
        }
    }

    /// Re-reads the config; serves it if valid, else keeps the last good one and says why.
    pub fn reload(&self, path: &Path) {
        let loaded = config::load(path);
        if loaded.diagnostics.has_errors() {
            for diagnostic in &loaded.diagnostics.items {
                tracing::error!("{diagnostic}");
            }
            tracing::error!(
                "config change rejected; still serving version {}",
                self.cache.current().version
            );
            let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
            status.last_load_accepted = false;
            status.rejected_loads += 1;
            status.diagnostics = loaded.diagnostics;
            return;
        }
        for warning in loaded.diagnostics.warnings() {
            tracing::warn!("{warning}");
        }
        self.accept(loaded);
    }

    /// Serves a valid config; endpoints it no longer has start draining.
    fn accept(&self, loaded: config::Loaded) {
        let now = Instant::now();
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let kept = endpoints::served_endpoints(&loaded.model);
        for removed in endpoints::served_endpoints(&served.model).difference(&kept) {
            let timeout = served
                .model
                .backend_services
                .get(&removed.service)
                .map(|s| s.draining_timeout_sec)
                .unwrap_or(0);
            if timeout > 0 {
                let until = now + Duration::from_secs(u64::from(timeout));
                served.draining.entry(removed.clone()).or_insert(until);
            }
        }
        let model = Arc::new(loaded.model);
        served.draining.retain(|endpoint, _| {
            !kept.contains(endpoint) && model.backend_services.contains_key(&endpoint.service)
        });
        served.model = model;
        self.publish(&mut served, now);
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        status.last_load_accepted = true;
        status.diagnostics = loaded.diagnostics;
    }

    /// Publishes again, dropping endpoints whose draining time is up.
    fn republish(&self) {
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        self.publish(&mut served, Instant::now());
    }

    fn next_drain_deadline(&self) -> Option<Instant> {
        let served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        served.draining.values().min().copied()
    }

    fn publish(&self, served: &mut Served, now: Instant) {
        served.draining.retain(|_, until| *until > now);
        let draining: Arc<Vec<DrainingEndpoint>> =
            Arc::new(served.draining.keys().cloned().collect());
        let resources = translate::translate_with_draining(&served.model, &draining);
        let model = served.model.clone();
        let view_draining = draining.clone();
        let known_regions: BTreeSet<String> = model
            .endpoint_groups
            .values()
            .map(|g| g.region.clone())
            .collect();
        let region_order = model.region_order.clone();
        let views = EndpointViews {
            build: Arc::new(move |region: &str| {
                endpoints::assignments_for(&model, Some(region), &view_draining)
            }),
            canonical: Arc::new(move |region: &str| {
                regions::view_region(&region_order, &known_regions, region)
            }),
            fingerprint: format!("{:?}", served.model.region_order),
        };
        if self.cache.set(&resources, Some(views)) {
            tracing::info!(version = %self.cache.current().version, draining = draining.len(), "serving a new config");
        }
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        status.serving_version = self.cache.current().version.clone();
        status.draining = served
            .draining
            .iter()
            .map(|(endpoint, until)| {
                format!(
                    "{} {} ({}s left)",
                    endpoint.service,
                    endpoint.address,
                    until.saturating_duration_since(now).as_secs()
                )
            })
            .collect();
    }
}
