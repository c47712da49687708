//! The client of the SMS and push providers ([`super::simulator`], or any provider with the same
//! API): sends one message with an idempotency key and sorts the answer with
//! [`crate::providers::classify`]. A timeout or a dropped connection is retryable: the retry carries the
//! same key, so a message the provider did deliver is not delivered twice.

use std::time::Duration;

use serde_json::json;

use crate::providers::{DeliveryError, classify};

#[derive(Debug, Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    base: String,
}

impl ProviderClient {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("a plain HTTP client builds"),
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    pub async fn send_sms(&self, key: &str, to: &str, text: &str) -> Result<(), DeliveryError> {
        self.send("sms", key, json!({ "to": to, "text": text }))
            .await
    }

    pub async fn send_push(
        &self,
        key: &str,
        token: &str,
        title: &str,
        body: &str,
    ) -> Result<(), DeliveryError> {
        self.send(
            "push",
            key,
            json!({ "to": token, "title": title, "body": body }),
        )
        .await
    }

    async fn send(
        &self,
        channel: &str,
        key: &str,
        message: serde_json::Value,
    ) -> Result<(), DeliveryError> {
        let response = self
            .http
            .post(format!("{}/v1/{channel}/messages", self.base))
            .header("idempotency-key", key)
            .json(&message)
            .send()
            .await
            .map_err(|err| DeliveryError::Retryable(platform::problem::error_chain(&err)))?;
        classify(response.status(), response.headers())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::providers::phone::simulator::{Faults, Simulator};

    async fn serve() -> (Arc<Simulator>, ProviderClient) {
        let simulator = Simulator::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = simulator.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (
            simulator,
            ProviderClient::new(&url, Duration::from_millis(500)),
        )
    }

    #[tokio::test]
    async fn a_message_sent_twice_with_one_key_is_delivered_once() {
        let (simulator, client) = serve().await;

        client
            .send_sms("n1:sms", "+442071838750", "hello")
            .await
            .unwrap();
        client
            .send_sms("n1:sms", "+442071838750", "hello")
            .await
            .unwrap();
        client
            .send_push("n1:push", "device-1", "Hi", "there")
            .await
            .unwrap();

        let messages = simulator.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].channel, "sms");
        assert_eq!(messages[1].content["title"], "Hi");
    }

    #[tokio::test]
    async fn outages_timeouts_and_rate_limits_are_sorted_for_the_retry_logic() {
        let (simulator, client) = serve().await;
        let attempt = |key: &'static str| {
            let client = client.clone();
            async move { client.send_sms(key, "+442071838750", "x").await }
        };

        simulator.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        let outage = attempt("a").await;
        simulator.set_faults(Faults {
            rate_limit_rate: 1.0,
            retry_after_secs: 7,
            ..Faults::default()
        });
        let limited = attempt("b").await;
        simulator.set_faults(Faults {
            timeout_rate: 1.0,
            ..Faults::default()
        });
        let timeout = attempt("c").await;
        simulator.set_faults(Faults {
            latency_ms: 800,
            ..Faults::default()
        });
        let late = attempt("d").await;
        simulator.set_faults(Faults::default());
        let retry_of_late = attempt("d").await;

        assert!(matches!(outage, Err(DeliveryError::Retryable(_))));
        assert!(matches!(
            limited,
            Err(DeliveryError::RateLimited { retry_after }) if retry_after == Duration::from_secs(7)
        ));
        assert!(matches!(timeout, Err(DeliveryError::Retryable(_))));
        // Delivered, then answered after our 500 ms timeout: the retry is deduplicated.
        assert!(matches!(late, Err(DeliveryError::Retryable(_))));
        assert!(retry_of_late.is_ok());
        let delivered: Vec<_> = simulator
            .messages()
            .into_iter()
            .map(|m| m.idempotency_key)
            .collect();
        assert_eq!(delivered, ["d"]);
    }
}
