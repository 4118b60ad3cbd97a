//! Reading configs: YAML files (one file or a directory of them), the cloud dialects, cloud
//! style references, and file watching. Knows YAML; knows nothing of xDS.

pub mod access;
pub mod aws;
pub mod certificates;
pub mod cipher_suites;
pub mod dialect;
pub mod gcp;
pub mod inputs;
pub mod merge;
pub mod reader;
pub mod references;
pub mod source;
pub mod watch;
pub mod yaml;

use std::path::Path;
use std::sync::Arc;

use crate::model::{Diagnostics, Loc, Model};

pub use crate::model::diagnostics::suggest;
pub use inputs::TemplateInputs;
pub use source::{config_files, ReadLimits, Sources};
pub use yaml::YamlLimits;

/// A config as read: the model and everything found wrong with it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub model: Model,
    pub diagnostics: Diagnostics,
    /// Files read besides the YAML (certificates and keys), with what they held.
    pub referenced: Vec<certificates::ReferencedFile>,
}

impl Loaded {
    /// The model, if nothing is an error.
    pub fn accepted(&self) -> Option<&Model> {
        (!self.diagnostics.has_errors()).then_some(&self.model)
    }
}

/// Reads a file, or every `*.yaml`/`*.yml` file of a directory (sorted), and validates the
/// whole, with the default limits.
pub fn load(path: &Path) -> Loaded {
    load_with(path, &ReadLimits::default())
}

/// As [`load`], within `limits`.
pub fn load_with(path: &Path, limits: &ReadLimits) -> Loaded {
    load_sources(&source::read_sources(path, limits), limits)
}

/// As [`load_with`], with values from outside the files (template parameters and the like).
pub fn load_with_inputs(path: &Path, limits: &ReadLimits, inputs: &TemplateInputs) -> Loaded {
    load_sources_with(&source::read_sources(path, limits), limits, inputs)
}

/// Parses and validates config files already read.
pub fn load_sources(sources: &Sources, limits: &ReadLimits) -> Loaded {
    load_sources_with(sources, limits, &TemplateInputs::default())
}

/// As [`load_sources`], with values from outside the files.
pub fn load_sources_with(
    sources: &Sources,
    limits: &ReadLimits,
    inputs: &TemplateInputs,
) -> Loaded {
    let mut loaded = Loaded::default();
    let mut readers: Vec<Box<dyn dialect::DialectReader>> = dialect::DIALECTS
        .iter()
        .map(|dialect| dialect.reader(inputs))
        .collect();
    if let Some(error) = &sources.listing_error {
        loaded.diagnostics.error(
            &Loc::new(sources.root.clone(), 0),
            "",
            format!("cannot read the config: {error}"),
        );
    }
    for file in &sources.files {
        match &file.text {
            Ok(text) => read_text(
                text,
                &file.display,
                &limits.yaml,
                &mut readers,
                &mut loaded.diagnostics,
            ),
            Err(problem) => loaded.diagnostics.error(
                &Loc::new(file.display.clone(), problem.line),
                "",
                problem.message.clone(),
            ),
        }
    }
    for reader in readers {
        let lowered = reader.finish(&mut loaded.diagnostics);
        merge::merge(&mut loaded.model, lowered.model, &mut loaded.diagnostics);
        loaded.referenced.extend(lowered.referenced);
    }
    access::check(&loaded.model, &mut loaded.diagnostics);
    loaded.diagnostics.sort();
    loaded
}

/// Reads config text (one or more YAML documents) as if it came from `file`.
pub fn load_str(text: &str, file: &str) -> Loaded {
    load_sources(
        &source::sources_from_text(text, file),
        &ReadLimits::default(),
    )
}

/// Why a file with nothing in it is refused: it is what a truncated or half-written file
/// looks like, and serving it would withdraw everything.
const EMPTY_FILE: &str = "the file holds no YAML document (it is empty, or only whitespace and comments); a truncated or half-written file looks like this, so it is refused rather than served as \"nothing\" (to serve nothing on purpose, write `{}`)";

fn read_text(
    text: &str,
    file: &Arc<str>,
    limits: &YamlLimits,
    readers: &mut [Box<dyn dialect::DialectReader>],
    diagnostics: &mut Diagnostics,
) {
    match yaml::parse_with_limits(text, limits) {
        Ok(documents) if documents.is_empty() => {
            diagnostics.error(&Loc::new(file.clone(), 1), "", EMPTY_FILE)
        }
        Ok(documents) => {
            for document in &documents {
                readers[dialect::dialect_of(document)].read(document, file, diagnostics);
            }
        }
        Err(error) if error.over_limit => {
            diagnostics.error(&Loc::new(file.clone(), error.line), "", error.message)
        }
        Err(error) => diagnostics.error(
            &Loc::new(file.clone(), error.line),
            "",
            format!("YAML syntax error: {}", error.message),
        ),
    }
}
