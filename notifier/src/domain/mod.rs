//! The notifier's domain: channels, templates, users and their preferences, notifications. No
//! HTTP, SQL or topic in here.

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
