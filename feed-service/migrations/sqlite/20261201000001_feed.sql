-- The same tables as migrations/postgres in SQLite's types: timestamps are INTEGER milliseconds.
-- `INTEGER PRIMARY KEY` makes the id the rowid, so a post is found and ordered by its id with no
-- separate index.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    handle     TEXT    NOT NULL UNIQUE,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE follows (
    follower_id INTEGER NOT NULL REFERENCES users (id),
    followee_id INTEGER NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
) WITHOUT ROWID;

CREATE INDEX follows_by_followee ON follows (followee_id, follower_id);

CREATE TABLE posts (
    id         INTEGER PRIMARY KEY,
    author_id  INTEGER NOT NULL REFERENCES users (id),
    text       TEXT,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER,
    CHECK ((text IS NULL) = (deleted_at IS NOT NULL))
);

CREATE INDEX posts_by_author ON posts (author_id, id DESC) WHERE deleted_at IS NULL;
