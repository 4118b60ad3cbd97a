//! Load generator for `switchyard serve`: starts the real server process on a generated config,
//! opens N ADS streams on loopback acting as Envoys (state of the world, delta, or a mix),
//! and reports what docs/performance.md quotes — convergence of an edit from the file write, messages
//! and bytes per type, server RSS and CPU, per-client memory, reconnect storms.
//!
//!     cargo bench --bench loadgen -- fleet --services 1000 --clients 2000 --delta-share 0.5
//!     cargo bench --bench loadgen -- idle --clients 10000
//!     cargo bench --bench loadgen -- storm --services 100 --clients 10000
//!     cargo bench --bench loadgen -- hostile --services 2000
//!     cargo bench --bench loadgen -- hostile-config --services 1000
//!     cargo bench --bench loadgen -- slow --services 1000 --streams 2000 --edits 10
//!     cargo bench --bench loadgen -- health --endpoints 100000 --interval 5
//!     cargo bench --bench loadgen -- capacity --services 1000 --clients 2000 --per-client 10
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it makes a small fleet run as a
//! smoke test of itself.

mod capacity;
mod client;
mod health;
mod hostile;
mod hostile_config;
mod server;
mod slow;

#[path = "../support/fleet_config.rs"]
mod fleet_config;
#[path = "../support/ports.rs"]
mod ports;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use client::{ClientProgress, ClientSpec, Counters, Protocol};
use server::ServerProcess;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    scenario: Option<Scenario>,
    /// Passed by `cargo bench`; without it this is a smoke run.
    #[arg(long, hide = true, global = true)]
    bench: bool,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// One edit to one service's capacityScaler, with every client subscribed.
    Fleet {
        #[arg(long, default_value_t = 1000)]
        services: usize,
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// Share of clients on delta xDS (the rest state of the world).
        #[arg(long, default_value_t = 0.5)]
        delta_share: f64,
        /// Subscribe each client to the endpoints of this many clusters (all by default).
        #[arg(long)]
        endpoint_subscriptions: Option<usize>,
        /// Edits to make, one after the other.
        #[arg(long, default_value_t = 3)]
        edits: usize,
    },
    /// Clients that connect to a one-service config and stay idle: memory per client.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        #[arg(long, default_value_t = 0.0)]
        delta_share: f64,
    },
    /// The hostile-client probes: many streams, made-up types, oversized input, invented
    /// load reports.
    Hostile {
        #[arg(long, default_value_t = 2000)]
        services: usize,
    },
    /// Hostile config files (alias bomb, deep nesting, too many nodes, too many bytes): time
    /// to refuse each and the server's peak RSS meanwhile.
    HostileConfig {
        #[arg(long, default_value_t = 1000)]
        services: usize,
    },
    /// Streams that subscribe to everything and never read, through a run of edits: server
    /// RSS per stream at the peak, updates to a client that reads, RSS after they close.
    Slow {
        #[arg(long, default_value_t = 1000)]
        services: usize,
        #[arg(long, default_value_t = 2000)]
        streams: usize,
        #[arg(long, default_value_t = 10)]
        edits: usize,
    },
    /// Centralized health checking at scale: probe rate, server CPU and memory, and the time
    /// from backends going down to the last client seeing them UNHEALTHY.
    Health {
        #[arg(long, default_value_t = 100_000)]
        endpoints: usize,
        #[arg(long, default_value_t = 1000)]
        per_service: usize,
        #[arg(long, default_value_t = 20)]
        clients: usize,
        #[arg(long, default_value_t = 5)]
        interval: u32,
        /// TCP checks (connect only) instead of HTTP GET /healthz.
        #[arg(long)]
        tcp: bool,
    },
    /// Capacity from load reports: reporting clients' cost to the server, and the time from a
    /// load step to the new shares at a client.
    Capacity {
        #[arg(long, default_value_t = 1000)]
        services: usize,
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// Services each client reports on.
        #[arg(long, default_value_t = 10)]
        per_client: usize,
    },
    /// Clients that all connect at once: time until every one has its config.
    Storm {
        #[arg(long, default_value_t = 100)]
        services: usize,
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        #[arg(long, default_value_t = 0.0)]
        delta_share: f64,
    },
}

fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // `cargo test NAME` passes its filter here too: not a run of this program.
        Err(error)
            if !std::env::args().any(|a| a == "--bench")
                && error.kind() != clap::error::ErrorKind::DisplayHelp =>
        {
            println!("loadgen: arguments meant for tests; skipping the smoke run");
            return;
        }
        Err(error) => error.exit(),
    };
    let scenario = match (args.scenario, args.bench) {
        (Some(scenario), _) => scenario,
        (None, true) => Scenario::Fleet {
            services: 1000,
            clients: 2000,
            delta_share: 0.5,
            endpoint_subscriptions: None,
            edits: 3,
        },
        // A smoke run under `cargo test`.
        (None, false) => Scenario::Fleet {
            services: 20,
            clients: 10,
            delta_share: 0.0,
            endpoint_subscriptions: None,
            edits: 1,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        match scenario {
            Scenario::Fleet {
                services,
                clients,
                delta_share,
                endpoint_subscriptions,
                edits,
            } => {
                fleet(
                    services,
                    clients,
                    delta_share,
                    endpoint_subscriptions,
                    edits,
                )
                .await
            }
            Scenario::Idle {
                clients,
                delta_share,
            } => idle(clients, delta_share).await,
            Scenario::Storm {
                services,
                clients,
                delta_share,
            } => storm(services, clients, delta_share).await,
            Scenario::Health {
                endpoints,
                per_service,
                clients,
                interval,
                tcp,
            } => health::run(endpoints, per_service, clients, interval, tcp).await,
            Scenario::Hostile { services } => {
                hostile::run(&fleet_config::fleet_config(services, 10080, "1.0")).await
            }
            Scenario::HostileConfig { services } => hostile_config::run(services).await,
            Scenario::Slow {
                services,
                streams,
                edits,
            } => slow::run(services, streams, edits).await,
            Scenario::Capacity {
                services,
                clients,
                per_client,
            } => capacity::run(services, clients, per_client).await,
        }
    });
}

fn protocol_of(index: usize, clients: usize, delta_share: f64) -> Protocol {
    if (index as f64) < clients as f64 * delta_share {
        Protocol::Delta
    } else {
        Protocol::Sotw
    }
}

