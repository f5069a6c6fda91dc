//! Trace context in and out of HTTP headers.
//!
//! In: W3C `traceparent`/`tracestate` first; when absent or invalid, B3 (the
//! single `b3` header, then the multi `X-B3-*` headers), for meshes that still
//! speak Zipkin's format. `baggage` is read in every case.
//!
//! Out: always W3C `traceparent`/`tracestate` and `baggage`; B3 single or
//! multi in addition when configured. Stale incoming B3 headers are removed
//! on the way out, so the next hop never sees two different parents.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use super::config::B3Output;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const B3_SINGLE: HeaderName = HeaderName::from_static("b3");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
const B3_PARENT: HeaderName = HeaderName::from_static("x-b3-parentspanid");

/// Reads propagation headers from an [`http::HeaderMap`] (first value wins).
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes propagation headers into an [`http::HeaderMap`], replacing old values.
/// Keys or values that are not valid header text are skipped.
///
/// An empty value removes the header instead: the W3C propagator writes
/// `tracestate` even when the trace state is empty, and an empty header tells
/// the next hop nothing while some servers reject it. Removing (rather than
/// skipping) also drops a stale value the request came in with.
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            if let Ok(name) = HeaderName::from_bytes(key.as_bytes()) {
                self.0.remove(name);
            }
            return;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The propagation policy of one process: what it reads and what it writes.
#[derive(Debug, Default)]
pub struct Propagation {
    w3c: TraceContextPropagator,
    baggage: BaggagePropagator,
    b3_output: B3Output,
}

impl Propagation {
    pub fn new(b3_output: B3Output) -> Self {
        Self {
            w3c: TraceContextPropagator::new(),
            baggage: BaggagePropagator::new(),
            b3_output,
        }
    }

    pub fn b3_output(&self) -> B3Output {
        self.b3_output
    }

    /// The remote parent (and baggage) carried by `headers`; an empty context
    /// when there is none, so the caller starts a new trace.
    pub fn extract(&self, headers: &HeaderMap) -> Context {
        let ex = HeaderExtractor(headers);
        let mut cx = Context::new();
        if headers.contains_key(http::header::HeaderName::from_static("traceparent")) {
            cx = self.w3c.extract(&ex);
        }
        if !cx.span().span_context().is_valid()
            && let Some(sc) = extract_b3(headers)
        {
            cx = Context::new().with_remote_span_context(sc);
        }
        if headers.contains_key("baggage") {
            self.baggage.extract_with_context(&cx, &ex)
        } else {
            cx
        }
    }

    /// Writes the span context of `cx` (and its baggage) into `headers`.
    /// A context without a valid span leaves the trace headers untouched.
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            headers.insert(TRACEPARENT, traceparent(sc));
            let state = sc.trace_state().header();
            if state.is_empty() {
                headers.remove(TRACESTATE);
            } else if let Ok(v) = HeaderValue::try_from(state) {
                headers.insert(TRACESTATE, v);
            }
            for name in [
                B3_SINGLE,
                B3_TRACE_ID,
                B3_SPAN_ID,
                B3_SAMPLED,
                B3_FLAGS,
                B3_PARENT,
            ] {
                headers.remove(name);
            }
            match self.b3_output {
                B3Output::None => {}
                B3Output::Single => {
                    let mut v = [0u8; 32 + 1 + 16 + 2];
                    hex_into(&mut v[..32], &sc.trace_id().to_bytes());
                    v[32] = b'-';
                    hex_into(&mut v[33..49], &sc.span_id().to_bytes());
                    v[49] = b'-';
                    v[50] = if sc.is_sampled() { b'1' } else { b'0' };
                    if let Ok(v) = HeaderValue::from_bytes(&v) {
                        headers.insert(B3_SINGLE, v);
                    }
                }
                B3Output::Multi => {
                    let mut inj = HeaderInjector(headers);
                    inj.set(B3_TRACE_ID.as_str(), sc.trace_id().to_string());
                    inj.set(B3_SPAN_ID.as_str(), sc.span_id().to_string());
                    inj.set(
                        B3_SAMPLED.as_str(),
                        if sc.is_sampled() { "1" } else { "0" }.to_owned(),
                    );
                }
            }
        }
        self.baggage
            .inject_context(cx, &mut HeaderInjector(headers));
    }
}

/// `00-<trace id>-<span id>-<flags>`, written into a fixed buffer.
///
/// The SDK's propagator formats the ids through `fmt` (about 5,000
/// instructions per outgoing request); this is the same text for a tenth.
fn traceparent(sc: &SpanContext) -> HeaderValue {
    let mut v = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut v[3..35], &sc.trace_id().to_bytes());
    hex_into(&mut v[36..52], &sc.span_id().to_bytes());
    hex_into(
        &mut v[53..55],
        &[(sc.trace_flags() & TraceFlags::SAMPLED).to_u8()],
    );
    HeaderValue::from_bytes(&v).expect("hex digits and dashes are header text")
}

/// Lower-case hex of `bytes` into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// B3 single (`b3: trace-span[-sampled[-parent]]`) or multi (`X-B3-*`) headers.
fn extract_b3(headers: &HeaderMap) -> Option<SpanContext> {
    if let Some(v) = headers.get(B3_SINGLE).and_then(|v| v.to_str().ok()) {
        return parse_b3_single(v.trim());
    }
    let trace = headers.get(B3_TRACE_ID)?.to_str().ok()?;
    let span = headers.get(B3_SPAN_ID)?.to_str().ok()?;
    let debug = headers.get(B3_FLAGS).and_then(|v| v.to_str().ok()) == Some("1");
    let sampled = match headers.get(B3_SAMPLED).and_then(|v| v.to_str().ok()) {
        Some("1" | "true") => true,
        Some(_) => false,
        // Absent: the decision is deferred to us; treat as sampled only when debug.
        None => debug,
    };
    b3_span_context(trace.trim(), span.trim(), sampled || debug)
}

