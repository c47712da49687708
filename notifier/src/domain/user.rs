//! Users as the notifier knows them: where to reach them, and which channels they want.

use std::collections::BTreeMap;

use serde::Serialize;
use url::Url;

use super::{
    Channel, Invalid,
    address::{AddressPolicy, written_address},
};

/// The longest webhook URL stored: the practical limit browsers and proxies agree on, and a bound
/// on what one row can cost.
pub const MAX_WEBHOOK_URL_BYTES: usize = 2048;

/// A user id, as the systems that send notifications name their users: 1 to 64 of
/// `A-Z a-z 0-9 _ - . :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct UserId(String);

impl UserId {
    pub fn parse(text: &str) -> Option<Self> {
        let valid = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        valid.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's contacts and preferences as given, not yet checked: [`User::parse`] checks them.
#[derive(Debug, Clone, Default)]
pub struct UserDetails {
    pub email: Option<String>,
    /// E.164: `+` and 8 to 15 digits.
    pub phone: Option<String>,
    /// The push service's device tokens, one per device.
    pub push_tokens: Vec<String>,
    /// Where webhooks are POSTed: `https://` (or `http://`), signed; at most 2,048 bytes, and not
    /// an address inside our network.
    pub webhook_url: Option<String>,
    /// Opt-in (`true`) or opt-out (`false`) per channel name; a channel not named is opted in.
    pub preferences: BTreeMap<String, bool>,
}

/// A user that passed every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub push_tokens: Vec<String>,
    pub webhook_url: Option<String>,
    /// Channels the user opted out of.
    pub opted_out: Vec<Channel>,
}

impl User {
    /// Checks every contact and preference of `body`; `webhooks` says which addresses a webhook
    /// URL may name.
    pub fn parse(id: UserId, body: UserDetails, webhooks: AddressPolicy) -> Result<Self, Invalid> {
        if let Some(email) = &body.email {
            let (local, domain) = email.split_once('@').unwrap_or(("", ""));
            if local.is_empty()
                || !domain.contains('.')
                || email.len() > 254
                || email.contains(char::is_whitespace)
            {
                return Err(Invalid::new("email", "must be an email address"));
            }
        }
        if let Some(phone) = &body.phone {
            let digits = phone.strip_prefix('+').unwrap_or("");
            if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Invalid::new("phone", "must be E.164: + and 8 to 15 digits"));
            }
        }
        for (i, token) in body.push_tokens.iter().enumerate() {
            if token.is_empty()
                || token.len() > 4096
                || !token.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(Invalid::new(
                    format!("push_tokens/{i}"),
                    "must be 1 to 4096 printable characters",
                ));
            }
        }
        if let Some(url) = &body.webhook_url {
            check_webhook_url(url, webhooks)?;
        }
        let mut opted_out = Vec::new();
        for (name, opted_in) in &body.preferences {
            let channel = Channel::parse(name).ok_or_else(|| {
                Invalid::new(
                    format!("preferences/{name}"),
                    "is not a channel (email, sms, push, webhook)",
                )
            })?;
            if !opted_in {
                opted_out.push(channel);
            }
        }
        Ok(Self {
            id,
            email: body.email,
            phone: body.phone,
            push_tokens: body.push_tokens,
            webhook_url: body.webhook_url,
            opted_out,
        })
    }

    /// Whether the user can be reached on `channel` at all (preferences aside).
    pub fn reachable_on(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.phone.is_some(),
            Channel::Push => !self.push_tokens.is_empty(),
            Channel::Webhook => self.webhook_url.is_some(),
        }
    }

    pub fn opted_in(&self, channel: Channel) -> bool {
        !self.opted_out.contains(&channel)
    }
}

