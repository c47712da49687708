//! Templates: one per kind of notification, with a rendering per channel, written in Jinja
//! (minijinja) so that product people can read and edit them.
//!
//! A template declares the data fields it needs. Intake checks them (a missing field is a 422
//! that names it, `#/data/amount`), so a notification that was accepted always renders; the
//! channel workers render at delivery time, from the data stored with the notification.
//!
//! Per channel, what is rendered:
//! - email: a subject and a body;
//! - SMS: one short text (160 characters is one SMS segment; longer ones are cut with `…`);
//! - push: a title and a body;
//! - webhook: a JSON document, built from the data rather than from text, so it is always
//!   valid JSON.

use std::collections::BTreeMap;

use minijinja::Environment;
use serde_json::{Map, Value, json};

use super::Channel;

/// What one channel of a template renders to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Email { subject: String, body: String },
    Sms { text: String },
    Push { title: String, body: String },
    Webhook { payload: Value },
}

pub struct Template {
    pub name: &'static str,
    /// The data fields every rendering uses.
    pub fields: &'static [&'static str],
    pub email: (&'static str, &'static str),
    pub sms: &'static str,
    pub push: (&'static str, &'static str),
}

/// The longest SMS we send: one segment of the GSM-7 alphabet.
pub const SMS_MAX_CHARS: usize = 160;

/// The templates this notifier knows.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "welcome",
        fields: &["name"],
        email: (
            "Welcome, {{ name }}!",
            "Hi {{ name }},\n\nThanks for signing up. We are glad you are here.\n",
        ),
        sms: "Welcome, {{ name }}! Your account is ready.",
        push: ("Welcome, {{ name }}", "Your account is ready."),
    },
    Template {
        name: "payment_receipt",
        fields: &["amount", "currency", "payment_id"],
        email: (
            "Your receipt for {{ amount }} {{ currency }}",
            "We received your payment of {{ amount }} {{ currency }}.\nReference: {{ payment_id }}\n",
        ),
        sms: "Payment received: {{ amount }} {{ currency }} (ref {{ payment_id }}).",
        push: (
            "Payment received",
            "{{ amount }} {{ currency }}, ref {{ payment_id }}",
        ),
    },
    Template {
        name: "password_reset",
        fields: &["code"],
        email: (
            "Your password reset code",
            "Your code is {{ code }}. It expires in 10 minutes. If you did not ask for it, ignore this email.\n",
        ),
        sms: "Your password reset code is {{ code }}. It expires in 10 minutes.",
        push: ("Password reset", "Your code is {{ code }}"),
    },
];

pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|template| template.name == name)
}

impl Template {
    /// The first required field missing from `data`, if any.
    pub fn missing_field(&self, data: &Map<String, Value>) -> Option<&'static str> {
        self.fields
            .iter()
            .copied()
            .find(|field| data.get(*field).is_none_or(Value::is_null))
    }

    /// Renders the template for `channel` with `data`.
    pub fn render(
        &self,
        channel: Channel,
        data: &Map<String, Value>,
    ) -> Result<Rendered, minijinja::Error> {
        let text = |source: &str| render_text(source, data);
        Ok(match channel {
            Channel::Email => Rendered::Email {
                subject: text(self.email.0)?,
                body: text(self.email.1)?,
            },
            Channel::Sms => Rendered::Sms {
                text: truncate(&text(self.sms)?, SMS_MAX_CHARS),
            },
            Channel::Push => Rendered::Push {
                title: text(self.push.0)?,
                body: text(self.push.1)?,
            },
            Channel::Webhook => Rendered::Webhook {
                payload: json!({ "template": self.name, "data": data }),
            },
        })
    }
}

fn render_text(source: &str, data: &Map<String, Value>) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // A field the template names but the data lacks is an error, never an empty string in a
    // customer's inbox. Intake already checked the declared fields; this catches a template
    // that uses one it forgot to declare.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // An email body ends with its newline, as written.
    env.set_keep_trailing_newline(true);
    let context: BTreeMap<&str, &Value> = data.iter().map(|(k, v)| (k.as_str(), v)).collect();
    env.render_str(source, context)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn every_template_renders_on_every_channel_with_its_declared_fields() {
        for template in TEMPLATES {
            let data: Map<String, Value> = template
                .fields
                .iter()
                .map(|field| (field.to_string(), json!("x")))
                .collect();
            for channel in Channel::ALL {
                template
                    .render(channel, &data)
                    .unwrap_or_else(|err| panic!("{} on {channel}: {err}", template.name));
            }
        }
    }

    #[test]
    fn a_missing_or_null_field_is_named() {
        let receipt = find("payment_receipt").unwrap();
        let partial = data(json!({"amount": 20, "currency": null}));
        assert_eq!(receipt.missing_field(&partial), Some("currency"));
    }

    #[test]
    fn an_email_renders_its_subject_and_body() {
        let rendered = find("welcome")
            .unwrap()
            .render(Channel::Email, &data(json!({"name": "Ada"})))
            .unwrap();
        assert_eq!(
            rendered,
            Rendered::Email {
                subject: "Welcome, Ada!".into(),
                body: "Hi Ada,\n\nThanks for signing up. We are glad you are here.\n".into(),
            }
        );
    }

    #[test]
    fn a_long_sms_is_cut_to_one_segment() {
        let long = "n".repeat(300);
        let Rendered::Sms { text } = find("welcome")
            .unwrap()
            .render(Channel::Sms, &data(json!({"name": long})))
            .unwrap()
        else {
            panic!("not an SMS");
        };
        assert_eq!(text.chars().count(), SMS_MAX_CHARS);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn html_in_the_data_is_not_a_template() {
        let rendered = find("welcome")
            .unwrap()
            .render(Channel::Push, &data(json!({"name": "{{ secret }}"})))
            .unwrap();
        assert_eq!(
            rendered,
            Rendered::Push {
                title: "Welcome, {{ secret }}".into(),
                body: "Your account is ready.".into()
            }
        );
    }
}
