//! The notifier's deep-dive claims, shown happening against a notifier started for the
//! walkthrough, through its HTTP API and its providers' own: the SMS/push simulator and the
//! mailbox it serves are broken and mended through their fault switches (`PUT /v1/faults`,
//! `PUT /mailbox/faults`, with the admin token), and each one's record of what it delivered
//! (`GET /v1/messages`, `GET /mailbox/messages`) is the witness of what reached a person, beside
//! the API's status of each notification and `/metrics`.
//!
//! The notifier runs with retry delays of its own ([`RETRY_DELAYS`]), so that a chain of retries
//! takes a second or two rather than DESIGN.md's five minutes, and a topic prefix and user ids of
//! its own run, so that a lab on the same broker and database neither takes its jobs nor
//! throttles its users.

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use async_trait::async_trait;
use platform::auth::AdminToken;
use serde_json::{Value, json};

use crate::stage::{self, Servers, Shown, Stage};

/// The demonstrations, by the ids WALKTHROUGH.toml's claims name.
pub const DEMOS: &[&str] = &[
    "outage-then-one-delivery",
    "dead-letter-and-redrive",
    "opt-out-against-critical",
    "idempotency-key-once",
];

/// The walkthrough's retry topics: DESIGN.md's schedule (`5s,30s,5m`) shortened, so that the
/// demonstrations wait for seconds, not minutes. The rule is the same: one topic per delay, then a
/// dead letter.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1_000),
];

/// How long a demonstration waits for the pipeline before it gives up. Generous: on Kafka, each
/// consumer group takes seconds to form at the start. Nothing waits this long when things work.
const GUARD: Duration = Duration::from_secs(90);

/// A notifier started for the walkthrough, a caller's key of its own, and the admin token that
/// opens its providers' fault switches.
pub struct Live {
    servers: Servers,
    url: String,
    backends: String,
    key: String,
    admin: String,
    simulator: String,
    mailbox: String,
    /// Makes this run's user ids, idempotency keys and topics its own.
    run: String,
    client: reqwest::Client,
}

