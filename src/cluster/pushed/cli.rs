//! The flags `push`, `history` and `rollback` take to reach etcd: serve's `--etcd` flags (the
//! URLs, the prefix, TLS and user) and the request limit of the etcd written to.

use clap::Args;

use super::record::ETCD_DEFAULT_MAX_REQUEST_BYTES;
use crate::cluster::cli::EtcdArgs;

/// Where the config is kept.
#[derive(Args, Debug, Clone)]
pub struct ConfigStoreArgs {
    #[command(flatten)]
    pub etcd: Box<EtcdArgs>,
    /// etcd's --max-request-bytes (1.5 MiB by default): a config larger than one request can
    /// carry is refused before anything is written.
    #[arg(long, default_value_t = ETCD_DEFAULT_MAX_REQUEST_BYTES, value_name = "BYTES", help_heading = "Replicas (etcd)")]
    pub etcd_max_request_bytes: usize,
}

impl ConfigStoreArgs {
    /// The etcd options (`--etcd` is required by the commands that take these flags).
    pub fn options(&self) -> anyhow::Result<crate::cluster::EtcdOptions> {
        self.etcd.options()?.ok_or_else(|| {
            anyhow::anyhow!("--etcd URL is required: the etcd that keeps the config")
        })
    }
}
