//! No dead links in the documentation: every relative link in README.md and docs/*.md (outside
//! code) names a file of the repository, and a `#anchor` names a heading of the Markdown file
//! it points to (GitHub's heading ids). Absolute URLs are not fetched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::common::repo_root;

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    documents.sort();
    documents
}

/// The Markdown text outside fenced code blocks, with inline code spans blanked.
fn prose(markdown: &str) -> String {
    let code_span = regex::Regex::new(r"`[^`\n]*`").unwrap();
    let mut in_fence = false;
    let mut prose = String::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            prose.push_str(&code_span.replace_all(line, "``"));
            prose.push('\n');
        }
    }
    prose
}

/// The targets of inline links and images (`[text](target)`) and of reference definitions
/// (`[name]: target`).
fn link_targets(markdown: &str) -> Vec<String> {
    let inline = regex::Regex::new(r#"\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).unwrap();
    let reference = regex::Regex::new(r"(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)").unwrap();
    let text = prose(markdown);
    inline
        .captures_iter(&text)
        .chain(reference.captures_iter(&text))
        .map(|c| c[1].to_string())
        .collect()
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// A heading's id as GitHub makes it: lower case, punctuation dropped, spaces as hyphens;
/// a repeated heading gets `-1`, `-2`, ….
fn heading_ids(markdown: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let title = line.strip_prefix('#').map(|t| t.trim_start_matches('#'));
        let Some(title) = title.filter(|_| !in_fence) else {
            continue;
        };
        let base: String = title
            .replace('`', "")
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut id = base.clone();
        let mut repeat = 0;
        while ids.contains(&id) {
            repeat += 1;
            id = format!("{base}-{repeat}");
        }
        ids.insert(id);
    }
    ids
}

/// What is wrong with `target`, linked from `document`, if anything.
fn dead_link(document: &Path, target: &str) -> Option<String> {
    let root = repo_root().canonicalize().unwrap();
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        document.to_path_buf()
    } else {
        document.parent().unwrap().join(path)
    };
    let Ok(file) = file.canonicalize() else {
        return Some(format!("{target}: no such file"));
    };
    if !file.starts_with(&root) {
        return Some(format!("{target}: outside the repository"));
    }
    let anchor = anchor?;
    if file.extension().is_none_or(|e| e != "md") {
        return None;
    }
    let text = std::fs::read_to_string(&file).unwrap();
    (!heading_ids(&text).contains(anchor)).then(|| {
        format!(
            "{target}: no heading with the id `{anchor}` in {}",
            file.display()
        )
    })
}

#[test]
fn every_relative_link_in_the_documentation_resolves() {
    let mut dead = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for target in link_targets(&text) {
            if is_external(&target) {
                continue;
            }
            checked += 1;
            if let Some(why) = dead_link(&document, &target) {
                dead.push(format!("{}: {why}", document.display()));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: the link reader is broken"
    );
    assert_eq!(dead, Vec::<String>::new());
}

#[test]
fn links_and_heading_ids_are_read_as_github_reads_them() {
    let markdown = "# The sidecar: `switchyard proxy`\n## Capacity and spill-over\n## Notes\n\
                    ## Notes\nSee [a](docs/a.md#x), ![pic](docs/p.svg \"title\") and `[no](code.md)`.\n\
                    ```\n[nor](fenced.md)\n```\n[ref]: other.md\n";
    assert_eq!(
        link_targets(markdown),
        ["docs/a.md#x", "docs/p.svg", "other.md"]
    );
    assert_eq!(
        heading_ids(markdown),
        BTreeSet::from(
            [
                "the-sidecar-switchyard-proxy",
                "capacity-and-spill-over",
                "notes",
                "notes-1"
            ]
            .map(String::from)
        )
    );
}
