//! `POST /v1/payments`, `GET /v1/payments/{id}`, `GET /v1/payments?limit=&cursor=`.

use axum::{
    extract::{FromRequestParts, RawQuery, State},
    http::{HeaderName, HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use platform::{
    extract::{Json, Path, QueryParameters},
    problem::{BadParameter, CONTENT_TYPE as PROBLEM_JSON, Problem},
};
use serde::{Deserialize, Serialize};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Schema, Type},
};

use super::{AppState, Client};
use crate::{
    domain::{IdempotencyKey, Invalid, PaymentId, PaymentRequest, PaymentStatus},
    error::PaymentError,
    service::PaymentView,
    settings::Idempotency,
};

/// The body of `POST /v1/payments`, as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    /// In the currency's minor unit (cents for USD), 1 to 99,999,999.
    #[schema(example = 2000, minimum = 1, maximum = 99_999_999)]
    pub amount: i64,
    /// ISO 4217, either case: `usd`, `EUR`.
    #[schema(example = "usd", pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// A card token from the provider: `tok_visa` succeeds, `tok_chargeDeclined` and
    /// `tok_chargeDeclinedInsufficientFunds` are declined.
    #[schema(example = "tok_visa", pattern = r"^[\x21-\x7E]{1,255}$")]
    pub source: String,
    /// Up to 1,000 characters, for the client's own records.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
}

impl CreatePayment {
    /// The payment this body asks for, checked by the domain's rules.
    pub fn parse(self) -> Result<PaymentRequest, Invalid> {
        PaymentRequest::parse(self.amount, &self.currency, self.source, self.description)
    }
}

/// The domain's `PaymentStatus` in the OpenAPI document: the strings it serialises to. Written
/// here rather than derived on the domain type, which knows nothing of HTTP.
impl PartialSchema for PaymentStatus {
    fn schema() -> RefOr<Schema> {
        let statuses = [
            PaymentStatus::Pending,
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
        ];
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Where a payment stands."))
            .enum_values(Some(statuses.map(PaymentStatus::as_str)))
            .into()
    }
}

impl ToSchema for PaymentStatus {}

pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The `Idempotency-Key` header, parsed (see `domain/key.rs` for the accepted forms).
pub enum KeyHeader {
    Key(IdempotencyKey),
    /// The benchmark's baseline (`Idempotency::Off`): the header is not read.
    #[cfg(feature = "bench")]
    Off,
}

impl FromRequestParts<AppState> for KeyHeader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        match state.idempotency {
            Idempotency::On => {}
            #[cfg(feature = "bench")]
            Idempotency::Off => return Ok(KeyHeader::Off),
        }
        let value = parts
            .headers
            .get("idempotency-key")
            .ok_or(PaymentError::BadKey("is missing"))?;
        IdempotencyKey::parse(value.as_bytes())
            .map(KeyHeader::Key)
            .map_err(|reason| PaymentError::BadKey(reason).into())
    }
}

