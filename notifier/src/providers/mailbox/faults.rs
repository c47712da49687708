//! The mailbox's fault switches, like the SMS and push simulator's
//! ([`crate::providers::phone::simulator`]): `error_rate` answers a message's data with 451 (try
//! again later) without keeping it, `reject_recipients` answers those addresses 550 (no such
//! mailbox) at `RCPT TO`, and `latency_ms` waits after keeping a message before answering 250, so
//! a sender with a shorter timeout retries a message that was delivered and the retry is
//! deduplicated.

use std::sync::Arc;

use axum::{Json, extract::State};
use platform::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};

use super::Mailbox;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The probability of answering a message's data with 451 instead of keeping it.
    pub error_rate: f64,
    /// Addresses answered 550 at `RCPT TO`, compared without regard to case.
    pub reject_recipients: Vec<String>,
    /// How long to wait after keeping a message before answering 250.
    pub latency_ms: u64,
}

impl Faults {
    pub(super) fn rejects(&self, address: &str) -> bool {
        self.reject_recipients
            .iter()
            .any(|rejected| rejected.eq_ignore_ascii_case(address))
    }
}

pub(super) async fn get_faults(State(mailbox): State<Arc<Mailbox>>) -> Json<Faults> {
    Json(mailbox.faults())
}

pub(super) async fn put_faults(
    State(mailbox): State<Arc<Mailbox>>,
    platform::extract::Json(faults): platform::extract::Json<Faults>,
) -> Result<Json<Faults>, Problem> {
    if !(0.0..=1.0).contains(&faults.error_rate) {
        return Err(Problem::invalid_field(FieldError::body(
            "error_rate",
            "must be a probability from 0 to 1",
        )));
    }
    mailbox.set_faults(faults.clone());
    Ok(Json(faults))
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};
    use platform::{
        auth::AdminToken,
        testing::http::{json_request, send_to},
    };
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn faults_are_set_over_http_and_a_rate_outside_zero_to_one_is_refused() {
        let admin = AdminToken::generate();
        let mailbox = Mailbox::with_admin(Some(admin.clone()));
        let router = mailbox.router();
        let put = |body: serde_json::Value| {
            json_request(
                Method::PUT,
                "/mailbox/faults",
                Some(admin.expose()),
                body.to_string(),
            )
        };

        let refused = send_to(&router, put(json!({ "error_rate": 1.5 }))).await;
        let accepted = send_to(
            &router,
            put(json!({ "reject_recipients": ["nobody@example.com"], "latency_ms": 5 })),
        )
        .await;

        refused.invalid_field("error_rate");
        assert_eq!(accepted.status, StatusCode::OK);
        assert_eq!(
            mailbox.faults(),
            Faults {
                error_rate: 0.0,
                reject_recipients: vec!["nobody@example.com".to_owned()],
                latency_ms: 5,
            }
        );
    }

    #[tokio::test]
    async fn the_switches_open_to_the_admin_token_alone_and_stay_shut_without_one() {
        let admin = AdminToken::generate();
        let body = json!({ "error_rate": 1.0 }).to_string();
        let put =
            |key: Option<&str>| json_request(Method::PUT, "/mailbox/faults", key, body.clone());
        let guarded = Mailbox::with_admin(Some(admin));
        let closed = Mailbox::new();

        let anonymous = send_to(&guarded.router(), put(None)).await;
        let stranger = send_to(
            &guarded.router(),
            put(Some(AdminToken::generate().expose())),
        )
        .await;
        let unconfigured =
            send_to(&closed.router(), put(Some(AdminToken::generate().expose()))).await;

        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unconfigured.status, StatusCode::FORBIDDEN);
        assert_eq!(guarded.faults(), Faults::default(), "nothing was switched");
        assert_eq!(closed.faults(), Faults::default());
    }

    #[test]
    fn rejected_recipients_are_matched_without_regard_to_case() {
        let faults = Faults {
            reject_recipients: vec!["Nobody@Example.com".into()],
            ..Faults::default()
        };

        assert!(faults.rejects("nobody@example.com"));
        assert!(!faults.rejects("somebody@example.com"));
    }
}
