//! The use cases: keep users, accept notifications, report on them.
//!
//! Intake ([`Notifier::accept`]) checks a request against its template and its user, then writes
//! the notification, a `pending` delivery per channel and its message to the intake topic (in the
//! outbox) in one transaction before answering 202: from then on the notification is the system's
//! responsibility and is never lost. A repeat with the same idempotency key finds the first
//! notification and writes nothing. The pipeline (`pipeline/`) takes it from the outbox.
//!
//! Redrive ([`Notifier::redrive`]) is the way back from the dead letters, idempotent by the same
//! means: one conditional update and the outbox row, in one transaction.

use std::sync::Arc;

use platform::{
    auth::{ApiKey, ApiKeys},
    clock::Clock,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    domain::{
        CallerId, Invalid, Notification, NotificationRequest, User, UserDetails, UserId,
        address::AddressPolicy,
    },
    error::NotifierError,
    messages::{Intake, Job, Topology, event_type, outbox_event},
    store::{DeadLetter, Inserted, NotificationRecord, NotificationStore, StoreError},
};

pub struct Notifier {
    store: Arc<dyn NotificationStore>,
    /// The API keys of the services and clients that may call the API.
    callers: ApiKeys,
    clock: Arc<dyn Clock>,
    topology: Topology,
    /// Wakes the outbox relay after a write to the outbox, so the message goes out at once.
    wake: Arc<Notify>,
    /// Which addresses a stored webhook URL may name: the webhook client's own rule, applied
    /// early to an address written in the URL.
    webhooks: AddressPolicy,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq)]
pub struct Redrive {
    pub letter: DeadLetter,
    /// False if it had been redriven before (and nothing was done now).
    pub now: bool,
}

/// What intake answers: the notification's id, and whether it was a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: Uuid,
    pub repeat: bool,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn NotificationStore>,
        callers: ApiKeys,
        clock: Arc<dyn Clock>,
        topology: Topology,
        wake: Arc<Notify>,
        webhooks: AddressPolicy,
    ) -> Self {
        Self {
            store,
            callers,
            clock,
            topology,
            wake,
            webhooks,
        }
    }

    /// A new API key for a caller named `name` (a service, a client), shown this once.
    pub async fn issue_caller_key(&self, name: &str) -> Result<ApiKey, NotifierError> {
        let (key, _) = self
            .callers
            .issue(name, self.clock.now())
            .await
            .map_err(StoreError::from)?;
        Ok(key)
    }

    /// Registers a key the operator chose (`NOTIFIER_CALLER_KEY`), if it is not registered yet.
    pub async fn ensure_caller_key(&self, name: &str, key: &ApiKey) -> Result<(), NotifierError> {
        self.callers
            .ensure(key, name, self.clock.now())
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// The caller a request's key belongs to.
    pub async fn authenticate(&self, key: &ApiKey) -> Result<CallerId, NotifierError> {
        self.callers
            .find(key)
            .await
            .map_err(StoreError::from)?
            .map(|record| CallerId(record.id))
            .ok_or(NotifierError::UnknownCaller)
    }

    pub async fn put_user(&self, id: UserId, details: UserDetails) -> Result<User, NotifierError> {
        let user = User::parse(id, details, self.webhooks)?;
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
    pub async fn accept(&self, body: NotificationRequest) -> Result<Accepted, NotifierError> {
        // An unknown user is invalid input (422 naming the field), not a missing resource: the
        // resource asked for is the notification.
        let unknown = || Invalid::new("user_id", "is not a known user");
        let user_id = UserId::parse(&body.user_id).ok_or_else(unknown)?;
        let user = self.store.user(&user_id).await?.ok_or_else(unknown)?;
        let notification = Notification::parse(body, &user, self.clock.now())?;
        let intake = outbox_event(
            self.topology.intake(),
            &notification.user_id,
            event_type::ACCEPTED,
            &Intake {
                notification_id: notification.id,
            },
            notification.created_at,
        );
        let accepted = match self
            .store
            .insert_notification(&notification, &intake)
            .await?
        {
            Inserted::New => {
                self.wake.notify_one();
                Accepted {
                    id: notification.id,
                    repeat: false,
                }
            }
            Inserted::Existing(id) => Accepted { id, repeat: true },
        };
        metrics::counter!(
            "notifier_accepted_total",
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

    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, NotifierError> {
        Ok(self.store.dead_letters(limit).await?)
    }

    /// Puts a dead letter back on its channel's topic, as a first attempt with a fresh retry
    /// budget. Redriving it again changes nothing.
    #[tracing::instrument(skip(self))]
    pub async fn redrive(&self, id: Uuid) -> Result<Redrive, NotifierError> {
        let letter = self
            .store
            .dead_letter(id)
            .await?
            .ok_or(NotifierError::DeadLetterNotFound)?;
        if letter.redriven_at.is_some() {
            return Ok(Redrive { letter, now: false });
        }
        let record = self
            .store
            .notification(letter.notification_id)
            .await?
            .ok_or(NotifierError::NotificationNotFound)?;
        let now = self.clock.now();
        let job = outbox_event(
            self.topology.channel(letter.channel),
            &record.user_id,
            event_type::REDRIVEN,
            // Counting on from the attempts already made, so that a job of the old chain still
            // waiting in a retry topic can no longer claim an attempt.
            &Job::first(letter.notification_id, letter.channel, letter.attempts),
            now,
        );
        let redriven = self.store.redrive(id, &job, now).await?;
        if redriven {
            self.wake.notify_one();
            metrics::counter!("notifier_redrives_total").increment(1);
        }
        let letter = self
            .store
            .dead_letter(id)
            .await?
            .ok_or(NotifierError::DeadLetterNotFound)?;
        Ok(Redrive {
            letter,
            now: redriven,
        })
    }
}
