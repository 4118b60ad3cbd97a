//! Watches a config path and says when its content may have changed: a file written, created,
//! deleted or renamed, or a symlink swapped — never an open or a read, so the server's own
//! reads cannot wake it. Whether the content really changed is for the caller to decide (it
//! hashes what it reads); this module only keeps the wake-ups few and never misses one.
//!
//! What is watched is a plan recomputed after every wake-up ([`ConfigWatch::rearm`]), because
//! the files behind a path move: editors rename a new file over the old one, and Kubernetes
//! mounts a ConfigMap as `lb.yaml -> ..data/lb.yaml` with `..data -> ..2026_11_21_...`, swapping
//! `..data` to a new timestamped folder on every update and deleting the old one. The plan
//! watches folders, never files: the folder of the path as given (for its name and for the
//! first hop of a relative symlink, such as `..data`), and the real folder the path resolves
//! to now (for edits made in place). Must not: read or parse the config.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::source::is_config_file_name;

/// How many symlinks in a row are followed when planning.
const MAX_LINK_HOPS: usize = 16;

/// What matters in one watched folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Interest {
    /// Entries whose change matters, by name.
    names: BTreeSet<OsString>,
    /// The folder is the config: its `*.yaml` files matter, and `..data`-style swaps.
    config_folder: bool,
}

/// Folders to watch (by their real path) and what matters in each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchPlan {
    folders: BTreeMap<PathBuf, Interest>,
}

impl WatchPlan {
    /// The plan for a config path, and the files it names (certificates), as the file system
    /// stands now.
    pub fn for_path(path: &Path, referenced: &[PathBuf]) -> WatchPlan {
        let mut plan = WatchPlan::default();
        if let Some(real) = plan.watch_path(path) {
            if real.is_dir() {
                for folder in super::dialect::collection_folders() {
                    let sub = real.join(folder);
                    if sub.is_dir() {
                        plan.folders.entry(sub).or_default().config_folder = true;
                    }
                }
                plan.folders.entry(real).or_default().config_folder = true;
            }
        }
        for file in referenced {
            plan.watch_path(file);
        }
        plan
    }

    /// Watches `path` and every hop of the symlinks it goes through; returns where it leads.
    fn watch_path(&mut self, path: &Path) -> Option<PathBuf> {
        let plan = self;
        let given = absolute(path);
        plan.watch_entry(&given);
        let mut current = given.clone();
        for _ in 0..MAX_LINK_HOPS {
            let Ok(target) = std::fs::read_link(&current) else {
                break;
            };
            let folder = parent_of(&current);
            if target.is_relative() {
                // `lb.yaml -> ..data/lb.yaml`: swapping `..data` changes what the path means.
                if let Some(Component::Normal(first)) = target.components().next() {
                    plan.watch_name(&folder, first.to_os_string());
                }
            }
            current = folder.join(target);
            plan.watch_entry(&current);
        }
        let real = std::fs::canonicalize(&given).ok()?;
        plan.watch_entry(&real);
        Some(real)
    }

    /// Watches the folder holding `entry` for changes to it (or, when that folder does not
    /// exist yet, the nearest existing ancestor for the creation of the missing one).
    fn watch_entry(&mut self, entry: &Path) {
        let mut name = entry.file_name().map(|n| n.to_os_string());
        let mut folder = parent_of(entry);
        while !folder.is_dir() {
            name = folder.file_name().map(|n| n.to_os_string());
            let Some(up) = folder.parent() else {
                return;
            };
            folder = up.to_path_buf();
        }
        if let Some(name) = name {
            self.watch_name(&folder, name);
        }
    }

    fn watch_name(&mut self, folder: &Path, name: OsString) {
        let real = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        self.folders.entry(real).or_default().names.insert(name);
    }

