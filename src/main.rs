//! The `switchyard` command line: serve, validate, translate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use switchyard::{config, serve, translate};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "xDS control plane for cloud-style load-balancer configs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a config (file or directory) over xDS, reloading it when it changes.
    Serve {
        path: PathBuf,
        #[arg(long, default_value = "127.0.0.1:18000")]
        xds_listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:19000")]
        admin_listen: SocketAddr,
    },
    /// Check a config; exit 0 when it has no errors, 1 otherwise.
    Validate { path: PathBuf },
    /// Show why a backend service's traffic goes where it goes, for a client's locality.
    Explain {
        path: PathBuf,
        /// `backendServices/NAME` (or just NAME).
        service: String,
        /// The client's `REGION/ZONE` (or `REGION`).
        #[arg(long)]
        client_locality: Option<String>,
    },
    /// Print the xDS resources a config translates to.
    Translate {
        path: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Yaml,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "switchyard=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            path,
            xds_listen,
            admin_listen,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let _running = serve::start(serve::ServeOptions {
                    config: path,
                    xds_listen,
                    admin_listen,
                })
                .await?;
                tokio::signal::ctrl_c()
                    .await
                    .context("waiting for Ctrl-C")?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Validate { path } => {
            let loaded = config::load(&path);
            print!("{}", loaded.diagnostics);
            let errors = loaded.diagnostics.errors().count();
            let warnings = loaded.diagnostics.warnings().count();
            println!(
                "{}: {errors} error(s), {warnings} warning(s)",
                path.display()
            );
            Ok(if errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Explain {
            path,
            service,
            client_locality,
        } => {
            let loaded = config::load(&path);
            if loaded.diagnostics.has_errors() {
                eprint!("{}", loaded.diagnostics);
                return Ok(ExitCode::FAILURE);
            }
            let name = service.rsplit('/').next().unwrap_or(&service);
            let Some(found) = loaded.model.backend_services.get(name) else {
                let known: Vec<&str> = loaded
                    .model
                    .backend_services
                    .keys()
                    .map(String::as_str)
                    .collect();
                anyhow::bail!(
                    "no backend service `{name}` in {}; defined: {}",
                    path.display(),
                    known.join(", ")
                );
            };
            let region = client_locality
                .as_deref()
                .map(|l| l.split('/').next().unwrap_or(l));
            print!(
                "{}",
                switchyard::explain::explain(&loaded.model, found, region)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Translate { path, format } => {
            let loaded = config::load(&path);
            if loaded.diagnostics.has_errors() {
                eprint!("{}", loaded.diagnostics);
                return Ok(ExitCode::FAILURE);
            }
            let dump = translate::json::resources_to_json(&translate::translate(&loaded.model));
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&dump)?),
                Format::Yaml => print!("{}", serde_yaml::to_string(&dump)?),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
