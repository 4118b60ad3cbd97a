//! Config kept in etcd (optional; files stay the default): `switchyard push` validates a
//! config as `validate` does and, only when it is valid, writes all its files as one value in
//! one etcd revision; `serve --config-from-etcd` serves the newest push and follows new ones
//! through the same reload path as a file edit; `history` and `rollback` read and re-push the
//! kept pushes.
//!
//! `record` is a push's encoding, `keys` where pushes live, `latest` the newest push as serve
//! knows it (pure); `store` and `follow` talk to etcd (the `etcd` feature), `commands` runs
//! push, history and rollback. Must not: translate or publish (the reloader does).

pub mod cli;
#[cfg(feature = "etcd")]
pub mod commands;
#[cfg(feature = "etcd")]
pub mod follow;
pub mod keys;
pub mod latest;
pub mod record;
#[cfg(feature = "etcd")]
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::latest::LatestConfig;
use super::EtcdOptions;

/// How long `serve` waits for etcd's first answer before its first load (which, without one,
/// serves nothing and says why).
const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Starts following the config pushed to etcd until `shutdown`, and waits (a few seconds at
/// most) for etcd's first answer, so that the first load is of the newest push.
pub async fn follow_from_start(
    etcd: &EtcdOptions,
    shutdown: &CancellationToken,
) -> Arc<LatestConfig> {
    let latest = Arc::new(LatestConfig::new(&etcd.endpoints, &etcd.prefix));
    #[cfg(feature = "etcd")]
    tokio::spawn(follow::run(etcd.clone(), latest.clone(), shutdown.clone()));
    // Options are refused without the feature (cluster/cli.rs), so nothing reaches here.
    #[cfg(not(feature = "etcd"))]
    let _ = shutdown;
    let answered = async {
        while !latest.answered() {
            latest.changed().await;
        }
    };
    if tokio::time::timeout(FIRST_ANSWER_WAIT, answered)
        .await
        .is_err()
    {
        tracing::warn!(
            "etcd has not answered within {}s: serving nothing until the config is read from it",
            FIRST_ANSWER_WAIT.as_secs()
        );
    }
    latest
}
