//! A batch span processor that never makes a request wait for the collector.
//!
//! The SDK's `BatchSpanProcessor` also drops on a full queue, but only logs the
//! count once at shutdown; operators need it as a metric while it happens. So
//! we keep our own: `on_end` does one `try_send` into a bounded channel (no
//! lock shared with the exporter, no allocation beyond the span itself) and a
//! tokio task drains it into export calls, each bounded by a deadline.
//!
//! A span is *dropped* when the queue is full (collector slow or down), when an
//! export call fails or times out, or when the processor has shut down. All
//! three are counted in [`SpanStats`]; none of them blocks the caller.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use super::config::QueueSettings;

/// Counters of what happened to finished, sampled spans.
///
/// Cheap to clone (shared atomics); register them with
/// [`crate::telemetry::Telemetry::register_metrics`].
#[derive(Clone, Debug, Default)]
pub struct SpanStats {
    /// Handed to the exporter and acknowledged by the collector.
    pub exported: Counter,
    /// Lost because the queue was full (`weir_telemetry_spans_dropped_total{reason="queue_full"}`).
    pub dropped_queue_full: Counter,
    /// Lost because the export call failed or timed out.
    pub dropped_export_failed: Counter,
    /// Lost because they ended after shutdown.
    pub dropped_shutdown: Counter,
}

impl SpanStats {
    /// All spans lost, for whatever reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full.get()
            + self.dropped_export_failed.get()
            + self.dropped_shutdown.get()
    }

    pub fn exported(&self) -> u64 {
        self.exported.get()
    }
}

/// Requests from the [`crate::telemetry::Telemetry`] handle to the export task.
/// Scrapes as `weir_telemetry_spans_dropped_total{reason="queue_full|export_failed|shutdown"}`
/// and `weir_telemetry_spans_exported_total`.
impl Collector for SpanStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "weir_telemetry_spans_dropped",
            "Finished, sampled spans lost before reaching the collector",
            None,
            MetricType::Counter,
        )?;
        for (reason, counter) in [
            ("queue_full", &self.dropped_queue_full),
            ("export_failed", &self.dropped_export_failed),
            ("shutdown", &self.dropped_shutdown),
        ] {
            counter.encode(family.encode_family(&[("reason", reason)])?)?;
        }
        let exported = encoder.encode_descriptor(
            "weir_telemetry_spans_exported",
            "Finished, sampled spans accepted by the collector",
            None,
            MetricType::Counter,
        )?;
        self.exported.encode(exported)
    }
}

#[derive(Debug)]
pub(crate) enum Control {
    /// Export everything queued so far, then acknowledge.
    Flush(oneshot::Sender<()>),
    /// Flush, shut the exporter down, stop.
    Shutdown(oneshot::Sender<()>),
}

/// The [`SpanProcessor`] half: lives inside the tracer provider.
#[derive(Debug)]
pub(crate) struct QueueingProcessor {
    spans: mpsc::Sender<SpanData>,
    control: mpsc::Sender<Control>,
    stats: SpanStats,
}

impl QueueingProcessor {
    /// Spawns the export task on the current tokio runtime.
    ///
    /// The exporter must already carry its resource: the provider's
    /// `set_resource` call reaches this processor, not the moved exporter.
    pub(crate) fn spawn<E: SpanExporter + 'static>(
        exporter: E,
        queue: QueueSettings,
        export_timeout: Duration,
        stats: SpanStats,
        runtime: &tokio::runtime::Handle,
    ) -> (Self, mpsc::Sender<Control>) {
        let (spans_tx, spans_rx) = mpsc::channel(queue.max_spans.max(1));
        let (control_tx, control_rx) = mpsc::channel(4);
        let task = ExportTask {
            exporter,
            spans: spans_rx,
            control: control_rx,
            queue,
            export_timeout,
            stats: stats.clone(),
        };
        runtime.spawn(task.run());
        (
            Self {
                spans: spans_tx,
                control: control_tx.clone(),
                stats,
            },
            control_tx,
        )
    }
}

impl SpanProcessor for QueueingProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.spans.try_send(span) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.dropped_queue_full.inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.dropped_shutdown.inc();
            }
        }
    }

    /// Asks for a flush without waiting: this is called from synchronous SDK
    /// code that may run on a runtime thread, where blocking would deadlock.
    /// [`crate::telemetry::Telemetry::flush`] is the awaitable version.
    fn force_flush(&self) -> OTelSdkResult {
        let (ack, _) = oneshot::channel();
        self.control
            .try_send(Control::Flush(ack))
            .map_err(|_| OTelSdkError::AlreadyShutdown)
    }

    /// Same non-blocking rule as `force_flush`; the awaitable version is
    /// [`crate::telemetry::Telemetry::shutdown`].
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let (ack, _) = oneshot::channel();
        // A full or closed control channel means a shutdown is already under way.
        let _ = self.control.try_send(Control::Shutdown(ack));
        Ok(())
    }
}

struct ExportTask<E> {
    exporter: E,
    spans: mpsc::Receiver<SpanData>,
    control: mpsc::Receiver<Control>,
    queue: QueueSettings,
    export_timeout: Duration,
    stats: SpanStats,
}

