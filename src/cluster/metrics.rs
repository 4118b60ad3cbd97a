//! The replica set's metrics: members, whether etcd is connected, whether the probing is
//! shared (0: this replica probes everything), the targets this replica owns, and the
//! standings and load values it wrote to etcd. Registered only when `--etcd` is given.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Default)]
pub struct ClusterMetrics {
    pub members: Gauge,
    pub etcd_connected: Gauge,
    pub sharing: Gauge,
    pub targets_owned: Gauge,
    pub health_writes: Counter,
    pub load_writes: Counter,
}

impl ClusterMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cluster_members",
            "Live replicas with a lease in etcd, as this replica sees them",
            self.members.clone(),
        );
        registry.register(
            "cluster_etcd_connected",
            "1 while this replica's etcd session is up",
            self.etcd_connected.clone(),
        );
        registry.register(
            "cluster_sharing",
            "1 while health checking is shared; 0 while this replica probes every target",
            self.sharing.clone(),
        );
        registry.register(
            "cluster_targets_owned",
            "Health-check targets this replica owns (probes for the others)",
            self.targets_owned.clone(),
        );
        registry.register(
            "cluster_health_writes",
            "Changes of target standing this replica wrote to etcd",
            self.health_writes.clone(),
        );
        registry.register(
            "cluster_load_writes",
            "Values of this replica's measured load it wrote to etcd (at most one per load-report interval)",
            self.load_writes.clone(),
        );
    }
}
