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
