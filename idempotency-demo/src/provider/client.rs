//! Calling the provider, and sorting its answers into what the payments service can act on.
//!
//! | the provider… | [`ProviderClient::charge`] returns | the service |
//! |---|---|---|
//! | charged (201) | `Ok(Succeeded)` | records the charge |
//! | declined (402) | `Ok(Declined)` | records the decline; the client gets a 402, stored |
//! | timed out, dropped the connection, answered 5xx, 408, 409 or 429 | `Err(Unknown)` | does not know whether money moved: leaves the payment pending and calls again later with the same key |
//! | refused the request (another 4xx) | `Err(Refused)` | a bug on our side: a 500, and the same |
//!
//! "Unknown" is the case that matters. A timeout says nothing about whether the charge was made,
//! so the only safe move is to ask again with the same idempotency key, which returns the first
//! charge if there was one and makes it if there was not.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::domain::PaymentRequest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded { charge_id: String },
    Declined { charge_id: String, code: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Whether the charge was made is not known; ask again with the same key.
    #[error("the provider's answer is unknown: {0}")]
    Unknown(String),
    /// The provider refused the request itself; asking again will not help.
    #[error("the provider refused the charge request ({status}): {body}")]
    Refused { status: u16, body: String },
}

#[derive(Debug, Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    charges_url: String,
}

#[derive(Deserialize)]
struct ChargeResponse {
    id: String,
    failure_code: Option<String>,
}

impl ProviderClient {
    /// `base_url`: the provider's origin (`http://127.0.0.1:8095`). `timeout` bounds a whole
    /// charge call, connection included.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("a client with no TLS and no proxy settings builds");
        Self {
            http,
            charges_url: format!("{}/v1/charges", base_url.trim_end_matches('/')),
        }
    }

    /// Charges the card, or finds the charge already made under `idempotency_key`.
    #[tracing::instrument(skip(self, request), fields(amount = request.amount), err)]
    pub async fn charge(
        &self,
        idempotency_key: &str,
        request: &PaymentRequest,
    ) -> Result<ChargeOutcome, ProviderError> {
        let unknown = |err: reqwest::Error| ProviderError::Unknown(err.to_string());
        let response = self
            .http
            .post(&self.charges_url)
            .header("idempotency-key", idempotency_key)
            .json(&json!({
                "amount": request.amount,
                "currency": request.currency.as_str(),
                "source": request.source,
            }))
            .send()
            .await
            .map_err(unknown)?;
        let status = response.status();
        // The body is read in full before deciding: a connection dropped mid-body is as unknown
        // as one dropped before the status line.
        let body = response.bytes().await.map_err(unknown)?;
        let parsed = || {
            serde_json::from_slice::<ChargeResponse>(&body).map_err(|err| {
                ProviderError::Unknown(format!("an unreadable answer ({status}): {err}"))
            })
        };
        match status {
            StatusCode::CREATED | StatusCode::OK => Ok(ChargeOutcome::Succeeded {
                charge_id: parsed()?.id,
            }),
            StatusCode::PAYMENT_REQUIRED => {
                let charge = parsed()?;
                Ok(ChargeOutcome::Declined {
                    charge_id: charge.id,
                    code: charge.failure_code.unwrap_or_else(|| "declined".into()),
                })
            }
            StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS => {
                Err(ProviderError::Unknown(format!(
                    "the provider answered {status}"
                )))
            }
            status if status.is_server_error() => Err(ProviderError::Unknown(format!(
                "the provider answered {status}"
            ))),
            status => Err(ProviderError::Refused {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}
