-- Events on more than one bus, and traces that cross them.
-- Each bus marks its own delivery (published_at is RabbitMQ's, kept from
-- before there was a second bus), so each drains its backlog on its own.
-- traceparent/tracestate hold the W3C context of the change that wrote the
-- event; the relay's publish span continues that trace.
ALTER TABLE outbox ADD COLUMN kafka_published_at BIGINT;
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
ALTER TABLE outbox ADD COLUMN tracestate TEXT;

CREATE INDEX outbox_kafka_unpublished ON outbox (kafka_published_at, id);
