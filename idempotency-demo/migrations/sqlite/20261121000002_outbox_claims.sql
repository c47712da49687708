-- See migrations/postgres: relays lease outbox rows before publishing them.
ALTER TABLE outbox ADD COLUMN claimed_by    TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;

-- idempotency_keys.recovery_point now takes started | payment_created | finished: the provider's
-- answer and the end are one step (see src/domain/phase.rs), so charge_attempted is no longer written.
