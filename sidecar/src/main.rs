//! `sidecar`: run, validate, init-iptables, inject, webhook, identity.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use proxy_core::process;
use proxy_core::shutdown::{Shutdown, os_signal};
use sidecar::SidecarConfig;
use sidecar::iptables::{IptablesOptions, apply};

#[derive(Parser)]
#[command(
    name = "sidecar",
    version,
    about = "Weir sidecar: resilient, observable service-to-service calls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar (without --config: from WEIR_* environment variables only).
    Run {
        #[arg(long, short, env = "WEIR_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a config file: exit 0 when valid, else 2 with each problem's field and line.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write the pod's nat rules that redirect traffic through the sidecar.
    InitIptables(IptablesArgs),
    /// Add the sidecar to Kubernetes manifests (`-f FILE` or `-` for stdin).
    Inject(weir_inject::InjectArgs),
    /// Serve the mutating admission webhook (HTTPS).
    Webhook(weir_inject::WebhookArgs),
    /// Workload identity: create a trust anchor, add tokens, run the issuer.
    Identity {
        #[command(subcommand)]
        command: weir_identity::cli::IdentityCommand,
    },
}

#[derive(Args)]
struct IptablesArgs {
    #[arg(long, env = "WEIR_INBOUND_PORT", default_value_t = 4143)]
    inbound_port: u16,
    #[arg(long, env = "WEIR_OUTBOUND_PORT", default_value_t = 4140)]
    outbound_port: u16,
    /// The uid the sidecar runs as: its own traffic is never redirected.
    #[arg(long, env = "WEIR_PROXY_UID", default_value_t = 2102)]
    proxy_uid: u32,
    /// The admin port, never redirected (probes and scrapes reach it directly).
    #[arg(long, env = "WEIR_ADMIN_PORT", default_value_t = 4191)]
    admin_port: u16,
    /// Incoming ports not redirected, comma-separated.
    #[arg(long, env = "WEIR_SKIP_INBOUND_PORTS", value_delimiter = ',')]
    skip_inbound_ports: Vec<u16>,
    /// Outgoing destination ports not redirected, comma-separated.
    #[arg(long, env = "WEIR_SKIP_OUTBOUND_PORTS", value_delimiter = ',')]
    skip_outbound_ports: Vec<u16>,
    /// Do not redirect incoming traffic.
    #[arg(long)]
    no_inbound: bool,
    /// Do not redirect outgoing traffic.
    #[arg(long)]
    no_outbound: bool,
    /// The iptables binary.
    #[arg(long, env = "WEIR_IPTABLES", default_value = "iptables")]
    iptables: String,
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
}

fn env() -> sidecar::Env {
    Arc::new(|k: &str| std::env::var(k).ok())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => {
            process::report_validation(&config, SidecarConfig::load(&config, &*env()))
        }
        Command::Run { config } => {
            process::init_process_logging();
            process::run_main("sidecar", async move {
                let shutdown = Shutdown::from_future(os_signal());
                match config {
                    Some(path) => sidecar::run_file(&path, env(), shutdown).await,
                    None => match SidecarConfig::from_env(&*env()) {
                        Ok(cfg) => sidecar::run(cfg, shutdown).await,
                        Err(e) => Err(e.into()),
                    },
                }
            })
        }
        Command::InitIptables(a) => {
            let opts = IptablesOptions {
                inbound_port: a.inbound_port,
                outbound_port: a.outbound_port,
                proxy_uid: a.proxy_uid,
                admin_port: a.admin_port,
                skip_inbound_ports: a.skip_inbound_ports,
                skip_outbound_ports: a.skip_outbound_ports,
                inbound: !a.no_inbound,
                outbound: !a.no_outbound,
                binary: a.iptables,
            };
            match apply(&opts, a.dry_run, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("init-iptables: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Inject(args) => weir_inject::run_inject_cli(args),
        Command::Webhook(args) => {
            process::init_process_logging();
            process::run_main("webhook", weir_inject::run_webhook(args, os_signal()))
        }
        Command::Identity { command } => weir_identity::cli::run_cli(command),
    }
}
