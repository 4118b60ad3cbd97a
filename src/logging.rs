//! How the command line logs: text (coloured only on a terminal) or one JSON object per line,
//! at the level `--log-level` names, else RUST_LOG's filter, else `info` for Switchyard.
//!
//! Must not: log anything itself; it only sets up where and how lines go (standard error).

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log collectors.
    Json,
}

/// The filter: `--log-level` (a level, or a full RUST_LOG-style directive list) when given,
/// else RUST_LOG when set, else Switchyard's own lines at info.
fn filter(level: Option<&str>) -> Result<EnvFilter, String> {
    match level {
        Some(level) => {
            let directives = match level {
                "error" | "warn" | "info" | "debug" | "trace" | "off" => {
                    format!("switchyard={level}")
                }
                other => other.to_string(),
            };
            EnvFilter::try_new(&directives).map_err(|error| {
                format!(
                    "--log-level {level}: {error}; give error, warn, info, debug, trace, off, or directives such as `switchyard=debug,h2=info`"
                )
            })
        }
        None => Ok(EnvFilter::try_from_default_env().unwrap_or_else(|_| "switchyard=info".into())),
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), String> {
    let filter = filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
    Ok(())
}
