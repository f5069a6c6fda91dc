-- The catalog's read model of order events: units sold per product.
-- processed_events makes consumption idempotent: an event's effect and its
-- id are written in one transaction, so a redelivered event changes nothing.
CREATE TABLE product_sales (
    product_id TEXT PRIMARY KEY,
    units_sold BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

CREATE TABLE processed_events (
    event_id     TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    bus          TEXT NOT NULL,
    processed_at BIGINT NOT NULL
);

-- Messages that could not be understood, set aside so they do not stall
-- the ones behind them; `position` says where on the bus they were.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    bus         TEXT NOT NULL,
    position    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
