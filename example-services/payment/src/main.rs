//! `payment`: the payment service binary. Settings come from the environment
//! (see `payment::Config::from_vars`); SIGINT/SIGTERM shut it down gracefully.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::service::main(
        "payment",
        payment::Config::from_env,
        |config| (config.listen, config.telemetry.clone()),
        |config, listener| payment::run(config, listener, service_kit::server::shutdown_signal()),
    )
    .await
}
