//! Trace context across a message bus, and the spans of sending and
//! processing a message, after the OpenTelemetry messaging conventions.
//!
//! A request's trace would otherwise end where its event enters a queue.
//! The producer writes the W3C context (`traceparent`, `tracestate`) of its
//! PRODUCER span into the message's headers (Kafka record headers, AMQP
//! message headers); the consumer reads them back and opens its CONSUMER span
//! as a child, so the work a message causes sits in the trace of the change
//! that caused it. Events wait in an outbox before they are sent, so the
//! context of the change is captured when the event is written
//! ([`TraceHeaders::current`]) and stored beside it.
//!
//! Span names are `publish {destination}` and `process {destination}`;
//! attributes `messaging.system`, `messaging.destination.name`,
//! `messaging.operation.type` (`send`, `process`), `messaging.operation.name`,
//! `messaging.message.id`, and what the caller adds for its bus
//! (`messaging.kafka.message.key`, `messaging.consumer.group.name`, …).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use proxy_core::telemetry::{Propagation, TraceContext};

use crate::telemetry::{ActiveSpan, ServiceTelemetry};

/// The W3C trace-context headers a message carries.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The W3C trace context of a message: what is stored with an outbox event
/// and written into (or read from) a message's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `traceparent`, e.g. `00-<trace id>-<span id>-01`.
    pub traceparent: Option<String>,
    /// `tracestate`, vendor data that travels with the trace.
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The context of the span current here (the request changing an order),
    /// or nothing when there is none (tracing off, a background pass).
    pub fn current() -> Self {
        let cx = TraceContext::current();
        if !cx.has_active_span() || !cx.span().span_context().is_valid() {
            return Self::default();
        }
        let mut headers = HeaderMap::new();
        Propagation::default().inject(&cx, &mut headers);
        Self::from_headers(&headers)
    }

    /// Reads the two headers from `(name, value)` pairs (any header source);
    /// names compare case-insensitively, other headers are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut out = Self::default();
        for (name, value) in pairs {
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            if name.eq_ignore_ascii_case("traceparent") {
                out.traceparent = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("tracestate") {
                out.tracestate = Some(value.to_owned());
            }
        }
        out
    }

    /// The pairs to write as message headers (absent ones left out).
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("traceparent", self.traceparent.as_deref()),
            ("tracestate", self.tracestate.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }

    fn from_headers(headers: &HeaderMap) -> Self {
        Self::from_pairs(
            TRACE_HEADERS
                .iter()
                .filter_map(|name| headers.get(*name).map(|value| (*name, value.as_bytes()))),
        )
    }

    fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in self.pairs() {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        headers
    }

    fn context(&self, telemetry: &ServiceTelemetry) -> TraceContext {
        telemetry
            .telemetry()
            .propagation()
            .extract(&self.to_headers())
    }
}

/// What names a message in its spans.
#[derive(Debug, Clone, Copy)]
pub struct MessageSpan<'a> {
    /// `messaging.system`: `kafka` or `rabbitmq`.
    pub system: &'static str,
    /// `messaging.destination.name`: the topic or exchange.
    pub destination: &'a str,
    /// `messaging.message.id`: the event id.
    pub message_id: &'a str,
}

impl MessageSpan<'_> {
    fn attributes(&self, operation_type: &'static str, name: &'static str) -> Vec<KeyValue> {
        vec![
            KeyValue::new("messaging.system", self.system),
            KeyValue::new("messaging.destination.name", self.destination.to_owned()),
            KeyValue::new("messaging.operation.type", operation_type),
            KeyValue::new("messaging.operation.name", name),
            KeyValue::new("messaging.message.id", self.message_id.to_owned()),
        ]
    }
}

