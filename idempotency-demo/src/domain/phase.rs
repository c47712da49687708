//! The recovery points of a payment: how far a key's work got, each step atomic.
//!
//! ```text
//! started ──────▶ payment_created ──(provider call)──▶ finished
//!  (1) key inserted   (2) payment written, pending      (3) provider's answer, stored response,
//!      and locked                                           outbox event, key unlocked
//! ```
//!
//! 1. `started`: the key is inserted, locked by this request.
//! 2. `payment_created`: the payment row is written, `pending`, and its id is on the key.
//! 3. The provider is called, outside any transaction, with an idempotency key derived from the
//!    payment's id, so calling it again after a crash or a timeout finds the same charge.
//! 4. `finished`: the provider's answer goes on the payment, the response is stored on the key,
//!    the outbox event is written, and the key is unlocked, all at once.
//!
//! A process killed anywhere leaves the key at the last point it committed. Whoever picks the key
//! up next (a retry with the same key, or the completer after a grace period) resumes from there:
//! each step is safe to run again from its recovery point, and none is run twice past it.
//!
//! rocket-rides-atomic has a separate point between the charge and the end (`charge_created`).
//! Here the provider's answer and the end are one step: nothing between them can fail on its own
//! (both are writes to the same database), so a separate point would cost a database round trip
//! per payment and protect nothing.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecoveryPoint {
    Started,
    PaymentCreated,
    Finished,
}

impl RecoveryPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::PaymentCreated => "payment_created",
            Self::Finished => "finished",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "started" => Some(Self::Started),
            "payment_created" => Some(Self::PaymentCreated),
            "finished" => Some(Self::Finished),
            _ => None,
        }
    }
}
