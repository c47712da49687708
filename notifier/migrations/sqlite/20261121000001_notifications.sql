-- The same tables as migrations/postgres in SQLite's types: timestamps are INTEGER
-- milliseconds, UUIDs and JSON are TEXT.
CREATE TABLE users (
    id          TEXT    PRIMARY KEY,
    email       TEXT,
    phone       TEXT,
    push_tokens TEXT    NOT NULL,
    webhook_url TEXT,
    opted_out   TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE notifications (
    id              TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    priority        TEXT    NOT NULL,
    idempotency_key TEXT    UNIQUE,
    created_at      INTEGER NOT NULL
);

CREATE TABLE deliveries (
    notification_id TEXT    NOT NULL REFERENCES notifications (id),
    channel         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (notification_id, channel)
);

CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    attempted_at    INTEGER NOT NULL,
    outcome         TEXT    NOT NULL,
    error           TEXT,
    FOREIGN KEY (notification_id, channel) REFERENCES deliveries (notification_id, channel)
);

CREATE INDEX delivery_attempts_delivery ON delivery_attempts (notification_id, channel, id);
