//! The `switchyard` command line: serve, validate, translate, explain, status, proxy. Parsing and printing
//! only; each subcommand is one small function over the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use switchyard::config::{self, ReadLimits};
use switchyard::xds::server::limits::XdsLimits;
use switchyard::xds::server::tls::TlsFiles;
use switchyard::{publish, serve, translate};

mod logging;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "xDS control plane for cloud-style load-balancer configs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to standard error.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text, help_heading = "Logging")]
    log_format: logging::LogFormat,
    /// error, warn, info, debug or trace for Switchyard's own lines, or RUST_LOG-style
    /// directives (`switchyard=debug,h2=info`); RUST_LOG is used when this is not given.
    #[arg(long, global = true, value_name = "LEVEL", help_heading = "Logging")]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a config (file or directory) over xDS, reloading it when it changes.
    Serve {
        /// The config file, or a folder of them (every *.yaml / *.yml, as one config); watched,
        /// and read again on SIGHUP. Not with --config-from-etcd.
        #[arg(required_unless_present = "config_from_etcd")]
        path: Option<PathBuf>,
        /// Serve the config kept in etcd (written by `switchyard push`) instead of files: the
        /// newest push, and each new one as it comes (needs --etcd).
        #[arg(
            long,
            requires = "etcd",
            conflicts_with = "path",
            help_heading = "Replicas (etcd)"
        )]
        config_from_etcd: bool,
        /// Where xDS clients (Envoy, gRPC, the sidecar) connect.
        #[arg(long, default_value = "127.0.0.1:18000", help_heading = "Addresses")]
        xds_listen: SocketAddr,
        /// The admin port: /ready, /healthz, /metrics, /config_status, /clients, the console.
        #[arg(long, default_value = "127.0.0.1:19000", help_heading = "Addresses")]
        admin_listen: SocketAddr,
        /// Seconds an edit that would withdraw every listener, every cluster or more than half
        /// of what is served waits (the files unchanged) before it is applied; 0 applies it at
        /// once.
        #[arg(long, default_value_t = publish::DEFAULT_REMOVAL_GRACE.as_secs_f64(), value_name = "SECONDS", help_heading = "Config reloads")]
        removal_grace: f64,
        /// Health-check probes in flight at most (a probe waits for a slot beyond that).
        #[arg(long, default_value_t = switchyard::health::scheduler::DEFAULT_CONCURRENCY, value_name = "PROBES", help_heading = "Health checking and load reports")]
        health_concurrency: usize,
        /// Seconds a config change (a file event or SIGHUP) may wait for the reloader before
        /// `/ready` answers 503: a stuck reloader no longer serves what the files say.
        #[arg(long, default_value_t = switchyard::publish::liveness::DEFAULT_STALL_LIMIT.as_secs_f64(), value_name = "SECONDS", help_heading = "Config reloads")]
        reload_stall_limit: f64,
        /// Seconds between the load reports clients are asked for (0.5 to 60), for the
        /// balancing modes with a capacity target.
        #[arg(long, default_value_t = switchyard::publish::load_feed::DEFAULT_INTERVAL.as_secs_f64(), value_name = "SECONDS", help_heading = "Health checking and load reports")]
        load_report_interval: f64,
        #[command(flatten)]
        limits: LimitArgs,
        /// Exit with the diagnostics when the config is not valid at start, instead of serving
        /// nothing until it is fixed.
        #[arg(long, help_heading = "Config reloads")]
        exit_on_invalid: bool,
        #[command(flatten)]
        xds_limits: XdsLimitArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        etcd: Box<switchyard::cluster::cli::EtcdArgs>,
        #[command(flatten)]
        template: TemplateArgs,
    },
    /// Check a config; exit 0 when it has no errors, 1 otherwise.
    Validate {
        /// The config file, or a folder of them (every *.yaml / *.yml, as one config).
        path: PathBuf,
        /// `text` for people; `json` (one object: valid, counts, every diagnostic with its
        /// file, line and resource path) for CI pipelines.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        template: TemplateArgs,
    },
    /// Show why a backend service's traffic goes where it goes, for a client's locality.
    Explain {
        /// The config file, or a folder of them.
        path: PathBuf,
        /// `backendServices/NAME` (or just NAME).
        service: String,
        /// The client's `REGION/ZONE` (or `REGION`).
        #[arg(long)]
        client_locality: Option<String>,
        /// The admin endpoint of a running `switchyard serve`, to show each endpoint's health.
        #[arg(long)]
        admin: Option<SocketAddr>,
        #[command(flatten)]
        template: TemplateArgs,
    },
    /// One line per connected xDS client: node, kind, protocol and per type SYNCED, STALE,
    /// NACKED or NOT_SENT. Given several replicas' admin endpoints, also one line per replica
    /// (the version it serves, its clients, its share of the probing) and whether they all
    /// serve the same version; fails when one does not answer.
    Status {
        /// The admin endpoint of `switchyard serve`, or several replicas' (comma-separated).
        #[arg(
            long,
            default_value = "127.0.0.1:19000",
            value_delimiter = ',',
            value_name = "ADDRESS[,ADDRESS...]"
        )]
        admin: Vec<SocketAddr>,
    },
    /// Run the sidecar proxy: an xDS client and data plane started from an Envoy bootstrap.
    Proxy {
        /// The Envoy bootstrap (YAML) that names the node, the xDS server and the admin address.
        #[arg(long)]
        bootstrap: PathBuf,
        /// Worker threads (Envoy's --concurrency); the number of CPUs by default.
        #[arg(long)]
        concurrency: Option<usize>,
        /// The DNS server (IP:port, UDP) that DNS clusters ask, instead of the system's
        /// name servers; /etc/hosts answers first either way.
        #[arg(long, value_name = "IP:PORT")]
        dns_resolver: Option<SocketAddr>,
    },
    /// Print the shell completion script for SHELL (e.g. `switchyard completions bash >
    /// /etc/bash_completion.d/switchyard`).
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `switchyard man > switchyard.1 && man ./switchyard.1`.
    Man,
    /// Validate a config as `validate` does and, only when it is valid, write it to etcd as
    /// one new revision, for `serve --config-from-etcd`.
    #[command(mut_arg("etcd", |a| a.required(true)), mut_arg("replica_name", |a| a.hide(true)), mut_arg("etcd_lease", |a| a.hide(true)))]
    Push {
        /// The config file, or a folder of them (every *.yaml / *.yml, as one config).
        path: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        template: TemplateArgs,
        #[command(flatten)]
        store: switchyard::cluster::pushed::cli::ConfigStoreArgs,
    },
    /// The configs kept in etcd, newest first: etcd revision, time, who pushed, size, digest.
    #[command(mut_arg("etcd", |a| a.required(true)), mut_arg("replica_name", |a| a.hide(true)), mut_arg("etcd_lease", |a| a.hide(true)))]
    History {
        /// How many to list at most.
        #[arg(long, default_value_t = switchyard::cluster::pushed::keys::HISTORY_KEPT as usize)]
        limit: usize,
        #[command(flatten)]
        store: switchyard::cluster::pushed::cli::ConfigStoreArgs,
    },
    /// Push a kept config again as the newest revision, after validating it again.
    #[command(mut_arg("etcd", |a| a.required(true)), mut_arg("replica_name", |a| a.hide(true)), mut_arg("etcd_lease", |a| a.hide(true)))]
    Rollback {
        /// The etcd revision to go back to (as `switchyard history` lists it).
        revision: i64,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        template: TemplateArgs,
        #[command(flatten)]
        store: switchyard::cluster::pushed::cli::ConfigStoreArgs,
    },
    /// Print the xDS resources a config translates to.
    Translate {
        /// The config file, or a folder of them.
        path: PathBuf,
        /// How the resources are printed (as Envoy's /config_dump shows them).
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
        #[command(flatten)]
        template: TemplateArgs,
    },
}

