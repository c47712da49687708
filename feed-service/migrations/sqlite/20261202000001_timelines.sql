-- The same as migrations/postgres/20261202000001_timelines.sql in SQLite's types.

ALTER TABLE users ADD COLUMN follower_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_read_at INTEGER;

UPDATE users SET follower_count = (SELECT count(*) FROM follows WHERE followee_id = users.id);

-- platform::outbox::SQLITE_TABLE.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT    NOT NULL UNIQUE,
    topic         TEXT    NOT NULL,
    message_key   TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    payload       BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    published_at  INTEGER,
    claimed_by    TEXT,
    claimed_until INTEGER
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
