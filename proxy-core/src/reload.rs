//! Hot reload: a whole runtime snapshot built off to the side and swapped in
//! with one `ArcSwap::store`.
//!
//! Requests load the current snapshot once when they start and keep it to the
//! end, so a reload never changes the rules under a request in flight, and no
//! lock is ever taken on the request path. A file that fails to parse or
//! validate leaves the running snapshot in place; the failure is logged and
//! counted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::ConfigErrors;
use crate::shutdown::Shutdown;

/// Builds a snapshot from the file at `path`; `previous` lets the builder keep
/// state that must survive reloads (connection pools, health, rate limits).
pub type BuildFn<S> = dyn Fn(&Path, Option<&S>) -> Result<S, ConfigErrors> + Send + Sync;

/// Names the fields of a new snapshot whose value differs from what the
/// process runs with and that only a restart applies (listener addresses,
/// connection limits…), as field paths (`limits.idle_timeout`).
pub type RestartCheck<S> = dyn Fn(&S) -> Vec<String> + Send + Sync;

/// What a reload that was accepted did not apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Field paths whose new value waits for a restart; empty when the whole
    /// file is in effect.
    pub restart_required: Vec<String>,
}

impl ReloadReport {
    /// Whether everything in the file is now in effect.
    pub fn fully_applied(&self) -> bool {
        self.restart_required.is_empty()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Reload counters (`weir_config_reloads_total{result}`,
/// `weir_config_last_reload_success`).
#[derive(Clone, Debug, Default)]
pub struct ReloadMetrics {
    reloads: Family<ResultLabel, Counter>,
    last_ok: Gauge,
    restart_pending: Gauge,
}

impl ReloadMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "weir_config_reloads",
            "Configuration reloads by result",
            self.reloads.clone(),
        );
        registry.register(
            "weir_config_last_reload_success",
            "1 when the last reload attempt succeeded, 0 when it was refused",
            self.last_ok.clone(),
        );
        registry.register(
            "weir_config_restart_pending_fields",
            "Changed config fields that the last accepted reload could not apply without a restart",
            self.restart_pending.clone(),
        );
    }

    fn record(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
        self.last_ok.set(i64::from(ok));
    }

    /// Reloads by result, for tests and `/config`.
    pub fn count(&self, ok: bool) -> u64 {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabel { result }).get()
    }
}

/// Owns the current snapshot of type `S` and replaces it on demand.
pub struct Reloader<S> {
    path: PathBuf,
    current: Arc<ArcSwap<S>>,
    build: Box<BuildFn<S>>,
    restart_check: Option<Box<RestartCheck<S>>>,
    metrics: ReloadMetrics,
    /// Serialises reloads (file events, SIGHUP and the admin endpoint may race);
    /// never touched by requests.
    building: Mutex<()>,
}

