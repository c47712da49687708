-- What fan-out on write needs from the source of truth (src/timeline/): how many followers an
-- author has (the hybrid strategy's celebrity test, read on every post and every feed read, so a
-- counter kept by follow and unfollow rather than a count over 100,000 index entries), when a
-- reader last read their feed (fan-out skips inactive readers), and the outbox that carries post
-- events to the fan-out workers in the transaction that writes the post.

ALTER TABLE users ADD COLUMN follower_count BIGINT NOT NULL DEFAULT 0;  -- rows in follows with followee_id = id
ALTER TABLE users ADD COLUMN last_read_at TIMESTAMPTZ;                  -- the last home-feed read (to the hour); NULL: never

UPDATE users SET follower_count = (SELECT count(*) FROM follows WHERE followee_id = users.id);

-- platform::outbox::POSTGRES_TABLE, as that module asks: one history of migrations per system.
CREATE TABLE outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      UUID        NOT NULL UNIQUE,
    topic         TEXT        NOT NULL,
    message_key   TEXT        NOT NULL,         -- the author's id: one author's events stay in order
    event_type    TEXT        NOT NULL,         -- post.created or post.deleted
    payload       BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    claimed_by    UUID,
    claimed_until TIMESTAMPTZ
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
