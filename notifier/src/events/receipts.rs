//! Payment receipts: the notifier reads the payments service's `payments.events` and sends a
//! `payment_receipt` for each `payment.succeeded`, the way one system reacts to another's events
//! without either calling the other.
//!
//! - **Who is the payer.** A payment belongs to an API client of the payments service; its
//!   receipt goes to the notifier user `client:<client id>`. A payer the notifier does not know
//!   gets no receipt (counted in `notifier_receipts_skipped_total`): the notifier cannot invent
//!   an address.
//! - **Each event once.** The topic is at-least-once (the payments outbox relay can publish an
//!   event twice), so the receipt is accepted with the idempotency key `payments.events:<event
//!   id>`: a second copy of the event finds the first notification and sends nothing, through the
//!   same unique key that deduplicates any client's retries at intake.
//! - The amount arrives in minor units (cents) and is shown in major units (`12.50`).

use std::{fmt::Display, sync::Arc};

use platform::{
    shutdown::CancellationToken,
    topic::{
        Consumer, Delivery,
        consume::{self, Handled},
    },
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    domain::{NotificationRequest, Priority},
    error::NotifierError,
    messages::poison,
    service::Notifier,
};

/// The header the payments service puts its event type in.
const EVENT_TYPE_HEADER: &str = platform::outbox::EVENT_TYPE_HEADER;

#[derive(Debug, Deserialize)]
struct PaymentEvent {
    id: String,
    /// The payments service's client id (a number there; any scalar is accepted here).
    client_id: Value,
    payment: Payment,
}

#[derive(Debug, Deserialize)]
struct Payment {
    id: String,
    amount: i64,
    currency: String,
}

/// The notifier user that a payments client's receipts go to: `client:<client id>`. Whoever
/// wants a client's receipts delivered (the lab, for its demo client) creates this user.
pub fn payer(client_id: impl Display) -> String {
    format!("client:{client_id}")
}

/// Payment events are few (one receipt each, accepted like any notification), so a batch is
/// handled one event at a time; a batch retried after an error accepts its first events again,
/// which their idempotency keys turn into repeats.
pub async fn run(
    notifier: Arc<Notifier>,
    consumer: Box<dyn Consumer>,
    batch_size: usize,
    stop: CancellationToken,
) {
    consume::run(
        crate::SYSTEM,
        "receipts",
        consumer,
        batch_size,
        stop,
        |batch| {
            let notifier = notifier.clone();
            async move {
                let mut handled = Vec::with_capacity(batch.len());
                for delivery in &batch {
                    handled.push(handle(&notifier, delivery).await?);
                }
                Ok(handled)
            }
        },
    )
    .await;
}

pub async fn handle(notifier: &Notifier, delivery: &Delivery) -> anyhow::Result<Handled> {
    if delivery.header(EVENT_TYPE_HEADER) != Some(b"payment.succeeded".as_slice()) {
        return Ok(Handled::Done);
    }
    let Ok(event) = serde_json::from_slice::<PaymentEvent>(&delivery.payload) else {
        poison("receipts", delivery);
        return Ok(Handled::Done);
    };
    let client = match &event.client_id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let body = NotificationRequest {
        user_id: payer(client),
        template: "payment_receipt".to_owned(),
        data: receipt_data(&event.payment),
        channels: None,
        priority: Priority::Normal,
        idempotency_key: Some(format!("payments.events:{}", event.id)),
    };
    match notifier.accept(body).await {
        Ok(accepted) => {
            let outcome = if accepted.repeat { "repeat" } else { "sent" };
            metrics::counter!("notifier_receipts_total", "outcome" => outcome).increment(1);
            Ok(Handled::Done)
        }
        // The payer is not a notifier user, or cannot be reached: nothing to send, ever.
        Err(NotifierError::Invalid(invalid)) => {
            metrics::counter!("notifier_receipts_skipped_total").increment(1);
            tracing::info!(payment = %event.payment.id, field = %invalid.field, reason = %invalid.reason, "no receipt");
            Ok(Handled::Done)
        }
        Err(err) => Err(err.into()),
    }
}

fn receipt_data(payment: &Payment) -> Map<String, Value> {
    let (units, cents) = (payment.amount / 100, (payment.amount % 100).abs());
    let Value::Object(data) = json!({
        "amount": format!("{units}.{cents:02}"),
        "currency": payment.currency,
        "payment_id": payment.id,
    }) else {
        unreachable!("a json! object is an object")
    };
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_cents_are_shown_in_units() {
        let payment = |amount| Payment {
            id: "p".into(),
            amount,
            currency: "USD".into(),
        };
        assert_eq!(receipt_data(&payment(1250))["amount"], "12.50");
        assert_eq!(receipt_data(&payment(7))["amount"], "0.07");
    }
}