/// Values CloudFormation templates take from outside their files.
#[derive(clap::Args, Clone)]
struct TemplateArgs {
    /// A template parameter's value, `KEY=VALUE`; `FILE:KEY=VALUE` for one template of a
    /// folder. Repeatable; wins over --parameters-file.
    #[arg(
        long = "parameter",
        value_name = "KEY=VALUE",
        help_heading = "CloudFormation templates"
    )]
    parameters: Vec<String>,
    /// Parameter values as the AWS CLI takes them: a JSON list of {"ParameterKey",
    /// "ParameterValue"}, or `Key=Value` lines. Read at start.
    #[arg(long, value_name = "FILE", help_heading = "CloudFormation templates")]
    parameters_file: Vec<PathBuf>,
    /// The region templates are evaluated in (`AWS::Region`); by default the region of the
    /// first target's zone.
    #[arg(long, value_name = "REGION", help_heading = "CloudFormation templates")]
    aws_region: Option<String>,
    /// The stack name (`AWS::StackName`); by default each template file's stem.
    #[arg(long, value_name = "NAME", help_heading = "CloudFormation templates")]
    stack_name: Option<String>,
}

impl TemplateArgs {
    fn inputs(&self) -> anyhow::Result<config::TemplateInputs> {
        let mut overrides = Vec::new();
        for file in &self.parameters_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading --parameters-file {}", file.display()))?;
            overrides.extend(
                config::inputs::parse_parameters_file(&text, &file.display().to_string())
                    .map_err(anyhow::Error::msg)?,
            );
        }
        for pair in &self.parameters {
            let key = pair.split('=').next().unwrap_or(pair);
            let key = key.rsplit(':').next().unwrap_or(key);
            overrides.push(
                config::inputs::parse_override(pair, &format!("--parameter {key}"))
                    .map_err(anyhow::Error::msg)?,
            );
        }
        Ok(config::TemplateInputs {
            overrides,
            region: self.aws_region.clone(),
            stack_name: self.stack_name.clone(),
        })
    }
}

