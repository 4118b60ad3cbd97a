//! The etcd session: connects, takes a lease and puts this replica's member key on it, reads
//! everything under the prefix, then keeps the lease alive, follows the prefix with a watch,
//! writes the standings sync passes ask for and, once per load-report interval, this
//! replica's load when it changed (all on this replica's lease, so a dead replica's words
//! vanish with it). Any failure ends the session and a new one starts a second later
//! with a fresh lease; what was known stands meanwhile (the view decides when it is too old).
//! The only file that talks to etcd. Must not: decide ownership or health.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, PutOptions, TlsOptions,
    Txn, TxnOp, WatchOptions,
};
use tokio_util::sync::CancellationToken;

use crate::health::checker::Checker;

use super::load_value::{parse_load, PublishedLoad};
use super::sync::{self, Write};
use super::view::{
    health_key, health_value, load_key, member_key, member_value, parse_health, parse_key,
    parse_member, parse_since, Entry,
};
use super::{EtcdOptions, Replicas};

/// The pause between sessions.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// How often a pass runs even with nothing woken (a reloaded config, ownership that moved).
const PASS_EVERY: Duration = Duration::from_millis(500);
/// etcd's default limit of operations in one transaction.
const OPS_PER_TXN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    #[error("reading {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the lease expired")]
    LeaseExpired,
    #[error("etcd closed the {0} stream")]
    Closed(&'static str),
}

/// Runs sessions until `shutdown`.
pub async fn run(replicas: Arc<Replicas>, checker: Arc<Checker>, shutdown: CancellationToken) {
    loop {
        let ended = session(&replicas, &checker, &shutdown).await;
        replicas.metrics.etcd_connected.set(0);
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(error) = ended {
            tracing::warn!(%error, "the etcd session ended; reconnecting");
            replicas.view().lost(error.to_string());
        }
        // Passes stop while disconnected; keep the sharing gauge true to the view.
        let _ = sync::pass(&replicas, &checker);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}

/// The options etcd-client connects with.
pub(crate) fn connect_options(options: &EtcdOptions) -> Result<ConnectOptions, SessionError> {
    let lease = options.lease;
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(lease.min(Duration::from_secs(5)))
        .with_timeout(lease.min(Duration::from_secs(5)))
        .with_keep_alive(lease / 3, lease / 3);
    if let Some((user, password)) = &options.user {
        connect = connect.with_user(user.clone(), password.clone());
    }
    if let Some(tls) = &options.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| SessionError::File {
                path: path.display().to_string(),
                source,
            })
        };
        let mut config = TlsOptions::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        connect = connect.with_tls(config);
    }
    Ok(connect)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One session, until it fails or `shutdown`.
async fn session(
    replicas: &Replicas,
    checker: &Checker,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let options = &replicas.options;
    let prefix = options.prefix.as_str();
    let mut client = Client::connect(&options.endpoints, Some(connect_options(options)?)).await?;
    let ttl = options.lease.as_secs().max(1) as i64;
    let lease = client.lease_grant(ttl, None).await?.id();
    client
        .put(
            member_key(prefix, &options.replica_name),
            member_value(unix_now()),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    let (mut keeper, mut kept) = client.lease_keep_alive(lease).await?;
    // The prefix but the pushed configs (large values, read by their own follower).
    let (start, end) = super::pushed::keys::session_range(prefix);
    let snapshot = client
        .get(
            start.as_str(),
            Some(GetOptions::new().with_range(end.clone())),
        )
        .await?;
    let revision = snapshot.header().map_or(0, |h| h.revision());
    let (members, shared, shared_since) = read_snapshot(prefix, snapshot.kvs());
    let mut watch = client
        .watch(
            start,
            Some(
                WatchOptions::new()
                    .with_range(end)
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    let loads = read_loads(prefix, snapshot.kvs());
    {
        let mut view = replicas.view();
        view.connected(Instant::now(), members, shared);
        view.shared_since = shared_since;
        view.replace_loads(loads);
    }
    // A new lease: this replica's load is written again at the first tick.
    replicas.load.forget();
    replicas.metrics.etcd_connected.set(1);
    tracing::info!(replica = %options.replica_name, lease, "joined the replica set in etcd");

    let mut renew = tokio::time::interval(options.lease / 3);
    let mut passes = tokio::time::interval(PASS_EVERY);
    let load_every = replicas.load.interval();
    let mut load_ticks = tokio::time::interval(load_every.unwrap_or(PASS_EVERY));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                // Leaving at once hands this replica's targets to the others now, not a TTL later.
                let _ = client.lease_revoke(lease).await;
                return Ok(());
            }
            _ = renew.tick() => keeper.keep_alive().await?,
            answer = kept.message() => match answer? {
                Some(answer) if answer.ttl() > 0 => replicas.view().kept_alive(Instant::now()),
                Some(_) => return Err(SessionError::LeaseExpired),
                None => return Err(SessionError::Closed("lease keep-alive")),
            },
            news = watch.message() => {
                let news = news?.ok_or(SessionError::Closed("watch"))?;
                if news.canceled() {
                    return Err(SessionError::Closed("watch"));
                }
                apply_events(replicas, prefix, news.events());
                replicas.wake.notify_one();
            }
            _ = replicas.wake.notified() => {
                // A moment for more changes to gather into the same pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
                write(&mut client, replicas, lease, sync::pass(replicas, checker)).await?;
            }
            _ = passes.tick() => {
                write(&mut client, replicas, lease, sync::pass(replicas, checker)).await?;
            }
            _ = load_ticks.tick(), if load_every.is_some() => {
                write_load(&mut client, replicas, lease).await?;
            }
        }
    }
}

