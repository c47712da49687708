//! The payments service's deep-dive claims, shown happening against two instances of it started
//! for the walkthrough (one database, one payment provider), through their HTTP APIs. The
//! witnesses are the provider simulator's own record (`GET /v1/charges`: the charges it keeps,
//! each under the idempotency key it was made with, which is the payment's id, and its counts:
//! `made`, every charge, and `replayed`, every request it answered with a charge it already had,
//! which a provider without idempotency keys would have charged again), the answers themselves,
//! and `payments_recoveries_total` on `/metrics`, the payments the completer finished. A check
//! counts the charges under the payer's payments' ids, which nothing else on a shared database or
//! provider can add to; the counts are printed beside.
//!
//! The faults are the ones an operator flips, over HTTP with the admin token: the simulator's
//! (`PUT /v1/faults`: a slow answer, a connection dropped after charging) and the service's own
//! `database` switch (`PUT /admin/faults/database`, `idempotency-demo/src/store/faulty.rs`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use idempotency_demo::{
    Application, SYSTEM, Settings, app::SCHEMA, service::Payments, settings::ProviderSetting,
};
use platform::{auth::AdminToken, clock::SystemClock, db::Database, topic::Topics};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::stage::{self, Servers, Shown, Stage};

/// The demonstrations, by the ids WALKTHROUGH.toml's claims name.
pub const DEMOS: &[&str] = &[
    "five-at-once",
    "retry-after-provider-crash",
    "crash-after-charge",
    "key-reused",
];

/// The lock timeout and the completer's grace of the walkthrough's instances. Both are 60 s by
/// default (DESIGN.md §5); shortened, an abandoned payment is recovered while the user watches.
/// Still far longer than a payment takes here, so no live request loses its key.
const RECOVERY: Duration = Duration::from_secs(3);
/// How often the completer (and the reaper) look, on each instance.
const BACKGROUND: Duration = Duration::from_millis(250);
/// A guard against a hang while waiting for an asynchronous outcome, not a timing assertion.
const GUARD: Duration = Duration::from_secs(30);
/// How long the simulator holds its answer after charging, so that copies overlap and a fault
/// can land between the charge and its record.
const HOLD_MS: u64 = 1_000;

const RECOVERIES: &str = "payments_recoveries_total";

/// Two payments instances started for the walkthrough, sharing one database and one provider.
pub struct Live {
    servers: Servers,
    /// The instances' origins: demonstrations spread their requests over both.
    urls: [String; 2],
    provider: String,
    admin: String,
    backends: String,
    payments: Arc<Payments>,
    client: reqwest::Client,
}

/// An answer to `POST /v1/payments`.
struct Answer {
    status: u16,
    replayed: bool,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `201`, `201 replayed`, `409 (Retry-After: 1)`, `422 idempotency-key-reused`…
    fn brief(&self) -> String {
        let mut out = self.status.to_string();
        if self.replayed {
            out.push_str(" replayed");
        }
        if let Some(kind) = self.json()["type"].as_str() {
            out.push(' ');
            out.push_str(kind.rsplit(':').next().unwrap_or(kind));
        }
        if let Some(seconds) = self.retry_after {
            out.push_str(&format!(" (Retry-After: {seconds})"));
        }
        out
    }
}

/// The answers as one line: `201, 409 request-in-progress (Retry-After: 1), …`.
fn briefs(answers: &[Answer]) -> String {
    let briefs: Vec<String> = answers.iter().map(Answer::brief).collect();
    briefs.join(", ")
}

/// The provider simulator's counts and the charges it keeps, from its own `GET /v1/charges`.
#[derive(Debug, Deserialize)]
struct Ledger {
    made: u64,
    replayed: u64,
    charges: Vec<Charge>,
}

#[derive(Debug, Deserialize)]
struct Charge {
    id: String,
    idempotency_key: String,
}

impl Ledger {
    /// The charges made under `key` (the payments service sends a payment's id).
    fn charges_for(&self, key: &str) -> Vec<&str> {
        self.charges
            .iter()
            .filter(|c| c.idempotency_key == key)
            .map(|c| c.id.as_str())
            .collect()
    }
}

