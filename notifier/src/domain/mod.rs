//! The notifier's domain: channels, templates, users and their preferences, notifications, and
//! the addresses a notification may be sent to. No HTTP, SQL or topic in here.

pub mod address;
mod channel;
mod delivery;
mod notification;
pub mod template;
mod user;

pub use self::{
    channel::{Channel, Priority},
    delivery::{DeliveryStatus, Route, Throttle, route},
    notification::{Notification, NotificationRequest},
    template::{Rendered, Template},
    user::{User, UserDetails, UserId},
};

/// A caller of the API: a service or a client holding one of the notifier's API keys, by the
/// number the `callers` table gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerId(pub i64);

/// Why input is refused: the JSON pointer of the field (without `#/`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
