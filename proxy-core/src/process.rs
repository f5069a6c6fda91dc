//! What the `gateway` and `sidecar` binaries do alike around their libraries:
//! report a validation, set up logging and the allocator, build the runtime.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

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

/// How the process's memory allocator (glibc malloc) is set up, from the
/// environment.
///
/// Why: after a load, glibc keeps the memory that was freed inside its heaps
/// (it only gives back the top of a heap, and only above a threshold that
/// grows with the load), so the resident size stays at its peak for good.
/// Every `trim_every` the proxy asks glibc to return the free pages of all
/// its arenas (`malloc_trim(0)`, `MADV_DONTNEED` on whole free pages: nothing
/// moves, so it is safe while serving). `arenas` caps the number of malloc
/// arenas, which otherwise grows up to 8 per core, each keeping its own
/// free memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatorSettings {
    /// `WEIR_MALLOC_ARENAS`: at most this many malloc arenas (0: glibc's default).
    pub arenas: usize,
    /// `WEIR_MALLOC_TRIM_SECS`: return free memory this often (0: never).
    pub trim_every: Option<Duration>,
}

impl Default for AllocatorSettings {
    fn default() -> Self {
        Self {
            arenas: 0,
            trim_every: Some(Duration::from_secs(10)),
        }
    }
}

impl AllocatorSettings {
    /// Reads `WEIR_MALLOC_ARENAS` and `WEIR_MALLOC_TRIM_SECS` through `get`;
    /// unset or unparsable values keep the defaults.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut s = Self::default();
        if let Some(n) = get("WEIR_MALLOC_ARENAS").and_then(|v| v.parse().ok()) {
            s.arenas = n;
        }
        if let Some(secs) = get("WEIR_MALLOC_TRIM_SECS").and_then(|v| v.parse::<u64>().ok()) {
            s.trim_every = (secs > 0).then(|| Duration::from_secs(secs));
        }
        s
    }

    /// Applies the arena cap; call before any thread is started.
    pub fn apply(&self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if self.arenas > 0 {
            let n = libc::c_int::try_from(self.arenas).unwrap_or(libc::c_int::MAX);
            // SAFETY: mallopt only sets a malloc parameter; called at start-up.
            #[allow(unsafe_code)]
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, n);
            }
        }
    }

    /// Spawns the periodic trim on the current runtime, if enabled.
    pub fn spawn_trim(&self) {
        let Some(every) = self.trim_every else {
            return;
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                // It walks every arena: off the runtime's workers.
                let _ = tokio::task::spawn_blocking(trim_allocator).await;
            }
        });
    }
}

/// Returns the allocator's free memory to the system (glibc: `malloc_trim(0)`);
/// true when some was released.
pub fn trim_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes malloc's own locks; callable from any thread.
        #[allow(unsafe_code)]
        let released = unsafe { libc::malloc_trim(0) };
        released == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Runs `main` to completion on [`runtime`], with the allocator set up from
/// the environment ([`AllocatorSettings`]); an error is printed with its
/// chain of causes and exits 1.
pub fn run_main<F, E>(name: &str, main: F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let alloc = AllocatorSettings::from_env(|k| std::env::var(k).ok());
    alloc.apply();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(async move {
        alloc.spawn_trim();
        main.await
    }) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn allocator_defaults_trim_every_ten_seconds() {
        let s = AllocatorSettings::from_env(env(&[]));
        assert_eq!(s, AllocatorSettings::default());
        assert_eq!(s.trim_every, Some(Duration::from_secs(10)));
        assert_eq!(s.arenas, 0);
    }

    #[test]
    fn allocator_settings_from_the_environment() {
        let s = AllocatorSettings::from_env(env(&[
            ("WEIR_MALLOC_ARENAS", "2"),
            ("WEIR_MALLOC_TRIM_SECS", "0"),
        ]));
        assert_eq!(s.arenas, 2);
        assert_eq!(s.trim_every, None);
        let s = AllocatorSettings::from_env(env(&[("WEIR_MALLOC_TRIM_SECS", "x")]));
        assert_eq!(s.trim_every, Some(Duration::from_secs(10)));
    }

    #[test]
    fn trimming_after_freeing_a_large_heap_gives_memory_back() {
        // Many small blocks (below the mmap threshold, so they live in the
        // heap) with one still in use above them, freed: glibc cannot give
        // them back by shrinking the heap and keeps them until trimmed.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 4000]).collect();
        let pin = vec![1u8; 4000];
        drop(blocks);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(trim_allocator());
        drop(pin);
    }
}