impl<E: SpanExporter> ExportTask<E> {
    async fn run(mut self) {
        let mut batch: Vec<SpanData> = Vec::with_capacity(self.queue.max_batch);
        let mut deadline = tokio::time::Instant::now() + self.queue.flush_interval;
        loop {
            tokio::select! {
                biased;
                msg = self.control.recv() => match msg {
                    Some(Control::Flush(ack)) => {
                        self.drain(&mut batch).await;
                        let _ = ack.send(());
                    }
                    Some(Control::Shutdown(ack)) => {
                        self.spans.close();
                        self.drain(&mut batch).await;
                        let _ = self.exporter.shutdown_with_timeout(self.export_timeout);
                        let _ = ack.send(());
                        return;
                    }
                    // Every handle is gone: nobody can ask for spans any more.
                    None => return,
                },
                span = self.spans.recv() => match span {
                    Some(span) => {
                        if batch.is_empty() {
                            deadline = tokio::time::Instant::now() + self.queue.flush_interval;
                        }
                        batch.push(span);
                        if batch.len() >= self.queue.max_batch {
                            self.export(&mut batch).await;
                        }
                    }
                    None => {
                        self.export(&mut batch).await;
                        return;
                    }
                },
                () = tokio::time::sleep_until(deadline), if !batch.is_empty() => {
                    self.export(&mut batch).await;
                }
            }
        }
    }

    /// Exports what is batched plus everything queued right now.
    async fn drain(&mut self, batch: &mut Vec<SpanData>) {
        while let Ok(span) = self.spans.try_recv() {
            batch.push(span);
            if batch.len() >= self.queue.max_batch {
                self.export(batch).await;
            }
        }
        self.export(batch).await;
    }

    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::replace(batch, Vec::with_capacity(self.queue.max_batch));
        let n = spans.len() as u64;
        match tokio::time::timeout(self.export_timeout, self.exporter.export(spans)).await {
            Ok(Ok(())) => {
                self.stats.exported.inc_by(n);
            }
            Ok(Err(err)) => {
                self.stats.dropped_export_failed.inc_by(n);
                tracing::debug!(error = %err, spans = n, "span export failed; spans dropped");
            }
            Err(_) => {
                self.stats.dropped_export_failed.inc_by(n);
                tracing::debug!(spans = n, "span export timed out; spans dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    /// An exporter that records batches, or parks until released, or fails.
    #[derive(Debug, Clone)]
    struct TestExporter {
        seen: Arc<Mutex<Vec<String>>>,
        gate: Arc<tokio::sync::Semaphore>,
        fail: bool,
    }

    impl SpanExporter for TestExporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let _permit = self.gate.acquire().await;
            if self.fail {
                return Err(OTelSdkError::InternalFailure("collector down".into()));
            }
            self.seen
                .lock()
                .unwrap()
                .extend(batch.into_iter().map(|s| s.name.into_owned()));
            Ok(())
        }
    }

    fn setup(
        exporter: TestExporter,
        max_spans: usize,
    ) -> (SdkTracerProvider, mpsc::Sender<Control>, SpanStats) {
        let stats = SpanStats::default();
        let queue = QueueSettings {
            max_spans,
            max_batch: max_spans.min(4),
            flush_interval: Duration::from_secs(3600),
        };
        let (p, control) = QueueingProcessor::spawn(
            exporter,
            queue,
            Duration::from_secs(3600),
            stats.clone(),
            &tokio::runtime::Handle::current(),
        );
        (
            SdkTracerProvider::builder().with_span_processor(p).build(),
            control,
            stats,
        )
    }

    async fn flush(control: &mpsc::Sender<Control>) {
        let (ack, done) = oneshot::channel();
        control.send(Control::Flush(ack)).await.unwrap();
        done.await.unwrap();
    }

    #[tokio::test]
    async fn exports_every_span_on_flush() {
        let exporter = TestExporter {
            seen: Default::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(1000)),
            fail: false,
        };
        let (provider, control, stats) = setup(exporter.clone(), 64);
        let tracer = provider.tracer("t");
        for i in 0..10 {
            tracer.in_span(format!("s{i}"), |_| {});
        }
        flush(&control).await;
        assert_eq!(stats.exported(), 10);
        assert_eq!(stats.dropped(), 0);
        assert_eq!(exporter.seen.lock().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_stuck_collector_drops_and_counts_instead_of_blocking() {
        // No permits: the first export call parks forever, like a hung collector.
        let exporter = TestExporter {
            seen: Default::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            fail: false,
        };
        let (provider, _control, stats) = setup(exporter, 8);
        let tracer = provider.tracer("t");
        // Ending a span is synchronous: if it could block, this loop would hang.
        for _ in 0..1000 {
            tracer.in_span("s", |_| {});
        }
        // At most the queue plus one in-flight batch can be held; the rest is dropped.
        assert!(stats.dropped_queue_full.get() >= 1000 - 8 - 4, "{stats:?}");
        assert_eq!(stats.exported(), 0);
    }

    #[tokio::test]
    async fn failed_exports_count_as_dropped() {
        let exporter = TestExporter {
            seen: Default::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(1000)),
            fail: true,
        };
        let (provider, control, stats) = setup(exporter, 64);
        let tracer = provider.tracer("t");
        for _ in 0..5 {
            tracer.in_span("s", |_| {});
        }
        flush(&control).await;
        assert_eq!(stats.dropped_export_failed.get(), 5);
        assert_eq!(stats.exported(), 0);
    }

    #[tokio::test]
    async fn spans_after_shutdown_are_counted() {
        let exporter = TestExporter {
            seen: Default::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(1000)),
            fail: false,
        };
        let (provider, control, stats) = setup(exporter, 64);
        let tracer = provider.tracer("t");
        let (ack, done) = oneshot::channel();
        control.send(Control::Shutdown(ack)).await.unwrap();
        done.await.unwrap();
        tracer.in_span("late", |_| {});
        assert_eq!(stats.dropped_shutdown.get(), 1);
    }
}
