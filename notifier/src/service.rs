//! The use cases: keep users, accept notifications, report on them.
//!
//! Intake ([`Notifier::accept`]) checks a request against its template and its user, then writes
//! the notification and a `pending` delivery per channel in one transaction before answering
//! 202: from then on the notification is the system's responsibility and is never lost. A repeat
//! with the same idempotency key finds the first notification and writes nothing.

use std::sync::Arc;

use platform::clock::Clock;
use uuid::Uuid;

use crate::{
    domain::{Invalid, Notification, NotificationBody, User, UserBody, UserId},
    error::NotifierError,
    store::{Inserted, NotificationRecord, NotificationStore},
};

pub struct Notifier {
    store: Arc<dyn NotificationStore>,
    clock: Arc<dyn Clock>,
}

/// What intake answers: the notification's id, and whether it was a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: Uuid,
    pub repeat: bool,
}

impl Notifier {
    pub fn new(store: Arc<dyn NotificationStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    pub async fn put_user(&self, id: UserId, body: UserBody) -> Result<User, NotifierError> {
        let user = User::parse(id, body)?;
        self.store.put_user(&user, self.clock.now()).await?;
        Ok(user)
    }

    pub async fn user(&self, id: &UserId) -> Result<User, NotifierError> {
        self.store
            .user(id)
            .await?
            .ok_or(NotifierError::UserNotFound)
    }

    #[tracing::instrument(skip(self, body), fields(user = %body.user_id, template = %body.template))]
    pub async fn accept(&self, body: NotificationBody) -> Result<Accepted, NotifierError> {
        // An unknown user is invalid input (422 naming the field), not a missing resource: the
        // resource asked for is the notification.
        let unknown = || Invalid::new("user_id", "is not a known user");
        let user_id = UserId::parse(&body.user_id).ok_or_else(unknown)?;
        let user = self.store.user(&user_id).await?.ok_or_else(unknown)?;
        let notification = Notification::parse(body, &user, self.clock.now())?;
        let accepted = match self.store.insert_notification(&notification).await? {
            Inserted::New => Accepted {
                id: notification.id,
                repeat: false,
            },
            Inserted::Existing(id) => Accepted { id, repeat: true },
        };
        metrics::counter!(
            "notifications_accepted_total",
            "repeat" => if accepted.repeat { "true" } else { "false" }
        )
        .increment(1);
        Ok(accepted)
    }

    pub async fn notification(&self, id: Uuid) -> Result<NotificationRecord, NotifierError> {
        self.store
            .notification(id)
            .await?
            .ok_or(NotifierError::NotificationNotFound)
    }
}
