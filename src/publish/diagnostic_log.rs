//! What the log says about configs, said once: a warning or note is logged when it first
//! appears (not again for each later version or reload that still has it), and a rejected
//! config's errors are logged once, however often the same files are read again.
//!
//! Must not: decide anything about the config; the admin's /config_status always has the
//! whole list.

use std::collections::BTreeSet;

use crate::model::Diagnostics;

#[derive(Default)]
pub struct DiagnosticLog {
    /// The warnings and notes of the config served last, as logged.
    logged: BTreeSet<String>,
    /// The fingerprint of the files rejected last, whose errors are already logged.
    rejected: Option<String>,
}

impl DiagnosticLog {
    /// Logs the warnings and notes of an accepted config that the previous one did not have.
    pub fn accepted(&mut self, diagnostics: &Diagnostics) {
        let mut now = BTreeSet::new();
        for warning in diagnostics.warnings() {
            let text = warning.to_string();
            if !self.logged.contains(&text) {
                tracing::warn!("{text}");
            }
            now.insert(text);
        }
        for note in &diagnostics.notes {
            let text = note.to_string();
            if !self.logged.contains(&text) {
                tracing::info!("{text}");
            }
            now.insert(text);
        }
        self.logged = now;
        self.rejected = None;
    }

    /// Logs a rejected config's errors unless the same files were rejected last; returns
    /// whether it logged them.
    pub fn rejected(&mut self, fingerprint: &str, diagnostics: &Diagnostics) -> bool {
        if self.rejected.as_deref() == Some(fingerprint) {
            return false;
        }
        for diagnostic in diagnostics.errors() {
            tracing::error!("{diagnostic}");
        }
        self.rejected = Some(fingerprint.to_string());
        true
    }
}
