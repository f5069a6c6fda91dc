//! `gateway`: the Weir edge gateway binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use proxy_core::process;
use proxy_core::shutdown::{Shutdown, os_signal};

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
    match Cli::parse().command {
        Command::Validate { config } => {
            process::report_validation(&config, gateway::load_config(&config))
        }
        Command::Run { config } => {
            process::init_process_logging();
            process::run_main("gateway", async move {
                gateway::run(config, Shutdown::from_future(os_signal())).await
            })
        }
    }
}