impl Live {
    /// Two instances as `PAYMENTS_*` and the backend variables configure them, on free ports,
    /// the first serving the provider simulator (unless `PAYMENTS_PROVIDER_URL` names one) and
    /// the second calling it, as a second machine would.
    pub async fn start() -> anyhow::Result<Self> {
        let mut servers = Servers::new()?;
        let mut settings = Settings::from_env()?;
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.addr = any_port;
        if let ProviderSetting::Simulated(addr) = &mut settings.provider {
            *addr = any_port;
        }
        let admin = settings
            .admin_token
            .get_or_insert_with(AdminToken::generate)
            .expose()
            .to_owned();
        settings.timing.lock_timeout = RECOVERY;
        settings.timing.completer_grace = RECOVERY;
        settings.background_interval = BACKGROUND;
        servers.embed(SYSTEM, &mut settings.backends);
        // The embedded topics are one process's file, so the instances publish through one
        // connection to them (two connections to Kafka would do as well).
        let topics = platform::topic::connect(&settings.backends.topics)
            .await
            .context("connecting to the topics")?;
        let first = build(settings.clone(), topics.clone()).await?;
        let provider = match (&settings.provider, first.provider()) {
            (ProviderSetting::Url(url), _) => url.trim_end_matches('/').to_owned(),
            (_, Some(running)) => format!("http://{}", running.addr),
            (ProviderSetting::Simulated(_), None) => anyhow::bail!("the simulator did not start"),
        };
        let mut second_settings = settings;
        second_settings.provider = ProviderSetting::Url(provider.clone());
        let second = build(second_settings, topics).await?;
        let urls = [
            format!("http://{}", first.local_addr()),
            format!("http://{}", second.local_addr()),
        ];
        let backends = format!(
            "two instances on {}",
            first
                .describe_backends()
                .replace("simulated", "a simulated")
        );
        let payments = first.payments().clone();
        servers.spawn(first.run_until_stopped(servers.until()));
        servers.spawn(second.run_until_stopped(servers.until()));
        Ok(Self {
            servers,
            urls,
            provider,
            admin,
            backends,
            payments,
            client: stage::client(),
        })
    }

    /// A new client of the API, so that a demonstration's payments are its own.
    async fn payer(&self, name: &str) -> anyhow::Result<String> {
        let (_, key) = self
            .payments
            .create_client(&format!("walkthrough: {name}"))
            .await?;
        Ok(key.expose().to_owned())
    }