/// Connected clients and what they report.
struct Fleet {
    counters: Arc<Counters>,
    progress: Vec<Arc<ClientProgress>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    async fn connect(
        address: &str,
        clients: usize,
        delta_share: f64,
        endpoint_subscriptions: Option<usize>,
    ) -> Fleet {
        let counters = Arc::new(Counters::default());
        let mut progress = Vec::new();
        let mut tasks = Vec::new();
        for id in 0..clients {
            let spec = ClientSpec {
                id,
                protocol: protocol_of(id, clients, delta_share),
                watched_cluster: "svc-0".into(),
                endpoint_subscriptions,
                initial_versions: Default::default(),
            };
            let client_progress = Arc::new(ClientProgress::default());
            progress.push(client_progress.clone());
            let (counters, address) = (counters.clone(), address.to_string());
            tasks.push(tokio::spawn(async move {
                let channel = loop {
                    match client::connect(&address).await {
                        Ok(channel) => break channel,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                if let Err(status) = client::run(channel, spec, counters, client_progress).await {
                    eprintln!("client {id}: {status}");
                }
            }));
        }
        Fleet {
            counters,
            progress,
            tasks,
        }
    }

    fn synced(&self) -> usize {
        self.progress
            .iter()
            .filter(|p| p.synced.load(Ordering::Relaxed))
            .count()
    }

    async fn wait_synced(&self, patience: Duration) -> Duration {
        let started = Instant::now();
        while self.synced() < self.progress.len() {
            if started.elapsed() > patience {
                panic!(
                    "only {} of {} clients synced after {patience:?}",
                    self.synced(),
                    self.progress.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    fn disconnect(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn fleet(
    services: usize,
    clients: usize,
    delta_share: f64,
    endpoint_subscriptions: Option<usize>,
    edits: usize,
) {
    println!(
        "fleet: {services} services (2 NEGs x 5 endpoints each), {clients} clients ({:.0}% delta), {} subscribed per client",
        delta_share * 100.0,
        endpoint_subscriptions.map_or("every cluster".to_string(), |n| format!("{n} clusters"))
    );
    let loopback = server::loopback_bandwidth().await;
    println!("loopback TCP, one stream: {:.0} MB/s", loopback / 1e6);
    let server = ServerProcess::start(&fleet_config::fleet_config(services, 10080, "1.0")).await;
    let (cold, baseline) = baselines(&server, delta_share).await;
    let fleet = Fleet::connect(&server.xds, clients, delta_share, endpoint_subscriptions).await;
    let synced_in = fleet.wait_synced(Duration::from_secs(600)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = server.rss_kib();
    println!(
        "all {clients} clients synced in {:.2} s; server RSS {:.1} MiB idle ({:.1} MiB cold), {:.1} MiB with clients ({:.1} KiB per client)",
        synced_in.as_secs_f64(),
        mib(baseline),
        mib(cold),
        mib(connected),
        (connected.saturating_sub(baseline)) as f64 / clients as f64
    );

    for edit in 0..edits {
        fleet.counters.phase.store(1, Ordering::Relaxed);
        let cpu_before = server.cpu_seconds();
        let convergence_before = server.histogram("switchyard_xds_convergence_seconds").await;
        let scaler = ["0.5", "0.8", "0.3", "0.9"][edit % 4];
        let written = server.write_config(&fleet_config::fleet_config(services, 10080, scaler));
        let mut arrivals = Vec::with_capacity(clients);
        let started = Instant::now();
        for progress in &fleet.progress {
            loop {
                let seen = *progress.watched_at.lock().unwrap();
                if let Some(at) = seen.filter(|at| *at > written) {
                    arrivals.push(at - written);
                    break;
                }
                if started.elapsed() > Duration::from_secs(120) {
                    panic!("a client never received the edit");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        // Let anything else the edit caused arrive, then count.
        tokio::time::sleep(Duration::from_secs(1)).await;
        arrivals.sort();
        let counted = fleet.counters.of_phase(1);
        let total_bytes: u64 = counted.iter().map(|(_, _, b)| b).sum();
        let endpoint_bytes = counted[1].2;
        let first = arrivals[0];
        let last = *arrivals.last().unwrap();
        let convergence_after = server.histogram("switchyard_xds_convergence_seconds").await;
        let publish_to_synced = if convergence_after.1 > convergence_before.1 {
            format!(
                "{:.0} ms",
                (convergence_after.0 - convergence_before.0) * 1e3
                    / (convergence_after.1 - convergence_before.1) as f64
            )
        } else {
            "not measured".to_string()
        };
        println!(
            "edit {}: capacityScaler of svc-0 → {scaler}: convergence from the file write p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms; the load took {:.0} ms, publication → every client ACKed {publish_to_synced} (server metric); server CPU {:.2} s",
            edit + 1,
            percentile(&arrivals, 0.5).as_secs_f64() * 1e3,
            percentile(&arrivals, 0.99).as_secs_f64() * 1e3,
            last.as_secs_f64() * 1e3,
            server.status_number("last_load_milliseconds").await,
            server.cpu_seconds() - cpu_before,
        );
        for (type_url, messages, bytes) in &counted {
            println!(
                "  {:<22} {messages:>7} messages {bytes:>12} bytes",
                client::short(type_url)
            );
        }
        let spread = (last - first).as_secs_f64().max(1e-3);
        println!(
            "  bytes sent: {total_bytes} = {:.2} x (clients x one ClusterLoadAssignment of {} bytes); push bandwidth {:.1} MB/s = {:.2}% of one loopback TCP stream",
            total_bytes as f64 / (clients as f64 * (endpoint_bytes as f64 / counted[1].1.max(1) as f64)),
            endpoint_bytes / counted[1].1.max(1),
            total_bytes as f64 / spread / 1e6,
            total_bytes as f64 / spread / loopback * 100.0
        );
        fleet.counters.reset_phase(1);
    }
    println!(
        "server RSS {:.1} MiB after the edits",
        mib(server.rss_kib())
    );
    fleet.disconnect();
    let after = server.wait_rss_settles().await;
    println!(
        "server RSS {:.1} MiB after every client disconnected ({:+.1}% against the warm idle baseline, {:+.1}% against the cold one; {} streams still counted)",
        mib(after),
        (after as f64 / baseline as f64 - 1.0) * 100.0,
        (after as f64 / cold as f64 - 1.0) * 100.0,
        server.streams_connected().await
    );
}

/// RSS with no client: right after start (cold) and after ten clients came and went (warm:
/// the one-time setup of the first connections is done).
async fn baselines(server: &ServerProcess, delta_share: f64) -> (u64, u64) {
    // The server gives back what its first load freed a couple of seconds after it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cold = server.rss_kib();
    let warm_up = Fleet::connect(&server.xds, 10, delta_share, None).await;
    warm_up.wait_synced(Duration::from_secs(60)).await;
    warm_up.disconnect();
    (cold, server.wait_rss_settles().await)
}

async fn idle(clients: usize, delta_share: f64) {
    let server = ServerProcess::start(&fleet_config::fleet_config(1, 10080, "1.0")).await;
    let (cold, baseline) = baselines(&server, delta_share).await;
    let fleet = Fleet::connect(&server.xds, clients, delta_share, None).await;
    fleet.wait_synced(Duration::from_secs(600)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connected = server.rss_kib();
    println!(
        "idle: {clients} clients on a one-service config: server RSS {:.1} MiB (cold), {:.1} MiB (warm) → {:.1} MiB, {:.1} KiB per client",
        mib(cold),
        mib(baseline),
        mib(connected),
        connected.saturating_sub(baseline) as f64 / clients as f64
    );
    fleet.disconnect();
    let after = server.wait_rss_settles().await;
    println!(
        "after every client disconnected: {:.1} MiB ({:+.1}% against the warm baseline, {:+.1}% against the cold one)",
        mib(after),
        (after as f64 / baseline as f64 - 1.0) * 100.0,
        (after as f64 / cold as f64 - 1.0) * 100.0
    );
}

async fn storm(services: usize, clients: usize, delta_share: f64) {
    let server = ServerProcess::start(&fleet_config::fleet_config(services, 10080, "1.0")).await;
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let fleet = Fleet::connect(&server.xds, clients, delta_share, None).await;
    fleet.wait_synced(Duration::from_secs(600)).await;
    println!(
        "storm: {clients} clients connecting at once to a {services}-service config: all synced (every type ACKed) in {:.2} s; server CPU {:.2} s, RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        server.cpu_seconds() - cpu_before,
        mib(server.rss_kib())
    );
    fleet.disconnect();
}