impl<S: Send + Sync + 'static> Reloader<S> {
    /// Builds the first snapshot; an invalid file is an error here, since there
    /// is nothing to keep serving.
    pub fn new(
        path: impl Into<PathBuf>,
        build: impl Fn(&Path, Option<&S>) -> Result<S, ConfigErrors> + Send + Sync + 'static,
        metrics: ReloadMetrics,
    ) -> Result<Self, ConfigErrors> {
        let path = path.into();
        let first = build(&path, None)?;
        Ok(Self {
            path,
            current: Arc::new(ArcSwap::from_pointee(first)),
            build: Box::new(build),
            restart_check: None,
            metrics,
            building: Mutex::new(()),
        })
    }

    /// Sets how a reload finds the changes it cannot apply: `check` compares
    /// a new snapshot with what the process started with. Without it every
    /// accepted reload counts as fully applied.
    pub fn with_restart_check(
        mut self,
        check: impl Fn(&S) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.restart_check = Some(Box::new(check));
        self
    }

    /// The swap cell requests read from.
    pub fn current(&self) -> &Arc<ArcSwap<S>> {
        &self.current
    }

    pub fn metrics(&self) -> &ReloadMetrics {
        &self.metrics
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file and swaps the new snapshot in, or keeps the old one.
    /// Changes that need a restart are logged (see [`reload_report`](Self::reload_report)).
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        self.reload_report().map(drop)
    }

    /// [`reload`](Self::reload), also naming each changed field that stays at
    /// its running value until a restart. Such a reload still applies the
    /// rest of the file; it is logged as a warning per field, not as
    /// "reloaded", and `weir_config_restart_pending_fields` counts the fields.
    pub fn reload_report(&self) -> Result<ReloadReport, ConfigErrors> {
        let _guard = self.building.lock().unwrap_or_else(|p| p.into_inner());
        let previous = self.current.load_full();
        match (self.build)(&self.path, Some(&previous)) {
            Ok(next) => {
                let restart_required = self
                    .restart_check
                    .as_ref()
                    .map(|check| check(&next))
                    .unwrap_or_default();
                self.current.store(Arc::new(next));
                self.metrics.record(true);
                self.metrics
                    .restart_pending
                    .set(i64::try_from(restart_required.len()).unwrap_or(i64::MAX));
                if restart_required.is_empty() {
                    tracing::info!(path = %self.path.display(), "configuration reloaded");
                } else {
                    for field in &restart_required {
                        tracing::warn!(path = %self.path.display(), %field, "configuration change not applied: it needs a restart; the running value stays until then");
                    }
                    tracing::warn!(path = %self.path.display(), fields = ?restart_required, "configuration reloaded except for fields that need a restart");
                }
                Ok(ReloadReport { restart_required })
            }
            Err(errors) => {
                self.metrics.record(false);
                for e in errors.iter() {
                    tracing::error!(path = %self.path.display(), error = %e, "configuration reload refused; keeping the running configuration");
                }
                Err(errors)
            }
        }
    }

    /// [`reload`](Self::reload) on a blocking thread: building a large config
    /// must not stall the async workers that carry traffic.
    pub async fn reload_in_background(self: &Arc<Self>) {
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.reload()).await;
    }

    /// Reloads on SIGHUP and whenever the file (or the directory entry that
    /// points at it, as Kubernetes ConfigMap mounts swap a symlink) changes.
    pub fn spawn_watchers(self: &Arc<Self>, shutdown: Shutdown) {
        #[cfg(unix)]
        {
            let this = self.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                let stopped = stop.wait();
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = hup.recv() => { this.reload_in_background().await; }
                        _ = &mut stopped => return,
                    }
                }
            });
        }
        self.spawn_file_watcher(shutdown);
    }

    fn spawn_file_watcher(self: &Arc<Self>, shutdown: Shutdown) {
        use notify::{RecursiveMode, Watcher};
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let file_name = self.path.file_name().map(|n| n.to_owned());
        let mut watcher = match notify::recommended_watcher(
            move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res {
                    let relevant = ev
                        .paths
                        .iter()
                        .any(|p| p.file_name() == file_name.as_deref() || p.ends_with("..data"));
                    if relevant && !ev.kind.is_access() {
                        let _ = tx.try_send(());
                    }
                }
            },
        ) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload");
                return;
            }
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory");
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            let stopped = shutdown.wait();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    ev = rx.recv() => {
                        if ev.is_none() { return; }
                        // Editors write in several steps: wait for the burst to settle.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while rx.try_recv().is_ok() {}
                        this.reload_in_background().await;
                    }
                    _ = &mut stopped => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_file_keeps_old_snapshot() {
        let dir = std::env::temp_dir().join(format!("weir-reload-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("n.txt");
        std::fs::write(&file, "1").unwrap();
        let build = |p: &Path, _prev: Option<&u32>| {
            let s = std::fs::read_to_string(p).unwrap();
            s.trim()
                .parse::<u32>()
                .map_err(|e| crate::config::ConfigError::new("", e.to_string()).into())
        };
        let r = Reloader::new(&file, build, ReloadMetrics::default()).unwrap();
        assert_eq!(**r.current().load(), 1);
        std::fs::write(&file, "two").unwrap();
        assert!(r.reload().is_err());
        assert_eq!(**r.current().load(), 1);
        std::fs::write(&file, "3").unwrap();
        r.reload().unwrap();
        assert_eq!(**r.current().load(), 3);
        assert_eq!(r.metrics().count(true), 1);
        assert_eq!(r.metrics().count(false), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_change_that_needs_a_restart_is_reported_not_hidden() {
        let dir = std::env::temp_dir().join(format!("weir-reload-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("n.txt");
        std::fs::write(&file, "1").unwrap();
        let build = |p: &Path, _prev: Option<&u32>| {
            Ok(std::fs::read_to_string(p)
                .unwrap()
                .trim()
                .parse::<u32>()
                .unwrap())
        };
        // The "process" started with 1; a value above 10 would need a restart.
        let r = Reloader::new(&file, build, ReloadMetrics::default())
            .unwrap()
            .with_restart_check(|n: &u32| {
                if *n > 10 {
                    vec!["n".to_owned()]
                } else {
                    Vec::new()
                }
            });
        std::fs::write(&file, "2").unwrap();
        assert!(r.reload_report().unwrap().fully_applied());
        std::fs::write(&file, "20").unwrap();
        let report = r.reload_report().unwrap();
        assert_eq!(report.restart_required, ["n"]);
        assert_eq!(r.metrics().restart_pending.get(), 1);
        assert_eq!(**r.current().load(), 20, "the snapshot is still swapped in");
        std::fs::write(&file, "3").unwrap();
        r.reload().unwrap();
        assert_eq!(r.metrics().restart_pending.get(), 0);
        std::fs::remove_dir_all(dir).ok();
    }
}
