//! Payments: what a client asks for, checked once at the edge, and what is kept.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A payment request that passed every check: the only form the service works with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub amount: u64,
    pub currency: Currency,
    pub source: String,
    pub description: Option<String>,
}

/// Why a request is refused: the field and the reason, for a 422 that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl PaymentRequest {
    /// Stripe's limit for most currencies: eight digits of minor units.
    pub const MAX_AMOUNT: u64 = 99_999_999;
    pub const MAX_DESCRIPTION: usize = 1000;
    pub const MAX_SOURCE: usize = 255;

    /// Checks a payment as the client asked for it. The amount is signed so that a negative one
    /// is refused here, naming the field, like any other amount out of range.
    pub fn parse(
        amount: i64,
        currency: &str,
        source: String,
        description: Option<String>,
    ) -> Result<Self, Invalid> {
        let invalid = |field, reason: &str| Invalid {
            field,
            reason: reason.to_owned(),
        };
        let amount = u64::try_from(amount)
            .ok()
            .filter(|amount| (1..=Self::MAX_AMOUNT).contains(amount))
            .ok_or_else(|| invalid("amount", "must be a whole number from 1 to 99999999"))?;
        let currency = Currency::parse(currency)
            .ok_or_else(|| invalid("currency", "must be an ISO 4217 currency code"))?;
        if source.is_empty()
            || source.len() > Self::MAX_SOURCE
            || !source.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(invalid(
                "source",
                "must be a card token of 1 to 255 printable characters",
            ));
        }
        if let Some(text) = &description
            && text.chars().count() > Self::MAX_DESCRIPTION
        {
            return Err(invalid("description", "must be at most 1000 characters"));
        }
        Ok(Self {
            amount,
            currency,
            source,
            description,
        })
    }
}

/// An ISO 4217 code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(&'static str);

impl Currency {
    pub fn parse(code: &str) -> Option<Self> {
        let upper = code.to_ascii_uppercase();
        ISO_4217
            .iter()
            .find(|known| **known == upper)
            .map(|known| Self(known))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).ok_or_else(|| serde::de::Error::custom("not an ISO 4217 code"))
    }
}

/// The active ISO 4217 currency codes (funds codes and precious metals left out).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// A payment's id: a UUIDv7 (time-ordered, so the newest-first listing is an index scan on the
/// primary key), shown as `pay_` and 32 hex digits, as Stripe prefixes its ids with their type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentId(pub Uuid);

impl PaymentId {
    const PREFIX: &str = "pay_";

    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(Self::PREFIX)?;
        (hex.len() == 32)
            .then(|| Uuid::try_parse(hex).ok())
            .flatten()
            .map(Self)
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0.simple())
    }
}

impl Serialize for PaymentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where a payment stands. Its OpenAPI schema is the HTTP module's (`http/payments.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Recorded; the provider has not answered yet.
    Pending,
    Succeeded,
    /// Declined by the provider; `failure_code` says why.
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub client: ClientId,
    pub request: PaymentRequest,
    pub status: PaymentStatus,
    /// The provider's charge id, once it charged.
    pub provider_charge: Option<String>,
    /// The provider's decline code, once it declined.
    pub failure_code: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A client of the payments API (an API key's owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(pub i64);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(amount: i64, currency: &str, source: &str) -> Result<PaymentRequest, Invalid> {
        PaymentRequest::parse(amount, currency, source.to_owned(), None)
    }

    #[test]
    fn a_valid_request_is_kept_with_its_currency_upper_case() {
        let request = parse(2000, "usd", "tok_visa").unwrap();
        assert_eq!(request.amount, 2000);
        assert_eq!(request.currency.as_str(), "USD");
    }

    #[test]
    fn amounts_outside_1_to_99999999_name_the_amount() {
        for amount in [0, -5, 100_000_000] {
            let err = parse(amount, "usd", "tok_visa").unwrap_err();
            assert_eq!(err.field, "amount", "{amount}");
        }
    }

    #[test]
    fn unknown_currencies_name_the_currency() {
        for code in ["us", "usdd", "XXX", "ABC", ""] {
            let err = parse(1, code, "tok_visa").unwrap_err();
            assert_eq!(err.field, "currency", "{code}");
        }
    }

    #[test]
    fn an_empty_or_spaced_source_names_the_source() {
        for source in ["", "tok visa"] {
            let err = parse(1, "eur", source).unwrap_err();
            assert_eq!(err.field, "source");
        }
    }

    #[test]
    fn payment_ids_round_trip_through_their_text_form() {
        let id = PaymentId::generate();
        let text = id.to_string();
        assert!(text.starts_with("pay_") && text.len() == 36);
        assert_eq!(PaymentId::parse(&text), Some(id));
        assert_eq!(PaymentId::parse("pay_nothex"), None);
        assert_eq!(PaymentId::parse(&id.0.to_string()), None);
    }
}
