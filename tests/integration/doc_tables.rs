//! The documentation's reference tables keep up with the code: every admin route (of `serve`
//! and of the sidecar) has its row, every subcommand `switchyard --help` lists has its row in
//! the README's commands table, every benchmark (and load-generator scenario) has its command in
//! docs/performance.md, the files the examples' comments name exist, and the README's sample
//! config loads without errors. Reads the sources as text; runs the binary only for `--help`.

use std::process::Command;

use super::common::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The paths a router in `source` serves (`.route("/path", …)`).
fn routes(source: &str) -> Vec<String> {
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    route
        .captures_iter(source)
        .map(|c| c[1].to_string())
        .collect()
}

/// Whether `table` (Markdown) has a row whose first cell is `path`, alone or with a query.
fn has_row(table: &str, path: &str) -> bool {
    table.lines().any(|line| {
        line.strip_prefix("| `")
            .and_then(|cell| cell.strip_prefix(path))
            .is_some_and(|rest| rest.starts_with('`') || rest.starts_with('['))
    })
}

fn missing_rows(source: &str, document: &str) -> Vec<String> {
    let served = routes(&read(source));
    assert!(!served.is_empty(), "no routes found in {source}");
    let table = read(document);
    served
        .into_iter()
        .filter(|path| !has_row(&table, path))
        .map(|path| format!("{source} serves {path}; {document} has no row for it"))
        .collect()
}

#[test]
fn every_admin_route_has_its_row() {
    let mut missing = missing_rows("src/admin/mod.rs", "docs/operations.md");
    missing.extend(missing_rows("src/proxy/admin.rs", "docs/sidecar.md"));
    assert_eq!(missing, Vec::<String>::new());
}

/// The subcommands `switchyard --help` lists, but `help`.
fn subcommands() -> Vec<String> {
    let help = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_commands_table_lists_every_subcommand() {
    let readme = read("README.md");
    let commands = subcommands();
    assert!(
        commands.len() >= 8,
        "subcommands read from --help: {commands:?}"
    );
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `switchyard "))
        .collect();
    let missing: Vec<&String> = commands
        .iter()
        .filter(|name| {
            let named = format!("`switchyard {name}");
            !rows.iter().any(|row| {
                row.split(" | ")
                    .next()
                    .unwrap_or_default()
                    .split(" / ")
                    .any(|cell| {
                        let cell = cell.trim_start_matches("| ");
                        cell.strip_prefix(&named)
                            .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('`'))
                    })
            })
        })
        .collect();
    assert_eq!(
        missing,
        Vec::<&String>::new(),
        "missing from README's Commands table"
    );
}

#[test]
fn files_the_examples_name_exist() {
    let named = regex::Regex::new(
        r"\b((?:envoy-configs|examples|docs|deploy|scripts|tests)/[\w./-]*\w\.(?:yaml|json|md|py))\b",
    )
    .unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for file in named.captures_iter(&text).map(|c| c[1].to_string()) {
            if !repo_root().join(&file).exists() {
                missing.push(format!("{} names {file}", path.display()));
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new());
}

#[test]
fn the_readme_sample_config_loads_without_errors() {
    let readme = read("README.md");
    let start = readme.find("```yaml\n").expect("README has a yaml block") + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let loaded = switchyard::config::load_str(&readme[start..end], "README.md");
    assert!(
        loaded.accepted().is_some(),
        "README's sample config: {:?}",
        loaded.diagnostics
    );
    assert!(
        !loaded.model.services.is_empty(),
        "README's sample config serves no service"
    );
}

/// The load generator's scenarios (`enum Scenario`'s variants), as their subcommands.
fn loadgen_scenarios() -> Vec<String> {
    let source = read("benches/loadgen/main.rs");
    let start = source
        .find("enum Scenario {")
        .expect("benches/loadgen: enum Scenario");
    let end = start + source[start..].find("\n}").unwrap();
    let variant = regex::Regex::new(r"(?m)^    ([A-Z]\w*)\b").unwrap();
    let kebab = |name: &str| {
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    };
    variant
        .captures_iter(&source[start..end])
        .map(|c| kebab(&c[1]))
        .collect()
}

#[test]
fn every_benchmark_has_its_command_in_performance_md() {
    let performance = read("docs/performance.md");
    let manifest = read("Cargo.toml");
    let bench = regex::Regex::new(r#"(?m)^\[\[bench\]\]\s*\nname = "([^"]+)""#).unwrap();
    let mut commands: Vec<String> = bench
        .captures_iter(&manifest)
        .map(|c| format!("cargo bench --bench {}", &c[1]))
        .collect();
    let scenarios = loadgen_scenarios();
    assert!(scenarios.len() >= 8, "scenarios read: {scenarios:?}");
    commands.extend(
        scenarios
            .iter()
            .map(|s| format!("cargo bench --bench loadgen -- {s}")),
    );
    let missing: Vec<&String> = commands
        .iter()
        .filter(|command| {
            !performance.match_indices(command.as_str()).any(|(at, _)| {
                !performance[at + command.len()..]
                    .starts_with(|c: char| c == '-' || c.is_alphanumeric())
            })
        })
        .collect();
    assert_eq!(missing, Vec::<&String>::new(), "not in docs/performance.md");
}