/// Take a payment, once per idempotency key.
///
/// The first request with a key charges the card and answers 201 (or 402 if the card is
/// declined). Every retry with the same key and body gets that same answer, byte for byte, with
/// `Idempotent-Replayed: true`, and charges nothing. A retry while the first is still running
/// gets 409 with `Retry-After`; a retry after a 502 resumes the payment where it stopped.
#[utoipa::path(
    post,
    path = "/v1/payments",
    tag = "payments",
    request_body = CreatePayment,
    params(
        ("Idempotency-Key" = String, Header, description = "1 to 255 printable ASCII characters; the quoted structured-field form (`\"abc\"`) is the same key as the bare one (`abc`)",
            pattern = r#"^("([\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\]){1,255}"|[\x21\x23-\x7E]([\x20-\x7E]{0,253}[\x21-\x7E])?)$"#),
    ),
    responses(
        (status = 201, description = "Charged", body = PaymentView),
        (status = 402, description = "Declined by the provider; stored and replayed like a success", content_type = "application/problem+json"),
        (status = 400, description = "Missing or invalid Idempotency-Key, or a body that is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is in progress; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, or a key first used with a different request", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider did not answer; retry with the same key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; retry with the same key (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_payment(
    State(state): State<AppState>,
    Client(client): Client,
    key: KeyHeader,
    Json(body): Json<CreatePayment>,
) -> Result<Response, PaymentError> {
    let request = body.parse().map_err(|invalid| PaymentError::Invalid {
        field: invalid.field,
        reason: invalid.reason,
    })?;
    let answer = match key {
        KeyHeader::Key(key) => state.payments.create(client, &key, request).await?,
        #[cfg(feature = "bench")]
        KeyHeader::Off => state.payments.create_without_key(client, request).await?,
    };
    let content_type = if answer.status.is_success() {
        "application/json"
    } else {
        PROBLEM_JSON
    };
    let mut response = (
        answer.status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        answer.body,
    )
        .into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// One of this client's payments.
#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    tag = "payments",
    params(("id" = String, Path, description = "`pay_` and 32 hex digits",
        pattern = "^pay_[0-9A-Fa-f]{32}$")),
    responses(
        (status = 200, description = "The payment", body = PaymentView),
        (status = 404, description = "No payment of this client has this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_payment(
    State(state): State<AppState>,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<axum::Json<PaymentView>, PaymentError> {
    let id = PaymentId::parse(&id).ok_or(PaymentError::NotFound)?;
    let payment = state.payments.payment(client, id).await?;
    Ok(axum::Json(PaymentView::from(&payment)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    /// Newest first.
    pub data: Vec<PaymentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 100;

/// This client's payments, newest first, a page at a time.
///
/// Keyset pagination: the cursor is the last payment of the page, and the next page starts below
/// it, so payments taken meanwhile never shift a page (no duplicates, no gaps).
#[utoipa::path(
    get,
    path = "/v1/payments",
    tag = "payments",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100, default 10", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page",
            pattern = "^pay_[0-9A-Fa-f]{32}$"),
    ),
    responses(
        (status = 200, description = "A page of payments", body = PaymentPage),
        (status = 400, description = "A bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer; retry later (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_payments(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<PaymentPage>, Problem> {
    // Each at most once, and nothing else: a misspelt `limt=5` is a 400, not a page of 20.
    let parameters = QueryParameters::parse(query.as_deref(), &["limit", "cursor"])?;
    let limit = match parameters.get("limit") {
        None => DEFAULT_LIMIT,
        Some(value) => value
            .parse()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| BadParameter::new("limit", "must be a whole number from 1 to 100"))?,
    };
    let cursor = match parameters.get("cursor") {
        None => None,
        Some(value) => Some(PaymentId::parse(value).ok_or(PaymentError::BadCursor)?),
    };
    // One more than asked, to know whether there is a next page without a second query.
    let mut payments = state.payments.payments(client, limit + 1, cursor).await?;
    let more = payments.len() > limit as usize;
    payments.truncate(limit as usize);
    let next_cursor = more
        .then(|| payments.last().map(|payment| payment.id.to_string()))
        .flatten();
    Ok(axum::Json(PaymentPage {
        data: payments.iter().map(PaymentView::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::Fingerprint,
        service::{PAYMENTS_METHOD, PAYMENTS_PATH},
    };

    /// The fingerprint a retry of `body` is compared by.
    fn fingerprint(body: &str) -> Fingerprint {
        let body: CreatePayment = serde_json::from_str(body).unwrap();
        Fingerprint::of(PAYMENTS_METHOD, PAYMENTS_PATH, &body.parse().unwrap())
    }

    #[test]
    fn key_order_whitespace_and_currency_case_do_not_change_the_fingerprint() {
        let a = fingerprint(r#"{"amount":2000,"currency":"usd","source":"tok_visa"}"#);
        let b =
            fingerprint("{ \"source\" : \"tok_visa\",\n \"currency\": \"USD\", \"amount\": 2000 }");
        assert_eq!(a, b);
    }

    #[test]
    fn the_documented_statuses_are_the_strings_a_payment_view_carries() {
        for status in [
            PaymentStatus::Pending,
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn a_missing_description_is_the_same_as_null() {
        let a = fingerprint(r#"{"amount":1,"currency":"eur","source":"tok_visa"}"#);
        let b =
            fingerprint(r#"{"amount":1,"currency":"eur","source":"tok_visa","description":null}"#);
        assert_eq!(a, b);
    }
}
