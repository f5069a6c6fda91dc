//! The shared limiter: one atomic Lua script per request (all its limits), so N replicas
//! together admit exactly what one would (no read-then-write race).
//!
//! The script reads Redis' own clock (`TIME`), so replicas with skewed clocks
//! still agree. Every call is bounded by a short timeout; the caller applies
//! the configured failure mode. The connection manager reconnects by itself
//! in the background after a failure.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::gcra::{Decision, Quota};

/// GCRA in microseconds, the same steps as `gcra::decide`, over every key of
/// one request: `KEYS[i]` with `ARGV[2i-1]` (emission) and `ARGV[2i]`
/// (tolerance). Every key is checked first; the new TATs are written only if
/// all of them admit, so a request one limit refuses spends nothing of the
/// others, and no other replica's request can run in between (a script is
/// atomic in Redis). Replies `{all_admitted, then per key: admitted,
/// remaining, retry_us, reset_us}`; an admitting key of a refused request
/// reports its bucket as it stays (nothing spent).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats = {}
local out = {1}
for i = 1, n do
  local emission = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if not tat or tat < now then tat = now end
  local new_tat = tat + emission
  if new_tat - now > tolerance then
    out[1] = 0
    out[4 * i - 2] = 0
    out[4 * i - 1] = 0
    out[4 * i] = new_tat - tolerance - now
    out[4 * i + 1] = tat - now
  else
    tats[i] = new_tat
    out[4 * i - 2] = 1
    out[4 * i - 1] = math.floor((tolerance - (new_tat - now)) / emission)
    out[4 * i] = 0
    out[4 * i + 1] = new_tat - now
  end
end
if out[1] == 1 then
  for i = 1, n do
    redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
  end
else
  for i = 1, n do
    if out[4 * i - 2] == 1 then
      local emission = tonumber(ARGV[2 * i - 1])
      out[4 * i - 1] = out[4 * i - 1] + 1
      out[4 * i + 1] = math.max(out[4 * i + 1] - emission, 0)
    end
  end
end
return out
";

#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisFailure {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis script replied with {0} values")]
    Reply(usize),
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

    /// Decides one request against every `(key, quota)` at once, in one
    /// script call (EVALSHA, loading the script on first use).
    pub(crate) async fn check_all(
        &self,
        entries: &[(String, &Quota)],
    ) -> Result<Vec<Decision>, RedisFailure> {
        let mut conn = self.conn.clone();
        let mut call = self.script.prepare_invoke();
        for (key, q) in entries {
            let emission_us = (q.emission_ns / 1000).max(1);
            let tolerance_us = emission_us.saturating_mul(q.burst);
            call.key(key.as_str()).arg(emission_us).arg(tolerance_us);
        }
        let reply: Vec<u64> = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
            .await
            .map_err(|_| RedisFailure::Timeout(self.timeout))??;
        if reply.len() != 1 + 4 * entries.len() {
            return Err(RedisFailure::Reply(reply.len()));
        }
        Ok(reply[1..]
            .chunks_exact(4)
            .map(|c| Decision {
                allowed: c[0] == 1,
                remaining: c[1],
                retry_after: Duration::from_micros(c[2]),
                reset: Duration::from_micros(c[3]),
            })
            .collect())
    }
}
