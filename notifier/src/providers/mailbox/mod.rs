//! The mailbox: a small SMTP server that keeps what it receives in memory, and a page to read
//! it, so that email works in the lab and in tests with nothing installed. It stands for an
//! email provider, not for a mail server: nothing it receives is relayed anywhere.
//!
//! ```text
//! SMTP   EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT   (what lettre and swaks use)
//! GET  /mailbox            the messages as a page, newest first
//! GET  /mailbox/messages   {"received", "duplicates", "rejected", "messages": [...]}, oldest first
//! GET  /mailbox/faults, PUT /mailbox/faults    (with the admin token, `SDLAB_ADMIN_TOKEN`)
//!      {"error_rate": 0.0, "reject_recipients": ["nobody@example.com"], "latency_ms": 0}
//! ```
//!
//! Try it with `swaks --server 127.0.0.1:<port> --to a@example.com --header 'Subject: hi'`.
//!
//! **Deduplication by Message-ID,** as a provider with idempotency would: a message whose
//! Message-ID the mailbox already holds is answered 250 and counted, not kept again. The
//! notifier's sender puts its idempotency key in the Message-ID ([`super::email::message_id`]),
//! so a retry after a lost answer shows up here as a duplicate, not as a second email. Ids are
//! remembered for the last [`DEDUPE_WINDOW`] messages, more than the page keeps, so a benchmark
//! of that many notifications counts every duplicate; a provider's window is bounded too.
//!
//! **What it does not do:** TLS, AUTH or relaying.
//!
//! # Layout
//! - this file: the messages kept, their counts, and the HTTP routes;
//! - [`smtp`]: the SMTP server, one session per connection;
//! - [`mime`]: a received message decoded for reading (headers, encoded words, the text part);
//! - [`page`]: the HTML page;
//! - [`faults`]: the fault switches, and their routes.

mod faults;
mod mime;
mod page;
mod smtp;

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{Json, Router, extract::State, middleware::from_fn_with_state, routing::get};
use platform::auth::{AdminToken, require_admin};
use serde::Serialize;
use time::OffsetDateTime;

pub use self::faults::Faults;

/// How many messages the page and [`Mailbox::messages`] keep, newest first out.
pub const DEFAULT_CAPACITY: usize = 1_000;
/// How many Message-IDs are remembered for deduplication.
pub const DEDUPE_WINDOW: usize = 100_000;

/// A message the mailbox kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub message_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// The envelope's sender (`MAIL FROM`); empty for a bounce.
    pub from: String,
    /// The envelope's recipients (`RCPT TO`), which need not match the `To` header.
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Messages answered 250, repeats included.
    pub received: u64,
    /// Of those, repeats of a Message-ID already held, not kept again.
    pub duplicates: u64,
    /// Messages and recipients refused by a fault switch (451, 550).
    pub rejected: u64,
}

pub struct Mailbox {
    capacity: usize,
    // A std mutex, not tokio's: it is held for a few pushes and never across an `.await`.
    state: Mutex<Kept>,
    faults: Mutex<Faults>,
    /// What opens `/mailbox/faults` over HTTP; `None`: nothing does (`set_faults` still works).
    admin: Option<AdminToken>,
}

#[derive(Default)]
struct Kept {
    messages: VecDeque<Message>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    counts: Counts,
}

impl Mailbox {
    pub fn new() -> Arc<Self> {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A mailbox that keeps the newest `capacity` messages.
    pub fn with_capacity(capacity: usize) -> Arc<Self> {
        Self::build(capacity, None)
    }

    /// A mailbox whose fault switches also open over HTTP, to `admin`.
    pub fn with_admin(admin: Option<AdminToken>) -> Arc<Self> {
        Self::build(DEFAULT_CAPACITY, admin)
    }

    fn build(capacity: usize, admin: Option<AdminToken>) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            state: Mutex::default(),
            faults: Mutex::default(),
            admin,
        })
    }

    /// The messages kept, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.state
            .lock()
            .unwrap()
            .messages
            .iter()
            .cloned()
            .collect()
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap().counts
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().unwrap().clone()
    }

    /// Keeps `message` unless its Message-ID is already held; true if it was kept.
    fn keep(&self, message: Message) -> bool {
        let mut state = self.state.lock().unwrap();
        state.counts.received += 1;
        if let Some(id) = &message.message_id {
            if !state.seen.insert(id.clone()) {
                state.counts.duplicates += 1;
                return false;
            }
            state.seen_order.push_back(id.clone());
            if state.seen_order.len() > DEDUPE_WINDOW
                && let Some(oldest) = state.seen_order.pop_front()
            {
                state.seen.remove(&oldest);
            }
        }
        state.messages.push_back(message);
        if state.messages.len() > self.capacity {
            state.messages.pop_front();
        }
        true
    }

    fn count_rejected(&self) {
        self.state.lock().unwrap().counts.rejected += 1;
    }

    /// `GET /mailbox`, `GET /mailbox/messages` and `GET`/`PUT /mailbox/faults`, to be merged into
    /// the router of whichever service runs the mailbox.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/mailbox", get(page::page))
            .route("/mailbox/messages", get(list))
            .route(
                "/mailbox/faults",
                get(faults::get_faults)
                    .put(faults::put_faults)
                    .route_layer(from_fn_with_state(self.admin.clone(), require_admin)),
            )
            .with_state(self.clone())
    }
}

#[derive(Serialize)]
struct Listing {
    #[serde(flatten)]
    counts: Counts,
    messages: Vec<Message>,
}

async fn list(State(mailbox): State<Arc<Mailbox>>) -> Json<Listing> {
    Json(Listing {
        counts: mailbox.counts(),
        messages: mailbox.messages(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32) -> Message {
        Message {
            received_at: OffsetDateTime::UNIX_EPOCH,
            message_id: Some(format!("<{n}@example.com>")),
            idempotency_key: None,
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            subject: format!("number {n}"),
            body: "body".into(),
        }
    }

    #[test]
    fn only_the_newest_messages_are_kept_but_every_one_is_counted() {
        let mailbox = Mailbox::with_capacity(2);

        for n in 1..=3 {
            mailbox.keep(message(n));
        }

        let subjects: Vec<_> = mailbox.messages().into_iter().map(|m| m.subject).collect();
        assert_eq!(subjects, ["number 2", "number 3"]);
        assert_eq!(mailbox.counts().received, 3);
    }

    #[test]
    fn a_repeated_message_id_is_counted_and_kept_once() {
        let mailbox = Mailbox::new();

        let first = mailbox.keep(message(1));
        let repeat = mailbox.keep(message(1));

        assert!(first && !repeat);
        assert_eq!(mailbox.messages().len(), 1);
        assert_eq!(
            mailbox.counts(),
            Counts {
                received: 2,
                duplicates: 1,
                rejected: 0
            }
        );
    }
}
