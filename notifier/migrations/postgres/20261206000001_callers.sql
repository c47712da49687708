-- The services and clients allowed to call the API, one row per API key (platform::auth::ApiKeys).
CREATE TABLE callers (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL,                -- who holds the key ("payments", "lab")
    key_hash   TEXT        NOT NULL UNIQUE,         -- SHA-256 of the key, hex; the key itself is never stored
    created_at TIMESTAMPTZ NOT NULL
);
