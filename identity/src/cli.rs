//! `sidecar identity …`: the commands over this library.
//!
//! - `init --dir D --trust-domain T`: create the trust anchor and issuer;
//! - `token --tokens FILE --service S`: add a bootstrap token, print it;
//! - `issuer --dir D --listen ADDR (--tokens FILE | --kubernetes)`: serve.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use proxy_core::process;
use proxy_core::shutdown::{Shutdown, os_signal};

use crate::authn::{Authenticator, BootstrapTokens, TokenReview, generate_token};
use crate::ca::Ca;
use crate::issuer::{DEFAULT_SERVER_NAMES, Issuer, IssuerOptions};

/// `sidecar identity <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum IdentityCommand {
    /// Create a trust anchor and an issuer certificate in a directory.
    Init {
        #[arg(long, env = "WEIR_IDENTITY_CA_DIR")]
        dir: PathBuf,
        #[arg(long, default_value = "weir.local")]
        trust_domain: String,
    },
    /// Add a bootstrap token for a service to a tokens file and print it.
    Token {
        #[arg(long)]
        tokens: PathBuf,
        /// `service` (namespace default) or `namespace/service`.
        #[arg(long)]
        service: String,
    },
    /// Serve the issuer (HTTPS): signs CSRs of authenticated workloads.
    Issuer(IssuerArgs),
}

/// `sidecar identity issuer`.
#[derive(Debug, Clone, clap::Args)]
pub struct IssuerArgs {
    /// The directory `init` wrote (the issuer reads issuer.crt/.key, anchor.crt).
    #[arg(long, env = "WEIR_IDENTITY_CA_DIR")]
    pub dir: PathBuf,
    #[arg(long, env = "WEIR_IDENTITY_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Bootstrap tokens file (`service: token` YAML).
    #[arg(
        long,
        env = "WEIR_IDENTITY_TOKENS",
        conflicts_with = "kubernetes",
        required_unless_present = "kubernetes"
    )]
    pub tokens: Option<PathBuf>,
    /// Check projected ServiceAccount tokens with the API server (TokenReview).
    #[arg(long)]
    pub kubernetes: bool,
    /// The audience sidecar tokens must be made for.
    #[arg(long, env = "WEIR_IDENTITY_AUDIENCE", default_value = "weir-identity")]
    pub audience: String,
    /// Names for the issuer's serving certificate (repeat or comma-separate).
    #[arg(
        long = "server-name",
        env = "WEIR_IDENTITY_SERVER_NAMES",
        value_delimiter = ','
    )]
    pub server_names: Vec<String>,
    /// Lifetime of workload certificates, e.g. `24h`.
    #[arg(long, env = "WEIR_IDENTITY_LIFETIME", default_value = "24h", value_parser = humantime::parse_duration)]
    pub lifetime: Duration,
}

/// Why the issuer command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Issuer(#[from] crate::issuer::IssuerError),
    #[error(transparent)]
    Tokens(#[from] crate::authn::TokensError),
    #[error(transparent)]
    TokenReview(#[from] crate::authn::TokenReviewError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Runs one command; the issuer runs until SIGTERM/SIGINT.
pub fn run_cli(command: IdentityCommand) -> ExitCode {
    match command {
        IdentityCommand::Init { dir, trust_domain } => match Ca::init(&dir, &trust_domain) {
            Ok(_) => {
                println!(
                    "created trust domain {trust_domain} in {}\n  trust anchor (give to every sidecar): {}\n  move {} offline; the issuer does not need it",
                    dir.display(),
                    dir.join(crate::ca::ANCHOR_CERT).display(),
                    dir.join(crate::ca::ANCHOR_KEY).display(),
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("identity init: {}", process::error_chain(&e));
                ExitCode::FAILURE
            }
        },
        IdentityCommand::Token { tokens, service } => match add_token(&tokens, &service) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("identity token: {e}");
                ExitCode::FAILURE
            }
        },
        IdentityCommand::Issuer(args) => {
            process::init_process_logging();
            process::run_main("identity issuer", async move {
                run_issuer(args, Shutdown::from_future(os_signal())).await
            })
        }
    }
}

/// Serves the issuer described by `args` until `shutdown`.
pub async fn run_issuer(args: IssuerArgs, shutdown: Shutdown) -> Result<(), CliError> {
    let authn: Arc<dyn Authenticator> = match (&args.tokens, args.kubernetes) {
        (Some(path), false) => Arc::new(BootstrapTokens::load(path)?),
        (None, true) => Arc::new(TokenReview::in_cluster(&args.audience, &|k| {
            std::env::var(k).ok()
        })?),
        _ => {
            return Err(CliError::Invalid(
                "use exactly one of --tokens and --kubernetes".into(),
            ));
        }
    };
    let server_names = if args.server_names.is_empty() {
        DEFAULT_SERVER_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        args.server_names.clone()
    };
    let opts = IssuerOptions {
        lifetime: args.lifetime,
        server_names,
    };
    let issuer = Issuer::new(
        Ca::load(&args.dir).map_err(crate::issuer::IssuerError::from)?,
        authn,
        &opts,
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| CliError::Bind {
            addr: args.listen,
            source,
        })?;
    issuer.serve(listener, shutdown).await;
    Ok(())
}

/// Adds a new token for `service` to the tokens file (created with mode
/// 0600 when missing) and returns it. An existing entry is replaced.
pub fn add_token(path: &Path, service: &str) -> Result<String, CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CliError::Io {
        path: path.to_owned(),
        source,
    };
    let mut map: std::collections::BTreeMap<String, String> = match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => serde_norway::from_str(&text)
            .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?,
        Ok(_) => Default::default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(io(e)),
    };
    let token = generate_token();
    map.insert(service.to_owned(), token.clone());
    // Check the whole file as the issuer will read it.
    BootstrapTokens::from_pairs(map.clone()).map_err(CliError::Invalid)?;
    let text = serde_norway::to_string(&map).map_err(|e| CliError::Invalid(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(format!("# service: token (see docs/identity.md)\n{text}").as_bytes())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_added_by_the_command_authenticate() {
        let dir = std::env::temp_dir().join(format!("weir-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens.yaml");
        let a = add_token(&file, "catalog").unwrap();
        let b = add_token(&file, "shop/order").unwrap();
        let tokens = BootstrapTokens::load(&file).unwrap();
        let w = tokens.authenticate(&a).await.unwrap();
        assert_eq!(w.service_account, "catalog");
        let w = tokens.authenticate(&b).await.unwrap();
        assert_eq!(
            (w.namespace.as_str(), w.service_account.as_str()),
            ("shop", "order")
        );
        assert!(add_token(&file, "Bad Name").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