    /// Whether an event on `path` can change the config.
    fn concerns(&self, path: &Path) -> bool {
        if self.folders.contains_key(path) {
            return true;
        }
        let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
            return true;
        };
        let Some(interest) = self.folders.get(folder) else {
            return false;
        };
        let name_text = name.to_string_lossy();
        interest.names.contains(name)
            || (interest.config_folder
                && (is_config_file_name(path)
                    || name_text.starts_with("..")
                    || super::dialect::collection_folders().any(|f| f == name_text)))
    }

    /// The folders watched, for status and tests.
    pub fn folders(&self) -> impl Iterator<Item = &Path> {
        self.folders.keys().map(PathBuf::as_path)
    }
}

/// Whether an event kind can mean new content. Opens, reads and closes after reading cannot;
/// closing a file written to can (it is the end of a write).
fn can_change_content(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// Keeps the watch alive while held.
///
/// Lock order: notify runs the event handler on its own thread and waits for it, and notify's
/// `watch()` / `unwatch()` wait for that thread. So the handler takes only the plan lock, and
/// nothing ever calls into notify while holding the plan lock (a wait cycle between the two
/// once wedged the reloader for good). `rearm` and `set_referenced` block on the file system
/// and on notify: call them off the async runtime's workers.
pub struct ConfigWatch {
    path: PathBuf,
    /// Taken only around calls into notify; the event handler never takes it.
    watcher: Mutex<RecommendedWatcher>,
    /// Read by the event handler; replaced whole by `rearm`, never held across a notify call.
    plan: Arc<Mutex<Arc<WatchPlan>>>,
    changed: Arc<Notify>,
    /// Files the config names (certificates and keys), watched too.
    referenced: Mutex<Vec<PathBuf>>,
}

impl ConfigWatch {
    /// Starts watching `path` (which may not exist yet). `on_change` runs on notify's thread
    /// for every event that may have changed the config, before waiters are woken; it must be
    /// quick and must not block.
    pub fn start(
        path: &Path,
        on_change: impl Fn() + Send + 'static,
    ) -> notify::Result<ConfigWatch> {
        let plan = Arc::new(Mutex::new(Arc::new(WatchPlan::default())));
        let changed = Arc::new(Notify::new());
        let (event_plan, event_changed) = (plan.clone(), changed.clone());
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match event {
                Ok(event) => {
                    let plan = event_plan.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    event.need_rescan()
                        || (can_change_content(&event.kind)
                            && (event.paths.is_empty()
                                || event.paths.iter().any(|p| plan.concerns(p))))
                }
                // Lost events (a full queue): assume a change rather than miss one.
                Err(_) => true,
            };
            if relevant {
                on_change();
                event_changed.notify_one();
            }
        })?;
        let watch = ConfigWatch {
            path: path.to_path_buf(),
            watcher: Mutex::new(watcher),
            plan,
            changed,
            referenced: Mutex::new(Vec::new()),
        };
        watch.rearm();
        Ok(watch)
    }

    /// Waits for the next event that may have changed the config. Events that arrive while
    /// nobody waits are kept (as one), never lost.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Recomputes what to watch from the file system as it is now. Call after each wake-up,
    /// before reading. Blocking.
    pub fn rearm(&self) {
        let referenced = self
            .referenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let next = Arc::new(WatchPlan::for_path(&self.path, &referenced));
        // The watcher lock first, so that two rearms apply their plans in the order they
        // swapped them in.
        let mut watcher = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        // The new plan is in place before its folders are watched, so that the first event
        // from a newly watched folder is judged by it; the lock is released before notify is
        // called.
        let previous = std::mem::replace(
            &mut *self.plan.lock().unwrap_or_else(|e| e.into_inner()),
            next.clone(),
        );
        for gone in previous
            .folders
            .keys()
            .filter(|f| !next.folders.contains_key(*f))
        {
            let _ = watcher.unwatch(gone);
        }
        for folder in next.folders.keys() {
            // Re-adding is cheap and revives a watch whose folder was deleted and recreated.
            if let Err(error) = watcher.watch(folder, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %folder.display(), %error, "cannot watch a config folder");
            }
        }
    }

    /// Watches `files` (what the last load read besides the YAML) from now on, instead of the
    /// ones before. Blocking when they differ.
    pub fn set_referenced(&self, files: Vec<PathBuf>) {
        let mut referenced = self.referenced.lock().unwrap_or_else(|e| e.into_inner());
        if *referenced == files {
            return;
        }
        *referenced = files;
        drop(referenced);
        self.rearm();
    }

    /// The folders watched now.
    pub fn folders(&self) -> Vec<PathBuf> {
        let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner()).clone();
        plan.folders().map(Path::to_path_buf).collect()
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|dir| dir.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A ConfigMap-style mount: `lb.yaml -> ..data/lb.yaml`, `..data -> ..v1`.
    fn config_map(root: &Path) {
        std::fs::create_dir(root.join("..v1")).unwrap();
        std::fs::write(root.join("..v1/lb.yaml"), "a: 1\n").unwrap();
        symlink("..v1", root.join("..data")).unwrap();
        symlink("..data/lb.yaml", root.join("lb.yaml")).unwrap();
    }

    #[test]
    fn a_config_map_file_plan_covers_the_data_swap_and_the_real_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        config_map(&root);
        let plan = WatchPlan::for_path(&root.join("lb.yaml"), &[]);
        assert!(plan.concerns(&root.join("lb.yaml")));
        assert!(plan.concerns(&root.join("..data")), "the swap of ..data");
        assert!(plan.concerns(&root.join("..v1/lb.yaml")), "the real file");
        assert!(!plan.concerns(&root.join("other.txt")));
        assert!(!plan.concerns(&root.join("..v1/other.yaml")));
    }

    #[test]
    fn a_folder_plan_covers_its_yaml_files_and_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        config_map(&root);
        let plan = WatchPlan::for_path(&root, &[]);
        assert!(plan.concerns(&root.join("new.yaml")));
        assert!(plan.concerns(&root.join("..data")));
        assert!(!plan.concerns(&root.join(".new.yaml.swp")));
        assert!(!plan.concerns(&root.join("notes.txt")));
    }

    #[test]
    fn a_missing_folder_is_watched_from_its_nearest_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let plan = WatchPlan::for_path(&root.join("later/lb.yaml"), &[]);
        assert_eq!(plan.folders().collect::<Vec<_>>(), vec![root.as_path()]);
        assert!(plan.concerns(&root.join("later")));
    }

    #[test]
    fn files_the_config_names_are_watched_through_their_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let certs = root.join("certs");
        std::fs::create_dir(&certs).unwrap();
        config_map(&certs);
        let plan = WatchPlan::for_path(&root.join("lb.yaml"), &[certs.join("lb.yaml")]);
        assert!(plan.concerns(&certs.join("lb.yaml")));
        assert!(
            plan.concerns(&certs.join("..data")),
            "a cert-manager style swap"
        );
        assert!(plan.concerns(&certs.join("..v1/lb.yaml")));
        assert!(!plan.concerns(&certs.join("other.pem")));
    }

    #[test]
    fn collection_folders_of_a_config_folder_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert!(WatchPlan::for_path(&root, &[]).concerns(&root.join("urlMaps")));
        std::fs::create_dir(root.join("urlMaps")).unwrap();
        let plan = WatchPlan::for_path(&root, &[]);
        assert!(plan.concerns(&root.join("urlMaps/web-map.yaml")));
        assert!(!plan.concerns(&root.join("urlMaps/notes.txt")));
        assert!(!plan.concerns(&root.join("other")));
    }

    #[test]
    fn reads_are_not_changes() {
        use notify::event::{CreateKind, DataChange, ModifyKind};
        assert!(!can_change_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!can_change_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(can_change_content(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(can_change_content(&EventKind::Create(CreateKind::File)));
        assert!(can_change_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
    }
}
