//! What the notifier does when another system publishes an event: an inbound adapter, as
//! [`crate::http`] is for requests. Each consumer turns events into calls of the service
//! ([`crate::service::Notifier`]), which does not know where a request came from.

pub mod receipts;
