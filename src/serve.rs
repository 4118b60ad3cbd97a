//! `switchyard serve`: binds the xDS and admin ports, then loads the config and serves it,
//! reloading when the files change. Starts without a valid config too (clients are answered
//! once one is served; `/ready` says 503 until then), unless asked to exit instead. Stops
//! gracefully: no new streams, open streams closed after what they were sending.
//! Must not: parse, translate or decide what is served — it wires the parts together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::capacity::measured::{MeasuredLoad, ReportWindow};
use crate::config::watch::ConfigWatch;
use crate::config::{ReadLimits, TemplateInputs};
use crate::health::{self, checker::Checker};
use crate::metrics::Metrics;
use crate::model::diagnostics::Diagnostics;
use crate::publish::liveness::{ReloadLiveness, DEFAULT_STALL_LIMIT};
use crate::publish::load_feed::{self, LoadFeed};
use crate::publish::reload::{self, Changes, Reloader, Trigger};
use crate::publish::status::ConfigStatus;
use crate::publish::{Offered, Publisher, DEFAULT_REMOVAL_GRACE};
use crate::xds::server::csds::CsdsService;
use crate::xds::server::hooks::Hooks;
use crate::xds::server::incoming;
use crate::xds::server::limits::{Refusals, XdsLimits};
use crate::xds::server::lrs::{LoadReports, LrsService};
use crate::xds::server::services::XdsServer;
use crate::xds::server::tls::{TlsError, TlsFiles, TlsSettings};
use crate::xds::server::Clients;
use crate::xds::Cache;

/// Why serving could not start. Each says what was being done; a system or TLS error is its
/// source.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("setting up mTLS on the xDS port")]
    Tls(#[source] TlsError),
    /// An xDS port other hosts can reach, without mTLS and without `--xds-plaintext`.
    #[error(
        "the xDS port {address} is reachable from other hosts: give it mTLS (--xds-tls-cert, \
         --xds-tls-key, --xds-client-ca) or pass --xds-plaintext to serve without TLS"
    )]
    ExposedWithoutTls { address: SocketAddr },
    /// `port`: xDS or admin.
    #[error("binding the {port} port {address}")]
    Bind {
        port: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
    /// The address a bound port got.
    #[error(transparent)]
    LocalAddress(std::io::Error),
    #[error("watching {}", .path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    /// The task that starts the watch panicked or was cancelled.
    #[error(transparent)]
    WatchTask(#[from] tokio::task::JoinError),
    /// The config is to come from etcd, and no etcd was given.
    #[error("--config-from-etcd needs --etcd URL")]
    ConfigFromEtcdWithoutEtcd,
    /// `exit_on_invalid`, and the config is not valid.
    #[error("the config has errors:\n{diagnostics}")]
    InvalidConfig { diagnostics: Diagnostics },
}

/// How long a graceful stop waits for connections to close before giving up on them.
pub const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub config: PathBuf,
    pub xds_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// How long an edit that withdraws most of what is served is held back; zero applies
    /// every valid edit at once.
    pub removal_grace: Duration,
    pub limits: ReadLimits,
    /// Values templates take from outside the files, for every load.
    pub inputs: TemplateInputs,
    /// Fail at start when the config is not valid, instead of waiting for a fix.
    pub exit_on_invalid: bool,
    /// What one xDS client may cost.
    pub xds_limits: XdsLimits,
    /// mTLS on the xDS port.
    pub tls: Option<TlsFiles>,
    /// Serve plaintext on an address that is not loopback (mTLS is otherwise required there).
    pub plaintext: bool,
    /// Health probes in flight at most.
    pub health_concurrency: usize,
    /// How long a config change may wait for the reloader before `/ready` fails.
    pub reload_stall_limit: Duration,
    /// How often clients are asked to report load.
    pub load_report_interval: Duration,
    /// Share health checking with other replicas through etcd (None: alone).
    pub etcd: Option<crate::cluster::EtcdOptions>,
    /// Serve the config pushed to `etcd` instead of the files at `config`.
    pub config_from_etcd: bool,
}

