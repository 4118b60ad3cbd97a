//! The config status the admin endpoint shows at `/config_status`: what is served, what the
//! latest read of the files made of them, what is held back and what is draining. Plain data,
//! written by the reload loop and the publisher, read by the admin endpoint.

use serde::Serialize;

use crate::model::{Diagnostics, InputValue};

use super::guard::Removal;

/// How many draining endpoints the status lists (it counts them all).
pub const DRAINING_SHOWN: usize = 100;

/// What became of the latest content read from the files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadOutcome {
    /// Nothing read yet.
    #[default]
    None,
    Accepted,
    Rejected,
    /// Valid, but held back by the removal guard.
    PendingRemoval,
}

/// An edit held back by the removal guard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingRemovalStatus {
    #[serde(flatten)]
    pub removal: Removal,
    /// The grace period, and the Unix time (seconds) at which it ends if the files stay as
    /// they are.
    pub grace_seconds: u64,
    pub applies_at_unix: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ConfigStatus {
    /// The config path being served.
    pub config: String,
    /// Whether a config is being served (`/ready` answers 200 once it is).
    pub serving: bool,
    /// Snapshot version being served; empty before the first valid config.
    pub serving_version: String,
    /// What became of the latest content read.
    pub last_load: LoadOutcome,
    /// Whether the latest content was accepted and is served.
    pub last_load_accepted: bool,
    /// Diagnostics of the latest content (errors when rejected, warnings either way).
    pub diagnostics: Diagnostics,
    /// Times the files were read, after a change event, a signal or a timer.
    pub reads: u64,
    /// Reads whose content was new and so was parsed and validated.
    pub loads: u64,
    /// Reads skipped because the content was byte for byte what was last loaded.
    pub unchanged_reads: u64,
    pub accepted_loads: u64,
    pub rejected_loads: u64,
    /// Time the latest load took, from reading the files to publishing the snapshot.
    pub last_load_milliseconds: u64,
    /// Bytes of config text in the latest load.
    pub last_load_bytes: u64,
    /// Fingerprint (content hash) of the files as last loaded.
    pub files_fingerprint: String,
    /// An edit held back because it would withdraw most of what is served.
    pub pending_removal: Option<PendingRemovalStatus>,
    /// Endpoints removed by an edit and still draining: `service address (Ns left)`, the
    /// first [`DRAINING_SHOWN`] of them by service and address.
    pub draining: Vec<String>,
    /// How many endpoints are draining in all.
    pub draining_count: usize,
    /// The template parameters the served config was read with, and where each value came
    /// from (`default`, `--parameter Env`, a parameters file's line); secret ones masked.
    pub inputs: Vec<InputValue>,
}

impl ConfigStatus {
    /// Records what became of the latest content read, its diagnostics, and the edit held
    /// back if that is what became of it.
    pub fn record_load(
        &mut self,
        outcome: LoadOutcome,
        diagnostics: Diagnostics,
        pending_removal: Option<PendingRemovalStatus>,
    ) {
        self.last_load = outcome;
        self.last_load_accepted = outcome == LoadOutcome::Accepted;
        match outcome {
            LoadOutcome::Accepted => self.accepted_loads += 1,
            LoadOutcome::Rejected => self.rejected_loads += 1,
            LoadOutcome::None | LoadOutcome::PendingRemoval => {}
        }
        self.diagnostics = diagnostics;
        self.pending_removal = pending_removal;
    }
}
