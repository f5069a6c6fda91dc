//! Golden-file tests of `sidecar inject`, through the same entry point the
//! binary calls ([`run_inject`]).
//!
//! Each `tests/golden/NAME.yaml` starts with `# weir-inject-args: FLAGS`. A
//! successful run must print `NAME.out.yaml` exactly and injecting that
//! output again must change nothing; a failing run must exit non-zero, print
//! nothing on stdout and print `NAME.err` on stderr. `UPDATE_GOLDEN=1`
//! rewrites the expected files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use weir_inject::{InjectArgs, run_inject};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: InjectArgs,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<_> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".yaml") && !name.ends_with(".out.yaml")
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "golden cases missing: {cases:?}");
    cases
}

fn args_of(input: &str) -> InjectArgs {
    let flags = input
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# weir-inject-args:"))
        .expect("first line must be `# weir-inject-args: ...`");
    let argv = std::iter::once("sidecar-inject").chain(flags.split_whitespace());
    Cli::try_parse_from(argv).expect("flags").args
}

struct Run {
    code: ExitCode,
    stdout: String,
    stderr: String,
}

fn run(args: &InjectArgs, stdin: &str) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_inject(args, &mut stdin.as_bytes(), &mut out, &mut err);
    Run {
        code,
        stdout: String::from_utf8(out).expect("utf-8 stdout"),
        stderr: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

fn check(expected_path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(expected_path, actual).expect("write golden");
        return;
    }
    match std::fs::read_to_string(expected_path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs.\n--- expected\n{expected}\n--- actual\n{actual}",
            expected_path.display()
        )),
        Err(e) => failures.push(format!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            expected_path.display()
        )),
    }
}

#[test]
fn golden_manifests() {
    let mut failures = Vec::new();
    for case in cases() {
        let input = std::fs::read_to_string(&case).expect("read case");
        let args = args_of(&input);
        let first = run(&args, &input);
        let err_path = case.with_extension("err");
        let out_path = case.with_extension("out.yaml");
        let expect_failure = err_path.exists()
            || (std::env::var_os("UPDATE_GOLDEN").is_some() && first.code != ExitCode::SUCCESS);
        if expect_failure {
            if first.code == ExitCode::SUCCESS {
                failures.push(format!("{}: expected failure, got success", case.display()));
            }
            if !first.stdout.is_empty() {
                failures.push(format!(
                    "{}: failed but wrote to stdout:\n{}",
                    case.display(),
                    first.stdout
                ));
            }
            check(&err_path, &first.stderr, &mut failures);
            continue;
        }
        if first.code != ExitCode::SUCCESS {
            failures.push(format!("{}: failed: {}", case.display(), first.stderr));
            continue;
        }
        check(&out_path, &first.stdout, &mut failures);
        // Injecting twice changes nothing.
        let second = run(&args, &first.stdout);
        if second.code != ExitCode::SUCCESS || second.stdout != first.stdout {
            failures.push(format!(
                "{}: second injection changed the output:\n{}\n{}",
                case.display(),
                second.stderr,
                second.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn reads_a_file_and_reports_a_missing_one() {
    let case = golden_dir().join("multi-document.yaml");
    let input = std::fs::read_to_string(&case).expect("read case");
    let mut args = args_of(&input);
    let from_stdin = run(&args, &input);
    args.filename = case;
    let from_file = run(&args, "this is not read");
    assert_eq!(from_file.code, ExitCode::SUCCESS, "{}", from_file.stderr);
    assert_eq!(from_file.stdout, from_stdin.stdout);
    assert_eq!(from_file.stderr, "deployment/catalog: injected\n");

    args.filename = golden_dir().join("does-not-exist.yaml");
    let missing = run(&args, "");
    assert_eq!(missing.code, ExitCode::FAILURE);
    assert!(missing.stdout.is_empty());
    assert!(
        missing.stderr.contains("cannot read") && missing.stderr.contains("does-not-exist.yaml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn summary_names_every_workload_and_why() {
    let input =
        std::fs::read_to_string(golden_dir().join("all-and-opt-out.yaml")).expect("read case");
    let result = run(&args_of(&input), &input);
    assert_eq!(
        result.stderr,
        "deployment/opted-out: skipped, opted out (weir.dev/inject: disabled)\n\
         daemonset/node-agent: skipped, uses hostNetwork\n\
         cronjob/nightly-report: injected\n\
         job/backfill: injected\n"
    );
}

/// Every prefix of every golden input (cut anywhere, as a truncated upload
/// would be) gives an answer, never a panic; and a result, when there is one,
/// is stable under a second injection.
#[test]
fn truncated_inputs_never_panic() {
    let opts = weir_inject::InjectOptions {
        all: true,
        ..Default::default()
    };
    let mut answered = 0;
    for case in cases() {
        let input = std::fs::read_to_string(&case).expect("read case");
        for (cut, _) in input.char_indices() {
            if let Ok(out) = weir_inject::inject_yaml(&input[..cut], &opts) {
                let again = weir_inject::inject_yaml(&out, &opts).expect("re-inject an output");
                assert_eq!(again, out, "{} cut at {cut}", case.display());
                answered += 1;
            }
        }
    }
    assert!(answered > 100, "almost every prefix failed: {answered}");
}