#[derive(clap::Args, Clone, Copy)]
struct LimitArgs {
    /// The largest config file accepted, in bytes.
    #[arg(long, default_value_t = config::source::DEFAULT_MAX_FILE_BYTES, value_name = "BYTES", help_heading = "Config reloads")]
    max_config_bytes: u64,
}

impl LimitArgs {
    fn limits(self) -> ReadLimits {
        ReadLimits {
            max_file_bytes: self.max_config_bytes,
            ..ReadLimits::default()
        }
    }
}

/// mTLS on the xDS port: all three files, or none.
#[derive(clap::Args, Clone)]
struct TlsArgs {
    /// The xDS port's certificate chain (PEM); read again when it changes.
    #[arg(long, value_name = "FILE", requires_all = ["xds_tls_key", "xds_client_ca"], help_heading = "xDS port security")]
    xds_tls_cert: Option<PathBuf>,
    /// The key of --xds-tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["xds_tls_cert", "xds_client_ca"], help_heading = "xDS port security")]
    xds_tls_key: Option<PathBuf>,
    /// The CAs that xDS clients' certificates must chain to (PEM bundle).
    #[arg(long, value_name = "FILE", requires_all = ["xds_tls_cert", "xds_tls_key"], help_heading = "xDS port security")]
    xds_client_ca: Option<PathBuf>,
    /// Serve xDS without TLS on an address other hosts can reach.
    #[arg(
        long,
        conflicts_with = "xds_tls_cert",
        help_heading = "xDS port security"
    )]
    xds_plaintext: bool,
}

impl TlsArgs {
    fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.xds_tls_cert.clone()?,
            key: self.xds_tls_key.clone()?,
            client_ca: self.xds_client_ca.clone()?,
        })
    }
}

/// What one xDS client may cost (see `XdsLimits`).
#[derive(clap::Args, Clone, Copy)]
struct XdsLimitArgs {
    /// Streams one HTTP/2 connection may have open.
    #[arg(long, default_value_t = XdsLimits::default().max_streams_per_connection, help_heading = "xDS client limits")]
    max_streams_per_connection: u32,
    /// Connections one peer address may have open.
    #[arg(long, default_value_t = XdsLimits::default().max_connections_per_peer, help_heading = "xDS client limits")]
    max_connections_per_peer: usize,
    /// Connections open in all.
    #[arg(long, default_value_t = XdsLimits::default().max_connections, help_heading = "xDS client limits")]
    max_connections: usize,
    /// The largest request accepted, in bytes.
    #[arg(long, default_value_t = XdsLimits::default().max_request_bytes, help_heading = "xDS client limits")]
    max_request_bytes: usize,
    /// Resource names one request may carry.
    #[arg(long, default_value_t = XdsLimits::default().max_resource_names, help_heading = "xDS client limits")]
    max_resource_names: usize,
    /// The largest node accepted, encoded, in bytes.
    #[arg(long, default_value_t = XdsLimits::default().max_node_bytes, help_heading = "xDS client limits")]
    max_node_bytes: usize,
    /// Seconds without reading anything (not even a keepalive answer) before a connection is
    /// closed.
    #[arg(long, default_value_t = XdsLimits::default().idle_timeout.as_secs(), value_name = "SECONDS", help_heading = "xDS client limits")]
    idle_timeout: u64,
    /// Seconds between the server's keepalive pings on each connection.
    #[arg(long, default_value_t = XdsLimits::default().keepalive_interval.as_secs(), value_name = "SECONDS", help_heading = "xDS client limits")]
    keepalive_interval: u64,
}

