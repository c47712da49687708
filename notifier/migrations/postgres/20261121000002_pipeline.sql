-- The delivery pipeline: routing decisions, dead letters, and the outbox that carries intake and
-- redrives to the topics.

-- When the router queued the delivery: what the per-user throttle counts.
ALTER TABLE deliveries ADD COLUMN routed_at TIMESTAMPTZ;
-- status now takes: pending | queued | retrying | delivered | skipped | throttled | dead

-- The throttle counts a user's recent deliveries per channel.
CREATE INDEX notifications_user ON notifications (user_id);

-- A delivery that failed for good (a permanent error, or retries exhausted). The same facts go to
-- the dead-letter topic; this row is what redrive works from, and what makes it idempotent.
CREATE TABLE dead_letters (
    id              UUID        PRIMARY KEY,     -- UUIDv7, the {id} of POST /v1/dlq/{id}/redrive
    notification_id UUID        NOT NULL,
    channel         TEXT        NOT NULL,
    error           TEXT        NOT NULL,        -- the last attempt's error
    attempts        INTEGER     NOT NULL,        -- attempts made before giving up
    created_at      TIMESTAMPTZ NOT NULL,
    redriven_at     TIMESTAMPTZ,                 -- set once: a second redrive changes nothing
    FOREIGN KEY (notification_id, channel) REFERENCES deliveries (notification_id, channel)
);

CREATE INDEX dead_letters_newest ON dead_letters (created_at DESC, id DESC);

-- The transactional outbox (platform::outbox), PostgreSQL: the events a system writes in the
-- transaction that makes the change they announce, published afterwards by platform::outbox::Relay.
-- Every system that publishes has this table, in its own schema, created by a migration of its own
-- (copy this file into one). `id` orders rows by insertion, not by commit: the relay never treats
-- it as a high-water mark.
CREATE TABLE outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      UUID        NOT NULL UNIQUE,  -- sent as the `event_id` header: consumers deduplicate by it
    topic         TEXT        NOT NULL,
    message_key   TEXT        NOT NULL,         -- the message's key: one partition, in order, per key
    event_type    TEXT        NOT NULL,         -- sent as the `event_type` header, so consumers route without parsing
    payload       BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,                  -- NULL until the relay has published it
    claimed_by    UUID,                         -- the relay batch that holds the row while publishing it
    claimed_until TIMESTAMPTZ                   -- the end of that lease; after it, any relay may claim the row
);

-- The relay's scan: unpublished rows, oldest first.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
