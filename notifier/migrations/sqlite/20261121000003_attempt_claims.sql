-- See migrations/postgres: workers claim each attempt.
ALTER TABLE deliveries ADD COLUMN attempts   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