impl XdsLimitArgs {
    fn limits(self) -> XdsLimits {
        XdsLimits {
            max_streams_per_connection: self.max_streams_per_connection,
            max_connections_per_peer: self.max_connections_per_peer,
            max_connections: self.max_connections,
            max_request_bytes: self.max_request_bytes,
            max_resource_names: self.max_resource_names,
            max_node_bytes: self.max_node_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            keepalive_interval: Duration::from_secs(self.keepalive_interval),
            ..XdsLimits::default()
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Yaml,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    switchyard::memory::configure();
    switchyard::descriptors::raise_open_file_limit();
    let cli = Cli::parse();
    if let Err(error) = logging::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT, then stops gracefully; SIGHUP reloads the config.
async fn run_serve(options: serve::ServeOptions) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    let running = serve::start(options).await?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reading the config again");
                running.reload_now();
            }
        }
    }
    tracing::info!("stopping: closing xDS streams");
    exit_if_stuck(serve::SHUTDOWN_PATIENCE + Duration::from_secs(2));
    tokio::select! {
        _ = running.shutdown() => {}
        // A second signal: the operator does not want to wait.
        _ = terminate.recv() => tracing::warn!("SIGTERM again: stopping without waiting"),
        _ = interrupt.recv() => tracing::warn!("SIGINT again: stopping without waiting"),
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ends the process after `limit` if it is still running then, whatever its tasks are doing
/// (the stop is bounded even if a task or a thread is stuck).
fn exit_if_stuck(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        tracing::error!(
            seconds = limit.as_secs(),
            "still stopping after {}s: exiting now",
            limit.as_secs()
        );
        std::process::exit(1);
    });
}

/// How long a stopping sidecar waits for requests in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Runs the sidecar until SIGTERM or SIGINT, then drains.
async fn run_proxy(
    bootstrap: switchyard::proxy::bootstrap::Bootstrap,
    options: switchyard::proxy::Options,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let proxy = tokio::spawn(switchyard::proxy::run(bootstrap, options, shutdown.clone()));
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        finished = proxy => {
            finished??;
            return Ok(ExitCode::SUCCESS);
        }
    }
    tracing::info!("stopping the sidecar: draining connections");
    shutdown.cancel();
    switchyard::proxy::drained(DRAIN_LIMIT).await;
    Ok(ExitCode::SUCCESS)
}