impl ServeOptions {
    /// Serving `config` on the given ports with every other option at its default.
    pub fn new(config: PathBuf, xds_listen: SocketAddr, admin_listen: SocketAddr) -> Self {
        ServeOptions {
            config,
            xds_listen,
            admin_listen,
            removal_grace: DEFAULT_REMOVAL_GRACE,
            limits: ReadLimits::default(),
            inputs: TemplateInputs::default(),
            exit_on_invalid: false,
            xds_limits: XdsLimits::default(),
            tls: None,
            plaintext: false,
            health_concurrency: health::scheduler::DEFAULT_CONCURRENCY,
            reload_stall_limit: DEFAULT_STALL_LIMIT,
            load_report_interval: load_feed::DEFAULT_INTERVAL,
            etcd: None,
            config_from_etcd: false,
        }
    }
}

/// A running server; dropping it stops it at once, [`Running::shutdown`] gracefully.
pub struct Running {
    pub xds_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub cache: Cache,
    pub clients: Arc<Clients>,
    pub status: Arc<RwLock<ConfigStatus>>,
    pub load_reports: Arc<LoadReports>,
    /// Load reports summed over the window, per service and client region.
    pub load_window: Arc<ReportWindow>,
    pub metrics: Arc<Metrics>,
    pub liveness: Arc<ReloadLiveness>,
    force_reload: Arc<Notify>,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<()>>,
    reload_task: JoinHandle<()>,
}

impl Running {
    /// The load clients measured, as capacity decisions read it.
    pub fn measured_load(&self) -> Arc<dyn MeasuredLoad> {
        self.load_window.clone()
    }

    /// Reads the files again now, even if they did not change (SIGHUP).
    pub fn reload_now(&self) {
        self.liveness.change_seen(std::time::Instant::now());
        self.force_reload.notify_one();
    }

    /// Stops accepting streams, closes the open ones after what they were sending, and waits
    /// (a few seconds at most) for the connections to close.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let servers = std::mem::take(&mut self.servers);
        let all_closed = futures_util::future::join_all(servers);
        if tokio::time::timeout(SHUTDOWN_PATIENCE, all_closed)
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time; stopping anyway");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.servers {
            task.abort();
        }
        self.reload_task.abort();
    }
}

/// HTTP/2 on the xDS port: streams per connection advertised in SETTINGS (at twice the limit
/// the services enforce, so that a client going over gets a gRPC status that says why rather
/// than a refused stream), pings that close dead connections, and windows sized for xDS
/// (requests are small; responses are paced by the client's window).
fn http2_settings(
    builder: tonic::transport::Server,
    limits: &XdsLimits,
) -> tonic::transport::Server {
    builder
        .max_concurrent_streams(limits.max_streams_per_connection.saturating_mul(2))
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .initial_stream_window_size(256 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .http2_max_pending_accept_reset_streams(Some(64))
}

/// The xDS port's TLS settings: mTLS when its files are given; plaintext on loopback, or
/// anywhere when asked for explicitly.
fn transport_security(options: &ServeOptions) -> Result<Option<Arc<TlsSettings>>, StartError> {
    match &options.tls {
        Some(files) => TlsSettings::load(files.clone())
            .map_err(StartError::Tls)
            .map(Some),
        None if options.plaintext || options.xds_listen.ip().is_loopback() => Ok(None),
        None => Err(StartError::ExposedWithoutTls {
            address: options.xds_listen,
        }),
    }
}

/// Binds the `port` (xDS or admin) at `address`.
async fn bind(port: &'static str, address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            port,
            address,
            source,
        })
}

/// `limits` with the total of connections lowered to what the open-file limit leaves room
/// for, saying so when it does.
fn within_open_file_limit(mut limits: XdsLimits) -> XdsLimits {
    let Some(open_files) = crate::descriptors::open_file_limit() else {
        return limits;
    };
    let budget = crate::descriptors::connection_budget(open_files);
    if budget < limits.max_connections {
        tracing::info!(
            open_files,
            "the open-file limit leaves room for {budget} xDS connections, fewer than \
             --max-connections {}; raise `ulimit -n` to serve more",
            limits.max_connections
        );
        limits.max_connections = budget;
    }
    limits
}

/// How often what the xDS port refused is summed up in the log.
const REFUSALS_SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// One warning per interval saying what was refused, instead of one line per refusal.
async fn log_refusals(refusals: Arc<Refusals>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFUSALS_SUMMARY_EVERY) => {}
        }
        if let Some(summary) = refusals.summary() {
            tracing::warn!(
                "refused on the xDS port in the last {}s: {summary}",
                REFUSALS_SUMMARY_EVERY.as_secs()
            );
        }
    }
}

