//! One pushed config as etcd holds it: every file of the config (its path relative to the
//! config folder, and its text), who pushed it, when, and a digest, encoded as one JSON value
//! so that one put writes the whole config in one etcd revision. Also the size check against
//! etcd's request limit. Pure: must not talk to etcd or read files.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::source::{self, Sources};

/// etcd's `--max-request-bytes` by default (1.5 MiB).
pub const ETCD_DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// Room left in a request for the key, the transaction's other operations and the framing.
const REQUEST_OVERHEAD: usize = 4096;

/// The version of the encoding; a record of another version is refused when read.
const FORMAT: u32 = 1;

/// One file of a pushed config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedFile {
    /// The path relative to the config folder (the file's own name for a one-file config).
    pub name: String,
    pub text: String,
}

/// A pushed config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    /// `HOST/USER` of the push.
    pub pushed_by: String,
    /// Unix time of the push, in seconds.
    pub pushed_at: u64,
    /// The fingerprint of the files (as `/config_status` shows it for this config).
    pub digest: String,
    /// Bytes of text over every file.
    pub bytes: u64,
    /// The etcd revision this one re-pushes (`switchyard rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<i64>,
    pub files: Vec<PushedFile>,
}

impl Record {
    /// A record of `sources` read from `path` (every file read, as a valid config's are), with
    /// each file named relative to `path`.
    pub fn from_sources(
        path: &Path,
        sources: &Sources,
        pushed_by: String,
        pushed_at: u64,
    ) -> Result<Record, String> {
        let mut files = Vec::new();
        for file in &sources.files {
            let text = file
                .text
                .as_ref()
                .map_err(|problem| format!("{}: {}", file.display, problem.message))?;
            files.push(PushedFile {
                name: relative_name(path, Path::new(&*file.display)),
                text: text.clone(),
            });
        }
        Ok(Record::new(files, pushed_by, pushed_at, None))
    }

    /// A record of `files`, with their digest and size.
    pub fn new(
        files: Vec<PushedFile>,
        pushed_by: String,
        pushed_at: u64,
        rolled_back_from: Option<i64>,
    ) -> Record {
        let bytes = files.iter().map(|f| f.text.len() as u64).sum();
        let mut record = Record {
            format: FORMAT,
            pushed_by,
            pushed_at,
            digest: String::new(),
            bytes,
            rolled_back_from,
            files,
        };
        record.digest = record.sources("").fingerprint;
        record
    }

    /// The files as a config source, for loading; `root` says where they came from.
    pub fn sources(&self, root: &str) -> Sources {
        let files = self
            .files
            .iter()
            .map(|f| (f.name.clone(), f.text.clone()))
            .collect();
        source::sources_from_files(root, files)
    }

    /// The value etcd stores.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a record always encodes")
    }

    /// A value read from etcd; an error says why it is not a pushed config.
    pub fn decode(value: &[u8]) -> Result<Record, String> {
        let record: Record = serde_json::from_slice(value)
            .map_err(|error| format!("not a config written by `switchyard push`: {error}"))?;
        if record.format != FORMAT {
            return Err(format!(
                "written in format {}, and this switchyard reads format {FORMAT} only",
                record.format
            ));
        }
        Ok(record)
    }

    /// The digest's first characters, enough to tell revisions apart at a glance.
    pub fn short_digest(&self) -> &str {
        &self.digest[..self.digest.len().min(12)]
    }
}

/// The name a pushed file is stored under: its path relative to the config folder, or its
/// own name when the config is one file.
fn relative_name(config: &Path, file: &Path) -> String {
    let relative = file
        .strip_prefix(config)
        .ok()
        .filter(|r| !r.as_os_str().is_empty())
        .or_else(|| file.file_name().map(Path::new))
        .unwrap_or(file);
    relative.to_string_lossy().into_owned()
}

