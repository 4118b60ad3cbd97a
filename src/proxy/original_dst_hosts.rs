//! The hosts of one ORIGINAL_DST cluster: one per destination, made when a connection first
//! goes there and dropped when unused, as Envoy's original-dst cluster does: every cleanup
//! interval, a host not used since the previous sweep (and not busy) goes. Sweeps happen as
//! hosts are asked for, so an idle cluster keeps its few hosts until its next request.
//!
//! Must not: decide the destination (proxy/original_dst.rs does).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::balancer::Host;

/// One ORIGINAL_DST cluster's hosts by destination.
#[derive(Debug)]
pub struct OriginalDstHosts {
    cleanup_interval: Duration,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    hosts: HashMap<SocketAddr, Tracked>,
    swept: Instant,
}

#[derive(Debug)]
struct Tracked {
    host: Arc<Host>,
    /// Asked for since the last sweep.
    used: bool,
}

impl OriginalDstHosts {
    pub fn new(cleanup_interval: Duration, now: Instant) -> OriginalDstHosts {
        OriginalDstHosts {
            cleanup_interval,
            table: Mutex::new(Table {
                hosts: HashMap::new(),
                swept: now,
            }),
        }
    }

    /// The host for `destination`, made if there is none (sweeping first when a cleanup
    /// interval has passed since the last sweep).
    pub fn host_for(&self, destination: SocketAddr, now: Instant) -> Arc<Host> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(table.swept) >= self.cleanup_interval {
            table.sweep(now);
        }
        let tracked = table.hosts.entry(destination).or_insert_with(|| Tracked {
            host: Arc::new(host_at(destination)),
            used: true,
        });
        tracked.used = true;
        tracked.host.clone()
    }

    /// How many hosts the cluster has now.
    pub fn len(&self) -> usize {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.hosts.len()
    }

    /// Whether the cluster has no host.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Table {
    /// Drops the hosts unused since the last sweep and not busy; marks the rest unused.
    fn sweep(&mut self, now: Instant) {
        self.hosts.retain(|_, tracked| {
            tracked.used
                || tracked.host.active.load(Ordering::Relaxed) > 0
                || Arc::strong_count(&tracked.host) > 1
        });
        for tracked in self.hosts.values_mut() {
            tracked.used = false;
        }
        self.swept = now;
    }
}

/// The host of a connection to `destination`.
fn host_at(destination: SocketAddr) -> Host {
    let name = super::endpoint_names::name_of(&[destination]);
    Host {
        address: destination,
        fallback: Vec::new(),
        authority: name.parse().ok(),
        name,
        active: AtomicUsize::new(0),
        load: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_made_per_destination_and_dropped_after_an_interval_unused() {
        let start = Instant::now();
        let interval = Duration::from_secs(5);
        let hosts = OriginalDstHosts::new(interval, start);
        let (a, b) = (
            "127.0.0.77:80".parse().unwrap(),
            "127.0.0.78:80".parse().unwrap(),
        );
        let first = hosts.host_for(a, start);
        assert!(Arc::ptr_eq(&first, &hosts.host_for(a, start)));
        assert_eq!(first.address, a);
        drop(first);
        hosts.host_for(b, start);
        assert_eq!(hosts.len(), 2);
        // The first sweep finds both used since the start; b is used again after it.
        hosts.host_for(b, start + interval);
        assert_eq!(hosts.len(), 2);
        // The second drops a, unused for a whole interval, and keeps b.
        hosts.host_for(b, start + interval * 2);
        assert_eq!(hosts.len(), 1);
        // A host still held (a request in flight) is kept however long it is unused.
        let held = hosts.host_for(a, start + interval * 2);
        hosts.host_for(b, start + interval * 4);
        hosts.host_for(b, start + interval * 5);
        assert_eq!(hosts.len(), 2);
        drop(held);
        hosts.host_for(b, start + interval * 6);
        assert_eq!(hosts.len(), 1);
    }
}
