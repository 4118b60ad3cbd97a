//! Reading a config path into memory: the files it stands for (one file, or the `*.yaml` and
//! `*.yml` files of a folder), their bytes within a size cap, checked to be UTF-8, and a
//! fingerprint of the whole, so that content already seen is never parsed twice. Symlinks
//! are followed at every read, so a Kubernetes ConfigMap's `..data` swap is read as it is now.
//! Must not: parse YAML, watch files, or keep anything between reads.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::yaml::YamlLimits;

/// What one read of the config may take in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// The largest file accepted, in bytes.
    pub max_file_bytes: u64,
    pub yaml: YamlLimits,
}

/// 64 MiB: room for about 150,000 backend services in one file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            yaml: YamlLimits::default(),
        }
    }
}

/// Something wrong with a file before its YAML is parsed, with the line it concerns (0 when
/// it concerns the whole file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    pub line: usize,
    pub message: String,
}

/// One file of the config as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as the user wrote it (under the config folder), for diagnostics.
    pub display: Arc<str>,
    pub text: Result<String, FileProblem>,
}

/// Everything a config path stood for at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    /// The config path as given.
    pub root: Arc<str>,
    /// Why the path itself could not be listed, if it could not.
    pub listing_error: Option<String>,
    pub files: Vec<SourceFile>,
    /// Hash of the file names and contents (and of any problem): equal fingerprints mean
    /// equal configs.
    pub fingerprint: String,
}

impl Sources {
    /// Bytes of text read, over every file.
    pub fn total_bytes(&self) -> usize {
        self.files
            .iter()
            .map(|f| f.text.as_ref().map(String::len).unwrap_or(0))
            .sum()
    }
}

/// Reads every file `path` stands for.
pub fn read_sources(path: &Path, limits: &ReadLimits) -> Sources {
    let root: Arc<str> = path.display().to_string().into();
    let (files, listing_error) = match config_files(path) {
        Ok(paths) => (
            paths
                .iter()
                .map(|file| SourceFile {
                    display: file.display().to_string().into(),
                    text: read_text(file, limits.max_file_bytes),
                })
                .collect(),
            None,
        ),
        Err(error) => (Vec::new(), Some(error)),
    };
    let fingerprint = fingerprint(&files, listing_error.as_deref());
    Sources {
        root,
        listing_error,
        files,
        fingerprint,
    }
}

/// Sources made of one text, as if read from `file`.
pub fn sources_from_text(text: &str, file: &str) -> Sources {
    let files = vec![SourceFile {
        display: file.into(),
        text: Ok(text.to_string()),
    }];
    Sources {
        root: file.into(),
        listing_error: None,
        fingerprint: fingerprint(&files, None),
        files,
    }
}

/// Sources made of named texts held elsewhere (a config pushed to etcd): `root` says where
/// they came from, each name is the file's path as pushed (relative to the config folder).
pub fn sources_from_files(root: &str, files: Vec<(String, String)>) -> Sources {
    let files: Vec<SourceFile> = files
        .into_iter()
        .map(|(name, text)| SourceFile {
            display: name.into(),
            text: Ok(text),
        })
        .collect();
    Sources {
        root: root.into(),
        listing_error: None,
        fingerprint: fingerprint(&files, None),
        files,
    }
}

/// Sources that stand for nothing, for the reason given (a config source that has nothing to
/// offer yet).
pub fn sources_unavailable(root: &str, reason: String) -> Sources {
    Sources {
        root: root.into(),
        fingerprint: fingerprint(&[], Some(&reason)),
        listing_error: Some(reason),
        files: Vec::new(),
    }
}

/// The files a config path stands for: the path itself, or the `*.yaml` / `*.yml` files
/// directly in the folder and in its subfolders named after a collection (`urlMaps/`, where
/// `gcloud … export` files go), sorted; hidden names, such as an editor's temporary files and
/// Kubernetes' `..data` folders, are skipped.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let metadata = std::fs::metadata(path).map_err(|error| describe_io(path, &error))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = yaml_files_in(path)?;
    for folder in super::dialect::collection_folders() {
        let sub = path.join(folder);
        if sub.is_dir() {
            files.extend(yaml_files_in(&sub)?);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "the folder {} holds no *.yaml or *.yml file",
            path.display()
        ));
    }
    Ok(files)
}