    /// `POST /v1/payments` on instance `on` (0 or 1), paying `amount` cents on a card that
    /// succeeds.
    async fn pay(&self, on: usize, payer: &str, key: &str, amount: u64) -> anyhow::Result<Answer> {
        let response = self
            .client
            .post(format!("{}/v1/payments", self.urls[on]))
            .bearer_auth(payer)
            .header("idempotency-key", key)
            .json(&json!({"amount": amount, "currency": "usd", "source": "tok_visa"}))
            .send()
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Answer {
            status: response.status().as_u16(),
            replayed: header("idempotent-replayed").as_deref() == Some("true"),
            retry_after: header("retry-after").and_then(|s| s.parse().ok()),
            body: response.bytes().await?.to_vec(),
        })
    }

    /// `GET /v1/payments`: the payer's payments, newest first.
    async fn payments_of(&self, payer: &str) -> anyhow::Result<Vec<Value>> {
        let page: Value = self
            .client
            .get(format!("{}/v1/payments?limit=100", self.urls[0]))
            .bearer_auth(payer)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(page["data"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /v1/payments/{id}`.
    async fn payment(&self, payer: &str, id: &str) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(format!("{}/v1/payments/{id}", self.urls[0]))
            .bearer_auth(payer)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn ledger(&self) -> anyhow::Result<Ledger> {
        Ok(self
            .client
            .get(format!("{}/v1/charges", self.provider))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Sets the simulator's faults (`{}` clears them).
    async fn provider_faults(&self, faults: Value) -> anyhow::Result<()> {
        self.client
            .put(format!("{}/v1/faults", self.provider))
            .bearer_auth(&self.admin)
            .json(&faults)
            .send()
            .await?
            .error_for_status()
            .context("setting the provider simulator's faults")?;
        Ok(())
    }

    /// Turns instance `on`'s `database` switch unreachable, or back.
    async fn database_switch(&self, on: usize, unreachable: bool) -> anyhow::Result<()> {
        self.client
            .put(format!("{}/admin/faults/database", self.urls[on]))
            .bearer_auth(&self.admin)
            .json(&json!({"unreachable": unreachable}))
            .send()
            .await?
            .error_for_status()
            .context("flipping the database switch")?;
        Ok(())
    }

    /// Five copies of one request at once, over both instances: one does the work, the others
    /// wait as told and get its answer; the provider charged once.
    async fn five_at_once(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let payer = self.payer("five at once").await?;
        let before = self.ledger().await?;
        self.provider_faults(json!({"latency_ms": 300})).await?;
        let copies = (0..5).map(|i| self.pay(i % 2, &payer, "order-5x", 2500));
        let first = futures::future::try_join_all(copies).await;
        self.provider_faults(json!({})).await?;
        let mut answers = first?;
        shown.say(format!(
            "POST /v1/payments, Idempotency-Key: order-5x, five copies at once over the two \
             instances (the provider taking 300 ms): {}",
            briefs(&answers)
        ));
        let mut waited = 0;
        let started = Instant::now();
        while let Some(seconds) = answers
            .iter()
            .filter(|a| a.status == 409)
            .find_map(|a| a.retry_after)
            && started.elapsed() < GUARD
        {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            for (i, answer) in answers.iter_mut().enumerate() {
                if answer.status == 409 {
                    *answer = self.pay(i % 2, &payer, "order-5x", 2500).await?;
                    waited += 1;
                }
            }
        }
        let fresh: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.status == 201 && !a.replayed)
            .collect();
        let one_answer = fresh.len() == 1
            && answers
                .iter()
                .all(|a| a.status == 201 && a.body == fresh[0].body);
        shown.say(format!(
            "the copies told to wait retried after Retry-After ({waited} retries): {}",
            briefs(&answers)
        ));
        let after = self.ledger().await?;
        let payments = self.payments_of(&payer).await?;
        let id = fresh.first().map(|a| a.json()["id"].clone());
        let id = id.as_ref().and_then(Value::as_str).unwrap_or("none");
        shown.say(format!(
            "the provider's own count: made +{}, replayed +{}; GET /v1/payments: {} payment(s), \
             {id}, with {} charge(s) under its id at the provider",
            after.made - before.made,
            after.replayed - before.replayed,
            payments.len(),
            after.charges_for(id).len()
        ));
        shown.check(
            one_answer,
            "one copy did the work; the other four got its answer, byte for byte, marked \
             Idempotent-Replayed",
        );
        shown.check(
            payments.len() == 1 && after.charges_for(id).len() == 1,
            "five copies of one key made one charge and one payment",
        );
        Ok(())
    }

    /// The provider charges, then drops the connection: the payment waits at its recovery point,
    /// and the retry resumes it there and gets the same charge back.
    async fn retry_after_provider_crash(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let payer = self.payer("provider crash").await?;
        let before = self.ledger().await?;
        self.provider_faults(json!({"crash_after_charge_rate": 1.0}))
            .await?;
        let first = self.pay(0, &payer, "order-drop", 3000).await;
        self.provider_faults(json!({})).await?;
        let first = first?;
        let dropped = self.ledger().await?;
        let pending = self.payments_of(&payer).await?;
        let id = pending
            .first()
            .and_then(|p| p["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let status = pending.first().and_then(|p| p["status"].as_str());
        shown.say(format!(
            "the provider set to charge, then drop the connection (crash_after_charge_rate: 1); \
             POST /v1/payments, Idempotency-Key: order-drop: {}; the provider made +{}; GET \
             /v1/payments: {id} is {} (its key rests at payment_created, unlocked)",
            first.brief(),
            dropped.made - before.made,
            status.unwrap_or("missing")
        ));
        shown.check(
            first.status == 502
                && dropped.charges_for(&id).len() == 1
                && pending.len() == 1
                && status == Some("pending"),
            "the provider charged but the service cannot know it: 502, the payment left pending",
        );
        let retry = self.pay(1, &payer, "order-drop", 3000).await?;
        let after = self.ledger().await?;
        let charges = after.charges_for(&id);
        let reference = retry.json()["provider_reference"].clone();
        shown.say(format!(
            "the same request again, on the other instance: {}, {} with provider_reference \
             {}; the provider made +{}, replayed +{} since the first: it answered the \
             payment's id with the charge it had made",
            retry.brief(),
            retry.json()["status"].as_str().unwrap_or("no status"),
            reference.as_str().unwrap_or("none"),
            after.made - before.made,
            after.replayed - dropped.replayed
        ));
        shown.check(
            retry.status == 201
                && !retry.replayed
                && after.replayed > dropped.replayed
                && charges.len() == 1
                && reference == charges[0],
            "the retry resumed from payment_created and got the first charge back: one charge",
        );
        Ok(())
    }

    /// The database goes away between the provider's charge and its record, as a crash there
    /// would leave it; nobody retries: the completer finishes the payment with the same charge,
    /// and the client's later retry gets the stored answer.
    async fn crash_after_charge(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let payer = self.payer("crash after charge").await?;
        let before = self.ledger().await?;
        let recoveries = stage::metric(&self.client, &self.urls[0], RECOVERIES).await?;
        self.provider_faults(json!({"latency_ms": HOLD_MS})).await?;
        // Off as soon as the provider holds a charge for this payer's payment: its answer, and
        // so the record of it, is still a second away.
        let cut_off = async {
            let deadline = Instant::now() + GUARD;
            loop {
                anyhow::ensure!(Instant::now() < deadline, "the provider made no charge");
                tokio::time::sleep(Duration::from_millis(10)).await;
                let payments = self.payments_of(&payer).await?;
                let Some(id) = payments.first().and_then(|p| p["id"].as_str()) else {
                    continue;
                };
                if !self.ledger().await?.charges_for(id).is_empty() {
                    break;
                }
            }
            self.database_switch(0, true).await
        };
        let (first, cut_off) = tokio::join!(self.pay(0, &payer, "order-cut", 4200), cut_off);
        let restored = self.database_switch(0, false).await;
        self.provider_faults(json!({})).await?;
        let (first, ()) = (first?, cut_off?);
        restored?;
        let charged = self.ledger().await?;
        shown.say(format!(
            "POST /v1/payments, Idempotency-Key: order-cut, on instance 1; the provider charged \
             (made +{}) and held its answer {HOLD_MS} ms, and meanwhile instance 1's database \
             went away (PUT /admin/faults/database {{\"unreachable\": true}}): {}",
            charged.made - before.made,
            first.brief()
        ));
        let pending = self.payments_of(&payer).await?;
        let id = pending
            .first()
            .and_then(|p| p["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let status = pending.first().and_then(|p| p["status"].as_str());
        shown.say(format!(
            "the database back: {id} is {}, its key locked at payment_created by a request \
             that is gone, as a crash right after the charge leaves it",
            status.unwrap_or("missing")
        ));
        shown.check(
            first.status == 503
                && charged.charges_for(&id).len() == 1
                && pending.len() == 1
                && status == Some("pending"),
            "the charge was made and its record cut off: 503, the payment pending",
        );
        let waited = Instant::now();
        let mut payment = self.payment(&payer, &id).await?;
        while payment["status"] == "pending" && waited.elapsed() < GUARD {
            tokio::time::sleep(Duration::from_millis(100)).await;
            payment = self.payment(&payer, &id).await?;
        }
        let recovered = stage::metric(&self.client, &self.urls[0], RECOVERIES).await? - recoveries;
        let after = self.ledger().await?;
        let charges = after.charges_for(&id);
        shown.say(format!(
            "nobody retried; {} ms later {id} is {}, provider_reference {}: the completer \
             (every {} ms on each instance, for keys idle {} s with a stale lock; 60 s each by \
             default) resumed it at payment_created. {RECOVERIES} +{recovered}; the provider made \
             +{}, replayed +{} since the charge",
            waited.elapsed().as_millis(),
            payment["status"].as_str().unwrap_or("missing"),
            payment["provider_reference"].as_str().unwrap_or("none"),
            BACKGROUND.as_millis(),
            RECOVERY.as_secs(),
            after.made - before.made,
            after.replayed - charged.replayed
        ));
        shown.check(
            payment["status"] == "succeeded" && recovered >= 1.0,
            "the completer finished the abandoned payment from its recovery point",
        );
        let retry = self.pay(1, &payer, "order-cut", 4200).await?;
        shown.say(format!(
            "the client's retry, on the other instance: {}, payment {}",
            retry.brief(),
            retry.json()["id"].as_str().unwrap_or("none")
        ));
        shown.check(
            charges.len() == 1
                && payment["provider_reference"] == charges[0]
                && retry.status == 201
                && retry.replayed
                && retry.json()["id"] == id.as_str(),
            "one charge: the completer's call got the first charge back, and the retry the \
             stored answer",
        );
        Ok(())
    }

    /// The same key with another amount is refused, and changes nothing.
    async fn key_reused(&self, shown: &mut Shown) -> anyhow::Result<()> {
        let payer = self.payer("key reused").await?;
        let before = self.ledger().await?;
        let first = self.pay(0, &payer, "order-reuse", 2000).await?;
        let other = self.pay(1, &payer, "order-reuse", 2500).await?;
        let again = self.pay(0, &payer, "order-reuse", 2000).await?;
        let after = self.ledger().await?;
        let payments = self.payments_of(&payer).await?;
        shown.say(format!(
            "POST /v1/payments, Idempotency-Key: order-reuse, amount 2000: {}; the same key with \
             amount 2500: {} ({}); amount 2000 again: {}",
            first.brief(),
            other.brief(),
            other.json()["detail"].as_str().unwrap_or_default(),
            again.brief()
        ));
        let amounts: Vec<&Value> = payments.iter().map(|p| &p["amount"]).collect();
        shown.say(format!(
            "the provider made +{}; GET /v1/payments: amounts {}",
            after.made - before.made,
            json!(amounts)
        ));
        shown.check(
            other.status == 422
                && other.json()["type"] == "tag:sdlab.dev,2026:idempotency-key-reused",
            "the same key with another amount is a 422 idempotency-key-reused",
        );
        shown.check(
            first.status == 201
                && again.replayed
                && again.body == first.body
                && amounts == [&json!(2000)]
                && payments[0]["id"]
                    .as_str()
                    .is_some_and(|id| after.charges_for(id).len() == 1),
            "it changed nothing: one charge, one payment of 2000, and the first answer still \
             replays byte for byte",
        );
        Ok(())
    }
}

/// One instance, connected as its binary connects (`Application::build`), but on topics the
/// caller shares.
async fn build(settings: Settings, topics: Arc<dyn Topics>) -> anyhow::Result<Application> {
    let database = Database::connect(&settings.backends.database, SCHEMA)
        .await
        .context("connecting to the database")?;
    Application::build_with(settings, database, topics, Arc::new(SystemClock)).await
}

#[async_trait]
impl Stage for Live {
    fn url(&self) -> String {
        self.urls[0].clone()
    }

    fn backends(&self) -> String {
        self.backends.clone()
    }

    async fn demonstrate(&mut self, demo: &str, shown: &mut Shown) -> anyhow::Result<()> {
        match demo {
            "five-at-once" => self.five_at_once(shown).await,
            "retry-after-provider-crash" => self.retry_after_provider_crash(shown).await,
            "crash-after-charge" => self.crash_after_charge(shown).await,
            "key-reused" => self.key_reused(shown).await,
            other => anyhow::bail!("the payments service has no demonstration {other:?}"),
        }
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.servers.stop().await
    }
}
