//! What `switchyard validate` prints: every diagnostic, except that files of a folder that
//! clash with each other as wholes (the same names, the same address and port: a folder of
//! separate configs given as one) are summed up as one line per pair of files with a hint,
//! instead of one error per clash; then the counts of errors, warnings and notes.
//! `--format json` gives the same as one JSON object for CI pipelines.
//! Must not: load or check anything (it formats what the loader found).

use std::fmt::Write;
use std::path::Path;

use crate::model::{Diagnostic, Diagnostics};

/// How many clashing paths a pair's line lists before "and N more".
const PATHS_SHOWN: usize = 6;

/// The report for `diagnostics` found in `path`.
pub fn report(path: &Path, diagnostics: &Diagnostics) -> String {
    let mut clashes = diagnostics.file_clashes();
    // A lone clash between two files is a mistake in one config, best shown as it is; files
    // that clash several times, or several pairs of files, look like separate configs.
    if clashes.len() == 1 && clashes.values().all(|items| items.len() == 1) {
        clashes.clear();
    }
    let summed_up = |item: &Diagnostic| {
        item.clashes_with
            .as_ref()
            .is_some_and(|other| clashes.contains_key(&(item.loc.file.clone(), other.file.clone())))
    };
    let mut text = String::new();
    for item in diagnostics.items.iter().filter(|item| !summed_up(item)) {
        let _ = writeln!(text, "{item}");
    }
    for ((file, other), items) in &clashes {
        let mut paths: Vec<&str> = items.iter().map(|item| item.path.as_str()).collect();
        paths.dedup();
        let more = paths.len().saturating_sub(PATHS_SHOWN);
        paths.truncate(PATHS_SHOWN);
        let _ = write!(
            text,
            "error: {file} clashes with {other} ({} name(s) or address:port pair(s) used by \
             both: {}",
            items.len(),
            paths.join(", ")
        );
        if more > 0 {
            let _ = write!(text, ", and {more} more");
        }
        let _ = writeln!(text, ")");
    }
    if !clashes.is_empty() {
        let _ = writeln!(
            text,
            "hint: the files of a folder are merged into one config; if {} holds separate \
             configs, validate each file on its own (switchyard validate FILE)",
            path.display()
        );
    }
    for note in diagnostics.notes() {
        let _ = writeln!(text, "{note}");
    }
    let _ = writeln!(
        text,
        "{}: {} error(s), {} warning(s), {} note(s)",
        path.display(),
        diagnostics.errors().count(),
        diagnostics.warnings().count(),
        diagnostics.notes().count()
    );
    text
}

/// The report as JSON: whether the config is valid, the counts, and every diagnostic (severity,
/// file, line, path, message, and for a clash where the other use is).
pub fn json_report(path: &Path, diagnostics: &Diagnostics) -> serde_json::Value {
    let errors = diagnostics.errors().count();
    let all: Vec<&Diagnostic> = diagnostics.items.iter().chain(&diagnostics.notes).collect();
    serde_json::json!({
        "path": path.display().to_string(),
        "valid": errors == 0,
        "errors": errors,
        "warnings": diagnostics.warnings().count(),
        "notes": diagnostics.notes.len(),
        "diagnostics": all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Loc;

    #[test]
    fn clashes_between_files_are_summed_up_per_pair() {
        let mut diagnostics = Diagnostics::default();
        let (a, b) = (Loc::new("dir/a.yaml", 3), Loc::new("dir/b.yaml", 7));
        diagnostics.clash(
            &b,
            &a,
            "backendServices[web]",
            "the name `web` is already used",
        );
        diagnostics.clash(&b, &a, "urlMaps[map]", "the name `map` is already used");
        diagnostics.error(&a, "backendServices[web].timeoutSec", "out of range");
        diagnostics.note(&a, "backendServices[web]", "served unchecked");
        let text = report(Path::new("dir"), &diagnostics);
        assert!(text.contains("error: dir/a.yaml:3: backendServices[web].timeoutSec: out of range"));
        assert!(text.contains(
            "error: dir/b.yaml clashes with dir/a.yaml (2 name(s) or address:port pair(s) \
             used by both: backendServices[web], urlMaps[map])"
        ));
        assert!(!text.contains("the name `web` is already used"), "{text}");
        assert!(text.contains("hint: the files of a folder are merged"));
        assert!(
            text.ends_with("dir: 3 error(s), 0 warning(s), 1 note(s)\n"),
            "{text}"
        );
    }

    #[test]
    fn a_lone_clash_between_two_files_is_shown_as_it_is() {
        let mut diagnostics = Diagnostics::default();
        let (a, b) = (Loc::new("dir/a.yaml", 3), Loc::new("dir/b.yaml", 7));
        diagnostics.clash(
            &b,
            &a,
            "backendServices[web]",
            "the name `web` is already used",
        );
        let text = report(Path::new("dir"), &diagnostics);
        assert!(text.contains("error: dir/b.yaml:7: backendServices[web]: the name `web`"));
        assert!(!text.contains("hint"), "{text}");
    }

    #[test]
    fn a_clash_inside_one_file_is_shown_as_it_is() {
        let mut diagnostics = Diagnostics::default();
        let (first, second) = (Loc::new("a.yaml", 3), Loc::new("a.yaml", 9));
        diagnostics.clash(
            &second,
            &first,
            "backendServices[web]",
            "the name `web` is used",
        );
        let text = report(Path::new("a.yaml"), &diagnostics);
        assert!(text.contains("error: a.yaml:9: backendServices[web]: the name `web` is used"));
        assert!(!text.contains("hint"));
    }
}
