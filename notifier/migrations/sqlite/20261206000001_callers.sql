-- The same table as migrations/postgres, in SQLite's types: created_at in INTEGER milliseconds.
CREATE TABLE callers (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL UNIQUE,             -- SHA-256 of the key, hex
    created_at INTEGER NOT NULL
);
