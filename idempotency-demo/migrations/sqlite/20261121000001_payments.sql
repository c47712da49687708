-- The same tables as migrations/postgres, in SQLite's types: timestamps are INTEGER milliseconds
-- since the epoch, UUIDs are TEXT (lower-case, hyphenated, so that text order is UUID order).

CREATE TABLE clients (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE idempotency_keys (
    id              INTEGER PRIMARY KEY,
    client_id       INTEGER NOT NULL REFERENCES clients (id),
    key             TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,
    request         TEXT    NOT NULL,
    recovery_point  TEXT    NOT NULL,
    payment_id      TEXT,
    response_status INTEGER,
    response_body   BLOB,
    lock_token      TEXT,
    locked_at       INTEGER,
    last_run_at     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (client_id, key)
);

CREATE INDEX idempotency_keys_unfinished ON idempotency_keys (last_run_at) WHERE recovery_point <> 'finished';
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE payments (
    id              TEXT    PRIMARY KEY,
    client_id       INTEGER NOT NULL REFERENCES clients (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    description     TEXT,
    status          TEXT    NOT NULL,
    provider_charge TEXT,
    failure_code    TEXT,
    created_at      INTEGER NOT NULL
);

CREATE INDEX payments_client ON payments (client_id, id DESC);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    topic        TEXT    NOT NULL,
    message_key  TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
