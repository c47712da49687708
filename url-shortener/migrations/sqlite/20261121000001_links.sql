-- The same schema as migrations/postgres, in SQLite's types. Timestamps are INTEGER milliseconds
-- since the Unix epoch, so comparisons in SQL (expires_at > now) are plain integer comparisons.

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL UNIQUE,             -- SHA-256 of the key, hex
    created_at INTEGER NOT NULL
);

CREATE TABLE links (
    code         TEXT    PRIMARY KEY,
    url          TEXT    NOT NULL,
    owner_key_id INTEGER NOT NULL REFERENCES api_keys (id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    max_visits   INTEGER CHECK (max_visits > 0),
    visits       INTEGER NOT NULL DEFAULT 0,
    bot_visits   INTEGER NOT NULL DEFAULT 0,
    deleted_at   INTEGER
) WITHOUT ROWID;

CREATE INDEX links_owner ON links (owner_key_id);

CREATE TABLE id_allocator (
    name    TEXT    PRIMARY KEY,
    next_id INTEGER NOT NULL
);

INSERT INTO id_allocator (name, next_id) VALUES ('links', 1);
