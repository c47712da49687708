-- A worker claims an attempt before calling the provider, so that duplicate jobs (which
-- at-least-once topics produce) cannot start a second chain of attempts, and a job left over from
-- before a redrive cannot run beside the redriven one.
ALTER TABLE deliveries ADD COLUMN attempts   INTEGER NOT NULL DEFAULT 0;  -- attempts claimed so far, ever
ALTER TABLE deliveries ADD COLUMN claimed_by UUID;                        -- the job making the current attempt
