//! Diagnostics: what is wrong (or suspicious) in a config, and exactly where.
//!
//! Every diagnostic names the file, the line, the resource path
//! (`backendServices[web].backends[1].capacityScaler`) and says what is allowed. Errors reject
//! a whole config; warnings are served and reported; notes say how Switchyard serves something
//! the cloud would have refused or done differently, and count as neither.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A place in a config file. Lines are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
}

impl Loc {
    pub fn new(file: impl Into<Arc<str>>, line: usize) -> Self {
        Loc {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Loc {
    /// `file:line`; a place with no line (0: the command line, a folder) is its name alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    #[serde(flatten)]
    pub loc: Loc,
    /// Resource path, e.g. `backendServices[web].backends[1].capacityScaler`.
    pub path: String,
    pub message: String,
    /// For a clash (a name, or an address and port, used twice): where the other use is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clashes_with: Option<Loc>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        write!(
            f,
            "{severity}: {}: {}: {}",
            self.loc, self.path, self.message
        )
    }
}

/// An ordered collection of diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    /// Errors and warnings.
    pub items: Vec<Diagnostic>,
    /// Notes, kept apart: a config with notes only has no diagnostics to fix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, loc: &Loc, path: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, loc, path.into(), message.into());
    }

    pub fn warning(&mut self, loc: &Loc, path: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, loc, path.into(), message.into());
    }

    pub fn note(&mut self, loc: &Loc, path: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Diagnostic {
            severity: Severity::Note,
            loc: loc.clone(),
            path: path.into(),
            message: message.into(),
            clashes_with: None,
        });
    }

    /// An error for something used at `loc` that is already used at `other` (a name, an
    /// address and port): kept apart so that files that clash as a whole can be told.
    pub fn clash(
        &mut self,
        loc: &Loc,
        other: &Loc,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            severity: Severity::Error,
            loc: loc.clone(),
            path: path.into(),
            message: message.into(),
            clashes_with: Some(other.clone()),
        });
    }

    fn push(&mut self, severity: Severity, loc: &Loc, path: String, message: String) {
        self.items.push(Diagnostic {
            severity,
            loc: loc.clone(),
            path,
            message,
            clashes_with: None,
        });
    }

    pub fn notes(&self) -> impl Iterator<Item = &Diagnostic> {
        self.notes.iter()
    }

    /// Clashes between two different files, by pair of files (the later file first), each with
    /// the resource paths that clash: what a folder of separate configs looks like.
    pub fn file_clashes(&self) -> BTreeMap<(Arc<str>, Arc<str>), Vec<&Diagnostic>> {
        let mut pairs: BTreeMap<(Arc<str>, Arc<str>), Vec<&Diagnostic>> = BTreeMap::new();
        for item in self.errors() {
            if let Some(other) = &item.clashes_with {
                if other.file != item.loc.file {
                    let pair = (item.loc.file.clone(), other.file.clone());
                    pairs.entry(pair).or_default().push(item);
                }
            }
        }
        pairs
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
        self.notes.extend(other.notes);
    }

    /// Sorts by file, line and path so output is stable whatever order checks ran in.
    pub fn sort(&mut self) {
        for list in [&mut self.items, &mut self.notes] {
            list.sort_by(|a, b| (&a.loc, &a.path, a.severity).cmp(&(&b.loc, &b.path, b.severity)));
            list.dedup();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in self.items.iter().chain(&self.notes) {
            writeln!(f, "{item}")?;
        }
        Ok(())
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|candidate| {
            (
                edit_distance(&lower, &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(3) / 3).max(1))
        .min()
        .map(|(_, candidate)| candidate)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment),
/// since swapped letters are the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos_only() {
        let known = ["capacityScaler", "balancingMode", "group"];
        assert_eq!(suggest("capacityScalr", &known), Some("capacityScaler"));
        assert_eq!(suggest("groop", &known), Some("group"));
        assert_eq!(suggest("zzz", &known), None);
        assert_eq!(suggest("bleu", &["blue", "green"]), Some("blue"));
    }
}
