//! Access-log lines: the one format of `proxy_core::telemetry::access_log`,
//! written when the response has been sent, so they carry the real body sizes
//! and the full duration of streamed responses.

pub(crate) use proxy_core::telemetry::access_log::{Counted, Logged, PendingLine};
