-- Order: orders, their lines, the saga log and the transactional outbox.
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    request_hash    TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    saga_step       TEXT NOT NULL,
    failure_reason  TEXT,
    total_minor     BIGINT,
    currency        TEXT,
    reservation_id  TEXT,
    payment_id      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_pending ON orders (status, updated_at);

CREATE TABLE order_items (
    order_id   TEXT NOT NULL,
    line       BIGINT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   BIGINT NOT NULL,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE saga_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   TEXT NOT NULL,
    step       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX saga_log_order ON saga_log (order_id, id);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    order_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);

CREATE INDEX outbox_unpublished ON outbox (published_at, id);
