//! The recovery points of a payment: how far a key's work got, each step one transaction.
//!
//! ```text
//! started ──▶ payment_created ──▶ charge_attempted ──▶ finished
//!   tx 1          tx 2         (provider call)  tx 3         tx 4
//! ```
//!
//! 1. `started`: the key is inserted, locked by this request (tx 1).
//! 2. `payment_created`: the payment row is written, `pending` (tx 2).
//! 3. The provider is called, outside any transaction, with an idempotency key derived from the
//!    payment's id, so calling it again after a crash or a timeout finds the same charge.
//! 4. `charge_attempted`: the provider's answer is on the payment (tx 3).
//! 5. `finished`: the response is stored on the key, the outbox event is written, the key is
//!    unlocked (tx 4).
//!
//! A process killed anywhere leaves the key at the last point it committed. Whoever picks the key
//! up next (a retry with the same key, or the completer after a grace period) resumes from there:
//! every step is safe to run again from its recovery point, and none is run twice past it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecoveryPoint {
    Started,
    PaymentCreated,
    ChargeAttempted,
    Finished,
}

impl RecoveryPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::PaymentCreated => "payment_created",
            Self::ChargeAttempted => "charge_attempted",
            Self::Finished => "finished",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "started" => Some(Self::Started),
            "payment_created" => Some(Self::PaymentCreated),
            "charge_attempted" => Some(Self::ChargeAttempted),
            "finished" => Some(Self::Finished),
            _ => None,
        }
    }
}
