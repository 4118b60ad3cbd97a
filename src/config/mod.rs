//! Reading configs: YAML files (one file or a directory of them), the cloud dialects, cloud
//! style references, and file watching. Knows YAML; knows nothing of xDS.

pub mod gcp;
pub mod reader;
pub mod references;
pub mod watch;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{self, Diagnostics, Loc, Model};

pub use reader::suggest;

/// A config as read: the model and everything found wrong with it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub model: Model,
    pub diagnostics: Diagnostics,
}

impl Loaded {
    /// The model, if nothing is an error.
    pub fn accepted(&self) -> Option<&Model> {
        (!self.diagnostics.has_errors()).then_some(&self.model)
    }
}

/// Reads a file, or every `*.yaml`/`*.yml` file of a directory (sorted), and validates the whole.
pub fn load(path: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    match config_files(path) {
        Ok(files) => {
            for file in files {
                let display: Arc<str> = file.display().to_string().into();
                match std::fs::read_to_string(&file) {
                    Ok(text) => read_text(&text, &display, &mut loaded),
                    Err(error) => loaded.diagnostics.error(
                        &Loc::new(display, 0),
                        "",
                        format!("cannot read the file: {error}"),
                    ),
                }
            }
        }
        Err(error) => loaded.diagnostics.error(
            &Loc::new(path.display().to_string(), 0),
            "",
            format!("cannot read the config: {error}"),
        ),
    }
    model::validate::check(&loaded.model, &mut loaded.diagnostics);
    loaded.diagnostics.sort();
    loaded
}

/// Reads config text (one or more YAML documents) as if it came from `file`.
pub fn load_str(text: &str, file: &str) -> Loaded {
    let mut loaded = Loaded::default();
    read_text(text, &Arc::from(file), &mut loaded);
    model::validate::check(&loaded.model, &mut loaded.diagnostics);
    loaded.diagnostics.sort();
    loaded
}

fn read_text(text: &str, file: &Arc<str>, loaded: &mut Loaded) {
    match yaml::parse(text) {
        Ok(documents) => {
            for document in &documents {
                gcp::read_document(document, file, &mut loaded.model, &mut loaded.diagnostics);
            }
        }
        Err(error) => loaded.diagnostics.error(
            &Loc::new(file.clone(), error.line),
            "",
            format!("YAML syntax error: {}", error.message),
        ),
    }
}

/// The files a config path stands for.
pub fn config_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    Ok(files)
}
