//! Replicas that share their work through etcd (`serve --etcd`): each replica holds a lease
//! under the prefix (membership), every health-check target is owned by one live member
//! (rendezvous hashing), the owner probes it and writes changes of its standing to etcd, and
//! every replica applies what etcd holds, so all publish the same endpoint health. Each
//! replica also publishes the load its own clients reported, and capacity decisions read the
//! sum over the live members (`load_value`, `load_publish`, `load_sum`, `fleet_load`). Without
//! `--etcd` none of this exists and a replica probes everything itself.
//!
//! `owners` and `view` are the pure logic (who owns what; whether the probing is shared now),
//! `sync` compares the checker's targets with the shared standings, `etcd` is the only file
//! that talks to etcd (built with the `etcd` feature: etcd-client needs protoc, which a
//! plain `cargo install` should not), `report` is `/cluster`, `cli` the flags. Must not: translate or
//! publish anything itself (standings reach the publisher through the checker).

pub mod cli;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod fleet_load;
pub mod load_publish;
pub mod load_sum;
pub mod load_value;
pub mod metrics;
pub mod owners;
pub mod pushed;
pub mod report;
pub mod sync;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::health::sharing::Sharing;
use crate::health::state::Standing;
use crate::health::targets::TargetKey;

use self::metrics::ClusterMetrics;
use self::sync::Index;
use self::view::View;

/// The lease's TTL by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// The prefix of every key by default.
pub const DEFAULT_PREFIX: &str = "/switchyard/";

/// TLS towards etcd.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// The authority etcd's certificate is checked against (the system's otherwise).
    pub ca: Option<PathBuf>,
    /// This replica's certificate and key, when etcd asks for client certificates.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// How to reach etcd and how to appear there.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    /// Ends with '/'.
    pub prefix: String,
    pub replica_name: String,
    pub lease: Duration,
    pub tls: Option<EtcdTls>,
    /// User name and password.
    pub user: Option<(String, String)>,
}

/// This replica's part in the replica set, shared by the checker (as its [`Sharing`]), the
/// etcd session and `/cluster`.
pub struct Replicas {
    pub options: EtcdOptions,
    view: Mutex<View>,
    /// The checker's targets with their ids.
    index: Mutex<Index>,
    /// Woken when standings may need comparing (a local change, news from etcd).
    pub(crate) wake: Notify,
    pub metrics: ClusterMetrics,
    /// What this replica publishes of its own clients' load.
    pub load: load_publish::LoadPublishing,
}

impl Replicas {
    pub fn new(options: EtcdOptions) -> Replicas {
        let view = View::new(options.replica_name.clone(), options.lease);
        Replicas {
            options,
            view: Mutex::new(view),
            index: Mutex::new(Index::default()),
            wake: Notify::new(),
            metrics: ClusterMetrics::default(),
            load: load_publish::LoadPublishing::default(),
        }
    }

    pub(crate) fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sharing for Replicas {
    fn probes(&self, key: &TargetKey) -> bool {
        if !self.view().sharing(Instant::now()) {
            return true;
        }
        if let Some(mine) = self.index().owns(key) {
            return mine;
        }
        // A target the last pass has not seen yet.
        let id = owners::target_id(key);
        self.view().probes(&id, Instant::now())
    }

    fn changed(&self, _key: &TargetKey, _standing: Standing) {
        self.wake.notify_one();
    }
}

/// This host's name and process id: a replica name unique among running processes.
pub fn default_replica_name() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

/// This host's name ("switchyard" when it cannot be read).
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result == 0 {
        let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        "switchyard".to_string()
    }
}

/// Starts the etcd session; it ends with `shutdown` (revoking the lease, so the others take
/// this replica's targets over at once).
pub fn spawn(
    replicas: Arc<Replicas>,
    checker: Arc<crate::health::checker::Checker>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    #[cfg(feature = "etcd")]
    tokio::spawn(etcd::run(replicas, checker, shutdown));
    // Options are refused without the feature (cli.rs), so nothing reaches here.
    #[cfg(not(feature = "etcd"))]
    drop((replicas, checker, shutdown));
}
