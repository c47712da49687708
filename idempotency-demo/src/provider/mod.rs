//! The payment provider: a simulated card processor (as Stripe is to a merchant), reached over
//! HTTP, and the client the payments service calls it with.
//!
//! The provider has its own idempotency, as every real one does: a charge request carries an
//! `Idempotency-Key`, and the same key always gets the same charge. That is what makes the
//! payments service safe to retry a charge whose answer it never saw (a timeout, a dropped
//! connection): the retry either finds the charge that was made or makes the only one.
//!
//! - [`simulator`]: the provider itself, with test cards and fault switches.
//! - [`client`]: [`ProviderClient`], which sorts the provider's answers into "charged",
//!   "declined" and "unknown, try again".

pub mod client;
pub mod simulator;

pub use self::{
    client::{ChargeOutcome, ProviderClient, ProviderError},
    simulator::{Faults, Simulator},
};
