//! The payments domain: keys, requests, fingerprints, recovery points. No HTTP, SQL or provider
//! in here.

mod fingerprint;
mod key;
mod payment;
mod phase;

pub use self::{
    fingerprint::Fingerprint,
    key::IdempotencyKey,
    payment::{ClientId, Currency, Invalid, Payment, PaymentId, PaymentRequest, PaymentStatus},
    phase::RecoveryPoint,
};
