//! The config dialects: each cloud's way of writing load balancers, behind one interface. A
//! dialect recognises its documents, reads them with their positions, checks them in its own
//! words (the cloud's field names, ranges and cross-resource rules), and lowers what it read
//! into the neutral model. The loader offers every document to the dialects in [`DIALECTS`]
//! order and merges what each lowers; a folder may mix dialects, and a name used by two of
//! them is an error naming both places.
//!
//! Adding a dialect: a folder under config/ with a type implementing [`Dialect`], and one line
//! in [`DIALECTS`]. Must not: know xDS.

use std::sync::Arc;

use crate::model::{Diagnostics, Model};

use super::certificates::ReferencedFile;
use super::inputs::TemplateInputs;
use super::yaml::Node;

/// A way of writing configs.
pub trait Dialect: Sync {
    /// Its name, for people.
    fn name(&self) -> &'static str;

    /// Whether `document` (one YAML document of a file) is written in this dialect.
    fn detects(&self, document: &Node) -> bool;

    /// Subfolders of a config folder whose files hold one resource each (`urlMaps/`).
    fn collection_folders(&self) -> &'static [&'static str] {
        &[]
    }

    /// A reader for one load of a config, with the values given from outside the files.
    fn reader(&self, inputs: &TemplateInputs) -> Box<dyn DialectReader>;
}

/// Reads the documents of one dialect during one load.
pub trait DialectReader {
    /// Reads one document of `file`, saying what is wrong with it in the dialect's words.
    fn read(&mut self, document: &Node, file: &Arc<str>, diagnostics: &mut Diagnostics);

    /// Checks everything read as a whole (references, rules that span resources) and lowers
    /// it into the model.
    fn finish(self: Box<Self>, diagnostics: &mut Diagnostics) -> Lowered;
}

/// What a dialect lowered.
#[derive(Default)]
pub struct Lowered {
    pub model: Model,
    /// Files read besides the YAML (certificates and keys).
    pub referenced: Vec<ReferencedFile>,
}

/// The dialects, in the order they are asked whether a document is theirs; the GCP dialect,
/// which takes any document, last.
pub static DIALECTS: &[&dyn Dialect] = &[&super::aws::Aws, &super::gcp::Gcp];

/// The dialect of `document`.
pub fn dialect_of(document: &Node) -> usize {
    DIALECTS
        .iter()
        .position(|dialect| dialect.detects(document))
        .unwrap_or(DIALECTS.len() - 1)
}

/// Every dialect's collection folders.
pub fn collection_folders() -> impl Iterator<Item = &'static str> {
    DIALECTS
        .iter()
        .flat_map(|dialect| dialect.collection_folders().iter().copied())
}
