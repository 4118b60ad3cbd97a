//! One timer per cluster with outlier detection: runs its detector's interval, and has the
//! applier rebuild the cluster's balancer whenever an endpoint was ejected (woken at once by
//! the detector) or returned.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Detector;
use crate::proxy::config::{Applier, ProxyConfig};

/// Keeps a timer running for each cluster's detector until `shutdown`; a replaced or gone
/// detector's timer stops.
pub async fn run(
    applier: Arc<Applier>,
    mut config: watch::Receiver<Arc<ProxyConfig>>,
    shutdown: CancellationToken,
) {
    let mut running: BTreeMap<String, (Weak<Detector>, CancellationToken)> = BTreeMap::new();
    loop {
        let wanted: BTreeMap<String, Arc<Detector>> = config
            .borrow_and_update()
            .clusters
            .iter()
            .filter_map(|(name, entry)| Some((name.clone(), entry.outliers.clone()?)))
            .collect();
        running.retain(|name, (detector, stop)| {
            let keep = wanted
                .get(name)
                .is_some_and(|d| std::ptr::eq(Arc::as_ptr(d), detector.as_ptr()));
            if !keep {
                stop.cancel();
            }
            keep
        });
        for (name, detector) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let stop = shutdown.child_token();
            let weak = Arc::downgrade(&detector);
            tokio::spawn(tick(
                name.clone(),
                weak.clone(),
                applier.clone(),
                stop.clone(),
            ));
            running.insert(name, (weak, stop));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = config.changed() => if changed.is_err() { return },
        }
    }
}

/// Cluster `name`'s timer: every interval, and whenever an endpoint is ejected.
async fn tick(
    name: String,
    detector: Weak<Detector>,
    applier: Arc<Applier>,
    stop: CancellationToken,
) {
    // Envoy refuses an interval of 0; one must not spin this task.
    let Some(interval) = detector
        .upgrade()
        .map(|d| d.settings.interval.max(std::time::Duration::from_millis(1)))
    else {
        return;
    };
    let mut next = later(tokio::time::Instant::now(), interval);
    loop {
        let Some(live) = detector.upgrade() else {
            return;
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {
                live.on_interval(std::time::Instant::now());
                next = later(next, interval);
            }
            _ = live.wake.notified() => {}
        }
        if live.take_changed() {
            applier.republish_outliers(&name);
        }
    }
}

/// `interval` after `at`; an interval past what the clock can hold (a config may name
/// thousands of years) is a wait of 30 years.
fn later(at: tokio::time::Instant, interval: std::time::Duration) -> tokio::time::Instant {
    at.checked_add(interval)
        .or_else(|| at.checked_add(std::time::Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(at)
}