/// Refuses an encoded record that etcd would refuse as a request over `max_request_bytes`.
pub fn check_size(encoded: &str, max_request_bytes: usize) -> Result<(), String> {
    let allowed = max_request_bytes.saturating_sub(REQUEST_OVERHEAD);
    if encoded.len() <= allowed {
        return Ok(());
    }
    Err(format!(
        "the config is {} bytes as stored (its files and their names, JSON-encoded), more than \
         the {allowed} bytes one etcd request may carry here ({max_request_bytes} bytes, etcd's \
         --max-request-bytes, less {REQUEST_OVERHEAD} for the rest of the request); nothing was \
         written. Serve a config this large from files, or raise etcd's --max-request-bytes \
         and give the same value to --etcd-max-request-bytes",
        encoded.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(files: &[(&str, &str)]) -> Record {
        let files = files
            .iter()
            .map(|(name, text)| PushedFile {
                name: name.to_string(),
                text: text.to_string(),
            })
            .collect();
        Record::new(files, "host/me".into(), 1_700_000_000, None)
    }

    #[test]
    fn a_folder_round_trips_with_relative_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("urlMaps")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("urlMaps/m.yaml"), "m: 2\n").unwrap();
        let sources = source::read_sources(dir.path(), &Default::default());
        let pushed = Record::from_sources(dir.path(), &sources, "h/u".into(), 1).unwrap();
        let names: Vec<&str> = pushed.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.yaml", "urlMaps/m.yaml"]);
        let read = Record::decode(pushed.encode().as_bytes()).unwrap();
        assert_eq!(read, pushed);
        let served = read.sources("etcd");
        assert_eq!(served.files[1].display.as_ref(), "urlMaps/m.yaml");
        assert_eq!(served.files[1].text.as_deref(), Ok("m: 2\n"));
        assert_eq!(served.fingerprint, pushed.digest);
    }

    #[test]
    fn a_one_file_config_is_named_by_its_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lb.yaml");
        std::fs::write(&file, "x: 1\n").unwrap();
        let sources = source::read_sources(&file, &Default::default());
        let pushed = Record::from_sources(&file, &sources, "h/u".into(), 1).unwrap();
        assert_eq!(pushed.files[0].name, "lb.yaml");
        assert_eq!(pushed.bytes, 5);
    }

    #[test]
    fn the_digest_follows_names_and_content_only() {
        let first = record(&[("a.yaml", "a: 1\n")]);
        let mut later = record(&[("a.yaml", "a: 1\n")]);
        later.pushed_at += 60;
        assert_eq!(first.digest, record(&[("a.yaml", "a: 1\n")]).digest);
        assert_ne!(first.digest, record(&[("b.yaml", "a: 1\n")]).digest);
        assert_ne!(first.digest, record(&[("a.yaml", "a: 2\n")]).digest);
        assert_eq!(first.short_digest().len(), 12);
    }

    #[test]
    fn values_not_pushed_by_switchyard_are_refused_with_a_reason() {
        let refused = Record::decode(b"hello").unwrap_err();
        assert!(refused.contains("not a config written by"), "{refused}");
        let mut future = record(&[("a.yaml", "a: 1\n")]);
        future.format = 9;
        let refused = Record::decode(future.encode().as_bytes()).unwrap_err();
        assert!(refused.contains("format 9"), "{refused}");
    }

    #[test]
    fn a_record_over_etcd_s_request_limit_is_refused() {
        let big = record(&[("a.yaml", &"x".repeat(ETCD_DEFAULT_MAX_REQUEST_BYTES))]);
        let refused = check_size(&big.encode(), ETCD_DEFAULT_MAX_REQUEST_BYTES).unwrap_err();
        assert!(
            refused.contains("--max-request-bytes") && refused.contains("nothing was written"),
            "{refused}"
        );
        let small = record(&[("a.yaml", "a: 1\n")]);
        check_size(&small.encode(), ETCD_DEFAULT_MAX_REQUEST_BYTES).unwrap();
    }
}
