-- Clients of the payments API: the owner of an API key. Keys and payments are scoped to them.
CREATE TABLE clients (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL,
    key_hash   TEXT        NOT NULL UNIQUE,          -- SHA-256 of the API key, hex; the key itself is never stored
    created_at TIMESTAMPTZ NOT NULL
);

-- One row per (client, Idempotency-Key): how far its request got, and once finished, the answer
-- to replay. Rows are deleted after the retention period; the payments stay.
CREATE TABLE idempotency_keys (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       BIGINT      NOT NULL REFERENCES clients (id),
    key             TEXT        NOT NULL,            -- the client's key, unquoted, 1 to 255 characters
    fingerprint     TEXT        NOT NULL,            -- SHA-256 of method, path and parsed body (domain/fingerprint.rs)
    request         JSONB       NOT NULL,            -- the parsed request, so that the completer can resume without the client
    recovery_point  TEXT        NOT NULL,            -- started | payment_created | charge_attempted | finished
    payment_id      UUID,                            -- set at payment_created
    response_status INT,                             -- set at finished, with the body: what a replay sends
    response_body   BYTEA,
    lock_token      UUID,                            -- who is working on the key; NULL when nobody is
    locked_at       TIMESTAMPTZ,                     -- a lock older than the lock timeout may be taken over
    last_run_at     TIMESTAMPTZ NOT NULL,            -- the completer waits a grace period after this
    created_at      TIMESTAMPTZ NOT NULL,            -- retention counts from here
    UNIQUE (client_id, key)
);

-- The completer's scan: unfinished keys, oldest run first.
CREATE INDEX idempotency_keys_unfinished ON idempotency_keys (last_run_at) WHERE recovery_point <> 'finished';
-- The reaper's scan.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE payments (
    id               UUID        PRIMARY KEY,        -- UUIDv7, shown as pay_<hex>; time-ordered
    client_id        BIGINT      NOT NULL REFERENCES clients (id),
    amount           BIGINT      NOT NULL CHECK (amount > 0),  -- minor units
    currency         TEXT        NOT NULL,           -- ISO 4217, upper case
    source           TEXT        NOT NULL,           -- the card token
    description      TEXT,
    status           TEXT        NOT NULL,           -- pending | succeeded | failed
    provider_charge  TEXT,                           -- the provider's charge id
    failure_code     TEXT,                           -- the provider's decline code
    created_at       TIMESTAMPTZ NOT NULL
);

-- Keyset pagination of a client's payments, newest first.
CREATE INDEX payments_client ON payments (client_id, id DESC);

-- The transactional outbox: events written in the transaction that finishes a payment, published
-- to the topic afterwards by the relay. `id` orders rows by insertion, not by commit.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     UUID        NOT NULL UNIQUE,        -- sent as a header: consumers deduplicate by it
    topic        TEXT        NOT NULL,
    message_key  TEXT        NOT NULL,               -- the payment id: one partition, in order, per payment
    event_type   TEXT        NOT NULL,               -- payment.succeeded | payment.failed
    payload      BYTEA       NOT NULL,               -- the event, JSON
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ                         -- NULL until the relay has published it
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
