//! `catalog`: the catalog service binary. Settings come from the environment
//! (see `catalog::Config::from_vars`); SIGINT/SIGTERM shut it down gracefully.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::service::main(
        "catalog",
        catalog::Config::from_env,
        |config| (config.listen, config.telemetry.clone()),
        |config, listener| catalog::run(config, listener, service_kit::server::shutdown_signal()),
    )
    .await
}
