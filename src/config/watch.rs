//! Watches a config path and reports, debounced, that it may have changed. Watches the parent
//! folder of a file, because editors replace files by renaming a new one over them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use tokio::sync::mpsc;

/// How long the file system must stay quiet before a change is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Keeps the watch alive while held.
pub struct ConfigWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher>,
}

/// Starts watching `path`; a unit is sent on `changes` after each burst of relevant events.
pub fn watch(path: &Path, changes: mpsc::Sender<()>) -> notify::Result<ConfigWatch> {
    let target = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let is_dir = target.is_dir();
    let watched: PathBuf = if is_dir {
        target.clone()
    } else {
        target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let relevant = events.iter().any(|event| {
            if is_dir {
                matches!(
                    event.path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
            } else {
                event.path == target || event.path.file_name() == target.file_name()
            }
        });
        if relevant {
            let _ = changes.try_send(());
        }
    })?;
    let mode = if is_dir {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    debouncer.watcher().watch(&watched, mode)?;
    Ok(ConfigWatch {
        _debouncer: debouncer,
    })
}