impl Live {
    /// The notifier as `NOTIFIER_*` and the backend variables configure it, on free ports, with
    /// its simulator and mailbox served here (they are the witnesses) and short retry delays.
    pub async fn start() -> anyhow::Result<Self> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let run = run_id();
        let admin = AdminToken::generate();
        let mut servers = Servers::new()?;
        let mut settings = ::notifier::Settings::from_env()?;
        settings.addr = any_port;
        settings.provider_url = None;
        settings.smtp_url = None;
        settings.provider_addr = any_port;
        settings.smtp_sink_addr = any_port;
        settings.mailbox_addr = any_port;
        settings.caller_key = None;
        settings.admin_token = Some(admin.clone());
        settings.pipeline.topic_prefix = format!("walkthrough.{run}");
        settings.pipeline.retry_delays = RETRY_DELAYS.to_vec();
        settings.pipeline.payments_topic = None;
        servers.embed("notifier", &mut settings.backends);
        let app = ::notifier::Application::build(settings).await?;
        let key = app
            .notifier()
            .issue_caller_key("walkthrough")
            .await
            .context("issuing the walkthrough's caller key")?;
        let local = app.local_providers();
        let simulator = local
            .simulator
            .as_ref()
            .context("the SMS/push simulator runs")?
            .addr;
        let mailbox = local.mailbox.as_ref().context("the mailbox runs")?.addr;
        let (url, backends) = (
            format!("http://{}", app.local_addr()),
            app.describe_backends(),
        );
        servers.spawn(app.run_until_stopped(servers.until()));
        Ok(Self {
            servers,
            url,
            backends,
            key: key.expose().to_owned(),
            admin: admin.expose().to_owned(),
            simulator: format!("http://{simulator}"),
            mailbox: format!("http://{mailbox}"),
            run,
            client: stage::client(),
        })
    }

    /// A user id of this run.
    fn user(&self, name: &str) -> String {
        format!("wt-{}-{name}", self.run)
    }

    /// An email address of this run.
    fn email(&self, name: &str) -> String {
        format!("{name}-{}@example.com", self.run)
    }

    async fn put_user(&self, id: &str, body: Value) -> anyhow::Result<()> {
        self.client
            .put(format!("{}/v1/users/{id}", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// `POST /v1/notifications`, which must answer 202: the notification's id.
    async fn accepted(&self, body: &Value) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/v1/notifications", self.url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 202,
            "POST /v1/notifications answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        let accepted: Value = response.json().await?;
        accepted["id"]
            .as_str()
            .map(str::to_owned)
            .context("the 202 has no id")
    }

    /// `GET /v1/notifications/{id}`: each channel's delivery, with every attempt.
    async fn notification(&self, id: &str) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(format!("{}/v1/notifications/{id}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Polls the notification until `done` holds; an error after [`GUARD`].
    async fn wait_for(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let record = self.notification(id).await?;
            if done(&record) {
                return Ok(record);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "waited {GUARD:?} for {what}; the notification is {record}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until no delivery of the notification is pending, queued or retrying.
    async fn settled(&self, id: &str) -> anyhow::Result<Value> {
        self.wait_for(id, "every delivery to settle", |record| {
            deliveries(record)
                .iter()
                .all(|d| !["pending", "queued", "retrying"].contains(&status(d)))
        })
        .await
    }

    /// Sets the SMS/push simulator's faults, as the console's switch does.
    async fn simulator_faults(&self, faults: Value) -> anyhow::Result<()> {
        self.put_faults(&format!("{}/v1/faults", self.simulator), faults)
            .await
    }

    /// Sets the mailbox's faults, as the console's switch does.
    async fn mailbox_faults(&self, faults: Value) -> anyhow::Result<()> {
        self.put_faults(&format!("{}/mailbox/faults", self.mailbox), faults)
            .await
    }

    async fn put_faults(&self, url: &str, faults: Value) -> anyhow::Result<()> {
        self.client
            .put(url)
            .bearer_auth(&self.admin)
            .json(&faults)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("PUT {url}"))?;
        Ok(())
    }

    /// Both providers working again: a demonstration that failed half-way leaves none broken for
    /// the next.
    async fn mend(&self) -> anyhow::Result<()> {
        self.simulator_faults(json!({})).await?;
        self.mailbox_faults(json!({})).await
    }

    /// The simulator's record: `{"delivered", "repeats", "messages": [...]}`.
    async fn simulated(&self) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(format!("{}/v1/messages", self.simulator))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The mailbox's record: `{"received", "duplicates", "rejected", "messages": [...]}`.
    async fn mail(&self) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(format!("{}/mailbox/messages", self.mailbox))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        stage::metric(&self.client, &self.url, series).await
    }

    /// An SMS provider down for the first attempts: each failure goes to the next retry topic,
    /// each retry comes no sooner than its delay, and once the provider is back the SMS is
    /// delivered once.
    async fn outage_then_one_delivery(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let user = self.user("grace");
        self.put_user(&user, json!({"phone": "+14155550101"}))
            .await?;
        shown.say(format!(
            "this notifier's retry topics (NOTIFIER_RETRY_DELAYS, shortened from DESIGN.md's \
             5s,30s,5m): {}, then a dead letter",
            schedule()
        ));
        self.simulator_faults(json!({"error_rate": 1.0})).await?;
        shown
            .say("PUT the simulator's /v1/faults {\"error_rate\": 1.0}: every SMS is answered 503");
        let retries_before = self.metric(SMS_RETRY).await?;
        let delivered_before = self.metric(SMS_DELIVERED).await?;
        let id = self
            .accepted(
                &json!({"user_id": user, "template": "welcome", "data": {"name": "Grace"},
                              "channels": ["sms"]}),
            )
            .await?;
        shown.say(format!(
            "POST /v1/notifications, an SMS to {user}: 202, id {id}"
        ));
        self.wait_for(&id, "two failed attempts", |record| {
            outcomes(record, "sms")
                .iter()
                .filter(|o| **o == "retry")
                .count()
                >= 2
        })
        .await?;
        self.simulator_faults(json!({})).await?;
        shown.say("after two failed attempts, PUT /v1/faults {}: the provider is back");
        let record = self.settled(&id).await?;

        let attempts = attempts(&record, "sms");
        let on_schedule = say_timeline(shown, &attempts);
        let outcomes = outcomes(&record, "sms");
        let retries = outcomes.iter().filter(|o| **o == "retry").count();
        shown.check(
            on_schedule,
            "each retry came no sooner than its retry topic's delay",
        );
        shown.check(
            retries >= 2
                && outcomes.last() == Some(&"delivered")
                && outcomes[..outcomes.len() - 1].iter().all(|o| *o == "retry")
                && delivery_status(&record, "sms") == Some("delivered"),
            format!(
                "GET /v1/notifications/{id}: the failures were retried and the last attempt \
                 delivered ({})",
                outcomes.join(", ")
            ),
        );
        let simulated = self.simulated().await?;
        let key = format!("{id}:sms");
        let kept: Vec<&Value> = messages(&simulated)
            .filter(|m| m["idempotency_key"] == key.as_str())
            .collect();
        let repeats: u64 = kept.iter().filter_map(|m| m["repeats"].as_u64()).sum();
        shown.say(format!(
            "the simulator's GET /v1/messages: {} message(s) with the key {key}, repeated {repeats} \
             time(s) (a 503 delivers nothing)",
            kept.len()
        ));
        shown.check(
            kept.len() == 1 && repeats == 0,
            "exactly one SMS reached the provider",
        );
        let retried = self.metric(SMS_RETRY).await? - retries_before;
        let delivered = self.metric(SMS_DELIVERED).await? - delivered_before;
        shown.say(format!(
            "notifier_attempts_total{{channel=\"sms\"}}: +{retried} retry, +{delivered} delivered"
        ));
        shown.check(
            retried == retries as f64 && delivered == 1.0,
            "/metrics counts the same attempts",
        );
        Ok(())
    }

    /// Two emails dead-lettered, one for good at once (550, no such mailbox) and one after every
    /// retry (451, try later); both redriven once the mailbox is mended, and each delivered once.
    async fn dead_letter_and_redrive(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let (rejected, unlucky) = (self.user("rejected"), self.user("unlucky"));
        let (rejected_at, unlucky_at) = (self.email("rejected"), self.email("unlucky"));
        self.put_user(&rejected, json!({"email": rejected_at}))
            .await?;
        self.put_user(&unlucky, json!({"email": unlucky_at}))
            .await?;
        self.mailbox_faults(json!({"error_rate": 1.0, "reject_recipients": [rejected_at]}))
            .await?;
        shown.say(format!(
            "PUT the mailbox's /mailbox/faults: {rejected_at} answered 550 (no such mailbox, \
             permanent), every other message 451 (try again later)"
        ));
        let dead_before = self.metric(EMAIL_DEAD).await?;
        let redrives_before = self.metric(REDRIVES).await?;
        let refused_before = self.mail().await?["rejected"].as_f64().unwrap_or(0.0);
        let email = |user: &str| {
            json!({"user_id": user, "template": "welcome", "data": {"name": "Lin"},
                   "channels": ["email"]})
        };
        let first = self.accepted(&email(&rejected)).await?;
        let second = self.accepted(&email(&unlucky)).await?;
        shown.say(format!(
            "POST /v1/notifications, an email to each: {first} and {second}"
        ));
        let first_record = self.settled(&first).await?;
        let second_record = self.settled(&second).await?;

        let first_outcomes = outcomes(&first_record, "email");
        shown.say(format!(
            "{first}: {} ({})",
            first_outcomes.join(", "),
            attempts(&first_record, "email")
                .last()
                .map_or("", |a| a.error.as_str())
        ));
        shown.check(
            first_outcomes == ["failed"] && delivery_status(&first_record, "email") == Some("dead"),
            "a permanent failure is dead-lettered at once, without a retry",
        );
        shown.say(format!("{second}:"));
        let on_schedule = say_timeline(shown, &attempts(&second_record, "email"));
        let second_outcomes = outcomes(&second_record, "email");
        let mut exhausted = vec!["retry"; RETRY_DELAYS.len()];
        exhausted.push("failed");
        shown.check(
            on_schedule
                && second_outcomes == exhausted
                && delivery_status(&second_record, "email") == Some("dead"),
            format!(
                "a retryable failure went through every retry topic on schedule, then to the \
                 dead letters ({} attempts)",
                RETRY_DELAYS.len() + 1
            ),
        );
        let letters = self.dead_letters().await?;
        let letter = |id: &str| letters.iter().find(|l| l["notification_id"] == id).cloned();
        let (Some(first_letter), Some(second_letter)) = (letter(&first), letter(&second)) else {
            shown.check(false, "GET /v1/dlq lists both dead letters");
            return Ok(());
        };
        for l in [&first_letter, &second_letter] {
            shown.say(format!(
                "GET /v1/dlq: {} for {}, {} attempt(s), \"{}\"",
                l["id"].as_str().unwrap_or("?"),
                l["notification_id"].as_str().unwrap_or("?"),
                l["attempts"],
                l["error"].as_str().unwrap_or("")
            ));
        }
        let mail = self.mail().await?;
        let refused = mail["rejected"].as_f64().unwrap_or(0.0) - refused_before;
        let kept = |to: &str| {
            messages(&mail)
                .filter(|m| m["to"].as_array().is_some_and(|a| a.contains(&json!(to))))
                .count()
        };
        shown.say(format!(
            "the mailbox's GET /mailbox/messages: it refused {refused} time(s), and kept {} \
             message(s) for the two",
            kept(&rejected_at) + kept(&unlucky_at)
        ));
        let dead = self.metric(EMAIL_DEAD).await? - dead_before;
        shown.check(
            first_letter["attempts"] == 1
                && second_letter["attempts"] == RETRY_DELAYS.len() + 1
                && kept(&rejected_at) + kept(&unlucky_at) == 0
                && refused == (RETRY_DELAYS.len() + 2) as f64
                && dead == 2.0,
            "both are dead letters with their attempts, nothing was delivered, and \
             notifier_attempts_total{outcome=\"dead\"} counted two",
        );

        self.mailbox_faults(json!({})).await?;
        shown.say("PUT /mailbox/faults {}: the mailbox takes every message again");
        let mut answers = Vec::new();
        for l in [&first_letter, &first_letter, &second_letter] {
            let (status, body) = self.redrive(l["id"].as_str().unwrap_or("")).await?;
            answers.push((status, body["redriven_at"].clone()));
        }
        shown.say(format!(
            "POST /v1/dlq/{{id}}/redrive, the first letter twice, then the second: {}, {}, {}",
            answers[0].0, answers[1].0, answers[2].0
        ));
        shown.check(
            answers[0].0 == 202
                && answers[1].0 == 200
                && answers[1].1 == answers[0].1
                && answers[2].0 == 202,
            "a redrive queues the delivery once; a repeat answers 200 and does nothing",
        );
        let delivered = |record: &Value| delivery_status(record, "email") == Some("delivered");
        let first_record = self
            .wait_for(&first, "the redriven delivery", delivered)
            .await?;
        let second_record = self
            .wait_for(&second, "the redriven delivery", delivered)
            .await?;
        let mail = self.mail().await?;
        let kept = |to: &str| {
            messages(&mail)
                .filter(|m| m["to"].as_array().is_some_and(|a| a.contains(&json!(to))))
                .count()
        };
        shown.say(format!(
            "{first}: {}; {second}: {}",
            outcomes(&first_record, "email").join(", "),
            outcomes(&second_record, "email").join(", ")
        ));
        shown.say(format!(
            "the mailbox now holds {} message(s) for {rejected_at} and {} for {unlucky_at}",
            kept(&rejected_at),
            kept(&unlucky_at)
        ));
        let redrives = self.metric(REDRIVES).await? - redrives_before;
        shown.check(
            kept(&rejected_at) == 1 && kept(&unlucky_at) == 1 && redrives == 2.0,
            "each redriven email was delivered exactly once (notifier_redrives_total +2)",
        );
        Ok(())
    }

    async fn dead_letters(&self) -> anyhow::Result<Vec<Value>> {
        let listing: Value = self
            .client
            .get(format!("{}/v1/dlq", self.url))
            .bearer_auth(&self.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(listing["data"].as_array().cloned().unwrap_or_default())
    }

    async fn redrive(&self, letter: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .post(format!("{}/v1/dlq/{letter}/redrive", self.url))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// A user opted out of SMS: a normal notification skips the SMS, a critical one is sent.
    async fn opt_out_against_critical(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let user = self.user("ada");
        let phone = "+14155550103";
        self.put_user(
            &user,
            json!({"email": self.email("ada"), "phone": phone, "preferences": {"sms": false}}),
        )
        .await?;
        shown.say(format!(
            "PUT /v1/users/{user}: an email address and {phone}, preferences {{\"sms\": false}}"
        ));
        let skipped_before = self.metric(SMS_SKIPPED).await?;
        let normal = self
            .accepted(&json!({"user_id": user, "template": "welcome", "data": {"name": "Ada"}}))
            .await?;
        let critical = self
            .accepted(&json!({"user_id": user, "template": "password_reset",
                              "data": {"code": "424242"}, "priority": "critical"}))
            .await?;
        shown.say(format!(
            "POST /v1/notifications: a normal welcome ({normal}) and a critical password reset \
             ({critical}), to every channel the user has"
        ));
        let normal_record = self.settled(&normal).await?;
        let critical_record = self.settled(&critical).await?;
        for (what, record) in [("normal", &normal_record), ("critical", &critical_record)] {
            shown.say(format!(
                "GET /v1/notifications ({what}): email {}, sms {}",
                delivery_status(record, "email").unwrap_or("none"),
                delivery_status(record, "sms").unwrap_or("none")
            ));
        }
        let simulated = self.simulated().await?;
        let sms: Vec<&Value> = messages(&simulated)
            .filter(|m| m["content"]["to"] == phone)
            .collect();
        let texts: Vec<&str> = sms
            .iter()
            .filter_map(|m| m["content"]["text"].as_str())
            .collect();
        shown.say(format!(
            "the simulator's GET /v1/messages to {phone}: {texts:?}"
        ));
        let skipped = self.metric(SMS_SKIPPED).await? - skipped_before;
        shown.say(format!(
            "notifier_routed_total{{channel=\"sms\",decision=\"skipped\"}}: +{skipped}"
        ));
        shown.check(
            delivery_status(&normal_record, "sms") == Some("skipped")
                && outcomes(&normal_record, "sms") == ["skipped"]
                && delivery_status(&normal_record, "email") == Some("delivered")
                && skipped == 1.0,
            "the opted-out user got no normal SMS (skipped by the router), and the email",
        );
        shown.check(
            delivery_status(&critical_record, "sms") == Some("delivered")
                && sms.len() == 1
                && sms[0]["idempotency_key"] == format!("{critical}:sms").as_str()
                && texts.iter().all(|t| t.contains("424242")),
            "the critical notification reached the opted-out channel: one SMS, the reset code",
        );
        Ok(())
    }

    /// The same idempotency key twice: one notification, one SMS.
    async fn idempotency_key_once(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let user = self.user("lin");
        let phone = "+14155550104";
        self.put_user(&user, json!({"phone": phone})).await?;
        let key = format!("signup-{}", self.run);
        let body = json!({"user_id": user, "template": "welcome", "data": {"name": "Lin"},
                          "channels": ["sms"], "idempotency_key": key});
        let new_before = self.metric(ACCEPTED_NEW).await?;
        let repeat_before = self.metric(ACCEPTED_REPEAT).await?;
        let first = self.accepted(&body).await?;
        let second = self.accepted(&body).await?;
        shown.say(format!(
            "POST /v1/notifications twice with \"idempotency_key\": \"{key}\": 202 {first}, \
             then 202 {second}"
        ));
        let record = self.settled(&first).await?;
        let new = self.metric(ACCEPTED_NEW).await? - new_before;
        let repeat = self.metric(ACCEPTED_REPEAT).await? - repeat_before;
        shown.say(format!(
            "notifier_accepted_total: +{new} {{repeat=\"false\"}}, +{repeat} {{repeat=\"true\"}}"
        ));
        let simulated = self.simulated().await?;
        let sms = messages(&simulated)
            .filter(|m| m["content"]["to"] == phone)
            .count();
        shown.say(format!(
            "GET /v1/notifications/{first}: sms {} ({}); the simulator holds {sms} SMS to {phone}",
            delivery_status(&record, "sms").unwrap_or("none"),
            outcomes(&record, "sms").join(", ")
        ));
        shown.check(
            first == second && new == 1.0 && repeat == 1.0,
            "the repeat was answered with the first notification, and stored nothing new",
        );
        shown.check(
            sms == 1 && outcomes(&record, "sms") == ["delivered"],
            "one SMS was sent",
        );
        Ok(())
    }
}

const SMS_RETRY: &str = "notifier_attempts_total{channel=\"sms\",outcome=\"retry\"}";
const SMS_DELIVERED: &str = "notifier_attempts_total{channel=\"sms\",outcome=\"delivered\"}";
const EMAIL_DEAD: &str = "notifier_attempts_total{channel=\"email\",outcome=\"dead\"}";
const SMS_SKIPPED: &str = "notifier_routed_total{channel=\"sms\",decision=\"skipped\"}";
const REDRIVES: &str = "notifier_redrives_total";
const ACCEPTED_NEW: &str = "notifier_accepted_total{repeat=\"false\"}";
const ACCEPTED_REPEAT: &str = "notifier_accepted_total{repeat=\"true\"}";

#[async_trait]
impl Stage for Live {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn backends(&self) -> String {
        format!("{}, retries after {}", self.backends, schedule())
    }

    async fn demonstrate(&mut self, demo: &str, shown: &mut Shown) -> anyhow::Result<()> {
        self.mend().await?;
        let result = match demo {
            "outage-then-one-delivery" => self.outage_then_one_delivery(shown).await,
            "dead-letter-and-redrive" => self.dead_letter_and_redrive(shown).await,
            "opt-out-against-critical" => self.opt_out_against_critical(shown).await,
            "idempotency-key-once" => self.idempotency_key_once(shown).await,
            other => anyhow::bail!("the notifier has no demonstration {other:?}"),
        };
        self.mend().await?;
        result
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.servers.stop().await
    }
}

/// The retry delays, as `250ms, 500ms, 1s`.
fn schedule() -> String {
    RETRY_DELAYS
        .iter()
        .map(|delay| format!("{delay:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string no other run has: the nanoseconds since the epoch, in hex.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{nanos:x}")
}

fn deliveries(record: &Value) -> Vec<&Value> {
    record["deliveries"]
        .as_array()
        .map(|d| d.iter().collect())
        .unwrap_or_default()
}

fn status(delivery: &Value) -> &str {
    delivery["status"].as_str().unwrap_or("")
}

fn delivery<'a>(record: &'a Value, channel: &str) -> Option<&'a Value> {
    record["deliveries"]
        .as_array()?
        .iter()
        .find(|d| d["channel"] == channel)
}

fn delivery_status<'a>(record: &'a Value, channel: &str) -> Option<&'a str> {
    delivery(record, channel).map(status)
}

/// The outcomes of one channel's attempts, in order.
fn outcomes<'a>(record: &'a Value, channel: &str) -> Vec<&'a str> {
    attempt_values(record, channel)
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or(""))
        .collect()
}

