-- See migrations/postgres: routing decisions, dead letters, the outbox.
ALTER TABLE deliveries ADD COLUMN routed_at INTEGER;

CREATE INDEX notifications_user ON notifications (user_id);

CREATE TABLE dead_letters (
    id              TEXT    PRIMARY KEY,
    notification_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    redriven_at     INTEGER,
    FOREIGN KEY (notification_id, channel) REFERENCES deliveries (notification_id, channel)
);

CREATE INDEX dead_letters_newest ON dead_letters (created_at DESC, id DESC);

-- The transactional outbox (platform::outbox), SQLite: the same table as postgres.sql, in SQLite's
-- types. Times are INTEGER milliseconds since the epoch (platform::db::unix_millis), UUIDs
-- lower-case hyphenated TEXT. Copy this file into a migration of the system's own.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id is never handed out twice
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