/// Members, standings and when they changed, from a read of the whole prefix.
fn read_snapshot(
    prefix: &str,
    kvs: &[etcd_client::KeyValue],
) -> (
    BTreeMap<String, super::view::Member>,
    HashMap<String, crate::health::state::Standing>,
    HashMap<String, SystemTime>,
) {
    let mut members = BTreeMap::new();
    let mut shared = HashMap::new();
    let mut shared_since = HashMap::new();
    for kv in kvs {
        let (Ok(key), Ok(value)) = (kv.key_str(), kv.value_str()) else {
            continue;
        };
        match parse_key(prefix, key) {
            Some(Entry::Member(name)) => {
                members.insert(name, parse_member(value));
            }
            Some(Entry::Health(id)) => {
                if let Some(since) = parse_since(value) {
                    shared_since.insert(id.clone(), since);
                }
                if let Some(standing) = parse_health(value) {
                    shared.insert(id, standing);
                }
            }
            _ => {}
        }
    }
    (members, shared, shared_since)
}

/// The load each replica published, from a read of the whole prefix.
fn read_loads(prefix: &str, kvs: &[etcd_client::KeyValue]) -> BTreeMap<String, PublishedLoad> {
    kvs.iter()
        .filter_map(|kv| {
            let Some(Entry::Load(name)) = parse_key(prefix, kv.key_str().ok()?) else {
                return None;
            };
            Some((name, parse_load(kv.value_str().ok()?)?))
        })
        .collect()
}

/// Writes this replica's load on `lease` when it says something new, and records it in the
/// view (the watch will say the same).
async fn write_load(
    client: &mut Client,
    replicas: &Replicas,
    lease: i64,
) -> Result<(), SessionError> {
    let Some(value) = replicas.load.next_value(unix_now()) else {
        return Ok(());
    };
    let options = &replicas.options;
    client
        .put(
            load_key(&options.prefix, &options.replica_name),
            value.encode(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    replicas.metrics.load_writes.inc();
    replicas
        .view()
        .set_load(options.replica_name.clone(), Some(value.clone()));
    replicas.load.wrote(value);
    Ok(())
}

/// Applies watch events to the view.
fn apply_events(replicas: &Replicas, prefix: &str, events: &[etcd_client::Event]) {
    let mut view = replicas.view();
    for event in events {
        let Some(kv) = event.kv() else { continue };
        let Some(entry) = kv.key_str().ok().and_then(|key| parse_key(prefix, key)) else {
            continue;
        };
        match event.event_type() {
            EventType::Put => view.put(entry, kv.value_str().unwrap_or("")),
            EventType::Delete => view.delete(entry),
        }
    }
}

/// Writes `writes` on `lease`, a transaction of up to [`OPS_PER_TXN`] at a time, and records
/// them in the view (the watch will say the same).
async fn write(
    client: &mut Client,
    replicas: &Replicas,
    lease: i64,
    writes: Vec<Write>,
) -> Result<(), SessionError> {
    let prefix = replicas.options.prefix.as_str();
    for batch in writes.chunks(OPS_PER_TXN) {
        let ops: Vec<TxnOp> = batch
            .iter()
            .map(|w| {
                TxnOp::put(
                    health_key(prefix, &w.id),
                    health_value(w.standing, &w.address.to_string(), w.since),
                    Some(PutOptions::new().with_lease(lease)),
                )
            })
            .collect();
        client.txn(Txn::new().and_then(ops)).await?;
        replicas.metrics.health_writes.inc_by(batch.len() as u64);
        let mut view = replicas.view();
        for w in batch {
            view.shared.insert(w.id.clone(), w.standing);
            view.shared_since.insert(w.id.clone(), w.since);
        }
    }
    Ok(())
}