/// Opens the PRODUCER span `publish {destination}` as a child of `parent`
/// (the context stored with the event) and gives the headers to send with
/// the message: the span's own context, so the consumer becomes its child.
/// With tracing off the stored context travels on unchanged.
pub fn producer_span(
    telemetry: &ServiceTelemetry,
    message: MessageSpan<'_>,
    parent: &TraceHeaders,
    extra: Vec<KeyValue>,
) -> (ActiveSpan, TraceHeaders) {
    let t = telemetry.telemetry();
    let mut attrs = message.attributes("send", "publish");
    attrs.extend(extra);
    let span = t.child_span(
        &parent.context(telemetry),
        format!("publish {}", message.destination),
        SpanKind::Producer,
        attrs,
    );
    let sent = if span.context().span().span_context().is_valid() {
        let mut headers = HeaderMap::new();
        t.propagation().inject(span.context(), &mut headers);
        TraceHeaders::from_headers(&headers)
    } else {
        parent.clone()
    };
    (span, sent)
}

/// Opens the CONSUMER span `process {destination}` as a child of the
/// context a received message carries; run the message's work inside it
/// with [`ServiceTelemetry::in_span`].
pub fn consumer_span(
    telemetry: &ServiceTelemetry,
    message: MessageSpan<'_>,
    received: &TraceHeaders,
    extra: Vec<KeyValue>,
) -> ActiveSpan {
    let mut attrs = message.attributes("process", "process");
    attrs.extend(extra);
    telemetry.telemetry().child_span(
        &received.context(telemetry),
        format!("process {}", message.destination),
        SpanKind::Consumer,
        attrs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn reads_only_the_trace_headers() {
        let pairs: [(&str, &[u8]); 3] = [
            ("TraceParent", PARENT.as_bytes()),
            ("event_type", b"order.placed"),
            ("tracestate", b"k=v"),
        ];
        let read = TraceHeaders::from_pairs(pairs);
        assert_eq!(read.traceparent.as_deref(), Some(PARENT));
        assert_eq!(read.tracestate.as_deref(), Some("k=v"));
        assert_eq!(read.pairs().count(), 2);
    }

    #[test]
    fn with_tracing_off_the_stored_context_travels_unchanged() {
        let telemetry = crate::telemetry::disabled("order");
        let stored = TraceHeaders {
            traceparent: Some(PARENT.to_owned()),
            tracestate: None,
        };
        let message = MessageSpan {
            system: "kafka",
            destination: "weir.orders",
            message_id: "e1",
        };
        let (span, sent) = producer_span(&telemetry, message, &stored, Vec::new());
        assert!(!span.is_recording());
        assert_eq!(sent, stored);
        assert_eq!(TraceHeaders::current(), TraceHeaders::default());
    }

    #[tokio::test]
    async fn the_consumer_span_is_a_child_of_the_producer_span() {
        let (telemetry, recorder) = crate::testing::recording_telemetry("order");
        let stored = TraceHeaders {
            traceparent: Some(PARENT.to_owned()),
            tracestate: Some("k=v".to_owned()),
        };
        let message = MessageSpan {
            system: "kafka",
            destination: "weir.orders",
            message_id: "e1",
        };
        let (producer, sent) = producer_span(&telemetry, message, &stored, Vec::new());
        drop(producer);
        assert_eq!(sent.tracestate.as_deref(), Some("k=v"));
        let consumer = consumer_span(&telemetry, message, &sent, Vec::new());
        drop(consumer);
        let spans = recorder.spans().await;
        let publish = spans
            .iter()
            .find(|s| s.name == "publish weir.orders")
            .unwrap();
        let process = spans
            .iter()
            .find(|s| s.name == "process weir.orders")
            .unwrap();
        assert_eq!(publish.kind, "producer");
        assert_eq!(process.kind, "consumer");
        assert_eq!(publish.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(publish.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(process.trace_id, publish.trace_id);
        assert_eq!(
            process.parent_span_id.as_deref(),
            Some(publish.span_id.as_str())
        );
        assert_eq!(process.attr("messaging.operation.type"), Some("process"));
        assert_eq!(publish.attr("messaging.message.id"), Some("e1"));
    }
}
