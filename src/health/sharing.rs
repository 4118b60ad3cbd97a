//! The seam through which replicas share health checking: a checker given a [`Sharing`] asks
//! it, before each probe, whether this replica probes the target now, and tells it when a
//! local probe changed a target's standing; standings decided elsewhere come back in through
//! [`super::checker::Checker::set_shared_standing`]. A lone replica has no sharing and probes
//! everything. Must not: know where the shared state lives (etcd is the cluster module's).

use super::state::Standing;
use super::targets::TargetKey;

pub trait Sharing: Send + Sync {
    /// Whether this replica probes `key` now (it owns it, or it cannot share at the moment).
    fn probes(&self, key: &TargetKey) -> bool;
    /// A local probe changed `key`'s standing to `standing`.
    fn changed(&self, key: &TargetKey, standing: Standing);
}
