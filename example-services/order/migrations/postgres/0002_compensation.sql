-- Compensation that outlives failures: a refund owed to the customer is kept
-- (refund = 'pending') and retried with backoff (retry_at, attempts) until the
-- payment service confirms it ('completed').
ALTER TABLE orders ADD COLUMN refund TEXT;
ALTER TABLE orders ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN retry_at BIGINT;

CREATE INDEX orders_retry ON orders (status, retry_at);