/// `--load-report-interval` as a duration, when within what clients can be asked for.
fn report_interval(seconds: f64) -> anyhow::Result<Duration> {
    use switchyard::publish::load_feed::{MAX_INTERVAL, MIN_INTERVAL};
    let (min, max) = (MIN_INTERVAL.as_secs_f64(), MAX_INTERVAL.as_secs_f64());
    anyhow::ensure!(
        seconds.is_finite() && (min..=max).contains(&seconds),
        "--load-report-interval {seconds}: must be a number of seconds from {min} to {max}"
    );
    Ok(Duration::from_secs_f64(seconds))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "switchyard", &mut script);
            write_stdout(&String::from_utf8_lossy(&script))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            write_stdout(&String::from_utf8_lossy(&page))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Proxy {
            bootstrap,
            concurrency,
            dns_resolver,
        } => {
            let bootstrap = switchyard::proxy::bootstrap::load(&bootstrap)?;
            // This thread runs the xDS client and the admin port; the data plane runs on
            // worker threads of its own (proxy/workers.rs), as Envoy's does.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run_proxy(
                bootstrap,
                switchyard::proxy::Options {
                    dns_resolver,
                    workers: concurrency,
                },
            ))
        }
        Command::Serve {
            path,
            config_from_etcd,
            xds_listen,
            admin_listen,
            removal_grace,
            health_concurrency,
            reload_stall_limit,
            load_report_interval,
            limits,
            exit_on_invalid,
            xds_limits,
            tls,
            etcd,
            template,
        } => {
            anyhow::ensure!(
                removal_grace.is_finite() && removal_grace >= 0.0,
                "--removal-grace must be a number of seconds, 0 or more"
            );
            anyhow::ensure!(
                reload_stall_limit.is_finite() && reload_stall_limit > 0.0,
                "--reload-stall-limit must be a number of seconds, more than 0"
            );
            let load_report_interval = report_interval(load_report_interval)?;
            let xds_limits = xds_limits.limits();
            xds_limits.check()?;
            let options = serve::ServeOptions {
                removal_grace: Duration::from_secs_f64(removal_grace),
                limits: limits.limits(),
                exit_on_invalid,
                xds_limits,
                tls: tls.files(),
                plaintext: tls.xds_plaintext,
                health_concurrency,
                reload_stall_limit: Duration::from_secs_f64(reload_stall_limit),
                load_report_interval,
                inputs: template.inputs()?,
                etcd: etcd.options()?,
                config_from_etcd,
                ..serve::ServeOptions::new(path.unwrap_or_default(), xds_listen, admin_listen)
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let result = runtime.block_on(run_serve(options));
            // A blocking task stuck in the kernel (a read of a hung file system) must not hold
            // the exit: give the rest a moment, then leave without it.
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        }
        #[cfg(feature = "etcd")]
        Command::Push {
            path,
            limits,
            template,
            store,
        } => {
            let validation = pushed_validation(limits, &template)?;
            let max = store.etcd_max_request_bytes;
            pushed::push(&path, &validation, &store.options()?, max)
        }
        #[cfg(feature = "etcd")]
        Command::History { limit, store } => pushed::history(&store.options()?, limit),
        #[cfg(feature = "etcd")]
        Command::Rollback {
            revision,
            limits,
            template,
            store,
        } => {
            let validation = pushed_validation(limits, &template)?;
            let max = store.etcd_max_request_bytes;
            pushed::rollback(revision, &validation, &store.options()?, max)
        }
        // Without the etcd feature the options are refused, saying how to build with it.
        #[cfg(not(feature = "etcd"))]
        Command::Push { store, .. }
        | Command::History { store, .. }
        | Command::Rollback { store, .. } => {
            store.options()?;
            unreachable!("--etcd is refused without the etcd feature")
        }
        Command::Validate {
            path,
            format,
            limits,
            template,
        } => {
            let loaded = config::load_with_inputs(&path, &limits.limits(), &template.inputs()?);
            let report = match format {
                ReportFormat::Text => {
                    switchyard::validation_report::report(&path, &loaded.diagnostics)
                }
                ReportFormat::Json => {
                    let report =
                        switchyard::validation_report::json_report(&path, &loaded.diagnostics);
                    serde_json::to_string_pretty(&report)? + "\n"
                }
            };
            write_stdout(&report)?;
            Ok(if !loaded.diagnostics.has_errors() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Explain {
            path,
            service,
            client_locality,
            admin,
            template,
        } => {
            let loaded =
                config::load_with_inputs(&path, &ReadLimits::default(), &template.inputs()?);
            if loaded.diagnostics.has_errors() {
                eprint!("{}", loaded.diagnostics);
                return Ok(ExitCode::FAILURE);
            }
            let name = service.rsplit('/').next().unwrap_or(&service);
            let Some(found) = loaded.model.services.get(name) else {
                let known: Vec<&str> = loaded.model.services.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "no backend service `{name}` in {}; defined: {}",
                    path.display(),
                    known.join(", ")
                );
            };
            let region = client_locality
                .as_deref()
                .map(|l| l.split('/').next().unwrap_or(l));
            let health = admin.map(|admin| live_health(admin, name)).transpose()?;
            let mut text = switchyard::explain::explain_with_health(
                &loaded.model,
                found,
                region,
                health.as_ref(),
            );
            if let Some(report) = admin.map(|admin| live_capacity(admin, name)).transpose()? {
                text += &match report {
                    Some(report) => switchyard::explain::describe_capacity(&report, region),
                    None => "\ncapacity from load reports: none decided (no measurable target, or no load reported yet)\n".to_string(),
                };
            }
            write_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { admin } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            if let [one] = admin.as_slice() {
                let clients = runtime.block_on(switchyard::status::fetch_clients(*one))?;
                write_stdout(&switchyard::status::table(&clients))?;
                return Ok(ExitCode::SUCCESS);
            }
            let answers = runtime.block_on(async {
                let mut answers = Vec::new();
                for address in &admin {
                    let answer = switchyard::status_replicas::fetch_replica(*address)
                        .await
                        .map_err(|error| format!("{error:#}"));
                    answers.push((*address, answer));
                }
                answers
            });
            let (text, every_one_answered) = switchyard::status_replicas::fleet_table(&answers);
            write_stdout(&text)?;
            Ok(if every_one_answered {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Translate {
            path,
            format,
            template,
        } => {
            let loaded =
                config::load_with_inputs(&path, &ReadLimits::default(), &template.inputs()?);
            if loaded.diagnostics.has_errors() {
                eprint!("{}", loaded.diagnostics);
                return Ok(ExitCode::FAILURE);
            }
            let dump = translate::json::resources_to_json(&translate::translate(&loaded.model));
            let text = match format {
                Format::Json => serde_json::to_string_pretty(&dump)? + "\n",
                Format::Yaml => serde_yaml::to_string(&dump)?,
            };
            write_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(feature = "etcd")]
use switchyard::cluster::pushed::commands as pushed;

/// How push and rollback validate: as `validate` does, with the same limits and inputs.
#[cfg(feature = "etcd")]
fn pushed_validation(
    limits: LimitArgs,
    template: &TemplateArgs,
) -> anyhow::Result<pushed::Validation> {
    Ok(pushed::Validation {
        limits: limits.limits(),
        inputs: template.inputs()?,
    })
}

/// Writes `text` to standard output. A reader that has gone (`switchyard translate … | head`)
/// ends the output quietly: what it did not want is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing to standard output"),
    }
}

/// The capacity decisions of `service` as the server at `admin` reports them (None: it has
/// none).
fn live_capacity(
    admin: SocketAddr,
    service: &str,
) -> anyhow::Result<Option<switchyard::capacity::report::ServiceReport>> {
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(switchyard::status::fetch_json(admin, "/capacity"))?;
    let decided = answer["services"]
        .as_array()
        .is_some_and(|names| names.iter().any(|n| n == service));
    if !decided {
        return Ok(None);
    }
    let path = format!("/capacity?service={service}");
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(switchyard::status::fetch_json(admin, &path))?;
    Ok(Some(
        serde_json::from_value(answer).context("reading /capacity")?,
    ))
}

/// The health of `service`'s endpoints as the server at `admin` reports them.
fn live_health(
    admin: SocketAddr,
    service: &str,
) -> anyhow::Result<switchyard::explain::LiveHealth> {
    let path = format!("/health?service={service}&limit=1000000");
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(switchyard::status::fetch_json(admin, &path))?;
    let mut health = switchyard::explain::LiveHealth::new();
    for endpoint in answer["endpoints"].as_array().into_iter().flatten() {
        let Some(address) = endpoint["address"].as_str().and_then(|a| a.parse().ok()) else {
            continue;
        };
        let families: Vec<String> = endpoint["families"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|family| {
                let error = family["last_error"]
                    .as_str()
                    .filter(|_| family["state"] != "HEALTHY")
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                format!(
                    "{} {}{error}",
                    family["family"].as_str().unwrap_or("?"),
                    family["state"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let state = endpoint["state"].as_str().unwrap_or("?");
        health.insert(address, format!("{state} ({})", families.join(", ")));
    }
    Ok(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument and flag of every command says what it is for in `--help`.
    #[test]
    fn every_argument_is_described() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for argument in command.get_arguments() {
                let id = argument.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if argument.get_help().is_none() && argument.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "switchyard", &mut missing);
        assert!(missing.is_empty(), "undescribed in --help: {missing:?}");
    }
}
