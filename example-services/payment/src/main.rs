//! `payment`: the payment service binary. Settings come from the environment
//! (see `payment::Config::from_vars`); SIGINT/SIGTERM shut it down gracefully.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::telemetry::init_logs();
    let config = match payment::Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("payment: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("payment: cannot listen on {}: {error}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let telemetry = config.telemetry.clone();
    let code = match payment::run(config, listener, service_kit::server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("payment: {}", service_kit::server::error_chain(&error));
            ExitCode::FAILURE
        }
    };
    service_kit::telemetry::shutdown(&telemetry).await;
    code
}