/// A webhook URL as it may be stored: `http` or `https` with a host, at most 2,048 bytes, and,
/// if its host is written as an address, one `webhooks` allows. A host *name* is not resolved
/// here: what it resolves to can change before the webhook is sent, so the webhook client checks
/// it then, on the addresses it connects to.
fn check_webhook_url(text: &str, webhooks: AddressPolicy) -> Result<(), Invalid> {
    let invalid = |reason: String| Invalid::new("webhook_url", reason);
    if text.len() > MAX_WEBHOOK_URL_BYTES {
        return Err(invalid(format!(
            "must be at most {MAX_WEBHOOK_URL_BYTES} bytes"
        )));
    }
    let url = Url::parse(text)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| invalid("must be an absolute http or https URL".to_owned()))?;
    match written_address(&url) {
        Some(address) if webhooks.refuses(address) => Err(invalid(format!(
            "{address} is not a public address: webhooks go to public addresses only"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(body: UserDetails) -> Result<User, Invalid> {
        User::parse(
            UserId::parse("u1").unwrap(),
            body,
            AddressPolicy::PublicOnly,
        )
    }

    fn webhook(url: &str, webhooks: AddressPolicy) -> Result<User, Invalid> {
        User::parse(
            UserId::parse("u1").unwrap(),
            UserDetails {
                webhook_url: Some(url.to_owned()),
                ..Default::default()
            },
            webhooks,
        )
    }

    #[test]
    fn user_ids_are_short_plain_names() {
        assert!(UserId::parse("user:42").is_some());
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse("a b").is_none());
        assert!(UserId::parse(&"u".repeat(65)).is_none());
    }

    #[test]
    fn each_bad_contact_names_its_field() {
        let cases = [
            (
                UserDetails {
                    email: Some("nobody".into()),
                    ..Default::default()
                },
                "email",
            ),
            (
                UserDetails {
                    phone: Some("0207 183 8750".into()),
                    ..Default::default()
                },
                "phone",
            ),
            (
                UserDetails {
                    push_tokens: vec!["ok".into(), "".into()],
                    ..Default::default()
                },
                "push_tokens/1",
            ),
            (
                UserDetails {
                    webhook_url: Some("ftp://x.example".into()),
                    ..Default::default()
                },
                "webhook_url",
            ),
            (
                UserDetails {
                    preferences: [("fax".to_owned(), true)].into(),
                    ..Default::default()
                },
                "preferences/fax",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(user(body).unwrap_err().field, field);
        }
    }

    #[test]
    fn a_channel_not_named_in_preferences_is_opted_in() {
        let parsed = user(UserDetails {
            email: Some("ada@example.com".into()),
            preferences: [("sms".to_owned(), false)].into(),
            ..Default::default()
        })
        .unwrap();
        assert!(parsed.opted_in(Channel::Email));
        assert!(!parsed.opted_in(Channel::Sms));
        assert!(parsed.reachable_on(Channel::Email));
        assert!(!parsed.reachable_on(Channel::Push));
    }

    #[test]
    fn a_webhook_url_is_http_or_https_and_at_most_2048_bytes() {
        let prefix = "https://hooks.example.com/";
        let longest = format!(
            "{prefix}{}",
            "a".repeat(MAX_WEBHOOK_URL_BYTES - prefix.len())
        );
        assert!(webhook(&longest, AddressPolicy::PublicOnly).is_ok());

        for refused in [
            format!("{longest}a"),
            "ftp://hooks.example.com/".to_owned(),
            "javascript:alert(1)".to_owned(),
            "hooks.example.com/in".to_owned(),
        ] {
            let err = webhook(&refused, AddressPolicy::PublicOnly).unwrap_err();
            assert_eq!(err.field, "webhook_url", "{refused}");
        }
    }

    #[test]
    fn a_webhook_url_naming_a_private_or_reserved_address_is_refused_unless_allowed() {
        for internal in [
            "http://127.0.0.1:8080/hook",
            "http://0x7f000001/hook",
            "http://10.0.0.5/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://198.18.0.1/hook",
            "http://240.0.0.1/hook",
            "http://192.0.0.1/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[::127.0.0.1]/hook",
            "http://[64:ff9b::a9fe:a9fe]/hook",
            "http://[2002:a00:1::1]/hook",
            "http://[fd00::1]/hook",
        ] {
            let err = webhook(internal, AddressPolicy::PublicOnly).unwrap_err();
            assert_eq!(err.field, "webhook_url", "{internal}");
            assert!(err.reason.contains("not a public address"), "{internal}");
            assert!(
                webhook(internal, AddressPolicy::AllowPrivate).is_ok(),
                "{internal}"
            );
        }
        for public in [
            "https://hooks.example.com/in",
            "http://93.184.216.34/hook",
            "https://[2606:4700::1111]/hook",
            // A name is judged when the webhook is sent, by the addresses it resolves to then.
            "http://localhost:8080/hook",
        ] {
            assert!(
                webhook(public, AddressPolicy::PublicOnly).is_ok(),
                "{public}"
            );
        }
    }
}
