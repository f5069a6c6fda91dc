//! The shared limiter: one atomic Lua script per decision, so N replicas
//! together admit exactly what one would (no read-then-write race).
//!
//! The script reads Redis' own clock (`TIME`), so replicas with skewed clocks
//! still agree. Every call is bounded by a short timeout; the caller applies
//! the configured failure mode. The connection manager reconnects by itself
//! in the background after a failure.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::gcra::{Decision, Quota};

/// GCRA in microseconds, the same steps as `gcra::decide`.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + emission
if new_tat - now > tolerance then
  return {0, 0, new_tat - tolerance - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((tolerance - (new_tat - now)) / emission), 0, new_tat - now}
";

#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisFailure {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One Redis server, shared by every policy (and config generation) using it.
#[derive(Clone)]
pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
}

impl RedisBackend {
    /// Creates the client without connecting: the first decision connects,
    /// and an unreachable Redis at start-up is just the failure mode at work.
    /// Must run inside a tokio runtime.
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout.max(Duration::from_millis(100))))
            // One attempt per reconnect: each failed request triggers the
            // next, so recovery follows Redis coming back without a long
            // backoff schedule in between.
            .set_number_of_retries(0)
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        Ok(Self {
            conn,
            script: redis::Script::new(SCRIPT),
            timeout,
        })
    }

    pub(crate) async fn check(&self, key: &str, q: &Quota) -> Result<Decision, RedisFailure> {
        let emission_us = (q.emission_ns / 1000).max(1);
        let tolerance_us = emission_us.saturating_mul(q.burst);
        let mut conn = self.conn.clone();
        let mut call = self.script.key(key);
        call.arg(emission_us).arg(tolerance_us);
        let reply: (u8, u64, u64, u64) =
            tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
                .await
                .map_err(|_| RedisFailure::Timeout(self.timeout))??;
        let (allowed, remaining, retry_us, reset_us) = reply;
        Ok(Decision {
            allowed: allowed == 1,
            remaining,
            retry_after: Duration::from_micros(retry_us),
            reset: Duration::from_micros(reset_us),
        })
    }
}