fn parse_b3_single(v: &str) -> Option<SpanContext> {
    let mut parts = v.split('-');
    let trace = parts.next()?;
    let span = parts.next()?;
    let sampled = matches!(parts.next(), Some("1" | "d"));
    b3_span_context(trace, span, sampled)
}

/// B3 allows 64-bit trace ids: they are left-padded to W3C's 128 bits.
fn b3_span_context(trace: &str, span: &str, sampled: bool) -> Option<SpanContext> {
    if !(trace.len() == 16 || trace.len() == 32) || span.len() != 16 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue;
    use opentelemetry::baggage::BaggageExt;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn w3c_with_tracestate_and_baggage_round_trips() {
        let p = Propagation::new(B3Output::None);
        let cx = p.extract(&headers(&[
            ("traceparent", TP),
            ("tracestate", "vendor=abc,other=x"),
            ("baggage", "tenant=acme,plan=gold"),
        ]));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.trace_state().get("vendor"), Some("abc"));
        assert_eq!(
            cx.baggage().get("tenant").map(|v| v.as_str().to_owned()),
            Some("acme".into())
        );

        let mut out = HeaderMap::new();
        p.inject(&cx, &mut out);
        assert_eq!(out["traceparent"], TP);
        assert_eq!(out["tracestate"], "vendor=abc,other=x");
        let baggage = out["baggage"].to_str().unwrap();
        assert!(
            baggage.contains("tenant=acme") && baggage.contains("plan=gold"),
            "{baggage}"
        );
        assert!(!out.contains_key("b3"));
    }

    #[test]
    fn b3_single_is_accepted_and_64_bit_ids_are_padded() {
        let p = Propagation::new(B3Output::None);
        let cx = p.extract(&headers(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")]));
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());

        let cx = p.extract(&headers(&[(
            "b3",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        )]));
        assert!(cx.span().span_context().is_valid());
        assert!(!cx.span().span_context().is_sampled());
    }

    #[test]
    fn b3_multi_is_accepted() {
        let p = Propagation::new(B3Output::None);
        let cx = p.extract(&headers(&[
            ("X-B3-TraceId", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("X-B3-SpanId", "00f067aa0ba902b7"),
            ("X-B3-Sampled", "1"),
        ]));
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
    }

    #[test]
    fn w3c_wins_over_b3_and_garbage_starts_fresh() {
        let p = Propagation::new(B3Output::None);
        let cx = p.extract(&headers(&[
            ("traceparent", TP),
            ("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1"),
        ]));
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        for bad in [
            &[("traceparent", "00-zz-00f067aa0ba902b7-01")][..],
            &[("b3", "nonsense")][..],
            &[
                ("x-b3-traceid", "00000000000000000000000000000000"),
                ("x-b3-spanid", "00f067aa0ba902b7"),
            ][..],
        ] {
            assert!(
                !p.extract(&headers(bad)).span().span_context().is_valid(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn b3_output_single_and_multi_replace_stale_headers() {
        let incoming = headers(&[("traceparent", TP)]);
        let single = Propagation::new(B3Output::Single);
        let cx = single.extract(&incoming);
        let mut out = headers(&[("x-b3-spanid", "1111111111111111"), ("b3", "stale")]);
        single.inject(&cx, &mut out);
        assert_eq!(
            out["b3"],
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
        );
        assert!(!out.contains_key("x-b3-spanid"));

        let multi = Propagation::new(B3Output::Multi);
        let mut out = headers(&[("b3", "stale")]);
        multi.inject(&cx, &mut out);
        assert_eq!(out["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(out["x-b3-spanid"], "00f067aa0ba902b7");
        assert_eq!(out["x-b3-sampled"], "1");
        assert!(!out.contains_key("b3"));
    }

    #[test]
    fn b3_in_becomes_w3c_out() {
        let p = Propagation::new(B3Output::None);
        let cx = p.extract(&headers(&[(
            "b3",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        )]));
        let mut out = headers(&[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")]);
        p.inject(&cx, &mut out);
        assert_eq!(out["traceparent"], TP);
        assert!(!out.contains_key("b3"));
    }

    #[test]
    fn empty_trace_state_writes_no_tracestate_header() {
        let p = Propagation::new(B3Output::None);
        let cx = p.extract(&headers(&[("traceparent", TP)]));
        let mut out = headers(&[("tracestate", "stale=1")]);
        p.inject(&cx, &mut out);
        assert_eq!(out["traceparent"], TP);
        assert!(!out.contains_key("tracestate"), "{out:?}");
        assert!(
            out.values().all(|v| !v.is_empty()),
            "no empty header goes out: {out:?}"
        );
    }

    #[test]
    fn baggage_alone_is_carried() {
        let p = Propagation::default();
        let cx = Context::new().with_baggage([KeyValue::new("k", "v")]);
        let mut out = HeaderMap::new();
        p.inject(&cx, &mut out);
        assert_eq!(out["baggage"], "k=v");
        assert!(!out.contains_key("traceparent"));
    }
}
