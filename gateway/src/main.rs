//! `gateway`: the Weir edge gateway binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use proxy_core::shutdown::{Shutdown, os_signal};
use proxy_core::telemetry::{LogFormat, init_logging};

#[derive(Parser)]
#[command(name = "gateway", version, about = "Weir edge API gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic with the given configuration.
    Run {
        #[arg(long, short, env = "WEIR_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file and exit (0 when valid).
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match gateway::load_config(&config) {
            Ok(_) => {
                println!("{}: configuration is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{}: invalid configuration", config.display());
                for e in errors.iter() {
                    eprintln!("  {e}");
                }
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            init_logging(
                std::env::var("WEIR_LOG_FORMAT")
                    .ok()
                    .and_then(|f| f.parse().ok())
                    .unwrap_or(LogFormat::Json),
            );
            // WEIR_WORKER_THREADS pins the worker count (one per core by default).
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = std::env::var("WEIR_WORKER_THREADS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
            {
                builder.worker_threads(n.max(1));
            }
            let rt = match builder.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async move {
                match gateway::run(config, Shutdown::from_future(os_signal())).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("gateway: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
