//! What the `gateway` and `sidecar` binaries do alike around their libraries:
//! report a validation, set up logging, build the runtime.

use std::path::Path;
use std::process::ExitCode;

use crate::config::ConfigErrors;
use crate::telemetry::{LogFormat, init_logging};

/// Prints the outcome of `validate --config FILE`: exit 0 when valid, 2 with
/// one line per problem (field path, line, message) otherwise.
pub fn report_validation<T>(path: &Path, result: Result<T, ConfigErrors>) -> ExitCode {
    match result {
        Ok(_) => {
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: invalid configuration", path.display());
            for e in errors.iter() {
                eprintln!("  {e}");
            }
            ExitCode::from(2)
        }
    }
}

/// Installs logging: `WEIR_LOG_FORMAT` (`json`, the default, or `text`) and
/// `RUST_LOG` (default `info`).
pub fn init_process_logging() {
    let format = std::env::var("WEIR_LOG_FORMAT")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(LogFormat::Json);
    init_logging(format);
}

/// The multi-thread runtime; `WEIR_WORKER_THREADS` pins the worker count
/// (one per core by default).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("WEIR_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        builder.worker_threads(n.max(1));
    }
    builder.enable_all().build()
}

/// Runs `main` to completion on [`runtime`]; an error is printed with its
/// chain of causes and exits 1.
pub fn run_main<F, E>(name: &str, main: F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `error: cause: cause…`, so a failure names its root.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
