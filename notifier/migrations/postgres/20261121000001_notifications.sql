-- Users as the notifier knows them: where to reach them and which channels they refused.
CREATE TABLE users (
    id          TEXT        PRIMARY KEY,         -- the sending systems' user id (user:42)
    email       TEXT,
    phone       TEXT,                            -- E.164
    push_tokens JSONB       NOT NULL,            -- ["token", …], one per device
    webhook_url TEXT,
    opted_out   JSONB       NOT NULL,            -- ["sms", …]: channels the user opted out of
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Every accepted notification, written before the 202: nothing accepted is lost.
CREATE TABLE notifications (
    id              UUID        PRIMARY KEY,     -- UUIDv7
    user_id         TEXT        NOT NULL,
    template        TEXT        NOT NULL,
    data            JSONB       NOT NULL,        -- the template's fields
    priority        TEXT        NOT NULL,        -- critical | normal
    idempotency_key TEXT        UNIQUE,          -- a repeat returns the first notification
    created_at      TIMESTAMPTZ NOT NULL
);

-- One row per (notification, channel): where its delivery stands.
CREATE TABLE deliveries (
    notification_id UUID        NOT NULL REFERENCES notifications (id),
    channel         TEXT        NOT NULL,        -- email | sms | push | webhook
    status          TEXT        NOT NULL,        -- pending | delivered | skipped | failed | dead
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (notification_id, channel)
);

-- Every delivery attempt, with its outcome: what GET /v1/notifications/{id} shows.
CREATE TABLE delivery_attempts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id UUID        NOT NULL,
    channel         TEXT        NOT NULL,
    attempted_at    TIMESTAMPTZ NOT NULL,
    outcome         TEXT        NOT NULL,        -- delivered | retry | failed
    error           TEXT,
    FOREIGN KEY (notification_id, channel) REFERENCES deliveries (notification_id, channel)
);

CREATE INDEX delivery_attempts_delivery ON delivery_attempts (notification_id, channel, id);
