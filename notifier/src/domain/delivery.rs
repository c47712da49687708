//! One channel's delivery of a notification: where it stands, and the router's decision about it.
//!
//! ```text
//! pending ──router──▶ queued ──worker──▶ delivered
//!    │                  │  ▲
//!    │                  ▼  │ (due)
//!    │               retrying ──exhausted or permanent──▶ dead ──redrive──▶ queued
//!    ├──opted out──▶ skipped
//!    └──over the throttle──▶ throttled
//! ```
//!
//! `delivered`, `skipped`, `throttled` and `dead` are final: a worker that receives a job for a
//! final delivery (a duplicate from an at-least-once topic) does nothing. Only a redrive moves a
//! delivery out of `dead`.

use std::{fmt, time::Duration};

use super::{Channel, Priority, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Stored at intake; the router has not decided yet.
    Pending,
    /// The router sent it to its channel's topic.
    Queued,
    /// An attempt failed in a way worth retrying; a retry topic holds the next attempt.
    Retrying,
    Delivered,
    /// The user opted out of the channel.
    Skipped,
    /// Over the user's per-channel limit, and dropped.
    Throttled,
    /// Failed for good; in the dead letters, waiting for a redrive.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Queued,
        Self::Retrying,
        Self::Delivered,
        Self::Skipped,
        Self::Throttled,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Skipped => "skipped",
            Self::Throttled => "throttled",
            Self::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether nothing more will happen to the delivery (short of a redrive).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Skipped | Self::Throttled | Self::Dead
        )
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most `limit` notifications per user and channel in any `window`, counted by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub limit: u32,
    pub window: Duration,
}

/// What the router does with one channel of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Queue,
    /// Not sent, for the reason given (recorded as the delivery's one attempt).
    Skip(String),
    Throttle(String),
}

/// The router's rule. `recent` is how many of this user's notifications on `channel` were queued
/// within the throttle's window, not counting this one.
///
/// - An opted-out channel is skipped, unless the notification is critical.
/// - Past the throttle the notification is dropped for that channel, unless it is critical. Dropped,
///   not deferred: a notification that waits out a busy hour is usually stale when it arrives (the
///   tenth "someone liked your post"), and deferring would hold the partition or need a delay
///   queue per user. The drop is recorded, so it is visible.
/// - Critical notifications (a password reset, a fraud alert) go through both: the user must get
///   them, and they are rare by construction.
pub fn route(
    priority: Priority,
    user: &User,
    channel: Channel,
    recent: u32,
    throttle: Throttle,
) -> Route {
    if priority == Priority::Critical {
        return Route::Queue;
    }
    if !user.opted_in(channel) {
        return Route::Skip(format!("the user opted out of {channel}"));
    }
    if recent >= throttle.limit {
        return Route::Throttle(format!(
            "over the limit of {} {channel} notifications per {}",
            throttle.limit,
            humantime::format_duration(throttle.window)
        ));
    }
    Route::Queue
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{UserDetails, UserId, address::AddressPolicy};

    const THROTTLE: Throttle = Throttle {
        limit: 2,
        window: Duration::from_secs(3600),
    };

    fn ada_without_sms() -> User {
        User::parse(
            UserId::parse("ada").unwrap(),
            UserDetails {
                email: Some("ada@example.com".into()),
                phone: Some("+442071838750".into()),
                preferences: [("sms".to_owned(), false)].into(),
                ..Default::default()
            },
            AddressPolicy::PublicOnly,
        )
        .unwrap()
    }

    #[test]
    fn an_opted_out_channel_is_skipped_unless_the_notification_is_critical() {
        let ada = ada_without_sms();
        assert!(matches!(
            route(Priority::Normal, &ada, Channel::Sms, 0, THROTTLE),
            Route::Skip(_)
        ));
        assert_eq!(
            route(Priority::Critical, &ada, Channel::Sms, 0, THROTTLE),
            Route::Queue
        );
        assert_eq!(
            route(Priority::Normal, &ada, Channel::Email, 0, THROTTLE),
            Route::Queue
        );
    }

    #[test]
    fn past_the_limit_normal_notifications_are_throttled_and_critical_ones_are_not() {
        let ada = ada_without_sms();
        assert_eq!(
            route(Priority::Normal, &ada, Channel::Email, 1, THROTTLE),
            Route::Queue
        );
        assert_eq!(
            route(Priority::Normal, &ada, Channel::Email, 2, THROTTLE),
            Route::Throttle("over the limit of 2 email notifications per 1h".into())
        );
        assert_eq!(
            route(Priority::Critical, &ada, Channel::Email, 50, THROTTLE),
            Route::Queue
        );
    }

    #[test]
    fn only_delivered_skipped_throttled_and_dead_are_final() {
        let final_ones: Vec<_> = DeliveryStatus::ALL
            .into_iter()
            .filter(|status| status.is_final())
            .collect();
        assert_eq!(
            final_ones,
            [
                DeliveryStatus::Delivered,
                DeliveryStatus::Skipped,
                DeliveryStatus::Throttled,
                DeliveryStatus::Dead
            ]
        );
        for status in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
        }
    }
}
