//! Pushed configs in etcd: reading the newest, the kept history, one by its etcd revision, and
//! writing a new one. A push is one transaction: put the next history key (only if no other
//! push took that number meanwhile, else look again) and delete what falls out of the kept
//! history — so the config lands whole, in one etcd revision, or not at all. The only file of
//! `pushed` that talks to etcd besides the serve-side follower. Must not: validate.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp};

use crate::cluster::etcd::{connect_options, SessionError};
use crate::cluster::EtcdOptions;

use super::keys::{expired_range, history_key, history_prefix, sequence_of};
use super::record::Record;

/// How often an idle connection is pinged (and the pings' timeout, half of it).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// One kept push.
#[derive(Clone, Debug)]
pub struct Entry {
    pub sequence: u64,
    /// The etcd revision that wrote it.
    pub revision: i64,
    /// The config, or why the value is not one.
    pub record: Result<Record, String>,
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Written as a new revision.
    Written { revision: i64 },
    /// The newest push, at `revision`, holds the same files: nothing written.
    Unchanged { revision: i64 },
}

/// A connection to the etcd that keeps the configs.
pub struct Store {
    client: Client,
    prefix: String,
}

impl Store {
    pub async fn connect(options: &EtcdOptions) -> Result<Store, SessionError> {
        // A watch of the configs is idle for long stretches, and etcd answers pings on an idle
        // connection more often than its --grpc-keepalive-min-time (5 s by default) with
        // GOAWAY: ping less often than that.
        let connect = connect_options(options)?.with_keep_alive(KEEP_ALIVE, KEEP_ALIVE / 2);
        let client = Client::connect(&options.endpoints, Some(connect)).await?;
        Ok(Store {
            client,
            prefix: options.prefix.clone(),
        })
    }

    /// The client, for a watch.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The kept pushes' keys as of one etcd revision (returned too), oldest first.
    async fn listing(&mut self) -> Result<(i64, Vec<(u64, i64)>), etcd_client::Error> {
        let options = GetOptions::new().with_prefix().with_keys_only();
        let answer = self
            .client
            .get(history_prefix(&self.prefix), Some(options))
            .await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        let mut keys: Vec<(u64, i64)> = answer
            .kvs()
            .iter()
            .filter_map(|kv| {
                let sequence = sequence_of(&self.prefix, kv.key_str().ok()?)?;
                Some((sequence, kv.mod_revision()))
            })
            .collect();
        keys.sort_unstable();
        Ok((revision, keys))
    }

    /// Push number `sequence` as etcd held it at `revision` (None: gone since).
    async fn entry(
        &mut self,
        sequence: u64,
        revision: i64,
    ) -> Result<Option<Entry>, etcd_client::Error> {
        let options = GetOptions::new().with_revision(revision);
        let answer = self
            .client
            .get(history_key(&self.prefix, sequence), Some(options))
            .await?;
        Ok(answer.kvs().first().map(|kv| entry_of(sequence, kv)))
    }

    /// The newest push and the etcd revision it was read at (None: nothing pushed).
    pub async fn latest(&mut self) -> Result<(i64, Option<Entry>), etcd_client::Error> {
        let (revision, keys) = self.listing().await?;
        let Some(&(sequence, _)) = keys.last() else {
            return Ok((revision, None));
        };
        Ok((revision, self.entry(sequence, revision).await?))
    }

    /// The kept pushes, newest first, at most `limit`.
    pub async fn history(&mut self, limit: usize) -> Result<Vec<Entry>, etcd_client::Error> {
        let (revision, keys) = self.listing().await?;
        let mut entries = Vec::new();
        for &(sequence, _) in keys.iter().rev().take(limit) {
            entries.extend(self.entry(sequence, revision).await?);
        }
        Ok(entries)
    }

    /// The kept push written by etcd revision `revision`, or the revisions kept.
    pub async fn at_revision(
        &mut self,
        revision: i64,
    ) -> Result<Result<Entry, Vec<i64>>, etcd_client::Error> {
        let (now, keys) = self.listing().await?;
        match keys.iter().find(|(_, written)| *written == revision) {
            Some(&(sequence, _)) => match self.entry(sequence, now).await? {
                Some(entry) => Ok(Ok(entry)),
                None => Ok(Err(Vec::new())),
            },
            None => Ok(Err(keys.iter().rev().map(|(_, r)| *r).collect())),
        }
    }

    /// Writes `record` as the newest push, unless the newest holds the same files.
    pub async fn push(&mut self, record: &Record) -> Result<Pushed, etcd_client::Error> {
        let value = record.encode();
        loop {
            let (_, latest) = self.latest().await?;
            if let Some(latest) = &latest {
                if latest
                    .record
                    .as_ref()
                    .is_ok_and(|r| r.digest == record.digest)
                {
                    return Ok(Pushed::Unchanged {
                        revision: latest.revision,
                    });
                }
            }
            let sequence = latest.map_or(1, |l| l.sequence + 1);
            let key = history_key(&self.prefix, sequence);
            let mut ops = vec![TxnOp::put(key.clone(), value.clone(), None)];
            if let Some((start, end)) = expired_range(&self.prefix, sequence) {
                ops.push(TxnOp::delete(
                    start,
                    Some(DeleteOptions::new().with_range(end)),
                ));
            }
            // Only if no other push took this number since the read above.
            let txn = Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                .and_then(ops);
            let answer = self.client.txn(txn).await?;
            if answer.succeeded() {
                let revision = answer.header().map_or(0, |h| h.revision());
                return Ok(Pushed::Written { revision });
            }
        }
    }
}

/// The entry of a key-value read from the history.
pub fn entry_of(sequence: u64, kv: &KeyValue) -> Entry {
    Entry {
        sequence,
        revision: kv.mod_revision(),
        record: Record::decode(kv.value()),
    }
}
