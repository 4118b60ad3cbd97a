//! `switchyard push`, `history` and `rollback`: validate as `validate` does (the same report,
//! the same exit code), write to etcd only what is valid, and print what was done. Must not:
//! write anything for a config with errors, or for one over etcd's request limit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::cluster::EtcdOptions;
use crate::config::{self, ReadLimits, Sources, TemplateInputs};

use super::record::{check_size, Record};
use super::store::{Pushed, Store};

/// What validating a config takes, as `validate` and `serve` take it.
pub struct Validation {
    pub limits: ReadLimits,
    pub inputs: TemplateInputs,
}

impl Validation {
    /// Validates `sources` (read from `path`) and prints the report `validate` prints;
    /// whether the config is valid.
    fn check(&self, path: &Path, sources: &Sources) -> anyhow::Result<bool> {
        let loaded = config::load_sources_with(sources, &self.limits, &self.inputs);
        let report = crate::validation_report::report(path, &loaded.diagnostics);
        print(&report)?;
        Ok(!loaded.diagnostics.has_errors())
    }
}

/// `push PATH`: validates, then writes the config as one new revision.
pub fn push(
    path: &Path,
    validation: &Validation,
    etcd: &EtcdOptions,
    max_request_bytes: usize,
) -> anyhow::Result<ExitCode> {
    let sources = config::source::read_sources(path, &validation.limits);
    if !validation.check(path, &sources)? {
        eprintln!("not pushed: the config has errors (nothing was written to etcd)");
        return Ok(ExitCode::FAILURE);
    }
    let record = Record::from_sources(path, &sources, pushed_by(), unix_now())
        .map_err(anyhow::Error::msg)?;
    write(&record, etcd, max_request_bytes, "pushed")
}

/// `history`: the kept pushes, newest first.
pub fn history(etcd: &EtcdOptions, limit: usize) -> anyhow::Result<ExitCode> {
    let entries = block_on(etcd, async {
        let mut store = Store::connect(etcd).await?;
        anyhow::Ok(store.history(limit).await?)
    })?;
    if entries.is_empty() {
        print(&format!(
            "no config has been pushed under {} yet\n",
            super::keys::history_prefix(&etcd.prefix)
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "{:<10} {:<20} {:<28} {:>9} {:>5}  {:<12}  NOTE\n",
        "REVISION", "PUSHED (UTC)", "BY", "BYTES", "FILES", "DIGEST"
    );
    for (i, entry) in entries.iter().enumerate() {
        let newest = if i == 0 { "newest" } else { "" };
        let line = match &entry.record {
            Ok(r) => {
                let rollback = r
                    .rolled_back_from
                    .map(|from| format!("rollback to {from}"))
                    .unwrap_or_default();
                let note = [newest, &rollback]
                    .iter()
                    .filter(|n| !n.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "{:<10} {:<20} {:<28} {:>9} {:>5}  {:<12}  {note}\n",
                    entry.revision,
                    utc(r.pushed_at),
                    r.pushed_by,
                    r.bytes,
                    r.files.len(),
                    r.short_digest()
                )
            }
            Err(reason) => format!("{:<10} unreadable: {reason}\n", entry.revision),
        };
        text += &line;
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `rollback REVISION`: re-pushes that revision's files as a new revision, if they still
/// validate.
pub fn rollback(
    revision: i64,
    validation: &Validation,
    etcd: &EtcdOptions,
    max_request_bytes: usize,
) -> anyhow::Result<ExitCode> {
    let found = block_on(etcd, async {
        let mut store = Store::connect(etcd).await?;
        anyhow::Ok(store.at_revision(revision).await?)
    })?;
    let entry = match found {
        Ok(entry) => entry,
        Err(kept) => {
            let kept: Vec<String> = kept.iter().map(i64::to_string).collect();
            anyhow::bail!(
                "revision {revision} is not among the kept pushes (revisions {}; \
                 `switchyard history` lists them)",
                if kept.is_empty() {
                    "none".into()
                } else {
                    kept.join(", ")
                }
            );
        }
    };
    let old = entry
        .record
        .map_err(|reason| anyhow::anyhow!("revision {revision}: {reason}"))?;
    let root = format!("etcd revision {revision}");
    if !validation.check(&PathBuf::from(&root), &old.sources(&root))? {
        eprintln!(
            "not rolled back: revision {revision} no longer validates (nothing was written to etcd)"
        );
        return Ok(ExitCode::FAILURE);
    }
    let record = Record::new(old.files, pushed_by(), unix_now(), Some(revision));
    write(
        &record,
        etcd,
        max_request_bytes,
        &format!("rolled back to revision {revision}"),
    )
}

/// Writes a valid `record`, within etcd's request limit, and says what became of it.
fn write(
    record: &Record,
    etcd: &EtcdOptions,
    max_request_bytes: usize,
    done: &str,
) -> anyhow::Result<ExitCode> {
    if let Err(refused) = check_size(&record.encode(), max_request_bytes) {
        eprintln!("not pushed: {refused}");
        return Ok(ExitCode::FAILURE);
    }
    let pushed = block_on(etcd, async {
        let mut store = Store::connect(etcd).await?;
        anyhow::Ok(store.push(record).await?)
    })?;
    let text = match pushed {
        Pushed::Written { revision } => format!(
            "{done}: etcd revision {revision} ({} file(s), {} bytes, digest {})\n",
            record.files.len(),
            record.bytes,
            record.short_digest()
        ),
        Pushed::Unchanged { revision } => format!(
            "unchanged: the newest push, etcd revision {revision}, holds these same files \
             (digest {}); nothing was written\n",
            record.short_digest()
        ),
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` (talking to the etcd at `etcd`) to its end; an error names that etcd.
fn block_on<T>(
    etcd: &EtcdOptions,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
        .with_context(|| format!("etcd at {}", etcd.endpoints.join(",")))
}

fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// `HOST/USER` of this push.
fn pushed_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| user_of_this_process());
    format!("{}/{user}", crate::cluster::host_name())
}

/// The name of this process's user in the password database, or `uid N`.
fn user_of_this_process() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory we own and the length is the buffer's; getpwuid_r
    // writes the entry's strings into the buffer and sets `found` to `&entry` or null.
    let result = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if result != 0 || found.is_null() || entry.pw_name.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: pw_name points to a NUL-terminated string inside `buffer`, alive here.
    unsafe { std::ffi::CStr::from_ptr(entry.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, for Unix time `seconds`.
fn utc(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), from 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_print_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_639_198), "2026-12-07 10:26:38");
    }
}