/// Without mTLS no client has an identity, so an `xdsClients` policy refuses every client:
/// says so each time a published config brings one in.
async fn warn_of_policy_without_tls(cache: crate::xds::Cache, shutdown: CancellationToken) {
    let mut snapshots = cache.subscribe();
    let mut warned = false;
    loop {
        let restricted = !snapshots.borrow_and_update().access().is_open();
        if restricted && !warned {
            tracing::warn!(
                "the config has xdsClients rules, which authorize clients by their certificates, \
                 but the xDS port serves without mTLS: every client is refused \
                 (give --xds-tls-cert, --xds-tls-key and --xds-client-ca)"
            );
        }
        warned = restricted;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
    }
}

/// How often the stream count is checked for a drop worth trimming memory after.
const TRIM_CHECK_EVERY: Duration = Duration::from_secs(2);
/// Streams that must have closed since the last trim for another one.
const CLOSED_STREAMS_WORTH_A_TRIM: usize = 64;

/// Trims after many streams have closed (and shrinks the tables that listed them), until
/// `shutdown`.
async fn trim_when_streams_close(
    clients: Arc<Clients>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut high = clients.len();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TRIM_CHECK_EVERY) => {}
        }
        let now = clients.len();
        if now + CLOSED_STREAMS_WORTH_A_TRIM <= high || (now == 0 && high > 0) {
            clients.shrink();
            metrics.shrink();
            let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
            high = now;
        }
        high = high.max(now);
    }
}

/// Watches the config files; started before the first read, so that no edit between the two
/// is missed.
async fn watch_files(
    config: &std::path::Path,
    liveness: &Arc<ReloadLiveness>,
) -> Result<ConfigWatch, StartError> {
    let watch_liveness = liveness.clone();
    let watched = config.to_path_buf();
    // Starting the watch reads the file system and waits for notify's thread: off the runtime.
    tokio::task::spawn_blocking(move || {
        ConfigWatch::start(&watched, move || {
            watch_liveness.change_seen(std::time::Instant::now())
        })
    })
    .await?
    .map_err(|source| StartError::Watch {
        path: config.to_path_buf(),
        source,
    })
}