fn yaml_files_in(folder: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(folder).map_err(|error| describe_io(folder, &error))?;
    Ok(entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| is_config_file_name(p) && p.is_file())
        .collect())
}

/// Whether a file in a config folder is part of the config by its name.
pub fn is_config_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

fn read_text(path: &Path, max_bytes: u64) -> Result<String, FileProblem> {
    let whole = |message: String| FileProblem { line: 0, message };
    let file = std::fs::File::open(path).map_err(|error| whole(describe_io(path, &error)))?;
    let too_big = |size: u64| {
        whole(format!(
            "the file is {size} bytes, more than the {max_bytes} bytes a config file may have (raise it with --max-config-bytes)"
        ))
    };
    if let Ok(metadata) = file.metadata() {
        if metadata.len() > max_bytes {
            return Err(too_big(metadata.len()));
        }
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| whole(describe_io(path, &error)))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|error| {
        let bytes = error.as_bytes();
        let valid = error.utf8_error().valid_up_to();
        let line = bytes[..valid].iter().filter(|b| **b == b'\n').count() + 1;
        let column = valid - bytes[..valid].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1) + 1;
        FileProblem {
            line,
            message: format!(
                "the file is not valid UTF-8 (byte 0x{:02x} at column {column}); a config must be UTF-8 text",
                bytes[valid]
            ),
        }
    })
}

fn describe_io(path: &Path, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        _ => format!("cannot read {}: {error}", path.display()),
    }
}

fn fingerprint(files: &[SourceFile], listing_error: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    if let Some(error) = listing_error {
        hasher.update(b"listing error\0");
        hasher.update(error.as_bytes());
    }
    for file in files {
        hasher.update(file.display.as_bytes());
        hasher.update([0]);
        match &file.text {
            Ok(text) => {
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            Err(problem) => {
                hasher.update(b"problem\0");
                hasher.update(problem.message.as_bytes());
            }
        }
    }
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_file_bytes: u64) -> ReadLimits {
        ReadLimits {
            max_file_bytes,
            ..ReadLimits::default()
        }
    }

    #[test]
    fn the_fingerprint_follows_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lb.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        let first = read_sources(&file, &limits(100));
        std::fs::write(&file, "a: 1\n").unwrap();
        assert_eq!(
            read_sources(&file, &limits(100)).fingerprint,
            first.fingerprint
        );
        std::fs::write(&file, "a: 2\n").unwrap();
        assert_ne!(
            read_sources(&file, &limits(100)).fingerprint,
            first.fingerprint
        );
    }

    #[test]
    fn oversized_and_non_utf8_files_are_problems_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "x".repeat(101)).unwrap();
        let read = read_sources(&big, &limits(100));
        let problem = read.files[0].text.clone().unwrap_err();
        assert!(
            problem
                .message
                .contains("101 bytes, more than the 100 bytes"),
            "{problem:?}"
        );

        let latin1 = dir.path().join("latin1.yaml");
        std::fs::write(&latin1, b"a: 1\nb: caf\xe9\n").unwrap();
        let problem = read_sources(&latin1, &limits(100)).files[0]
            .text
            .clone()
            .unwrap_err();
        assert_eq!(problem.line, 2);
        assert!(
            problem.message.contains("byte 0xe9 at column 7"),
            "{problem:?}"
        );
    }

    #[test]
    fn a_folder_lists_its_visible_yaml_files_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.yaml",
            "a.yml",
            ".a.yaml.swp",
            ".hidden.yaml",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "x: 1\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("..2026_01_01")).unwrap();
        let names: Vec<String> = config_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(config_files(empty.path())
            .unwrap_err()
            .contains("holds no *.yaml"));
    }

    #[test]
    fn a_missing_path_says_so() {
        let read = read_sources(Path::new("/nonexistent/lb.yaml"), &limits(100));
        assert_eq!(
            read.listing_error.as_deref(),
            Some("/nonexistent/lb.yaml does not exist")
        );
    }
}