fn attempt_values<'a>(record: &'a Value, channel: &str) -> Vec<&'a Value> {
    delivery(record, channel)
        .and_then(|d| d["attempts"].as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn messages(record: &Value) -> impl Iterator<Item = &Value> {
    record["messages"].as_array().into_iter().flatten()
}

/// One attempt as `GET /v1/notifications/{id}` shows it.
struct Attempt {
    /// Milliseconds since the epoch.
    at_ms: i64,
    outcome: String,
    error: String,
}

fn attempts(record: &Value, channel: &str) -> Vec<Attempt> {
    attempt_values(record, channel)
        .iter()
        .map(|a| Attempt {
            at_ms: a["at"].as_str().and_then(unix_millis).unwrap_or(0),
            outcome: a["outcome"].as_str().unwrap_or("").to_owned(),
            error: a["error"].as_str().unwrap_or("").to_owned(),
        })
        .collect()
}

/// Says each attempt, when it came after the one before and after which delay it was due;
/// whether every retry came no sooner than its delay. Milliseconds, as the job's due time is
/// kept: a retry may come up to a millisecond before its delay measured in microseconds.
fn say_timeline(shown: &mut Shown, attempts: &[Attempt]) -> bool {
    let mut on_schedule = true;
    for (i, attempt) in attempts.iter().enumerate() {
        let what = if attempt.error.is_empty() {
            attempt.outcome.clone()
        } else {
            format!("{} ({})", attempt.outcome, attempt.error)
        };
        match (
            i.checked_sub(1),
            i.checked_sub(1).and_then(|p| RETRY_DELAYS.get(p)),
        ) {
            (Some(previous), Some(delay)) => {
                let gap = attempt.at_ms - attempts[previous].at_ms;
                let due = delay.as_millis() as i64;
                on_schedule &= gap >= due - 1;
                shown.say(format!(
                    "  attempt {}, {gap} ms after the one before (due after {delay:?}): {what}",
                    i + 1
                ));
            }
            _ => shown.say(format!("  attempt {}: {what}", i + 1)),
        }
    }
    on_schedule
}

/// An RFC 3339 time (`2026-12-07T03:49:04.123456Z`, or with an offset) as milliseconds since
/// the epoch.
fn unix_millis(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rfc_3339_time_is_read_to_the_millisecond_with_its_offset() {
        assert_eq!(unix_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_millis("2026-12-07T03:49:04.123456Z"),
            Some(1_796_615_344_123)
        );
        assert_eq!(
            unix_millis("2026-12-07T04:49:04.123456789+01:00"),
            unix_millis("2026-12-07T03:49:04.123Z")
        );
        assert_eq!(
            unix_millis("2000-03-01T00:00:00-00:30"),
            Some(951_870_600_000)
        );
        assert_eq!(unix_millis("yesterday"), None);
    }

    #[test]
    fn a_retry_sooner_than_its_delay_is_off_schedule() {
        let attempt = |at_ms, outcome: &str| Attempt {
            at_ms,
            outcome: outcome.into(),
            error: String::new(),
        };
        let mut shown = Shown::default();

        let on_time = say_timeline(
            &mut shown,
            &[
                attempt(0, "retry"),
                attempt(260, "retry"),
                attempt(760, "delivered"),
            ],
        );
        let early = say_timeline(
            &mut shown,
            &[attempt(0, "retry"), attempt(100, "delivered")],
        );

        assert!(on_time);
        assert!(!early);
        assert!(shown.lines[1].contains("260 ms after the one before (due after 250ms)"));
    }
}