/// Starts serving: binds both ports, loads the config (off the async runtime) and starts
/// watching it. Fails when a port cannot be bound, or with `exit_on_invalid` when the config
/// is not valid.
pub async fn start(options: ServeOptions) -> Result<Running, StartError> {
    let cache = Cache::default();
    let clients = Arc::new(Clients::default());
    let status = Arc::new(RwLock::new(ConfigStatus::default()));
    let load_reports = Arc::new(LoadReports::default());
    let load_feed = Arc::new(LoadFeed::new(options.load_report_interval));
    let refusals = Arc::new(Refusals::default());
    let replicas = options
        .etcd
        .clone()
        .map(|etcd| Arc::new(crate::cluster::Replicas::new(etcd)));
    let metrics = Arc::new(Metrics::new(|registry| {
        registry.register(
            "xds_refused",
            "What the xDS port refused, by reason (limits, idle connections, accept failures)",
            refusals.family.clone(),
        );
        if let Some(replicas) = &replicas {
            replicas.metrics.register(registry);
        }
    }));
    let shutdown = CancellationToken::new();
    let limits = within_open_file_limit(options.xds_limits);

    let tls = transport_security(&options)?;
    let xds_listener = bind("xDS", options.xds_listen).await?;
    let admin_listener = bind("admin", options.admin_listen).await?;
    let xds_addr = xds_listener
        .local_addr()
        .map_err(StartError::LocalAddress)?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(StartError::LocalAddress)?;

    let hooks = Hooks::default().with(clients.clone()).with(metrics.clone());
    let xds = XdsServer::new(
        cache.clone(),
        Arc::new(hooks),
        limits,
        refusals.clone(),
        shutdown.clone(),
    );
    let csds = CsdsService::new(clients.clone(), cache.clone()).into_server();
    let lrs = LrsService::new(
        load_reports.clone(),
        cache.clone(),
        refusals.clone(),
        load_feed.asks(),
        shutdown.clone(),
    )
    .with_sink(load_feed.clone())
    .into_server()
    .max_decoding_message_size(limits.max_request_bytes);
    let stop_xds = shutdown.clone().cancelled_owned();
    if let Some(tls) = &tls {
        tokio::spawn(tls.clone().watch(shutdown.clone()));
    } else {
        tokio::spawn(warn_of_policy_without_tls(cache.clone(), shutdown.clone()));
    }
    let connections = incoming::accept(
        xds_listener,
        limits,
        refusals.clone(),
        tls,
        shutdown.clone(),
    );
    let xds_task = tokio::spawn(async move {
        let router = http2_settings(tonic::transport::Server::builder(), &limits)
            .add_service(csds)
            .add_service(lrs);
        let served = xds
            .add_to(router)
            .serve_with_incoming_shutdown(connections, stop_xds)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the xDS server stopped");
        }
    });
    let checker = Arc::new(match &replicas {
        Some(replicas) => Checker::with_sharing(replicas.clone()),
        None => Checker::default(),
    });
    if let Some(replicas) = &replicas {
        crate::cluster::spawn(replicas.clone(), checker.clone(), shutdown.clone());
    }
    let liveness = Arc::new(ReloadLiveness::new(
        options.reload_stall_limit,
        metrics.clone(),
    ));
    let capacity_board = Arc::new(crate::capacity::report::CapacityBoard::default());
    let load_for_decisions = crate::cluster::fleet_load::load_for_decisions(
        replicas.as_ref(),
        load_feed.window(),
        options.load_report_interval,
    );
    let admin_state = AdminState {
        capacity: capacity_board.clone(),
        liveness: liveness.clone(),
        cache: cache.clone(),
        clients: clients.clone(),
        status: status.clone(),
        load_reports: load_reports.clone(),
        load_window: load_feed.window(),
        metrics: metrics.clone(),
        checker: checker.clone(),
        cluster: replicas,
    };
    let stop_admin = shutdown.clone().cancelled_owned();
    let admin_task = tokio::spawn(async move {
        let served = axum::serve(admin_listener, admin::router(admin_state))
            .with_graceful_shutdown(stop_admin)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the admin server stopped");
        }
    });
    let pushed = match (&options.etcd, options.config_from_etcd) {
        (Some(etcd), true) => {
            Some(crate::cluster::pushed::follow_from_start(etcd, &shutdown).await)
        }
        (None, true) => return Err(StartError::ConfigFromEtcdWithoutEtcd),
        (_, false) => None,
    };
    let changes = match &pushed {
        Some(latest) => {
            tracing::info!(%xds_addr, %admin_addr, config = %latest.describe(), "listening");
            Changes::Pushed(latest.clone())
        }
        None => {
            tracing::info!(%xds_addr, %admin_addr, config = %options.config.display(), "listening");
            Changes::Files(Arc::new(watch_files(&options.config, &liveness).await?))
        }
    };
    let publisher = Arc::new(
        Publisher::new(
            cache.clone(),
            status.clone(),
            metrics.clone(),
            options.removal_grace,
        )
        .with_source(checker.clone())
        .with_measured_load(
            load_for_decisions,
            options.load_report_interval,
            capacity_board.clone(),
        ),
    );
    tokio::spawn(load_feed::run(
        load_feed.clone(),
        publisher.served_models(),
        shutdown.clone(),
    ));
    health::scheduler::spawn(
        checker,
        publisher.clone(),
        metrics.clone(),
        options.health_concurrency,
        shutdown.clone(),
    );
    let mut reloader = Reloader::new(
        options.config.clone(),
        options.limits,
        publisher,
        status.clone(),
        metrics.clone(),
    )
    .with_inputs(options.inputs.clone());
    if let Some(latest) = pushed {
        reloader = reloader.with_pushed(latest);
    }
    let reloader = Arc::new(reloader);
    liveness.attempt_started(std::time::Instant::now());
    let first = reload::reload_off_runtime(&reloader, Trigger::Start).await;
    liveness.attempt_finished();
    if options.exit_on_invalid && first != Some(Offered::Accepted) {
        shutdown.cancel();
        let diagnostics = status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .diagnostics
            .clone();
        return Err(StartError::InvalidConfig { diagnostics });
    }
    tokio::spawn(log_refusals(refusals, shutdown.clone()));
    tokio::spawn(trim_when_streams_close(
        clients.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let force_reload = Arc::new(Notify::new());
    let reload_task = tokio::spawn(reload::run(
        reloader,
        changes,
        force_reload.clone(),
        liveness.clone(),
        shutdown.clone(),
    ));
    Ok(Running {
        xds_addr,
        admin_addr,
        cache,
        clients,
        status,
        load_reports,
        load_window: load_feed.window(),
        metrics,
        liveness,
        force_reload,
        shutdown,
        servers: vec![xds_task, admin_task],
        reload_task,
    })
}
