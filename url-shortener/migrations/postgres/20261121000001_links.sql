-- API keys: the credential that creates links and is the only one allowed to read or delete them.
CREATE TABLE api_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL,                -- the owner's label for the key ("ci", "marketing")
    key_hash   TEXT        NOT NULL UNIQUE,         -- SHA-256 of the key, hex; the key itself is never stored
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE links (
    code         TEXT        PRIMARY KEY,           -- 7 base62 characters, or a custom alias
    url          TEXT        NOT NULL,              -- the target, checked and normalised
    owner_key_id BIGINT      NOT NULL REFERENCES api_keys (id),
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,                       -- NULL: never expires
    max_visits   BIGINT      CHECK (max_visits > 0),-- NULL: no limit
    visits       BIGINT      NOT NULL DEFAULT 0,    -- redirects served, bots included
    bot_visits   BIGINT      NOT NULL DEFAULT 0,    -- of which by bots
    deleted_at   TIMESTAMPTZ                        -- a tombstone: a deleted code is never handed out again
);

CREATE INDEX links_owner ON links (owner_key_id);

-- Blocks of IDs for generated codes. Each instance leases a block (one row update per block,
-- not per link) and hands out its IDs from memory.
CREATE TABLE id_allocator (
    name    TEXT   PRIMARY KEY,
    next_id BIGINT NOT NULL                         -- the first ID not yet leased to anyone
);

INSERT INTO id_allocator (name, next_id) VALUES ('links', 1);
