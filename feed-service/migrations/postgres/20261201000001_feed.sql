-- The feed's source of truth: users, who follows whom, and posts. Home timelines are built from
-- these tables on every read (fan-out on read); the planned push and hybrid strategies keep
-- timelines in Redis as a cache of them, never as the only copy.

CREATE TABLE users (
    id         BIGINT      PRIMARY KEY,         -- a snowflake (src/ids.rs); a string in JSON
    handle     TEXT        NOT NULL UNIQUE,     -- 1-30 of a-z 0-9 _; taken means 409
    token_hash TEXT        NOT NULL UNIQUE,     -- SHA-256 of the user's API key; the key itself is never stored
    created_at TIMESTAMPTZ NOT NULL
);

-- Who follows whom. The primary key is the pull query's first step (whom does the reader follow);
-- the reverse index answers who follows an author: the follower count now, the fan-out on write
-- later.
CREATE TABLE follows (
    follower_id BIGINT      NOT NULL REFERENCES users (id),
    followee_id BIGINT      NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)         -- your own posts are in your feed without following yourself
);

CREATE INDEX follows_by_followee ON follows (followee_id, follower_id);

-- Posts, ids time-ordered: ORDER BY id DESC is newest first. A deleted post keeps its row as a
-- tombstone without its text: a repeated DELETE by its author still finds it (204), and the
-- planned timelines can be told which id to remove.
CREATE TABLE posts (
    id         BIGINT      PRIMARY KEY,         -- a snowflake: the post's position in every feed
    author_id  BIGINT      NOT NULL REFERENCES users (id),
    text       TEXT,                            -- NULL once deleted
    created_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    CHECK ((text IS NULL) = (deleted_at IS NOT NULL))
);

-- An author's live posts, newest first: the pull query reads one short range of this index per
-- author it merges, and stops after a page.
CREATE INDEX posts_by_author ON posts (author_id, id DESC) WHERE deleted_at IS NULL;
