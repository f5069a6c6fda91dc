//! `order`: the order service binary. Settings come from the environment
//! (see `order::Config::from_vars`); SIGINT/SIGTERM shut it down gracefully.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::service::main(
        "order",
        order::Config::from_env,
        |config| (config.listen, config.telemetry.clone()),
        |config, listener| order::run(config, listener, service_kit::server::shutdown_signal()),
    )
    .await
}
