//! `sidecar inject`: the command-line face of [`crate::inject_manifests`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::manifest::inject_manifests;
use crate::options::{DEFAULT_IMAGE, InjectOptions, Mode};
use crate::pod::Outcome;

/// Injection defaults shared by `sidecar inject` and `sidecar webhook`; pods
/// override each with a `weir.dev/*` annotation.
#[derive(Debug, Clone, clap::Args)]
pub struct InjectDefaults {
    /// Sidecar image (annotation weir.dev/image).
    #[arg(long, env = "WEIR_INJECT_IMAGE", default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// transparent (iptables, needs NET_ADMIN in an init container) or explicit (HTTP_PROXY).
    #[arg(long, env = "WEIR_INJECT_MODE", value_enum, default_value_t = Mode::Transparent)]
    pub mode: Mode,
    /// OTLP endpoint the sidecars export spans to (weir.dev/otlp-endpoint).
    #[arg(long, env = "WEIR_INJECT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// ConfigMap with `sidecar.yaml`, mounted at /etc/weir (weir.dev/config-map).
    #[arg(long, env = "WEIR_INJECT_CONFIG_MAP")]
    pub config_map: Option<String>,
    /// Seconds of preStop sleep before the sidecar drains (weir.dev/drain-seconds).
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u32,
    /// Identity issuer URL: sidecars get a SPIFFE identity from it with a
    /// projected ServiceAccount token (docs/identity.md).
    #[arg(long, env = "WEIR_INJECT_IDENTITY_ISSUER")]
    pub identity_issuer: Option<String>,
}

impl InjectDefaults {
    /// The options these flags describe; `all` is the caller's.
    pub fn to_options(&self, all: bool) -> InjectOptions {
        InjectOptions {
            all,
            image: self.image.clone(),
            mode: self.mode,
            otlp_endpoint: self.otlp_endpoint.clone(),
            config_map: self.config_map.clone(),
            drain_seconds: self.drain_seconds,
            identity_issuer: self.identity_issuer.clone(),
            ..InjectOptions::default()
        }
    }
}

/// `sidecar inject [-f FILE|-] [--all]`.
#[derive(Debug, Clone, clap::Args)]
pub struct InjectArgs {
    /// Manifest to read; `-` (the default) reads standard input.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    pub filename: PathBuf,
    /// Inject every pod template not annotated `weir.dev/inject: disabled`.
    #[arg(long)]
    pub all: bool,
    /// Do not print the per-workload summary on standard error.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub defaults: InjectDefaults,
}

/// Runs `sidecar inject`: the result goes to standard output only if the
/// whole input was injected; otherwise an error goes to standard error and
/// the exit code is 1 (so `sidecar inject -f x.yaml > y.yaml` never leaves a
/// half-written manifest behind a success).
pub fn run_inject_cli(args: InjectArgs) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    run_inject(
        &args,
        &mut std::io::stdin().lock(),
        &mut stdout,
        &mut stderr,
    )
}

/// [`run_inject_cli`] with its streams passed in, for tests.
pub fn run_inject(
    args: &InjectArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> ExitCode {
    let (source, input) = if args.filename.as_os_str() == "-" {
        let mut buf = String::new();
        if let Err(e) = stdin.read_to_string(&mut buf) {
            let _ = writeln!(stderr, "error: cannot read standard input: {e}");
            return ExitCode::FAILURE;
        }
        ("<stdin>".to_owned(), buf)
    } else {
        match std::fs::read_to_string(&args.filename) {
            Ok(s) => (args.filename.display().to_string(), s),
            Err(e) => {
                let _ = writeln!(
                    stderr,
                    "error: cannot read {}: {e}",
                    args.filename.display()
                );
                return ExitCode::FAILURE;
            }
        }
    };
    let injected = match inject_manifests(&input, &args.defaults.to_options(args.all)) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(stderr, "error: {source}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = stdout
        .write_all(injected.yaml.as_bytes())
        .and_then(|()| stdout.flush())
    {
        let _ = writeln!(stderr, "error: cannot write the result: {e}");
        return ExitCode::FAILURE;
    }
    if !args.quiet {
        for w in &injected.workloads {
            let _ = match w.outcome {
                Outcome::Injected => writeln!(stderr, "{}: injected", w.workload),
                Outcome::Skipped(why) => writeln!(stderr, "{}: skipped, {why}", w.workload),
            };
        }
    }
    ExitCode::SUCCESS
}
