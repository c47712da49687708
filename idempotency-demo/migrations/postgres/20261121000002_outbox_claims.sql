-- Relays claim outbox rows before publishing them, so that two relays never publish the same row,
-- without holding a transaction open across the broker call. A claim is a lease: a relay that
-- dies leaves its rows to be claimed again once `claimed_until` passes.
ALTER TABLE outbox ADD COLUMN claimed_by    UUID;         -- the claiming batch's token
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMPTZ;  -- the lease's end

-- idempotency_keys.recovery_point now takes started | payment_created | finished: the provider's
-- answer and the end are one step (see src/domain/phase.rs), so charge_attempted is no longer written.
